#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* ocl_plugin.c — the OpenCL backend's plugin table: buffers in device
 * memory (clCreateBuffer, blocking reads and writes), the checks of a job
 * (its row windows included: both kernels honour them, and the devices say
 * so with LNET_PLUGIN_CAP_WINDOWS), and the choice between the "fused"
 * kernel (ocl_fused.c, the default) and the CLBlast "gemm" path
 * (ocl_gemm.c); the backward pass (run_segment_backward) is the fused
 * one (ocl_backward.c) for both. Devices: ocl_device.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_backend.h"
#include "ocl_device.h"

/* ------------------------------------------------------------ buffers */

/* Allocation and the blocking copies: opencl-common/ocl_buffer.c. */
static int ocl_buffer_alloc(void *device, size_t bytes, void **buffer)
{
    ocl_device *dev = device;
    if (!dev) {
        if (buffer)
            *buffer = NULL;
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "opencl buffer_alloc: device is NULL");
    }
    return ocl_buffer_new(dev->context, &dev->info, bytes, buffer);
}

static void ocl_buffer_free(void *device, void *buffer)
{
    (void)device;
    ocl_buffer_release(buffer);
}

static int ocl_buffer_write(void *device, void *buffer, size_t offset, const void *src,
                            size_t bytes)
{
    ocl_device *dev = device;
    return ocl_buffer_copy(dev ? dev->queue : NULL, buffer, 1, offset, (void *)src, bytes);
}

static int ocl_buffer_read(void *device, void *buffer, size_t offset, void *dst, size_t bytes)
{
    ocl_device *dev = device;
    return ocl_buffer_copy(dev ? dev->queue : NULL, buffer, 0, offset, dst, bytes);
}

/* The write is queued on the copy queue behind a marker of the jobs queued
 * so far (which may still read the buffer); the next job that uses the
 * buffer waits for its event (see ocl_wait_pending). */
static int ocl_buffer_write_async(void *device, void *buffer, size_t offset, const void *src,
                                  size_t bytes)
{
    ocl_device *dev = device;
    ocl_buffer *buf = buffer;
    if (!dev || !buf)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "opencl buffer_write_async: %s is NULL",
                        !dev ? "device" : "buffer");
    int st = ocl_buffer_range("buffer_write_async", buf, offset, bytes);
    if (st || bytes == 0)
        return st;
    if (!src)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID,
                        "opencl buffer_write_async: source is NULL for %zu bytes", bytes);
    cl_int err;
    if (!dev->copy_queue) {
        dev->copy_queue = clCreateCommandQueue(dev->context, dev->info.id, 0, &err);
        if (!dev->copy_queue)
            return ocl_fail_cl("buffer_write_async", "clCreateCommandQueue", err);
    }
    cl_event jobs_done, written;
    err = clEnqueueMarkerWithWaitList(dev->queue, 0, NULL, &jobs_done);
    if (err != CL_SUCCESS)
        return ocl_fail_cl("buffer_write_async", "clEnqueueMarkerWithWaitList", err);
    /* Two writes to one buffer in a row stay in order on the copy queue. */
    err = clEnqueueWriteBuffer(dev->copy_queue, buf->mem, CL_FALSE, offset, bytes, src, 1,
                               &jobs_done, &written);
    clReleaseEvent(jobs_done);
    if (err != CL_SUCCESS)
        return ocl_fail_cl("buffer_write_async", "clEnqueueWriteBuffer", err);
    clFlush(dev->queue);
    clFlush(dev->copy_queue);
    if (buf->pending)
        clReleaseEvent(buf->pending);
    buf->pending = written;
    return LNET_PLUGIN_OK;
}

/* A job waits for the asynchronous writes of the buffers it uses (n of
 * them, at most 16): one barrier on the job queue, so that the kernels
 * need not know. */
static int ocl_wait_pending(ocl_device *dev, ocl_buffer *const *bufs, int n_bufs)
{
    cl_event events[16];
    cl_uint n = 0;
    for (int i = 0; i < n_bufs; i++) {
        if (bufs[i]->pending) {
            events[n++] = bufs[i]->pending;
            bufs[i]->pending = NULL;
        }
    }
    if (n == 0)
        return LNET_PLUGIN_OK;
    cl_int err = clEnqueueBarrierWithWaitList(dev->queue, n, events, NULL);
    for (cl_uint i = 0; i < n; i++)
        clReleaseEvent(events[i]);
    return err == CL_SUCCESS ? LNET_PLUGIN_OK
                             : ocl_fail_cl("run_segment", "clEnqueueBarrierWithWaitList", err);
}

static int ocl_synchronize(void *device)
{
    ocl_device *dev = device;
    if (!dev)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "opencl synchronize: device is NULL");
    if (dev->copy_queue) {
        cl_int cerr = clFinish(dev->copy_queue);
        if (cerr != CL_SUCCESS)
            return ocl_fail_cl("synchronize", "clFinish", cerr);
    }
    cl_int err = clFinish(dev->queue);
    return err == CL_SUCCESS ? LNET_PLUGIN_OK : ocl_fail_cl("synchronize", "clFinish", err);
}

/* --------------------------------------------------------- run_segment */

/* The SDK's shared checks (fields, windows, sizes), then this backend's
 * own limits and the buffers. Fills the window and the bytes of the
 * query-side, key-side and lse-like buffers (for the backward's own). */
static int ocl_check_job(const lnet_segment_job *job, ocl_window *win, size_t sizes[3])
{
    size_t q_bytes, kv_bytes, lse_bytes;
    char msg[512];
    int st = lnet_plugin_job_check(job, "opencl", win, &q_bytes, &kv_bytes, &lse_bytes, msg,
                                   sizeof msg);
    /* The SDK's words start "opencl run_segment: "; a backward job's
     * messages name their own slot. */
    static const char fwd[] = "opencl run_segment: ";
    if (st)
        return sizes && strncmp(msg, fwd, sizeof fwd - 1) == 0
                   ? ocl_fail(st, "opencl run_segment_backward: %s", msg + sizeof fwd - 1)
                   : ocl_fail(st, "%s", msg);
    /* The kernels index heads and batch x heads with 32-bit ints. */
    if (job->heads > INT32_MAX || job->batch > INT32_MAX / job->heads)
        return ocl_fail(LNET_PLUGIN_ERR_UNSUPPORTED,
                        "opencl run_segment: batch x heads = %lld x %lld is more than the kernels "
                        "index (2^31 - 1)",
                        (long long)job->batch, (long long)job->heads);
    if (job->dim > 4096)
        return ocl_fail(LNET_PLUGIN_ERR_UNSUPPORTED,
                        "opencl run_segment: dim = %lld; the kernels keep a row in private "
                        "memory and take D <= 4096",
                        (long long)job->dim);
    const char *slot = sizes ? "run_segment_backward" : "run_segment";
    if ((st = ocl_buffer_check(slot, "q", job->q, q_bytes, win->q_rows)) ||
        (st = ocl_buffer_check(slot, "k", job->k, kv_bytes, win->kv_rows)) ||
        (st = ocl_buffer_check(slot, "v", job->v, kv_bytes, win->kv_rows)) ||
        (st = ocl_buffer_check(slot, "out", job->out, q_bytes, win->q_rows)) ||
        (st = ocl_buffer_check(slot, "lse", job->lse, lse_bytes, win->q_rows)))
        return st;
    if (sizes) {
        sizes[0] = q_bytes;
        sizes[1] = kv_bytes;
        sizes[2] = lse_bytes;
    }
    return LNET_PLUGIN_OK;
}

/* The kernels of this build, for messages. */
static const char *ocl_kernel_list(void)
{
    return ocl_have_gemm() ? "fused,gemm" : "fused";
}

/* 0 when `kernel` is one this build runs; else the failure of `slot`. */
static int ocl_check_kernel(const char *slot, const char *kernel)
{
    if (strcmp(kernel, "fused") == 0 || (strcmp(kernel, "gemm") == 0 && ocl_have_gemm()))
        return LNET_PLUGIN_OK;
    return ocl_fail(LNET_PLUGIN_ERR_UNSUPPORTED,
                    "opencl %s: unknown kernel '%.200s' (available: %s)%s", slot, kernel,
                    ocl_kernel_list(),
                    strcmp(kernel, "gemm") == 0 ? "; this build has no CLBlast" : "");
}

static int ocl_run_segment(void *device, const lnet_segment_job *job)
{
    if (!device)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "opencl run_segment: device is NULL");
    if (!job)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "opencl run_segment: job is NULL");
    ocl_window win;
    int st = ocl_check_job(job, &win, NULL);
    if (st)
        return st;
    ocl_buffer *const bufs[5] = {job->q, job->k, job->v, job->out, job->lse};
    if ((st = ocl_wait_pending(device, bufs, 5)))
        return st;
    const char *kernel = job->kernel && job->kernel[0] ? job->kernel : "fused";
    if ((st = ocl_check_kernel("run_segment", kernel)))
        return st;
    return strcmp(kernel, "fused") == 0 ? ocl_run_fused(device, job, &win)
                                        : ocl_run_gemm(device, job, &win);
}

/* One level of the backward pass (ABI 2): the level's checks as a forward
 * job's (init, unused here, taken as 0), then the backward's own buffers.
 * Both kernels run the fused backward (ocl_backward.c): gemm has no
 * backward of its own. */
static int ocl_run_segment_backward(void *device, const lnet_segment_backward_job *job)
{
    if (!device)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "opencl run_segment_backward: device is NULL");
    if (!job)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "opencl run_segment_backward: job is NULL");
    const size_t min_size = offsetof(lnet_segment_backward_job, dv) + sizeof(void *);
    if (job->size < min_size)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID,
                        "opencl run_segment_backward: job size %zu is smaller than the %zu "
                        "bytes of ABI %u",
                        job->size, min_size, LNET_PLUGIN_ABI_VERSION);
    lnet_segment_backward_job bj = *job;
    if (bj.level.size >= offsetof(lnet_segment_job, init) + sizeof(int))
        bj.level.init = 0;
    ocl_window win;
    size_t sz[3];
    int st = ocl_check_job(&bj.level, &win, sz);
    if (st)
        return st;
    const char *slot = "run_segment_backward";
    if ((st = ocl_buffer_check(slot, "dout", job->dout, sz[0], win.q_rows)) ||
        (st = ocl_buffer_check(slot, "delta", job->delta, sz[2], win.q_rows)) ||
        (st = ocl_buffer_check(slot, "dq", job->dq, sz[0], win.q_rows)) ||
        (st = ocl_buffer_check(slot, "dk", job->dk, sz[1], win.kv_rows)) ||
        (st = ocl_buffer_check(slot, "dv", job->dv, sz[1], win.kv_rows)))
        return st;
    const char *kernel = bj.level.kernel && bj.level.kernel[0] ? bj.level.kernel : "fused";
    if ((st = ocl_check_kernel(slot, kernel)))
        return st;
    ocl_buffer *const bufs[10] = {bj.level.q, bj.level.k, bj.level.v, bj.level.out,
                                  bj.level.lse, job->dout, job->delta, job->dq,
                                  job->dk, job->dv};
    if ((st = ocl_wait_pending(device, bufs, 10)))
        return st;
    return ocl_run_backward(device, &bj, &win);
}

/* Whether a job could run here (ABI 2): float32, and a kernel this build
 * has (gemm needs CLBlast). Tile and head-dim limits are checked when a
 * program is built, with their own messages. */
static int ocl_supports(void *device, const lnet_segment_job *job)
{
    (void)device;
    if (!job) {
        ocl_fail(LNET_PLUGIN_ERR_INVALID, "opencl supports: job is NULL");
        return 0;
    }
    if (LNET_PLUGIN_JOB_DTYPE(job) != LNET_PLUGIN_DTYPE_F32) {
        ocl_fail(LNET_PLUGIN_ERR_UNSUPPORTED, "%s", lnet_plugin_dtype_unsupported(job));
        return 0;
    }
    const char *kernel = job->kernel && job->kernel[0] ? job->kernel : "fused";
    if (strcmp(kernel, "fused") == 0 || (strcmp(kernel, "gemm") == 0 && ocl_have_gemm()))
        return 1;
    ocl_fail(LNET_PLUGIN_ERR_UNSUPPORTED, "no kernel '%.200s' (it has: %s)%s", kernel,
             ocl_kernel_list(),
             strcmp(kernel, "gemm") == 0 ? "; this build has no CLBlast" : "");
    return 0;
}

/* -------------------------------------------------------------- entry */

static const lnet_plugin ocl_plugin = {
    .abi_version = LNET_PLUGIN_ABI_VERSION,
    .size = sizeof(lnet_plugin),
    .name = "opencl",
    .description = "OpenCL devices through the ICD loader (fused kernel; CLBlast gemm path; "
                   "backward pass: the fused kernel, for both)",
    .probe = ocl_probe,
    .shutdown = ocl_shutdown,
    .describe = ocl_describe,
    .open = ocl_open,
    .close = ocl_close,
    .buffer_alloc = ocl_buffer_alloc,
    .buffer_wrap_host = NULL,
    .buffer_free = ocl_buffer_free,
    .buffer_write = ocl_buffer_write,
    .buffer_read = ocl_buffer_read,
    .run_segment = ocl_run_segment,
    .synchronize = ocl_synchronize,
    .last_error = ocl_last_error,
    .buffer_write_async = ocl_buffer_write_async,
    .supports = ocl_supports,
    .run_segment_backward = ocl_run_segment_backward,
    .take_warning = ocl_take_warning,
};

LNET_PLUGIN_EXPORT const lnet_plugin *lnet_plugin_entry(void);

LNET_PLUGIN_EXPORT const lnet_plugin *lnet_plugin_entry(void)
{
    return &ocl_plugin;
}
