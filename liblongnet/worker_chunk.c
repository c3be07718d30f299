/* worker_chunk.c — a worker's own buffers (its chunk of Q, K, V, O, LSE),
 * scattered from and gathered into the caller's tensors, and the packed
 * form of the row sets that transfers move. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "executor.h"
#include "internal.h"

/* Floats of NaN before and after a poisoned buffer: more than a row of
 * the widest head (D <= 256 ... any H): reads just past a window land in
 * it rather than in a neighbour's memory. */
#define GUARD_FLOATS 16384

lnet_status lnet_hbuf_alloc(lnet_hbuf *b, size_t n, int poison, const char *what)
{
    size_t total = n, bytes;
    if (poison && lnet_add_size(n, 2 * (size_t)GUARD_FLOATS, &total))
        total = SIZE_MAX;
    if (total == SIZE_MAX || lnet_mul_size(total ? total : 1, sizeof(float), &bytes)) {
        b->p = NULL;
        b->base = NULL;
        return lnet_fail(LNET_ERR_OVERFLOW, "%s: %zu floats do not fit in memory", what, n);
    }
    b->base = malloc(bytes);
    if (!b->base) {
        b->p = NULL;
        return lnet_fail(LNET_ERR_NOMEM, "out of memory for %s (%zu bytes)", what, bytes);
    }
    b->p = b->base;
    if (poison) {
        float *f = b->base;
        for (size_t i = 0; i < total; i++)
            f[i] = NAN;
        b->p = f + GUARD_FLOATS;
    }
    return LNET_OK;
}

void lnet_hbuf_free(lnet_hbuf *b)
{
    free(b->base);
    b->base = NULL;
    b->p = NULL;
}

/* Where absolute row r is in the caller's tensors (a query row when
 * `query`: Q, O, LSE) and how many rows they hold (*rows). */
static int64_t host_index(const host_tensors *t, const lnet_graph *g, int64_t r, int query,
                          int64_t *rows)
{
    if (!t->rows) {
        *rows = query ? g->q_rows : g->rows;
        return query ? r - g->q_first : r;
    }
    *rows = t->rows->total;
    int64_t before = 0;
    for (int i = 0; i < t->rows->n; i++) {
        if (r >= t->rows->begin[i] && r < t->rows->end[i])
            return before + r - t->rows->begin[i];
        before += t->rows->end[i] - t->rows->begin[i];
    }
    return before; /* never: a chunk lies inside its rank's ranges */
}

/* Rows [r0, r1) of a [B, rows, H, D] host tensor `host` (r0 at host row
 * `at`) as the chunk's tensor i: the caller's memory or a copy. */
static lnet_status take(lnet_chunk *c, int i, const lnet_graph *g, const float *host, int64_t at_row,
                        int64_t rows, int64_t r0, int64_t r1, int copy_in, int poison)
{
    const size_t row = (size_t)g->heads * (size_t)g->dim, n = (size_t)(r1 - r0), B = (size_t)g->batch;
    const size_t at = (size_t)at_row;
    if (!poison && (B == 1 || (at == 0 && n == (size_t)rows))) {
        c->t[i] = (float *)host + at * row; /* inputs are only read */
        return LNET_OK;
    }
    lnet_status st = lnet_hbuf_alloc(&c->mem[i], B * n * row, poison, "a chunk of rows");
    if (st)
        return st;
    c->t[i] = c->mem[i].p;
    for (size_t b = 0; copy_in && b < B; b++)
        memcpy(c->t[i] + b * n * row, host + (b * (size_t)rows + at) * row, n * row * sizeof(float));
    return LNET_OK;
}

/* The [B, H, nq] slice of a [B, H, Nq] host tensor (LSE, Delta) for the
 * chunk's query rows, as the chunk's tensor i. */
static lnet_status take_per_row(lnet_chunk *c, int i, const lnet_graph *g, const host_tensors *t,
                                float *host, int copy_in, int poison)
{
    const size_t B = (size_t)g->batch, H = (size_t)g->heads, nq = (size_t)(c->q_end - c->q_begin);
    int64_t rows;
    const size_t at = (size_t)host_index(t, g, c->q_begin, 1, &rows);
    const size_t Nq = (size_t)rows;
    const int whole = at == 0 && nq == Nq;
    if (host && !poison && (B * H == 1 || whole)) {
        c->t[i] = host + at;
        return LNET_OK;
    }
    lnet_status st = lnet_hbuf_alloc(&c->mem[i], B * H * nq, poison, "a chunk's per-row values");
    if (st)
        return st;
    c->t[i] = c->mem[i].p;
    for (size_t bh = 0; copy_in && bh < B * H; bh++)
        memcpy(c->t[i] + bh * nq, host + bh * Nq + at, nq * sizeof(float));
    return LNET_OK;
}

static void zero_rows(float *t, const lnet_graph *g, int64_t n)
{
    memset(t, 0, (size_t)g->batch * (size_t)n * (size_t)g->heads * (size_t)g->dim * sizeof(float));
}

lnet_status lnet_chunk_scatter(lnet_chunk *c, const lnet_graph *g, const host_tensors *t,
                               const lnet_worker *w, int poison)
{
    memset(c, 0, sizeof *c);
    c->begin = w->begin;
    c->end = w->end;
    c->q_begin = w->q_begin;
    c->q_end = w->q_end;
    if (w->begin == w->end)
        return LNET_OK;
    const int bwd = g->backward;
    const int64_t n = w->end - w->begin, nq = w->q_end - w->q_begin;
    int64_t kv_rows, q_rows;
    const int64_t kv_at = host_index(t, g, w->begin, 0, &kv_rows);
    lnet_status st = LNET_OK;
    if ((st = take(c, LNET_TENSOR_K, g, t->k, kv_at, kv_rows, w->begin, w->end, 1, poison)) ||
        (st = take(c, LNET_TENSOR_V, g, t->v, kv_at, kv_rows, w->begin, w->end, 1, poison)))
        goto fail;
    if (bwd) {
        /* dK and dV of the chunk's rows, zeroed: contributions are added. */
        if ((st = take(c, LNET_TENSOR_DK, g, t->dk, kv_at, kv_rows, w->begin, w->end, 0, poison)) ||
            (st = take(c, LNET_TENSOR_DV, g, t->dv, kv_at, kv_rows, w->begin, w->end, 0, poison)))
            goto fail;
        zero_rows(c->t[LNET_TENSOR_DK], g, n);
        zero_rows(c->t[LNET_TENSOR_DV], g, n);
    }
    if (nq == 0)
        return LNET_OK; /* no query rows: K/V to send, nothing to compute */
    const int64_t q_at = host_index(t, g, w->q_begin, 1, &q_rows);
    if ((st = take(c, LNET_TENSOR_Q, g, t->q, q_at, q_rows, w->q_begin, w->q_end, 1, poison)) ||
        (st = take(c, LNET_TENSOR_O, g, t->out, q_at, q_rows, w->q_begin, w->q_end, bwd, poison)) ||
        (st = take_per_row(c, LNET_TENSOR_LSE, g, t, t->lse, bwd, poison)))
        goto fail;
    if (bwd) {
        if ((st = take(c, LNET_TENSOR_DO, g, t->dout, q_at, q_rows, w->q_begin, w->q_end, 1,
                       poison)) ||
            (st = take(c, LNET_TENSOR_DQ, g, t->dq, q_at, q_rows, w->q_begin, w->q_end, 0,
                       poison)) ||
            (st = take_per_row(c, LNET_TENSOR_DELTA, g, t, NULL, 0, poison)))
            goto fail;
        zero_rows(c->t[LNET_TENSOR_DQ], g, nq);
    }
    return LNET_OK;
fail:
    lnet_chunk_free(c);
    return st;
}

/* Rows [r0, r1) of the chunk's tensor i back into a [B, rows, H, D] host
 * tensor (r0 at host row `at`). */
static void put_back(const lnet_chunk *c, int i, const lnet_graph *g, float *host, int64_t at,
                     int64_t rows, int64_t r0, int64_t r1)
{
    if (!c->mem[i].p)
        return; /* the caller's memory itself */
    const size_t row = (size_t)g->heads * (size_t)g->dim, n = (size_t)(r1 - r0);
    for (size_t b = 0; b < (size_t)g->batch; b++)
        memcpy(host + (b * (size_t)rows + (size_t)at) * row, c->t[i] + b * n * row,
               n * row * sizeof(float));
}

void lnet_chunk_gather(const lnet_chunk *c, const lnet_graph *g, const host_tensors *t)
{
    int64_t kv_rows, q_rows;
    const int64_t kv_at = host_index(t, g, c->begin, 0, &kv_rows);
    const int64_t q_at = host_index(t, g, c->q_begin, 1, &q_rows);
    if (g->backward) {
        put_back(c, LNET_TENSOR_DK, g, t->dk, kv_at, kv_rows, c->begin, c->end);
        put_back(c, LNET_TENSOR_DV, g, t->dv, kv_at, kv_rows, c->begin, c->end);
        if (c->q_end > c->q_begin)
            put_back(c, LNET_TENSOR_DQ, g, t->dq, q_at, q_rows, c->q_begin, c->q_end);
        return;
    }
    put_back(c, LNET_TENSOR_O, g, t->out, q_at, q_rows, c->q_begin, c->q_end);
    const size_t nq = (size_t)(c->q_end - c->q_begin);
    const size_t B = (size_t)g->batch, H = (size_t)g->heads, Nq = (size_t)q_rows;
    const size_t at = (size_t)q_at;
    if (c->mem[LNET_TENSOR_LSE].p)
        for (size_t bh = 0; bh < B * H; bh++)
            memcpy(t->lse + bh * Nq + at, c->t[LNET_TENSOR_LSE] + bh * nq, nq * sizeof(float));
}

void lnet_chunk_free(lnet_chunk *c)
{
    for (int i = 0; i < LNET_TENSOR_COUNT; i++)
        lnet_hbuf_free(&c->mem[i]);
    memset(c, 0, sizeof *c);
}

/* The first row of head h of the transfer's segment. */
static int64_t head_first(const lnet_graph *g, const lnet_transfer *x, int64_t h)
{
    const lnet_graph_node *n = &g->nodes[x->node];
    return x->segment_index * n->segment + lnet_plugin_head_offset(g->offsets, h, g->heads, n->dilation);
}

void lnet_transfer_head(const lnet_graph *g, const lnet_transfer *x, int64_t h, int64_t *j_lo,
                        int64_t *j_hi, int64_t *head_rows_before)
{
    const int64_t r = g->nodes[x->node].dilation;
    int64_t before = 0;
    for (int64_t e = 0; e < h; e++)
        before += lnet_count_selected(head_first(g, x, e), r, x->row_begin, x->row_end);
    const int64_t first = head_first(g, x, h);
    const int64_t lo = x->row_begin > first ? x->row_begin : first;
    *j_lo = lnet_plugin_ceil_div(lo - first, r);
    *j_hi = *j_lo + lnet_count_selected(first, r, x->row_begin, x->row_end);
    *head_rows_before = before;
}

void lnet_transfer_head_copy(const lnet_graph *g, const lnet_transfer *x, int64_t h, float *packed,
                             float *compact, int64_t M, int to_compact)
{
    const size_t B = (size_t)g->batch, D = (size_t)g->dim;
    int64_t j_lo, j_hi, before;
    lnet_transfer_head(g, x, h, &j_lo, &j_hi, &before);
    const size_t count = (size_t)(j_hi - j_lo);
    if (j_hi > M)
        j_hi = M; /* never: a transfer holds only rows the step's problem has */
    if (j_hi <= j_lo)
        return;
    const size_t n = (size_t)(j_hi - j_lo) * D * sizeof(float);
    float *head = packed + (size_t)before * B * D;
    for (size_t b = 0; b < B; b++) {
        float *p = head + b * count * D, *c = compact + (b * (size_t)M + (size_t)j_lo) * D;
        if (to_compact)
            memcpy(c, p, n);
        else
            memcpy(p, c, n);
    }
}

size_t lnet_transfer_floats(const lnet_graph *g, const lnet_transfer *x)
{
    return (size_t)x->rows * (size_t)g->batch * (size_t)g->dim;
}

const float *lnet_transfer_in_place(const lnet_graph *g, const lnet_transfer *x,
                                    const float *src, int64_t base, int64_t n)
{
    if (x->kind != LNET_TRANSFER_BLOCK)
        return NULL;
    if (g->batch != 1 && !(x->row_begin == base && x->row_end == base + n))
        return NULL;
    return src + (size_t)(x->row_begin - base) * (size_t)g->heads * (size_t)g->dim;
}

void lnet_transfer_pack(const lnet_graph *g, const lnet_transfer *x, const float *src,
                        int64_t base, int64_t n, float *dst)
{
    const size_t B = (size_t)g->batch, H = (size_t)g->heads, D = (size_t)g->dim;
    if (x->kind == LNET_TRANSFER_BLOCK) {
        const size_t rows = (size_t)(x->row_end - x->row_begin);
        for (size_t b = 0; b < B; b++)
            memcpy(dst + b * rows * H * D, src + (b * (size_t)n + (size_t)(x->row_begin - base)) * H * D,
                   rows * H * D * sizeof(float));
        return;
    }
    const int64_t r = g->nodes[x->node].dilation;
    for (int64_t h = 0; h < g->heads; h++) {
        int64_t j_lo, j_hi, before;
        lnet_transfer_head(g, x, h, &j_lo, &j_hi, &before);
        const int64_t first = head_first(g, x, h), count = j_hi - j_lo;
        float *out = dst + (size_t)before * B * D;
        for (size_t b = 0; b < B; b++)
            for (int64_t j = j_lo; j < j_hi; j++) {
                const size_t at = (b * (size_t)n + (size_t)(first + j * r - base)) * H + (size_t)h;
                memcpy(out + (b * (size_t)count + (size_t)(j - j_lo)) * D, src + at * D, D * sizeof(float));
            }
    }
}
