#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* ocl_backward.c — the fused backward pass's launch
 * (kernels/dilated_attention_backward.cl): one kernel over the job's query
 * rows for dQ, then one over the K/V window's key rows for dK and dV, each
 * recomputing P from the forward's final LSE; no scratch memory and no
 * atomics (each row has one owner). The form (tiled or rows) and the tiles
 * are the forward's (ocl_fused_setup), and so is the program. */
#include "ocl_backend.h"

#define OCL_ARG(kern, x) OCL_SET_ARG("run_segment_backward", kern, x)

/* The arguments both kernels take (LNET_BWD_ARGS) but the grid's last two. */
static int ocl_backward_args(cl_kernel kern, const lnet_segment_backward_job *job,
                             const ocl_window *win, cl_uint *n_args)
{
    const lnet_segment_job *lv = &job->level;
    cl_mem q = ((ocl_buffer *)lv->q)->mem, k = ((ocl_buffer *)lv->k)->mem,
           v = ((ocl_buffer *)lv->v)->mem, dout = ((ocl_buffer *)job->dout)->mem,
           lse = ((ocl_buffer *)lv->lse)->mem, delta = ((ocl_buffer *)job->delta)->mem,
           dq = ((ocl_buffer *)job->dq)->mem, dk = ((ocl_buffer *)job->dk)->mem,
           dv = ((ocl_buffer *)job->dv)->mem;
    cl_long n_l = lv->rows, w_l = lv->segment, r_l = lv->dilation, rb = lv->row_begin;
    cl_long re = lv->row_end;
    cl_long qb = win->q_base, qn = win->q_rows, kb = win->kv_base, kn = win->kv_rows;
    cl_int H = (cl_int)lv->heads, grouped = lv->offsets == LNET_PLUGIN_OFFSETS_GROUPED;
    cl_int causal = lv->causal;
    cl_float scale = lv->scale;
    cl_int err;
    cl_uint a = 0;
    OCL_ARG(kern, q);
    OCL_ARG(kern, k);
    OCL_ARG(kern, v);
    OCL_ARG(kern, dout);
    OCL_ARG(kern, lse);
    OCL_ARG(kern, delta);
    OCL_ARG(kern, dq);
    OCL_ARG(kern, dk);
    OCL_ARG(kern, dv);
    OCL_ARG(kern, n_l);
    OCL_ARG(kern, H);
    OCL_ARG(kern, w_l);
    OCL_ARG(kern, r_l);
    OCL_ARG(kern, grouped);
    OCL_ARG(kern, causal);
    OCL_ARG(kern, scale);
    OCL_ARG(kern, rb);
    OCL_ARG(kern, re);
    OCL_ARG(kern, qb);
    OCL_ARG(kern, qn);
    OCL_ARG(kern, kb);
    OCL_ARG(kern, kn);
    *n_args = a;
    return LNET_PLUGIN_OK;
}

int ocl_run_backward(ocl_device *dev, const lnet_segment_backward_job *job,
                     const ocl_window *win)
{
    const lnet_segment_job *lv = &job->level;
    if (lv->row_begin >= lv->row_end)
        return LNET_PLUGIN_OK;
    ocl_fused_plan plan;
    int st = ocl_fused_prepare(dev, lv, 1, &plan);
    if (st)
        return st;
    const ocl_program *prog = plan.prog;
    const int rows = plan.rows;
    /* Queries of the job's range own dQ; keys of the K/V window (at most
     * min(w, N, kv_rows) rows of a segment) own dK and dV. */
    const int64_t k_span = plan.seg < win->kv_rows ? plan.seg : win->kv_rows;
    const struct {
        cl_kernel kern;
        const char *name;
        int64_t span;
    } passes[2] = {
        {rows ? prog->bwd_dq_rows : prog->bwd_dq,
         rows ? "lnet_dilated_bwd_dq_rows" : "lnet_dilated_bwd_dq", plan.q_span},
        {rows ? prog->bwd_dkv_rows : prog->bwd_dkv,
         rows ? "lnet_dilated_bwd_dkv_rows" : "lnet_dilated_bwd_dkv", k_span},
    };
    for (int i = 0; i < 2; i++) {
        const int64_t tiles =
            lnet_plugin_ceil_div(lnet_plugin_ceil_div(passes[i].span, lv->dilation), plan.tile_q);
        cl_uint a_grid;
        if ((st = ocl_backward_args(passes[i].kern, job, win, &a_grid)) ||
            (st = ocl_launch_segments(dev, passes[i].kern, a_grid, plan.s_first, plan.s_last,
                                      plan.n_bh,
                                      (size_t)tiles * (rows ? 1 : (size_t)plan.tile_q),
                                      rows ? 1 : (size_t)plan.tile_q,
                                      passes[i].name, lv->dim)))
            return st;
    }
    return LNET_PLUGIN_OK;
}
