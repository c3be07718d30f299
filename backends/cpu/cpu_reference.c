#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cpu_reference.c — the CPU backend's reference segment kernel.
 *
 * This is the plainly correct version of the contract in longnet-plugin.h
 * (lnet_segment_job): one query row at a time, scores and softmax in double,
 * no blocking, no threads. Faster kernels are checked against it, so every
 * step mirrors DESIGN §1 as literally as possible.
 *
 * Cost: for each segment, |R|^2 * D multiply-adds where |R| <= ceil(w / r)
 * is the number of selected rows, so the total is linear in N for a fixed
 * segment length. Scratch memory: |R| + D doubles per call.
 *
 * Row windows (LNET_PLUGIN_CAP_WINDOWS): rows are absolute throughout; only
 * the buffer addresses subtract the window's first row, and only the keys
 * inside the K/V window are scored.
 */
#include <math.h>
#include <stdlib.h>

#include "cpu_backend.h"
#include "cpu_tile.h"

/* One query row against nk keys (k and v rows `stride` floats apart):
 * scores in double, the stable softmax (subtract the row maximum before
 * exp), acc[d] = sum_j p_j v_j[d] and *l = sum_j p_j; returns lse_i. NaN and
 * infinities go where this arithmetic takes them (DESIGN §1, Non-finite
 * inputs): a NaN score never becomes the maximum, and exp(NaN - m) makes the
 * row NaN. With scores NULL the scores are computed twice instead of kept
 * (the same operations in the same order, so the same values): the fast
 * kernel's rows that leave float range have no scratch for them. */
double cpu_exact_branch(const float *qv, const float *k, const float *v, size_t stride,
                        int64_t nk, int64_t D, double scale, double *scores, double *acc,
                        double *l_out)
{
    double m = -INFINITY;
    for (int64_t j = 0; j < nk; j++) {
        const float *kv = k + (size_t)j * stride;
        double dot = 0.0;
        for (int64_t d = 0; d < D; d++)
            dot += (double)qv[d] * (double)kv[d];
        const double sc = scale * dot;
        if (scores)
            scores[j] = sc;
        if (sc > m)
            m = sc;
    }
    double l = 0.0;
    for (int64_t d = 0; d < D; d++)
        acc[d] = 0.0;
    for (int64_t j = 0; j < nk; j++) {
        double sc;
        if (scores) {
            sc = scores[j];
        } else {
            const float *kv = k + (size_t)j * stride;
            double dot = 0.0;
            for (int64_t d = 0; d < D; d++)
                dot += (double)qv[d] * (double)kv[d];
            sc = scale * dot;
        }
        const double p = exp(sc - m);
        const float *vv = v + (size_t)j * stride;
        l += p;
        for (int64_t d = 0; d < D; d++)
            acc[d] += p * (double)vv[d];
    }
    *l_out = l;
    return m + log(l);
}

/* Writes a branch (acc / l, lse_i) into its row, or with init = 0 folds it
 * into the running (out, lse) by their softmax denominators (DESIGN §1,
 * eq. 10). */
void cpu_exact_fold(float *orow, float *lrow, const double *acc, double l, double lse_i,
                    int64_t D, int init)
{
    if (init) {
        for (int64_t d = 0; d < D; d++)
            orow[d] = (float)(acc[d] / l);
        *lrow = (float)lse_i;
        return;
    }
    /* A row with no branch yet (lse = -inf) takes o_i alone, whatever
     * `out` holds (even NaN): the SDK's fold never reads it then. */
    const lnet_plugin_fold f = lnet_plugin_lse_fold((double)*lrow, lse_i);
    for (int64_t d = 0; d < D; d++)
        orow[d] = (float)lnet_plugin_fold_value(&f, (double)orow[d], acc[d] / l);
    *lrow = (float)f.lse;
}

int cpu_reference_segment(const lnet_segment_job *job, const float *q, const float *k,
                          const float *v, float *out, float *lse)
{
    const int64_t B = job->batch, N = job->rows, H = job->heads, D = job->dim;
    const int64_t w = job->segment, r = job->dilation;
    const int64_t row_begin = job->row_begin, row_end = job->row_end;
    const double scale = (double)job->scale;
    /* The rows the buffers hold (DESIGN §2, the scheduler's windows): q, out
     * and lse from absolute row qb (qn rows), k and v from kb (kn rows). */
    cpu_window win;
    cpu_job_window(job, &win);
    const int64_t qb = win.q_base, qn = win.q_rows, kb = win.kv_base, kn = win.kv_rows;

    if (row_begin >= row_end)
        return LNET_PLUGIN_OK; /* an empty row range selects nothing */

    /* A query scores the selected keys of its segment (at most min(w, N)
     * rows) held in the K/V window (kn rows): every r-th of at most
     * min(w, N, kn) rows. Bounding by kn keeps the scratch to the window's
     * size when N is the length of a sequence spread over many devices. */
    int64_t span = w < N ? w : N;
    if (kn < span)
        span = kn;
    const size_t max_sel = (size_t)lnet_plugin_ceil_div(span, r);
    /* max_sel <= kv_rows and D are both element counts of tensors whose
     * byte sizes were checked to fit in size_t, so these products cannot
     * overflow. */
    double *scores = malloc(max_sel * sizeof *scores);
    double *acc = malloc((size_t)D * sizeof *acc);
    if (!scores || !acc) {
        free(scores);
        free(acc);
        return cpu_fail(LNET_PLUGIN_ERR_NOMEM,
                        "cpu reference kernel: out of memory allocating %zu bytes of scratch",
                        (max_sel + (size_t)D) * sizeof(double));
    }

    /* Segments are aligned to row 0: the ones touching [row_begin, row_end). */
    const int64_t s_first = row_begin / w, s_last = (row_end - 1) / w;

    for (int64_t b = 0; b < B; b++) {
        for (int64_t h = 0; h < H; h++) {
            const int64_t o = lnet_plugin_head_offset(job->offsets, h, H, r);
            for (int64_t s = s_first; s <= s_last; s++) {
                const int64_t start = s * w; /* <= row_end - 1 < N: no overflow */
                /* min(start + w, N) without forming start + w, which could
                 * overflow for a huge w. */
                const int64_t end = (w > N - start) ? N : start + w;
                if (start + o >= end)
                    continue; /* a short last segment may select no row */
                const int64_t first = start + o;
                const int64_t n_sel = lnet_plugin_ceil_div(end - first, r);

                /* The selected query rows that fall into [row_begin, row_end):
                 * indices j in [j_lo, j_hi) of first + j*r. */
                const int64_t j_lo = row_begin > first ? lnet_plugin_ceil_div(row_begin - first, r) : 0;
                int64_t j_hi = row_end > first ? lnet_plugin_ceil_div(row_end - first, r) : 0;
                if (j_hi > n_sel)
                    j_hi = n_sel;

                /* The selected keys held in the K/V window: [k_lo, k_hi). */
                const int64_t k_lo = kb > first ? lnet_plugin_ceil_div(kb - first, r) : 0;
                int64_t k_hi = kb + kn > first ? lnet_plugin_ceil_div(kb + kn - first, r) : 0;
                if (k_hi > n_sel)
                    k_hi = n_sel;

                for (int64_t jq = j_lo; jq < j_hi; jq++) {
                    const int64_t qrow = first + jq * r;
                    const float *qv = q + cpu_bnh_index(b, qrow - qb, h, qn, H, D);
                    /* Causal: keys up to and including the query row. Without
                     * a window the row itself is selected, so every row sees
                     * >= 1 key; a window may leave a row none (untouched). */
                    const int64_t nk = job->causal && jq + 1 < k_hi ? jq + 1 : k_hi;
                    if (nk <= k_lo)
                        continue;

                    /* Consecutive selected keys are r rows apart; a
                     * dilation past the window's rows leaves it at most one
                     * key, so capping r there keeps r * H * D within the
                     * buffer's checked size without changing an address. */
                    const size_t kstride = (size_t)(r < kn ? r : kn) * (size_t)H * (size_t)D;
                    const float *k0 = k + cpu_bnh_index(b, first + k_lo * r - kb, h, kn, H, D);
                    const float *v0 = v + cpu_bnh_index(b, first + k_lo * r - kb, h, kn, H, D);
                    double l;
                    const double lse_i = cpu_exact_branch(qv, k0, v0, kstride, nk - k_lo, D,
                                                          scale, scores, acc, &l);
                    float *orow = out + cpu_bnh_index(b, qrow - qb, h, qn, H, D);
                    float *lrow = lse + ((size_t)b * (size_t)H + (size_t)h) * (size_t)qn +
                                  (size_t)(qrow - qb);
                    cpu_exact_fold(orow, lrow, acc, l, lse_i, D, job->init);
                }
            }
        }
    }

    free(scores);
    free(acc);
    return LNET_PLUGIN_OK;
}
