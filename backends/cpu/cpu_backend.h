/* cpu_backend.h — what the CPU backend's files share; nothing outside
 * backends/cpu/ sees it. The module exports only lnet_plugin_entry (the
 * link step restricts the exported symbols), so these names stay private. */
#ifndef LNET_CPU_BACKEND_H
#define LNET_CPU_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "longnet-plugin-check.h"
#include "longnet-plugin.h"

/* Records the message returned by the plugin's last_error() for this thread
 * and returns `status`, so that an error path is one line. */
int cpu_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A segment kernel: the job has been validated by run_segment (shapes,
 * ranges, buffer sizes), and the tensors are given as host pointers. Returns
 * LNET_PLUGIN_OK or a failure recorded with cpu_fail. */
typedef int (*cpu_kernel_fn)(const lnet_segment_job *job, const float *q, const float *k,
                             const float *v, float *out, float *lse);

/* The plainly correct kernel (cpu_reference.c): double-precision scores and
 * softmax, one query row at a time. It is the oracle the faster kernels are
 * checked against, so it favours clarity over speed. */
int cpu_reference_segment(const lnet_segment_job *job, const float *q, const float *k,
                          const float *v, float *out, float *lse);

/* The offset of head h for a level of dilation r (DESIGN §1). Shared by the
 * kernels so that they cannot disagree on it. */
static inline int64_t cpu_head_offset(int offsets, int64_t h, int64_t heads, int64_t r)
{
    if (offsets == LNET_PLUGIN_OFFSETS_GROUPED) {
        /* ceil(H / r) heads share an offset; not (H + r - 1) / r, which
         * overflows for dilations near INT64_MAX (test_hostile). */
        int64_t group = heads / r + (heads % r != 0);
        return h / group;
    }
    return h % r;
}

/* The rows a job's buffers hold (the SDK's shared job check fills it). */
typedef lnet_plugin_window cpu_window;

static inline void cpu_job_window(const lnet_segment_job *job, cpu_window *w)
{
    lnet_plugin_job_window(job, w);
}

#endif /* LNET_CPU_BACKEND_H */
