#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* ocl_program.c — tile sizes and programs. A program is specialised by its
 * build options (HEAD_DIM, TILE_Q, TILE_K), so each (device, D, tiles)
 * needs its own; it is looked up in the device's list, then in the on-disk
 * cache (opencl-common/ocl_build.c) by a SHA-256 key of everything that changes the
 * binary, and only then built from the embedded source. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_backend.h"

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

/* The sources of one program: the segment geometry, the fused kernel, the gemm path's helper
 * kernels and the backward pass, built together so that a (device, D,
 * tiles) needs one build. */
static const char *const *ocl_sources(cl_uint *count)
{
    static const char *const src[] = {ocl_src_dilated_geometry, ocl_src_dilated_attention,
                                      ocl_src_gemm_softmax, ocl_src_dilated_attention_backward};
    *count = 4;
    return src;
}

static int ocl_build(ocl_device *dev, const char *options, cl_program *out)
{
    cl_uint n;
    const char *const *src = ocl_sources(&n);
    return ocl_build_cached(dev->context, &dev->info, "longnet opencl program cache v1", src, n,
                            options, out);
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
