/* longnet-plugin-math.h — the operator's small formulas (DESIGN §1), once,
 * for the core and every backend (header-only, part of the SDK), so that
 * no two copies can disagree on a head's offset, a segment's selected-row
 * count or how a level folds into the running (O, LSE).
 *
 * Every integer here may be near INT64_MAX (a segment length or dilation
 * past the sequence is valid): nothing forms a + b - 1 or another sum that
 * could overflow.
 */
#ifndef LONGNET_PLUGIN_MATH_H
#define LONGNET_PLUGIN_MATH_H

#include <math.h>
#include <stdint.h>

#include "longnet-plugin.h"

/* ceil(a / b) for a >= 0, b >= 1, without forming a + b - 1. */
static inline int64_t lnet_plugin_ceil_div(int64_t a, int64_t b)
{
    return a / b + (a % b != 0);
}

/* The offset of head h at dilation r: h mod r (interleaved, the paper), or
 * h / ceil(heads / r) (grouped, torchscale's). Always < r and < heads. */
static inline int64_t lnet_plugin_head_offset(int offsets, int64_t h, int64_t heads, int64_t r)
{
    if (offsets == LNET_PLUGIN_OFFSETS_GROUPED)
        return h / lnet_plugin_ceil_div(heads, r);
    return h % r;
}

/* How a branch (o_i, lse_i) folds into a row's running (O, LSE) by their
 * softmax denominators (DESIGN §1, eq. 10):
 *   O' = (prev * O + cur * o_i) / den,   LSE' = lse,
 * with the larger of the two LSEs subtracted before exp. A row with no
 * branch yet (LSE = -inf) has prev = 0 and takes o_i alone, whatever O
 * holds (lnet_plugin_fold_value never reads it then). NaN in either LSE
 * gives NaN, as the arithmetic says. */
typedef struct lnet_plugin_fold {
    double prev, cur, den, lse;
} lnet_plugin_fold;

static inline lnet_plugin_fold lnet_plugin_lse_fold(double lse_prev, double lse_i)
{
    lnet_plugin_fold f;
    const double m = lse_prev > lse_i ? lse_prev : lse_i;
    f.prev = exp(lse_prev - m);
    f.cur = exp(lse_i - m);
    f.den = f.prev + f.cur;
    f.lse = m + log(f.den);
    return f;
}

static inline double lnet_plugin_fold_value(const lnet_plugin_fold *f, double o, double o_i)
{
    return ((f->prev > 0.0 ? f->prev * o : 0.0) + f->cur * o_i) / f->den;
}

#endif /* LONGNET_PLUGIN_MATH_H */
