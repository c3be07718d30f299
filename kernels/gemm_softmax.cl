/* gemm_softmax.cl — the kernels between and after the two GEMMs of the
 * "gemm" path (backends/opencl/ocl_gemm.c): S = scale * Q_sel K_sel^T is
 * turned into P = softmax(S) row by row (with the causal mask) and the
 * branch lse; after O_i = P V_sel, the branch is folded into the running
 * (out, lse). Built in the same program as dilated_attention.cl (whose
 * HEAD_DIM it uses), so a device builds one program per head dimension. */

/* Global size (nq, count): row i of the nq x nk score matrix c of a batch
 * of `count` segments that all have nq queries and nk keys. Causal: query
 * i takes keys t <= i + diag (diag: the first query's selected index less
 * the first key's). A row with no key gets P = 0 and lse = -inf, which the
 * fold reads as "leave the row untouched". */
__kernel void lnet_gemm_softmax(__global float *restrict scores,
                                __global float *restrict branch_lse, const int nq, const int nk,
                                const int causal, const long diag)
{
    const int i = (int)get_global_id(0);
    const int c = (int)get_global_id(1);
    if (i >= nq)
        return;
    __global float *row = scores + ((long)c * nq + i) * nk;
    long lim = causal ? i + diag + 1 : nk;
    const int n = lim >= nk ? nk : (lim > 0 ? (int)lim : 0);
    float m = -INFINITY;
    for (int j = 0; j < n; j++)
        m = fmax(m, row[j]);
    float l = 0.0f;
    for (int j = 0; j < n; j++) {
        const float p = exp(row[j] - m);
        row[j] = p;
        l += p;
    }
    const float inv_l = n > 0 ? 1.0f / l : 0.0f;
    for (int j = 0; j < n; j++)
        row[j] *= inv_l;
    for (int j = n; j < nk; j++)
        row[j] = 0.0f;
    branch_lse[(long)c * nq + i] = n > 0 ? m + log(l) : -INFINITY;
}

/* Global size (nq, count), causal batches only, between O = P V and the
 * fold. P holds 0 for the keys after a query's own row, but the GEMM still
 * multiplies them with those keys' values, and 0 * NaN or 0 * inf is NaN:
 * a NaN the query never attended (the reference kernel sums only its own
 * keys). A row whose branch output is not all finite is recomputed here
 * from its own keys, t < i + diag + 1, alone; a NaN it really attends comes
 * back, one it does not is gone. Rows that are all finite (every row
 * without non-finite values) leave after one pass over D. V_c: key t of
 * segment c at v[v_off + c * stride + t * ld]. */
__kernel void lnet_gemm_causal_fix(__global const float *restrict scores,
                                   __global float *restrict branch_out,
                                   __global const float *restrict v, const long v_off,
                                   const long ld, const long stride, const int nq, const int nk,
                                   const long diag)
{
    const int i = (int)get_global_id(0);
    const int c = (int)get_global_id(1);
    if (i >= nq)
        return;
    __global float *o = branch_out + ((long)c * nq + i) * HEAD_DIM;
    int finite = 1;
    for (int d = 0; d < HEAD_DIM; d++)
        finite &= isfinite(o[d]);
    if (finite)
        return;
    const long lim = i + diag + 1;
    const int n = lim >= nk ? nk : (lim > 0 ? (int)lim : 0);
    __global const float *p = scores + ((long)c * nq + i) * nk;
    __global const float *vc = v + v_off + (long)c * stride;
    for (int d = 0; d < HEAD_DIM; d++) {
        float acc = 0.0f;
        for (int t = 0; t < n; t++)
            acc = fma(p[t], vc[(long)t * ld + d], acc);
        o[d] = acc;
    }
}

/* Global size (nq, count): query i of segment c of the batch, the selected
 * row first0 + c*w + (j_lo + i)*r, which lies in the query window (q_rows
 * rows from q_base). A query with no key (lse_i = -inf) is left alone. */
__kernel void lnet_gemm_fold(__global const float *restrict branch_out,
                             __global const float *restrict branch_lse,
                             __global float *restrict out, __global float *restrict lse,
                             const int H, const int b, const int h, const long first0,
                             const long w, const long r, const int nq, const long j_lo,
                             const long q_base, const long q_rows, const int init)
{
    const int i = (int)get_global_id(0);
    const int c = (int)get_global_id(1);
    if (i >= nq)
        return;
    const float lse_i = branch_lse[(long)c * nq + i];
    if (lse_i == -INFINITY)
        return;
    const long qrow = first0 + c * w + (j_lo + i) * r;
    __global const float *o_i = branch_out + ((long)c * nq + i) * HEAD_DIM;
    __global float *orow = out + (((long)b * q_rows + (qrow - q_base)) * H + h) * HEAD_DIM;
    __global float *lrow = lse + ((long)b * H + h) * q_rows + (qrow - q_base);
    if (init) {
        for (int d = 0; d < HEAD_DIM; d++)
            orow[d] = o_i[d];
        *lrow = lse_i;
        return;
    }
    const float prev = *lrow;
    const float mm = fmax(prev, lse_i);
    const float a = exp(prev - mm), e = exp(lse_i - mm);
    const float inv_den = 1.0f / (a + e);
    for (int d = 0; d < HEAD_DIM; d++) {
        const float prev_o = a > 0.0f ? a * orow[d] : 0.0f;
        orow[d] = (prev_o + e * o_i[d]) * inv_den;
    }
    *lrow = mm + log(a + e);
}
