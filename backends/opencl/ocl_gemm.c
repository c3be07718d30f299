#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* ocl_gemm.c — the "gemm" path: per (batch, head), the segments of a level
 * that have the same number n of selected rows are one strided batch:
 *
 *   S_c = scale * Q_c K_c^T     CLBlastSgemmStridedBatched, n x n x D
 *   P_c = softmax(S_c), lse_c   lnet_gemm_softmax (causal mask, row max/sum)
 *   O_c = P_c V_c               CLBlastSgemmStridedBatched, n x D x n
 *   fold (O_c, lse_c)           lnet_gemm_fold, into the running (out, lse)
 *
 * The selected rows of a segment are evenly strided, so Q_c, K_c and V_c are
 * read in place: leading dimension r*H*D, batch stride w*H*D (one segment
 * further). Full segments share n; a ragged last segment has its own n and
 * its own calls. The n x n score matrices are the only large scratch: a
 * batch is cut so that they fit in OCL_SCORES_BUDGET of device memory. */
#include <stdio.h>

#include "ocl_backend.h"

#ifdef HAVE_CLBLAST
#include <clblast_c.h>

int ocl_have_gemm(void)
{
    return 1;
}

/* The CLBlast codes of its own (below -1000); the others are OpenCL's. */
static const char *ocl_clblast_name(CLBlastStatusCode code)
{
    static const struct {
        int code;
        const char *name;
    } names[] = {
        {-1024, "CLBlastNotImplemented"},      {-1022, "CLBlastInvalidMatrixA"},
        {-1021, "CLBlastInvalidMatrixB"},      {-1020, "CLBlastInvalidMatrixC"},
        {-1017, "CLBlastInvalidDimension"},    {-1016, "CLBlastInvalidLeadDimA"},
        {-1015, "CLBlastInvalidLeadDimB"},     {-1014, "CLBlastInvalidLeadDimC"},
        {-1011, "CLBlastInsufficientMemoryA"}, {-1010, "CLBlastInsufficientMemoryB"},
        {-1009, "CLBlastInsufficientMemoryC"}, {-2050, "CLBlastInsufficientMemoryTemp"},
        {-2049, "CLBlastInvalidBatchCount"},   {-2046, "CLBlastInvalidLocalMemUsage"},
        {-2041, "CLBlastDatabaseError"},       {-2040, "CLBlastUnknownError"},
        {-2039, "CLBlastUnexpectedError"},
    };
    if ((int)code > -1000)
        return ocl_error_name((cl_int)code);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].code == (int)code)
            return names[i].name;
    return "unknown CLBlast error";
}

/* At most this much device memory (and at most a quarter of it, and one
 * allocation) for the score matrices of one batch. */
#define OCL_SCORES_BUDGET ((size_t)512 << 20)

/* A scratch buffer of at least `bytes`, grown on demand and kept. */
static int ocl_scratch(ocl_device *dev, cl_mem *mem, size_t *have, size_t bytes, const char *what)
{
    if (*mem && *have >= bytes)
        return LNET_PLUGIN_OK;
    if (*mem) {
        clReleaseMemObject(*mem);
        *mem = NULL;
        *have = 0;
    }
    if ((cl_ulong)bytes > dev->info.max_alloc)
        return ocl_fail(LNET_PLUGIN_ERR_NOMEM,
                        "opencl gemm: the %s need %zu bytes, more than one allocation on %s may "
                        "hold (%llu bytes); use the fused kernel",
                        what, bytes, dev->info.name, (unsigned long long)dev->info.max_alloc);
    cl_int err;
    *mem = clCreateBuffer(dev->context, CL_MEM_READ_WRITE, bytes ? bytes : 4, NULL, &err);
    if (err != CL_SUCCESS) {
        *mem = NULL;
        return ocl_fail(LNET_PLUGIN_ERR_NOMEM, "opencl gemm: clCreateBuffer(%zu bytes of %s): %s",
                        bytes, what, ocl_error_name(err));
    }
    *have = bytes;
    return LNET_PLUGIN_OK;
}

#define OCL_ARG(kern, x)                                                                   \
    do {                                                                                   \
        if ((err = clSetKernelArg(kern, a, sizeof(x), &(x))) != CL_SUCCESS)                \
            return ocl_fail(LNET_PLUGIN_ERR_DEVICE, "opencl gemm: clSetKernelArg(%u, %s): %s", \
                            a, #x, ocl_error_name(err));                                   \
        a++;                                                                               \
    } while (0)

typedef struct ocl_gemm_batch {
    int64_t b, h;
    int64_t s0, count; /* segments s0 .. s0 + count - 1 */
    int64_t n;         /* selected rows in each */
    int64_t o;         /* the head's offset */
} ocl_gemm_batch;

static int ocl_gemm_run_batch(ocl_device *dev, const ocl_program *prog, const lnet_segment_job *job,
                              const ocl_gemm_batch *bt)
{
    const int64_t N = job->rows, H = job->heads, D = job->dim, w = job->segment,
                  r = job->dilation;
    const size_t n = (size_t)bt->n;
    const size_t per_scores = n * n * sizeof(float);
    size_t budget = OCL_SCORES_BUDGET;
    if ((cl_ulong)budget > dev->info.global_mem / 4)
        budget = (size_t)(dev->info.global_mem / 4);
    if ((cl_ulong)budget > dev->info.max_alloc)
        budget = (size_t)dev->info.max_alloc;
    if (per_scores > budget)
        return ocl_fail(LNET_PLUGIN_ERR_NOMEM,
                        "opencl gemm: a segment of %zu selected rows needs %zu bytes of scores, "
                        "more than the %zu bytes the gemm path may use on %s; use the fused kernel",
                        n, per_scores, budget, dev->info.name);
    const int64_t max_count = (int64_t)(budget / per_scores);

    cl_mem q = ((ocl_buffer *)job->q)->mem, k = ((ocl_buffer *)job->k)->mem,
           v = ((ocl_buffer *)job->v)->mem, out = ((ocl_buffer *)job->out)->mem,
           lse = ((ocl_buffer *)job->lse)->mem;
    const size_t ld = (size_t)(r * H * D), stride = (size_t)(w * H * D);

    for (int64_t done = 0; done < bt->count; done += max_count) {
        const int64_t c = bt->count - done < max_count ? bt->count - done : max_count;
        int st;
        if ((st = ocl_scratch(dev, &dev->scores, &dev->scores_bytes, (size_t)c * per_scores,
                              "score matrices")) ||
            (st = ocl_scratch(dev, &dev->branch_out, &dev->branch_out_bytes,
                              (size_t)c * n * (size_t)D * sizeof(float), "branch outputs")) ||
            (st = ocl_scratch(dev, &dev->branch_lse, &dev->branch_lse_bytes,
                              (size_t)c * n * sizeof(float), "branch lse")))
            return st;

        const int64_t first0 = (bt->s0 + done) * w + bt->o;
        const size_t off = (size_t)(((bt->b * N + first0) * H + bt->h) * D);
        CLBlastStatusCode cs = CLBlastSgemmStridedBatched(
            CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes, n, n, (size_t)D,
            job->scale, q, off, ld, stride, k, off, ld, stride, 0.0f, dev->scores, 0, n, n * n,
            (size_t)c, &dev->queue, NULL);
        if (cs != CLBlastSuccess)
            return ocl_fail(LNET_PLUGIN_ERR_DEVICE,
                            "opencl gemm: CLBlastSgemmStridedBatched (S = Q K^T, %zu x %zu x %lld, "
                            "batch %lld): %s (%d)",
                            n, n, (long long)D, (long long)c, ocl_clblast_name(cs), (int)cs);

        cl_int err;
        cl_uint a = 0;
        cl_int n_i = (cl_int)n, causal = job->causal;
        OCL_ARG(prog->softmax, dev->scores);
        OCL_ARG(prog->softmax, dev->branch_lse);
        OCL_ARG(prog->softmax, n_i);
        OCL_ARG(prog->softmax, causal);
        size_t global[2] = {n, (size_t)c};
        err = clEnqueueNDRangeKernel(dev->queue, prog->softmax, 2, NULL, global, NULL, 0, NULL,
                                     NULL);
        if (err != CL_SUCCESS)
            return ocl_fail_cl("gemm", "clEnqueueNDRangeKernel(lnet_gemm_softmax)", err);

        cs = CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, CLBlastTransposeNo,
                                        CLBlastTransposeNo, n, (size_t)D, n, 1.0f, dev->scores, 0,
                                        n, n * n, v, off, ld, stride, 0.0f, dev->branch_out, 0,
                                        (size_t)D, n * (size_t)D, (size_t)c, &dev->queue, NULL);
        if (cs != CLBlastSuccess)
            return ocl_fail(LNET_PLUGIN_ERR_DEVICE,
                            "opencl gemm: CLBlastSgemmStridedBatched (O = P V, %zu x %lld x %zu, "
                            "batch %lld): %s (%d)",
                            n, (long long)D, n, (long long)c, ocl_clblast_name(cs), (int)cs);

        a = 0;
        cl_long N_l = N, first_l = first0, w_l = w, r_l = r, rb = job->row_begin,
                re = job->row_end;
        cl_int H_i = (cl_int)H, b_i = (cl_int)bt->b, h_i = (cl_int)bt->h, init = job->init;
        OCL_ARG(prog->fold, dev->branch_out);
        OCL_ARG(prog->fold, dev->branch_lse);
        OCL_ARG(prog->fold, out);
        OCL_ARG(prog->fold, lse);
        OCL_ARG(prog->fold, N_l);
        OCL_ARG(prog->fold, H_i);
        OCL_ARG(prog->fold, b_i);
        OCL_ARG(prog->fold, h_i);
        OCL_ARG(prog->fold, first_l);
        OCL_ARG(prog->fold, w_l);
        OCL_ARG(prog->fold, r_l);
        OCL_ARG(prog->fold, n_i);
        OCL_ARG(prog->fold, rb);
        OCL_ARG(prog->fold, re);
        OCL_ARG(prog->fold, init);
        err = clEnqueueNDRangeKernel(dev->queue, prog->fold, 2, NULL, global, NULL, 0, NULL, NULL);
        if (err != CL_SUCCESS)
            return ocl_fail_cl("gemm", "clEnqueueNDRangeKernel(lnet_gemm_fold)", err);
    }
    return LNET_PLUGIN_OK;
}

static int64_t ceil_div64(int64_t a, int64_t b)
{
    return a / b + (a % b != 0);
}

int ocl_run_gemm(ocl_device *dev, const lnet_segment_job *job)
{
    if (job->row_begin >= job->row_end)
        return LNET_PLUGIN_OK;
    if (job->rows > INT32_MAX)
        return ocl_fail(LNET_PLUGIN_ERR_UNSUPPORTED,
                        "opencl gemm: rows = %lld is more than the gemm path indexes (2^31 - 1); "
                        "use the fused kernel",
                        (long long)job->rows);
    int tile_q, tile_k;
    ocl_program *prog;
    int st = ocl_choose_tiles(dev, job->dim, &tile_q, &tile_k);
    if (st || (st = ocl_get_program(dev, job->dim, tile_q, tile_k, &prog)))
        return st;

    const int64_t N = job->rows, w = job->segment, r = job->dilation;
    const int64_t s_first = job->row_begin / w, s_last = (job->row_end - 1) / w;
    /* Segments [0, n_full) are whole; segment n_full (if any) is ragged. */
    const int64_t n_full = N / w;
    for (int64_t b = 0; b < job->batch; b++)
        for (int64_t h = 0; h < job->heads; h++) {
            const int64_t o = ocl_head_offset(job->offsets, h, job->heads, r);
            const int64_t full_last = s_last < n_full - 1 ? s_last : n_full - 1;
            if (full_last >= s_first) {
                ocl_gemm_batch bt = {b, h, s_first, full_last - s_first + 1,
                                     ceil_div64(w - o, r), o};
                if ((st = ocl_gemm_run_batch(dev, prog, job, &bt)))
                    return st;
            }
            if (s_last >= n_full && s_last >= s_first) {
                const int64_t start = s_last * w;
                if (start + o < N) {
                    ocl_gemm_batch bt = {b, h, s_last, 1, ceil_div64(N - start - o, r), o};
                    if ((st = ocl_gemm_run_batch(dev, prog, job, &bt)))
                        return st;
                }
            }
        }
    return LNET_PLUGIN_OK;
}

#else /* !HAVE_CLBLAST */

int ocl_have_gemm(void)
{
    return 0;
}

int ocl_run_gemm(ocl_device *dev, const lnet_segment_job *job)
{
    (void)dev;
    (void)job;
    return ocl_fail(LNET_PLUGIN_ERR_UNSUPPORTED,
                    "opencl run_segment: kernel 'gemm' needs CLBlast, which this build lacks "
                    "(available: fused)");
}

#endif /* HAVE_CLBLAST */
