/* dilated_attention_fpga.cl — fused dilated segment attention forward for
 * FPGA compilers (Intel's FPGA SDK for OpenCL / oneAPI FPGA flow, and its
 * emulator), the same job as kernels/dilated_attention.cl computes for GPUs
 * and CPUs (the job contract of longnet-plugin.h). It is built after
 * kernels/dilated_geometry.cl (the segment geometry both share): the host
 * passes both sources; for `aoc` the two files are concatenated
 * (backends/fpga/README.md).
 *
 * The fast FPGA style is a deep pipeline, not many work-items: three
 * single work-item kernels (max_global_work_dim(0)), launched together on
 * their own queues, connected by channels (cl_intel_channels):
 *
 *   reader  -> lnet_q_ch, lnet_kv_ch ->  compute  -> lnet_o_ch ->  writer
 *   (global                              (on-chip                  (folds into
 *    memory)                              tiles)                    out, lse)
 *
 * For every (batch, head, segment) of the job and every block of TILE_Q
 * selected query rows inside the job's row range, the reader streams the
 * block's query rows, then the segment's selected K and V rows (a row a
 * channel transfer) — row
 * first + j*r, so consecutive rows are r*H*D floats apart: the dilation
 * stride — TILE_K rows a tile. The compute kernel keeps the query block, its
 * accumulators and one K/V tile in on-chip memory (sizes fixed at compile
 * time by the macros), scores a tile with a HEAD_DIM-wide dot product per
 * key (unrolled: HEAD_DIM multipliers) and updates the online softmax
 * (FlashAttention-2 style, base 2, as the GPU kernel); at the block's end it
 * sends each row's branch (o_i, lse_i). The writer folds the branch into the
 * running (out, lse) by the rule of doc/ARCHITECTURE.md, "The operator"
 * (init = 1: writes over them). The three walk the same loop nest, computed
 * from the same arguments by the same helpers, so every value sent is
 * received.
 *
 * Row windows as the other kernels: rows are absolute (segments, selection,
 * causality), only addresses subtract the window's first row; a query
 * scores only the selected keys inside the K/V window, and a row left with
 * no key is left untouched.
 *
 * Build macros (each binary serves exactly one configuration):
 *   HEAD_DIM  D, any value >= 1
 *   TILE_Q    query rows held on chip per block
 *   TILE_K    key (and value) rows per on-chip tile
 * The kernels' names carry them (lnet_fpga_reader_d64_q16_k16, ...), so a
 * binary built for other macros has none of the kernels the host asks for.
 */
#ifndef HEAD_DIM
#error "build with -D HEAD_DIM=<head dimension>"
#endif
#ifndef TILE_Q
#error "build with -D TILE_Q=<query rows per block>"
#endif
#ifndef TILE_K
#error "build with -D TILE_K=<key rows per tile>"
#endif

#pragma OPENCL EXTENSION cl_intel_channels : enable

#define LNET_LOG2E 1.4426950408889634f
#define LNET_LN2 0.6931471805599453f

#define LNET_CAT(a, b, c, d, e, f, g) a##b##c##d##e##f##g
#define LNET_XCAT(a, b, c, d, e, f, g) LNET_CAT(a, b, c, d, e, f, g)
#define LNET_KNAME(x) LNET_XCAT(x, _d, HEAD_DIM, _q, TILE_Q, _k, TILE_K)

/* The channels carry whole rows, one a transfer: on a board a row per
 * cycle (a datapath D floats wide), in the emulator D times fewer
 * synchronisations than a float at a time. */
typedef struct {
    float x[HEAD_DIM];
} lnet_qrow;
typedef struct {
    float k[HEAD_DIM], v[HEAD_DIM];
} lnet_kvrow;
typedef struct {
    float o[HEAD_DIM];
    float lse;
} lnet_orow;

/* Depths: a query block, a K/V tile, a block's branches in flight. */
channel lnet_qrow lnet_q_ch __attribute__((depth(TILE_Q)));
channel lnet_kvrow lnet_kv_ch __attribute__((depth(TILE_K)));
channel lnet_orow lnet_o_ch __attribute__((depth(TILE_Q)));

/* One block of query rows and the keys it needs: selected query rows
 * [j0, j0 + nq) of the segment and key rows [k_lo, k_end). */
typedef struct {
    long j0;
    int nq;
    long k_end;
} lnet_block;

inline lnet_block lnet_block_at(const lnet_seg *g, long j0, int causal)
{
    lnet_block blk;
    blk.j0 = j0;
    blk.nq = g->j_hi - j0 < TILE_Q ? (int)(g->j_hi - j0) : TILE_Q;
    blk.k_end = g->k_hi;
    /* Causal: no key after the block's last query row. */
    if (causal && blk.k_end > j0 + blk.nq)
        blk.k_end = j0 + blk.nq;
    return blk;
}

/* Element (b, first, h, 0) of a windowed buffer of `rows` rows from `base`
 * (possibly before its start: only selected rows inside are addressed). */
inline long lnet_row0(int b, long rows, long first, long base, int H, int h)
{
    return (((long)b * rows + (first - base)) * H + h) * HEAD_DIM;
}

#define LNET_JOB_ARGS                                                                         \
    const long N, const int H, const long w, const long r, const int grouped,               \
        const int causal, const long row_begin, const long row_end, const long q_base,       \
        const long q_rows, const long kv_base, const long kv_rows, const long s_first,      \
        const long s_last, const int n_bh

/* The loop nest the three kernels share, (batch x head, segment, block of
 * query rows): opened by LNET_BLOCKS_BEGIN, closed by LNET_BLOCKS_END
 * (a pragma cannot sit inside a macro's argument). Inside: b, h, the
 * segment g, the dilation stride and the block blk. */
#define LNET_BLOCKS_BEGIN                                                                     \
    for (int bh = 0; bh < n_bh; bh++) {                                                      \
        const int b = bh / H, h = bh % H;                                                    \
        const int o = lnet_head_offset(grouped, h, H, r);                                    \
        for (long s = s_first; s <= s_last; s++) {                                           \
            const lnet_seg g = lnet_segment(s, N, w, r, o, row_begin, row_end, kv_base,     \
                                            kv_rows);                                        \
            const long stride = r * (long)H * HEAD_DIM;                                      \
            for (long j0 = g.j_lo; j0 < g.j_hi; j0 += TILE_Q) {                              \
                const lnet_block blk = lnet_block_at(&g, j0, causal);
#define LNET_BLOCKS_END                                                                       \
            }                                                                                \
        }                                                                                    \
    }

__kernel __attribute__((max_global_work_dim(0)))
void LNET_KNAME(lnet_fpga_reader)(__global const float *restrict q,
                                  __global const float *restrict k,
                                  __global const float *restrict v, LNET_JOB_ARGS)
{
    LNET_BLOCKS_BEGIN
        const long qb = lnet_row0(b, q_rows, g.first, q_base, H, h);
        const long kb = lnet_row0(b, kv_rows, g.first, kv_base, H, h);
        for (int i = 0; i < blk.nq; i++) {
            lnet_qrow row;
#pragma unroll
            for (int d = 0; d < HEAD_DIM; d++)
                row.x[d] = q[qb + (blk.j0 + i) * stride + d];
            write_channel_intel(lnet_q_ch, row);
        }
        for (long j = g.k_lo; j < blk.k_end; j++) {
            lnet_kvrow row;
#pragma unroll
            for (int d = 0; d < HEAD_DIM; d++) {
                row.k[d] = k[kb + j * stride + d];
                row.v[d] = v[kb + j * stride + d];
            }
            write_channel_intel(lnet_kv_ch, row);
        }
    LNET_BLOCKS_END
}

__kernel __attribute__((max_global_work_dim(0)))
void LNET_KNAME(lnet_fpga_compute)(const float scale, LNET_JOB_ARGS)
{
    /* On-chip memory: the query block, its accumulators, one K/V tile. */
    float qs[TILE_Q][HEAD_DIM], acc[TILE_Q][HEAD_DIM];
    float ks[TILE_K][HEAD_DIM], vs[TILE_K][HEAD_DIM];
    float m[TILE_Q], l[TILE_Q];
    const float qscale = scale * LNET_LOG2E;

    LNET_BLOCKS_BEGIN
        for (int i = 0; i < blk.nq; i++) {
            const lnet_qrow row = read_channel_intel(lnet_q_ch);
#pragma unroll
            for (int d = 0; d < HEAD_DIM; d++) {
                qs[i][d] = row.x[d] * qscale;
                acc[i][d] = 0.0f;
            }
            m[i] = -INFINITY;
            l[i] = 0.0f;
        }
        for (long kt = g.k_lo; kt < blk.k_end; kt += TILE_K) {
            const int nk = blk.k_end - kt < TILE_K ? (int)(blk.k_end - kt) : TILE_K;
            for (int kk = 0; kk < nk; kk++) {
                const lnet_kvrow row = read_channel_intel(lnet_kv_ch);
#pragma unroll
                for (int d = 0; d < HEAD_DIM; d++) {
                    ks[kk][d] = row.k[d];
                    vs[kk][d] = row.v[d];
                }
            }
            for (int i = 0; i < blk.nq; i++) {
                const long jq = blk.j0 + i;
                /* Keys kt + kk valid for this row: below k_end and (causal)
                 * not after the row itself; none in this tile leaves the
                 * row's state as it was. */
                const long lim = causal && jq + 1 < blk.k_end ? jq + 1 : blk.k_end;
                const int nv = lim - kt >= nk ? nk : (lim > kt ? (int)(lim - kt) : 0);
                if (nv == 0)
                    continue;
                float sc[TILE_K];
                float tile_max = -INFINITY;
                for (int kk = 0; kk < TILE_K; kk++) {
                    /* The D-wide dot product: one multiplier per d. */
                    float dot = 0.0f;
#pragma unroll
                    for (int d = 0; d < HEAD_DIM; d++)
                        dot = fma(qs[i][d], ks[kk][d], dot);
                    sc[kk] = kk < nv ? dot : -INFINITY;
                    tile_max = fmax(tile_max, sc[kk]);
                }
                /* As the GPU kernel: fmax ignores NaN; while the maximum is
                 * -inf the tile subtracts 0, so that p is 0 for -inf and
                 * NaN for NaN rather than the NaN of -inf - -inf. */
                const float m_new = fmax(m[i], tile_max);
                const float m_use = m_new == -INFINITY ? 0.0f : m_new;
                const float alpha = exp2(m[i] - m_use);
                float li = l[i] * alpha;
#pragma unroll
                for (int d = 0; d < HEAD_DIM; d++)
                    acc[i][d] *= alpha;
                for (int kk = 0; kk < nv; kk++) {
                    const float p = exp2(sc[kk] - m_use);
                    li += p;
#pragma unroll
                    for (int d = 0; d < HEAD_DIM; d++)
                        acc[i][d] = fma(p, vs[kk][d], acc[i][d]);
                }
                l[i] = li;
                m[i] = m_new;
            }
        }
        for (int i = 0; i < blk.nq; i++) {
            /* Every score -inf or NaN: NaN, as the reference kernel's
             * softmax gives. A row with no key sends values the writer
             * drops. */
            const float li = m[i] == -INFINITY ? NAN : l[i];
            const float inv_l = 1.0f / li;
            lnet_orow row;
#pragma unroll
            for (int d = 0; d < HEAD_DIM; d++)
                row.o[d] = acc[i][d] * inv_l;
            row.lse = (m[i] + log2(li)) * LNET_LN2;
            write_channel_intel(lnet_o_ch, row);
        }
    LNET_BLOCKS_END
}

__kernel __attribute__((max_global_work_dim(0)))
void LNET_KNAME(lnet_fpga_writer)(__global float *restrict out, __global float *restrict lse,
                                  const int init, LNET_JOB_ARGS)
{
    LNET_BLOCKS_BEGIN
        const long ob = lnet_row0(b, q_rows, g.first, q_base, H, h);
        for (int i = 0; i < blk.nq; i++) {
            const lnet_orow row = read_channel_intel(lnet_o_ch);
            const float lse_i = row.lse;
            const long jq = blk.j0 + i;
            /* A row with no key in the window (possible only with a
             * window) stays as it was. */
            if (!lnet_has_key(jq, g.k_lo, g.k_hi, causal))
                continue;
            __global float *orow = out + ob + jq * stride;
            __global float *lrow = lse + ((long)b * H + h) * q_rows + (g.first + jq * r - q_base);
            if (init) {
                for (int d = 0; d < HEAD_DIM; d++)
                    orow[d] = row.o[d];
                *lrow = lse_i;
                continue;
            }
            /* The fold of doc/ARCHITECTURE.md: a row with no branch yet
             * (lse = -inf) takes o_i alone, whatever out holds. */
            const float prev = *lrow;
            const float mm = fmax(prev, lse_i);
            const float a = exp(prev - mm), e = exp(lse_i - mm);
            const float inv_den = 1.0f / (a + e);
            for (int d = 0; d < HEAD_DIM; d++) {
                const float prev_o = a > 0.0f ? a * orow[d] : 0.0f;
                orow[d] = (prev_o + e * row.o[d]) * inv_den;
            }
            *lrow = mm + log(a + e);
        }
    LNET_BLOCKS_END
}
