#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cpu_fast.c — the fast kernel's driver: the device's state (SIMD path,
 * thread pool, per-thread scratch), and one job cut into work items.
 *
 * A tile is up to tq selected query rows of one (batch, segment, head); a
 * work item is a run of up to PACK_CHUNK consecutive tiles of one (batch,
 * segment, head), which packs the segment's strided K/V rows once for all
 * of them (below). Unpacked, items are numbered so that consecutive ones
 * share a segment (its K and V stay in cache while the threads work through
 * it); packed, a segment's chunks are spread (run_items). Either way a
 * segment's tiles come largest first: under causal masking tile t sees
 * t + 1 key tiles, and taking the big ones first from an atomic counter
 * leaves only small items for the end of the job, where they even out the
 * threads. No item writes a row another item writes, so items need no
 * locks; the only shared state is the counter.
 *
 * Row windows (LNET_PLUGIN_CAP_WINDOWS) change only where the rows are and
 * which keys a segment has: segments, selection and causality use absolute
 * rows, the tile's pointers address the windowed buffers, and a tile scores
 * the segment's selected keys inside the K/V window only. */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_backend.h"
#include "cpu_fast.h"
#include "cpu_pool.h"
#include "cpu_simd.h"

#define LNET_LOG2E 1.442695040888963407359924681001892137

struct cpu_fast {
    const cpu_tile_kernel *kern;
    cpu_pool *pool;
    int threads;
    float **scratch;      /* one per thread */
    size_t scratch_floats; /* capacity of each */
};

/* ------------------------------------------------------------- set-up */

static int parse_threads(const char *text, const char *origin, int *threads)
{
    char *end;
    errno = 0;
    long n = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno || n < 1 || n > CPU_MAX_THREADS)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID,
                        "cpu: %s = '%.100s' is not a thread count (an integer 1..%d)", origin, text,
                        CPU_MAX_THREADS);
    *threads = (int)n;
    return LNET_PLUGIN_OK;
}

int cpu_fast_create(const char *simd, const char *threads, int default_threads, cpu_fast **out)
{
    *out = NULL;
    const char *simd_origin = "device option simd";
    if (!simd) {
        simd = getenv("LONGNET_CPU_SIMD");
        simd_origin = "LONGNET_CPU_SIMD";
    }
    const cpu_tile_kernel *kern;
    int st = cpu_simd_select(simd, simd_origin, &kern);
    if (st)
        return st;

    int n = 0;
    const char *threads_origin = "device option threads";
    if (!threads) {
        threads = getenv("LONGNET_CPU_THREADS");
        threads_origin = "LONGNET_CPU_THREADS";
        if (threads && !threads[0])
            threads = NULL; /* set but empty: as if unset */
    }
    if (threads) {
        st = parse_threads(threads, threads_origin, &n);
        if (st)
            return st;
    } else {
        n = default_threads < 1 ? 1 : default_threads > CPU_MAX_THREADS ? CPU_MAX_THREADS
                                                                        : default_threads;
    }

    cpu_fast *f = calloc(1, sizeof *f);
    float **scratch = calloc((size_t)n, sizeof *scratch);
    if (!f || !scratch) {
        free(f);
        free(scratch);
        return cpu_fail(LNET_PLUGIN_ERR_NOMEM, "cpu fast kernel: out of memory for %d threads", n);
    }
    f->kern = kern;
    f->threads = n;
    f->scratch = scratch;
    st = cpu_pool_create(n, &f->pool);
    if (st) {
        cpu_fast_free(f);
        return st;
    }
    *out = f;
    return LNET_PLUGIN_OK;
}

void cpu_fast_free(cpu_fast *f)
{
    if (!f)
        return;
    cpu_pool_free(f->pool);
    for (int t = 0; t < f->threads; t++)
        free(f->scratch[t]);
    free(f->scratch);
    free(f);
}

/* Grows every thread's scratch to `floats`; kept between jobs, so a run of
 * levels with one head dim allocates once. */
static int ensure_scratch(cpu_fast *f, size_t floats)
{
    if (floats <= f->scratch_floats)
        return LNET_PLUGIN_OK;
    for (int t = 0; t < f->threads; t++) {
        void *p = NULL;
        if (posix_memalign(&p, (size_t)f->kern->align, floats * sizeof(float)) != 0)
            return cpu_fail(LNET_PLUGIN_ERR_NOMEM,
                            "cpu fast kernel: out of memory allocating %zu bytes of scratch",
                            floats * sizeof(float));
        free(f->scratch[t]);
        f->scratch[t] = p;
    }
    f->scratch_floats = floats;
    return LNET_PLUGIN_OK;
}

const cpu_tile_kernel *cpu_fast_tile(const cpu_fast *f) { return f->kern; }
cpu_pool *cpu_fast_pool(const cpu_fast *f) { return f->pool; }
int cpu_fast_threads(const cpu_fast *f) { return f->threads; }

int cpu_fast_scratch(cpu_fast *f, size_t floats, float *const **scratch)
{
    int st = ensure_scratch(f, floats);
    *scratch = f->scratch;
    return st;
}

/* ------------------------------------------------------------- one job */

typedef struct fast_run {
    const cpu_fast *f;
    const lnet_segment_job *job;
    cpu_window win;
    cpu_tile_job tj;
    const float *q, *k, *v;
    float *out, *lse;
    int64_t s_first, n_segs; /* segments touching [row_begin, row_end) */
    int64_t tiles;           /* tiles a segment's part of the row range can touch */
    int64_t chunk;           /* tiles per work item */
    int64_t chunks;          /* work items per (batch, segment, head): ceil(tiles / chunk) */
    int64_t items;           /* batch * n_segs * heads * chunks */
    size_t pack_at;          /* where the packed K/V start in a thread's scratch, or 0: none */
    atomic_llong next;
} fast_run;

/* Packing: a work item is `chunk` tiles of one (batch, segment, head), and
 * where its selected K/V rows are apart (r·H·D floats: dilated levels,
 * several heads) the item first copies the rows its tiles see contiguous
 * into the thread's scratch, once, and its tiles read them from there. A
 * tile copies each key tile into its Kp/Vp again (cpu_tile_template.h),
 * but from contiguous rows that the hardware prefetchers stream, where
 * before every tile gathered them from rows 2 KiB apart (H = 8, D = 64) and
 * waited on L3 for a fifth of its time. At most PACK_MAX_ROWS rows are
 * packed (8 MiB at D = 64): longer segments (dense attention over a long
 * sequence) keep the direct reads. */
#define PACK_CHUNK 16
#define PACK_MAX_ROWS 16384

/* Fills tile t of item k; returns 0 when the item has nothing to write (a
 * short last segment, a head whose offset leaves fewer rows, the edges of
 * the row range, no key of the segment in the K/V window). Rows are
 * absolute (segments, selection, causality); only the addresses subtract
 * the windows' first rows. */
static int item_tile(const fast_run *R, int64_t seg_item, int64_t tile_index, cpu_tile *t)
{
    const lnet_segment_job *job = R->job;
    const cpu_window *win = &R->win;
    const int64_t N = job->rows, H = job->heads, D = job->dim;
    const int64_t w = job->segment, r = job->dilation;
    const int64_t tq = R->f->kern->tq;

    const int64_t h = seg_item % H;
    const int64_t bs = seg_item / H;
    const int64_t s = R->s_first + bs % R->n_segs;
    const int64_t b = bs / R->n_segs;

    const int64_t o = lnet_plugin_head_offset(job->offsets, h, H, r);
    const int64_t start = s * w;
    const int64_t end = (w > N - start) ? N : start + w;
    if (start + o >= end)
        return 0;
    const int64_t first = start + o;
    const int64_t n_sel = lnet_plugin_ceil_div(end - first, r);

    /* The selected keys held in the K/V window: [k_lo, k_hi). */
    const int64_t kb = win->kv_base, ke = win->kv_base + win->kv_rows;
    const int64_t k_lo = kb > first ? lnet_plugin_ceil_div(kb - first, r) : 0;
    int64_t k_hi = ke > first ? lnet_plugin_ceil_div(ke - first, r) : 0;
    if (k_hi > n_sel)
        k_hi = n_sel;
    if (k_lo >= k_hi)
        return 0; /* no key: every query of the segment is left untouched */

    /* Queries of this segment inside [row_begin, row_end); under causal
     * masking the ones before the first key see none and are left alone. */
    int64_t j_lo = job->row_begin > first ? lnet_plugin_ceil_div(job->row_begin - first, r) : 0;
    int64_t j_hi = job->row_end > first ? lnet_plugin_ceil_div(job->row_end - first, r) : 0;
    if (j_hi > n_sel)
        j_hi = n_sel;
    if (job->causal && j_lo < k_lo)
        j_lo = k_lo;
    if (j_lo >= j_hi)
        return 0;

    /* The item's tile, counted from the first one the range touches, the
     * largest first. */
    const int64_t tile = j_lo / tq + (R->tiles - 1 - tile_index);
    const int64_t jq0 = tile * tq;
    if (jq0 >= j_hi)
        return 0;
    const int64_t q_end = jq0 + tq < j_hi ? jq0 + tq : j_hi;
    const int64_t q_begin = jq0 > j_lo ? jq0 : j_lo;

    const int64_t qrow = first + q_begin * r; /* absolute; inside the query window */
    const size_t qat = cpu_bnh_index(b, qrow - win->q_base, h, win->q_rows, H, D);
    const size_t kat = cpu_bnh_index(b, first + k_lo * r - kb, h, win->kv_rows, H, D);
    t->q0 = R->q + qat;
    t->out0 = R->out + qat;
    t->lse0 = R->lse + ((size_t)b * (size_t)H + (size_t)h) * (size_t)win->q_rows +
              (size_t)(qrow - win->q_base);
    t->k0 = R->k + kat;
    t->v0 = R->v + kat;
    t->kv_stride = R->tj.sel_stride;
    t->k_lo = k_lo;
    t->k_hi = k_hi;
    t->jq0 = jq0;
    t->nq = q_end - jq0; /* later queries are not needed, even under causal */
    t->w0 = q_begin - jq0;
    t->w1 = q_end - jq0;
    return 1;
}

/* Copies the K and V rows [k_lo, k_end) of tile t's segment contiguous into
 * pack (K rows, then V rows) and points t at them. The rows are read in
 * order with a prefetch a few rows ahead, which their stride defeats in
 * the hardware. */
static void pack_keys(const fast_run *R, cpu_tile *t, int64_t k_end, float *pack)
{
    const int64_t D = R->tj.dim, n = k_end - t->k_lo;
    const size_t ss = R->tj.sel_stride;
    float *kp = pack, *vp = pack + (size_t)n * (size_t)D;
    for (int64_t j = 0; j < n; j++) {
        if (j + 8 < n) {
            __builtin_prefetch(t->k0 + (size_t)(j + 8) * ss, 0, 0);
            __builtin_prefetch(t->v0 + (size_t)(j + 8) * ss, 0, 0);
        }
        memcpy(kp + (size_t)j * (size_t)D, t->k0 + (size_t)j * ss, (size_t)D * sizeof(float));
        memcpy(vp + (size_t)j * (size_t)D, t->v0 + (size_t)j * ss, (size_t)D * sizeof(float));
    }
    t->k0 = kp;
    t->v0 = vp;
    t->kv_stride = (size_t)D;
}

/* Asks for the Q and out rows of tile t (a tile runs next) to be brought
 * into L2 while this one is computed: they are sel_stride floats apart,
 * and the Q transpose that starts a tile and the fold that ends it waited
 * on them (perf: 4 % of the tile at H = 8). */
static void prefetch_rows(const fast_run *R, const cpu_tile *t)
{
    const int64_t D = R->tj.dim;
    const size_t ss = R->tj.sel_stride;
    for (int64_t i = 0; i < t->w1 - t->w0; i++)
        for (int64_t d = 0; d < D; d += 16) {
            __builtin_prefetch(t->q0 + (size_t)i * ss + (size_t)d, 0, 2);
            __builtin_prefetch(t->out0 + (size_t)i * ss + (size_t)d, 1, 2);
        }
}

static void run_items(void *arg, int thread)
{
    fast_run *R = arg;
    float *scratch = R->f->scratch[thread];
    for (;;) {
        const long long item = atomic_fetch_add_explicit(&R->next, 1, memory_order_relaxed);
        if (item >= R->items)
            break;
        /* Packed items go chunk-major: every (batch, segment, head)'s
         * first chunk, then every second one, ...: under causal masking
         * the first chunks hold the largest tiles, so the job ends on the
         * smallest items and the threads finish together (each item packs
         * its own K/V, so neighbours need not share a segment). Single
         * tiles stay segment-major: those read K/V in place, and the
         * threads share them in cache. */
        const int64_t groups = R->items / R->chunks;
        const int64_t group = R->pack_at ? item % groups : item / R->chunks;
        const int64_t first = (R->pack_at ? item / groups : item % R->chunks) * R->chunk;
        const int64_t last = first + R->chunk < R->tiles ? first + R->chunk : R->tiles;
        /* The packed rows: those of the item's largest tile, its first
         * valid one (tiles come largest first), which every later tile of
         * the item sees a prefix of. */
        const float *pk = NULL, *pv = NULL;
        cpu_tile next;
        int have_next = 0;
        for (int64_t i = first; i < last; i++) {
            cpu_tile t;
            if (have_next)
                t = next;
            else if (!item_tile(R, group, i, &t))
                continue;
            have_next = i + 1 < last && item_tile(R, group, i + 1, &next);
            if (have_next)
                prefetch_rows(R, &next);
            if (R->pack_at && !pk) {
                const int64_t k_end = R->tj.causal && t.jq0 + t.nq < t.k_hi ? t.jq0 + t.nq
                                                                            : t.k_hi;
                pack_keys(R, &t, k_end, scratch + R->pack_at);
                pk = t.k0;
                pv = t.v0;
            } else if (pk) {
                t.k0 = pk;
                t.v0 = pv;
                t.kv_stride = (size_t)R->tj.dim;
            }
            R->f->kern->run(&R->tj, &t, scratch);
        }
    }
}

int cpu_fast_segment(cpu_fast *f, const lnet_segment_job *job, const float *q,
                     const float *k, const float *v, float *out, float *lse)
{
    if (job->row_begin >= job->row_end)
        return LNET_PLUGIN_OK; /* an empty row range selects nothing */

    const int64_t N = job->rows, H = job->heads, D = job->dim;
    const int64_t w = job->segment, r = job->dilation;

    const size_t floats = f->kern->scratch_floats(D);
    if (floats == 0)
        return cpu_fail(LNET_PLUGIN_ERR_NOMEM,
                        "cpu fast kernel: head dim %lld needs more scratch than fits in memory",
                        (long long)D);

    fast_run *R = calloc(1, sizeof *R);
    if (!R)
        return cpu_fail(LNET_PLUGIN_ERR_NOMEM, "cpu fast kernel: out of memory");
    R->f = f;
    R->job = job;
    R->q = q;
    R->k = k;
    R->v = v;
    R->out = out;
    R->lse = lse;
    cpu_job_window(job, &R->win);

    const int64_t r_eff = cpu_stride_dilation(job, &R->win);
    R->tj.dim = D;
    R->tj.sel_stride = (size_t)r_eff * (size_t)H * (size_t)D;
    R->tj.dilation = r_eff;
    R->tj.causal = job->causal;
    R->tj.init = job->init;
    R->tj.qscale = (float)((double)job->scale * LNET_LOG2E);
    R->tj.scale = job->scale;

    R->s_first = job->row_begin / w;
    R->n_segs = (job->row_end - 1) / w - R->s_first + 1;
    /* A segment has at most span rows, so ceil(span / r) selected ones; of
     * them, those in the row range (at most ceil(range / r), a range
     * shorter than the segment) touch at most one tile more than they fill.
     * A small range (the scheduler's chunks and windows) of a long segment
     * thus costs items for its own tiles only. */
    const int64_t span = w < N ? w : N;
    const int64_t range = job->row_end - job->row_begin;
    R->tiles = lnet_plugin_ceil_div(lnet_plugin_ceil_div(span, r), f->kern->tq);
    const int64_t range_tiles = lnet_plugin_ceil_div(lnet_plugin_ceil_div(range < span ? range : span, r), f->kern->tq) + 1;
    if (range_tiles < R->tiles)
        R->tiles = range_tiles;
    /* items = B * segments * H * tiles: each factor is at most a count of
     * rows of the tensor, but the product is checked anyway. */
    int64_t items = job->batch;
    const int64_t factors[3] = {R->n_segs, H, R->tiles};
    for (int i = 0; i < 3; i++) {
        if (factors[i] > 0 && items > LLONG_MAX / factors[i]) {
            free(R);
            return cpu_fail(LNET_PLUGIN_ERR_INVALID,
                            "cpu fast kernel: %lld x %lld x %lld x %lld work items overflow",
                            (long long)job->batch, (long long)factors[0], (long long)factors[1],
                            (long long)factors[2]);
        }
        items *= factors[i];
    }
    /* Packing (above) where the rows are apart and a segment's selected
     * keys fit; the packed rows start 64-byte aligned after the tile's
     * scratch. */
    const int64_t seg_keys = lnet_plugin_ceil_div(span, r);
    const size_t tile_floats = (floats + 15) / 16 * 16;
    size_t total = floats;
    R->chunk = 1;
    if (R->tj.sel_stride != (size_t)D && seg_keys <= PACK_MAX_ROWS && R->tiles > 1 &&
        tile_floats <= SIZE_MAX - 2 * (size_t)PACK_MAX_ROWS * (size_t)D) {
        R->chunk = R->tiles < PACK_CHUNK ? R->tiles : PACK_CHUNK;
        R->pack_at = tile_floats;
        total = tile_floats + 2 * (size_t)seg_keys * (size_t)D;
    }
    R->chunks = lnet_plugin_ceil_div(R->tiles, R->chunk);
    int st = ensure_scratch(f, total);
    if (st) {
        free(R);
        return st;
    }
    R->items = items / R->tiles * R->chunks;
    atomic_init(&R->next, 0);

    cpu_pool_run(f->pool, run_items, R);
    free(R);
    return LNET_PLUGIN_OK;
}
