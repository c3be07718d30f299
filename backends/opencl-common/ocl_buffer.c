#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* ocl_buffer.c — device buffers (clCreateBuffer, blocking reads and
 * writes) and the check of a job's buffer against the bytes its shape
 * needs: the plugin slots both backends fill the same way. */
#include <stdlib.h>

#include "ocl_common.h"

int ocl_buffer_new(cl_context context, const ocl_devinfo *d, size_t bytes, void **buffer)
{
    if (!buffer)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "%s buffer_alloc: buffer output pointer is NULL",
                        ocl_module_name);
    *buffer = NULL;
    /* Refused before the call: some drivers accept an oversized buffer and
     * fail later, at the first kernel that touches it. */
    if ((cl_ulong)bytes > d->max_alloc || (cl_ulong)bytes > d->global_mem)
        return ocl_fail(LNET_PLUGIN_ERR_NOMEM,
                        "%s buffer_alloc: %zu bytes is more than %s can allocate at once "
                        "(CL_DEVICE_MAX_MEM_ALLOC_SIZE %llu bytes, global memory %llu bytes)",
                        ocl_module_name, bytes, d->name, (unsigned long long)d->max_alloc,
                        (unsigned long long)d->global_mem);
    ocl_buffer *buf = malloc(sizeof *buf);
    if (!buf)
        return ocl_fail(LNET_PLUGIN_ERR_NOMEM, "%s buffer_alloc: out of memory", ocl_module_name);
    cl_int err;
    /* OpenCL refuses zero-sized buffers; a zero-byte one gets 4 bytes. */
    buf->mem = clCreateBuffer(context, CL_MEM_READ_WRITE, bytes ? bytes : 4, NULL, &err);
    if (err != CL_SUCCESS) {
        free(buf);
        return ocl_fail(err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_HOST_MEMORY ||
                                err == CL_INVALID_BUFFER_SIZE
                            ? LNET_PLUGIN_ERR_NOMEM
                            : LNET_PLUGIN_ERR_DEVICE,
                        "%s buffer_alloc: clCreateBuffer(%zu bytes): %s", ocl_module_name, bytes,
                        ocl_error_name(err));
    }
    buf->bytes = bytes;
    buf->pending = NULL;
    *buffer = buf;
    return LNET_PLUGIN_OK;
}

void ocl_buffer_settle(ocl_buffer *buf)
{
    if (buf->pending) {
        clWaitForEvents(1, &buf->pending);
        clReleaseEvent(buf->pending);
        buf->pending = NULL;
    }
}

void ocl_buffer_release(ocl_buffer *buf)
{
    if (!buf)
        return;
    ocl_buffer_settle(buf);
    clReleaseMemObject(buf->mem);
    free(buf);
}

int ocl_buffer_range(const char *what, const ocl_buffer *buf, size_t offset, size_t bytes)
{
    /* offset + bytes <= size, written so that it cannot overflow. */
    if (offset > buf->bytes || bytes > buf->bytes - offset)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID,
                        "%s %s: range of %zu bytes at offset %zu exceeds the buffer's %zu bytes",
                        ocl_module_name, what, bytes, offset, buf->bytes);
    return LNET_PLUGIN_OK;
}

int ocl_buffer_copy(cl_command_queue queue, ocl_buffer *buf, int to_device, size_t offset,
                    void *host, size_t bytes)
{
    const char *slot = to_device ? "buffer_write" : "buffer_read";
    if (!queue || !buf)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "%s %s: %s is NULL", ocl_module_name, slot,
                        !queue ? "device" : "buffer");
    int st = ocl_buffer_range(slot, buf, offset, bytes);
    if (st || bytes == 0)
        return st;
    if (!host)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "%s %s: %s is NULL for %zu bytes",
                        ocl_module_name, slot, to_device ? "source" : "destination", bytes);
    ocl_buffer_settle(buf);
    /* Blocking: the caller may free or reuse the host memory as soon as
     * this returns; a read comes after every queued job (in-order queue). */
    cl_int err = to_device ? clEnqueueWriteBuffer(queue, buf->mem, CL_TRUE, offset, bytes, host,
                                                  0, NULL, NULL)
                           : clEnqueueReadBuffer(queue, buf->mem, CL_TRUE, offset, bytes, host, 0,
                                                 NULL, NULL);
    return err == CL_SUCCESS
               ? LNET_PLUGIN_OK
               : ocl_fail_cl(slot, to_device ? "clEnqueueWriteBuffer" : "clEnqueueReadBuffer",
                             err);
}

int ocl_buffer_check(const char *slot, const char *name, const void *buffer, size_t need,
                     int64_t rows)
{
    const ocl_buffer *buf = buffer;
    if (!buf)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "%s %s: buffer %s is NULL", ocl_module_name, slot,
                        name);
    if (buf->bytes < need)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID,
                        "%s %s: buffer %s holds %zu bytes but the job's shape (with "
                        "%lld rows in its window) needs %zu",
                        ocl_module_name, slot, name, buf->bytes, (long long)rows, need);
    return LNET_PLUGIN_OK;
}
