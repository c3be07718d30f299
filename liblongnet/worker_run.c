/* worker_run.c — one worker: its chunk's local and ring steps on its
 * device, the chunk's (O, LSE) brought back, then its gathered segments,
 * each folded on the host. Everything it reads is its own chunk or what
 * the transport delivered (executor.h's rule). */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor.h"
#include "internal.h"

void lnet_dbuf_free(lnet_device *dev, dbuf *b)
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

static lnet_status dbuf_write(lnet_device *dev, dbuf *b, size_t off, const void *src, size_t n)
{
    if (b->wrapped)
        return LNET_OK; /* the device works on the host memory itself */
    int rc = dev->plugin->buffer_write(dev->handle, b->buf, off, src, n);
    return rc ? lnet_device_fail(dev, rc, "buffer_write") : LNET_OK;
}

lnet_status lnet_dbuf_read(lnet_device *dev, dbuf *b, void *dst)
{
    if (b->wrapped)
        return LNET_OK;
    int rc = dev->plugin->buffer_read(dev->handle, b->buf, 0, dst, b->bytes);
    return rc ? lnet_device_fail(dev, rc, "buffer_read") : LNET_OK;
}

/* `bytes` of host memory as a device buffer: wrapped where the device can
 * work on host memory in place, else a device buffer, written when
 * `upload` is set. */
lnet_status lnet_dbuf_put(lnet_device *dev, const void *host, size_t bytes, dbuf *b, int upload)
{
    if (dev->plugin->buffer_wrap_host &&
        dev->plugin->buffer_wrap_host(dev->handle, (void *)host, bytes, &b->buf) == 0) {
        b->bytes = bytes;
        b->wrapped = 1;
        return LNET_OK;
    }
    lnet_status st = dbuf_alloc(dev, bytes, b);
    return st || !upload ? st : dbuf_write(dev, b, 0, host, bytes);
}

lnet_status lnet_device_sync(lnet_device *dev)
{
    int rc = dev->plugin->synchronize(dev->handle);
    return rc ? lnet_device_fail(dev, rc, "synchronize") : LNET_OK;
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

/* Received transfers: borrowed from the transport (nothing to free), or,
 * in poison mode, copied into a poisoned buffer of this worker's. */
lnet_status lnet_receive(const exec_run *r, received *keep, int id, const float **data)
{
    const lnet_graph *g = r->plan->g;
    const lnet_transfer *x = &r->plan->x[id];
    const size_t floats = lnet_transfer_floats(g, x);
    float *into = NULL;
    if (r->poison) {
        lnet_status st = lnet_grow((void **)&keep->mem, &keep->cap, keep->n, sizeof *keep->mem, 8,
                                   "received transfers");
        if (!st)
            st = lnet_hbuf_alloc(&keep->mem[keep->n], floats, 1, "a received transfer");
        if (st)
            return st;
        into = keep->mem[keep->n++].p;
    }
    lnet_request *req;
    lnet_status st = r->tp->ops->irecv(r->tp, id, x->src, x->dst, into, floats * sizeof(float), &req);
    if (st)
        return st;
    const void *got = NULL;
    st = r->tp->ops->wait(r->tp, req, &got);
    r->tp->ops->release(r->tp, req);
    if (st && r->peer_failed)
        r->peer_failed[x->dst] = 1; /* its sender failed: no fault of this device */
    *data = got;
    return st;
}

void lnet_received_free(received *keep)
{
    for (int i = 0; i < keep->n; i++)
        lnet_hbuf_free(&keep->mem[i]);
    free(keep->mem);
    memset(keep, 0, sizeof *keep);
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

void lnet_take_rows(const lnet_graph *g, float *compact, int64_t M, float *src, int64_t base,
                    int64_t n, int64_t h, int64_t first, int64_t r, int64_t j_lo, int64_t j_hi,
                    int back)
{
    const size_t H = (size_t)g->heads, D = (size_t)g->dim;
    for (size_t b = 0; b < (size_t)g->batch; b++)
        for (int64_t j = j_lo; j < j_hi; j++) {
            float *c = compact + (b * (size_t)M + (size_t)j) * D;
            float *s = src + ((b * (size_t)n + (size_t)(first + j * r - base)) * H + (size_t)h) * D;
            if (!back) {
                memcpy(c, s, D * sizeof(float));
                continue;
            }
            for (size_t d = 0; d < D; d++)
                s[d] += c[d];
        }
}

int lnet_gather_head(const lnet_graph *g, const lnet_worker *w, const lnet_step *s, int64_t h,
                     gather_head *o)
{
    const lnet_graph_node *n = &g->nodes[s->node];
    const int64_t r = n->dilation, start = s->segment_index * n->segment;
    const int64_t end = n->segment > g->rows - start ? g->rows : start + n->segment;
    o->first = start + lnet_plugin_head_offset(g->offsets, h, g->heads, r);
    if (o->first >= end)
        return 0;
    const int64_t m = lnet_plugin_ceil_div(end - o->first, r);
    o->jq_lo = w->q_begin > o->first ? lnet_plugin_ceil_div(w->q_begin - o->first, r) : 0;
    o->jq_hi = w->q_end > o->first ? lnet_plugin_ceil_div(w->q_end - o->first, r) : 0;
    if (o->jq_hi > m)
        o->jq_hi = m;
    if (o->jq_lo >= o->jq_hi)
        return 0;
    o->M = g->causal ? o->jq_hi : m;
    o->jk_lo = w->begin > o->first ? lnet_plugin_ceil_div(w->begin - o->first, r) : 0;
    o->jk_hi = w->end > o->first ? lnet_plugin_ceil_div(w->end - o->first, r) : 0;
    if (o->jk_hi > o->M)
        o->jk_hi = o->M;
    return 1;
}

/* A gathered segment: per head, its selected rows compacted into a dense
 * [B, M, 1, D] problem (LongNet's sparse K/V exchange: only 1/r of the
 * rows) — the queries and keys of the own chunk, the other keys from the
 * step's transfers — run with dilation 1 and folded into the chunk. */
static lnet_status run_gather(const exec_run *r, lnet_device *dev, const lnet_worker *w,
                              const lnet_chunk *c, const lnet_step *s, received *keep)
{
    const lnet_plan *p = r->plan;
    const lnet_graph *g = p->g;
    const lnet_graph_node *n = &g->nodes[s->node];
    const int64_t B = g->batch, H = g->heads, D = g->dim, dil = n->dilation;
    const int64_t a = w->begin, nrows = w->end - w->begin;
    const int64_t qa = w->q_begin, nq = w->q_end - w->q_begin;
    lnet_status st = LNET_OK;
    const float *data[2 * (LNET_MAX_WORKERS + 2)];
    for (int i = 0; i < s->n_xfer && !st; i++)
        st = lnet_receive(r, keep, s->xfer + i, &data[i]);
    lnet_hbuf mem = {0};
    dbuf bq = {0}, bk = {0}, bv = {0}, bo = {0}, bl = {0};

    for (int64_t h = 0; h < H && !st; h++) {
        gather_head gh;
        if (!lnet_gather_head(g, w, s, h, &gh))
            continue;
        const int64_t first = gh.first, M = gh.M, jq_lo = gh.jq_lo, jq_hi = gh.jq_hi;
        const int64_t jk_lo = gh.jk_lo, jk_hi = gh.jk_hi;
        const size_t rows = (size_t)B * (size_t)M, vec = rows * (size_t)D;
        lnet_hbuf_free(&mem);
        if ((st = lnet_hbuf_alloc(&mem, 4 * vec + rows, r->poison, "a gathered segment")))
            break;
        float *q = mem.p, *k = q + vec, *v = k + vec, *o = v + vec, *l = o + vec;
        /* Own rows: the queries, and the keys of the chunk. */
        lnet_take_rows(g, q, M, c->t[LNET_TENSOR_Q], qa, nq, h, first, dil, jq_lo, jq_hi, 0);
        lnet_take_rows(g, k, M, c->t[LNET_TENSOR_K], a, nrows, h, first, dil, jk_lo, jk_hi, 0);
        lnet_take_rows(g, v, M, c->t[LNET_TENSOR_V], a, nrows, h, first, dil, jk_lo, jk_hi, 0);
        /* The other keys, as the transfers packed them ([H][B][rows][D]). */
        for (int i = 0; i < s->n_xfer; i++) {
            const lnet_transfer *x = &p->x[s->xfer + i];
            lnet_transfer_head_copy(g, x, h, (float *)data[i], x->tensor == LNET_TENSOR_K ? k : v, M, 1);
        }
        lnet_dbuf_free(dev, &bq);
        lnet_dbuf_free(dev, &bk);
        lnet_dbuf_free(dev, &bv);
        lnet_dbuf_free(dev, &bo);
        lnet_dbuf_free(dev, &bl);
        const size_t vbytes = vec * sizeof(float), lbytes = rows * sizeof(float);
        if ((st = lnet_dbuf_put(dev, q, vbytes, &bq, 1)) || (st = lnet_dbuf_put(dev, k, vbytes, &bk, 1)) ||
            (st = lnet_dbuf_put(dev, v, vbytes, &bv, 1)) || (st = lnet_dbuf_put(dev, o, vbytes, &bo, 0)) ||
            (st = lnet_dbuf_put(dev, l, lbytes, &bl, 0)))
            break;
        lnet_segment_job j;
        lnet_job_base(&j, g, n, r->kernel);
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
        if ((st = run_job(dev, &j, n)) || (st = lnet_device_sync(dev)) || (st = lnet_dbuf_read(dev, &bo, o)) ||
            (st = lnet_dbuf_read(dev, &bl, l)))
            break;
        for (int64_t b = 0; b < B; b++) {
            for (int64_t jq = jq_lo; jq < jq_hi; jq++) {
                const int64_t row = first + jq * dil - qa;
                float *orow = c->t[LNET_TENSOR_O] +
                              (((size_t)b * (size_t)nq + (size_t)row) * (size_t)H + (size_t)h) * (size_t)D;
                float *lrow = c->t[LNET_TENSOR_LSE] + ((size_t)b * (size_t)H + (size_t)h) * (size_t)nq +
                              (size_t)row;
                fold_row(orow, lrow, o + ((size_t)b * (size_t)M + (size_t)jq) * (size_t)D,
                         l[(size_t)b * (size_t)M + (size_t)jq], D);
            }
        }
    }
    lnet_dbuf_free(dev, &bq);
    lnet_dbuf_free(dev, &bk);
    lnet_dbuf_free(dev, &bv);
    lnet_dbuf_free(dev, &bo);
    lnet_dbuf_free(dev, &bl);
    lnet_hbuf_free(&mem);
    return st;
}

/* The ring blocks of a worker (its steps' peer blocks, in step order), as
 * the transport delivered them, on the device. On a device that works on
 * host memory in place each block is wrapped as it comes; on others they
 * go through two pairs of device buffers, block i+1 written (with
 * buffer_write_async where the backend has it) while block i computes. */
typedef struct ring_blocks {
    int n, next;
    const lnet_step **step;
    dbuf k[2], v[2];
} ring_blocks;

/* Receives block i and writes it into pair i % 2. */
static lnet_status ring_upload(const exec_run *r, lnet_device *dev, ring_blocks *rb, received *keep,
                               int i)
{
    const lnet_plugin *pl = dev->plugin;
    const lnet_step *s = rb->step[i];
    const float *kv[2];
    for (int x = 0; x < 2; x++) {
        lnet_status st = lnet_receive(r, keep, s->xfer + x, &kv[x]);
        if (st)
            return st;
    }
    if (!pl->buffer_write_async) {
        /* Blocking writes: the pair must be free of queued jobs first. */
        lnet_status st = lnet_device_sync(dev);
        if (st)
            return st;
    }
    const size_t bytes = lnet_transfer_floats(r->plan->g, &r->plan->x[s->xfer]) * sizeof(float);
    dbuf *dst[2] = {&rb->k[i % 2], &rb->v[i % 2]};
    for (int x = 0; x < 2; x++) {
        /* The received bytes stay valid until the run ends: the device may
         * read them until its next synchronize. */
        int rc = pl->buffer_write_async ? pl->buffer_write_async(dev->handle, dst[x]->buf, 0, kv[x], bytes)
                                        : pl->buffer_write(dev->handle, dst[x]->buf, 0, kv[x], bytes);
        if (rc)
            return lnet_device_fail(dev, rc, pl->buffer_write_async ? "buffer_write_async" : "buffer_write");
    }
    return LNET_OK;
}

static lnet_status ring_begin(const exec_run *r, lnet_device *dev, const lnet_worker *w,
                              ring_blocks *rb, received *keep)
{
    const lnet_graph *g = r->plan->g;
    memset(rb, 0, sizeof *rb);
    if (dev->plugin->buffer_wrap_host)
        return LNET_OK; /* blocks are wrapped as they come */
    int blocks = 0;
    for (int i = 0; i < w->n_steps; i++)
        blocks += w->steps[i].kind == LNET_STEP_RING && w->steps[i].n_xfer > 0;
    if (blocks == 0)
        return LNET_OK;
    rb->step = malloc((size_t)blocks * sizeof *rb->step);
    if (!rb->step)
        return lnet_fail(LNET_ERR_NOMEM, "out of memory listing %d ring blocks", blocks);
    int64_t most = 0;
    for (int i = 0; i < w->n_steps; i++) {
        const lnet_step *s = &w->steps[i];
        if (s->kind != LNET_STEP_RING || s->n_xfer == 0)
            continue;
        rb->step[rb->n++] = s;
        if (s->kv_end - s->kv_begin > most)
            most = s->kv_end - s->kv_begin;
    }
    size_t bytes = (size_t)g->batch * (size_t)most * (size_t)g->heads * (size_t)g->dim * sizeof(float);
    lnet_status st = LNET_OK;
    for (int x = 0; x < 2 && !st; x++) {
        if (!(st = dbuf_alloc(dev, bytes, &rb->k[x])))
            st = dbuf_alloc(dev, bytes, &rb->v[x]);
    }
    return st ? st : ring_upload(r, dev, rb, keep, 0);
}

static void ring_end(lnet_device *dev, ring_blocks *rb)
{
    free(rb->step);
    rb->step = NULL;
    for (int x = 0; x < 2; x++) {
        lnet_dbuf_free(dev, &rb->k[x]);
        lnet_dbuf_free(dev, &rb->v[x]);
    }
}

/* Starts the chunk at O = 0, LSE = -inf: no step initialises it. */
static void chunk_init(const lnet_graph *g, const lnet_chunk *c)
{
    const size_t n = (size_t)(c->q_end - c->q_begin);
    memset(c->t[LNET_TENSOR_O], 0,
           (size_t)g->batch * n * (size_t)g->heads * (size_t)g->dim * sizeof(float));
    float *l = c->t[LNET_TENSOR_LSE];
    for (size_t i = 0; i < (size_t)g->batch * (size_t)g->heads * n; i++)
        l[i] = -INFINITY;
}

lnet_status lnet_worker_run(const exec_run *r, int self)
{
    const lnet_plan *p = r->plan;
    const lnet_graph *g = p->g;
    const lnet_worker *w = &p->w[self];
    const lnet_chunk *c = &r->chunks[self];
    const int64_t a = w->begin, b = w->end, qa = w->q_begin, nq = w->q_end - w->q_begin;
    const int whole = a == 0 && b == g->rows && g->q_first == 0;
    lnet_device *dev;
    lnet_status st = lnet_device_acquire(r->ctx, w->device, w->options, &dev);
    if (st)
        return st;
    dbuf bq = {0}, bk = {0}, bv = {0}, bo = {0}, bl = {0}, rk = {0}, rv = {0};
    ring_blocks rb = {0};
    received keep = {0};
    const size_t row = (size_t)g->heads * (size_t)g->dim * sizeof(float);
    const size_t kvbytes = (size_t)g->batch * (size_t)(b - a) * row;
    const size_t qbytes = (size_t)g->batch * (size_t)nq * row;
    const size_t lbytes = (size_t)g->batch * (size_t)g->heads * (size_t)nq * sizeof(float);

    if (w->core_init)
        chunk_init(g, c);
    int device_steps = 0;
    for (int i = 0; i < w->n_steps; i++)
        device_steps += w->steps[i].kind != LNET_STEP_GATHER;
    if (device_steps || w->core_init) {
        if ((st = lnet_dbuf_put(dev, c->t[LNET_TENSOR_Q], qbytes, &bq, 1)) ||
            (st = lnet_dbuf_put(dev, c->t[LNET_TENSOR_K], kvbytes, &bk, 1)) ||
            (st = lnet_dbuf_put(dev, c->t[LNET_TENSOR_V], kvbytes, &bv, 1)) ||
            (st = lnet_dbuf_put(dev, c->t[LNET_TENSOR_O], qbytes, &bo, w->core_init)) ||
            (st = lnet_dbuf_put(dev, c->t[LNET_TENSOR_LSE], lbytes, &bl, w->core_init)))
            goto done;
    }
    if (!st)
        st = ring_begin(r, dev, w, &rb, &keep);
    for (int i = 0; i < w->n_steps && !st; i++) {
        const lnet_step *s = &w->steps[i];
        const lnet_graph_node *n = &g->nodes[s->node];
        if (s->kind == LNET_STEP_GATHER)
            continue;
        lnet_segment_job j;
        lnet_job_base(&j, g, n, r->kernel);
        j.row_begin = s->row_begin;
        j.row_end = s->row_end;
        j.init = s->init;
        j.q = bq.buf;
        j.k = bk.buf;
        j.v = bv.buf;
        j.out = bo.buf;
        j.lse = bl.buf;
        if (!whole) {
            j.q_base = qa;
            j.q_rows = nq;
            j.kv_base = a;
            j.kv_rows = b - a;
        }
        int wrapped_block = 0;
        if (s->kind == LNET_STEP_RING && s->n_xfer > 0) {
            /* A block of another chunk's K/V rows, received. */
            j.q_base = qa;
            j.q_rows = nq;
            j.kv_base = s->kv_begin;
            j.kv_rows = s->kv_end - s->kv_begin;
            if (rb.n == 0) {
                const float *kv[2];
                lnet_dbuf_free(dev, &rk);
                lnet_dbuf_free(dev, &rv);
                const size_t bytes = lnet_transfer_floats(g, &p->x[s->xfer]) * sizeof(float);
                if ((st = lnet_receive(r, &keep, s->xfer, &kv[0])) ||
                    (st = lnet_receive(r, &keep, s->xfer + 1, &kv[1])) ||
                    (st = lnet_dbuf_put(dev, kv[0], bytes, &rk, 1)) || (st = lnet_dbuf_put(dev, kv[1], bytes, &rv, 1)))
                    break;
                j.k = rk.buf;
                j.v = rv.buf;
                wrapped_block = 1;
            } else {
                if (rb.next + 1 < rb.n && (st = ring_upload(r, dev, &rb, &keep, rb.next + 1)))
                    break;
                j.k = rb.k[rb.next % 2].buf;
                j.v = rb.v[rb.next % 2].buf;
                rb.next++;
            }
        }
        st = run_job(dev, &j, n);
        if (!st && wrapped_block)
            st = lnet_device_sync(dev); /* the block buffers are freed by the next step */
    }
    if (!st && (device_steps || w->core_init)) {
        if (!(st = lnet_device_sync(dev)) && !(st = lnet_dbuf_read(dev, &bo, c->t[LNET_TENSOR_O])))
            st = lnet_dbuf_read(dev, &bl, c->t[LNET_TENSOR_LSE]);
    }
    for (int i = 0; i < w->n_steps && !st; i++)
        if (w->steps[i].kind == LNET_STEP_GATHER)
            st = run_gather(r, dev, w, c, &w->steps[i], &keep);
done:
    if (st)
        (void)dev->plugin->synchronize(dev->handle); /* nothing queued may still read what is freed */
    ring_end(dev, &rb);
    lnet_dbuf_free(dev, &bq);
    lnet_dbuf_free(dev, &bk);
    lnet_dbuf_free(dev, &bv);
    lnet_dbuf_free(dev, &bo);
    lnet_dbuf_free(dev, &bl);
    lnet_dbuf_free(dev, &rk);
    lnet_dbuf_free(dev, &rv);
    lnet_device_release(dev);
    lnet_received_free(&keep);
    return st;
}
