/* naive_oracle.h — an independent, deliberately naive float64 implementation
 * of the dilated-attention forward (DESIGN §1) for the randomized tests.
 *
 * It shares no code with any backend and computes the result another way:
 * each level's branch (o_i, lse_i) is computed in full with an explicit index
 * list and a dense score matrix per segment and stored, and the levels are
 * mixed at the end by paper eq. 10 (LSE = log sum_i exp(lse_i),
 * O = sum_i exp(lse_i - LSE) o_i), not by the running fold the kernels use. */
#ifndef LNET_TEST_NAIVE_ORACLE_H
#define LNET_TEST_NAIVE_ORACLE_H

#include <stdint.h>

typedef struct oracle_problem {
    int64_t batch, rows, heads, dim;
    int levels;
    const int64_t *segments;  /* [levels] */
    const int64_t *dilations; /* [levels] */
    int causal;
    int grouped;              /* 0: offset h mod r; 1: h / ceil(H / r) */
    double scale;             /* the actual scale, not 0 for the default */
} oracle_problem;

/* q, k, v: float32 [B, N, H, D]; out: [B, N, H, D] and lse: [B, H, N], both
 * double. Returns 0, or -1 (with a reason in `why` when it is not NULL) for
 * a problem outside DESIGN §1 or out of memory. */
int naive_oracle_forward(const oracle_problem *p, const float *q, const float *k,
                         const float *v, double *out, double *lse, const char **why);

#endif /* LNET_TEST_NAIVE_ORACLE_H */
