/* dilated_attention.cl — fused dilated segment attention forward (DESIGN §1,
 * the job contract of longnet-plugin.h), shared by the OpenCL and FPGA
 * backends.
 *
 * A work-group takes TILE_Q consecutive selected query rows of one
 * (batch, head, segment), one row per work-item, and walks the segment's
 * selected key rows TILE_K at a time: the key and value rows of a tile are
 * staged in local memory by the whole group, then every work-item scores its
 * row against them and updates its running maximum, denominator and output
 * (online softmax, FlashAttention-2 style, in base 2: scores are scaled by
 * log2(e) once, in the query). Dilated rows are read in place: selected row
 * j of the segment is row first + j*r, so consecutive selected rows are
 * r*H*D floats apart. Causal: key tiles past the group's last query are
 * never loaded, and keys past a row's own index are masked.
 *
 * The branch result (o_i, lse_i) is folded into the running (out, lse) — or
 * written over it with init = 1 — by the rule of longnet-plugin.h.
 *
 * Build options (the host specialises every program, so loops over D and
 * over a tile have constant trip counts and unroll):
 *   HEAD_DIM  D, any value >= 1
 *   TILE_Q    work-group size: query rows per group
 *   TILE_K    key rows per local-memory tile
 */
#ifndef HEAD_DIM
#error "build with -D HEAD_DIM=<head dimension>"
#endif
#ifndef TILE_Q
#error "build with -D TILE_Q=<query rows per work-group>"
#endif
#ifndef TILE_K
#error "build with -D TILE_K=<key rows per tile>"
#endif

#define LNET_LOG2E 1.4426950408889634f

/* Rows are handled LNET_VW floats at a time with OpenCL vector types, so
 * that a device compiler (PoCL on CPUs in particular, which does not
 * reassociate a float dot product on its own) emits SIMD arithmetic. */
#if HEAD_DIM % 16 == 0
#define LNET_VW 16
#define lnet_vec float16
#define lnet_vload vload16
#define lnet_vstore vstore16
inline float lnet_hsum(float16 x)
{
    float8 a = x.lo + x.hi;
    float4 b = a.lo + a.hi;
    float2 c = b.lo + b.hi;
    return c.x + c.y;
}
#elif HEAD_DIM % 8 == 0
#define LNET_VW 8
#define lnet_vec float8
#define lnet_vload vload8
#define lnet_vstore vstore8
inline float lnet_hsum(float8 x)
{
    float4 b = x.lo + x.hi;
    float2 c = b.lo + b.hi;
    return c.x + c.y;
}
#elif HEAD_DIM % 4 == 0
#define LNET_VW 4
#define lnet_vec float4
#define lnet_vload vload4
#define lnet_vstore vstore4
inline float lnet_hsum(float4 x)
{
    float2 c = x.lo + x.hi;
    return c.x + c.y;
}
#else
#define LNET_VW 1
#define lnet_vec float
#define lnet_vload(i, p) ((p)[i])
#define lnet_vstore(x, i, p) ((p)[i] = (x))
#define lnet_hsum(x) (x)
#endif
#define LNET_NV (HEAD_DIM / LNET_VW)
#define LNET_LN2 0.6931471805599453f

/* The segment geometry every kernel of a job shares. */
typedef struct {
    long first;   /* row of selected index 0 */
    long n_sel;   /* selected rows in the segment */
    long j_lo;    /* selected rows [j_lo, j_hi) are in the job's row range */
    long j_hi;
} lnet_seg;

inline long lnet_ceil_div(long a, long b)
{
    return a / b + (a % b != 0);
}

inline int lnet_head_offset(int grouped, int h, int heads, long r)
{
    if (grouped)
        return (int)(h / ((heads + r - 1) / r));
    return (int)(h % r);
}

inline lnet_seg lnet_segment(long s, long N, long w, long r, int o, long row_begin, long row_end)
{
    lnet_seg g;
    const long start = s * w;
    /* min(start + w, N) without forming start + w, which could overflow. */
    const long end = (w > N - start) ? N : start + w;
    g.first = start + o;
    g.n_sel = g.first < end ? lnet_ceil_div(end - g.first, r) : 0;
    g.j_lo = row_begin > g.first ? lnet_ceil_div(row_begin - g.first, r) : 0;
    g.j_hi = row_end > g.first ? lnet_ceil_div(row_end - g.first, r) : 0;
    if (g.j_hi > g.n_sel)
        g.j_hi = g.n_sel;
    return g;
}

/* Folds the branch (o_i = acc / l, lse_i) into the running (out, lse) of one
 * row, or overwrites them (init). A row with no branch yet (lse = -inf)
 * takes o_i alone, whatever out holds. */
inline void lnet_fold_row(__global float *orow, __global float *lrow, const lnet_vec *acc,
                          float l, float lse_i, int init)
{
    const float inv_l = 1.0f / l;
    if (init) {
        for (int c = 0; c < LNET_NV; c++)
            lnet_vstore(acc[c] * inv_l, c, orow);
        *lrow = lse_i;
        return;
    }
    const float prev = *lrow;
    const float mm = fmax(prev, lse_i);
    const float a = exp(prev - mm), e = exp(lse_i - mm);
    const float inv_den = 1.0f / (a + e);
    for (int c = 0; c < LNET_NV; c++) {
        const lnet_vec prev_o = a > 0.0f ? a * lnet_vload(c, orow) : (lnet_vec)0.0f;
        lnet_vstore((prev_o + e * acc[c] * inv_l) * inv_den, c, orow);
    }
    *lrow = mm + log(a + e);
}

/* Global size: (q_tiles * TILE_Q, segments, batch * heads); local (TILE_Q, 1, 1).
 * Group (t, s, i) takes selected query rows [t*TILE_Q, (t+1)*TILE_Q) of
 * segment s_first + s of batch bh / H, head bh % H, where bh = bh0 + i (the
 * host splits large grids into launches of at most 65535 groups a side). */
__kernel __attribute__((reqd_work_group_size(TILE_Q, 1, 1)))
void lnet_dilated_fwd(__global const float *restrict q, __global const float *restrict k,
                      __global const float *restrict v, __global float *restrict out,
                      __global float *restrict lse, const long N, const int H, const long w,
                      const long r, const int grouped, const int causal, const int init,
                      const float scale, const long row_begin, const long row_end,
                      const long s_first, const int bh0)
{
    __local float ks[TILE_K * HEAD_DIM];
    __local float vs[TILE_K * HEAD_DIM];

    const int lid = (int)get_local_id(0);
    const long tile_j0 = (long)get_group_id(0) * TILE_Q;
    const long s = s_first + (long)get_group_id(1);
    const int bh = bh0 + (int)get_group_id(2);
    const int b = bh / H, h = bh % H;
    const int o = lnet_head_offset(grouped, h, H, r);
    const lnet_seg g = lnet_segment(s, N, w, r, o, row_begin, row_end);

    /* Uniform over the group (no barrier has been reached yet): a group
     * with no query row of the job's range leaves at once. */
    if (tile_j0 >= g.j_hi || tile_j0 + TILE_Q <= g.j_lo)
        return;

    const long jq = tile_j0 + lid;
    const int active = jq >= g.j_lo && jq < g.j_hi;
    const long row_stride = (long)H * HEAD_DIM;
    const long sel_stride = r * row_stride;
    /* Element (b, first, h, 0): selected row j is at base + j * sel_stride. */
    const long base = (((long)b * N + g.first) * H + h) * HEAD_DIM;

    lnet_vec qr[LNET_NV], acc[LNET_NV];
    const float qscale = scale * LNET_LOG2E;
    for (int c = 0; c < LNET_NV; c++) {
        qr[c] = active ? lnet_vload(c, q + base + jq * sel_stride) * qscale : (lnet_vec)0.0f;
        acc[c] = (lnet_vec)0.0f;
    }
    float m = -INFINITY, l = 0.0f;

    /* Causal: the group's last query row bounds the keys any row needs. */
    long last_q = tile_j0 + TILE_Q;
    if (last_q > g.j_hi)
        last_q = g.j_hi;
    const long n_keys = causal ? last_q : g.n_sel;

    for (long kt = 0; kt < n_keys; kt += TILE_K) {
        for (int idx = lid; idx < TILE_K * HEAD_DIM; idx += TILE_Q) {
            const int kk = idx / HEAD_DIM, d = idx - kk * HEAD_DIM;
            const long jk = kt + kk;
            const long at = base + jk * sel_stride + d;
            ks[idx] = jk < n_keys ? k[at] : 0.0f;
            vs[idx] = jk < n_keys ? v[at] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        if (active) {
            /* Keys kt + kk valid for this row: below n_keys and (causal)
             * not after the row itself. */
            long lim = causal ? jq + 1 : n_keys;
            if (lim > n_keys)
                lim = n_keys;
            const int nv = lim - kt >= TILE_K ? TILE_K : (int)(lim - kt);
            float sc[TILE_K];
            float tile_max = -INFINITY;
            for (int kk = 0; kk < TILE_K; kk++) {
                lnet_vec dv = qr[0] * lnet_vload(0, ks + kk * HEAD_DIM);
                for (int c = 1; c < LNET_NV; c++)
                    dv = fma(qr[c], lnet_vload(c, ks + kk * HEAD_DIM), dv);
                sc[kk] = kk < nv ? lnet_hsum(dv) : -INFINITY;
                tile_max = fmax(tile_max, sc[kk]);
            }
            /* The first tile always holds a valid key (key 0 <= jq), so
             * m_new is finite from there on. */
            const float m_new = fmax(m, tile_max);
            const float alpha = exp2(m - m_new);
            l *= alpha;
            for (int c = 0; c < LNET_NV; c++)
                acc[c] *= alpha;
            for (int kk = 0; kk < nv; kk++) {
                const float p = exp2(sc[kk] - m_new);
                l += p;
                for (int c = 0; c < LNET_NV; c++)
                    acc[c] = fma((lnet_vec)p, lnet_vload(c, vs + kk * HEAD_DIM), acc[c]);
            }
            m = m_new;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    if (!active)
        return;
    const long qrow = g.first + jq * r;
    const float lse_i = (m + log2(l)) * LNET_LN2;
    __global float *orow = out + (((long)b * N + qrow) * H + h) * HEAD_DIM;
    __global float *lrow = lse + ((long)b * H + h) * N + qrow;
    lnet_fold_row(orow, lrow, acc, l, lse_i, init);
}
