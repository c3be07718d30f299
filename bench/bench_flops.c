#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_flops.c — the exact number of (query, key) pairs a configuration
 * scores, so that GFLOP/s counts only work the operator really does: no
 * padding, no masked-out causal pairs, ragged last segments as they are.
 * The count itself is common/attn_pairs.c's, shared with `longnet plan`.
 */
#include "attn_pairs.h"
#include "bench.h"

double bench_pairs(const bench_levels *lv, int64_t batch, int64_t n, int64_t heads,
                   int causal, lnet_offsets offsets)
{
    return cli_attention_pairs(lv->n, lv->w, lv->r, batch, n, heads, causal, offsets, 0, n);
}

double bench_flops(double pairs, int64_t dim, int backward)
{
    return cli_attention_flops(pairs, dim, backward);
}
