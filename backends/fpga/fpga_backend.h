/* fpga_backend.h — what the FPGA backend's files share; nothing outside
 * backends/fpga/ sees it. OpenCL host code common with the OpenCL backend
 * (errors, device queries, buffers, building, the binary cache) is
 * backends/opencl-common/ (libocl_common.la). */
#ifndef LNET_FPGA_BACKEND_H
#define LNET_FPGA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "ocl_common.h"
#include "longnet-plugin-check.h"
#include "longnet-plugin.h"

/* One configuration of the kernels: the build macros a binary serves. */
typedef struct fpga_config {
    int dim, tile_q, tile_k;
} fpga_config;

/* Defaults: 16 query rows and 16 keys on chip (README: the resources). */
#define FPGA_DEFAULT_TILE 16
#define FPGA_MAX_TILE 256
/* The kernels keep a few rows on chip; past this a board would not fit. */
#define FPGA_MAX_DIM 1024

/* A loaded or built program and its three kernels. */
typedef struct fpga_program {
    struct fpga_program *next;
    fpga_config cfg;
    cl_program program;
    cl_kernel reader, compute, writer;
} fpga_program;

typedef struct fpga_device {
    ocl_devinfo info;
    int emulated;        /* Intel's FPGA emulator: kernels built from source */
    cl_context context;
    cl_command_queue queue;          /* buffers, and the writer kernel */
    cl_command_queue reader_q, compute_q; /* the other two run beside it */
    int tile_q, tile_k;  /* options; 0: FPGA_DEFAULT_TILE */
    fpga_program *programs;
} fpga_device;

/* The device slots (fpga_device.c). */
int fpga_probe(int *n_devices);
void fpga_shutdown(void);
int fpga_describe(int index, lnet_plugin_device_desc *desc);
int fpga_open(int index, const char *options, void **device);
void fpga_close(void *device);

/* The program for a configuration (fpga_program.c): from the device's
 * list, else the binary in LONGNET_FPGA_BINARY_DIR, else (emulator only,
 * no binary directory set) built from the embedded sources. */
int fpga_get_program(fpga_device *dev, const fpga_config *cfg, fpga_program **out);
void fpga_free_programs(fpga_device *dev);

/* "<dir>/longnet-fpga-d64-q16-k16.aocx", the binary of a configuration;
 * 0, or -1 when LONGNET_FPGA_BINARY_DIR is unset or the name too long. */
int fpga_binary_path(const fpga_config *cfg, char *buf, size_t len);
/* The configurations with a binary in LONGNET_FPGA_BINARY_DIR, as
 * "d64-q16-k16 d128-q16-k16" (for describe); "" when none. */
void fpga_binaries_found(char *buf, size_t len);

/* The forward pass of a validated job (fpga_run.c). */
int fpga_run(fpga_device *dev, const lnet_segment_job *job, const lnet_plugin_window *win);

/* Sources embedded at build time (scripts/embed-cl, fpga_kernels.c). */
extern const char ocl_src_dilated_geometry[];
extern const char ocl_src_dilated_attention_fpga[];

#endif /* LNET_FPGA_BACKEND_H */
