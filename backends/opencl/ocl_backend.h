/* ocl_backend.h — what the OpenCL backend's files share; nothing outside
 * backends/opencl/ sees it. The module exports only lnet_plugin_entry (the
 * link step restricts the exported symbols), so these names stay private.
 *
 * The OpenCL host code it shares with the FPGA backend (errors, device
 * queries, program building, the binary cache) is backends/opencl-common/. */
#ifndef LNET_OCL_BACKEND_H
#define LNET_OCL_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "ocl_common.h" /* errors, device queries, building, the cache */
#include "longnet-plugin-check.h"
#include "longnet-plugin-math.h" /* ceil division, head offsets */
#include "longnet-plugin.h"

/* ------------------------------------------------------------ devices */

/* A built program for one set of build options, kept by the opened device
 * (the in-memory cache in front of the on-disk one). */
typedef struct ocl_program {
    struct ocl_program *next;
    char options[256];
    cl_program program;
    cl_kernel fused, softmax, fold;
    cl_kernel causal_fix; /* the gemm path's causal rows with non-finite values */
    cl_kernel fused_rows; /* the rows kernel; NULL where D is too large for it */
    size_t fused_wg; /* CL_KERNEL_WORK_GROUP_SIZE of the (tiled) fused kernel */
    /* The backward pass (kernels/dilated_attention_backward.cl): dQ, and
     * dK with dV, tiled and (up to OCL_ROWS_MAX_DIM) rows. */
    cl_kernel bwd_dq, bwd_dkv, bwd_dq_rows, bwd_dkv_rows;
    size_t bwd_wg; /* the smaller CL_KERNEL_WORK_GROUP_SIZE of the tiled two */
} ocl_program;

/* Which form of the fused kernel a device runs (device option fused=...). */
enum { OCL_VARIANT_AUTO = 0, OCL_VARIANT_TILED, OCL_VARIANT_ROWS };

typedef struct ocl_device {
    ocl_devinfo info;
    cl_context context;
    cl_command_queue queue;
    /* Asynchronous writes go on their own queue, so that a device with a
     * copy engine moves the next K/V block while the current one computes;
     * created on the first such write. */
    cl_command_queue copy_queue;
    int tile_q, tile_k;           /* overrides; 0: chosen from the device */
    int variant;                  /* OCL_VARIANT_* */
    ocl_program *programs;
    /* The gemm path's scratch (scores, branch outputs, branch lse), grown
     * on demand and kept for the next job. */
    cl_mem scores, branch_out, branch_lse;
    size_t scores_bytes, branch_out_bytes, branch_lse_bytes;
    int clblast_used; /* this device has called CLBlast (ocl_gemm.c) */
} ocl_device;

/* ------------------------------------------------------------ programs */

/* The tile sizes a job of head dimension `dim` runs with: the overrides of
 * the device, else chosen from its local memory and work-group limits.
 * Fails, naming the value, when an override does not fit the device. */
int ocl_choose_tiles(const ocl_device *dev, int64_t dim, int *tile_q, int *tile_k);

/* The program for (dim, tile_q, tile_k) on this device: from the device's
 * in-memory list, else the on-disk cache, else built from the embedded
 * source (and then cached). */
int ocl_get_program(ocl_device *dev, int64_t dim, int tile_q, int tile_k, ocl_program **out);
void ocl_free_programs(ocl_device *dev);

/* ---------------------------------------------------------- the kernels */

/* The rows a job's buffers hold (the row windows of lnet_segment_job): q,
 * out, lse from q_base (q_rows rows), k, v from kv_base (kv_rows rows); a
 * job without windows holds every row. */
/* The rows a job's buffers hold (the SDK's shared job check fills it). */
typedef lnet_plugin_window ocl_window;

/* The kernels, on a job validated by run_segment. */
int ocl_run_fused(ocl_device *dev, const lnet_segment_job *job, const ocl_window *win);
/* The fused backward pass (ocl_backward.c), on a job validated by
 * run_segment_backward; the gemm kernel runs it too. */
int ocl_run_backward(ocl_device *dev, const lnet_segment_backward_job *job,
                     const ocl_window *win);

/* What a fused job (forward, or with `backward` the backward's) runs
 * with: its program, the form (rows) and tile_q, the tiled form's
 * work-group (shrunk to what the compiled kernels allow) or OCL_ROWS_RV
 * for the rows form; and its grid: segments [s_first, s_last], n_bh
 * (batch, head) pairs, and the rows a segment can hold, min(w, N) (seg)
 * and of those in the job's row range (q_span). */
typedef struct ocl_fused_plan {
    ocl_program *prog;
    int rows, tile_q;
    int64_t s_first, s_last, n_bh, seg, q_span;
} ocl_fused_plan;

/* Fills the plan of a job with rows in its range (row_begin < row_end). */
int ocl_fused_prepare(ocl_device *dev, const lnet_segment_job *job, int backward,
                      ocl_fused_plan *plan);

/* Launches `kern`, whose arguments before a_grid are set, over the
 * segments [s_first, s_last] of n_bh (batch, head) pairs, global0 x local0
 * work-items in the first dimension: several launches where a driver's
 * 65535-group limit on the other two dimensions requires (the last two
 * arguments, s0 and bh0, say where each starts). */
int ocl_launch_segments(ocl_device *dev, cl_kernel kern, cl_uint a_grid, int64_t s_first,
                        int64_t s_last, int64_t n_bh, size_t global0, size_t local0,
                        const char *name, int64_t dim);

/* Sets argument `a` of `kern` to x and moves on; on failure, returns from
 * the caller (which declares cl_int err and cl_uint a). */
#define OCL_SET_ARG(who, kern, x)                                                            \
    do {                                                                                   \
        if ((err = clSetKernelArg(kern, a, sizeof(x), &(x))) != CL_SUCCESS)                \
            return ocl_fail(LNET_PLUGIN_ERR_DEVICE, "opencl " who ": clSetKernelArg(%u, %s): %s", \
                            a, #x, ocl_error_name(err));                                   \
        a++;                                                                               \
    } while (0)
int ocl_run_gemm(ocl_device *dev, const lnet_segment_job *job, const ocl_window *win);
/* The rows kernel's query rows per work-item (LNET_RV) and largest D
 * (LNET_ROWS_MAX_DIM), as kernels/dilated_attention.cl defines them. */
#define OCL_ROWS_RV 16
#define OCL_ROWS_MAX_DIM 256

/* Whether jobs of head dimension `dim` run the fused kernel's rows form. */
int ocl_fused_uses_rows(const ocl_device *dev, int64_t dim);
int ocl_have_gemm(void);
/* Called by close after the device's queue has finished: the last open
 * device that used CLBlast empties CLBlast's caches. */
void ocl_gemm_close(ocl_device *dev);


/* Sources embedded at build time (scripts/embed-cl, ocl_kernels.c). */
extern const char ocl_src_dilated_geometry[];
extern const char ocl_src_dilated_attention[];
extern const char ocl_src_gemm_softmax[];
extern const char ocl_src_dilated_attention_backward[];

#endif /* LNET_OCL_BACKEND_H */
