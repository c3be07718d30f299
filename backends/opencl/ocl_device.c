#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* ocl_device.c — finding devices through the ICD loader, describing them,
 * opening (context + in-order queue) and closing them.
 *
 * A device is accepted by what it can do — OpenCL C 1.2 or later, a
 * compiler, enough memory and work-group size for the smallest tiles —
 * never by vendor, so PoCL's CPU device and any GPU driver alike qualify;
 * FPGAs are left to the FPGA backend (they cannot build from source).
 * Enumeration and queries: opencl-common/ocl_query.c.
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

const char ocl_module_name[] = "opencl";

/* The devices this backend takes: OpenCL C 1.2 or later with a compiler,
 * the minimums above, and not an FPGA (those run precompiled bitstreams:
 * the FPGA backend's). */
static int ocl_accept(const ocl_devinfo *d)
{
    return !d->fpga && d->compiler && d->c_version >= 102 && d->local_mem >= OCL_MIN_LOCAL_MEM &&
           d->max_wg >= OCL_MIN_WORK_GROUP && d->global_mem >= OCL_MIN_GLOBAL_MEM;
}

int ocl_probe(int *n_devices)
{
    if (!n_devices)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "opencl probe: n_devices is NULL");
    *n_devices = 0;
    ocl_shutdown();
    int st = ocl_enumerate(ocl_accept, &ocl_devices, &ocl_n_devices);
    if (st)
        return st;
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
    if ((st = ocl_open_context(d, &dev->context, &dev->queue))) {
        free(dev);
        return st;
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
