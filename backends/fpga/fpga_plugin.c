#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* fpga_plugin.c — the FPGA backend's plugin table: buffers in device
 * memory (opencl-common/ocl_buffer.c), the checks of a job (its row windows
 * included: the kernels honour them, and the devices say so with
 * LNET_PLUGIN_CAP_WINDOWS), and the forward pass (fpga_run.c). There is no
 * backward pass: run_segment_backward is NULL, and the core refuses to
 * place a backward job on an FPGA device, saying so. Devices:
 * fpga_device.c; programs and binaries: fpga_program.c. */
#include <string.h>

#include "fpga_backend.h"

static int fpga_buffer_alloc(void *device, size_t bytes, void **buffer)
{
    fpga_device *dev = device;
    if (!dev) {
        if (buffer)
            *buffer = NULL;
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "fpga buffer_alloc: device is NULL");
    }
    return ocl_buffer_new(dev->context, &dev->info, bytes, buffer);
}

static void fpga_buffer_free(void *device, void *buffer)
{
    (void)device;
    ocl_buffer_release(buffer);
}

static int fpga_buffer_write(void *device, void *buffer, size_t offset, const void *src,
                             size_t bytes)
{
    fpga_device *dev = device;
    return ocl_buffer_copy(dev ? dev->queue : NULL, buffer, 1, offset, (void *)src, bytes);
}

static int fpga_buffer_read(void *device, void *buffer, size_t offset, void *dst, size_t bytes)
{
    fpga_device *dev = device;
    return ocl_buffer_copy(dev ? dev->queue : NULL, buffer, 0, offset, dst, bytes);
}

static int fpga_synchronize(void *device)
{
    fpga_device *dev = device;
    if (!dev)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "fpga synchronize: device is NULL");
    cl_int err = clFinish(dev->queue);
    return err == CL_SUCCESS ? LNET_PLUGIN_OK : ocl_fail_cl("synchronize", "clFinish", err);
}

/* The SDK's shared checks (fields, windows, sizes), this backend's kernel
 * name and index limits, then the buffers. */
static int fpga_run_segment(void *device, const lnet_segment_job *job)
{
    if (!device)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "fpga run_segment: device is NULL");
    if (!job)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "fpga run_segment: job is NULL");
    lnet_plugin_window win;
    size_t q_bytes, kv_bytes, lse_bytes;
    char msg[512];
    int st = lnet_plugin_job_check(job, "fpga", &win, &q_bytes, &kv_bytes, &lse_bytes, msg,
                                   sizeof msg);
    if (st)
        return ocl_fail(st, "%s", msg);
    const char *kernel = job->kernel && job->kernel[0] ? job->kernel : "fused";
    if (strcmp(kernel, "fused") != 0)
        return ocl_fail(LNET_PLUGIN_ERR_UNSUPPORTED,
                        "fpga run_segment: unknown kernel '%.200s' (available: fused)", kernel);
    /* The kernels index heads and batch x heads with 32-bit ints. */
    if (job->heads > INT32_MAX || job->batch > INT32_MAX / job->heads)
        return ocl_fail(LNET_PLUGIN_ERR_UNSUPPORTED,
                        "fpga run_segment: batch x heads = %lld x %lld is more than the kernels "
                        "index (2^31 - 1)",
                        (long long)job->batch, (long long)job->heads);
    const char *slot = "run_segment";
    if ((st = ocl_buffer_check(slot, "q", job->q, q_bytes, win.q_rows)) ||
        (st = ocl_buffer_check(slot, "k", job->k, kv_bytes, win.kv_rows)) ||
        (st = ocl_buffer_check(slot, "v", job->v, kv_bytes, win.kv_rows)) ||
        (st = ocl_buffer_check(slot, "out", job->out, q_bytes, win.q_rows)) ||
        (st = ocl_buffer_check(slot, "lse", job->lse, lse_bytes, win.q_rows)))
        return st;
    return fpga_run(device, job, &win);
}

/* Whether a job could run here (ABI 2): float32 and the fused kernel. */
static int fpga_supports(void *device, const lnet_segment_job *job)
{
    (void)device;
    if (!job) {
        ocl_fail(LNET_PLUGIN_ERR_INVALID, "fpga supports: job is NULL");
        return 0;
    }
    if (LNET_PLUGIN_JOB_DTYPE(job) != LNET_PLUGIN_DTYPE_F32) {
        ocl_fail(LNET_PLUGIN_ERR_UNSUPPORTED, "%s", lnet_plugin_dtype_unsupported(job));
        return 0;
    }
    const char *kernel = job->kernel && job->kernel[0] ? job->kernel : "fused";
    if (strcmp(kernel, "fused") == 0)
        return 1;
    ocl_fail(LNET_PLUGIN_ERR_UNSUPPORTED, "no kernel '%.200s' (it has: fused)", kernel);
    return 0;
}

static const lnet_plugin fpga_plugin = {
    .abi_version = LNET_PLUGIN_ABI_VERSION,
    .size = sizeof(lnet_plugin),
    .name = "fpga",
    .description = "FPGAs through OpenCL (Intel FPGA SDK / oneAPI FPGA runtime and its "
                   "emulator): reader -> compute -> writer single work-item kernels over "
                   "channels; precompiled binaries from LONGNET_FPGA_BINARY_DIR; forward only",
    .probe = fpga_probe,
    .shutdown = fpga_shutdown,
    .describe = fpga_describe,
    .open = fpga_open,
    .close = fpga_close,
    .buffer_alloc = fpga_buffer_alloc,
    .buffer_wrap_host = NULL,
    .buffer_free = fpga_buffer_free,
    .buffer_write = fpga_buffer_write,
    .buffer_read = fpga_buffer_read,
    .run_segment = fpga_run_segment,
    .synchronize = fpga_synchronize,
    .last_error = ocl_last_error,
    .buffer_write_async = NULL,
    .supports = fpga_supports,
    .run_segment_backward = NULL,
    .take_warning = ocl_take_warning,
};

LNET_PLUGIN_EXPORT const lnet_plugin *lnet_plugin_entry(void);

LNET_PLUGIN_EXPORT const lnet_plugin *lnet_plugin_entry(void)
{
    return &fpga_plugin;
}
