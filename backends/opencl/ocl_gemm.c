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
 * further). Only the queries in the job's row range and the keys in the K/V
 * window (and, causal, not after the last query) enter the GEMMs, so a
 * segment's matrices are nq x nk. The segments inside the range and the
 * windows share (nq, nk) and are one batch; those at the edges and a ragged
 * last segment get calls of their own. The nq x nk score matrices are the
 * only large scratch: a batch is cut so that they fit in OCL_SCORES_BUDGET
 * of device memory. */
#include <pthread.h>
#include <stdio.h>

#include "ocl_backend.h"

#ifdef HAVE_CLBLAST
#include <clblast_c.h>

/* CLBlast keeps process-wide caches (compiled programs, tuning databases)
 * that are not safe to fill from two threads at once (CLBlast issue 486):
 * two devices' threads in CLBlastSgemmStridedBatched, one in
 * Routine::InitDatabase and the other in Routine::InitProgram, crashed the
 * process. The plugin runs different devices from different threads at
 * once (longnet-plugin.h), so every CLBlast call holds this lock. It covers
 * only the CLBlast calls: the kernels, queues and buffers of this file are
 * the device's own, and a call only enqueues, so the lock is held for the
 * time of an enqueue (and of CLBlast's first build of a routine for a
 * context), not for the GEMM itself. */
static pthread_mutex_t ocl_clblast_lock = PTHREAD_MUTEX_INITIALIZER;

/* The open devices that have called CLBlast; under ocl_clblast_lock.
 * CLBlast caches a compiled program per OpenCL context and never drops one
 * by itself: without CLBlastClearCache every context created and freed
 * (a binding creating and freeing longnet contexts) left ~3 MB behind, and
 * the entries of released contexts were torn down at exit, after the
 * OpenCL runtime (Oclgrind aborted there). The cache has no per-context
 * eviction, so it is cleared when the last device using it closes. */
static int ocl_clblast_users;

/* CLBlastSgemmStridedBatched (row major, A not transposed) under the lock. */
static CLBlastStatusCode ocl_sgemm_batched(ocl_device *dev, CLBlastTranspose b_transpose,
                                           size_t m, size_t n,
                                           size_t k, float alpha, cl_mem a, size_t a_off,
                                           size_t a_ld, size_t a_stride, cl_mem b, size_t b_off,
                                           size_t b_ld, size_t b_stride, cl_mem c, size_t c_off,
                                           size_t c_ld, size_t c_stride, size_t count,
                                           cl_command_queue *queue)
{
    pthread_mutex_lock(&ocl_clblast_lock);
    if (!dev->clblast_used) {
        dev->clblast_used = 1;
        ocl_clblast_users++;
    }
    CLBlastStatusCode cs = CLBlastSgemmStridedBatched(
        CLBlastLayoutRowMajor, CLBlastTransposeNo, b_transpose, m, n, k, alpha, a, a_off, a_ld,
        a_stride, b, b_off, b_ld, b_stride, 0.0f, c, c_off, c_ld, c_stride, count, queue, NULL);
    pthread_mutex_unlock(&ocl_clblast_lock);
    return cs;
}

void ocl_gemm_close(ocl_device *dev)
{
    if (!dev->clblast_used)
        return;
    pthread_mutex_lock(&ocl_clblast_lock);
    dev->clblast_used = 0;
    /* Its status is not checked: there is nothing to do about a cache that
     * could not be cleared but go on closing the device. */
    if (--ocl_clblast_users == 0)
        (void)CLBlastClearCache();
    pthread_mutex_unlock(&ocl_clblast_lock);
}

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

#define OCL_ARG(kern, x) OCL_SET_ARG("gemm", kern, x)

/* Consecutive segments s0 .. s0 + count - 1 of one (batch, head) whose
 * queries are the selected indices [j_lo, j_lo + nq) and whose keys are
 * [k_lo, k_lo + nk) — the same in each, so that one segment's matrices are
 * the previous one's moved by w rows: one strided batch. */
typedef struct ocl_gemm_batch {
    int64_t b, h;
    int64_t s0, count;
    int64_t o;         /* the head's offset */
    int64_t j_lo, nq;
    int64_t k_lo, nk;
} ocl_gemm_batch;

static int ocl_gemm_run_batch(ocl_device *dev, const ocl_program *prog, const lnet_segment_job *job,
                              const ocl_window *win, const ocl_gemm_batch *bt)
{
    const int64_t H = job->heads, D = job->dim, w = job->segment, r = job->dilation;
    const size_t nq = (size_t)bt->nq, nk = (size_t)bt->nk;
    const size_t per_scores = nq * nk * sizeof(float);
    size_t budget = OCL_SCORES_BUDGET;
    if ((cl_ulong)budget > dev->info.global_mem / 4)
        budget = (size_t)(dev->info.global_mem / 4);
    if ((cl_ulong)budget > dev->info.max_alloc)
        budget = (size_t)dev->info.max_alloc;
    if (per_scores > budget)
        return ocl_fail(LNET_PLUGIN_ERR_NOMEM,
                        "opencl gemm: %zu queries x %zu keys of a segment need %zu bytes of "
                        "scores, more than the %zu bytes the gemm path may use on %s; use the "
                        "fused kernel",
                        nq, nk, per_scores, budget, dev->info.name);
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
                              (size_t)c * nq * (size_t)D * sizeof(float), "branch outputs")) ||
            (st = ocl_scratch(dev, &dev->branch_lse, &dev->branch_lse_bytes,
                              (size_t)c * nq * sizeof(float), "branch lse")))
            return st;

        /* The first query and key row of the batch's first segment, as
         * element offsets into the windowed buffers. */
        const int64_t first0 = (bt->s0 + done) * w + bt->o;
        const size_t q_off = (size_t)(((bt->b * win->q_rows + (first0 + bt->j_lo * r -
                                                               win->q_base)) * H + bt->h) * D);
        const size_t k_off = (size_t)(((bt->b * win->kv_rows + (first0 + bt->k_lo * r -
                                                                win->kv_base)) * H + bt->h) * D);
        CLBlastStatusCode cs =
            ocl_sgemm_batched(dev, CLBlastTransposeYes, nq, nk, (size_t)D, job->scale, q, q_off,
                              ld, stride, k, k_off, ld, stride, dev->scores, 0, nk, nq * nk,
                              (size_t)c, &dev->queue);
        if (cs != CLBlastSuccess)
            return ocl_fail(LNET_PLUGIN_ERR_DEVICE,
                            "opencl gemm: CLBlastSgemmStridedBatched (S = Q K^T, %zu x %zu x %lld, "
                            "batch %lld): %s (%d)",
                            nq, nk, (long long)D, (long long)c, ocl_clblast_name(cs), (int)cs);

        cl_int err;
        cl_uint a = 0;
        cl_int nq_i = (cl_int)nq, nk_i = (cl_int)nk, causal = job->causal;
        /* Causal: query i (index j_lo + i) takes keys t (index k_lo + t)
         * with t <= i + diag. */
        cl_long diag = bt->j_lo - bt->k_lo;
        OCL_ARG(prog->softmax, dev->scores);
        OCL_ARG(prog->softmax, dev->branch_lse);
        OCL_ARG(prog->softmax, nq_i);
        OCL_ARG(prog->softmax, nk_i);
        OCL_ARG(prog->softmax, causal);
        OCL_ARG(prog->softmax, diag);
        size_t global[2] = {nq, (size_t)c};
        err = clEnqueueNDRangeKernel(dev->queue, prog->softmax, 2, NULL, global, NULL, 0, NULL,
                                     NULL);
        if (err != CL_SUCCESS)
            return ocl_fail_cl("gemm", "clEnqueueNDRangeKernel(lnet_gemm_softmax)", err);

        cs = ocl_sgemm_batched(dev, CLBlastTransposeNo, nq, (size_t)D, nk, 1.0f, dev->scores, 0,
                               nk, nq * nk, v, k_off, ld, stride, dev->branch_out, 0,
                               (size_t)D, nq * (size_t)D, (size_t)c, &dev->queue);
        if (cs != CLBlastSuccess)
            return ocl_fail(LNET_PLUGIN_ERR_DEVICE,
                            "opencl gemm: CLBlastSgemmStridedBatched (O = P V, %zu x %lld x %zu, "
                            "batch %lld): %s (%d)",
                            nq, (long long)D, nk, (long long)c, ocl_clblast_name(cs), (int)cs);

        /* Causal: the masked zeros of P met the values of keys after each
         * query in the GEMM; rows where that made NaN are redone from their
         * own keys (gemm_softmax.cl). Without causality every key of the
         * batch is every query's. */
        if (job->causal) {
            a = 0;
            cl_long v_off = (cl_long)k_off, ld_l = (cl_long)ld, stride_l = (cl_long)stride;
            OCL_ARG(prog->causal_fix, dev->scores);
            OCL_ARG(prog->causal_fix, dev->branch_out);
            OCL_ARG(prog->causal_fix, v);
            OCL_ARG(prog->causal_fix, v_off);
            OCL_ARG(prog->causal_fix, ld_l);
            OCL_ARG(prog->causal_fix, stride_l);
            OCL_ARG(prog->causal_fix, nq_i);
            OCL_ARG(prog->causal_fix, nk_i);
            OCL_ARG(prog->causal_fix, diag);
            err = clEnqueueNDRangeKernel(dev->queue, prog->causal_fix, 2, NULL, global, NULL, 0,
                                         NULL, NULL);
            if (err != CL_SUCCESS)
                return ocl_fail_cl("gemm", "clEnqueueNDRangeKernel(lnet_gemm_causal_fix)", err);
        }

        a = 0;
        cl_long first_l = first0, w_l = w, r_l = r, j_lo = bt->j_lo, qb = win->q_base,
                qn = win->q_rows;
        cl_int H_i = (cl_int)H, b_i = (cl_int)bt->b, h_i = (cl_int)bt->h, init = job->init;
        OCL_ARG(prog->fold, dev->branch_out);
        OCL_ARG(prog->fold, dev->branch_lse);
        OCL_ARG(prog->fold, out);
        OCL_ARG(prog->fold, lse);
        OCL_ARG(prog->fold, H_i);
        OCL_ARG(prog->fold, b_i);
        OCL_ARG(prog->fold, h_i);
        OCL_ARG(prog->fold, first_l);
        OCL_ARG(prog->fold, w_l);
        OCL_ARG(prog->fold, r_l);
        OCL_ARG(prog->fold, nq_i);
        OCL_ARG(prog->fold, j_lo);
        OCL_ARG(prog->fold, qb);
        OCL_ARG(prog->fold, qn);
        OCL_ARG(prog->fold, init);
        err = clEnqueueNDRangeKernel(dev->queue, prog->fold, 2, NULL, global, NULL, 0, NULL, NULL);
        if (err != CL_SUCCESS)
            return ocl_fail_cl("gemm", "clEnqueueNDRangeKernel(lnet_gemm_fold)", err);
    }
    return LNET_PLUGIN_OK;
}

/* The selected indices j (row first + j*r) with lo <= row < hi: [*a, *b). */
static void ocl_sel_range(int64_t first, int64_t r, int64_t n_sel, int64_t lo, int64_t hi,
                          int64_t *a, int64_t *b)
{
    *a = lo > first ? lnet_plugin_ceil_div(lo - first, r) : 0;
    *b = hi > first ? lnet_plugin_ceil_div(hi - first, r) : 0;
    if (*b > n_sel)
        *b = n_sel;
}

int ocl_run_gemm(ocl_device *dev, const lnet_segment_job *job, const ocl_window *win)
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
    for (int64_t b = 0; b < job->batch; b++)
        for (int64_t h = 0; h < job->heads; h++) {
            const int64_t o = lnet_plugin_head_offset(job->offsets, h, job->heads, r);
            /* Runs of segments with the same query and key ranges: the
             * whole segments inside the range and windows form one, the
             * ones at their edges and a ragged last segment their own. */
            ocl_gemm_batch run = {b, h, 0, 0, o, 0, 0, 0, 0};
            for (int64_t s = s_first; s <= s_last + 1; s++) {
                ocl_gemm_batch cur = {b, h, s, 1, o, 0, 0, 0, 0};
                if (s <= s_last) {
                    const int64_t start = s * w, end = (w > N - start) ? N : start + w;
                    const int64_t first = start + o;
                    const int64_t n_sel = first < end ? lnet_plugin_ceil_div(end - first, r) : 0;
                    int64_t j_hi, k_hi;
                    ocl_sel_range(first, r, n_sel, job->row_begin, job->row_end, &cur.j_lo, &j_hi);
                    ocl_sel_range(first, r, n_sel, win->kv_base, win->kv_base + win->kv_rows,
                                  &cur.k_lo, &k_hi);
                    /* Causal: no query needs a key after the last query. */
                    if (job->causal && k_hi > j_hi)
                        k_hi = j_hi;
                    cur.nq = j_hi - cur.j_lo;
                    cur.nk = k_hi - cur.k_lo;
                    /* No query, or no key (the rows stay untouched). */
                    if (cur.nq <= 0 || cur.nk <= 0)
                        cur.nq = cur.nk = 0;
                }
                if (run.count > 0 && cur.nq == run.nq && cur.nk == run.nk &&
                    cur.j_lo == run.j_lo && cur.k_lo == run.k_lo && s <= s_last) {
                    run.count++;
                    continue;
                }
                if (run.count > 0 && run.nq > 0 &&
                    (st = ocl_gemm_run_batch(dev, prog, job, win, &run)))
                    return st;
                run = cur;
            }
        }
    return LNET_PLUGIN_OK;
}

#else /* !HAVE_CLBLAST */

int ocl_have_gemm(void)
{
    return 0;
}

void ocl_gemm_close(ocl_device *dev)
{
    (void)dev;
}

int ocl_run_gemm(ocl_device *dev, const lnet_segment_job *job, const ocl_window *win)
{
    (void)dev;
    (void)job;
    (void)win;
    return ocl_fail(LNET_PLUGIN_ERR_UNSUPPORTED,
                    "opencl run_segment: kernel 'gemm' needs CLBlast, which this build lacks "
                    "(available: fused)");
}

#endif /* HAVE_CLBLAST */
