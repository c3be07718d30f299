/* dilated_attention_backward.cl — the backward pass of one level of dilated
 * segment attention (lnet_segment_backward_job in longnet-plugin.h), built
 * in one program after dilated_attention.cl, whose vector types, segment
 * geometry (lnet_segment, lnet_head_offset) and tile staging it reuses.
 *
 * With the forward's final LSE, P = exp(scale q.k - LSE) is recomputed
 * wherever it is needed, so no score matrix is stored, and no two
 * work-items ever add to one row: OpenCL 1.2 has no floating-point atomics.
 * Two kernels per form:
 *
 *  - dQ: a work-item owns a selected query row i of the job's range and
 *    walks the selected keys j of its segment in the K/V window (causal:
 *    j <= i): dQ_i += scale sum_j P_ij (dO_i.V_j - delta_i) K_j.
 *  - dK, dV: a work-item owns a selected key row j of the K/V window and
 *    walks the selected queries i of the range (causal: i >= j):
 *    dV_j += sum_i P_ij dO_i, dK_j += scale sum_i dS_ij Q_i.
 *
 * "tiled" (GPUs): work-groups of TILE_Q rows share the other side's rows
 * TILE_K at a time in local memory. "rows" (CPU devices): a work-item
 * owns LNET_RV rows as vector lanes, as the forward's rows kernel does, and
 * reads the other side straight from global memory: no local memory, no
 * barrier.
 *
 * Both kernels take one argument list (LNET_BWD_ARGS), so that the host
 * sets it once for each. Rows are absolute; addresses subtract the
 * windows' first rows, as in the forward. NaN and infinities propagate as
 * the arithmetic gives: nothing is masked beyond causality and selection. */

#define LNET_BWD_ARGS                                                                         \
    __global const float *restrict q, __global const float *restrict k,                      \
        __global const float *restrict v, __global const float *restrict dout,               \
        __global const float *restrict lse, __global const float *restrict delta,            \
        __global float *restrict dq, __global float *restrict dk, __global float *restrict dv, \
        const long N, const int H, const long w, const long r, const int grouped,            \
        const int causal, const float scale, const long row_begin, const long row_end,       \
        const long q_base, const long q_rows, const long kv_base, const long kv_rows,        \
        const long s_first, const int bh0

/* The work-item's (batch, head, segment), the segment's geometry and the
 * bases of the buffers: element (b, first, h, 0) of the query-side
 * (qbase) and key-side (kbase) tensors, and the lse/delta entry of the
 * segment's first selected row (lbase; selected index j is lbase + j*r). */
#define LNET_BWD_SETUP(S_ID, BH_ID)                                                          \
    const long s = s_first + (long)(S_ID);                                                  \
    const int bh = bh0 + (int)(BH_ID);                                                      \
    const int b = bh / H, h = bh % H;                                                       \
    const lnet_seg g = lnet_segment(s, N, w, r, lnet_head_offset(grouped, h, H, r), row_begin, \
                                    row_end, kv_base, kv_rows);                             \
    const long sel_stride = r * (long)H * HEAD_DIM;                                         \
    const long qbase = (((long)b * q_rows + (g.first - q_base)) * H + h) * HEAD_DIM;        \
    const long kbase = (((long)b * kv_rows + (g.first - kv_base)) * H + h) * HEAD_DIM;      \
    const long lbase = ((long)b * H + h) * q_rows + (g.first - q_base)

/* Loads a row of LNET_NV vectors times `mul`, or zeros for an idle item. */
inline void lnet_bwd_load(lnet_vec *x, __global const float *row, float mul, int active)
{
    for (int c = 0; c < LNET_NV; c++)
        x[c] = active ? lnet_vload(c, row) * mul : (lnet_vec)0.0f;
}

/* row += mul * acc. */
inline void lnet_bwd_add(__global float *row, const lnet_vec *acc, float mul)
{
    for (int c = 0; c < LNET_NV; c++)
        lnet_vstore(fma((lnet_vec)mul, acc[c], lnet_vload(c, row)), c, row);
}

/* The dot products of a pair: sa = x.a, sb = y.b over LNET_NV vectors
 * (a and b rows of any address space: a macro, OpenCL 1.2 having no
 * generic pointers). */
#define LNET_BWD_DOTS(x, a, y, b, sa, sb)                                                    \
    do {                                                                                   \
        lnet_vec da_ = (x)[0] * lnet_vload(0, a), db_ = (y)[0] * lnet_vload(0, b);           \
        for (int c = 1; c < LNET_NV; c++) {                                                \
            da_ = fma((x)[c], lnet_vload(c, a), da_);                                      \
            db_ = fma((y)[c], lnet_vload(c, b), db_);                                      \
        }                                                                                  \
        sa = lnet_hsum(da_);                                                               \
        sb = lnet_hsum(db_);                                                               \
    } while (0)

/* dQ's share of key row kp, value row vp for the query held as qs (Q
 * times scale), dor (dO), lse_i, delta_i: acc += dS K (the host-side
 * factor scale is applied once, at the end). */
#define LNET_BWD_Q_STEP(kp, vp)                                                              \
    do {                                                                                   \
        float s_, dp_;                                                                     \
        LNET_BWD_DOTS(qs, kp, dor, vp, s_, dp_);                                           \
        const float ds_ = exp(s_ - lse_i) * (dp_ - delta_i);                               \
        for (int c = 0; c < LNET_NV; c++)                                                  \
            acc[c] = fma((lnet_vec)ds_, lnet_vload(c, kp), acc[c]);                        \
    } while (0)

/* dK's and dV's share of query row qp, gradient row dop (with lse_i,
 * delta_i) for the key held as kr (K times scale) and vr (V). */
#define LNET_BWD_KV_STEP(qp, dop)                                                            \
    do {                                                                                   \
        float s_, dp_;                                                                     \
        LNET_BWD_DOTS(kr, qp, vr, dop, s_, dp_);                                           \
        const float p_ = exp(s_ - lse_i);                                                  \
        const float ds_ = p_ * (dp_ - delta_i);                                            \
        for (int c = 0; c < LNET_NV; c++) {                                                \
            dva[c] = fma((lnet_vec)p_, lnet_vload(c, dop), dva[c]);                        \
            dka[c] = fma((lnet_vec)ds_, lnet_vload(c, qp), dka[c]);                        \
        }                                                                                  \
    } while (0)

/* ------------------------------------------------------------- tiled */

/* Global (q_tiles * TILE_Q, segments, batch * heads), local (TILE_Q, 1, 1):
 * group (t, s, i) owns the selected queries [j_lo + t*TILE_Q, +TILE_Q) of
 * its segment, and stages the keys and values TILE_K at a time. */
__kernel __attribute__((reqd_work_group_size(TILE_Q, 1, 1)))
void lnet_dilated_bwd_dq(LNET_BWD_ARGS)
{
    __local float ks[TILE_K * HEAD_DIM];
    __local float vs[TILE_K * HEAD_DIM];
    const int lid = (int)get_local_id(0);
    LNET_BWD_SETUP(get_group_id(1), get_group_id(2));
    const long tile_j0 = g.j_lo + (long)get_group_id(0) * TILE_Q;
    if (tile_j0 >= g.j_hi) /* uniform over the group */
        return;
    const long jq = tile_j0 + lid;
    const int active = jq < g.j_hi;
    lnet_vec qs[LNET_NV], dor[LNET_NV], acc[LNET_NV];
    lnet_bwd_load(qs, q + qbase + jq * sel_stride, scale, active);
    lnet_bwd_load(dor, dout + qbase + jq * sel_stride, 1.0f, active);
    lnet_bwd_load(acc, q, 0.0f, 0);
    const float lse_i = active ? lse[lbase + jq * r] : 0.0f;
    const float delta_i = active ? delta[lbase + jq * r] : 0.0f;

    const long k_end = lnet_group_key_end(&g, tile_j0, causal);
    for (long kt = g.k_lo; kt < k_end; kt += TILE_K) {
        lnet_stage_tile(ks, vs, k, v, kbase, sel_stride, kt, k_end, lid);
        barrier(CLK_LOCAL_MEM_FENCE);
        const long lim = causal && jq + 1 < k_end ? jq + 1 : k_end;
        const int nv = lim - kt >= TILE_K ? TILE_K : (lim > kt ? (int)(lim - kt) : 0);
        if (active)
            for (int kk = 0; kk < nv; kk++)
                LNET_BWD_Q_STEP(ks + kk * HEAD_DIM, vs + kk * HEAD_DIM);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (active)
        lnet_bwd_add(dq + qbase + jq * sel_stride, acc, scale);
}

/* Global (k_tiles * TILE_Q, segments, batch * heads), local (TILE_Q, 1, 1):
 * group (t, s, i) owns the selected keys [k_lo + t*TILE_Q, +TILE_Q) of the
 * K/V window in its segment, and stages the queries and their dO TILE_K
 * at a time (causal: from the group's first key on). */
__kernel __attribute__((reqd_work_group_size(TILE_Q, 1, 1)))
void lnet_dilated_bwd_dkv(LNET_BWD_ARGS)
{
    __local float qsh[TILE_K * HEAD_DIM];
    __local float dos[TILE_K * HEAD_DIM];
    const int lid = (int)get_local_id(0);
    LNET_BWD_SETUP(get_group_id(1), get_group_id(2));
    const long tile_j0 = g.k_lo + (long)get_group_id(0) * TILE_Q;
    if (tile_j0 >= g.k_hi)
        return;
    const long jk = tile_j0 + lid;
    const int active = jk < g.k_hi;
    lnet_vec kr[LNET_NV], vr[LNET_NV], dka[LNET_NV], dva[LNET_NV];
    lnet_bwd_load(kr, k + kbase + jk * sel_stride, scale, active);
    lnet_bwd_load(vr, v + kbase + jk * sel_stride, 1.0f, active);
    lnet_bwd_load(dka, k, 0.0f, 0);
    lnet_bwd_load(dva, k, 0.0f, 0);

    const long q_lo = causal && tile_j0 > g.j_lo ? tile_j0 : g.j_lo;
    for (long qt = q_lo; qt < g.j_hi; qt += TILE_K) {
        lnet_stage_tile(qsh, dos, q, dout, qbase, sel_stride, qt, g.j_hi, lid);
        barrier(CLK_LOCAL_MEM_FENCE);
        const int nv = g.j_hi - qt >= TILE_K ? TILE_K : (int)(g.j_hi - qt);
        /* Causal: the queries at or after this key. */
        const int first = causal && jk > qt ? (jk - qt < nv ? (int)(jk - qt) : nv) : 0;
        if (active)
            for (int kk = first; kk < nv; kk++) {
                const float lse_i = lse[lbase + (qt + kk) * r];
                const float delta_i = delta[lbase + (qt + kk) * r];
                LNET_BWD_KV_STEP(qsh + kk * HEAD_DIM, dos + kk * HEAD_DIM);
            }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (active) {
        lnet_bwd_add(dk + kbase + jk * sel_stride, dka, scale);
        lnet_bwd_add(dv + kbase + jk * sel_stride, dva, 1.0f);
    }
}

/* -------------------------------------------------------------- rows */

#if HEAD_DIM <= LNET_ROWS_MAX_DIM

/* As the forward's rows kernel: a work-item owns LNET_RV rows as the lanes
 * of a vector, its own side transposed once into [D][LNET_RV], so that
 * every score against a row of the other side is an outer product (the
 * lanes' column times the other row's d-th value broadcast), and the
 * softmax terms and accumulations are lane-wise: no horizontal sum.
 * Private memory: three or four [D][LNET_RV] arrays. Global
 * (ceil(selected rows / LNET_RV), segments, batch * heads), local 1. */

/* Row i of a [D][LNET_RV] transposed block from `row` times mul (zeros for
 * a lane past the range). */
inline void lnet_bwd_lane_load(float *t, int i, __global const float *row, float mul, int live)
{
    for (int d = 0; d < HEAD_DIM; d++)
        t[d * LNET_RV + i] = live ? row[d] * mul : 0.0f;
}

/* row += mul * lane i of a transposed block. */
inline void lnet_bwd_lane_add(__global float *row, const float *t, int i, float mul)
{
    for (int d = 0; d < HEAD_DIM; d++)
        row[d] = fma(mul, t[d * LNET_RV + i], row[d]);
}

/* Lane-wise x.p and y.o for the transposed blocks x, y and the rows p, o. */
#define LNET_BWD_LANE_DOTS(x, p, y, o, sx, sy)                                               \
    do {                                                                                   \
        sx = (lnet_rvec)0.0f;                                                              \
        sy = (lnet_rvec)0.0f;                                                              \
        for (int d = 0; d < HEAD_DIM; d++) {                                               \
            sx = fma(lnet_rload(d, x), (lnet_rvec)((p)[d]), sx);                             \
            sy = fma(lnet_rload(d, y), (lnet_rvec)((o)[d]), sy);                             \
        }                                                                                  \
    } while (0)

/* acc[d] += c * p[d] lane-wise; only in the lanes of `ok` unless `all`
 * (a masked pair adds nothing, not 0 * a value that may be NaN). */
#define LNET_BWD_LANE_AXPY(acc, c, p, all, ok)                                               \
    do {                                                                                   \
        for (int d = 0; d < HEAD_DIM; d++) {                                               \
            const lnet_rvec a_ = lnet_rload(d, acc);                                       \
            const lnet_rvec n_ = fma(c, (lnet_rvec)((p)[d]), a_);                            \
            lnet_rstore((all) ? n_ : select(a_, n_, ok), d, acc);                          \
        }                                                                                  \
    } while (0)

/* Work-item x owns the selected queries [j_lo + x*LNET_RV, +LNET_RV). */
__kernel void lnet_dilated_bwd_dq_rows(LNET_BWD_ARGS)
{
    LNET_BWD_SETUP(get_global_id(1), get_global_id(2));
    const long j0 = g.j_lo + (long)get_global_id(0) * LNET_RV;
    if (j0 >= g.j_hi)
        return;
    const int nq = g.j_hi - j0 < LNET_RV ? (int)(g.j_hi - j0) : LNET_RV;
    float qt[HEAD_DIM * LNET_RV], dot[HEAD_DIM * LNET_RV], acc[HEAD_DIM * LNET_RV];
    float lf[LNET_RV], df[LNET_RV];
    for (int i = 0; i < LNET_RV; i++) {
        const long at = qbase + (j0 + i) * sel_stride;
        lnet_bwd_lane_load(qt, i, q + at, scale, i < nq);
        lnet_bwd_lane_load(dot, i, dout + at, 1.0f, i < nq);
        lf[i] = i < nq ? lse[lbase + (j0 + i) * r] : 0.0f;
        df[i] = i < nq ? delta[lbase + (j0 + i) * r] : 0.0f;
    }
    for (int d = 0; d < HEAD_DIM; d++)
        lnet_rstore((lnet_rvec)0.0f, d, acc);
    const lnet_rvec lse_v = lnet_rload(0, lf), delta_v = lnet_rload(0, df);
    /* Causal: no key after the last lane's row; keys below `clean` are
     * valid for every lane. */
    const long k_end = causal && g.k_hi > j0 + nq ? j0 + nq : g.k_hi;
    const long clean = causal && k_end > j0 + 1 ? j0 + 1 : k_end;
    for (long jk = g.k_lo; jk < k_end; jk++) {
        __global const float *kp = k + kbase + jk * sel_stride;
        __global const float *vp = v + kbase + jk * sel_stride;
        lnet_rvec sv, dp;
        LNET_BWD_LANE_DOTS(qt, kp, dot, vp, sv, dp);
        const lnet_rvec ds = exp(sv - lse_v) * (dp - delta_v);
        /* lane i takes key jk when jk <= j0 + i */
        LNET_BWD_LANE_AXPY(acc, ds, kp, jk < clean, LNET_LANES >= (int)(jk - j0));
    }
    for (int i = 0; i < nq; i++)
        lnet_bwd_lane_add(dq + qbase + (j0 + i) * sel_stride, acc, i, scale);
}

/* Work-item x owns the selected keys [k_lo + x*LNET_RV, +LNET_RV) of the
 * K/V window. */
__kernel void lnet_dilated_bwd_dkv_rows(LNET_BWD_ARGS)
{
    LNET_BWD_SETUP(get_global_id(1), get_global_id(2));
    const long j0 = g.k_lo + (long)get_global_id(0) * LNET_RV;
    if (j0 >= g.k_hi)
        return;
    const int nk = g.k_hi - j0 < LNET_RV ? (int)(g.k_hi - j0) : LNET_RV;
    float kt[HEAD_DIM * LNET_RV], vt[HEAD_DIM * LNET_RV];
    float dka[HEAD_DIM * LNET_RV], dva[HEAD_DIM * LNET_RV];
    for (int i = 0; i < LNET_RV; i++) {
        const long at = kbase + (j0 + i) * sel_stride;
        lnet_bwd_lane_load(kt, i, k + at, scale, i < nk);
        lnet_bwd_lane_load(vt, i, v + at, 1.0f, i < nk);
    }
    for (int d = 0; d < HEAD_DIM; d++) {
        lnet_rstore((lnet_rvec)0.0f, d, dka);
        lnet_rstore((lnet_rvec)0.0f, d, dva);
    }
    /* Causal: queries from the first lane's key on; those at or after the
     * last lane's key are valid for every lane. */
    const long q_lo = causal && j0 > g.j_lo ? j0 : g.j_lo;
    const long clean = causal ? j0 + nk - 1 : q_lo;
    for (long jq = q_lo; jq < g.j_hi; jq++) {
        __global const float *qp = q + qbase + jq * sel_stride;
        __global const float *dop = dout + qbase + jq * sel_stride;
        lnet_rvec sv, dp;
        LNET_BWD_LANE_DOTS(kt, qp, vt, dop, sv, dp);
        const lnet_rvec p = exp(sv - (lnet_rvec)lse[lbase + jq * r]);
        const lnet_rvec ds = p * (dp - (lnet_rvec)delta[lbase + jq * r]);
        /* lane i takes query jq when j0 + i <= jq */
        const lnet_rmask ok = LNET_LANES <= (int)(jq - j0 < LNET_RV ? jq - j0 : LNET_RV);
        LNET_BWD_LANE_AXPY(dva, p, dop, jq >= clean, ok);
        LNET_BWD_LANE_AXPY(dka, ds, qp, jq >= clean, ok);
    }
    for (int i = 0; i < nk; i++) {
        lnet_bwd_lane_add(dk + kbase + (j0 + i) * sel_stride, dka, i, scale);
        lnet_bwd_lane_add(dv + kbase + (j0 + i) * sel_stride, dva, i, 1.0f);
    }
}

#endif /* HEAD_DIM <= LNET_ROWS_MAX_DIM */
