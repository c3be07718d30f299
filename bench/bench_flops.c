#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_flops.c — the exact number of (query, key) pairs a configuration
 * scores, so that GFLOP/s counts only work the operator really does: no
 * padding, no masked-out causal pairs, ragged last segments as they are.
 *
 * DESIGN §1: at level (w, r), head h with offset o, segment s covers rows
 * [s*w, min((s+1)*w, N)) and selects the rows s*w + o + j*r inside it. Its
 * m selected rows score m*m pairs, or m*(m+1)/2 when causal (key <= query).
 */
#include "bench.h"

/* Selected rows of a segment of `len` rows with offset o and dilation r. */
static double selected_rows(int64_t len, int64_t o, int64_t r)
{
    return len > o ? (double)((len - o + r - 1) / r) : 0.0;
}

static double segment_pairs(double m, int causal)
{
    return causal ? m * (m + 1) / 2 : m * m;
}

static int64_t head_offset(int64_t h, int64_t heads, int64_t r, lnet_offsets offsets)
{
    if (offsets == LNET_OFFSETS_GROUPED) {
        int64_t group = (heads + r - 1) / r; /* ceil(H / r) */
        return h / group;
    }
    return h % r;
}

double bench_pairs(const bench_levels *lv, int64_t batch, int64_t n, int64_t heads,
                   int causal, lnet_offsets offsets)
{
    double total = 0;
    for (int i = 0; i < lv->n; i++) {
        int64_t w = lv->w[i], r = lv->r[i];
        /* Every segment is full but the last; counting the two kinds keeps
         * this O(levels x heads) even at a billion tokens. */
        int64_t full = n / w, last = n % w;
        for (int64_t h = 0; h < heads; h++) {
            int64_t o = head_offset(h, heads, r, offsets);
            total += (double)full * segment_pairs(selected_rows(w, o, r), causal);
            total += segment_pairs(selected_rows(last, o, r), causal);
        }
    }
    return total * (double)batch;
}

double bench_flops(double pairs, int64_t dim, int backward)
{
    return 4.0 * (double)dim * pairs * (backward ? BENCH_BACKWARD_FLOPS : 1.0);
}
