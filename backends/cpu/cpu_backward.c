#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cpu_backward.c — the CPU backend's reference backward kernel.
 *
 * The plainly correct version of lnet_segment_backward_job, row by row in
 * double: for each selected query row i of the range, P_ij = exp(scale
 * q_i.k_j - LSE_i) over the selected keys j of its segment in the K/V
 * window (causal: j <= i), dS_ij = P_ij (dO_i.v_j - delta_i), and
 *   pass 1, query by query:  dq_i += scale sum_j dS_ij k_j
 *   pass 2, key by key:      dv_j += sum_i P_ij dO_i, dk_j += scale sum_i dS_ij q_i
 * (P recomputed in pass 2), each gradient summed in double and added once.
 * Segments, selection and causality use absolute rows; only addresses
 * subtract the windows' first rows, as in cpu_reference.c. */
#include <math.h>
#include <stdlib.h>

#include "cpu_backend.h"
#include "cpu_backward.h"

static double dot(const float *a, const float *b, int64_t D)
{
    double s = 0.0;
    for (int64_t d = 0; d < D; d++)
        s += (double)a[d] * (double)b[d];
    return s;
}

int cpu_backward_reference(const lnet_segment_job *job, const cpu_backward_buffers *buf)
{
    const int64_t B = job->batch, H = job->heads, D = job->dim;
    const int64_t w = job->segment, r = job->dilation;
    const double scale = (double)job->scale;
    if (job->row_begin >= job->row_end)
        return LNET_PLUGIN_OK;
    cpu_window win;
    cpu_job_window(job, &win);
    const int64_t qb = win.q_base, qn = win.q_rows, kb = win.kv_base, kn = win.kv_rows;

    double *acc = malloc(2 * (size_t)D * sizeof *acc);
    if (!acc)
        return cpu_fail(LNET_PLUGIN_ERR_NOMEM,
                        "cpu reference backward: out of memory allocating %zu bytes of scratch",
                        2 * (size_t)D * sizeof(double));
    double *acc2 = acc + D;
    const int64_t s_first = job->row_begin / w, s_last = (job->row_end - 1) / w;

    for (int64_t b = 0; b < B; b++) {
        for (int64_t h = 0; h < H; h++) {
            const int64_t o = lnet_plugin_head_offset(job->offsets, h, H, r);
            const size_t lse_row = ((size_t)b * (size_t)H + (size_t)h) * (size_t)qn;
            for (int64_t s = s_first; s <= s_last; s++) {
                cpu_seg_rows g;
                if (!cpu_segment_rows(job, &win, s, o, &g))
                    continue;
#define QAT(jq) cpu_bnh_index(b, g.first + (jq) * r - qb, h, qn, H, D)
#define KAT(jk) cpu_bnh_index(b, g.first + (jk) * r - kb, h, kn, H, D)
#define LAT(jq) (lse_row + (size_t)(g.first + (jq) * r - qb))
                /* Pass 1: dq, one query row at a time. */
                for (int64_t jq = g.j_lo; jq < g.j_hi; jq++) {
                    const float *qv = buf->q + QAT(jq), *dov = buf->dout + QAT(jq);
                    const double lse = buf->lse[LAT(jq)], delta = buf->delta[LAT(jq)];
                    const int64_t k_end = job->causal && jq + 1 < g.k_hi ? jq + 1 : g.k_hi;
                    for (int64_t d = 0; d < D; d++)
                        acc[d] = 0.0;
                    for (int64_t jk = g.k_lo; jk < k_end; jk++) {
                        const float *kv = buf->k + KAT(jk), *vv = buf->v + KAT(jk);
                        const double p = exp(scale * dot(qv, kv, D) - lse);
                        const double ds = p * (dot(dov, vv, D) - delta);
                        for (int64_t d = 0; d < D; d++)
                            acc[d] += ds * (double)kv[d];
                    }
                    float *dqv = buf->dq + QAT(jq);
                    for (int64_t d = 0; d < D; d++)
                        dqv[d] += (float)(scale * acc[d]);
                }
                /* Pass 2: dk and dv, one key row at a time. */
                for (int64_t jk = g.k_lo; jk < g.k_hi; jk++) {
                    const float *kv = buf->k + KAT(jk), *vv = buf->v + KAT(jk);
                    const int64_t q_begin = job->causal && jk > g.j_lo ? jk : g.j_lo;
                    for (int64_t d = 0; d < 2 * D; d++)
                        acc[d] = 0.0;
                    for (int64_t jq = q_begin; jq < g.j_hi; jq++) {
                        const float *qv = buf->q + QAT(jq), *dov = buf->dout + QAT(jq);
                        const double lse = buf->lse[LAT(jq)], delta = buf->delta[LAT(jq)];
                        const double p = exp(scale * dot(qv, kv, D) - lse);
                        const double ds = p * (dot(dov, vv, D) - delta);
                        for (int64_t d = 0; d < D; d++) {
                            acc[d] += p * (double)dov[d];
                            acc2[d] += ds * (double)qv[d];
                        }
                    }
                    float *dkv = buf->dk + KAT(jk), *dvv = buf->dv + KAT(jk);
                    for (int64_t d = 0; d < D; d++) {
                        dvv[d] += (float)acc[d];
                        dkv[d] += (float)(scale * acc2[d]);
                    }
                }
#undef QAT
#undef KAT
#undef LAT
            }
        }
    }
    free(acc);
    return LNET_PLUGIN_OK;
}
