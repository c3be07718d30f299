/* sched_run.c — running a plan: one host thread per device, each with its
 * chunk of rows on its device; gathered segments compacted on the host; a
 * failed device's chunk re-planned onto the others (DESIGN §2). */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "scheduler.h"

typedef struct host_tensors {
    const float *q, *k, *v;
    float *out, *lse; /* lse: [B, H, N], always present */
} host_tensors;

typedef struct worker_run {
    lnet_context *ctx;
    const lnet_plan *plan;
    int index;
    const char *kernel;
    const host_tensors *t;
    lnet_status status;
    char error[1024];
} worker_run;

/* A buffer on a device: the host memory itself where possible. */
typedef struct dbuf {
    void *buf;
    int wrapped;
    size_t bytes;
} dbuf;

static void dbuf_free(lnet_device *dev, dbuf *b)
{
    if (b->buf)
        dev->plugin->buffer_free(dev->handle, b->buf);
    memset(b, 0, sizeof *b);
}

static lnet_status dbuf_alloc(lnet_device *dev, size_t bytes, dbuf *b)
{
    int rc = dev->plugin->buffer_alloc(dev->handle, bytes, &b->buf);
    if (rc) {
        b->buf = NULL;
        return lnet_device_fail(dev, rc, "buffer_alloc");
    }
    b->bytes = bytes;
    b->wrapped = 0;
    return LNET_OK;
}

static lnet_status dbuf_wrap_or_alloc(lnet_device *dev, void *host, size_t bytes, dbuf *b)
{
    if (host && dev->plugin->buffer_wrap_host &&
        dev->plugin->buffer_wrap_host(dev->handle, host, bytes, &b->buf) == 0) {
        b->bytes = bytes;
        b->wrapped = 1;
        return LNET_OK;
    }
    return dbuf_alloc(dev, bytes, b);
}

static lnet_status dbuf_write(lnet_device *dev, dbuf *b, size_t off, const void *src, size_t n)
{
    if (b->wrapped)
        return LNET_OK; /* the device works on the host memory itself */
    int rc = dev->plugin->buffer_write(dev->handle, b->buf, off, src, n);
    return rc ? lnet_device_fail(dev, rc, "buffer_write") : LNET_OK;
}

static lnet_status dbuf_read(lnet_device *dev, dbuf *b, size_t off, void *dst, size_t n)
{
    if (b->wrapped)
        return LNET_OK;
    int rc = dev->plugin->buffer_read(dev->handle, b->buf, off, dst, n);
    return rc ? lnet_device_fail(dev, rc, "buffer_read") : LNET_OK;
}

/* Rows [r0, r1) of a [B, N, H, D] host tensor as a [B, r1-r0, H, D] device
 * buffer: one write per batch (contiguous rows). Wrapped when the rows are
 * contiguous in host memory (B = 1, or every row). */
static lnet_status put_rows(lnet_device *dev, const lnet_graph *g, const float *host, int64_t r0,
                            int64_t r1, dbuf *b, int upload)
{
    const size_t row = (size_t)g->heads * (size_t)g->dim;
    const size_t n = (size_t)(r1 - r0) * row;
    const size_t bytes = (size_t)g->batch * n * sizeof(float);
    const int contiguous = g->batch == 1 || (r0 == 0 && r1 == g->rows);
    lnet_status st = contiguous ? dbuf_wrap_or_alloc(dev, (void *)(host + (size_t)r0 * row), bytes, b)
                                : dbuf_alloc(dev, bytes, b);
    for (int64_t bi = 0; !st && upload && bi < g->batch; bi++)
        st = dbuf_write(dev, b, (size_t)bi * n * sizeof(float),
                        host + ((size_t)bi * (size_t)g->rows + (size_t)r0) * row, n * sizeof(float));
    return st;
}

static lnet_status get_rows(lnet_device *dev, const lnet_graph *g, float *host, int64_t r0,
                            int64_t r1, dbuf *b)
{
    const size_t row = (size_t)g->heads * (size_t)g->dim;
    const size_t n = (size_t)(r1 - r0) * row;
    lnet_status st = LNET_OK;
    for (int64_t bi = 0; !st && bi < g->batch; bi++)
        st = dbuf_read(dev, b, (size_t)bi * n * sizeof(float),
                       host + ((size_t)bi * (size_t)g->rows + (size_t)r0) * row, n * sizeof(float));
    return st;
}

/* The [B, H, r1-r0] slice of a [B, H, N] log-sum-exp. */
static lnet_status put_lse(lnet_device *dev, const lnet_graph *g, float *host, int64_t r0,
                           int64_t r1, dbuf *b, int upload)
{
    const size_t n = (size_t)(r1 - r0);
    const size_t bytes = (size_t)g->batch * (size_t)g->heads * n * sizeof(float);
    const int contiguous = (g->batch * g->heads == 1) || (r0 == 0 && r1 == g->rows);
    lnet_status st = contiguous ? dbuf_wrap_or_alloc(dev, host + r0, bytes, b) : dbuf_alloc(dev, bytes, b);
    for (int64_t bh = 0; !st && upload && bh < g->batch * g->heads; bh++)
        st = dbuf_write(dev, b, (size_t)bh * n * sizeof(float),
                        host + (size_t)bh * (size_t)g->rows + (size_t)r0, n * sizeof(float));
    return st;
}

static lnet_status get_lse(lnet_device *dev, const lnet_graph *g, float *host, int64_t r0,
                           int64_t r1, dbuf *b)
{
    const size_t n = (size_t)(r1 - r0);
    lnet_status st = LNET_OK;
    for (int64_t bh = 0; !st && bh < g->batch * g->heads; bh++)
        st = dbuf_read(dev, b, (size_t)bh * n * sizeof(float),
                       host + (size_t)bh * (size_t)g->rows + (size_t)r0, n * sizeof(float));
    return st;
}

static lnet_status run_job(lnet_device *dev, const lnet_segment_job *job, const lnet_graph_node *n)
{
    int rc = dev->plugin->run_segment(dev->handle, job);
    if (!rc)
        return LNET_OK;
    char what[96];
    snprintf(what, sizeof what, "level %d (segment %lld, dilation %lld)", n->level,
             (long long)n->segment, (long long)n->dilation);
    return lnet_device_fail(dev, rc, what);
}

void lnet_job_base(lnet_segment_job *j, const lnet_graph *g, const lnet_graph_node *n,
                   const char *kernel)
{
    memset(j, 0, sizeof *j);
    j->size = sizeof *j;
    j->batch = g->batch;
    j->rows = g->rows;
    j->heads = g->heads;
    j->dim = g->dim;
    j->segment = n->segment;
    j->dilation = n->dilation;
    j->offsets = g->offsets;
    j->causal = g->causal;
    j->scale = g->scale;
    j->kernel = kernel;
    j->dtype = (int)g->dtype; /* lnet_dtype and LNET_PLUGIN_DTYPE_* are the same numbers */
}

/* Folds a branch (o_i, lse_i) into a row of the running (O, LSE) on the
 * host, by the softmax denominators (DESIGN §1, eq. 10). */
static void fold_row(float *o, float *l, const float *oi, float li, int64_t D)
{
    if (li == -INFINITY)
        return; /* the branch selected no key for this row */
    const lnet_plugin_fold f = lnet_plugin_lse_fold(*l, li);
    for (int64_t d = 0; d < D; d++)
        o[d] = (float)lnet_plugin_fold_value(&f, o[d], oi[d]);
    *l = (float)f.lse;
}

/* A gathered segment: per head, its selected rows compacted into a dense
 * [B, M, 1, D] problem (LongNet's sparse K/V exchange: only 1/r of the
 * rows), run on the device with dilation 1, folded into the host output. */
static lnet_status run_gather(lnet_device *dev, const lnet_plan *p, const lnet_worker *w,
                              const lnet_step *s, const char *kernel, const host_tensors *t)
{
    const lnet_graph *g = p->g;
    const lnet_graph_node *n = &g->nodes[s->node];
    const int64_t B = g->batch, H = g->heads, D = g->dim, r = n->dilation;
    const int64_t start = s->segment_index * n->segment;
    const int64_t end = n->segment > g->rows - start ? g->rows : start + n->segment;
    lnet_status st = LNET_OK;
    float *host = NULL;
    dbuf bq = {0}, bk = {0}, bv = {0}, bo = {0}, bl = {0};

    for (int64_t h = 0; h < H && !st; h++) {
        const int64_t first = start + lnet_plugin_head_offset(g->offsets, h, H, r);
        if (first >= end)
            continue;
        const int64_t m = lnet_plugin_ceil_div(end - first, r);
        const int64_t jq_lo = w->begin > first ? lnet_plugin_ceil_div(w->begin - first, r) : 0;
        int64_t jq_hi = w->end > first ? lnet_plugin_ceil_div(w->end - first, r) : 0;
        if (jq_hi > m)
            jq_hi = m;
        if (jq_lo >= jq_hi)
            continue;
        const int64_t M = g->causal ? jq_hi : m;
        const size_t rows = (size_t)B * (size_t)M;
        const size_t vec = rows * (size_t)D;
        free(host);
        host = malloc((4 * vec + rows) * sizeof(float));
        if (!host) {
            st = lnet_fail(LNET_ERR_NOMEM, "out of memory gathering %lld rows", (long long)M);
            break;
        }
        float *q = host, *k = q + vec, *v = k + vec, *o = v + vec, *l = o + vec;
        for (int64_t b = 0; b < B; b++) {
            for (int64_t j = 0; j < M; j++) {
                const size_t src = (((size_t)b * (size_t)g->rows + (size_t)(first + j * r)) * (size_t)H +
                                    (size_t)h) * (size_t)D;
                const size_t dst = ((size_t)b * (size_t)M + (size_t)j) * (size_t)D;
                memcpy(q + dst, t->q + src, (size_t)D * sizeof(float));
                memcpy(k + dst, t->k + src, (size_t)D * sizeof(float));
                memcpy(v + dst, t->v + src, (size_t)D * sizeof(float));
            }
        }
        dbuf_free(dev, &bq);
        dbuf_free(dev, &bk);
        dbuf_free(dev, &bv);
        dbuf_free(dev, &bo);
        dbuf_free(dev, &bl);
        const size_t vbytes = vec * sizeof(float), lbytes = rows * sizeof(float);
        if ((st = dbuf_wrap_or_alloc(dev, q, vbytes, &bq)) || (st = dbuf_write(dev, &bq, 0, q, vbytes)) ||
            (st = dbuf_wrap_or_alloc(dev, k, vbytes, &bk)) || (st = dbuf_write(dev, &bk, 0, k, vbytes)) ||
            (st = dbuf_wrap_or_alloc(dev, v, vbytes, &bv)) || (st = dbuf_write(dev, &bv, 0, v, vbytes)) ||
            (st = dbuf_wrap_or_alloc(dev, o, vbytes, &bo)) || (st = dbuf_wrap_or_alloc(dev, l, lbytes, &bl)))
            break;
        lnet_segment_job j;
        lnet_job_base(&j, g, n, kernel);
        j.rows = M;
        j.heads = 1;
        j.segment = M;
        j.dilation = 1;
        j.offsets = LNET_OFFSETS_INTERLEAVED;
        j.row_begin = jq_lo;
        j.row_end = jq_hi;
        j.init = 1; /* dilation 1, no window: every query sees its own row */
        j.q = bq.buf;
        j.k = bk.buf;
        j.v = bv.buf;
        j.out = bo.buf;
        j.lse = bl.buf;
        if ((st = run_job(dev, &j, n)))
            break;
        int rc = dev->plugin->synchronize(dev->handle);
        if (rc) {
            st = lnet_device_fail(dev, rc, "synchronize");
            break;
        }
        if ((st = dbuf_read(dev, &bo, 0, o, vbytes)) || (st = dbuf_read(dev, &bl, 0, l, lbytes)))
            break;
        for (int64_t b = 0; b < B; b++) {
            for (int64_t jq = jq_lo; jq < jq_hi; jq++) {
                const int64_t row = first + jq * r;
                float *orow = t->out + (((size_t)b * (size_t)g->rows + (size_t)row) * (size_t)H +
                                        (size_t)h) * (size_t)D;
                float *lrow = t->lse + ((size_t)b * (size_t)H + (size_t)h) * (size_t)g->rows + (size_t)row;
                fold_row(orow, lrow, o + ((size_t)b * (size_t)M + (size_t)jq) * (size_t)D,
                         l[(size_t)b * (size_t)M + (size_t)jq], D);
            }
        }
    }
    dbuf_free(dev, &bq);
    dbuf_free(dev, &bk);
    dbuf_free(dev, &bv);
    dbuf_free(dev, &bo);
    dbuf_free(dev, &bl);
    free(host);
    return st;
}

/* The K/V blocks of a worker's ring steps (peers only), in step order,
 * staged through two pairs of device buffers. n = 0: none, or the device
 * takes the host memory in place (nothing to move). */
typedef struct ring_blocks {
    int n;
    int64_t *begin, *end; /* rows of each block */
    dbuf k[2], v[2];
} ring_blocks;

/* Writes block r into pair r % 2: one write per batch of the block's rows.
 * Asynchronous where the backend can: it then waits on the device for the
 * jobs already queued (block r - 2's job read this pair), not for the one
 * about to be queued. */
static lnet_status ring_upload(lnet_device *dev, const lnet_graph *g, const host_tensors *t,
                               ring_blocks *rb, int r)
{
    const lnet_plugin *pl = dev->plugin;
    const size_t row = (size_t)g->heads * (size_t)g->dim;
    const size_t n = (size_t)(rb->end[r] - rb->begin[r]) * row;
    if (!pl->buffer_write_async) {
        /* Blocking writes: the pair must be free of queued jobs first. */
        int rc = pl->synchronize(dev->handle);
        if (rc)
            return lnet_device_fail(dev, rc, "synchronize");
    }
    const float *src[2] = {t->k, t->v};
    dbuf *dst[2] = {&rb->k[r % 2], &rb->v[r % 2]};
    for (int x = 0; x < 2; x++) {
        for (int64_t bi = 0; bi < g->batch; bi++) {
            const float *from = src[x] + ((size_t)bi * (size_t)g->rows + (size_t)rb->begin[r]) * row;
            size_t off = (size_t)bi * n * sizeof(float);
            int rc = pl->buffer_write_async
                         ? pl->buffer_write_async(dev->handle, dst[x]->buf, off, from, n * sizeof(float))
                         : pl->buffer_write(dev->handle, dst[x]->buf, off, from, n * sizeof(float));
            if (rc)
                return lnet_device_fail(dev, rc, pl->buffer_write_async ? "buffer_write_async"
                                                                       : "buffer_write");
        }
    }
    return LNET_OK;
}

static lnet_status ring_begin(lnet_device *dev, const lnet_graph *g, const host_tensors *t,
                              const lnet_worker *w, ring_blocks *rb)
{
    memset(rb, 0, sizeof *rb);
    if (dev->plugin->buffer_wrap_host)
        return LNET_OK; /* the blocks are wrapped host memory: nothing moves */
    int64_t most = 0;
    int blocks = 0;
    for (int i = 0; i < w->n_steps; i++)
        blocks += w->steps[i].kind == LNET_STEP_RING && w->steps[i].peer != -1;
    if (blocks == 0)
        return LNET_OK;
    rb->begin = malloc(2 * (size_t)blocks * sizeof *rb->begin);
    if (!rb->begin)
        return lnet_fail(LNET_ERR_NOMEM, "out of memory listing %d ring blocks", blocks);
    rb->end = rb->begin + blocks;
    for (int i = 0; i < w->n_steps; i++) {
        const lnet_step *s = &w->steps[i];
        if (s->kind != LNET_STEP_RING || s->peer == -1)
            continue;
        rb->begin[rb->n] = s->kv_begin;
        rb->end[rb->n] = s->kv_end;
        if (s->kv_end - s->kv_begin > most)
            most = s->kv_end - s->kv_begin;
        rb->n++;
    }
    size_t bytes = (size_t)g->batch * (size_t)most * (size_t)g->heads * (size_t)g->dim * sizeof(float);
    lnet_status st = LNET_OK;
    for (int x = 0; x < 2 && !st; x++) {
        if (!(st = dbuf_alloc(dev, bytes, &rb->k[x])))
            st = dbuf_alloc(dev, bytes, &rb->v[x]);
    }
    if (!st)
        st = ring_upload(dev, g, t, rb, 0);
    return st;
}

static void ring_end(lnet_device *dev, ring_blocks *rb)
{
    free(rb->begin);
    rb->begin = rb->end = NULL;
    for (int x = 0; x < 2; x++) {
        dbuf_free(dev, &rb->k[x]);
        dbuf_free(dev, &rb->v[x]);
    }
}

/* One worker: its chunk's local and ring steps on the device, the chunk
 * brought back, then its gathered segments. */
static lnet_status run_worker(lnet_context *ctx, const lnet_plan *p, const lnet_worker *w,
                              const char *kernel, const host_tensors *t)
{
    const lnet_graph *g = p->g;
    const int64_t a = w->begin, b = w->end;
    const int whole = a == 0 && b == g->rows;
    lnet_device *dev;
    lnet_status st = lnet_device_acquire(ctx, w->device, w->options, &dev);
    if (st)
        return st;
    dbuf bq = {0}, bk = {0}, bv = {0}, bo = {0}, bl = {0}, rk = {0}, rv = {0};
    ring_blocks rb = {0};

    if (w->core_init) {
        /* No step initialises the chunk: start from O = 0, LSE = -inf. */
        const size_t row = (size_t)g->heads * (size_t)g->dim;
        for (int64_t bi = 0; bi < g->batch; bi++) {
            memset(t->out + ((size_t)bi * (size_t)g->rows + (size_t)a) * row, 0,
                   (size_t)(b - a) * row * sizeof(float));
            for (int64_t h = 0; h < g->heads; h++) {
                float *l = t->lse + ((size_t)bi * (size_t)g->heads + (size_t)h) * (size_t)g->rows;
                for (int64_t i = a; i < b; i++)
                    l[i] = -INFINITY;
            }
        }
    }
    int device_steps = 0;
    for (int i = 0; i < w->n_steps; i++)
        device_steps += w->steps[i].kind != LNET_STEP_GATHER;
    if (device_steps || w->core_init) {
        if ((st = put_rows(dev, g, t->q, a, b, &bq, 1)) || (st = put_rows(dev, g, t->k, a, b, &bk, 1)) ||
            (st = put_rows(dev, g, t->v, a, b, &bv, 1)) ||
            (st = put_rows(dev, g, t->out, a, b, &bo, w->core_init)) ||
            (st = put_lse(dev, g, t->lse, a, b, &bl, w->core_init)))
            goto done;
    }
    /* Ring blocks on a device that cannot use the host memory in place go
     * through two pairs of block buffers: block r+1 is written (with
     * buffer_write_async where the backend has it) while block r computes. */
    if (!st)
        st = ring_begin(dev, g, t, w, &rb);
    for (int i = 0, r = 0; i < w->n_steps && !st; i++) {
        const lnet_step *s = &w->steps[i];
        const lnet_graph_node *n = &g->nodes[s->node];
        if (s->kind == LNET_STEP_GATHER)
            continue;
        lnet_segment_job j;
        lnet_job_base(&j, g, n, kernel);
        j.row_begin = s->row_begin;
        j.row_end = s->row_end;
        j.init = s->init;
        j.q = bq.buf;
        j.k = bk.buf;
        j.v = bv.buf;
        j.out = bo.buf;
        j.lse = bl.buf;
        if (!whole) {
            j.q_base = a;
            j.q_rows = b - a;
            j.kv_base = a;
            j.kv_rows = b - a;
        }
        int zero_copy_block = 0;
        if (s->kind == LNET_STEP_RING && s->peer != -1) {
            /* A block of another chunk's K/V rows, passed to this device. */
            j.q_base = a;
            j.q_rows = b - a;
            j.kv_base = s->kv_begin;
            j.kv_rows = s->kv_end - s->kv_begin;
            if (rb.n == 0) {
                dbuf_free(dev, &rk);
                dbuf_free(dev, &rv);
                if ((st = put_rows(dev, g, t->k, s->kv_begin, s->kv_end, &rk, 1)) ||
                    (st = put_rows(dev, g, t->v, s->kv_begin, s->kv_end, &rv, 1)))
                    break;
                j.k = rk.buf;
                j.v = rv.buf;
                zero_copy_block = 1;
            } else {
                if (r + 1 < rb.n && (st = ring_upload(dev, g, t, &rb, r + 1)))
                    break;
                j.k = rb.k[r % 2].buf;
                j.v = rb.v[r % 2].buf;
                r++;
            }
        }
        st = run_job(dev, &j, n);
        if (!st && zero_copy_block) {
            /* The block buffers are freed or rewritten by the next step. */
            int rc = dev->plugin->synchronize(dev->handle);
            if (rc)
                st = lnet_device_fail(dev, rc, "synchronize");
        }
    }
    if (!st && (device_steps || w->core_init)) {
        int rc = dev->plugin->synchronize(dev->handle);
        if (rc)
            st = lnet_device_fail(dev, rc, "synchronize");
        if (!st && !bo.wrapped)
            st = get_rows(dev, g, t->out, a, b, &bo);
        if (!st && !bl.wrapped)
            st = get_lse(dev, g, t->lse, a, b, &bl);
    }
    for (int i = 0; i < w->n_steps && !st; i++)
        if (w->steps[i].kind == LNET_STEP_GATHER)
            st = run_gather(dev, p, w, &w->steps[i], kernel, t);
done:
    ring_end(dev, &rb);
    dbuf_free(dev, &bq);
    dbuf_free(dev, &bk);
    dbuf_free(dev, &bv);
    dbuf_free(dev, &bo);
    dbuf_free(dev, &bl);
    dbuf_free(dev, &rk);
    dbuf_free(dev, &rv);
    lnet_device_release(dev);
    return st;
}

static void *worker_main(void *arg)
{
    worker_run *r = arg;
    const lnet_worker *w = &r->plan->w[r->index];
    r->status = run_worker(r->ctx, r->plan, w, r->kernel, r->t);
    if (r->status)
        snprintf(r->error, sizeof r->error, "%s", lnet_last_error());
    return NULL;
}

static void log_warning(lnet_context *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_warning(lnet_context *ctx, const char *fmt, ...)
{
    if (!ctx->log)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctx->log(LNET_LOG_WARNING, msg, ctx->log_user);
}

/* Runs a plan: one thread per worker with rows (the calling thread takes
 * the first). Marks failed workers in `failed`; returns the number. */
static lnet_status run_plan(lnet_context *ctx, const lnet_plan *p, const char *kernel,
                            const host_tensors *t, worker_run *runs, int *n_failed)
{
    pthread_t threads[LNET_MAX_WORKERS];
    int started[LNET_MAX_WORKERS] = {0};
    int first = -1;
    *n_failed = 0;
    for (int i = 0; i < p->n; i++) {
        runs[i] = (worker_run){ctx, p, i, kernel, t, LNET_OK, ""};
        if (p->w[i].begin == p->w[i].end)
            continue;
        if (first < 0) {
            first = i;
            continue;
        }
        if (pthread_create(&threads[i], NULL, worker_main, &runs[i]) == 0)
            started[i] = 1;
        else
            worker_main(&runs[i]); /* no thread to be had: run it here */
    }
    if (first >= 0)
        worker_main(&runs[first]);
    for (int i = 0; i < p->n; i++)
        if (started[i])
            pthread_join(threads[i], NULL);
    for (int i = 0; i < p->n; i++)
        *n_failed += runs[i].status != LNET_OK;
    return LNET_OK;
}

static const char *device_name(const lnet_context *ctx, int device, char *buf, size_t len)
{
    const lnet_device *d = lnet_context_dev(ctx, device);
    snprintf(buf, len, "%s:%d", d->plugin->name, d->backend_index);
    return buf;
}

/* Runs rows [lo, hi) on the workers of `specs`; a failed worker's chunk is
 * re-planned onto the survivors (recursively, while any survive). */
static lnet_status run_rows(lnet_context *ctx, const lnet_graph *g, const lnet_worker_spec *specs,
                            int n, lnet_algorithm algorithm, const char *kernel,
                            const host_tensors *t, int64_t lo, int64_t hi)
{
    lnet_plan p;
    lnet_status st = lnet_plan_build(&p, ctx, g, algorithm, specs, n, lo, hi);
    if (st)
        return st;
    worker_run *runs = calloc((size_t)n, sizeof *runs);
    if (!runs) {
        lnet_plan_free(&p);
        return lnet_fail(LNET_ERR_NOMEM, "out of memory starting %d devices", n);
    }
    /* Every listed device gets rows, or the caller hears why not. */
    for (int i = 0; i < n && n > 1; i++) {
        if (p.w[i].begin != p.w[i].end)
            continue;
        char name[64];
        log_warning(ctx, "device %s gets no rows: rows [%lld, %lld) make only %lld block(s) of %lld "
                    "(the smallest segment length), too few for its weight %.3g",
                    device_name(ctx, p.w[i].device, name, sizeof name), (long long)lo,
                    (long long)hi, (long long)lnet_plugin_ceil_div(hi - lo, p.align), (long long)p.align,
                    p.w[i].weight);
    }
    int failed = 0;
    run_plan(ctx, &p, kernel, t, runs, &failed);
    if (failed == 0 || n == 1) {
        st = failed ? lnet_fail(runs[0].status, "%s", runs[0].error) : LNET_OK;
        goto out;
    }
    /* Failover: the survivors take over each failed chunk. */
    lnet_worker_spec alive[LNET_MAX_WORKERS];
    int n_alive = 0;
    for (int i = 0; i < n; i++) {
        int bad = 0;
        for (int j = 0; j < n; j++)
            bad |= runs[j].status != LNET_OK && p.w[j].device == specs[i].device;
        if (!bad)
            alive[n_alive++] = specs[i];
    }
    for (int i = 0; i < n && !st; i++) {
        if (runs[i].status == LNET_OK)
            continue;
        char name[64];
        device_name(ctx, p.w[i].device, name, sizeof name);
        if (n_alive == 0) {
            st = lnet_fail(runs[i].status, "%s failed and no device is left to take its rows: %s",
                           name, runs[i].error);
            break;
        }
        log_warning(ctx, "device %s failed (%s); its rows [%lld, %lld) are re-planned onto the %d other device(s)",
                    name, runs[i].error, (long long)p.w[i].begin, (long long)p.w[i].end, n_alive);
        st = run_rows(ctx, g, alive, n_alive, algorithm, kernel, t, p.w[i].begin, p.w[i].end);
    }
out:
    free(runs);
    lnet_plan_free(&p);
    return st;
}

lnet_status lnet_sched_forward(lnet_context *ctx, const lnet_graph *g, const lnet_devlist *list,
                               lnet_algorithm algorithm, const char *kernel, const float *q,
                               const float *k, const float *v, float *out, float *lse)
{
    host_tensors t = {q, k, v, out, lse};
    return run_rows(ctx, g, list->items, list->n, algorithm, kernel, &t, 0, g->rows);
}
