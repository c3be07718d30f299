#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* naive_oracle.c — see naive_oracle.h. Written for obviousness, not speed:
 * the test sizes are small. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "naive_oracle.h"

#define AT4(b, n, h, d) ((((size_t)(b) * N + (size_t)(n)) * H + (size_t)(h)) * D + (size_t)(d))
#define AT3(b, h, n) (((size_t)(b) * H + (size_t)(h)) * N + (size_t)(n))

static int reject(const char **why, const char *reason)
{
    if (why)
        *why = reason;
    return -1;
}

/* One branch: level (w, r) for batch b, head h with offset off. Writes o_i
 * and lse_i of the selected rows; the others keep lse_i = -inf. */
static int branch(const oracle_problem *p, int64_t w, int64_t r, int64_t b, int64_t h,
                  int64_t off, const float *q, const float *k, const float *v, double *o_lv,
                  double *lse_lv)
{
    const size_t N = (size_t)p->rows, H = (size_t)p->heads, D = (size_t)p->dim;
    size_t *idx = malloc(N * sizeof *idx);
    double *S = malloc(N * N * sizeof *S);
    if (!idx || !S) {
        free(idx);
        free(S);
        return -1;
    }
    for (size_t start = 0; start < N; start += (size_t)w) {
        size_t end = (size_t)w >= N - start ? N : start + (size_t)w;

        /* The explicit list of selected rows: offset off within the segment,
         * then every r-th row. */
        size_t n = 0;
        for (size_t row = start; row < end; row++)
            if ((int64_t)((row - start) % (size_t)r) == off)
                idx[n++] = row;

        /* The full score matrix, masked entries -inf. */
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                if (p->causal && idx[j] > idx[i]) {
                    S[i * n + j] = -INFINITY;
                    continue;
                }
                double dot = 0;
                for (size_t d = 0; d < D; d++)
                    dot += (double)q[AT4(b, idx[i], h, d)] * (double)k[AT4(b, idx[j], h, d)];
                S[i * n + j] = p->scale * dot;
            }

        /* Row softmax, then P V. */
        for (size_t i = 0; i < n; i++) {
            double m = -INFINITY;
            for (size_t j = 0; j < n; j++)
                m = fmax(m, S[i * n + j]);
            double sum = 0;
            for (size_t j = 0; j < n; j++) {
                S[i * n + j] = exp(S[i * n + j] - m);
                sum += S[i * n + j];
            }
            for (size_t d = 0; d < D; d++) {
                double acc = 0;
                for (size_t j = 0; j < n; j++)
                    acc += S[i * n + j] / sum * (double)v[AT4(b, idx[j], h, d)];
                o_lv[AT4(b, idx[i], h, d)] = acc;
            }
            lse_lv[AT3(b, h, idx[i])] = m + log(sum);
        }
        if (end == N)
            break;
    }
    free(idx);
    free(S);
    return 0;
}

int naive_oracle_forward(const oracle_problem *p, const float *q, const float *k,
                         const float *v, double *out, double *lse, const char **why)
{
    if (p->batch < 1 || p->rows < 1 || p->heads < 1 || p->dim < 1)
        return reject(why, "a dimension is < 1");
    if (p->levels < 1)
        return reject(why, "no level");
    int dense = 0;
    for (int i = 0; i < p->levels; i++) {
        if (p->segments[i] < 1 || p->dilations[i] < 1 || p->dilations[i] > p->segments[i])
            return reject(why, "a level has w < 1 or r outside 1..w");
        dense |= p->dilations[i] == 1;
    }
    if (!dense)
        return reject(why, "no level has dilation 1");

    const size_t B = (size_t)p->batch, N = (size_t)p->rows, H = (size_t)p->heads,
                 D = (size_t)p->dim, L = (size_t)p->levels;
    const size_t n4 = B * N * H * D, n3 = B * H * N;
    /* Every level's branch output is kept: the mixing happens at the end. */
    double *o_lv = calloc(L * n4, sizeof *o_lv);
    double *lse_lv = malloc(L * n3 * sizeof *lse_lv);
    if (!o_lv || !lse_lv) {
        free(o_lv);
        free(lse_lv);
        return reject(why, "out of memory");
    }
    for (size_t i = 0; i < L * n3; i++)
        lse_lv[i] = -INFINITY;

    for (size_t lv = 0; lv < L; lv++) {
        const int64_t w = p->segments[lv], r = p->dilations[lv];
        for (size_t b = 0; b < B; b++)
            for (size_t h = 0; h < H; h++) {
                int64_t off = p->grouped ? (int64_t)h / ((p->heads + r - 1) / r)
                                         : (int64_t)h % r;
                if (branch(p, w, r, (int64_t)b, (int64_t)h, off, q, k, v, o_lv + lv * n4,
                           lse_lv + lv * n3)) {
                    free(o_lv);
                    free(lse_lv);
                    return reject(why, "out of memory");
                }
            }
    }

    /* Paper eq. 10: LSE = log sum_i exp(lse_i), O = sum_i exp(lse_i - LSE) o_i. */
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++)
            for (size_t n = 0; n < N; n++) {
                double m = -INFINITY;
                for (size_t lv = 0; lv < L; lv++)
                    m = fmax(m, lse_lv[lv * n3 + AT3(b, h, n)]);
                double sum = 0;
                for (size_t lv = 0; lv < L; lv++)
                    sum += exp(lse_lv[lv * n3 + AT3(b, h, n)] - m);
                const double LSE = m + log(sum);
                lse[AT3(b, h, n)] = LSE;
                for (size_t d = 0; d < D; d++) {
                    double acc = 0;
                    for (size_t lv = 0; lv < L; lv++) {
                        double l_i = lse_lv[lv * n3 + AT3(b, h, n)];
                        if (l_i > -INFINITY)
                            acc += exp(l_i - LSE) * o_lv[lv * n4 + AT4(b, n, h, d)];
                    }
                    out[AT4(b, n, h, d)] = acc;
                }
            }
    free(o_lv);
    free(lse_lv);
    return 0;
}
