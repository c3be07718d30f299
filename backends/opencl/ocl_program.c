#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* ocl_program.c — tile sizes and programs. A program is specialised by its
 * build options (HEAD_DIM, TILE_Q, TILE_K), so each (device, D, tiles)
 * needs its own; it is looked up in the device's list, then in the on-disk
 * cache (ocl_cache.c) by a SHA-256 key of everything that changes the
 * binary, and only then built from the embedded source. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_backend.h"
#include "ocl_sha256.h"

/* ---------------------------------------------------------------- tiles */

/* Bytes of local memory the fused kernel uses (dilated_attention.cl):
 * a tile of keys and one of values, 4 * 2 * TK * D. */
static uint64_t ocl_local_bytes(int64_t dim, int tq, int tk)
{
    (void)tq;
    return 4 * 2 * (uint64_t)tk * (uint64_t)dim;
}

/* Largest power of two <= x (x >= 1). */
static int ocl_floor_pow2(size_t x)
{
    int p = 1;
    while ((size_t)p * 2 <= x && p < (1 << 20))
        p *= 2;
    return p;
}

/* Defaults: 64 x 64 tiles (64 work-items: a multiple of every GPU's SIMD
 * width; 64 keys per staged tile), the work-group bounded by the device's
 * limit and the key tile halved until K and V fit in the local memory
 * less a margin for the implementation's own use. */
#define OCL_DEFAULT_TILE 64
#define OCL_LOCAL_MARGIN 1024

int ocl_choose_tiles(const ocl_device *dev, int64_t dim, int *tile_q, int *tile_k)
{
    const cl_ulong local = dev->info.local_mem > OCL_LOCAL_MARGIN
                               ? dev->info.local_mem - OCL_LOCAL_MARGIN
                               : dev->info.local_mem;
    int tq = dev->tile_q > 0 ? dev->tile_q
                             : ocl_floor_pow2(dev->info.max_wg < OCL_DEFAULT_TILE
                                                  ? (dev->info.max_wg ? dev->info.max_wg : 1)
                                                  : OCL_DEFAULT_TILE);
    int tk = dev->tile_k > 0 ? dev->tile_k : OCL_DEFAULT_TILE;
    while (ocl_local_bytes(dim, tq, tk) > local) {
        if (dev->tile_k == 0 && tk > 1)
            tk /= 2;
        else
            break;
    }
    if (ocl_local_bytes(dim, tq, tk) > local) {
        if (dev->tile_q > 0 || dev->tile_k > 0)
            return ocl_fail(LNET_PLUGIN_ERR_INVALID,
                            "opencl run_segment: tile_q=%d, tile_k=%d need %llu bytes of local "
                            "memory for D=%lld, more than the device's %llu",
                            tq, tk, (unsigned long long)ocl_local_bytes(dim, tq, tk),
                            (long long)dim, (unsigned long long)dev->info.local_mem);
        return ocl_fail(LNET_PLUGIN_ERR_UNSUPPORTED,
                        "opencl run_segment: head dimension D=%lld needs %llu bytes of local "
                        "memory even with 1 x 1 tiles, more than the device's %llu",
                        (long long)dim, (unsigned long long)ocl_local_bytes(dim, 1, 1),
                        (unsigned long long)dev->info.local_mem);
    }
    *tile_q = tq;
    *tile_k = tk;
    return LNET_PLUGIN_OK;
}

/* ------------------------------------------------------------- building */

#define OCL_LOG_MAX 2000 /* characters of a build log kept in a message */
#define OCL_LOG_MAX_STR "2000"

/* The build log, cut to its first OCL_LOG_MAX characters (the first errors
 * are the useful ones; ocl_fail's buffer holds the rest of the message). */
static int ocl_build_failure(const ocl_device *dev, cl_program prog, const char *options,
                             cl_int err)
{
    size_t size = 0;
    char *log = NULL;
    if (clGetProgramBuildInfo(prog, dev->info.id, CL_PROGRAM_BUILD_LOG, 0, NULL, &size) ==
            CL_SUCCESS &&
        size > 0) {
        log = malloc(size + 1);
        if (log && clGetProgramBuildInfo(prog, dev->info.id, CL_PROGRAM_BUILD_LOG, size, log,
                                         NULL) != CL_SUCCESS) {
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
                      "opencl: clBuildProgram: %s (options \"%s\") on %s; build log%s:\n%s",
                      ocl_error_name(err), options, dev->info.name,
                      cut ? " (first " OCL_LOG_MAX_STR " characters)" : "",
                      log && log[0] ? log : "(empty)");
    free(log);
    return st;
}

/* The sources of one program: the fused kernel, the gemm path's helper
 * kernels and the backward pass, built together so that a (device, D, tiles) needs one build. */
static const char *const *ocl_sources(cl_uint *count)
{
    static const char *const src[] = {ocl_src_dilated_attention, ocl_src_gemm_softmax,
                                      ocl_src_dilated_attention_backward};
    *count = 3;
    return src;
}

/* SHA-256 over everything that changes the binary: the sources, the build
 * options, and the device, driver and platform that compiled it. Fields are
 * NUL-separated so that no two different tuples hash the same bytes. */
static void ocl_cache_key(const ocl_device *dev, const char *options, unsigned char key[32])
{
    ocl_sha256_ctx s;
    ocl_sha256_init(&s);
    static const char tag[] = "longnet opencl program cache v1";
    ocl_sha256_update(&s, tag, sizeof tag);
    cl_uint n;
    const char *const *src = ocl_sources(&n);
    for (cl_uint i = 0; i < n; i++)
        ocl_sha256_update(&s, src[i], strlen(src[i]) + 1);
    const char *fields[] = {options,
                            dev->info.name,
                            dev->info.driver_version,
                            dev->info.platform_name,
                            dev->info.platform_version,
                            dev->info.device_version};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        ocl_sha256_update(&s, fields[i], strlen(fields[i]) + 1);
    ocl_sha256_final(&s, key);
}

/* A program from a cached binary; NULL when the driver refuses it (another
 * driver build, a corrupted payload that passed the checksum by chance). */
static cl_program ocl_from_binary(const ocl_device *dev, const char *options,
                                  const unsigned char *bin, size_t len)
{
    cl_int err, bin_status = CL_SUCCESS;
    cl_program prog = clCreateProgramWithBinary(dev->context, 1, &dev->info.id, &len, &bin,
                                                &bin_status, &err);
    if (err != CL_SUCCESS || bin_status != CL_SUCCESS) {
        if (prog)
            clReleaseProgram(prog);
        return NULL;
    }
    if (clBuildProgram(prog, 1, &dev->info.id, options, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(prog);
        return NULL;
    }
    return prog;
}

/* The device's binary of a built program, stored in the disk cache. */
static void ocl_store_binary(const ocl_device *dev, cl_program prog, const unsigned char key[32])
{
    cl_uint n_dev = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_NUM_DEVICES, sizeof n_dev, &n_dev, NULL) !=
            CL_SUCCESS ||
        n_dev != 1)
        return;
    size_t len = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof len, &len, NULL) != CL_SUCCESS ||
        len == 0)
        return;
    unsigned char *bin = malloc(len);
    if (!bin)
        return;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) == CL_SUCCESS)
        ocl_cache_store(key, bin, len);
    free(bin);
    (void)dev;
}

static int ocl_build(ocl_device *dev, const char *options, cl_program *out)
{
    unsigned char key[32];
    ocl_cache_key(dev, options, key);

    unsigned char *bin = NULL;
    size_t len = 0;
    const int cached = ocl_cache_load(key, &bin, &len);
    if (cached == 0) {
        cl_program prog = ocl_from_binary(dev, options, bin, len);
        free(bin);
        if (prog) {
            *out = prog;
            return LNET_PLUGIN_OK;
        }
        /* A stale or broken entry: build afresh and overwrite it below. */
    }

    cl_uint n;
    const char *const *src = ocl_sources(&n);
    cl_int err;
    cl_program prog = clCreateProgramWithSource(dev->context, n, (const char **)src, NULL, &err);
    if (err != CL_SUCCESS)
        return ocl_fail_cl("program", "clCreateProgramWithSource", err);
    err = clBuildProgram(prog, 1, &dev->info.id, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        int st = ocl_build_failure(dev, prog, options, err);
        clReleaseProgram(prog);
        return st;
    }
    /* An untrusted directory or entry (-2) is left as it is. */
    if (cached != -2)
        ocl_store_binary(dev, prog, key);
    *out = prog;
    return LNET_PLUGIN_OK;
}

static void ocl_program_free(ocl_program *p)
{
    if (p->fused)
        clReleaseKernel(p->fused);
    if (p->softmax)
        clReleaseKernel(p->softmax);
    if (p->fold)
        clReleaseKernel(p->fold);
    if (p->causal_fix)
        clReleaseKernel(p->causal_fix);
    cl_kernel more[] = {p->fused_rows, p->bwd_dq, p->bwd_dkv, p->bwd_dq_rows, p->bwd_dkv_rows};
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
        if (more[i])
            clReleaseKernel(more[i]);
    if (p->program)
        clReleaseProgram(p->program);
    free(p);
}

int ocl_get_program(ocl_device *dev, int64_t dim, int tile_q, int tile_k, ocl_program **out)
{
    char options[256];
    snprintf(options, sizeof options,
             /* -w: some compilers (PoCL's clang) print their warnings to
              * the process's stderr ("83 warnings generated."), which
              * would break a command's one-line-on-failure promise; a
              * failed build still returns its log. */
             "-cl-std=CL1.2 -cl-mad-enable -w -D HEAD_DIM=%lld -D TILE_Q=%d -D TILE_K=%d",
             (long long)dim, tile_q, tile_k);
    for (ocl_program *p = dev->programs; p; p = p->next)
        if (strcmp(p->options, options) == 0) {
            *out = p;
            return LNET_PLUGIN_OK;
        }

    ocl_program *p = calloc(1, sizeof *p);
    if (!p)
        return ocl_fail(LNET_PLUGIN_ERR_NOMEM, "opencl: out of memory allocating %zu bytes",
                        sizeof *p);
    snprintf(p->options, sizeof p->options, "%s", options);
    int st = ocl_build(dev, options, &p->program);
    if (st) {
        free(p);
        return st;
    }
    const struct {
        const char *name;
        cl_kernel *k;
    } kernels[] = {{"lnet_dilated_fwd", &p->fused},
                   {"lnet_gemm_softmax", &p->softmax},
                   {"lnet_gemm_fold", &p->fold},
                   {"lnet_gemm_causal_fix", &p->causal_fix},
                   {"lnet_dilated_bwd_dq", &p->bwd_dq},
                   {"lnet_dilated_bwd_dkv", &p->bwd_dkv},
                   /* The rows kernels exist only up to their largest D
                    * (the forward's private arrays grow with D), as
                    * kernels/dilated_attention.cl defines it. */
                   {"lnet_dilated_fwd_rows", &p->fused_rows},
                   {"lnet_dilated_bwd_dq_rows", &p->bwd_dq_rows},
                   {"lnet_dilated_bwd_dkv_rows", &p->bwd_dkv_rows}};
    const size_t n_kernels = sizeof kernels / sizeof kernels[0] - (dim <= OCL_ROWS_MAX_DIM ? 0 : 3);
    for (size_t i = 0; i < n_kernels; i++) {
        cl_int err;
        *kernels[i].k = clCreateKernel(p->program, kernels[i].name, &err);
        if (err != CL_SUCCESS) {
            ocl_program_free(p);
            return ocl_fail(LNET_PLUGIN_ERR_DEVICE, "opencl: clCreateKernel(%s): %s",
                            kernels[i].name, ocl_error_name(err));
        }
    }
    size_t wg_dq = 0, wg_dkv = 0;
    cl_int err = clGetKernelWorkGroupInfo(p->fused, dev->info.id, CL_KERNEL_WORK_GROUP_SIZE,
                                          sizeof p->fused_wg, &p->fused_wg, NULL);
    if (err == CL_SUCCESS)
        err = clGetKernelWorkGroupInfo(p->bwd_dq, dev->info.id, CL_KERNEL_WORK_GROUP_SIZE,
                                       sizeof wg_dq, &wg_dq, NULL);
    if (err == CL_SUCCESS)
        err = clGetKernelWorkGroupInfo(p->bwd_dkv, dev->info.id, CL_KERNEL_WORK_GROUP_SIZE,
                                       sizeof wg_dkv, &wg_dkv, NULL);
    p->bwd_wg = wg_dq < wg_dkv ? wg_dq : wg_dkv;
    if (err != CL_SUCCESS) {
        ocl_program_free(p);
        return ocl_fail_cl("program", "clGetKernelWorkGroupInfo(CL_KERNEL_WORK_GROUP_SIZE)", err);
    }
    p->next = dev->programs;
    dev->programs = p;
    *out = p;
    return LNET_PLUGIN_OK;
}

void ocl_free_programs(ocl_device *dev)
{
    ocl_program *p = dev->programs;
    while (p) {
        ocl_program *next = p->next;
        ocl_program_free(p);
        p = next;
    }
    dev->programs = NULL;
}
