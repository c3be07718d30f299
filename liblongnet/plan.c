/* plan.c — the scheduler's plan: chunks of rows per device, and per level
 * the steps each device runs (DESIGN §2, The scheduler). */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "scheduler.h"

static lnet_status add_step(lnet_worker *w, const lnet_step *s)
{
    lnet_status st = lnet_grow((void **)&w->steps, &w->cap, w->n_steps, sizeof *w->steps, 16,
                               "planned steps");
    if (st)
        return st;
    w->steps[w->n_steps++] = *s;
    w->bytes_in += s->bytes_in;
    return LNET_OK;
}

static int64_t seg_end(const lnet_graph *g, int64_t w, int64_t s)
{
    return w > g->rows - s * w ? g->rows : s * w + w;
}

/* The selected rows of segment s of level node n, summed over the heads,
 * that lie in [lo, hi). */
static uint64_t selected_rows(const lnet_plan *p, const lnet_graph_node *n, int64_t s,
                              int64_t lo, int64_t hi)
{
    const lnet_graph *g = p->g;
    uint64_t rows = 0;
    for (int64_t h = 0; h < g->heads; h++) {
        int64_t first = s * n->segment + lnet_plugin_head_offset(g->offsets, h, g->heads, n->dilation);
        rows += (uint64_t)lnet_count_selected(first, n->dilation, lo, hi);
    }
    return rows;
}

static lnet_status push_transfer(lnet_plan *p, const lnet_transfer *x)
{
    lnet_status st = lnet_grow((void **)&p->x, &p->cap_x, p->n_x, sizeof *p->x, 32,
                               "planned transfers");
    if (st)
        return st;
    p->x[p->n_x++] = *x;
    return LNET_OK;
}

/* The K and V transfers of rows [lo, hi) of segment s from `src` to
 * `dst` (nothing when no row of them is selected). Adds their bytes to
 * both sides' counts; returns the bytes. */
static lnet_status add_kv_transfers(lnet_plan *p, lnet_transfer_kind kind, int src, int dst,
                                    int step_node, int64_t s, int64_t lo, int64_t hi,
                                    uint64_t *bytes)
{
    const lnet_graph *g = p->g;
    const lnet_graph_node *n = &g->nodes[step_node];
    *bytes = 0;
    uint64_t rows = kind == LNET_TRANSFER_SPARSE ? selected_rows(p, n, s, lo, hi)
                                                 : (uint64_t)(hi - lo) * (uint64_t)g->heads;
    if (rows == 0)
        return LNET_OK;
    lnet_transfer x = {0};
    x.kind = kind;
    x.src = src;
    x.dst = dst;
    x.node = step_node - 1; /* the level's EXCHANGE node comes just before it */
    x.segment_index = s;
    x.row_begin = lo;
    x.row_end = hi;
    x.rows = rows;
    x.bytes = rows * (uint64_t)g->batch * (uint64_t)g->dim * (uint64_t)g->elem;
    const lnet_tensor_name kv[2] = {LNET_TENSOR_K, LNET_TENSOR_V};
    for (int i = 0; i < 2; i++) {
        x.tensor = kv[i];
        lnet_status st = push_transfer(p, &x);
        if (st)
            return st;
    }
    *bytes = 2 * x.bytes;
    if (src >= 0)
        p->w[src].bytes_out += *bytes;
    if (!g->backward || src < 0)
        return LNET_OK;
    /* Backward: the receiver's dK and dV contributions to these rows go
     * back to their owner the same way (the reduce-scatter counterpart of
     * the sparse gather, or the ring block returned). */
    x.kind = kind == LNET_TRANSFER_BLOCK ? LNET_TRANSFER_BLOCK : LNET_TRANSFER_SPARSE;
    x.src = dst;
    x.dst = src;
    x.node = step_node + 1; /* the level's REDUCE node comes just after it */
    const lnet_tensor_name dkv[2] = {LNET_TENSOR_DK, LNET_TENSOR_DV};
    for (int i = 0; i < 2; i++) {
        x.tensor = dkv[i];
        lnet_status st = push_transfer(p, &x);
        if (st)
            return st;
    }
    p->w[dst].bytes_out += 2 * x.bytes;
    p->w[src].bytes_in += 2 * x.bytes;
    return LNET_OK;
}

/* The transfers a gathered segment of worker `self` receives: the
 * selected K/V rows of [key_lo, key_hi) outside its own chunk, from the
 * worker holding them or, outside this plan's rows, from the caller's
 * tensors. */
static lnet_status gather_transfers(lnet_plan *p, int self, lnet_step *st, int64_t key_lo,
                                    int64_t key_hi)
{
    st->xfer = p->n_x;
    st->bytes_in = 0;
    typedef struct source { int src; int64_t lo, hi; } source;
    source from[LNET_MAX_WORKERS + 2];
    int n_from = 0;
    from[n_from++] = (source){LNET_ENDPOINT_HOST, key_lo, p->lo};
    for (int c = 0; c < p->n; c++)
        if (c != self && p->w[c].begin < p->w[c].end)
            from[n_from++] = (source){c, p->w[c].begin, p->w[c].end};
    from[n_from++] = (source){LNET_ENDPOINT_HOST, p->hi, key_hi};
    for (int i = 0; i < n_from; i++) {
        int64_t lo = from[i].lo > key_lo ? from[i].lo : key_lo;
        int64_t hi = from[i].hi < key_hi ? from[i].hi : key_hi;
        if (lo >= hi)
            continue;
        uint64_t b;
        lnet_status rc = add_kv_transfers(p, LNET_TRANSFER_SPARSE, from[i].src, self, st->node,
                                          st->segment_index, lo, hi, &b);
        if (rc)
            return rc;
        st->bytes_in += b;
    }
    st->n_xfer = p->n_x - st->xfer;
    return LNET_OK;
}

/* Does segment s of this level touch every worker that has rows? */
static int spans_all(const lnet_plan *p, int64_t lo, int64_t hi)
{
    for (int c = 0; c < p->n; c++) {
        const lnet_worker *o = &p->w[c];
        if (o->begin < o->end && (o->end <= lo || o->begin >= hi))
            return 0;
    }
    return 1;
}

static lnet_status plan_spanning(lnet_plan *p, int self, int node, int64_t s)
{
    const lnet_graph *g = p->g;
    const lnet_graph_node *n = &g->nodes[node];
    lnet_worker *w = &p->w[self];
    const int64_t start = s * n->segment, end = seg_end(g, n->segment, s);
    lnet_step st = {0};
    st.node = node;
    st.segment_index = s;
    st.row_begin = start > w->q_begin ? start : w->q_begin;
    st.row_end = end < w->q_end ? end : w->q_end;
    if (st.row_begin >= st.row_end)
        return LNET_OK; /* no query of this worker in the segment */
    st.peer = -1;
    /* Causal: no key after the chunk's last query row is needed. */
    const int64_t key_hi = g->causal ? st.row_end : end;

    int ring = n->dilation == 1 &&
               (p->algorithm == LNET_ALGORITHM_RING ||
                (p->algorithm == LNET_ALGORITHM_AUTO && spans_all(p, start, end)));
    if (!ring) {
        st.kind = LNET_STEP_GATHER;
        lnet_status rc = gather_transfers(p, self, &st, start, key_hi);
        return rc ? rc : add_step(w, &st);
    }
    /* Ring: the own block first, then the others in ring order, each one
     * block of K/V rows of this segment; rows of the segment that no
     * worker of this plan holds (a failover plan covers only the failed
     * chunk) come as blocks of their own. */
    st.kind = LNET_STEP_RING;
    for (int t = 0; t <= p->n + 1; t++) {
        int64_t lo, hi;
        int c = -2;
        if (t < p->n) {
            c = (self + t) % p->n;
            if (p->w[c].begin == p->w[c].end)
                continue;
            lo = p->w[c].begin;
            hi = p->w[c].end;
        } else if (t == p->n) {
            lo = start;       /* before the plan's first row */
            hi = p->lo;
        } else {
            lo = p->hi;       /* after the plan's last row */
            hi = key_hi;
        }
        if (lo < start)
            lo = start;
        if (hi > key_hi)
            hi = key_hi;
        if (lo >= hi)
            continue;
        st.kv_begin = lo;
        st.kv_end = hi;
        st.peer = c == self ? -1 : c;
        st.xfer = p->n_x;
        st.bytes_in = 0;
        lnet_status rc = LNET_OK;
        if (c != self)
            rc = add_kv_transfers(p, LNET_TRANSFER_BLOCK, c >= 0 ? c : LNET_ENDPOINT_HOST, self,
                                  node, s, lo, hi, &st.bytes_in);
        st.n_xfer = p->n_x - st.xfer;
        if (!rc)
            rc = add_step(w, &st);
        if (rc)
            return rc;
    }
    return LNET_OK;
}

static lnet_status plan_worker(lnet_plan *p, int self)
{
    const lnet_graph *g = p->g;
    lnet_worker *w = &p->w[self];
    int initialised = 0;
    if (w->q_begin == w->q_end)
        return LNET_OK; /* K/V rows only: this worker only sends */
    for (int level = 0; level < g->n_levels; level++) {
        const int k = g->level_node[level];
        const lnet_graph_node *n = &g->nodes[k];
        const int64_t seg = n->segment;
        const int64_t s_lo = w->begin / seg, s_hi = (w->end - 1) / seg;
        /* Segments wholly inside the chunk: [in_lo, in_hi]. */
        const int64_t in_lo = w->begin % seg == 0 ? s_lo : s_lo + 1;
        const int64_t in_hi = seg_end(g, seg, s_hi) <= w->end ? s_hi : s_hi - 1;
        if (in_lo <= in_hi && seg_end(g, seg, in_hi) > w->q_begin) {
            lnet_step st = {0};
            st.kind = LNET_STEP_LOCAL;
            st.node = k;
            st.row_begin = in_lo * seg > w->q_begin ? in_lo * seg : w->q_begin;
            st.row_end = seg_end(g, seg, in_hi);
            st.kv_begin = w->begin;
            st.kv_end = w->end;
            st.peer = -1;
            /* The dense node comes first: when it covers the whole chunk it
             * initialises (O, LSE); otherwise the scheduler does. */
            st.init = n->init && st.row_begin == w->q_begin && st.row_end == w->q_end;
            initialised |= st.init;
            lnet_status rc = add_step(w, &st);
            if (rc)
                return rc;
        }
        /* Only the (at most two) segments at the chunk's edges span: the
         * inside ones are skipped in one jump, so that planning stays
         * O(spanning segments) at 10^9 tokens and beyond. */
        for (int64_t s = s_lo; s <= s_hi; s++) {
            if (s >= in_lo && s <= in_hi) {
                s = in_hi;
                continue;
            }
            lnet_status rc = plan_spanning(p, self, k, s);
            if (rc)
                return rc;
        }
    }
    w->core_init = !initialised;
    return LNET_OK;
}

lnet_status lnet_plan_build(lnet_plan *p, const lnet_context *ctx, const lnet_graph *g,
                            lnet_algorithm algorithm, const lnet_worker_spec *specs, int n,
                            int64_t lo, int64_t hi)
{
    memset(p, 0, sizeof *p);
    p->g = g;
    p->algorithm = algorithm;
    p->lo = lo;
    p->hi = hi;
    p->align = lnet_graph_level(g, 0)->segment;
    for (int k = 1; k < g->n_levels; k++)
        if (lnet_graph_level(g, k)->segment < p->align)
            p->align = lnet_graph_level(g, k)->segment;
    /* Too few aligned blocks for the devices (dense attention: one segment
     * of every row): split finer and let the spanning segments be
     * exchanged; ring attention exists for exactly this. */
    if (lnet_plugin_ceil_div(hi - lo, p->align) < n) {
        int64_t per = (hi - lo) / n;
        p->align = per >= 64 ? 64 : 1;
        p->fine = 1;
    }
    p->w = calloc((size_t)n, sizeof *p->w);
    if (!p->w)
        return lnet_fail(LNET_ERR_NOMEM, "out of memory planning %d devices", n);
    p->n = n;

    /* Chunks in proportion to the weights, on multiples of the smallest
     * segment length (so that its segments never span devices). */
    /* Weights as fractions of the largest: weights near DBL_MAX would sum
     * to infinity and make every share NaN (found by fuzz_parse). */
    double top = 0, total = 0;
    for (int i = 0; i < n; i++)
        if (specs[i].weight > top)
            top = specs[i].weight;
    if (!(top > 0))
        top = 1;
    for (int i = 0; i < n; i++)
        total += specs[i].weight / top;
    const int64_t units = lnet_plugin_ceil_div(hi - lo, p->align);
    double cum = 0;
    int64_t prev = lo;
    for (int i = 0; i < n; i++) {
        cum += specs[i].weight / top;
        const double share = cum / total;
        int64_t u = i == n - 1 || !(share < 1) ? units : (int64_t)llround((double)units * share);
        int64_t b = u > (hi - lo) / p->align ? hi : lo + u * p->align;
        if (b > hi)
            b = hi;
        if (b < prev)
            b = prev;
        lnet_worker *w = &p->w[i];
        w->device = specs[i].device;
        w->rank = specs[i].rank;
        if (w->rank + 1 > p->ranks)
            p->ranks = w->rank + 1;
        w->options = specs[i].options;
        w->weight = specs[i].weight;
        w->begin = prev;
        w->end = b;
        w->q_begin = prev > g->q_first ? prev : g->q_first;
        w->q_end = b;
        if (w->q_begin > w->q_end)
            w->q_begin = w->q_end;
        /* Another rank's device: that rank checks its own windows. */
        w->windows = w->device < 0 ||
                     (lnet_context_dev(ctx, w->device)->desc.caps & LNET_PLUGIN_CAP_WINDOWS) != 0;
        prev = b;
        /* A chunk short of the whole sequence is addressed through row
         * windows; a device without them can only take every row. */
        if (b > w->begin && (w->begin != 0 || b != g->rows || g->q_first != 0) && !w->windows) {
            const lnet_device *d = lnet_context_dev(ctx, w->device);
            lnet_plan_free(p);
            if (w->begin == 0 && b == g->rows)
                return lnet_fail(LNET_ERR_UNSUPPORTED,
                                 "device %s:%d cannot take %lld query rows against %lld K/V rows: "
                                 "its plugin does not honour row windows (LNET_PLUGIN_CAP_WINDOWS)",
                                 d->plugin->name, d->backend_index, (long long)g->q_rows,
                                 (long long)g->rows);
            return lnet_fail(LNET_ERR_UNSUPPORTED,
                             "device %s:%d cannot share a sequence with other devices: its "
                             "plugin does not honour row windows (LNET_PLUGIN_CAP_WINDOWS)",
                             d->plugin->name, d->backend_index);
        }
    }
    for (int i = 0; i < n; i++) {
        if (p->w[i].begin == p->w[i].end)
            continue;
        lnet_status rc = plan_worker(p, i);
        if (rc) {
            lnet_plan_free(p);
            return rc;
        }
    }
    return LNET_OK;
}

void lnet_plan_free(lnet_plan *p)
{
    if (!p || !p->w)
        return;
    for (int i = 0; i < p->n; i++)
        free(p->w[i].steps);
    free(p->w);
    free(p->x);
    p->w = NULL;
    p->x = NULL;
    p->n = p->n_x = p->cap_x = 0;
}

/* ------------------------------------------------------------ describe */

void lnet_text_put(text_buf *t, const char *fmt, ...)
{
    if (t->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = 1;
            return;
        }
        if (t->buf && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? 2 * t->cap : 1024) + (size_t)n;
        char *b = realloc(t->buf, cap);
        if (!b) {
            t->oom = 1;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
}

static const char *bytes_str(uint64_t b, char *buf, size_t len)
{
    if (b < 1024)
        snprintf(buf, len, "%llu B", (unsigned long long)b);
    else if (b < 1024u * 1024u)
        snprintf(buf, len, "%.1f KiB", (double)b / 1024.0);
    else if (b < 1024ull * 1024u * 1024u)
        snprintf(buf, len, "%.1f MiB", (double)b / (1024.0 * 1024.0));
    else
        snprintf(buf, len, "%.2f GiB", (double)b / (1024.0 * 1024.0 * 1024.0));
    return buf;
}

static const char *worker_name(const lnet_plan *p, const lnet_context *ctx, int i, char *buf,
                               size_t len)
{
    if (p->w[i].device < 0) {
        snprintf(buf, len, "rank %d", p->w[i].rank);
        return buf;
    }
    const lnet_device *d = lnet_context_dev(ctx, p->w[i].device);
    snprintf(buf, len, "%s:%d", d->plugin->name, d->backend_index);
    return buf;
}

/* The graph's nodes, each EXCHANGE with what the plan makes it move. */
static void describe_graph(text_buf *t, const lnet_plan *p)
{
    const lnet_graph *g = p->g;
    char a[64];
    if (g->backward)
        lnet_text_put(t, "graph: %d nodes over Q, K, V, O, LSE, dO, Delta, dQ, dK, dV (DELTA, then per level "
            "EXCHANGE, SEGMENT_ATTENTION_BACKWARD and REDUCE):\n", g->n_nodes);
    else
        lnet_text_put(t, "graph: %d nodes over Q, K, V, O, LSE (one EXCHANGE and one SEGMENT_ATTENTION per "
            "level):\n", g->n_nodes);
    for (int i = 0; i < g->n_nodes; i++) {
        const lnet_graph_node *n = &g->nodes[i];
        if (n->type == LNET_NODE_DELTA)
            lnet_text_put(t, "  n%-2d %-17s ", i, lnet_node_type_str(n->type));
        else
            lnet_text_put(t, "  n%-2d %-17s level %d (w=%lld, r=%lld): ", i, lnet_node_type_str(n->type),
                n->level, (long long)n->segment, (long long)n->dilation);
        for (int j = 0; j < n->n_in; j++)
            lnet_text_put(t, "%s%s", j ? ", " : "", lnet_tensor_name_str(n->in[j]));
        lnet_text_put(t, " -> ");
        for (int j = 0; j < n->n_out; j++)
            lnet_text_put(t, "%s%s", j ? ", " : "", lnet_tensor_name_str(n->out[j]));
        if (n->type == LNET_NODE_EXCHANGE || n->type == LNET_NODE_REDUCE) {
            int count = 0;
            uint64_t bytes = 0;
            for (int x = 0; x < p->n_x; x++) {
                count += p->x[x].node == i;
                bytes += p->x[x].node == i ? p->x[x].bytes : 0;
            }
            if (count)
                lnet_text_put(t, ": %d transfer(s), %s", count, bytes_str(bytes, a, sizeof a));
            else
                lnet_text_put(t, ": nothing to move (every segment inside one chunk)");
        } else if (n->init) {
            lnet_text_put(t, " (initialises O, LSE)");
        }
        lnet_text_put(t, "\n");
    }
}

static const char *endpoint_name(const lnet_plan *p, const lnet_context *ctx, int i, char *buf,
                                 size_t len)
{
    if (i == LNET_ENDPOINT_HOST) {
        snprintf(buf, len, "host inputs");
        return buf;
    }
    char dev[48];
    snprintf(buf, len, "w%d %s", i, worker_name(p, ctx, i, dev, sizeof dev));
    return buf;
}

/* At most this many transfers are listed one by one; the rest are summed. */
#define DESCRIBE_TRANSFERS 64

static void describe_transfers(text_buf *t, const lnet_plan *p, const lnet_context *ctx)
{
    const lnet_graph *g = p->g;
    char a[64], from[64], to[64];
    if (p->n_x == 0) {
        lnet_text_put(t, "transfers: none\n");
        return;
    }
    lnet_text_put(t, "transfers (%d, in the order the executor posts them; w<i> is the i-th device of the list):\n",
        p->n_x);
    lnet_text_put(t, "  %4s %-4s %-3s %-16s %-16s %8s %-28s %s\n", "#", "node", "of", "from", "to", "segment",
        "rows", "bytes");
    uint64_t rest = 0;
    for (int i = 0; i < p->n_x; i++) {
        const lnet_transfer *x = &p->x[i];
        if (i >= DESCRIBE_TRANSFERS) {
            rest += x->bytes;
            continue;
        }
        const lnet_graph_node *n = &g->nodes[x->node];
        char rows[64];
        if (x->kind == LNET_TRANSFER_SPARSE && n->dilation > 1)
            snprintf(rows, sizeof rows, "[%lld, %lld) 1 in %lld per head", (long long)x->row_begin,
                     (long long)x->row_end, (long long)n->dilation);
        else
            snprintf(rows, sizeof rows, "[%lld, %lld)%s", (long long)x->row_begin,
                     (long long)x->row_end, x->kind == LNET_TRANSFER_BLOCK ? " ring block" : "");
        lnet_text_put(t, "  %4d n%-3d %-3s %-16s %-16s %8lld %-28s %s\n", i, x->node,
            lnet_tensor_name_str(x->tensor), endpoint_name(p, ctx, x->src, from, sizeof from),
            endpoint_name(p, ctx, x->dst, to, sizeof to), (long long)x->segment_index, rows,
            bytes_str(x->bytes, a, sizeof a));
    }
    if (p->n_x > DESCRIBE_TRANSFERS)
        lnet_text_put(t, "  ... and %d more, %s\n", p->n_x - DESCRIBE_TRANSFERS, bytes_str(rest, a, sizeof a));
}

lnet_status lnet_plan_describe(const lnet_plan *p, const lnet_context *ctx, char **out)
{
    const lnet_graph *g = p->g;
    static const char *algos[] = {"auto", "gather", "ring"};
    text_buf t = {0};
    char a[64], b[64], name[64];
    lnet_text_put(&t, "plan: B=%lld N=%lld H=%lld D=%lld, %d level(s), %s, algorithm %s, %d device(s)\n",
        (long long)g->batch, (long long)g->rows, (long long)g->heads, (long long)g->dim,
        g->n_levels, g->causal ? "causal" : "non-causal", algos[p->algorithm], p->n);
    if (g->q_first)
        lnet_text_put(&t, "queries: %lld rows at positions [%lld, %lld) (the last of the %lld K/V rows)\n",
            (long long)g->q_rows, (long long)g->q_first, (long long)g->rows, (long long)g->rows);
    lnet_text_put(&t, "chunks (aligned to %lld rows%s):\n", (long long)p->align,
        p->fine ? "; too few segments for one per device" : ", the smallest segment length");
    /* Shares as fractions of the largest weight: weights near DBL_MAX sum
     * to infinity, and the percentages would print as "-nan%". */
    double top = 0, total = 0;
    for (int i = 0; i < p->n; i++)
        if (p->w[i].weight > top)
            top = p->w[i].weight;
    for (int i = 0; i < p->n; i++)
        total += top > 0 ? p->w[i].weight / top : 0;
    for (int i = 0; i < p->n; i++) {
        const lnet_worker *w = &p->w[i];
        const double share = total > 0 ? 100.0 * (w->weight / top) / total : 0;
        endpoint_name(p, ctx, i, name, sizeof name);
        if (w->begin == w->end)
            lnet_text_put(&t, "  %-10s weight %.3g (%.1f%%): no rows: %lld rows make only %lld block(s) of %lld, too few for this weight\n",
                name, w->weight, share, (long long)g->rows,
                (long long)lnet_plugin_ceil_div(g->rows, p->align), (long long)p->align);
        else
            lnet_text_put(&t, "  %-10s weight %.3g (%.1f%%): rows [%lld, %lld) (%lld rows)\n", name,
                w->weight, share, (long long)w->begin, (long long)w->end,
                (long long)(w->end - w->begin));
    }
    describe_graph(&t, p);
    for (int level = 0; level < g->n_levels; level++) {
        const int k = g->level_node[level];
        const lnet_graph_node *n = &g->nodes[k];
        lnet_text_put(&t, "level %d: segment %lld, dilation %lld:", n->level, (long long)n->segment,
            (long long)n->dilation);
        int spans = 0;
        for (int i = 0; i < p->n; i++)
            for (int s = 0; s < p->w[i].n_steps; s++)
                spans |= p->w[i].steps[s].node == k && p->w[i].steps[s].kind != LNET_STEP_LOCAL;
        if (!spans) {
            lnet_text_put(&t, " local on every device (no segment spans two chunks)\n");
            continue;
        }
        lnet_text_put(&t, "\n");
        for (int i = 0; i < p->n; i++) {
            const lnet_worker *w = &p->w[i];
            int local = 0, gather = 0, ring = 0, own = 0;
            uint64_t in = 0;
            for (int s = 0; s < w->n_steps; s++) {
                const lnet_step *st = &w->steps[s];
                if (st->node != k)
                    continue;
                local += st->kind == LNET_STEP_LOCAL;
                gather += st->kind == LNET_STEP_GATHER;
                ring += st->kind == LNET_STEP_RING && st->peer != -1;
                own += st->kind == LNET_STEP_RING && st->peer == -1;
                in += st->bytes_in;
            }
            if (w->begin == w->end)
                continue;
            lnet_text_put(&t, "  %-10s %s%s", endpoint_name(p, ctx, i, name, sizeof name),
                local ? "local segments" : "", local && (gather || ring) ? ", " : "");
            if (gather)
                lnet_text_put(&t, "%d spanning segment(s) gathered (sparse K/V, 1/%lld of the rows)", gather,
                    (long long)n->dilation);
            if (ring || own)
                lnet_text_put(&t, "%sring: own block and %d peer block(s)", gather ? ", " : "", ring);
            if (!gather && !ring && !own && !local)
                lnet_text_put(&t, "nothing");
            lnet_text_put(&t, "; receives %s\n", bytes_str(in, a, sizeof a));
        }
    }
    describe_transfers(&t, p, ctx);
    lnet_text_put(&t, "bytes per device (K and V rows from other chunks):\n");
    for (int i = 0; i < p->n; i++) {
        const lnet_worker *w = &p->w[i];
        lnet_text_put(&t, "  %-10s receives %s, sends %s\n", endpoint_name(p, ctx, i, name, sizeof name),
            bytes_str(w->bytes_in, a, sizeof a), bytes_str(w->bytes_out, b, sizeof b));
    }
    if (t.oom) {
        free(t.buf);
        return lnet_fail(LNET_ERR_NOMEM, "out of memory describing the plan");
    }
    *out = t.buf;
    return LNET_OK;
}
