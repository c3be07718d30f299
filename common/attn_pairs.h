/* attn_pairs.h — the work dilated attention does, counted exactly: the
 * (query, key) pairs a configuration scores for a range of query rows,
 * and the FLOPs they take. Shared by longnet-bench (GFLOP/s of a cell)
 * and `longnet plan` (FLOPs per rank), so that the two count alike.
 *
 * DESIGN §1: at level (w, r), head h with offset o, segment s covers rows
 * [s*w, min((s+1)*w, N)) and selects the rows s*w + o + j*r inside it. Its
 * m selected rows score m keys each, or j + 1 keys for the j-th when
 * causal (key <= query): m*m pairs, or m*(m+1)/2.
 */
#ifndef LNET_ATTN_PAIRS_H
#define LNET_ATTN_PAIRS_H

#include <stdint.h>

#include "longnet.h"

/* FLOPs per pair: 4*D (2*D for the score q.k, 2*D for p*v; the softmax not
 * counted); a backward pass counts CLI_BACKWARD_FLOPS times that
 * (FlashAttention-2's convention: the scores recomputed, then dV, dP, dQ
 * and dK, 10*D per pair). */
#define CLI_BACKWARD_FLOPS 2.5

/* The pairs scored by the query rows [lo, hi) (0 <= lo <= hi <= n) of a
 * B x n x H call whose levels are w[i], r[i] (i < levels), times B. O(levels
 * x heads) whatever n is: whole segments inside the range are counted by
 * kind, only the two at its edges head by head. */
double cli_attention_pairs(int levels, const int64_t *w, const int64_t *r, int64_t batch,
                           int64_t n, int64_t heads, int causal, lnet_offsets offsets,
                           int64_t lo, int64_t hi);

/* The FLOPs of `pairs` at head dimension `dim`, forward or backward. */
double cli_attention_flops(double pairs, int64_t dim, int backward);

#endif /* LNET_ATTN_PAIRS_H */
