#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* ocl_query.c — finding devices through the ICD loader and reading what
 * the backends decide on (memory, work-group limits, the compiler, the
 * OpenCL C version, FPGA or not); opening a context and queue. Which
 * devices a backend takes is its own rule (the accept callback). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_common.h"

static void ocl_str_info(cl_device_id dev, cl_device_info what, char *buf, size_t len)
{
    buf[0] = '\0';
    if (clGetDeviceInfo(dev, what, len, buf, NULL) != CL_SUCCESS)
        buf[0] = '\0';
    buf[len - 1] = '\0';
}

static void ocl_plat_info(cl_platform_id plat, cl_platform_info what, char *buf, size_t len)
{
    if (clGetPlatformInfo(plat, what, len, buf, NULL) != CL_SUCCESS)
        buf[0] = '\0';
    buf[len - 1] = '\0';
}

/* "OpenCL C 1.2 PoCL" -> 1.2 as 102; 0 when unreadable. */
static int ocl_c_version(cl_device_id dev)
{
    char v[128];
    ocl_str_info(dev, CL_DEVICE_OPENCL_C_VERSION, v, sizeof v);
    int major = 0, minor = 0;
    if (sscanf(v, "OpenCL C %d.%d", &major, &minor) != 2)
        return 0;
    return major * 100 + minor;
}

/* An FPGA: an accelerator of Intel's FPGA platforms (the SDK for OpenCL,
 * the oneAPI FPGA runtime, its emulator) or of Xilinx's XRT. Such devices
 * run precompiled bitstreams, not programs built at run time, so the
 * OpenCL backend leaves them to the FPGA backend. */
static int ocl_is_fpga(cl_device_type type, const char *platform_name)
{
    return (type & CL_DEVICE_TYPE_ACCELERATOR) &&
           (strstr(platform_name, "FPGA") || strstr(platform_name, "Xilinx"));
}

/* Reads a device; returns 1 when it is available and readable. */
static int ocl_read_device(cl_platform_id plat, cl_device_id id, ocl_devinfo *d)
{
    memset(d, 0, sizeof *d);
    d->platform = plat;
    d->id = id;
    cl_bool available = CL_FALSE;
    cl_device_type type = 0;
    if (clGetDeviceInfo(id, CL_DEVICE_AVAILABLE, sizeof available, &available, NULL) ||
        clGetDeviceInfo(id, CL_DEVICE_COMPILER_AVAILABLE, sizeof d->compiler, &d->compiler,
                        NULL) ||
        clGetDeviceInfo(id, CL_DEVICE_TYPE, sizeof type, &type, NULL) ||
        clGetDeviceInfo(id, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof d->global_mem, &d->global_mem,
                        NULL) ||
        clGetDeviceInfo(id, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof d->max_alloc, &d->max_alloc,
                        NULL) ||
        clGetDeviceInfo(id, CL_DEVICE_LOCAL_MEM_SIZE, sizeof d->local_mem, &d->local_mem, NULL) ||
        clGetDeviceInfo(id, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof d->max_wg, &d->max_wg, NULL) ||
        clGetDeviceInfo(id, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof d->compute_units,
                        &d->compute_units, NULL))
        return 0;
    size_t item_sizes[3] = {0, 0, 0};
    cl_uint dims = 0;
    if (clGetDeviceInfo(id, CL_DEVICE_MAX_WORK_ITEM_DIMENSIONS, sizeof dims, &dims, NULL) ||
        dims < 3 ||
        clGetDeviceInfo(id, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof item_sizes, item_sizes, NULL))
        return 0;
    if (!available)
        return 0;
    /* Work-groups are one-dimensional in every kernel of both backends. */
    if (item_sizes[0] < d->max_wg)
        d->max_wg = item_sizes[0];
    d->c_version = ocl_c_version(id);
    ocl_str_info(id, CL_DEVICE_NAME, d->device_name, sizeof d->device_name);
    ocl_plat_info(plat, CL_PLATFORM_NAME, d->platform_name, sizeof d->platform_name);
    ocl_plat_info(plat, CL_PLATFORM_VERSION, d->platform_version, sizeof d->platform_version);
    ocl_str_info(id, CL_DRIVER_VERSION, d->driver_version, sizeof d->driver_version);
    ocl_str_info(id, CL_DEVICE_VERSION, d->device_version, sizeof d->device_version);
    snprintf(d->name, sizeof d->name, "%.80s (%.40s)",
             d->device_name[0] ? d->device_name : "unnamed device",
             d->platform_name[0] ? d->platform_name : "unnamed platform");
    snprintf(d->kind, sizeof d->kind, "%s",
             (type & CL_DEVICE_TYPE_GPU)           ? "gpu"
             : (type & CL_DEVICE_TYPE_ACCELERATOR) ? "accelerator"
             : (type & CL_DEVICE_TYPE_CPU)         ? "cpu"
                                                   : "other");
    d->fpga = ocl_is_fpga(type, d->platform_name);
    return 1;
}

int ocl_enumerate(ocl_accept_fn accept, ocl_devinfo **out, int *n_out)
{
    *out = NULL;
    *n_out = 0;
    cl_uint n_plat = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &n_plat);
    /* The ICD loader says "no platform" with this code: zero devices. */
    if (err == -1001 || n_plat == 0)
        return LNET_PLUGIN_OK;
    if (err != CL_SUCCESS)
        return ocl_fail_cl("probe", "clGetPlatformIDs", err);
    cl_platform_id *plats = calloc(n_plat, sizeof *plats);
    if (!plats)
        return ocl_fail(LNET_PLUGIN_ERR_NOMEM, "%s probe: out of memory", ocl_module_name);
    err = clGetPlatformIDs(n_plat, plats, NULL);
    if (err != CL_SUCCESS) {
        free(plats);
        return ocl_fail_cl("probe", "clGetPlatformIDs", err);
    }
    ocl_devinfo *list = NULL;
    int n = 0;
    for (cl_uint p = 0; p < n_plat; p++) {
        cl_uint n_dev = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &n_dev) != CL_SUCCESS ||
            n_dev == 0)
            continue;
        cl_device_id *ids = calloc(n_dev, sizeof *ids);
        ocl_devinfo *grown = realloc(list, ((size_t)n + n_dev) * sizeof *list);
        if (!ids || !grown) {
            free(ids);
            free(grown ? grown : list);
            free(plats);
            return ocl_fail(LNET_PLUGIN_ERR_NOMEM, "%s probe: out of memory", ocl_module_name);
        }
        list = grown;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, n_dev, ids, NULL) == CL_SUCCESS)
            for (cl_uint i = 0; i < n_dev; i++)
                if (ocl_read_device(plats[p], ids[i], &list[n]) && accept(&list[n]))
                    n++;
        free(ids);
    }
    free(plats);
    if (n == 0) {
        free(list);
        list = NULL;
    }
    *out = list;
    *n_out = n;
    return LNET_PLUGIN_OK;
}

int ocl_open_context(const ocl_devinfo *d, cl_context *context, cl_command_queue *queue)
{
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)d->platform, 0};
    cl_int err;
    *context = clCreateContext(props, 1, &d->id, NULL, NULL, &err);
    if (err != CL_SUCCESS)
        return ocl_fail_cl("open", "clCreateContext", err);
    /* In order: jobs fold into the same (out, lse) one after another. */
    *queue = clCreateCommandQueue(*context, d->id, 0, &err);
    if (err != CL_SUCCESS) {
        clReleaseContext(*context);
        *context = NULL;
        return ocl_fail_cl("open", "clCreateCommandQueue", err);
    }
    return LNET_PLUGIN_OK;
}
