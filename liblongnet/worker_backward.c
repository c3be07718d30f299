/* worker_backward.c — one worker's backward pass: Delta for its query rows,
 * each level's SEGMENT_ATTENTION_BACKWARD on its device (local segments,
 * ring blocks whose dK/dV contributions go back to their owner), then its
 * gathered segments (compacted per head as in the forward, their dK/dV
 * rows of other owners sent back: the REDUCE transfers), and last the
 * contributions the other workers sent it, added into its own dK, dV. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor.h"
#include "internal.h"

/* Delta = rowsum(dO * O) per query row and head: [B, H, nq]. */
static void compute_delta(const lnet_graph *g, const lnet_chunk *c)
{
    const size_t B = (size_t)g->batch, H = (size_t)g->heads, D = (size_t)g->dim;
    const size_t nq = (size_t)(c->q_end - c->q_begin);
    const float *o = c->t[LNET_TENSOR_O], *d = c->t[LNET_TENSOR_DO];
    float *delta = c->t[LNET_TENSOR_DELTA];
    for (size_t b = 0; b < B; b++)
        for (size_t i = 0; i < nq; i++)
            for (size_t h = 0; h < H; h++) {
                const size_t at = ((b * nq + i) * H + h) * D;
                double s = 0;
                for (size_t e = 0; e < D; e++)
                    s += (double)o[at + e] * (double)d[at + e];
                delta[(b * H + h) * nq + i] = (float)s;
            }
}

static lnet_status run_backward(lnet_device *dev, const lnet_segment_backward_job *j,
                                const lnet_graph_node *n)
{
    int rc = dev->plugin->run_segment_backward(dev->handle, j);
    if (!rc)
        return LNET_OK;
    char what[112];
    snprintf(what, sizeof what, "backward of level %d (segment %lld, dilation %lld)", n->level,
             (long long)n->segment, (long long)n->dilation);
    return lnet_device_fail(dev, rc, what);
}

static int is_reduce(const lnet_transfer *x)
{
    return x->tensor == LNET_TENSOR_DK || x->tensor == LNET_TENSOR_DV;
}

/* What a worker sends back: its REDUCE transfers' data, kept until the
 * run ends (the receiver copies it whenever it comes). */
typedef struct reducer {
    const exec_run *r;
    int self;
    lnet_hbuf *mem;     /* per transfer of the plan (only this worker's used) */
    char *posted;
} reducer;

static lnet_status reduce_send(reducer *rd, int id)
{
    const lnet_transfer *x = &rd->r->plan->x[id];
    const size_t floats = lnet_transfer_floats(rd->r->plan->g, x);
    lnet_request *req;
    lnet_status st = rd->r->tp->ops->isend(rd->r->tp, id, x->src, x->dst, rd->mem[id].p,
                                           floats * sizeof(float), &req);
    if (st)
        return st;
    rd->r->tp->ops->release(rd->r->tp, req); /* the data lives until the run ends */
    rd->posted[id] = 1;
    return LNET_OK;
}

static lnet_status reduce_buffer(reducer *rd, int id, float **p)
{
    const lnet_transfer *x = &rd->r->plan->x[id];
    const size_t floats = lnet_transfer_floats(rd->r->plan->g, x);
    lnet_status st = lnet_hbuf_alloc(&rd->mem[id], floats, rd->r->poison, "dK/dV sent back");
    if (st)
        return st;
    memset(rd->mem[id].p, 0, floats * sizeof(float));
    *p = rd->mem[id].p;
    return LNET_OK;
}

/* Adds the packed rows of REDUCE transfer x (head h's part, or every head
 * for a block) into the chunk's dK or dV. */
static void add_reduced(const lnet_graph *g, const lnet_chunk *c, const lnet_transfer *x,
                        const float *data)
{
    float *dst = c->t[x->tensor];
    const size_t B = (size_t)g->batch, H = (size_t)g->heads, D = (size_t)g->dim;
    const size_t n = (size_t)(c->end - c->begin);
    if (x->kind == LNET_TRANSFER_BLOCK) {
        const size_t rows = (size_t)(x->row_end - x->row_begin), at = (size_t)(x->row_begin - c->begin);
        for (size_t b = 0; b < B; b++) {
            float *to = dst + (b * n + at) * H * D;
            const float *from = data + b * rows * H * D;
            for (size_t e = 0; e < rows * H * D; e++)
                to[e] += from[e];
        }
        return;
    }
    const lnet_graph_node *nd = &g->nodes[x->node];
    for (int64_t h = 0; h < g->heads; h++) {
        int64_t j_lo, j_hi, before;
        lnet_transfer_head(g, x, h, &j_lo, &j_hi, &before);
        const int64_t first = x->segment_index * nd->segment +
                              lnet_plugin_head_offset(g->offsets, h, g->heads, nd->dilation);
        const size_t count = (size_t)(j_hi - j_lo);
        /* The packed rows of head h: [B][count][D], row 0 is index j_lo. */
        const float *from = data + (size_t)before * B * D;
        for (size_t b = 0; b < B; b++)
            for (int64_t j = j_lo; j < j_hi; j++) {
                const float *s = from + (b * count + (size_t)(j - j_lo)) * D;
                float *to = dst + ((b * n + (size_t)(first + j * nd->dilation - c->begin)) * H + (size_t)h) * D;
                for (size_t e = 0; e < D; e++)
                    to[e] += s[e];
            }
    }
}

/* The per-row values (LSE, Delta: [B, H, nq]) of head h's selected query
 * rows j in [j_lo, j_hi) into a compact [B, M] array. */
static void take_per_row(const lnet_graph *g, float *compact, int64_t M, const float *src,
                         int64_t base, int64_t nq, int64_t h, int64_t first, int64_t r, int64_t j_lo,
                         int64_t j_hi)
{
    for (int64_t b = 0; b < g->batch; b++)
        for (int64_t j = j_lo; j < j_hi; j++)
            compact[b * M + j] = src[(b * g->heads + h) * nq + (first + j * r - base)];
}

/* A gathered segment's backward: per head its selected rows compacted (own
 * queries with their dO, LSE and Delta; own keys and the received ones),
 * run with dilation 1; dQ and the own keys' dK/dV added into the chunk,
 * the other keys' dK/dV packed into the REDUCE transfers back. */
static lnet_status gather_backward(const exec_run *r, lnet_device *dev, const lnet_worker *w,
                                   const lnet_chunk *c, const lnet_step *s, received *keep,
                                   reducer *rd)
{
    const lnet_plan *p = r->plan;
    const lnet_graph *g = p->g;
    const lnet_graph_node *n = &g->nodes[s->node];
    const int64_t B = g->batch, H = g->heads, D = g->dim, dil = n->dilation;
    const int64_t a = w->begin, nrows = w->end - w->begin;
    const int64_t qa = w->q_begin, nq = w->q_end - w->q_begin;
    lnet_status st = LNET_OK;
    const float *data[4 * (LNET_MAX_WORKERS + 2)];
    float *back[4 * (LNET_MAX_WORKERS + 2)];
    for (int i = 0; i < s->n_xfer && !st; i++) {
        const int id = s->xfer + i;
        st = is_reduce(&p->x[id]) ? reduce_buffer(rd, id, &back[i]) : lnet_receive(r, keep, id, &data[i]);
    }
    lnet_hbuf mem = {0};
    enum { Q, K, V, O, DO, DQ, DK, DV, NV };
    dbuf bufs[NV + 2];
    memset(bufs, 0, sizeof bufs);
    for (int64_t h = 0; h < H && !st; h++) {
        gather_head gh;
        if (!lnet_gather_head(g, w, s, h, &gh))
            continue;
        const int64_t first = gh.first, M = gh.M, jq_lo = gh.jq_lo, jq_hi = gh.jq_hi;
        const int64_t jk_lo = gh.jk_lo, jk_hi = gh.jk_hi;
        const size_t rows = (size_t)B * (size_t)M, vec = rows * (size_t)D;
        lnet_hbuf_free(&mem);
        if ((st = lnet_hbuf_alloc(&mem, NV * vec + 2 * rows, r->poison, "a gathered segment")))
            break;
        float *t[NV];
        for (int i = 0; i < NV; i++)
            t[i] = mem.p + (size_t)i * vec;
        float *lse = mem.p + NV * vec, *delta = lse + rows;
        memset(t[DQ], 0, 3 * vec * sizeof(float));
        const int tq[4] = {LNET_TENSOR_Q, LNET_TENSOR_O, LNET_TENSOR_DO, -1};
        const int cq[3] = {Q, O, DO};
        for (int i = 0; tq[i] >= 0; i++)
            lnet_take_rows(g, t[cq[i]], M, c->t[tq[i]], qa, nq, h, first, dil, jq_lo, jq_hi, 0);
        take_per_row(g, lse, M, c->t[LNET_TENSOR_LSE], qa, nq, h, first, dil, jq_lo, jq_hi);
        take_per_row(g, delta, M, c->t[LNET_TENSOR_DELTA], qa, nq, h, first, dil, jq_lo, jq_hi);
        lnet_take_rows(g, t[K], M, c->t[LNET_TENSOR_K], a, nrows, h, first, dil, jk_lo, jk_hi, 0);
        lnet_take_rows(g, t[V], M, c->t[LNET_TENSOR_V], a, nrows, h, first, dil, jk_lo, jk_hi, 0);
        for (int i = 0; i < s->n_xfer; i++) {
            const lnet_transfer *x = &p->x[s->xfer + i];
            if (!is_reduce(x))
                lnet_transfer_head_copy(g, x, h, (float *)data[i],
                                        t[x->tensor == LNET_TENSOR_K ? K : V], M, 1);
        }
        for (int i = 0; i < NV + 2; i++)
            lnet_dbuf_free(dev, &bufs[i]);
        const size_t vbytes = vec * sizeof(float), lbytes = rows * sizeof(float);
        for (int i = 0; i < NV && !st; i++)
            st = lnet_dbuf_put(dev, t[i], vbytes, &bufs[i], 1);
        if (st || (st = lnet_dbuf_put(dev, lse, lbytes, &bufs[NV], 1)) ||
            (st = lnet_dbuf_put(dev, delta, lbytes, &bufs[NV + 1], 1)))
            break;
        lnet_segment_backward_job j;
        memset(&j, 0, sizeof j);
        j.size = sizeof j;
        lnet_job_base(&j.level, g, n, r->kernel);
        j.level.rows = M;
        j.level.heads = 1;
        j.level.segment = M;
        j.level.dilation = 1;
        j.level.offsets = LNET_OFFSETS_INTERLEAVED;
        j.level.row_begin = jq_lo;
        j.level.row_end = jq_hi;
        j.level.q = bufs[Q].buf;
        j.level.k = bufs[K].buf;
        j.level.v = bufs[V].buf;
        j.level.out = bufs[O].buf;
        j.level.lse = bufs[NV].buf;
        j.dout = bufs[DO].buf;
        j.delta = bufs[NV + 1].buf;
        j.dq = bufs[DQ].buf;
        j.dk = bufs[DK].buf;
        j.dv = bufs[DV].buf;
        if ((st = run_backward(dev, &j, n)) || (st = lnet_device_sync(dev)))
            break;
        for (int i = DQ; i <= DV && !st; i++)
            st = lnet_dbuf_read(dev, &bufs[i], t[i]);
        if (st)
            break;
        lnet_take_rows(g, t[DQ], M, c->t[LNET_TENSOR_DQ], qa, nq, h, first, dil, jq_lo, jq_hi, 1);
        lnet_take_rows(g, t[DK], M, c->t[LNET_TENSOR_DK], a, nrows, h, first, dil, jk_lo, jk_hi, 1);
        lnet_take_rows(g, t[DV], M, c->t[LNET_TENSOR_DV], a, nrows, h, first, dil, jk_lo, jk_hi, 1);
        /* The other owners' keys: packed into the transfers back. */
        for (int i = 0; i < s->n_xfer; i++) {
            const lnet_transfer *x = &p->x[s->xfer + i];
            if (is_reduce(x))
                lnet_transfer_head_copy(g, x, h, back[i], t[x->tensor == LNET_TENSOR_DK ? DK : DV],
                                        M, 0);
        }
    }
    for (int i = 0; i < s->n_xfer && !st; i++)
        if (is_reduce(&p->x[s->xfer + i]))
            st = reduce_send(rd, s->xfer + i);
    for (int i = 0; i < NV + 2; i++)
        lnet_dbuf_free(dev, &bufs[i]);
    lnet_hbuf_free(&mem);
    return st;
}

/* A ring block's backward: the block's K/V received, its dK/dV computed
 * from this worker's queries into zeroed buffers, sent back to the
 * block's owner. */
static lnet_status ring_backward(const exec_run *r, lnet_device *dev, const lnet_step *s,
                                 lnet_segment_backward_job *j, received *keep, reducer *rd)
{
    const lnet_plan *p = r->plan;
    const float *kv[2] = {NULL, NULL};
    float *dkv[2] = {NULL, NULL};
    lnet_status st = LNET_OK;
    for (int i = 0; i < s->n_xfer && !st; i++) {
        const int id = s->xfer + i;
        const lnet_transfer *x = &p->x[id];
        if (is_reduce(x))
            st = reduce_buffer(rd, id, &dkv[x->tensor == LNET_TENSOR_DV]);
        else
            st = lnet_receive(r, keep, id, &kv[x->tensor == LNET_TENSOR_V]);
    }
    if (st)
        return st;
    const size_t bytes = lnet_transfer_floats(p->g, &p->x[s->xfer]) * sizeof(float);
    dbuf b[4];
    memset(b, 0, sizeof b);
    if (!(st = lnet_dbuf_put(dev, kv[0], bytes, &b[0], 1)) &&
        !(st = lnet_dbuf_put(dev, kv[1], bytes, &b[1], 1)) &&
        !(st = lnet_dbuf_put(dev, dkv[0], bytes, &b[2], 1)) &&
        !(st = lnet_dbuf_put(dev, dkv[1], bytes, &b[3], 1))) {
        j->level.kv_base = s->kv_begin;
        j->level.kv_rows = s->kv_end - s->kv_begin;
        j->level.k = b[0].buf;
        j->level.v = b[1].buf;
        j->dk = b[2].buf;
        j->dv = b[3].buf;
        if (!(st = run_backward(dev, j, &p->g->nodes[s->node])) && !(st = lnet_device_sync(dev)) &&
            !(st = lnet_dbuf_read(dev, &b[2], dkv[0])))
            st = lnet_dbuf_read(dev, &b[3], dkv[1]);
    }
    for (int i = 0; i < 4; i++)
        lnet_dbuf_free(dev, &b[i]);
    for (int i = 0; i < s->n_xfer && !st; i++)
        if (is_reduce(&p->x[s->xfer + i]))
            st = reduce_send(rd, s->xfer + i);
    return st;
}

/* Adds every contribution the others sent back for this worker's rows. */
static lnet_status take_reduced(const exec_run *r, int self, received *keep)
{
    const lnet_plan *p = r->plan;
    lnet_status st = LNET_OK;
    for (int id = 0; id < p->n_x && !st; id++) {
        const lnet_transfer *x = &p->x[id];
        if (x->dst != self || !is_reduce(x))
            continue;
        const float *data;
        if (!(st = lnet_receive(r, keep, id, &data)))
            add_reduced(p->g, &r->chunks[self], x, data);
    }
    return st;
}

lnet_status lnet_worker_run_backward(const exec_run *r, int self)
{
    const lnet_plan *p = r->plan;
    const lnet_graph *g = p->g;
    const lnet_worker *w = &p->w[self];
    const lnet_chunk *c = &r->chunks[self];
    const int64_t a = w->begin, b = w->end, qa = w->q_begin, nq = w->q_end - w->q_begin;
    const int whole = a == 0 && b == g->rows && g->q_first == 0;
    reducer rd = {r, self, r->sent[self], calloc((size_t)p->n_x + 1, 1)};
    received keep = {0};
    if (!rd.posted)
        return lnet_fail(LNET_ERR_NOMEM, "out of memory for %d transfers", p->n_x);
    lnet_device *dev = NULL;
    lnet_status st = LNET_OK;
    enum { Q, K, V, O, L, DO, DL, DQ, DK, DV, NB };
    dbuf bufs[NB];
    memset(bufs, 0, sizeof bufs);
    if (nq > 0 && !(st = lnet_device_acquire(r->ctx, w->device, w->options, &dev))) {
        compute_delta(g, c);
        const size_t row = (size_t)g->heads * (size_t)g->dim * sizeof(float);
        const size_t kvb = (size_t)g->batch * (size_t)(b - a) * row, qb = (size_t)g->batch * (size_t)nq * row;
        const size_t lb = (size_t)g->batch * (size_t)g->heads * (size_t)nq * sizeof(float);
        const int tensor[NB] = {LNET_TENSOR_Q, LNET_TENSOR_K, LNET_TENSOR_V, LNET_TENSOR_O,
                                LNET_TENSOR_LSE, LNET_TENSOR_DO, LNET_TENSOR_DELTA,
                                LNET_TENSOR_DQ, LNET_TENSOR_DK, LNET_TENSOR_DV};
        const size_t bytes[NB] = {qb, kvb, kvb, qb, lb, qb, lb, qb, kvb, kvb};
        for (int i = 0; i < NB && !st; i++)
            st = lnet_dbuf_put(dev, c->t[tensor[i]], bytes[i], &bufs[i], 1);
        for (int i = 0; i < w->n_steps && !st; i++) {
            const lnet_step *s = &w->steps[i];
            if (s->kind == LNET_STEP_GATHER)
                continue;
            lnet_segment_backward_job j;
            memset(&j, 0, sizeof j);
            j.size = sizeof j;
            lnet_job_base(&j.level, g, &g->nodes[s->node], r->kernel);
            j.level.row_begin = s->row_begin;
            j.level.row_end = s->row_end;
            if (!whole) {
                j.level.q_base = qa;
                j.level.q_rows = nq;
                j.level.kv_base = a;
                j.level.kv_rows = b - a;
            }
            j.level.q = bufs[Q].buf;
            j.level.k = bufs[K].buf;
            j.level.v = bufs[V].buf;
            j.level.out = bufs[O].buf;
            j.level.lse = bufs[L].buf;
            j.dout = bufs[DO].buf;
            j.delta = bufs[DL].buf;
            j.dq = bufs[DQ].buf;
            j.dk = bufs[DK].buf;
            j.dv = bufs[DV].buf;
            if (s->kind == LNET_STEP_RING && s->n_xfer > 0) {
                j.level.q_base = qa;
                j.level.q_rows = nq;
                st = ring_backward(r, dev, s, &j, &keep, &rd);
            } else {
                st = run_backward(dev, &j, &g->nodes[s->node]);
            }
        }
        if (!st && !(st = lnet_device_sync(dev))) {
            for (int i = DQ; i <= DV && !st; i++)
                st = lnet_dbuf_read(dev, &bufs[i], c->t[i == DQ ? LNET_TENSOR_DQ : i == DK ? LNET_TENSOR_DK
                                                                                  : LNET_TENSOR_DV]);
        }
        for (int i = 0; i < w->n_steps && !st; i++)
            if (w->steps[i].kind == LNET_STEP_GATHER)
                st = gather_backward(r, dev, w, c, &w->steps[i], &keep, &rd);
    }
    if (st) {
        /* Every contribution this worker owes and has not sent: its
         * receiver must not wait for it. */
        for (int id = 0; id < p->n_x; id++)
            if (p->x[id].src == self && is_reduce(&p->x[id]) && !rd.posted[id])
                r->tp->ops->abandon(r->tp, id, lnet_last_error());
    }
    if (dev) {
        if (st)
            (void)dev->plugin->synchronize(dev->handle);
        for (int i = 0; i < NB; i++)
            lnet_dbuf_free(dev, &bufs[i]);
        /* Released before waiting on the others: one device may serve
         * two workers of a list ("cpu=1,cpu=2"), one after the other. */
        lnet_device_release(dev);
    }
    if (!st)
        st = take_reduced(r, self, &keep);
    lnet_received_free(&keep);
    free(rd.posted);
    return st;
}
