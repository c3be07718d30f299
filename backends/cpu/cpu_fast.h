/* cpu_fast.h — the CPU backend's fast segment kernel ("fast", the default):
 * a blocked online softmax (FlashAttention-2 style) over tiles of selected
 * rows read in place, SIMD tile kernels chosen at run time (cpu_simd.h),
 * and a thread pool that lives as long as the opened device. */
#ifndef LNET_CPU_FAST_H
#define LNET_CPU_FAST_H

#include "longnet-plugin.h"
#include "cpu_pool.h"
#include "cpu_tile.h"

typedef struct cpu_fast cpu_fast;

/* The most threads a device runs (threads=, LONGNET_CPU_THREADS, or the
 * online cores, capped). */
#define CPU_MAX_THREADS 1024

/* Starts the kernel's state for one opened device. `simd` and `threads` are
 * the values of the device options simd= and threads= (NULL when not
 * given); without them the environment's LONGNET_CPU_SIMD and
 * LONGNET_CPU_THREADS are used, and without those the best SIMD path and
 * all online cores. A bad value is LNET_PLUGIN_ERR_INVALID naming it; a
 * SIMD path this CPU cannot run is LNET_PLUGIN_ERR_UNSUPPORTED. */
/* threads: the device option, else LONGNET_CPU_THREADS, else
 * default_threads (the device's share of the cores). */
int cpu_fast_create(const char *simd, const char *threads, int default_threads, cpu_fast **out);
void cpu_fast_free(cpu_fast *fast);


/* Runs one job that run_segment validated (shapes, ranges, buffer sizes);
 * tensors are host pointers. LNET_PLUGIN_OK or a failure from cpu_fail. */
int cpu_fast_segment(cpu_fast *fast, const lnet_segment_job *job, const float *q,
                     const float *k, const float *v, float *out, float *lse);

/* For the backward kernel (cpu_backward_fast.c), which shares the device's
 * SIMD path, thread pool and per-thread scratch: the tile kernel, the
 * pool, its thread count, and the scratch grown to `floats` per thread
 * (aligned for the tile kernel; LNET_PLUGIN_OK or NOMEM from cpu_fail). */
const cpu_tile_kernel *cpu_fast_tile(const cpu_fast *fast);
cpu_pool *cpu_fast_pool(const cpu_fast *fast);
int cpu_fast_threads(const cpu_fast *fast);
int cpu_fast_scratch(cpu_fast *fast, size_t floats, float *const **scratch);

#endif /* LNET_CPU_FAST_H */
