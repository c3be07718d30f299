#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* ocl_device.c — finding devices through the ICD loader, describing them,
 * opening (context + in-order queue) and closing them.
 *
 * A device is accepted by what it can do — OpenCL C 1.2 or later, a
 * compiler, enough memory and work-group size for the smallest tiles —
 * never by vendor, so PoCL's CPU device and any GPU driver alike qualify.
 * A platform without a usable device contributes nothing; that is not a
 * failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_backend.h"
#include "ocl_device.h"

/* The devices of the last probe; probe, describe, open and close come from
 * one thread at a time (longnet-plugin.h). */
static ocl_devinfo *ocl_devices;
static int ocl_n_devices;

/* Minimums: the fused kernel with tile_k = 1 and a small D, the gemm path's
 * helper kernels, and some room for buffers. */
#define OCL_MIN_LOCAL_MEM (4u * 1024u)
#define OCL_MIN_WORK_GROUP 16u
#define OCL_MIN_GLOBAL_MEM (16u * 1024u * 1024u)

static void ocl_str_info(cl_device_id dev, cl_device_info what, char *buf, size_t len)
{
    buf[0] = '\0';
    if (clGetDeviceInfo(dev, what, len, buf, NULL) != CL_SUCCESS)
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

/* Reads what open and describe need; returns 1 when the device qualifies. */
static int ocl_read_device(cl_platform_id plat, cl_device_id id, ocl_devinfo *d)
{
    memset(d, 0, sizeof *d);
    d->platform = plat;
    d->id = id;
    cl_bool available = CL_FALSE, compiler = CL_FALSE;
    cl_device_type type = 0;
    if (clGetDeviceInfo(id, CL_DEVICE_AVAILABLE, sizeof available, &available, NULL) ||
        clGetDeviceInfo(id, CL_DEVICE_COMPILER_AVAILABLE, sizeof compiler, &compiler, NULL) ||
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
    /* The fused kernel's work-groups are one-dimensional. */
    if (item_sizes[0] < d->max_wg)
        d->max_wg = item_sizes[0];
    if (!available || !compiler || ocl_c_version(id) < 102 || d->local_mem < OCL_MIN_LOCAL_MEM ||
        d->max_wg < OCL_MIN_WORK_GROUP || d->global_mem < OCL_MIN_GLOBAL_MEM)
        return 0;

    char dev_name[128], plat_name[128];
    ocl_str_info(id, CL_DEVICE_NAME, dev_name, sizeof dev_name);
    if (clGetPlatformInfo(plat, CL_PLATFORM_NAME, sizeof plat_name, plat_name, NULL) !=
        CL_SUCCESS)
        plat_name[0] = '\0';
    plat_name[sizeof plat_name - 1] = '\0';
    snprintf(d->platform_name, sizeof d->platform_name, "%s", plat_name);
    if (clGetPlatformInfo(plat, CL_PLATFORM_VERSION, sizeof d->platform_version,
                          d->platform_version, NULL) != CL_SUCCESS)
        d->platform_version[0] = '\0';
    d->platform_version[sizeof d->platform_version - 1] = '\0';
    ocl_str_info(id, CL_DRIVER_VERSION, d->driver_version, sizeof d->driver_version);
    ocl_str_info(id, CL_DEVICE_VERSION, d->device_version, sizeof d->device_version);
    snprintf(d->name, sizeof d->name, "%.80s (%.40s)", dev_name[0] ? dev_name : "unnamed device",
             plat_name[0] ? plat_name : "unnamed platform");
    snprintf(d->kind, sizeof d->kind, "%s",
             (type & CL_DEVICE_TYPE_GPU)           ? "gpu"
             : (type & CL_DEVICE_TYPE_ACCELERATOR) ? "accelerator"
             : (type & CL_DEVICE_TYPE_CPU)         ? "cpu"
                                                   : "other");
    return 1;
}

int ocl_probe(int *n_devices)
{
    if (!n_devices)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "opencl probe: n_devices is NULL");
    *n_devices = 0;
    ocl_shutdown();

    cl_uint n_plat = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &n_plat);
    /* The ICD loader says "no platform" with this code: zero devices. */
    if (err == -1001 || n_plat == 0)
        return LNET_PLUGIN_OK;
    if (err != CL_SUCCESS)
        return ocl_fail_cl("probe", "clGetPlatformIDs", err);
    cl_platform_id *plats = calloc(n_plat, sizeof *plats);
    if (!plats)
        return ocl_fail(LNET_PLUGIN_ERR_NOMEM, "opencl probe: out of memory");
    err = clGetPlatformIDs(n_plat, plats, NULL);
    if (err != CL_SUCCESS) {
        free(plats);
        return ocl_fail_cl("probe", "clGetPlatformIDs", err);
    }
    for (cl_uint p = 0; p < n_plat; p++) {
        cl_uint n_dev = 0;
        /* A platform whose devices cannot be listed is skipped, not fatal:
         * another vendor's platform may still work. */
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &n_dev) != CL_SUCCESS ||
            n_dev == 0)
            continue;
        cl_device_id *ids = calloc(n_dev, sizeof *ids);
        ocl_devinfo *grown =
            realloc(ocl_devices, ((size_t)ocl_n_devices + n_dev) * sizeof *ocl_devices);
        if (!ids || !grown) {
            free(ids);
            if (grown)
                ocl_devices = grown;
            free(plats);
            ocl_shutdown();
            return ocl_fail(LNET_PLUGIN_ERR_NOMEM, "opencl probe: out of memory");
        }
        ocl_devices = grown;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, n_dev, ids, NULL) == CL_SUCCESS)
            for (cl_uint i = 0; i < n_dev; i++)
                if (ocl_read_device(plats[p], ids[i], &ocl_devices[ocl_n_devices]))
                    ocl_n_devices++;
        free(ids);
    }
    free(plats);
    *n_devices = ocl_n_devices;
    return LNET_PLUGIN_OK;
}

void ocl_shutdown(void)
{
    free(ocl_devices);
    ocl_devices = NULL;
    ocl_n_devices = 0;
}

static int ocl_check_index(const char *what, int index)
{
    if (index < 0 || index >= ocl_n_devices)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID,
                        "opencl %s: device index %d does not exist (%d usable OpenCL device%s)",
                        what, index, ocl_n_devices, ocl_n_devices == 1 ? "" : "s");
    return LNET_PLUGIN_OK;
}

int ocl_describe(int index, lnet_plugin_device_desc *desc)
{
    int st = ocl_check_index("describe", index);
    if (st)
        return st;
    if (lnet_plugin_desc_clear(desc))
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "opencl describe: desc is NULL or its size %zu "
                        "is smaller than ABI %u's %zu bytes", desc ? desc->size : (size_t)0,
                        LNET_PLUGIN_ABI_VERSION, (size_t)LNET_PLUGIN_DESC_MIN_SIZE);
    const ocl_devinfo *d = &ocl_devices[index];
    snprintf(desc->name, sizeof desc->name, "%s", d->name);
    snprintf(desc->kind, sizeof desc->kind, "%s", d->kind);
    desc->memory_bytes = d->global_mem;
    desc->compute_units = d->compute_units > (1u << 30) ? 1 << 30 : (int)d->compute_units;
    snprintf(desc->kernels, sizeof desc->kernels, "%s", ocl_have_gemm() ? "fused,gemm" : "fused");
    /* Both kernels (fused in either form, gemm) honour the row windows. */
    desc->caps |= LNET_PLUGIN_CAP_WINDOWS;
    return LNET_PLUGIN_OK;
}

/* A tile size from an option or an environment variable: 1..max. */
static int ocl_parse_tile(const char *name, const char *from, const char *value, size_t max,
                          int *out)
{
    char *end;
    long v = strtol(value, &end, 10);
    if (end == value || *end || v < 1 || (unsigned long)v > max)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID,
                        "opencl open: %s=%.64s (from %s) is not an integer in 1..%zu (the "
                        "device's work-group limit for tile_q; local memory bounds tile_k)",
                        name, value, from, max);
    *out = (int)v;
    return LNET_PLUGIN_OK;
}

/* The form of the fused kernel: "tiled" or "rows". */
static int ocl_parse_variant(const char *from, const char *value, int *out)
{
    if (strcmp(value, "tiled") == 0)
        *out = OCL_VARIANT_TILED;
    else if (strcmp(value, "rows") == 0)
        *out = OCL_VARIANT_ROWS;
    else
        return ocl_fail(LNET_PLUGIN_ERR_INVALID,
                        "opencl open: fused=%.64s (from %s) is neither 'tiled' nor 'rows'", value,
                        from);
    return LNET_PLUGIN_OK;
}

/* "tile_q=N,tile_k=N,fused=tiled|rows"; an unknown key is refused rather
 * than ignored. The environment (LONGNET_OPENCL_TILE_Q / _K,
 * LONGNET_OPENCL_FUSED) applies where no option is given. */
static int ocl_parse_options(const char *options, const ocl_devinfo *d, int *tile_q, int *tile_k,
                             int *variant)
{
    *tile_q = *tile_k = 0;
    *variant = OCL_VARIANT_AUTO;
    /* tile_k is bounded here by local memory at D = 1; run_segment checks
     * it again for the job's D. */
    const size_t max_k = (size_t)(d->local_mem / (2 * sizeof(float)));
    const char *p = options;
    lnet_plugin_option o;
    while (lnet_plugin_next_option(&p, &o)) {
        char value[64];
        int is_q = o.value && lnet_plugin_option_is(&o, "tile_q");
        int is_k = o.value && lnet_plugin_option_is(&o, "tile_k");
        int is_f = o.value && lnet_plugin_option_is(&o, "fused");
        if (!is_q && !is_k && !is_f)
            return ocl_fail(LNET_PLUGIN_ERR_INVALID,
                            "opencl open: unknown device option '%.*s' in \"%.200s\" (the "
                            "opencl backend takes tile_q=N, tile_k=N and fused=tiled|rows)",
                            (int)(o.key_len < 200 ? o.key_len : 200), o.key, options);
        if (o.value_len >= sizeof value)
            return ocl_fail(LNET_PLUGIN_ERR_INVALID,
                            "opencl open: the value of '%.*s' is too long in \"%.200s\"",
                            (int)o.key_len, o.key, options);
        memcpy(value, o.value, o.value_len);
        value[o.value_len] = '\0';
        int st = is_f   ? ocl_parse_variant("device options", value, variant)
                 : is_q ? ocl_parse_tile("tile_q", "device options", value, d->max_wg, tile_q)
                        : ocl_parse_tile("tile_k", "device options", value, max_k, tile_k);
        if (st)
            return st;
    }
    const char *env;
    int st;
    if (!*tile_q && (env = getenv("LONGNET_OPENCL_TILE_Q")) && env[0] &&
        (st = ocl_parse_tile("tile_q", "LONGNET_OPENCL_TILE_Q", env, d->max_wg, tile_q)))
        return st;
    if (!*tile_k && (env = getenv("LONGNET_OPENCL_TILE_K")) && env[0] &&
        (st = ocl_parse_tile("tile_k", "LONGNET_OPENCL_TILE_K", env, max_k, tile_k)))
        return st;
    if (*variant == OCL_VARIANT_AUTO && (env = getenv("LONGNET_OPENCL_FUSED")) && env[0] &&
        (st = ocl_parse_variant("LONGNET_OPENCL_FUSED", env, variant)))
        return st;
    return LNET_PLUGIN_OK;
}

int ocl_open(int index, const char *options, void **device)
{
    if (!device)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "opencl open: device output pointer is NULL");
    *device = NULL;
    int st = ocl_check_index("open", index);
    if (st)
        return st;
    const ocl_devinfo *d = &ocl_devices[index];
    int tile_q, tile_k, variant;
    if ((st = ocl_parse_options(options, d, &tile_q, &tile_k, &variant)))
        return st;

    ocl_device *dev = calloc(1, sizeof *dev);
    if (!dev)
        return ocl_fail(LNET_PLUGIN_ERR_NOMEM, "opencl open: out of memory allocating %zu bytes",
                        sizeof *dev);
    dev->info = *d;
    dev->tile_q = tile_q;
    dev->tile_k = tile_k;
    dev->variant = variant;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)d->platform, 0};
    cl_int err;
    dev->context = clCreateContext(props, 1, &d->id, NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        free(dev);
        return ocl_fail_cl("open", "clCreateContext", err);
    }
    /* In order: jobs fold into the same (out, lse) one after another. */
    dev->queue = clCreateCommandQueue(dev->context, d->id, 0, &err);
    if (err != CL_SUCCESS) {
        clReleaseContext(dev->context);
        free(dev);
        return ocl_fail_cl("open", "clCreateCommandQueue", err);
    }
    *device = dev;
    return LNET_PLUGIN_OK;
}

void ocl_close(void *device)
{
    ocl_device *dev = device;
    if (!dev)
        return;
    clFinish(dev->queue);
    ocl_gemm_close(dev);
    ocl_free_programs(dev);
    if (dev->scores)
        clReleaseMemObject(dev->scores);
    if (dev->branch_out)
        clReleaseMemObject(dev->branch_out);
    if (dev->branch_lse)
        clReleaseMemObject(dev->branch_lse);
    if (dev->copy_queue) {
        clFinish(dev->copy_queue);
        clReleaseCommandQueue(dev->copy_queue);
    }
    clReleaseCommandQueue(dev->queue);
    clReleaseContext(dev->context);
    free(dev);
}
