#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* attn_pairs.c — the pair count of attn_pairs.h. Every row index here may
 * be near INT64_MAX (a segment longer than the sequence is valid): no sum
 * that could overflow is formed. */
#include "attn_pairs.h"

static int64_t head_offset(int64_t h, int64_t heads, int64_t r, lnet_offsets offsets)
{
    if (offsets == LNET_OFFSETS_GROUPED) {
        int64_t group = heads / r + (heads % r != 0); /* ceil(H / r) */
        return h / group;
    }
    return h % r;
}

/* ceil(a / r) for a >= 0, clamped at 0 below. */
static int64_t ceil_div0(int64_t a, int64_t r)
{
    return a <= 0 ? 0 : a / r + (a % r != 0);
}

static double segment_pairs(double m, int causal)
{
    return causal ? m * (m + 1) / 2 : m * m;
}

/* Pairs of segment [a, e), one head of offset o, scored by the query rows
 * of [lo, hi): its selected rows j = j_lo .. j_hi - 1 of m, each scoring
 * m keys, or j + 1 when causal. */
static double edge_pairs(int64_t a, int64_t e, int64_t o, int64_t r, int causal, int64_t lo,
                         int64_t hi)
{
    const int64_t m = ceil_div0(e - a - o, r);
    const int64_t q_lo = lo > a ? lo : a, q_hi = hi < e ? hi : e;
    if (q_lo >= q_hi || m == 0)
        return 0;
    int64_t j_lo = ceil_div0(q_lo - a - o, r), j_hi = ceil_div0(q_hi - a - o, r);
    if (j_hi > m)
        j_hi = m;
    if (j_lo >= j_hi)
        return 0;
    if (!causal)
        return (double)(j_hi - j_lo) * (double)m;
    return ((double)j_hi * (double)(j_hi + 1) - (double)j_lo * (double)(j_lo + 1)) / 2;
}

double cli_attention_pairs(int levels, const int64_t *w, const int64_t *r, int64_t batch,
                           int64_t n, int64_t heads, int causal, lnet_offsets offsets,
                           int64_t lo, int64_t hi)
{
    double total = 0;
    if (lo >= hi)
        return 0;
    for (int i = 0; i < levels; i++) {
        const int64_t seg = w[i], dil = r[i];
        const int64_t s_first = lo / seg, s_last = (hi - 1) / seg;
        for (int64_t h = 0; h < heads; h++) {
            const int64_t o = head_offset(h, heads, dil, offsets);
            /* The two segments at the range's edges, row by row of them. */
            for (int64_t s = s_first; s <= s_last; s = s == s_last ? s + 1 : s_last) {
                const int64_t a = s * seg, e = seg > n - a ? n : a + seg;
                total += edge_pairs(a, e, o, dil, causal, lo, hi);
            }
            /* Those between: whole, and full length (only the sequence's
             * last segment is short, and it is s_last if in the range). */
            if (s_last - s_first > 1)
                total += (double)(s_last - s_first - 1) *
                         segment_pairs((double)ceil_div0(seg - o, dil), causal);
        }
    }
    return total * (double)batch;
}

double cli_attention_flops(double pairs, int64_t dim, int backward)
{
    return 4.0 * (double)dim * pairs * (backward ? CLI_BACKWARD_FLOPS : 1.0);
}
