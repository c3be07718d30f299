/* cpu_bwd_template.h — the fast backward kernel's item (cpu_bwd.h), written
 * once over the vector vocabulary of cpu_tile_template.h and compiled once
 * per instruction set: cpu_tile_avx512.c, cpu_tile_avx2.c and
 * cpu_tile_generic.c include it after cpu_tile_template.h (whose VW, MV,
 * NR, TQ, BW, vf_* and ALWAYS_INLINE it uses), with BWD_KERNEL defined.
 *
 * FlashAttention-2's backward, with every product the forward's tile_gemm,
 * C[n][lanes] (+)= sum_k A[k][lanes] B[n][k] (lanes in vectors, B
 * broadcast), so that no step needs a horizontal reduction:
 *   S[i][j]  = Q_i . K_j        lanes: keys  (A = K^T, B = Q)
 *   dP[i][j] = dO_i . V_j       lanes: keys  (A = V^T, B = dO)
 *   P = exp2(qscale S - LSE log2 e), dS = P (dP - delta_i), both 0 past
 *   the keys a row sees (tile end, causal diagonal)
 *   dV[j][d] += sum_i P[i][j] dO[i][d]   lanes: head dim (A = dO, B = P^T)
 *   dK[j][d] += sum_i dS[i][j] Q[i][d]   lanes: head dim (A = Q, B = dS^T)
 *   dQ[i][d] += sum_j dS[i][j] K[j][d]   lanes: head dim (A = K, B = dS)
 * The head dim is padded to Dp, a multiple of BW, in the packed copies; the
 * padding lanes are computed and never written back.
 *
 * An item runs its keys in blocks of KB rows, packed once per block (K^T
 * and V^T panels of TQ keys, K rows), with the block's dK and dV
 * accumulated in scratch over all of the item's queries and added to dk
 * and dv once; for each block it runs its queries in chunks of QC rows
 * (packed once per chunk and block: Q, dO, LSE, delta and the chunk's dQ
 * accumulator), every key tile of the block against the chunk's query
 * tiles. Scratch, in floats: K^T[KB/TQ][D][TQ], V^T[KB/TQ][D][TQ],
 * K[KB][Dp], dK[KB][Dp], dV[KB][Dp], S[TQ][TQ], dS[TQ][TQ], Q[QC][Dp],
 * dO[QC][Dp], dQ[QC][Dp], L[QC], delta[QC].
 */
#include "cpu_bwd.h"

#ifndef BW
#error "include cpu_tile_template.h first"
#endif

/* Query rows packed at a time, and key rows packed at a time. Packing
 * copies rows r·H·D floats apart, and the flushes add into such rows: both
 * wait on memory (perf, H = 8: a quarter of the item when every chunk of
 * 256 queries packed and flushed every key tile again). A key block is
 * packed and flushed once for all the queries that see it, and a query
 * chunk once per key block: with segments of up to KB selected rows, once
 * per item. KB rows of K^T, V^T, K, dK, dV are 2.5 MiB at D = 64 (L3);
 * the chunk's Q, dO, dQ 768 KiB (L2). */
#define QC (16 * TQ)
#define KB (32 * TQ)
#define BWD_LOG2E 1.442695040888963407359924681001892137

static size_t bwd_scratch_floats(int64_t dim)
{
    if (dim < 1 || (uint64_t)dim > SIZE_MAX / sizeof(float) / (8 * (size_t)(QC + KB)))
        return 0;
    const size_t dp = ((size_t)dim + BW - 1) / BW * BW;
    return 2 * (size_t)dim * KB + 3 * (size_t)KB * dp + 2 * (size_t)TQ * TQ +
           3 * (size_t)QC * dp + 2 * (size_t)QC;
}

/* S (scores) becomes P and dP becomes dS, row by row, for nq rows over nkp
 * lanes; lanes from lim(i) on (past the tile's nk keys, or after the
 * query under causal masking: key index kt + j > query index q0 + i) are 0. */
static ALWAYS_INLINE void bwd_probs(const cpu_bwd_job *job, int64_t nq, int64_t nk, int64_t nkp,
                                    int64_t q0, int64_t kt, const float *l2, const float *dl,
                                    float *s, float *ds)
{
    const vf qs = vf_set1(job->qscale);
    for (int64_t i = 0; i < nq; i++) {
        int64_t lim = nk;
        if (job->causal && q0 + i - kt + 1 < lim)
            lim = q0 + i - kt + 1 < 0 ? 0 : q0 + i - kt + 1;
        float *srow = s + i * TQ, *drow = ds + i * TQ;
        const vf nl = vf_set1(-l2[i]), dv = vf_set1(dl[i]);
        for (int64_t jb = 0; jb < nkp; jb += VW) {
            if (jb >= lim) {
                vf_store(srow + jb, vf_zero());
                vf_store(drow + jb, vf_zero());
                continue;
            }
            const vf p = vf_exp2(vf_fma(vf_load(srow + jb), qs, nl));
            vf_store(drow + jb, vf_mul(p, vf_sub(vf_load(drow + jb), dv)));
            vf_store(srow + jb, p);
            for (int64_t x = lim - jb; x < VW; x++)
                srow[jb + x] = drow[jb + x] = 0.0f;
        }
    }
}

/* How many rows ahead the strided copies ask for rows: their stride
 * (r·H·D floats) defeats the hardware prefetchers. */
#define BWD_AHEAD 8

/* Copies n rows (`ss` floats apart) of D floats into rows of dp floats,
 * zero-padded. */
static ALWAYS_INLINE void bwd_pack_rows(int64_t D, int64_t dp, int64_t n, const float *src,
                                        size_t ss, float *dst)
{
    for (int64_t i = 0; i < n; i++) {
        const float *row = src + (size_t)i * ss;
        if (ss != (size_t)D && i + BWD_AHEAD < n)
            for (int64_t d = 0; d < D; d += 64 / (int64_t)sizeof(float))
                __builtin_prefetch(row + BWD_AHEAD * ss + (size_t)d, 0, 0);
        for (int64_t d = 0; d < D; d++)
            dst[i * dp + d] = row[d];
        for (int64_t d = D; d < dp; d++)
            dst[i * dp + d] = 0.0f;
    }
}

/* rows[i][d] += f * acc[i * dp + d] for n rows. */
static ALWAYS_INLINE void bwd_flush(int64_t D, int64_t dp, int64_t n, const float *acc, float f,
                                    float *dst, size_t ss)
{
    for (int64_t i = 0; i < n; i++) {
        float *row = dst + (size_t)i * ss;
        if (ss != (size_t)D && i + BWD_AHEAD < n)
            for (int64_t d = 0; d < D; d += 64 / (int64_t)sizeof(float))
                __builtin_prefetch(row + BWD_AHEAD * ss + (size_t)d, 1, 0);
        for (int64_t d = 0; d < D; d++)
            row[d] += f * acc[i * dp + d];
    }
}

/* Packs the key block [k0, k0 + n) of the item: K rows into kp, then per
 * tile of TQ keys the K^T and V^T panels (zero past the block's keys), V
 * staged through dva, which is then cleared with dka for the block's
 * gradients. */
static ALWAYS_INLINE void bwd_pack_keys(const int64_t D, const int64_t Dp, const cpu_bwd_item *it,
                                        size_t ss, int64_t k0, int64_t n, float *kt_, float *vt,
                                        float *kp, float *dka, float *dva)
{
    const size_t kat = (size_t)(k0 - it->k_lo) * ss;
    bwd_pack_rows(D, Dp, n, it->k0 + kat, ss, kp);
    bwd_pack_rows(D, Dp, n, it->v0 + kat, ss, dva);
    for (int64_t t0 = 0; t0 < n; t0 += TQ) {
        const int64_t nk = n - t0 < TQ ? n - t0 : TQ;
        const int64_t nkp = (nk + BW - 1) / BW * BW;
        float *ktp = kt_ + (t0 / TQ) * D * TQ, *vtp = vt + (t0 / TQ) * D * TQ;
        for (int64_t d = 0; d < D; d++) {
            for (int64_t j = 0; j < nk; j++) {
                ktp[d * TQ + j] = kp[(t0 + j) * Dp + d];
                vtp[d * TQ + j] = dva[(t0 + j) * Dp + d];
            }
            for (int64_t j = nk; j < nkp; j++)
                ktp[d * TQ + j] = vtp[d * TQ + j] = 0.0f;
        }
    }
    memset(dka, 0, (size_t)(n * Dp) * sizeof(float));
    memset(dva, 0, (size_t)(n * Dp) * sizeof(float));
}

static ALWAYS_INLINE void bwd_body(const int64_t D, const cpu_bwd_job *job,
                                   const cpu_bwd_item *it, float *scratch)
{
    const int64_t Dp = (D + BW - 1) / BW * BW;
    float *kt_ = scratch, *vt = kt_ + D * KB, *kp = vt + D * KB;
    float *dka = kp + KB * Dp, *dva = dka + KB * Dp;
    float *s = dva + KB * Dp, *ds = s + TQ * TQ;
    float *qp = ds + TQ * TQ, *dop = qp + QC * Dp, *dqa = dop + QC * Dp;
    float *l2 = dqa + QC * Dp, *dl = l2 + QC;
    const size_t ss = job->sel_stride;
    const int dq_on = (it->flags & CPU_BWD_DQ) != 0, dkv_on = (it->flags & CPU_BWD_DKV) != 0;

    for (int64_t b0 = it->k_lo; b0 < it->k_hi; b0 += KB) {
        const int64_t bn = it->k_hi - b0 < KB ? it->k_hi - b0 : KB;
        /* Under causal masking no query before the block's first key sees
         * any of it. */
        const int64_t q_lo = job->causal && it->j_lo < b0 ? b0 : it->j_lo;
        if (q_lo >= it->j_hi)
            break;
        bwd_pack_keys(D, Dp, it, ss, b0, bn, kt_, vt, kp, dka, dva);

        for (int64_t c0 = q_lo; c0 < it->j_hi; c0 += QC) {
            const int64_t cn = it->j_hi - c0 < QC ? it->j_hi - c0 : QC;
            int64_t kend = b0 + bn;
            if (job->causal && kend > c0 + cn)
                kend = c0 + cn; /* no key after the chunk's last query */
            const size_t qat = (size_t)(c0 - it->j_lo) * ss;
            bwd_pack_rows(D, Dp, cn, it->q0 + qat, ss, qp);
            bwd_pack_rows(D, Dp, cn, it->do0 + qat, ss, dop);
            for (int64_t i = 0; i < cn; i++) {
                const size_t at = (size_t)(c0 - it->j_lo + i) * (size_t)job->dilation;
                l2[i] = (float)((double)it->lse0[at] * BWD_LOG2E);
                dl[i] = it->delta0[at];
            }
            if (dq_on)
                memset(dqa, 0, (size_t)(cn * Dp) * sizeof(float));

            for (int64_t kt = b0; kt < kend; kt += TQ) {
                const int64_t nk = kend - kt < TQ ? kend - kt : TQ;
                const int64_t nkp = (nk + BW - 1) / BW * BW;
                const int64_t kb = kt - b0; /* the tile's first key in the block */
                const float *ktp = kt_ + (kb / TQ) * D * TQ, *vtp = vt + (kb / TQ) * D * TQ;
                const float *kpt = kp + kb * Dp;
                float *dkt = dka + kb * Dp, *dvt = dva + kb * Dp;
                for (int64_t qt = 0; qt < cn; qt += TQ) {
                    const int64_t nq = cn - qt < TQ ? cn - qt : TQ;
                    if (job->causal && c0 + qt + nq - 1 < kt)
                        continue; /* every query of the tile before every key */
                    tile_gemm(NR, 0, nq, nkp, D, ktp, TQ, qp + qt * Dp, Dp, 1, s, TQ);
                    tile_gemm(NR, 0, nq, nkp, D, vtp, TQ, dop + qt * Dp, Dp, 1, ds, TQ);
                    bwd_probs(job, nq, nk, nkp, c0 + qt, kt, l2 + qt, dl + qt, s, ds);
                    if (dkv_on) {
                        tile_gemm(NR, 1, nk, Dp, nq, dop + qt * Dp, Dp, s, 1, TQ, dvt, Dp);
                        tile_gemm(NR, 1, nk, Dp, nq, qp + qt * Dp, Dp, ds, 1, TQ, dkt, Dp);
                    }
                    if (dq_on)
                        tile_gemm(NR, 1, nq, Dp, nk, kpt, Dp, ds, TQ, 1, dqa + qt * Dp, Dp);
                }
            }
            if (dq_on)
                bwd_flush(D, Dp, cn, dqa, job->scale, it->dq0 + qat, ss);
        }
        if (dkv_on) {
            const size_t kat = (size_t)(b0 - it->k_lo) * ss;
            bwd_flush(D, Dp, bn, dka, job->scale, it->dk0 + kat, ss);
            bwd_flush(D, Dp, bn, dva, 1.0f, it->dv0 + kat, ss);
        }
    }
}

/* Head dims 64 and 128 with their own copy (cpu_tile.h). */
CPU_DIM_SPECIALISED(bwd_run, bwd_body, cpu_bwd_job, cpu_bwd_item)

const cpu_bwd_kernel BWD_KERNEL = {
    .name = TILE_NAME,
    .tq = TQ,
    .scratch_floats = bwd_scratch_floats,
    .run = bwd_run,
};
