/* dilated_attention.cl — fused dilated segment attention forward (DESIGN §1,
 * the job contract of longnet-plugin.h), shared by the OpenCL and FPGA
 * backends. Two kernels compute the same thing for different hardware:
 *
 *  - lnet_dilated_fwd ("tiled", for GPUs): a work-group takes TILE_Q
 *    consecutive selected query rows of one (batch, head, segment), one row
 *    per work-item, and walks the segment's selected key rows TILE_K at a
 *    time: the key and value rows of a tile are staged in local memory by
 *    the whole group, then every work-item scores its row against them.
 *
 *  - lnet_dilated_fwd_rows ("rows", for CPU devices such as PoCL): one
 *    work-item takes LNET_RV query rows as the lanes of a vector, with no
 *    local memory and no barrier (a CPU runtime runs the work-items of a
 *    group one after another, and a barrier splits that loop). The queries
 *    are transposed once, into [D][LNET_RV], so that a score block is an
 *    outer product: for each d, the query column times a key's d-th value
 *    broadcast, LNET_KB keys at once, with every lane its own row. The
 *    online softmax is then lane-wise too (no horizontal reductions), and
 *    the output accumulates transposed the same way.
 *
 * Both keep the online softmax (FlashAttention-2 style) in base 2: scores
 * are scaled by log2(e) once, in the query. Dilated rows are read in place:
 * selected row j of the segment is row first + j*r, so consecutive selected
 * rows are r*H*D floats apart. Causal: key blocks past the last query are
 * never read, and keys past a row's own index are masked.
 *
 * Row windows (longnet-plugin.h): rows are absolute (segments, selection,
 * causality); only addresses subtract the window's first row. q, out hold
 * q_rows rows from q_base, lse [B, H, q_rows]; k, v hold kv_rows rows from
 * kv_base, and a query scores only the selected keys inside that window. A
 * row left with no key (possible only with a window) is left untouched.
 *
 * The branch result (o_i, lse_i) is folded into the running (out, lse) — or
 * written over it with init = 1 — by the rule of longnet-plugin.h.
 *
 * Build options (the host specialises every program, so loops over D and
 * over a tile have constant trip counts and unroll):
 *   HEAD_DIM  D, any value >= 1
 *   TILE_Q    work-group size of the tiled kernel: query rows per group
 *   TILE_K    key rows per local-memory tile of the tiled kernel
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
#define LNET_LN2 0.6931471805599453f

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

/* The segment geometry (lnet_seg, lnet_segment, lnet_has_key, ...) is
 * kernels/dilated_geometry.cl, the program's first source. */

/* The branch (o_i = acc[d * stride] / l, lse_i) of one row folded into the
 * running (out, lse), or written over them (init). A row with no branch yet
 * (lse = -inf) takes o_i alone, whatever out holds. */
inline void lnet_fold_strided(__global float *orow, __global float *lrow, const float *acc,
                              int stride, float l, float lse_i, int init)
{
    const float inv_l = 1.0f / l;
    if (init) {
        for (int d = 0; d < HEAD_DIM; d++)
            orow[d] = acc[d * stride] * inv_l;
        *lrow = lse_i;
        return;
    }
    const float prev = *lrow;
    const float mm = fmax(prev, lse_i);
    const float a = exp(prev - mm), e = exp(lse_i - mm);
    const float inv_den = 1.0f / (a + e);
    const float ce = e * inv_l * inv_den, ca = a * inv_den;
    for (int d = 0; d < HEAD_DIM; d++) {
        const float prev_o = a > 0.0f ? ca * orow[d] : 0.0f;
        orow[d] = prev_o + ce * acc[d * stride];
    }
    *lrow = mm + log(a + e);
}

/* The same for a row held as LNET_NV vectors (the tiled kernel). */
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

/* ------------------------------------------------------------- tiled */

/* The end of the keys any query row of a tiled group (selected rows
 * [tile_j0, tile_j0 + TILE_Q) of the range) needs: the window's, and
 * (causal) none after the group's last query row. */
inline long lnet_group_key_end(const lnet_seg *g, long tile_j0, int causal)
{
    long k_end = g->k_hi;
    if (causal) {
        const long last_q = tile_j0 + TILE_Q < g->j_hi ? tile_j0 + TILE_Q : g->j_hi;
        if (k_end > last_q)
            k_end = last_q;
    }
    return k_end;
}

/* The rows [t0, t0 + TILE_K) of two tensors read alike (selected index j at
 * base + j * stride) staged by the TILE_Q work-items of a group into local
 * tiles; rows at or past `end` read as zeros. The tiled kernels of both
 * passes (forward: K, V; backward: also Q, dO) stage this way. */
inline void lnet_stage_tile(__local float *xs, __local float *ys, __global const float *x,
                            __global const float *y, long base, long stride, long t0, long end,
                            int lid)
{
    for (int idx = lid; idx < TILE_K * HEAD_DIM; idx += TILE_Q) {
        const int kk = idx / HEAD_DIM, d = idx - kk * HEAD_DIM;
        const long j = t0 + kk;
        const long at = base + j * stride + d;
        xs[idx] = j < end ? x[at] : 0.0f;
        ys[idx] = j < end ? y[at] : 0.0f;
    }
}


/* Global size: (q_tiles * TILE_Q, segments, batch * heads); local (TILE_Q, 1, 1).
 * Group (t, s, i) takes the selected query rows [j_lo + t*TILE_Q, ...+TILE_Q)
 * of segment s_first + s of batch bh / H, head bh % H, where bh = bh0 + i
 * (the host splits large grids into launches of at most 65535 groups a
 * side). Tiles start at j_lo, the segment's first row in the job's range,
 * so that a short range (a scheduler's chunk) needs few groups. */
__kernel __attribute__((reqd_work_group_size(TILE_Q, 1, 1)))
void lnet_dilated_fwd(__global const float *restrict q, __global const float *restrict k,
                      __global const float *restrict v, __global float *restrict out,
                      __global float *restrict lse, const long N, const int H, const long w,
                      const long r, const int grouped, const int causal, const int init,
                      const float scale, const long row_begin, const long row_end,
                      const long q_base, const long q_rows, const long kv_base,
                      const long kv_rows, const long s_first, const int bh0)
{
    __local float ks[TILE_K * HEAD_DIM];
    __local float vs[TILE_K * HEAD_DIM];

    const int lid = (int)get_local_id(0);
    const long s = s_first + (long)get_group_id(1);
    const int bh = bh0 + (int)get_group_id(2);
    const int b = bh / H, h = bh % H;
    const int o = lnet_head_offset(grouped, h, H, r);
    const lnet_seg g = lnet_segment(s, N, w, r, o, row_begin, row_end, kv_base, kv_rows);
    const long tile_j0 = g.j_lo + (long)get_group_id(0) * TILE_Q;

    /* Uniform over the group (no barrier has been reached yet): a group
     * with no query row of the job's range leaves at once. */
    if (tile_j0 >= g.j_hi)
        return;

    const long jq = tile_j0 + lid;
    const int active = jq < g.j_hi;
    const long sel_stride = r * (long)H * HEAD_DIM;
    /* Element (b, first, h, 0) of each windowed buffer (possibly before its
     * start: only selected rows inside the window are ever addressed). */
    const long qbase = (((long)b * q_rows + (g.first - q_base)) * H + h) * HEAD_DIM;
    const long kbase = (((long)b * kv_rows + (g.first - kv_base)) * H + h) * HEAD_DIM;

    lnet_vec qr[LNET_NV], acc[LNET_NV];
    const float qscale = scale * LNET_LOG2E;
    for (int c = 0; c < LNET_NV; c++) {
        qr[c] = active ? lnet_vload(c, q + qbase + jq * sel_stride) * qscale : (lnet_vec)0.0f;
        acc[c] = (lnet_vec)0.0f;
    }
    float m = -INFINITY, l = 0.0f;

    const long k_end = lnet_group_key_end(&g, tile_j0, causal);

    for (long kt = g.k_lo; kt < k_end; kt += TILE_K) {
        lnet_stage_tile(ks, vs, k, v, kbase, sel_stride, kt, k_end, lid);
        barrier(CLK_LOCAL_MEM_FENCE);

        /* Keys kt + kk valid for this row: below k_end and (causal) not
         * after the row itself. With a K/V window a row may have none in a
         * tile (or at all); such a tile leaves its state as it was. */
        long lim = causal && jq + 1 < k_end ? jq + 1 : k_end;
        const int nv = lim - kt >= TILE_K ? TILE_K : (lim > kt ? (int)(lim - kt) : 0);
        if (active && nv > 0) {
            float sc[TILE_K];
            float tile_max = -INFINITY;
            for (int kk = 0; kk < TILE_K; kk++) {
                lnet_vec dv = qr[0] * lnet_vload(0, ks + kk * HEAD_DIM);
                for (int c = 1; c < LNET_NV; c++)
                    dv = fma(qr[c], lnet_vload(c, ks + kk * HEAD_DIM), dv);
                sc[kk] = kk < nv ? lnet_hsum(dv) : -INFINITY;
                tile_max = fmax(tile_max, sc[kk]);
            }
            /* fmax ignores NaN, so m_new is the largest score that is not
             * NaN. While it is -inf (no such score yet: every one -inf or
             * NaN) the tile subtracts 0 instead, so that p and alpha are
             * what they are against any finite maximum (0 for -inf, NaN
             * for NaN) rather than the NaN of -inf - -inf; a row whose
             * maximum stays -inf is made NaN after the loop. */
            const float m_new = fmax(m, tile_max);
            const float m_use = m_new == -INFINITY ? 0.0f : m_new;
            const float alpha = exp2(m - m_use);
            l *= alpha;
            for (int c = 0; c < LNET_NV; c++)
                acc[c] *= alpha;
            for (int kk = 0; kk < nv; kk++) {
                const float p = exp2(sc[kk] - m_use);
                l += p;
                for (int c = 0; c < LNET_NV; c++)
                    acc[c] = fma((lnet_vec)p, lnet_vload(c, vs + kk * HEAD_DIM), acc[c]);
            }
            m = m_new;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    /* A row with no key in the window (possible only with a window) stays
     * as it was. Whether it has one is decided by the indices, never by
     * l: a NaN score makes l NaN, and that row must be written (NaN), not
     * left with whatever `out` held. */
    if (!active || !lnet_has_key(jq, g.k_lo, g.k_hi, causal))
        return;
    /* Every score -inf or NaN: the reference kernel's softmax gives NaN
     * (exp(s - max) with max = -inf), and so does this one. */
    if (m == -INFINITY)
        l = NAN;
    const long qrow = g.first + jq * r;
    const float lse_i = (m + log2(l)) * LNET_LN2;
    __global float *orow = out + qbase + jq * sel_stride;
    __global float *lrow = lse + ((long)b * H + h) * q_rows + (qrow - q_base);
    lnet_fold_row(orow, lrow, acc, l, lse_i, init);
}

/* -------------------------------------------------------------- rows */

/* LNET_RV query rows per work-item as vector lanes, LNET_KB keys per score
 * block: LNET_KB score vectors, the query column and a broadcast key value
 * stay in registers (AVX-512 has 32, AVX2 16 of half the width: then the
 * compiler splits each vector in two and still fits). Private memory per
 * work-item: two [D][LNET_RV] arrays (queries, output), 8 KiB at D = 64;
 * beyond LNET_ROWS_MAX_DIM the host uses the tiled kernel instead. */
#define LNET_RV 16
#define LNET_KB 8
#define LNET_ROWS_MAX_DIM 256
#define lnet_rvec float16
#define lnet_rmask int16
#define lnet_rload vload16
#define lnet_rstore vstore16
#define LNET_LANES ((int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))

#if HEAD_DIM <= LNET_ROWS_MAX_DIM

/* The LNET_KB keys of a block, spelled out: the score vectors, their
 * probabilities and the key and value row pointers are then named values a
 * compiler keeps in registers (PoCL did not unroll the loop over an array
 * of them, and left the scores in memory: half the speed). */
#define LNET_FOR_KB(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/* Whether lane i (row j0 + i) takes key jk: below k_end and (causal) not
 * after the lane's row; only the blocks at the diagonal or the end ask. */
inline lnet_rmask lnet_key_ok(long jk, long k_end, long j0, int causal)
{
    if (jk >= k_end)
        return (lnet_rmask)0;
    if (!causal || jk <= j0)
        return (lnet_rmask)(-1);
    return LNET_LANES >= (lnet_rmask)(int)(jk - j0);
}

/* One block of LNET_KB keys from selected index jk0 for the lanes' rows
 * j0 + lane. `masked` (a constant where inlined) adds the checks the
 * blocks at the causal diagonal and past k_end need; other blocks are
 * valid for every lane. Inlined always, so that `masked` folds away. */
inline __attribute__((always_inline)) void
lnet_rows_block(__global const float *restrict k, __global const float *restrict v, long kbase,
                long sel_stride, long jk0, long k_end, long j0, int causal, int masked,
                const float *qt, float *acc, lnet_rvec *m, lnet_rvec *l)
{
    /* A key past k_end (masked below) reads the last valid row instead. */
#define LNET_PTRS(i)                                                              \
    const long key##i = jk0 + i < k_end ? jk0 + i : k_end - 1;                    \
    __global const float *kp##i = k + kbase + key##i * sel_stride;                \
    __global const float *vp##i = v + kbase + key##i * sel_stride;                \
    lnet_rvec s##i = (lnet_rvec)0.0f;
    LNET_FOR_KB(LNET_PTRS)
#undef LNET_PTRS

    for (int d = 0; d < HEAD_DIM; d++) {
        const lnet_rvec qd = lnet_rload(d, qt);
#define LNET_SCORE(i) s##i = fma(qd, (lnet_rvec)kp##i[d], s##i);
        LNET_FOR_KB(LNET_SCORE)
#undef LNET_SCORE
    }
    /* A masked key gets the score -inf (p = 0), and its value is left out
     * of the output by the same mask below: 0 * v would be NaN where v is
     * NaN or infinite, a value the lane's row never attends. */
#define LNET_MASK(i)                                                                    \
    const lnet_rmask ok##i = masked ? lnet_key_ok(jk0 + i, k_end, j0, causal) : (lnet_rmask)(-1); \
    if (masked)                                                                         \
        s##i = select((lnet_rvec)(-INFINITY), s##i, ok##i);
    LNET_FOR_KB(LNET_MASK)
#undef LNET_MASK

    const lnet_rvec mx = fmax(fmax(fmax(s0, s1), fmax(s2, s3)), fmax(fmax(s4, s5), fmax(s6, s7)));
    const lnet_rvec m_new = fmax(*m, mx);
    /* A lane with no key yet (m_new = -inf) subtracts 0 instead, so that
     * its p and alpha are 0 rather than NaN. */
    const lnet_rvec m_use = select(m_new, (lnet_rvec)0.0f, m_new == (lnet_rvec)(-INFINITY));
    const lnet_rvec alpha = exp2(*m - m_use);
#define LNET_P(i) const lnet_rvec p##i = exp2(s##i - m_use);
    LNET_FOR_KB(LNET_P)
#undef LNET_P
    *l = fma(*l, alpha, ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7)));
    *m = m_new;

    for (int d = 0; d < HEAD_DIM; d++) {
        lnet_rvec a = lnet_rload(d, acc) * alpha;
#define LNET_PV(i)                                                  \
    a = masked ? select(a, fma(p##i, (lnet_rvec)vp##i[d], a), ok##i) \
               : fma(p##i, (lnet_rvec)vp##i[d], a);
        LNET_FOR_KB(LNET_PV)
#undef LNET_PV
        lnet_rstore(a, d, acc);
    }
}

/* Global size: (row_blocks, segments, batch * heads), any local size (no
 * barrier, no local memory). Work-item (t, s, i) takes the selected query
 * rows [j_lo + t*LNET_RV, ...+LNET_RV) of segment s_first + s of batch
 * bh / H, head bh % H, bh = bh0 + i. */
__kernel void lnet_dilated_fwd_rows(__global const float *restrict q,
                                    __global const float *restrict k,
                                    __global const float *restrict v, __global float *restrict out,
                                    __global float *restrict lse, const long N, const int H,
                                    const long w, const long r, const int grouped,
                                    const int causal, const int init, const float scale,
                                    const long row_begin, const long row_end, const long q_base,
                                    const long q_rows, const long kv_base, const long kv_rows,
                                    const long s_first, const int bh0)
{
    const long s = s_first + (long)get_global_id(1);
    const int bh = bh0 + (int)get_global_id(2);
    const int b = bh / H, h = bh % H;
    const int o = lnet_head_offset(grouped, h, H, r);
    const lnet_seg g = lnet_segment(s, N, w, r, o, row_begin, row_end, kv_base, kv_rows);
    const long j0 = g.j_lo + (long)get_global_id(0) * LNET_RV;
    if (j0 >= g.j_hi)
        return;
    const int nq = g.j_hi - j0 < LNET_RV ? (int)(g.j_hi - j0) : LNET_RV;

    const long sel_stride = r * (long)H * HEAD_DIM;
    const long qbase = (((long)b * q_rows + (g.first - q_base)) * H + h) * HEAD_DIM;
    const long kbase = (((long)b * kv_rows + (g.first - kv_base)) * H + h) * HEAD_DIM;

    /* The queries transposed (qt[d * LNET_RV + lane]), pre-scaled; lanes
     * past the range hold zeros and are never written back. */
    float qt[HEAD_DIM * LNET_RV];
    float acc[HEAD_DIM * LNET_RV];
    const float qscale = scale * LNET_LOG2E;
    for (int i = 0; i < LNET_RV; i++) {
        __global const float *qrow = q + qbase + (j0 + i) * sel_stride;
        for (int d = 0; d < HEAD_DIM; d++)
            qt[d * LNET_RV + i] = i < nq ? qrow[d] * qscale : 0.0f;
    }
    for (int d = 0; d < HEAD_DIM; d++)
        lnet_rstore((lnet_rvec)0.0f, d, acc);

    long k_end = g.k_hi;
    if (causal && k_end > j0 + nq)
        k_end = j0 + nq;
    /* Keys below `clean` are valid for every lane: inside the window and
     * (causal) not after the first lane's row. */
    long clean = k_end;
    if (causal && clean > j0 + 1)
        clean = j0 + 1;

    lnet_rvec m = (lnet_rvec)(-INFINITY), l = (lnet_rvec)0.0f;
    long jk0 = g.k_lo;
    for (; jk0 + LNET_KB <= clean; jk0 += LNET_KB)
        lnet_rows_block(k, v, kbase, sel_stride, jk0, k_end, j0, causal, 0, qt, acc, &m, &l);
    for (; jk0 < k_end; jk0 += LNET_KB)
        lnet_rows_block(k, v, kbase, sel_stride, jk0, k_end, j0, causal, 1, qt, acc, &m, &l);

    float mf[LNET_RV], lf[LNET_RV];
    lnet_rstore(m, 0, mf);
    lnet_rstore(l, 0, lf);
    for (int i = 0; i < nq; i++) {
        /* No key in the window: the row stays as it was; decided by the
         * indices, not by l, which a NaN score makes NaN (as the tiled
         * kernel does). Every score -inf or NaN: NaN, as in the reference. */
        if (!lnet_has_key(j0 + i, g.k_lo, g.k_hi, causal))
            continue;
        if (mf[i] == -INFINITY)
            lf[i] = NAN;
        const long qrow = g.first + (j0 + i) * r;
        const float lse_i = (mf[i] + log2(lf[i])) * LNET_LN2;
        __global float *orow = out + qbase + (j0 + i) * sel_stride;
        __global float *lrow = lse + ((long)b * H + h) * q_rows + (qrow - q_base);
        lnet_fold_strided(orow, lrow, acc + i, LNET_RV, lf[i], lse_i, init);
    }
}

#endif /* HEAD_DIM <= LNET_ROWS_MAX_DIM */
