#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* ocl_fused.c — the "fused" kernel's launch (kernels/dilated_attention.cl):
 * one pass over Q, K, V per level, no scratch memory. It has two forms: the
 * tiled one (work-groups sharing key tiles in local memory, for GPUs) and
 * the rows one (a work-item a block of query rows as vector lanes, no
 * barrier, for CPU devices, where the work-items of a group run in a loop
 * and a barrier would split it). Both honour the row windows. The plan
 * (program, form, grid) and the launch are shared with the backward pass
 * (ocl_backward.c). */
#include <stdio.h>
#include <string.h>

#include "ocl_backend.h"

/* Some drivers cap a grid at 65535 groups in the second and third
 * dimensions; larger grids are cut into several launches. */
#define OCL_MAX_GROUPS_YZ 65535

/* The program for the job's D with tiles the compiled kernels can run: a
 * driver may allow a kernel fewer work-items than the device maximum (many
 * registers); then a chosen tile_q shrinks, an overridden one is an error. */
static int ocl_fused_program(ocl_device *dev, int64_t dim, int backward, ocl_program **prog,
                             int *tile_q)
{
    int tq, tk;
    int st = ocl_choose_tiles(dev, dim, &tq, &tk);
    if (st)
        return st;
    for (;;) {
        if ((st = ocl_get_program(dev, dim, tq, tk, prog)))
            return st;
        const size_t wg = backward ? (*prog)->bwd_wg : (*prog)->fused_wg;
        if ((size_t)tq <= wg)
            break;
        if (dev->tile_q > 0 || tq == 1)
            return ocl_fail(LNET_PLUGIN_ERR_INVALID,
                            "opencl run_segment%s: tile_q=%d is more than the %zu work-items the "
                            "fused %s kernels for D=%lld may use on %s",
                            backward ? "_backward" : "", tq, wg,
                            backward ? "backward" : "forward", (long long)dim, dev->info.name);
        while ((size_t)tq > wg && tq > 1)
            tq /= 2;
    }
    *tile_q = tq;
    return LNET_PLUGIN_OK;
}

/* Sets argument `a` of `kern` to x and moves on; on failure, returns. */
#define OCL_ARG(x) OCL_SET_ARG("fused", kern, x)

int ocl_fused_uses_rows(const ocl_device *dev, int64_t dim)
{
    if (dim > OCL_ROWS_MAX_DIM)
        return 0;
    if (dev->variant != OCL_VARIANT_AUTO)
        return dev->variant == OCL_VARIANT_ROWS;
    /* Tiles given as options ask for the tiled kernel; otherwise a CPU
     * device (no local memory of its own, work-items run in a loop) gets
     * the rows kernel and every other device the tiled one. */
    if (dev->tile_q > 0 || dev->tile_k > 0)
        return 0;
    return strcmp(dev->info.kind, "cpu") == 0;
}

int ocl_fused_prepare(ocl_device *dev, const lnet_segment_job *job, int backward,
                      ocl_fused_plan *plan)
{
    const int64_t N = job->rows, w = job->segment;
    plan->s_first = job->row_begin / w;
    plan->s_last = (job->row_end - 1) / w;
    plan->n_bh = job->batch * job->heads;
    /* Selected rows of one segment inside [row_begin, row_end): rows r
     * apart in an interval of min(w, N, row_end - row_begin) rows. */
    plan->seg = w < N ? w : N;
    plan->q_span = plan->seg < job->row_end - job->row_begin ? plan->seg
                                                             : job->row_end - job->row_begin;
    plan->rows = ocl_fused_uses_rows(dev, job->dim);
    if (!plan->rows)
        return ocl_fused_program(dev, job->dim, backward, &plan->prog, &plan->tile_q);
    /* The rows kernels ignore the tiles; the program is the one the tiled
     * kernels would use, so that a D needs one build. */
    int tq, tk, st;
    if ((st = ocl_choose_tiles(dev, job->dim, &tq, &tk)) ||
        (st = ocl_get_program(dev, job->dim, tq, tk, &plan->prog)))
        return st;
    if (!plan->prog->fused_rows || !plan->prog->bwd_dq_rows)
        return ocl_fail(LNET_PLUGIN_ERR_DEVICE,
                        "opencl fused: the program for D=%lld has no rows kernels",
                        (long long)job->dim);
    plan->tile_q = OCL_ROWS_RV;
    return LNET_PLUGIN_OK;
}

int ocl_launch_segments(ocl_device *dev, cl_kernel kern, cl_uint a_grid, int64_t s_first,
                        int64_t s_last, int64_t n_bh, size_t global0, size_t local0,
                        const char *name, int64_t dim)
{
    cl_int err;
    cl_uint a;
    for (int64_t s0 = s_first; s0 <= s_last; s0 += OCL_MAX_GROUPS_YZ) {
        int64_t n_seg = s_last - s0 + 1;
        if (n_seg > OCL_MAX_GROUPS_YZ)
            n_seg = OCL_MAX_GROUPS_YZ;
        for (int64_t bh0 = 0; bh0 < n_bh; bh0 += OCL_MAX_GROUPS_YZ) {
            int64_t n_grp = n_bh - bh0 < OCL_MAX_GROUPS_YZ ? n_bh - bh0 : OCL_MAX_GROUPS_YZ;
            cl_long s0_l = s0;
            cl_int bh0_i = (cl_int)bh0;
            a = a_grid;
            OCL_SET_ARG("fused", kern, s0_l);
            OCL_SET_ARG("fused", kern, bh0_i);
            size_t global[3] = {global0, (size_t)n_seg, (size_t)n_grp};
            size_t local[3] = {local0, 1, 1};
            err = clEnqueueNDRangeKernel(dev->queue, kern, 3, NULL, global, local, 0, NULL, NULL);
            if (err != CL_SUCCESS)
                return ocl_fail(err == CL_OUT_OF_HOST_MEMORY ? LNET_PLUGIN_ERR_NOMEM
                                                             : LNET_PLUGIN_ERR_DEVICE,
                                "opencl fused: clEnqueueNDRangeKernel(%s): %s (global %zu x %zu "
                                "x %zu, local %zu, D=%lld)",
                                name, ocl_error_name(err), global[0], global[1], global[2],
                                local[0], (long long)dim);
        }
    }
    return LNET_PLUGIN_OK;
}

int ocl_run_fused(ocl_device *dev, const lnet_segment_job *job, const ocl_window *win)
{
    if (job->row_begin >= job->row_end)
        return LNET_PLUGIN_OK;
    ocl_fused_plan plan;
    int st = ocl_fused_prepare(dev, job, 0, &plan);
    if (st)
        return st;
    const int rows_kernel = plan.rows, tile_q = plan.tile_q;
    ocl_program *prog = plan.prog;
    const int64_t q_tiles =
        lnet_plugin_ceil_div(lnet_plugin_ceil_div(plan.q_span, job->dilation), tile_q);

    cl_kernel kern = rows_kernel ? prog->fused_rows : prog->fused;
    cl_mem q = ((ocl_buffer *)job->q)->mem, k = ((ocl_buffer *)job->k)->mem,
           v = ((ocl_buffer *)job->v)->mem, out = ((ocl_buffer *)job->out)->mem,
           lse = ((ocl_buffer *)job->lse)->mem;
    cl_long n_l = job->rows, w_l = job->segment, r_l = job->dilation, rb = job->row_begin,
            re = job->row_end;
    cl_long qb = win->q_base, qn = win->q_rows, kb = win->kv_base, kn = win->kv_rows;
    cl_int H = (cl_int)job->heads, grouped = job->offsets == LNET_PLUGIN_OFFSETS_GROUPED;
    cl_int causal = job->causal, init = job->init;
    cl_float scale = job->scale;
    cl_int err;
    cl_uint a = 0;
    OCL_ARG(q);
    OCL_ARG(k);
    OCL_ARG(v);
    OCL_ARG(out);
    OCL_ARG(lse);
    OCL_ARG(n_l);
    OCL_ARG(H);
    OCL_ARG(w_l);
    OCL_ARG(r_l);
    OCL_ARG(grouped);
    OCL_ARG(causal);
    OCL_ARG(init);
    OCL_ARG(scale);
    OCL_ARG(rb);
    OCL_ARG(re);
    OCL_ARG(qb);
    OCL_ARG(qn);
    OCL_ARG(kb);
    OCL_ARG(kn);
    const cl_uint a_grid = a;

    /* The rows kernel: one work-item a group (it has no barrier; a CPU
     * runtime schedules groups across its cores). */
    return ocl_launch_segments(dev, kern, a_grid, plan.s_first, plan.s_last, plan.n_bh,
                               (size_t)q_tiles * (rows_kernel ? 1 : (size_t)tile_q),
                               rows_kernel ? 1 : (size_t)tile_q,
                               rows_kernel ? "lnet_dilated_fwd_rows" : "lnet_dilated_fwd",
                               job->dim);
}
