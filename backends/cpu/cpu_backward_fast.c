#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cpu_backward_fast.c — the fast backward kernel's driver: one backward job
 * (lnet_segment_backward_job) cut into work items for the device's thread
 * pool, each run by the SIMD item of cpu_bwd_template.h on the device's
 * SIMD path.
 *
 * No two items write one row at the same time. With enough (batch,
 * segment, head) runs to keep the threads busy (many, or few that share
 * out evenly: few_runs_fused), an item is a whole run and owns its rows of
 * dq, dk and dv (one pass, FlashAttention-2's fused backward). With fewer,
 * the job is two passes: a key-major one whose items
 * are key tiles (each owns its dk, dv rows) and a query-major one whose
 * items are query tiles (each owns its dq rows), both recomputing P from
 * the final LSE. Rows are absolute for segments, selection and causality;
 * only the addresses subtract the windows' first rows, as in cpu_fast.c. */
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "cpu_backend.h"
#include "cpu_backward.h"
#include "cpu_bwd.h"
#include "cpu_fast.h"
#include "cpu_pool.h"
#include "cpu_simd.h"

#define LNET_LOG2E 1.442695040888963407359924681001892137

typedef struct bwd_run {
    const cpu_bwd_kernel *kern;
    const lnet_segment_job *job;
    cpu_window win;
    cpu_bwd_job bj;
    const cpu_backward_buffers *buf;
    float *const *scratch;
    int64_t s_first, n_segs; /* segments touching [row_begin, row_end) */
    int64_t runs;            /* batch * n_segs * heads */
    int64_t tiles;           /* tiles per run of the pass (1: whole runs) */
    int flags;               /* the pass: CPU_BWD_DQ, CPU_BWD_DKV or both */
    atomic_llong next;
} bwd_run;

/* The backward item of the tile kernel the device runs. */
static const cpu_bwd_kernel *bwd_kernel_for(const cpu_tile_kernel *tile)
{
#ifdef LNET_HAVE_X86_SIMD
    if (tile == &cpu_tile_avx512)
        return &cpu_bwd_avx512;
    if (tile == &cpu_tile_avx2)
        return &cpu_bwd_avx2;
#endif
    (void)tile;
    return &cpu_bwd_generic;
}

/* The whole run `run` (batch, segment, head): its selected queries in the
 * row range and keys in the K/V window, and the addresses of their first
 * rows. Returns 0 when the run has nothing to compute. */
static int run_item(const bwd_run *R, int64_t run, cpu_bwd_item *it)
{
    const lnet_segment_job *job = R->job;
    const cpu_window *win = &R->win;
    const int64_t H = job->heads, D = job->dim, r = job->dilation;
    const int64_t h = run % H, bs = run / H;
    const int64_t s = R->s_first + bs % R->n_segs, b = bs / R->n_segs;

    const int64_t o = lnet_plugin_head_offset(job->offsets, h, H, r);
    cpu_seg_rows g;
    if (!cpu_segment_rows(job, win, s, o, &g))
        return 0;
    const int64_t first = g.first, kb = win->kv_base;
    it->j_lo = g.j_lo;
    it->j_hi = g.j_hi;
    it->k_lo = g.k_lo;
    it->k_hi = g.k_hi;
    if (job->causal) {
        /* Queries before the first key see none; keys after the last
         * query are seen by none. */
        if (it->j_lo < it->k_lo)
            it->j_lo = it->k_lo;
        if (it->k_hi > it->j_hi)
            it->k_hi = it->j_hi;
    }
    if (it->j_lo >= it->j_hi || it->k_lo >= it->k_hi)
        return 0;

    const size_t qat = cpu_bnh_index(b, first + it->j_lo * r - win->q_base, h, win->q_rows, H, D);
    const size_t kat = cpu_bnh_index(b, first + it->k_lo * r - kb, h, win->kv_rows, H, D);
    const size_t lat = ((size_t)b * (size_t)H + (size_t)h) * (size_t)win->q_rows +
                       (size_t)(first + it->j_lo * r - win->q_base);
    const cpu_backward_buffers *B = R->buf;
    it->q0 = B->q + qat;
    it->do0 = B->dout + qat;
    it->dq0 = B->dq + qat;
    it->lse0 = B->lse + lat;
    it->delta0 = B->delta + lat;
    it->k0 = B->k + kat;
    it->v0 = B->v + kat;
    it->dk0 = B->dk + kat;
    it->dv0 = B->dv + kat;
    it->flags = R->flags;
    return 1;
}

/* Moves an item's first query (shift_queries) or key (shift_keys) on by
 * d selected rows. */
static void shift_queries(cpu_bwd_item *it, int64_t d, size_t ss, size_t ls)
{
    it->q0 += (size_t)d * ss;
    it->do0 += (size_t)d * ss;
    it->dq0 += (size_t)d * ss;
    it->lse0 += (size_t)d * ls;
    it->delta0 += (size_t)d * ls;
    it->j_lo += d;
}

static void shift_keys(cpu_bwd_item *it, int64_t d, size_t ss)
{
    it->k0 += (size_t)d * ss;
    it->v0 += (size_t)d * ss;
    it->dk0 += (size_t)d * ss;
    it->dv0 += (size_t)d * ss;
    it->k_lo += d;
}

/* Narrows a run to its tile t of query rows (CPU_BWD_DQ) or key rows
 * (CPU_BWD_DKV); 0 when the run has no such tile. Under causal masking a
 * query tile sees no key after its last query, a key tile no query
 * before its first key. */
static int narrow_item(const bwd_run *R, int64_t t, cpu_bwd_item *it)
{
    const int64_t tq = R->kern->tq;
    const size_t ss = R->bj.sel_stride, ls = (size_t)R->bj.dilation;
    if (R->flags == CPU_BWD_DQ) {
        if (t * tq >= it->j_hi - it->j_lo)
            return 0;
        shift_queries(it, t * tq, ss, ls);
        if (it->j_hi > it->j_lo + tq)
            it->j_hi = it->j_lo + tq;
        if (R->job->causal && it->k_hi > it->j_hi)
            it->k_hi = it->j_hi;
    } else {
        if (t * tq >= it->k_hi - it->k_lo)
            return 0;
        shift_keys(it, t * tq, ss);
        if (it->k_hi > it->k_lo + tq)
            it->k_hi = it->k_lo + tq;
        if (R->job->causal && it->j_lo < it->k_lo)
            shift_queries(it, it->k_lo - it->j_lo, ss, ls);
    }
    return 1;
}

static void run_items(void *arg, int thread)
{
    bwd_run *R = arg;
    const long long items = (long long)(R->runs * R->tiles);
    for (;;) {
        const long long item = atomic_fetch_add_explicit(&R->next, 1, memory_order_relaxed);
        if (item >= items)
            break;
        cpu_bwd_item it;
        if (!run_item(R, item / R->tiles, &it))
            continue;
        if (R->tiles > 1 && !narrow_item(R, item % R->tiles, &it))
            continue;
        R->kern->run(&R->bj, &it, R->scratch[thread]);
    }
}

/* The (query, key) pairs run `run` scores: the work of one fused item. */
static double run_pairs(const bwd_run *R, int64_t run)
{
    cpu_bwd_item it;
    if (!run_item(R, run, &it))
        return 0.0;
    const int64_t nk = it.k_hi - it.k_lo;
    if (!R->job->causal)
        return (double)(it.j_hi - it.j_lo) * (double)nk;
    double pairs = 0.0; /* query j sees keys [k_lo, min(j + 1, k_hi)) */
    for (int64_t j = it.j_lo; j < it.j_hi; j++) {
        const int64_t n = j + 1 - it.k_lo;
        pairs += (double)(n < nk ? n : nk);
    }
    return pairs;
}

/* Whether a few runs are better done as fused whole-run items than split
 * into a key pass and a query pass. The split keeps every thread busy but
 * recomputes P and dP (7 tile products per pair, against 5 fused), so it
 * wins only where whole runs, handed out in order to the first free
 * thread, would leave threads idle for more than 2/7 of the time: one run
 * on two threads, say, but not four equal runs (the paper's top level
 * with H = 4). */
#define BWD_FUSED_PRODUCTS 5.0
#define BWD_SPLIT_PRODUCTS 7.0
static int few_runs_fused(const bwd_run *R, int threads)
{
    double busy[CPU_MAX_THREADS] = {0}, total = 0.0;
    for (int64_t run = 0; run < R->runs; run++) {
        const double w = run_pairs(R, run);
        int t0 = 0; /* the first thread free: the least busy */
        for (int t = 1; t < threads; t++)
            if (busy[t] < busy[t0])
                t0 = t;
        busy[t0] += w;
        total += w;
    }
    double span = 0.0;
    for (int t = 0; t < threads; t++)
        if (busy[t] > span)
            span = busy[t];
    return span * BWD_FUSED_PRODUCTS <= total / threads * BWD_SPLIT_PRODUCTS;
}

/* Runs one pass over every run (tiles = 1, flags both) or their tiles. */
static void run_pass(cpu_fast *f, bwd_run *R, int64_t tiles, int flags)
{
    R->tiles = tiles;
    R->flags = flags;
    atomic_store(&R->next, 0);
    cpu_pool_run(cpu_fast_pool(f), run_items, R);
}

int cpu_backward_fast(cpu_fast *f, const lnet_segment_job *job, const cpu_backward_buffers *buf)
{
    if (job->row_begin >= job->row_end)
        return LNET_PLUGIN_OK;
    const int64_t N = job->rows, H = job->heads, D = job->dim;
    const int64_t w = job->segment, r = job->dilation;
    const cpu_bwd_kernel *kern = bwd_kernel_for(cpu_fast_tile(f));

    const size_t floats = kern->scratch_floats(D);
    if (floats == 0)
        return cpu_fail(LNET_PLUGIN_ERR_NOMEM,
                        "cpu fast backward: head dim %lld needs more scratch than fits in memory",
                        (long long)D);
    bwd_run *R = calloc(1, sizeof *R);
    if (!R)
        return cpu_fail(LNET_PLUGIN_ERR_NOMEM, "cpu fast backward: out of memory");
    int st = cpu_fast_scratch(f, floats, &R->scratch);
    if (st) {
        free(R);
        return st;
    }
    R->kern = kern;
    R->job = job;
    R->buf = buf;
    cpu_job_window(job, &R->win);

    const int64_t r_eff = cpu_stride_dilation(job, &R->win);
    R->bj.dim = D;
    R->bj.sel_stride = (size_t)r_eff * (size_t)H * (size_t)D;
    R->bj.dilation = r_eff;
    R->bj.causal = job->causal;
    R->bj.scale = job->scale;
    R->bj.qscale = (float)((double)job->scale * LNET_LOG2E);

    R->s_first = job->row_begin / w;
    R->n_segs = (job->row_end - 1) / w - R->s_first + 1;
    R->runs = job->batch;
    const int64_t factors[2] = {R->n_segs, H};
    for (int i = 0; i < 2; i++) {
        if (R->runs > LLONG_MAX / 2 / factors[i]) {
            free(R);
            return cpu_fail(LNET_PLUGIN_ERR_INVALID,
                            "cpu fast backward: %lld x %lld x %lld runs overflow",
                            (long long)job->batch, (long long)factors[0], (long long)H);
        }
        R->runs *= factors[i];
    }

    const int threads = cpu_fast_threads(f);
    if (threads == 1 || R->runs >= 4 * (int64_t)threads || few_runs_fused(R, threads)) {
        run_pass(f, R, 1, CPU_BWD_DQ | CPU_BWD_DKV);
    } else {
        /* Few runs (so runs * tiles cannot overflow): split them into
         * tiles, keys then queries. A run has at most ceil(span / r)
         * selected rows, of them at most ceil(rows / r) in a window or
         * range of that many rows. */
        const int64_t span = w < N ? w : N;
        const int64_t range = job->row_end - job->row_begin;
        int64_t n_k = lnet_plugin_ceil_div(span, r), n_q = n_k;
        const int64_t k_win = lnet_plugin_ceil_div(R->win.kv_rows, r);
        const int64_t q_win = lnet_plugin_ceil_div(range, r);
        if (k_win < n_k)
            n_k = k_win;
        if (q_win < n_q)
            n_q = q_win;
        run_pass(f, R, lnet_plugin_ceil_div(n_k, kern->tq), CPU_BWD_DKV);
        run_pass(f, R, lnet_plugin_ceil_div(n_q, kern->tq), CPU_BWD_DQ);
    }
    free(R);
    return LNET_PLUGIN_OK;
}
