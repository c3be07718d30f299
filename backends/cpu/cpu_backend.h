/* cpu_backend.h — what the CPU backend's files share; nothing outside
 * backends/cpu/ sees it. The module exports only lnet_plugin_entry (the
 * link step restricts the exported symbols), so these names stay private. */
#ifndef LNET_CPU_BACKEND_H
#define LNET_CPU_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "longnet-plugin-check.h"
#include "longnet-plugin-math.h" /* ceil division, head offsets, the fold */
#include "longnet-plugin.h"

/* Records the message returned by the plugin's last_error() for this thread
 * and returns `status`, so that an error path is one line (cpu_errors.c). */
int cpu_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The message of this thread's last failure: the plugin table's last_error. */
const char *cpu_last_error(void);

/* The plainly correct kernel (cpu_reference.c): double-precision scores and
 * softmax, one query row at a time. It is the oracle the faster kernels are
 * checked against, so it favours clarity over speed. */
int cpu_reference_segment(const lnet_segment_job *job, const float *q, const float *k,
                          const float *v, float *out, float *lse);


/* The rows a job's buffers hold (the SDK's shared job check fills it). */
typedef lnet_plugin_window cpu_window;

static inline void cpu_job_window(const lnet_segment_job *job, cpu_window *w)
{
    lnet_plugin_job_window(job, w);
}

#endif /* LNET_CPU_BACKEND_H */
