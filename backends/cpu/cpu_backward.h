/* cpu_backward.h — the CPU backend's backward kernels (the plugin slot
 * run_segment_backward, lnet_segment_backward_job): "reference"
 * (cpu_backward.c) and "fast" (cpu_backward_fast.c, cpu_bwd_template.h). */
#ifndef LNET_CPU_BACKWARD_H
#define LNET_CPU_BACKWARD_H

#include "cpu_fast.h"
#include "longnet-plugin.h"

/* The host memory of a backward job's buffers (run_segment_backward has
 * checked their sizes): q, dout, dq as q; k, v, dk, dv as k; lse, delta as
 * lse. dq, dk, dv are added to. */
typedef struct cpu_backward_buffers {
    const float *q, *k, *v, *lse, *dout, *delta;
    float *dq, *dk, *dv;
} cpu_backward_buffers;

/* Row by row, in double: the oracle the fast kernel is checked against. */
int cpu_backward_reference(const lnet_segment_job *job, const cpu_backward_buffers *buf);

/* SIMD items on the device's thread pool (cpu_fast.h's state). */
int cpu_backward_fast(cpu_fast *fast, const lnet_segment_job *job,
                      const cpu_backward_buffers *buf);

#endif /* LNET_CPU_BACKWARD_H */
