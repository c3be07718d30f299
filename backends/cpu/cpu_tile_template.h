/* cpu_tile_template.h — the fast kernel's tile, written once over a small
 * vector vocabulary and compiled once per instruction set: each of
 * cpu_tile_avx512.c, cpu_tile_avx2.c and cpu_tile_generic.c defines the
 * vocabulary and then includes this file (a template by inclusion, so that
 * the blocked online softmax exists in one copy only).
 *
 * The including file defines:
 *   VW               lanes of a vector (16, 8, ...)
 *   MV               query vectors per register block
 *   NR               keys per Q.K^T register block
 *   DR               head-dim entries per P.V register block
 *   TQ               queries per tile and keys per key tile, a multiple of MV*VW
 *   vf               the vector type, and the functions
 *   vf_zero() vf_load(p) vf_store(p, x) vf_bcast(p) vf_fma(a, b, c) = a*b + c
 *   vf_add vf_mul vf_sub vf_max vf_exp2(x) (2^x for x <= 0, -inf -> 0, NaN -> NaN)
 *   vf_set1(x) vf_any_gt(a, b) (some lane a > b)
 *   vf_mask_below(x, k) (lanes < k set to -inf)
 *   TILE_KERNEL, TILE_NAME   the cpu_tile_kernel to define and its name
 *
 * Layout (FlashAttention-2 with the roles of the lanes swapped for a CPU):
 * the lanes of every vector are *queries*. Q is packed transposed,
 * Qt[d][i], pre-scaled by scale*log2(e); the scores of a key tile are
 * St[j][i] = sum_d K[j][d] Qt[d][i], a broadcast of K times a vector of Qt,
 * so the row maximum and row sum of the softmax are lane-wise max/add down
 * the key axis (no horizontal reductions), and P.V is
 * Ot[d][i] += sum_j V[j][d] St[j][i], again a broadcast of V times a vector
 * of probabilities. Any head dim works without masking, because D and the
 * key count are only ever loop bounds of broadcasts; padded query lanes
 * compute harmless values that are never written back.
 *
 * Scratch (per thread, 64-byte aligned), in floats:
 *   Qt[D][TQ], Ot[D][TQ], St[TQ][TQ], Kp[TQ][D], Vp[TQ][D], m[TQ], l[TQ],
 * then D doubles for the rows tile_finish redoes exactly.
 * Kp and Vp are the key tile's K and V rows copied contiguous (a GEMM's
 * packing: TQ rows, read TQ times each, so the copy costs ~1/TQ of the
 * arithmetic) so that the micro-kernels see one fixed row stride.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu_tile.h"

#if DR > NR
#error "tile_gemm keeps NR rows of accumulators: DR must be <= NR"
#endif
#if TQ % (MV * VW) != 0
#error "TQ must be a multiple of MV * VW"
#endif

#define BW (MV * VW) /* queries per register block */
#define LNET_LN2 0.693147180559945309417232121458176568

#define ALWAYS_INLINE inline __attribute__((always_inline))

static size_t tile_scratch_floats(int64_t dim)
{
    /* 4 D TQ + TQ^2 + 2 TQ floats, then D doubles (2 D floats) for a row
     * redone exactly (tile_finish). */
    const size_t fixed = (size_t)TQ * TQ + 2 * (size_t)TQ;
    if (dim < 1 || (uint64_t)dim > (SIZE_MAX / sizeof(float) - fixed) / (4 * (size_t)TQ + 2))
        return 0;
    return (4 * (size_t)TQ + 2) * (size_t)dim + fixed;
}

/* The kernels' one product, C[n][lanes] (+)= sum_k A[k * lda + lanes]
 * B[n * bn + k * bk] (lanes in vectors, B broadcast), for nr <= NR rows
 * and one register block of lanes: with the strides constants (D is one
 * in the dispatch below) the offsets are immediates and the whole block
 * lives in registers. The forward's Q.K^T is A = Qt, B = Kp (rows: keys);
 * its P.V is A = St, B = Vp^T (rows: head dims); the backward's products
 * (cpu_bwd_template.h) are the same shape. */
static ALWAYS_INLINE void tile_micro(const int nr, const int acc_in, const int64_t kk,
                                     const float *restrict a, const int64_t lda,
                                     const float *restrict b, const int64_t bn, const int64_t bk,
                                     float *restrict c, const int64_t ldc)
{
    vf acc[NR][MV];
#pragma GCC unroll 32
    for (int n = 0; n < nr; n++)
#pragma GCC unroll 8
        for (int m = 0; m < MV; m++)
            acc[n][m] = acc_in ? vf_load(c + n * ldc + m * VW) : vf_zero();
    for (int64_t k = 0; k < kk; k++) {
        vf x[MV];
#pragma GCC unroll 8
        for (int m = 0; m < MV; m++)
            x[m] = vf_load(a + k * lda + m * VW);
#pragma GCC unroll 32
        for (int n = 0; n < nr; n++) {
            const vf y = vf_bcast(b + n * bn + k * bk);
#pragma GCC unroll 8
            for (int m = 0; m < MV; m++)
                acc[n][m] = vf_fma(x[m], y, acc[n][m]);
        }
    }
#pragma GCC unroll 32
    for (int n = 0; n < nr; n++)
#pragma GCC unroll 8
        for (int m = 0; m < MV; m++)
            vf_store(c + n * ldc + m * VW, acc[n][m]);
}

/* The product over `rows` rows in blocks of rb (NR or DR) and `lanes`
 * lanes (a multiple of BW): full blocks, then one remainder whose size the
 * switch makes a constant. */
static ALWAYS_INLINE void tile_gemm(const int rb, const int acc_in, int64_t rows, int64_t lanes,
                                    int64_t kk, const float *a, int64_t lda, const float *b,
                                    int64_t bn, int64_t bk, float *c, int64_t ldc)
{
    for (int64_t lb = 0; lb < lanes; lb += BW) {
        int64_t n = 0;
        for (; n + rb <= rows; n += rb)
            tile_micro(rb, acc_in, kk, a + lb, lda, b + n * bn, bn, bk, c + n * ldc + lb, ldc);
        switch (rows - n) {
#define TILE_REM(r)                                                                                \
    case r:                                                                                        \
        if (r < rb)                                                                                \
            tile_micro(r < NR ? r : 1, acc_in, kk, a + lb, lda, b + n * bn, bn, bk,                \
                       c + n * ldc + lb, ldc);                                                     \
        break;
            TILE_REM(1) TILE_REM(2) TILE_REM(3) TILE_REM(4) TILE_REM(5) TILE_REM(6) TILE_REM(7)
            TILE_REM(8) TILE_REM(9) TILE_REM(10) TILE_REM(11) TILE_REM(12) TILE_REM(13)
            TILE_REM(14) TILE_REM(15)
#undef TILE_REM
        default:
            break;
        }
    }
}

/* Online softmax of one query vector over the nk scores St[0..nk)[lanes]:
 * masks the causal diagonal (key j is hidden from lanes < j - diag_base
 * when diag_base is given), raises the running max m, rescales l and the
 * accumulator column only when some lane's max grew, and turns the scores
 * into probabilities in place. */
static ALWAYS_INLINE void softmax_vec(int64_t D, int64_t nk, int diag, int64_t diag_base,
                                      float *st, float *ot, float *mp, float *lp)
{
    vf mt = vf_set1(-INFINITY);
    if (diag) {
        for (int64_t j = 0; j < nk; j++) {
            vf s = vf_load(st + j * TQ);
            if (j > diag_base) {
                s = vf_mask_below(s, j - diag_base);
                vf_store(st + j * TQ, s);
            }
            mt = vf_max(mt, s);
        }
    } else {
        int64_t j = 0;
        vf mt2 = mt;
        for (; j + 2 <= nk; j += 2) {
            mt = vf_max(mt, vf_load(st + j * TQ));
            mt2 = vf_max(mt2, vf_load(st + (j + 1) * TQ));
        }
        if (j < nk)
            mt = vf_max(mt, vf_load(st + j * TQ));
        mt = vf_max(mt, mt2);
    }
    const vf mold = vf_load(mp);
    const vf mnew = vf_max(mold, mt);
    vf l = vf_load(lp);
    if (vf_any_gt(mnew, mold)) {
        /* exp2(-inf - finite) = 0 on a tile's first key tile: the zero
         * accumulator stays zero. */
        const vf alpha = vf_exp2(vf_sub(mold, mnew));
        l = vf_mul(l, alpha);
        for (int64_t d = 0; d < D; d++)
            vf_store(ot + d * TQ, vf_mul(vf_load(ot + d * TQ), alpha));
        vf_store(mp, mnew);
    }
    vf s0 = vf_zero(), s1 = vf_zero();
    int64_t j = 0;
    for (; j + 2 <= nk; j += 2) {
        const vf p0 = vf_exp2(vf_sub(vf_load(st + j * TQ), mnew));
        const vf p1 = vf_exp2(vf_sub(vf_load(st + (j + 1) * TQ), mnew));
        vf_store(st + j * TQ, p0);
        vf_store(st + (j + 1) * TQ, p1);
        s0 = vf_add(s0, p0);
        s1 = vf_add(s1, p1);
    }
    if (j < nk) {
        const vf p0 = vf_exp2(vf_sub(vf_load(st + j * TQ), mnew));
        vf_store(st + j * TQ, p0);
        s0 = vf_add(s0, p0);
    }
    vf_store(lp, vf_add(l, vf_add(s0, s1)));
}

/* Whether all n floats are finite, from their exponent bits: an OR
 * reduction the compiler vectorises, with no dependency chain. */
static ALWAYS_INLINE int floats_finite(const float *x, int64_t n)
{
    uint32_t bad = 0;
    for (int64_t d = 0; d < n; d++) {
        uint32_t u;
        memcpy(&u, x + d, sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return !bad;
}

/* Per lane (query row) of Ot, over its D accumulators: 0 where all are
 * finite, NaN where one is not (x * 0 is 0 for a finite x, NaN for an
 * infinity or NaN). The rows are Ot's lanes, so this is D vector steps per
 * VW rows, where a sum per row would read Ot with a stride of TQ floats. */
static ALWAYS_INLINE void ot_finite_lanes(int64_t D, const float *ot, int64_t npad, float *fin)
{
    const vf z = vf_zero();
    for (int64_t i = 0; i < npad; i += VW) {
        vf a = z, b = z;
        int64_t d = 0;
        for (; d + 2 <= D; d += 2) {
            a = vf_add(a, vf_mul(vf_load(ot + d * TQ + i), z));
            b = vf_add(b, vf_mul(vf_load(ot + (d + 1) * TQ + i), z));
        }
        if (d < D)
            a = vf_add(a, vf_mul(vf_load(ot + d * TQ + i), z));
        vf_store(fin + i, vf_add(a, b));
    }
}

/* Whether row i of the tile may be finished from its float arithmetic: the
 * running max, the sum and every accumulator finite (fin, from
 * ot_finite_lanes, is 0), and, when folding, a previous (out, lse) that the
 * fold cannot turn into something the reference's double fold would not
 * (lse NaN or +inf, or an out entry that is not finite while it still
 * counts). Anything else — a NaN or an infinity in Q, K or V, scores past
 * float range — leaves one of these non-finite, so the check costs O(D)
 * per row and nothing in the key loop. */
static int row_is_finite(const cpu_tile_job *job, float fin, double m, double l,
                         const float *orow, double prev)
{
    if (!(l > 0.0 && l < INFINITY) || !isfinite(m) || !(fin == 0.0f))
        return 0;
    if (job->init || prev == -INFINITY)
        return 1; /* no branch yet: the previous out is not read */
    if (!isfinite(prev))
        return 0;
    return floats_finite(orow, job->dim);
}

/* Row i of the tile again, with the reference kernel's own arithmetic
 * (cpu_exact_branch, in double): the keys it sees, then its fold. acc is
 * free scratch of D doubles. */
static void row_exact(const cpu_tile_job *job, const cpu_tile *t, int64_t i, float *orow,
                      float *lrow, double *acc)
{
    const int64_t D = job->dim;
    const int64_t q_sel = t->jq0 + i;
    const int64_t k_end = job->causal && q_sel + 1 < t->k_hi ? q_sel + 1 : t->k_hi;
    const float *qrow = t->q0 + (size_t)(i - t->w0) * job->sel_stride;
    double l;
    const double lse_i = cpu_exact_branch(qrow, t->k0, t->v0, t->kv_stride, k_end - t->k_lo,
                                          D, (double)job->scale, NULL, acc, &l);
    cpu_exact_fold(orow, lrow, acc, l, lse_i, D, job->init);
}

/* Writes (or folds) the tile's finished rows: o = Ot / l, lse = ln2 (m + log2 l).
 * The fold mirrors the reference kernel, in double for the per-row weights.
 * A row whose float arithmetic left float range is redone exactly instead
 * (row_is_finite), so that NaN lands where the reference puts it. The out
 * rows are worked on in `stage` (TQ rows of D floats), copied in and out
 * whole where they are apart: row copies keep many of the strided rows'
 * cache misses in flight, where the per-element fold waited on each. */
static void tile_finish(const cpu_tile_job *job, const cpu_tile *t, const float *ot,
                        const float *mp, const float *lp, int64_t npad, float *fin,
                        float *stage, double *acc)
{
    const int64_t D = job->dim;
    ot_finite_lanes(D, ot, npad, fin);
    const size_t ss = job->sel_stride;
    const int staged = ss != (size_t)D;
    if (staged && !job->init)
        for (int64_t i = t->w0; i < t->w1; i++)
            memcpy(stage + i * D, t->out0 + (size_t)(i - t->w0) * ss, (size_t)D * sizeof(float));
    for (int64_t i = t->w0; i < t->w1; i++) {
        float *orow = staged ? stage + i * D : t->out0 + (size_t)(i - t->w0) * ss;
        float *lrow = t->lse0 + (size_t)(i - t->w0) * (size_t)job->dilation;
        const double l = (double)lp[i];
        const double prev = job->init ? -INFINITY : (double)*lrow;
        if (!row_is_finite(job, fin[i], (double)mp[i], l, orow, prev)) {
            row_exact(job, t, i, orow, lrow, acc);
            continue;
        }
        const double lse_i = ((double)mp[i] + log2(l)) * LNET_LN2;
        double keep = 0.0, take = 1.0 / l;
        double lse_new = lse_i;
        if (!job->init) {
            const double mm = prev > lse_i ? prev : lse_i;
            const double a = exp(prev - mm), c = exp(lse_i - mm);
            const double den = a + c;
            keep = a / den;
            take = c / (den * l);
            lse_new = mm + log(den);
        }
        const float fk = (float)keep, ft = (float)take;
        if (keep > 0.0) {
            for (int64_t d = 0; d < D; d++)
                orow[d] = fk * orow[d] + ft * ot[d * TQ + i];
        } else {
            /* A row with no branch yet takes o_i alone, whatever out holds
             * (even NaN). */
            for (int64_t d = 0; d < D; d++)
                orow[d] = ft * ot[d * TQ + i];
        }
        *lrow = (float)lse_new;
    }
    if (staged)
        for (int64_t i = t->w0; i < t->w1; i++)
            memcpy(t->out0 + (size_t)(i - t->w0) * ss, stage + i * D, (size_t)D * sizeof(float));
}

/* Asks for the K and V rows of the key tile at kt0 (up to kend) to be
 * brought into L2 while the current one is computed, where they were not
 * packed contiguous: their rows are then kv_stride floats apart — r·H·D,
 * 2 KiB with 8 heads of 64 — which the hardware prefetchers follow
 * poorly. */
static ALWAYS_INLINE void prefetch_key_tile(const int64_t D, const cpu_tile *t, size_t ss,
                                            int64_t kt0, int64_t kend)
{
    const int64_t nk = kend - kt0 < TQ ? kend - kt0 : TQ;
    for (int64_t j = 0; j < nk; j++) {
        const size_t at = (size_t)(kt0 + j - t->k_lo) * ss;
        for (int64_t d = 0; d < D; d += 64 / (int64_t)sizeof(float)) {
            __builtin_prefetch(t->k0 + at + d, 0, 2);
            __builtin_prefetch(t->v0 + at + d, 0, 2);
        }
    }
}

static ALWAYS_INLINE void tile_body(const int64_t D, const cpu_tile_job *job, const cpu_tile *t,
                                    float *scratch)
{
    float *qt = scratch;
    float *ot = qt + (size_t)D * TQ;
    float *st = ot + (size_t)D * TQ;
    float *kp = st + (size_t)TQ * TQ;
    float *vp = kp + (size_t)TQ * D;
    float *mp = vp + (size_t)TQ * D;
    float *lp = mp + TQ;
    /* Only ever used as doubles (so no float store aliases it), 8-byte
     * aligned: every array before it is a multiple of TQ floats. */
    double *acc = (double *)(void *)(lp + TQ);

    const int64_t nq = t->nq;
    const int64_t nb = (nq + BW - 1) / BW; /* query register blocks */
    const int64_t npad = nb * BW;
    const size_t ss = job->sel_stride, kvs = t->kv_stride;

    /* Q transposed and pre-scaled. Lanes outside [w0, w1) are computed only
     * to keep the query tile aligned with the key tiles: they are zero
     * (finite scores), and never read from q, whose buffer may not hold
     * their rows (a query window). */
    /* The rows are first copied as they are into Kp (free until the key
     * loop): whole-row copies keep many of the strided rows' cache misses
     * in flight at once, where the transposing loop waited on each. */
    if (ss != (size_t)D)
        for (int64_t i = t->w0; i < nq; i++)
            memcpy(kp + i * D, t->q0 + (size_t)(i - t->w0) * ss, (size_t)D * sizeof(float));
    const float qscale = job->qscale; /* a local: qt's stores could alias job */
    for (int64_t i = t->w0; i < nq; i++) {
        const float *row = ss != (size_t)D ? kp + i * D : t->q0 + (i - t->w0) * D;
        for (int64_t d = 0; d < D; d++)
            qt[d * TQ + i] = row[d] * qscale;
    }
    for (int64_t d = 0; d < D; d++) {
        for (int64_t i = 0; i < t->w0; i++)
            qt[d * TQ + i] = 0.0f;
        for (int64_t i = nq; i < npad; i++)
            qt[d * TQ + i] = 0.0f;
        for (int64_t i = 0; i < npad; i += VW)
            vf_store(ot + d * TQ + i, vf_zero());
    }
    for (int64_t i = 0; i < npad; i += VW) {
        vf_store(mp + i, vf_set1(-INFINITY));
        vf_store(lp + i, vf_zero());
    }

    /* Causal: no key after the tile's last query; the key tiles are aligned
     * with the query tiles, so only the last one (kt0 == jq0) is diagonal.
     * They stay aligned when the keys start later (a K/V window: k_lo > 0):
     * the first key tile then starts at the multiple of TQ below k_lo, and
     * its first ka keys, outside the window, are neither copied nor scored. */
    const int64_t kend = job->causal ? (t->k_hi < t->jq0 + nq ? t->k_hi : t->jq0 + nq) : t->k_hi;
    for (int64_t kt0 = t->k_lo - t->k_lo % TQ; kt0 < kend; kt0 += TQ) {
        const int64_t nk = kend - kt0 < TQ ? kend - kt0 : TQ;
        const int64_t ka = t->k_lo > kt0 ? t->k_lo - kt0 : 0;
        const int diag = job->causal && kt0 == t->jq0;
        /* The key tile's rows from key ka on: read in place where they are
         * contiguous already (packed by the driver, or one head at r = 1),
         * else copied contiguous into Kp/Vp. */
        const float *kb, *vb;
        if (kvs == (size_t)D) {
            kb = t->k0 + (size_t)(kt0 + ka - t->k_lo) * (size_t)D;
            vb = t->v0 + (size_t)(kt0 + ka - t->k_lo) * (size_t)D;
        } else {
            for (int64_t j = ka; j < nk; j++) {
                const size_t at = (size_t)(kt0 + j - t->k_lo) * kvs;
                memcpy(kp + j * D, t->k0 + at, (size_t)D * sizeof(float));
                memcpy(vp + j * D, t->v0 + at, (size_t)D * sizeof(float));
            }
            prefetch_key_tile(D, t, kvs, kt0 + TQ, kend);
            kb = kp + ka * D;
            vb = vp + ka * D;
        }
        for (int64_t b = 0; b < nb; b++) {
            /* On the diagonal, keys after the block's last query are
             * hidden from all of it: skip them in every step. */
            int64_t nkb = nk;
            if (diag && nkb > (b + 1) * BW)
                nkb = (b + 1) * BW;
            if (nkb <= ka)
                continue; /* every key this block may see lies before the window */
            /* Keys [ka, nkb): the score rows start at ka, and the diagonal's
             * key index, counted from there, moves down by ka. Lanes left
             * with no key at all (causal, query < k_lo) are never written. */
            float *stb = st + b * BW + ka * TQ, *otb = ot + b * BW;
            tile_gemm(NR, 0, nkb - ka, BW, D, qt + b * BW, TQ, kb, D, 1, stb, TQ);
            for (int m = 0; m < MV; m++)
                softmax_vec(D, nkb - ka, diag, b * BW + m * VW - ka, stb + m * VW, otb + m * VW,
                            mp + b * BW + m * VW, lp + b * BW + m * VW);
            tile_gemm(DR, 1, D, BW, nkb - ka, stb, TQ, vb, 1, D, otb, TQ);
        }
    }
    /* The scores are spent: St holds the rows' finiteness for the fold. */
    tile_finish(job, t, ot, mp, lp, npad, st, kp, acc);
}

/* Head dims 64 and 128 with their own copy of the tile (cpu_tile.h). */
CPU_DIM_SPECIALISED(tile_run, tile_body, cpu_tile_job, cpu_tile)

const cpu_tile_kernel TILE_KERNEL = {
    .name = TILE_NAME,
    .tq = TQ,
    .align = 64,
    .scratch_floats = tile_scratch_floats,
    .run = tile_run,
};
