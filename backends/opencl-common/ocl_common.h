/* ocl_common.h — the OpenCL host code the OpenCL and FPGA backends share
 * (backends/opencl-common/, the convenience library libocl_common.la that
 * both modules link; neither module includes the other's files): errors,
 * device queries, program building with the on-disk binary cache, SHA-256.
 *
 * Each module links its own copy, so the per-thread error message, the
 * device list and the cache's once-per-process warning stay per module.
 * The module names itself in messages through ocl_module_name, which it
 * defines ("opencl", "fpga").
 *
 * Only OpenCL 1.2 entry points are used (CL_TARGET_OPENCL_VERSION 120, set
 * by configure), so that the modules load against every ICD. */
#ifndef LNET_OCL_COMMON_H
#define LNET_OCL_COMMON_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include <stddef.h>
#include <stdint.h>

#include "longnet-plugin.h"

/* The module's name, first word of its messages; defined by the module. */
extern const char ocl_module_name[];

/* ------------------------------------------------------------- errors */

/* Records the message returned by the plugin's last_error() for this thread
 * and returns `status`, so that an error path is one line. */
int ocl_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The plugin's last_error slot. */
const char *ocl_last_error(void);

/* "CL_OUT_OF_RESOURCES" for -5; "unknown OpenCL error -1234" otherwise
 * (in a per-thread buffer). */
const char *ocl_error_name(cl_int err);

/* The failure of an OpenCL call: "<module> <what>: <call>: <CL_ERROR_NAME>",
 * with a status of LNET_PLUGIN_ERR_NOMEM for the out-of-memory codes and
 * LNET_PLUGIN_ERR_DEVICE otherwise. */
int ocl_fail_cl(const char *what, const char *call, cl_int err);

/* ------------------------------------------------------------ devices */

/* What a probe learns of a device; describe and open read it. */
typedef struct ocl_devinfo {
    cl_platform_id platform;
    cl_device_id id;
    char name[128];          /* "<device> (<platform>)" */
    char device_name[128];   /* CL_DEVICE_NAME alone */
    char platform_name[128];
    char platform_version[128];
    char driver_version[128];
    char device_version[128];
    char kind[16];           /* "gpu", "accelerator", "cpu", "other" */
    cl_ulong global_mem, max_alloc, local_mem;
    size_t max_wg;           /* bounded by the first dimension's item limit */
    cl_uint compute_units;
    cl_bool compiler;
    int c_version;           /* OpenCL C 1.2 as 102; 0 when unreadable */
    int fpga;                /* an FPGA platform's accelerator (ocl_is_fpga) */
} ocl_devinfo;

/* Whether a device decides for itself to join the list (1) or not (0). */
typedef int (*ocl_accept_fn)(const ocl_devinfo *d);

/* Every available device of every platform that `accept` takes, in a
 * malloc'd array (NULL with *n = 0 when none; the ICD loader's "no
 * platform" is zero devices, not a failure). A platform whose devices
 * cannot be listed is skipped: another vendor's may still work. */
int ocl_enumerate(ocl_accept_fn accept, ocl_devinfo **out, int *n);

/* Context and in-order queue on the device. */
int ocl_open_context(const ocl_devinfo *d, cl_context *context, cl_command_queue *queue);

/* ------------------------------------------------------------ buffers */

typedef struct ocl_buffer {
    cl_mem mem;
    size_t bytes;
    cl_event pending; /* an asynchronous write not yet waited for, or NULL */
} ocl_buffer;

/* The buffer_alloc slot: refused, naming the limits, past what the device
 * can allocate at once. */
int ocl_buffer_new(cl_context context, const ocl_devinfo *d, size_t bytes, void **buffer);
/* Waits for the buffer's asynchronous write, if one is outstanding. */
void ocl_buffer_settle(ocl_buffer *buf);
/* The buffer_free slot (NULL is allowed). */
void ocl_buffer_release(ocl_buffer *buf);
/* 0 when [offset, offset + bytes) lies in the buffer; else `what` fails. */
int ocl_buffer_range(const char *what, const ocl_buffer *buf, size_t offset, size_t bytes);
/* The blocking buffer_write (to_device) and buffer_read slots. */
int ocl_buffer_copy(cl_command_queue queue, ocl_buffer *buf, int to_device, size_t offset,
                    void *host, size_t bytes);
/* A job's buffer `name` for `slot`: not NULL, and at least `need` bytes
 * (`rows`: the rows of its window, for the message). */
int ocl_buffer_check(const char *slot, const char *name, const void *buffer, size_t need,
                     int64_t rows);

/* --------------------------------------------------------- programs */

/* A program built from `sources` with `options` for the device: from the
 * on-disk cache when it holds one (keyed by `tag`, the sources, the
 * options, the device and its driver), else built from source and cached.
 * A failed build's message carries the start of the build log. */
int ocl_build_cached(cl_context context, const ocl_devinfo *dev, const char *tag,
                     const char *const *sources, cl_uint n_sources, const char *options,
                     cl_program *out);

/* The build log of a failed build, cut to fit, as the module's failure. */
int ocl_build_failure(const ocl_devinfo *dev, cl_program prog, const char *options, cl_int err);

/* The device binary of a built program (CL_PROGRAM_BINARIES) in a malloc'd
 * buffer; 0, or -1 when the driver has none. */
int ocl_program_binary(cl_program prog, unsigned char **bin, size_t *len);

/* ---------------------------------------------------------- disk cache */

/* The cache directory: $LONGNET_CACHE_DIR, else $XDG_CACHE_HOME/longnet,
 * else $HOME/.cache/longnet. Returns 0 and creates it (mode 0700), or -1
 * when there is none usable (then nothing is cached). */
int ocl_cache_dir(char *buf, size_t len);

/* Reads the entry for `key` (32 bytes) into a malloc'd buffer. Returns 0;
 * -1 when there is no valid entry (missing, truncated, corrupted, or
 * another key): the caller then builds and stores a fresh one; or -2 when
 * the directory or the entry is not trusted (owner, mode, a symbolic link:
 * ocl_cache.c): the caller builds and stores nothing. */
int ocl_cache_load(const unsigned char key[32], unsigned char **data, size_t *len);

/* Writes the entry atomically (temporary file of mode 0600, then rename)
 * into a trusted directory. Failures are silent: an unwritable cache only
 * means no caching. */
void ocl_cache_store(const unsigned char key[32], const unsigned char *data, size_t len);

/* The cache's once-per-process warning, for the table's take_warning. */
const char *ocl_take_warning(void);

#endif /* LNET_OCL_COMMON_H */
