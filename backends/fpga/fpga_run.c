#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* fpga_run.c — one job on the FPGA: the reader, compute and writer
 * kernels (kernels/fpga/dilated_attention_fpga.cl) launched as tasks on
 * three queues, so that they run at once and stream through their
 * channels; a single in-order queue would run the reader alone until its
 * channel filled, and never return. The job's rows are every (batch x
 * head) pair and the segments [s_first, s_last] that cross its row range,
 * walked inside the kernels. */
#include <stdio.h>

#include "fpga_backend.h"
#include "longnet-plugin-math.h"

#define FPGA_ARG(kern, x)                                                                    \
    do {                                                                                   \
        if ((err = clSetKernelArg(kern, a, sizeof(x), &(x))) != CL_SUCCESS)                \
            return ocl_fail(LNET_PLUGIN_ERR_DEVICE, "fpga run_segment: clSetKernelArg(%u, %s): %s", \
                            a, #x, ocl_error_name(err));                                   \
        a++;                                                                               \
    } while (0)

/* The arguments all three kernels take after their own (LNET_JOB_ARGS). */
typedef struct fpga_job_args {
    cl_long N;
    cl_int H;
    cl_long w, r;
    cl_int grouped, causal;
    cl_long row_begin, row_end, q_base, q_rows, kv_base, kv_rows, s_first, s_last;
    cl_int n_bh;
} fpga_job_args;

static int fpga_set_job_args(cl_kernel kern, cl_uint a, const fpga_job_args *j)
{
    cl_int err;
    FPGA_ARG(kern, j->N);
    FPGA_ARG(kern, j->H);
    FPGA_ARG(kern, j->w);
    FPGA_ARG(kern, j->r);
    FPGA_ARG(kern, j->grouped);
    FPGA_ARG(kern, j->causal);
    FPGA_ARG(kern, j->row_begin);
    FPGA_ARG(kern, j->row_end);
    FPGA_ARG(kern, j->q_base);
    FPGA_ARG(kern, j->q_rows);
    FPGA_ARG(kern, j->kv_base);
    FPGA_ARG(kern, j->kv_rows);
    FPGA_ARG(kern, j->s_first);
    FPGA_ARG(kern, j->s_last);
    FPGA_ARG(kern, j->n_bh);
    return LNET_PLUGIN_OK;
}

static int fpga_config_of(const fpga_device *dev, int64_t dim, fpga_config *cfg)
{
    if (dim > FPGA_MAX_DIM)
        return ocl_fail(LNET_PLUGIN_ERR_UNSUPPORTED,
                        "fpga run_segment: dim = %lld; the kernels hold rows on chip and take "
                        "D <= %d",
                        (long long)dim, FPGA_MAX_DIM);
    cfg->dim = (int)dim;
    cfg->tile_q = dev->tile_q > 0 ? dev->tile_q : FPGA_DEFAULT_TILE;
    cfg->tile_k = dev->tile_k > 0 ? dev->tile_k : FPGA_DEFAULT_TILE;
    return LNET_PLUGIN_OK;
}

int fpga_run(fpga_device *dev, const lnet_segment_job *job, const lnet_plugin_window *win)
{
    if (job->row_begin >= job->row_end)
        return LNET_PLUGIN_OK;
    fpga_config cfg;
    fpga_program *prog;
    int st;
    if ((st = fpga_config_of(dev, job->dim, &cfg)) || (st = fpga_get_program(dev, &cfg, &prog)))
        return st;
    const fpga_job_args j = {
        .N = job->rows,
        .H = (cl_int)job->heads,
        .w = job->segment,
        .r = job->dilation,
        .grouped = job->offsets == LNET_PLUGIN_OFFSETS_GROUPED,
        .causal = job->causal,
        .row_begin = job->row_begin,
        .row_end = job->row_end,
        .q_base = win->q_base,
        .q_rows = win->q_rows,
        .kv_base = win->kv_base,
        .kv_rows = win->kv_rows,
        .s_first = job->row_begin / job->segment,
        .s_last = (job->row_end - 1) / job->segment,
        .n_bh = (cl_int)(job->batch * job->heads),
    };
    cl_mem q = ((ocl_buffer *)job->q)->mem, k = ((ocl_buffer *)job->k)->mem,
           v = ((ocl_buffer *)job->v)->mem, out = ((ocl_buffer *)job->out)->mem,
           lse = ((ocl_buffer *)job->lse)->mem;
    cl_float scale = job->scale;
    cl_int init = job->init, err;
    cl_uint a = 0;
    FPGA_ARG(prog->reader, q);
    FPGA_ARG(prog->reader, k);
    FPGA_ARG(prog->reader, v);
    if ((st = fpga_set_job_args(prog->reader, a, &j)))
        return st;
    a = 0;
    FPGA_ARG(prog->compute, scale);
    if ((st = fpga_set_job_args(prog->compute, a, &j)))
        return st;
    a = 0;
    FPGA_ARG(prog->writer, out);
    FPGA_ARG(prog->writer, lse);
    FPGA_ARG(prog->writer, init);
    if ((st = fpga_set_job_args(prog->writer, a, &j)))
        return st;

    /* The buffers' writes went to dev->queue: the reader and compute
     * queues start after them. */
    if ((err = clFinish(dev->queue)) != CL_SUCCESS)
        return ocl_fail_cl("run_segment", "clFinish", err);
    const struct {
        cl_command_queue queue;
        cl_kernel kern;
        const char *name;
    } tasks[3] = {{dev->reader_q, prog->reader, "reader"},
                  {dev->compute_q, prog->compute, "compute"},
                  {dev->queue, prog->writer, "writer"}};
    /* The three start together or not at all: each waits on one user
     * event, completed only once all three are queued (a chain with a
     * stage missing would never finish); on a failure it is set to an
     * error, which drops the ones queued. */
    cl_event gate = clCreateUserEvent(dev->context, &err);
    if (err != CL_SUCCESS)
        return ocl_fail_cl("run_segment", "clCreateUserEvent", err);
    int launched = 0;
    for (; launched < 3; launched++)
        if ((err = clEnqueueTask(tasks[launched].queue, tasks[launched].kern, 1, &gate, NULL)) !=
            CL_SUCCESS)
            break;
    clSetUserEventStatus(gate, launched == 3 ? CL_COMPLETE : -1);
    clReleaseEvent(gate);
    if (launched < 3)
        return ocl_fail(err == CL_OUT_OF_HOST_MEMORY ? LNET_PLUGIN_ERR_NOMEM : LNET_PLUGIN_ERR_DEVICE,
                        "fpga run_segment: clEnqueueTask(%s): %s (D=%d, tile_q=%d, tile_k=%d)",
                        tasks[launched].name, ocl_error_name(err), cfg.dim, cfg.tile_q,
                        cfg.tile_k);
    for (int i = 0; i < 3; i++)
        clFlush(tasks[i].queue);
    /* Jobs fold into the same (out, lse) one after another: the next job's
     * reader must not start before this writer is done. */
    for (int i = 0; i < 3; i++)
        if ((err = clFinish(tasks[i].queue)) != CL_SUCCESS)
            return ocl_fail_cl("run_segment", "clFinish", err);
    return LNET_PLUGIN_OK;
}
