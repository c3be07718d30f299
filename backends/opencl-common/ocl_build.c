#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* ocl_build.c — building a program from source through the on-disk binary
 * cache (ocl_cache.c): looked up by a SHA-256 key of everything that
 * changes the binary, and only then built from the module's sources. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_common.h"
#include "ocl_sha256.h"

#define OCL_LOG_MAX 2000 /* characters of a build log kept in a message */
#define OCL_LOG_MAX_STR "2000"

/* The build log, cut to its first OCL_LOG_MAX characters (the first errors
 * are the useful ones; ocl_fail's buffer holds the rest of the message). */
int ocl_build_failure(const ocl_devinfo *dev, cl_program prog, const char *options, cl_int err)
{
    size_t size = 0;
    char *log = NULL;
    if (clGetProgramBuildInfo(prog, dev->id, CL_PROGRAM_BUILD_LOG, 0, NULL, &size) ==
            CL_SUCCESS &&
        size > 0) {
        log = malloc(size + 1);
        if (log && clGetProgramBuildInfo(prog, dev->id, CL_PROGRAM_BUILD_LOG, size, log, NULL) !=
                       CL_SUCCESS) {
            free(log);
            log = NULL;
        }
        if (log)
            log[size] = '\0';
    }
    int cut = log && strlen(log) > OCL_LOG_MAX;
    if (cut)
        log[OCL_LOG_MAX] = '\0';
    int st = ocl_fail(LNET_PLUGIN_ERR_DEVICE,
                      "%s: clBuildProgram: %s (options \"%s\") on %s; build log%s:\n%s",
                      ocl_module_name, ocl_error_name(err), options, dev->name,
                      cut ? " (first " OCL_LOG_MAX_STR " characters)" : "",
                      log && log[0] ? log : "(empty)");
    free(log);
    return st;
}

/* SHA-256 over everything that changes the binary: the module's tag, the
 * sources, the build options, and the device, driver and platform that
 * compiled it. Fields are NUL-separated so that no two different tuples
 * hash the same bytes. */
static void ocl_cache_key(const ocl_devinfo *dev, const char *tag, const char *const *src,
                          cl_uint n, const char *options, unsigned char key[32])
{
    ocl_sha256_ctx s;
    ocl_sha256_init(&s);
    ocl_sha256_update(&s, tag, strlen(tag) + 1);
    for (cl_uint i = 0; i < n; i++)
        ocl_sha256_update(&s, src[i], strlen(src[i]) + 1);
    const char *fields[] = {options,
                            dev->name,
                            dev->driver_version,
                            dev->platform_name,
                            dev->platform_version,
                            dev->device_version};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        ocl_sha256_update(&s, fields[i], strlen(fields[i]) + 1);
    ocl_sha256_final(&s, key);
}

/* A program from a cached binary; NULL when the driver refuses it (another
 * driver build, a corrupted payload that passed the checksum by chance). */
static cl_program ocl_from_binary(cl_context context, const ocl_devinfo *dev,
                                  const char *options, const unsigned char *bin, size_t len)
{
    cl_int err, bin_status = CL_SUCCESS;
    cl_program prog =
        clCreateProgramWithBinary(context, 1, &dev->id, &len, &bin, &bin_status, &err);
    if (err != CL_SUCCESS || bin_status != CL_SUCCESS) {
        if (prog)
            clReleaseProgram(prog);
        return NULL;
    }
    if (clBuildProgram(prog, 1, &dev->id, options, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(prog);
        return NULL;
    }
    return prog;
}

int ocl_program_binary(cl_program prog, unsigned char **bin_out, size_t *len_out)
{
    cl_uint n_dev = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_NUM_DEVICES, sizeof n_dev, &n_dev, NULL) !=
            CL_SUCCESS ||
        n_dev != 1)
        return -1;
    size_t len = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof len, &len, NULL) != CL_SUCCESS ||
        len == 0)
        return -1;
    unsigned char *bin = malloc(len);
    if (!bin)
        return -1;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) != CL_SUCCESS) {
        free(bin);
        return -1;
    }
    *bin_out = bin;
    *len_out = len;
    return 0;
}

int ocl_build_cached(cl_context context, const ocl_devinfo *dev, const char *tag,
                     const char *const *src, cl_uint n, const char *options, cl_program *out)
{
    unsigned char key[32];
    ocl_cache_key(dev, tag, src, n, options, key);

    unsigned char *bin = NULL;
    size_t len = 0;
    const int cached = ocl_cache_load(key, &bin, &len);
    if (cached == 0) {
        cl_program prog = ocl_from_binary(context, dev, options, bin, len);
        free(bin);
        if (prog) {
            *out = prog;
            return LNET_PLUGIN_OK;
        }
        /* A stale or broken entry: build afresh and overwrite it below. */
    }

    cl_int err;
    cl_program prog = clCreateProgramWithSource(context, n, (const char **)src, NULL, &err);
    if (err != CL_SUCCESS)
        return ocl_fail_cl("program", "clCreateProgramWithSource", err);
    err = clBuildProgram(prog, 1, &dev->id, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        int st = ocl_build_failure(dev, prog, options, err);
        clReleaseProgram(prog);
        return st;
    }
    /* An untrusted directory or entry (-2) is left as it is. */
    if (cached != -2 && ocl_program_binary(prog, &bin, &len) == 0) {
        ocl_cache_store(key, bin, len);
        free(bin);
    }
    *out = prog;
    return LNET_PLUGIN_OK;
}
