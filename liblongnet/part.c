/* part.c — one call across the ranks of an MPI job: the ranks' workers
 * agreed into one plan (the same on every rank: the configuration, and
 * every rank's device weights gathered by a collective), laid out
 * contiguously or zigzag; this rank's rows of it; the forward and backward
 * on them; the plan as text, with the bytes between ranks per level and
 * the causal work per rank under both layouts. Rows in and out of .npy
 * files are in part_files.c. No MPI header here: ranks.h's collectives. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor.h"
#include "internal.h"
#include "part.h"
#include "ranks.h"

lnet_status lnet_layout_parse(const char *name, lnet_layout *out)
{
    char echo[64];
    if (!out)
        return lnet_fail(LNET_ERR_INVALID, "lnet_layout_parse: output pointer is NULL");
    if (name && strcmp(name, "contiguous") == 0)
        *out = LNET_LAYOUT_CONTIGUOUS;
    else if (name && strcmp(name, "zigzag") == 0)
        *out = LNET_LAYOUT_ZIGZAG;
    else
        return lnet_fail(LNET_ERR_INVALID, "layout '%s' is none of contiguous, zigzag",
                         name ? lnet_echo(name, echo) : "(null)");
    return LNET_OK;
}

/* The plan's workers in sequence order for a layout: every rank's
 * devices, rank by rank (contiguous), or 2R pieces with rank i holding
 * pieces i and 2R-1-i (zigzag). */
static lnet_status global_specs(const lnet_part *p, lnet_layout layout, lnet_worker_spec *specs,
                                int *n)
{
    const int R = p->ranks, pieces = layout == LNET_LAYOUT_ZIGZAG ? 2 * R : R;
    *n = 0;
    for (int piece = 0; piece < pieces; piece++) {
        const int r = piece < R ? piece : 2 * R - 1 - piece;
        for (int j = 0; j < p->count[r]; j++) {
            if (*n == LNET_MAX_WORKERS)
                return lnet_fail(LNET_ERR_UNSUPPORTED, "%d ranks with these device lists make "
                                 "more than %d workers%s", R, LNET_MAX_WORKERS,
                                 layout == LNET_LAYOUT_ZIGZAG ? " (zigzag counts each twice)" : "");
            lnet_worker_spec *s = &specs[(*n)++];
            memset(s, 0, sizeof *s);
            s->rank = r;
            s->weight = p->weight[r * LNET_MAX_WORKERS + j];
            s->device = r == p->me ? p->local.items[j].device : -1;
            if (r == p->me)
                memcpy(s->options, p->local.items[j].options, sizeof s->options);
        }
    }
    return LNET_OK;
}

/* This rank's rows of a plan: its workers' chunks, adjacent ones merged. */
static void rank_rows(const lnet_plan *pl, int me, host_rows *rows)
{
    memset(rows, 0, sizeof *rows);
    for (int i = 0; i < pl->n; i++) {
        const lnet_worker *w = &pl->w[i];
        if (w->rank != me || w->begin == w->end)
            continue;
        if (rows->n > 0 && rows->end[rows->n - 1] == w->begin)
            rows->end[rows->n - 1] = w->end;
        else {
            rows->begin[rows->n] = w->begin;
            rows->end[rows->n++] = w->end;
        }
        rows->total += w->end - w->begin;
    }
}

lnet_status lnet_part_create(lnet_context *ctx, const lnet_config *cfg, lnet_mpi *mpi,
                             int64_t batch, int64_t rows, int64_t heads, int64_t dim,
                             lnet_layout layout, const lnet_run_options *opts, lnet_part **out)
{
    if (!out)
        return lnet_fail(LNET_ERR_INVALID, "lnet_part_create: output pointer is NULL");
    *out = NULL;
    if (!ctx || !cfg || !mpi)
        return lnet_fail(LNET_ERR_INVALID, "lnet_part_create: %s is NULL",
                         !ctx ? "context" : !cfg ? "config" : "the MPI handle");
    lnet_part *p = calloc(1, sizeof *p);
    if (!p)
        return lnet_fail(LNET_ERR_NOMEM, "out of memory for a part");
    p->ctx = ctx;
    p->mpi = mpi;
    p->me = lnet_mpi_rank(mpi);
    p->ranks = lnet_mpi_size(mpi);
    p->layout = layout;
    int64_t shape[4] = {batch, rows, heads, dim};
    /* Every rank checks on its own, then all agree, so that a rank that
     * cannot go on never leaves the others waiting in a collective. */
    lnet_status st = layout == LNET_LAYOUT_CONTIGUOUS || layout == LNET_LAYOUT_ZIGZAG
                         ? LNET_OK
                         : lnet_fail(LNET_ERR_INVALID, "layout %d is none of contiguous (0), zigzag (1)",
                                     (int)layout);
    if (!st && p->ranks > LNET_MAX_WORKERS)
        st = lnet_fail(LNET_ERR_UNSUPPORTED, "%d ranks: at most %d", p->ranks, LNET_MAX_WORKERS);
    if (!st)
        st = lnet_read_run_options(opts, &p->o);
    if (!st)
        st = lnet_shape_bytes(4, shape, NULL, NULL);
    if (!st)
        st = lnet_graph_build(cfg, batch, rows, heads, dim, &p->g);
    if (!st) {
        p->g.q_rows = rows;
        p->g.q_first = 0;
        p->g.dtype = LNET_DTYPE_F32;
        p->g.elem = sizeof(float);
        st = lnet_devices_for(ctx, &p->g, &p->o, &p->local);
    }
    double mine[LNET_MAX_WORKERS] = {0};
    for (int i = 0; !st && i < p->local.n; i++)
        mine[i] = p->local.items[i].weight;
    if ((st = lnet_ranks_agree(mpi, st, 0, "choosing its devices"))) {
        free(p);
        return st;
    }
    /* The weights of every rank's devices, calibrated on each rank. */
    p->count = calloc((size_t)p->ranks, sizeof *p->count);
    p->weight = calloc((size_t)p->ranks * LNET_MAX_WORKERS, sizeof *p->weight);
    if (!p->count || !p->weight)
        st = lnet_fail(LNET_ERR_NOMEM, "out of memory for %d ranks' weights", p->ranks);
    if ((st = lnet_ranks_agree(mpi, st, 0, "gathering the weights")) ||
        (st = lnet_ranks_allgather_int(mpi, &p->local.n, 1, p->count)) ||
        (st = lnet_ranks_allgather_double(mpi, mine, LNET_MAX_WORKERS, p->weight))) {
        lnet_part_free(p);
        return st;
    }
    lnet_plan pl;
    if (!(st = global_specs(p, layout, p->specs, &p->n)) &&
        !(st = lnet_plan_build(&pl, ctx, &p->g, p->o.algorithm, p->specs, p->n, 0, rows))) {
        rank_rows(&pl, p->me, &p->rows);
        lnet_plan_free(&pl);
    }
    /* The plan is the same on every rank: if one refuses it, all do. */
    if ((st = lnet_ranks_agree(mpi, st, 0, "planning"))) {
        lnet_part_free(p);
        return st;
    }
    *out = p;
    return LNET_OK;
}

int lnet_part_ranges(const lnet_part *p)
{
    return p ? p->rows.n : 0;
}

void lnet_part_range(const lnet_part *p, int i, int64_t *begin, int64_t *end)
{
    int ok = p && i >= 0 && i < p->rows.n;
    if (begin)
        *begin = ok ? p->rows.begin[i] : 0;
    if (end)
        *end = ok ? p->rows.end[i] : 0;
}

int64_t lnet_part_rows(const lnet_part *p)
{
    return p ? p->rows.total : 0;
}

void lnet_part_free(lnet_part *p)
{
    if (!p)
        return;
    free(p->count);
    free(p->weight);
    free(p);
}

/* A tensor of this rank's rows: dense float32 [B, n, H, D] (or, lse,
 * [B, H, n]). */
static lnet_status check_local(const lnet_part *p, const char *name, const lnet_tensor *t, int lse)
{
    const lnet_graph *g = &p->g;
    const int64_t n = p->rows.total;
    int64_t want[4] = {g->batch, n, g->heads, g->dim};
    if (lse) {
        want[1] = g->heads;
        want[2] = n;
    }
    const int nd = lse ? 3 : 4;
    char a[128], b[128];
    if (!t)
        return lnet_fail(LNET_ERR_INVALID, "part: %s is NULL", name);
    int same = t->ndim == nd;
    for (int d = 0; same && d < nd; d++)
        same = t->shape[d] == want[d];
    if (!same)
        return lnet_fail(LNET_ERR_INVALID, "part: %s has shape %s; this rank's rows need %s", name,
                         lnet_shape_str(t->ndim, t->shape, a, sizeof a), lnet_shape_str(nd, want, b, sizeof b));
    if (!t->data)
        return lnet_fail(LNET_ERR_INVALID, "part: %s is not a dense float32 tensor", name);
    return LNET_OK;
}

lnet_status lnet_part_forward(lnet_part *p, const lnet_tensor *q, const lnet_tensor *k,
                              const lnet_tensor *v, lnet_tensor *out, lnet_tensor *lse)
{
    if (!p)
        return lnet_fail(LNET_ERR_INVALID, "lnet_part_forward: the part is NULL");
    const lnet_tensor *in[4] = {q, k, v, out};
    const char *names[4] = {"q", "k", "v", "out"};
    lnet_status st = LNET_OK;
    for (int i = 0; i < 4 && !st; i++)
        st = check_local(p, names[i], in[i], 0);
    lnet_tensor *own_lse = NULL;
    int64_t ls[3] = {p->g.batch, p->g.heads, p->rows.total};
    if (!st && lse)
        st = check_local(p, "lse", lse, 1);
    else if (!st)
        st = lnet_tensor_create(3, ls, &own_lse); /* the running LSE folds the levels */
    if ((st = lnet_ranks_agree(p->mpi, st, 0, "checking its tensors"))) {
        lnet_tensor_free(own_lse);
        return st;
    }
    host_tensors t = {&p->rows, q->data, k->data, v->data, out->data,
                      lse ? lse->data : own_lse->data, NULL, NULL, NULL, NULL};
    st = lnet_sched_run_ranks(p->ctx, p->mpi, &p->g, p->specs, p->n, p->o.algorithm, p->o.kernel, &t);
    lnet_tensor_free(own_lse);
    return st;
}

lnet_status lnet_part_backward(lnet_part *p, const lnet_tensor *q, const lnet_tensor *k,
                               const lnet_tensor *v, const lnet_tensor *out,
                               const lnet_tensor *lse, const lnet_tensor *dout, lnet_tensor *dq,
                               lnet_tensor *dk, lnet_tensor *dv)
{
    if (!p)
        return lnet_fail(LNET_ERR_INVALID, "lnet_part_backward: the part is NULL");
    const lnet_tensor *in[8] = {q, k, v, out, dout, dq, dk, dv};
    const char *names[8] = {"q", "k", "v", "out", "dout", "dq", "dk", "dv"};
    lnet_status st = LNET_OK;
    for (int i = 0; i < 8 && !st; i++)
        st = check_local(p, names[i], in[i], 0);
    if (!st)
        st = check_local(p, "lse", lse, 1);
    if ((st = lnet_ranks_agree(p->mpi, st, 0, "checking its tensors")))
        return st;
    lnet_graph gb = p->g;
    lnet_graph_backward(&gb);
    host_tensors t = {&p->rows, q->data, k->data, v->data, out->data, lse->data,
                      dout->data, dq->data, dk->data, dv->data};
    return lnet_sched_run_ranks(p->ctx, p->mpi, &gb, p->specs, p->n, p->o.algorithm, p->o.kernel, &t);
}

/* ------------------------------------------------------------- explain */

/* Query-key pairs a range of rows computes, summed over the levels: per
 * level a row is selected by about H/r heads and attends the selected
 * keys of its segment (causal: those before it). A model of work, for the
 * balance of layouts, not a count of FLOPs. */
static double causal_work(const lnet_graph *g, int64_t a, int64_t b)
{
    double work = 0;
    for (int l = 0; l < g->n_levels; l++) {
        const lnet_graph_node *n = lnet_graph_level(g, l);
        const int64_t w = n->segment;
        const double r = (double)n->dilation, heads = (double)g->heads / r;
        for (int64_t s = a / w; s * w < b; s++) {
            const int64_t s0 = s * w, s1 = s0 + w < g->rows ? s0 + w : g->rows;
            const int64_t lo = a > s0 ? a : s0, hi = b < s1 ? b : s1;
            if (lo >= hi)
                continue;
            const double cnt = (double)(hi - lo);
            if (!g->causal) {
                work += heads * cnt * (double)(s1 - s0) / r;
                continue;
            }
            const double x0 = (double)(lo - s0), x1 = (double)(hi - s0);
            work += heads * (cnt + (x1 * (x1 - 1) - x0 * (x0 - 1)) / 2 / r);
        }
    }
    return work;
}

static lnet_status describe_balance(const lnet_part *p, text_buf *t)
{
    static const char *names[2] = {"contiguous", "zigzag"};
    lnet_text_put(t, "work per rank (query-key pairs, %s; the layout in use: %s):\n",
                  p->g.causal ? "causal" : "non-causal", names[p->layout]);
    for (int layout = 0; layout < 2; layout++) {
        lnet_worker_spec specs[LNET_MAX_WORKERS];
        int n;
        lnet_plan pl;
        lnet_status st = global_specs(p, (lnet_layout)layout, specs, &n);
        if (st)
            continue; /* too many workers for this layout: nothing to compare */
        if ((st = lnet_plan_build(&pl, p->ctx, &p->g, p->o.algorithm, specs, n, 0, p->g.rows)))
            return st;
        double *work = calloc((size_t)p->ranks, sizeof *work), top = 0, sum = 0;
        if (!work) {
            lnet_plan_free(&pl);
            return lnet_fail(LNET_ERR_NOMEM, "out of memory describing the balance");
        }
        for (int i = 0; i < pl.n; i++)
            work[pl.w[i].rank] += causal_work(&p->g, pl.w[i].begin, pl.w[i].end);
        lnet_text_put(t, "  %-10s", names[layout]);
        for (int r = 0; r < p->ranks; r++) {
            lnet_text_put(t, " rank %d %.4g;", r, work[r]);
            top = work[r] > top ? work[r] : top;
            sum += work[r];
        }
        lnet_text_put(t, " imbalance (max / mean) %.3f\n", sum > 0 ? top * p->ranks / sum : 1.0);
        free(work);
        lnet_plan_free(&pl);
    }
    return LNET_OK;
}

/* Bytes between ranks per rank and level: a transfer within a rank moves
 * no byte over MPI. Exact counts, for tests to compare. */
static lnet_status describe_rank_bytes(const lnet_part *p, const lnet_plan *pl, text_buf *t)
{
    const lnet_graph *g = pl->g;
    const size_t cells = (size_t)p->ranks * (size_t)g->n_levels;
    uint64_t *sent = calloc(cells + 1, sizeof *sent), *recv = calloc(cells + 1, sizeof *recv);
    if (!sent || !recv) {
        free(sent);
        free(recv);
        return lnet_fail(LNET_ERR_NOMEM, "out of memory describing %d ranks", p->ranks);
    }
    for (int i = 0; i < pl->n_x; i++) {
        const lnet_transfer *x = &pl->x[i];
        const int rs = pl->w[x->src].rank, rd = pl->w[x->dst].rank;
        if (rs == rd)
            continue;
        const int level = g->nodes[x->node].level;
        sent[(size_t)rs * (size_t)g->n_levels + (size_t)level] += x->bytes;
        recv[(size_t)rd * (size_t)g->n_levels + (size_t)level] += x->bytes;
    }
    lnet_text_put(t, "bytes between ranks (MPI messages; K, V%s), per rank and level:\n",
                  g->backward ? " and the dK, dV sent back" : "");
    for (int r = 0; r < p->ranks; r++) {
        uint64_t ts = 0, tr = 0;
        for (int l = 0; l < g->n_levels; l++) {
            const size_t c = (size_t)r * (size_t)g->n_levels + (size_t)l;
            const lnet_graph_node *n = lnet_graph_level(g, l);
            lnet_text_put(t, "  rank %d level %d (w=%lld, r=%lld): sends %llu B, receives %llu B\n", r,
                          l, (long long)n->segment, (long long)n->dilation,
                          (unsigned long long)sent[c], (unsigned long long)recv[c]);
            ts += sent[c];
            tr += recv[c];
        }
        lnet_text_put(t, "  rank %d total: sends %llu B, receives %llu B\n", r,
                      (unsigned long long)ts, (unsigned long long)tr);
    }
    free(sent);
    free(recv);
    return LNET_OK;
}

lnet_status lnet_part_explain(const lnet_part *p, int backward, char **text)
{
    if (!p || !text)
        return lnet_fail(LNET_ERR_INVALID, "lnet_part_explain: %s is NULL", !p ? "the part" : "text");
    *text = NULL;
    lnet_graph g = p->g;
    if (backward)
        lnet_graph_backward(&g);
    lnet_plan pl;
    lnet_status st = lnet_plan_build(&pl, p->ctx, &g, p->o.algorithm, p->specs, p->n, 0, g.rows);
    if (st)
        return st;
    char *plan = NULL;
    text_buf t = {0};
    if (!(st = lnet_plan_describe(&pl, p->ctx, &plan))) {
        lnet_text_put(&t, "ranks: %d, layout %s; this is rank %d, holding", p->ranks,
                      p->layout == LNET_LAYOUT_ZIGZAG ? "zigzag" : "contiguous", p->me);
        for (int i = 0; i < p->rows.n; i++)
            lnet_text_put(&t, " [%lld, %lld)", (long long)p->rows.begin[i], (long long)p->rows.end[i]);
        lnet_text_put(&t, "\n%s", plan);
        st = describe_rank_bytes(p, &pl, &t);
    }
    if (!st)
        st = describe_balance(p, &t);
    lnet_free(plan);
    lnet_plan_free(&pl);
    if (!st && t.oom)
        st = lnet_fail(LNET_ERR_NOMEM, "out of memory describing the plan");
    if (st) {
        free(t.buf);
        return st;
    }
    *text = t.buf;
    return LNET_OK;
}
