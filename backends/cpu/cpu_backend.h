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

/* Index of element (b, n, h, 0) of a [B, rows, H, D] tensor: rows is the
 * buffer's (a window's) row count and n counted from its first row. The
 * job checks have seen that the buffer's B*rows*H*D fits in size_t, so no
 * partial product overflows. */
static inline size_t cpu_bnh_index(int64_t b, int64_t n, int64_t h, int64_t rows, int64_t H,
                                   int64_t D)
{
    return (((size_t)b * (size_t)rows + (size_t)n) * (size_t)H + (size_t)h) * (size_t)D;
}

/* The dilation as a stride between selected rows. Strides are only ever
 * applied between two selected rows that one buffer holds, so a dilation
 * >= the larger window's rows never is (the buffers hold one selected row
 * per segment); capping it keeps r * H * D (<= rows * H * D of a buffer,
 * checked by run_segment to fit in size_t) from overflowing. Without
 * windows the cap is N. */
static inline int64_t cpu_stride_dilation(const lnet_segment_job *job, const cpu_window *win)
{
    const int64_t buf_rows = win->q_rows > win->kv_rows ? win->q_rows : win->kv_rows;
    return job->dilation < buf_rows ? job->dilation : buf_rows;
}

/* One (segment, head offset) of a job, in the segment's selected indices
 * (selected row j is first + j * dilation): the queries [j_lo, j_hi) in
 * the row range and the keys [k_lo, k_hi) in the K/V window. */
typedef struct cpu_seg_rows {
    int64_t first, j_lo, j_hi, k_lo, k_hi;
} cpu_seg_rows;

/* Fills g for segment s and offset o; returns 0 when the segment selects
 * no query of the range or no key of the window. */
static inline int cpu_segment_rows(const lnet_segment_job *job, const cpu_window *win, int64_t s,
                                   int64_t o, cpu_seg_rows *g)
{
    const int64_t N = job->rows, w = job->segment, r = job->dilation;
    const int64_t start = s * w;
    const int64_t end = (w > N - start) ? N : start + w; /* no start + w overflow */
    if (start + o >= end)
        return 0;
    g->first = start + o;
    const int64_t n_sel = lnet_plugin_ceil_div(end - g->first, r);
    g->j_lo = job->row_begin > g->first ? lnet_plugin_ceil_div(job->row_begin - g->first, r) : 0;
    g->j_hi = job->row_end > g->first ? lnet_plugin_ceil_div(job->row_end - g->first, r) : 0;
    if (g->j_hi > n_sel)
        g->j_hi = n_sel;
    const int64_t kb = win->kv_base, ke = win->kv_base + win->kv_rows;
    g->k_lo = kb > g->first ? lnet_plugin_ceil_div(kb - g->first, r) : 0;
    g->k_hi = ke > g->first ? lnet_plugin_ceil_div(ke - g->first, r) : 0;
    if (g->k_hi > n_sel)
        g->k_hi = n_sel;
    return g->j_lo < g->j_hi && g->k_lo < g->k_hi;
}

#endif /* LNET_CPU_BACKEND_H */
