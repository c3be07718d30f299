/* gemm_softmax.cl — the kernels between and after the two GEMMs of the
 * "gemm" path (backends/opencl/ocl_gemm.c): S = scale * Q_sel K_sel^T is
 * turned into P = softmax(S) row by row (with the causal mask) and the
 * branch lse; after O_i = P V_sel, the branch is folded into the running
 * (out, lse). Built in the same program as dilated_attention.cl (whose
 * HEAD_DIM it uses), so a device builds one program per head dimension. */

/* Global size (n, count): row i of the n x n score matrix c of a batch of
 * `count` segments that all have n selected rows. */
__kernel void lnet_gemm_softmax(__global float *restrict scores,
                                __global float *restrict branch_lse, const int n,
                                const int causal)
{
    const int i = (int)get_global_id(0);
    const int c = (int)get_global_id(1);
    if (i >= n)
        return;
    __global float *row = scores + ((long)c * n + i) * n;
    /* Causal: row i attends keys 0..i, all of them selected rows. */
    const int nk = causal ? i + 1 : n;
    float m = -INFINITY;
    for (int j = 0; j < nk; j++)
        m = fmax(m, row[j]);
    float l = 0.0f;
    for (int j = 0; j < nk; j++) {
        const float p = exp(row[j] - m);
        row[j] = p;
        l += p;
    }
    const float inv_l = 1.0f / l;
    for (int j = 0; j < nk; j++)
        row[j] *= inv_l;
    for (int j = nk; j < n; j++)
        row[j] = 0.0f;
    branch_lse[(long)c * n + i] = m + log(l);
}

/* Global size (n, count): selected row j of segment c of the batch, whose
 * first selected row is first0 + c * w. Rows outside [row_begin, row_end)
 * are left alone (the GEMMs computed every selected row of the segment). */
__kernel void lnet_gemm_fold(__global const float *restrict branch_out,
                             __global const float *restrict branch_lse,
                             __global float *restrict out, __global float *restrict lse,
                             const long N, const int H, const int b, const int h,
                             const long first0, const long w, const long r, const int n,
                             const long row_begin, const long row_end, const int init)
{
    const int j = (int)get_global_id(0);
    const int c = (int)get_global_id(1);
    if (j >= n)
        return;
    const long qrow = first0 + c * w + j * r;
    if (qrow < row_begin || qrow >= row_end)
        return;
    __global const float *o_i = branch_out + ((long)c * n + j) * HEAD_DIM;
    const float lse_i = branch_lse[(long)c * n + j];
    __global float *orow = out + (((long)b * N + qrow) * H + h) * HEAD_DIM;
    __global float *lrow = lse + ((long)b * H + h) * N + qrow;
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
