/* dilated_geometry.cl — the segment geometry of a job (which rows a
 * segment selects, which of them lie in the job's row range and in the K/V
 * window, the head offset, whether a query has a key), shared by every
 * program: the OpenCL backend's (before dilated_attention.cl) and the FPGA
 * backend's (before fpga/dilated_attention_fpga.cl). The host passes it as
 * the program's first source. Plain OpenCL C 1.2, no build macro. */

/* The segment geometry every kernel of a job shares. */
typedef struct {
    long first;   /* row of selected index 0 */
    long n_sel;   /* selected rows in the segment */
    long j_lo;    /* selected rows [j_lo, j_hi) are in the job's row range */
    long j_hi;
    long k_lo;    /* selected rows [k_lo, k_hi) are in the K/V window */
    long k_hi;
} lnet_seg;

inline long lnet_ceil_div(long a, long b)
{
    return a / b + (a % b != 0);
}

inline int lnet_head_offset(int grouped, int h, int heads, long r)
{
    if (grouped)
        /* ceil(heads / r) without heads + r - 1, which overflows for a
         * dilation near the limit (as lnet_plugin_head_offset). */
        return (int)(h / lnet_ceil_div(heads, r));
    return (int)(h % r);
}

/* The selected indices j (row first + j*r) with lo <= row < hi: [*a, *b). */
inline void lnet_sel_range(long first, long r, long n_sel, long lo, long hi, long *a, long *b)
{
    *a = lo > first ? lnet_ceil_div(lo - first, r) : 0;
    *b = hi > first ? lnet_ceil_div(hi - first, r) : 0;
    if (*b > n_sel)
        *b = n_sel;
}

inline lnet_seg lnet_segment(long s, long N, long w, long r, int o, long row_begin, long row_end,
                             long kv_base, long kv_rows)
{
    lnet_seg g;
    const long start = s * w;
    /* min(start + w, N) without forming start + w, which could overflow. */
    const long end = (w > N - start) ? N : start + w;
    g.first = start + o;
    g.n_sel = g.first < end ? lnet_ceil_div(end - g.first, r) : 0;
    lnet_sel_range(g.first, r, g.n_sel, row_begin, row_end, &g.j_lo, &g.j_hi);
    lnet_sel_range(g.first, r, g.n_sel, kv_base, kv_base + kv_rows, &g.k_lo, &g.k_hi);
    return g;
}

/* Whether selected query jq has a key: one of [k_lo, k_hi), and (causal)
 * one not after jq itself. */
inline int lnet_has_key(long jq, long k_lo, long k_hi, int causal)
{
    const long lim = causal && jq + 1 < k_hi ? jq + 1 : k_hi;
    return lim > k_lo;
}
