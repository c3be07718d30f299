#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* fpga_device.c — the FPGA devices: an accelerator of an FPGA platform
 * (Intel's FPGA SDK / oneAPI FPGA runtime and its emulator, Xilinx XRT;
 * opencl-common/ocl_query.c decides), described with whether it is
 * emulated and which configurations have a binary, opened with a context,
 * the in-order queue and the two queues the reader and compute kernels
 * run on beside the writer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fpga_backend.h"

const char ocl_module_name[] = "fpga";

/* The devices of the last probe; probe, describe, open and close come from
 * one thread at a time (longnet-plugin.h). */
static ocl_devinfo *fpga_devices;
static int fpga_n_devices;

static int fpga_accept(const ocl_devinfo *d)
{
    return d->fpga;
}

/* Intel's emulator builds the kernels from source (a board cannot). */
static int fpga_is_emulator(const ocl_devinfo *d)
{
    return strstr(d->platform_name, "Emulation") != NULL && d->compiler;
}

int fpga_probe(int *n_devices)
{
    if (!n_devices)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "fpga probe: n_devices is NULL");
    *n_devices = 0;
    fpga_shutdown();
    int st = ocl_enumerate(fpga_accept, &fpga_devices, &fpga_n_devices);
    if (st)
        return st;
    *n_devices = fpga_n_devices;
    return LNET_PLUGIN_OK;
}

void fpga_shutdown(void)
{
    free(fpga_devices);
    fpga_devices = NULL;
    fpga_n_devices = 0;
}

static int fpga_check_index(const char *what, int index)
{
    if (index < 0 || index >= fpga_n_devices)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID,
                        "fpga %s: device index %d does not exist (%d FPGA device%s)", what, index,
                        fpga_n_devices, fpga_n_devices == 1 ? "" : "s");
    return LNET_PLUGIN_OK;
}

int fpga_describe(int index, lnet_plugin_device_desc *desc)
{
    int st = fpga_check_index("describe", index);
    if (st)
        return st;
    if (lnet_plugin_desc_clear(desc))
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "fpga describe: desc is NULL or its size %zu "
                        "is smaller than ABI %u's %zu bytes", desc ? desc->size : (size_t)0,
                        LNET_PLUGIN_ABI_VERSION, (size_t)LNET_PLUGIN_DESC_MIN_SIZE);
    const ocl_devinfo *d = &fpga_devices[index];
    /* The name says what runs: the emulator, and the binaries found. */
    char found[96];
    fpga_binaries_found(found, sizeof found);
    const char *dir = getenv("LONGNET_FPGA_BINARY_DIR");
    char how[112];
    if (found[0])
        snprintf(how, sizeof how, "binaries: %s", found);
    else if (dir && dir[0])
        snprintf(how, sizeof how, "no binary in LONGNET_FPGA_BINARY_DIR");
    else
        snprintf(how, sizeof how, "%s", fpga_is_emulator(d) ? "builds from source"
                                                            : "LONGNET_FPGA_BINARY_DIR unset");
    snprintf(desc->name, sizeof desc->name, "%.40s [%s%.70s]", d->device_name,
             fpga_is_emulator(d) ? "emulated, " : "", how);
    snprintf(desc->kind, sizeof desc->kind, "fpga");
    desc->memory_bytes = d->global_mem;
    desc->compute_units = d->compute_units > (1u << 30) ? 1 << 30 : (int)d->compute_units;
    snprintf(desc->kernels, sizeof desc->kernels, "fused");
    desc->caps |= LNET_PLUGIN_CAP_WINDOWS;
    return LNET_PLUGIN_OK;
}

/* tile_q=N, tile_k=N: the on-chip tiles (each a build macro). */
static int fpga_parse_options(const char *options, int *tile_q, int *tile_k)
{
    *tile_q = *tile_k = 0;
    const char *p = options;
    lnet_plugin_option o;
    while (lnet_plugin_next_option(&p, &o)) {
        int is_q = o.value && lnet_plugin_option_is(&o, "tile_q");
        int is_k = o.value && lnet_plugin_option_is(&o, "tile_k");
        if (!is_q && !is_k)
            return ocl_fail(LNET_PLUGIN_ERR_INVALID,
                            "fpga open: unknown device option '%.*s' in \"%.200s\" (the fpga "
                            "backend takes tile_q=N and tile_k=N, 1..%d)",
                            (int)(o.key_len < 200 ? o.key_len : 200), o.key, options,
                            FPGA_MAX_TILE);
        char value[32];
        char *end;
        long v = 0;
        if (o.value_len < sizeof value) {
            memcpy(value, o.value, o.value_len);
            value[o.value_len] = '\0';
            v = strtol(value, &end, 10);
        }
        if (o.value_len >= sizeof value || end == value || *end || v < 1 || v > FPGA_MAX_TILE)
            return ocl_fail(LNET_PLUGIN_ERR_INVALID,
                            "fpga open: %s=%.*s is not an integer in 1..%d",
                            is_q ? "tile_q" : "tile_k", (int)(o.value_len < 64 ? o.value_len : 64),
                            o.value, FPGA_MAX_TILE);
        *(is_q ? tile_q : tile_k) = (int)v;
    }
    return LNET_PLUGIN_OK;
}

int fpga_open(int index, const char *options, void **device)
{
    if (!device)
        return ocl_fail(LNET_PLUGIN_ERR_INVALID, "fpga open: device output pointer is NULL");
    *device = NULL;
    int st = fpga_check_index("open", index);
    if (st)
        return st;
    int tile_q, tile_k;
    if ((st = fpga_parse_options(options, &tile_q, &tile_k)))
        return st;
    fpga_device *dev = calloc(1, sizeof *dev);
    if (!dev)
        return ocl_fail(LNET_PLUGIN_ERR_NOMEM, "fpga open: out of memory allocating %zu bytes",
                        sizeof *dev);
    dev->info = fpga_devices[index];
    dev->emulated = fpga_is_emulator(&dev->info);
    dev->tile_q = tile_q;
    dev->tile_k = tile_k;
    if ((st = ocl_open_context(&dev->info, &dev->context, &dev->queue))) {
        free(dev);
        return st;
    }
    cl_int err;
    dev->reader_q = clCreateCommandQueue(dev->context, dev->info.id, 0, &err);
    if (err == CL_SUCCESS)
        dev->compute_q = clCreateCommandQueue(dev->context, dev->info.id, 0, &err);
    if (err != CL_SUCCESS) {
        fpga_close(dev);
        return ocl_fail_cl("open", "clCreateCommandQueue", err);
    }
    *device = dev;
    return LNET_PLUGIN_OK;
}

void fpga_close(void *device)
{
    fpga_device *dev = device;
    if (!dev)
        return;
    cl_command_queue queues[] = {dev->reader_q, dev->compute_q, dev->queue};
    for (size_t i = 0; i < sizeof queues / sizeof queues[0]; i++)
        if (queues[i]) {
            clFinish(queues[i]);
            clReleaseCommandQueue(queues[i]);
        }
    fpga_free_programs(dev);
    clReleaseContext(dev->context);
    free(dev);
}
