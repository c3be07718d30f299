/* attention.c — lnet_attention_forward and lnet_attention_explain: validate
 * the call, build the graph, choose the devices and hand them to the
 * scheduler. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "graph.h"
#include "internal.h"
#include "scheduler.h"

static int same_shape(const lnet_tensor *a, const lnet_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

static lnet_status check_inputs(const lnet_tensor *q, const lnet_tensor *k,
                                const lnet_tensor *v, const lnet_tensor *out,
                                const lnet_tensor *lse)
{
    char a[128], b[128];
    if (!q || !k || !v || !out)
        return lnet_fail(LNET_ERR_INVALID, "attention: %s is NULL",
                         !q ? "q" : !k ? "k" : !v ? "v" : "out");
    if (q->ndim != 4)
        return lnet_fail(LNET_ERR_INVALID, "attention: q has shape %s; need 4 dimensions [B, N, H, D]",
                         lnet_shape_str(q->ndim, q->shape, a, sizeof a));
    /* K and V: one shape. Q and O: one shape, the same B, H, D as K, and
     * at most as many rows (the queries are the last positions of the
     * sequence: cross-attention's shorter Q, decoding's one row). */
    const struct { const char *name; const lnet_tensor *t, *like; } pairs[] = {
        {"v", v, k}, {"out", out, q}};
    for (int i = 0; i < 2; i++)
        if (!same_shape(pairs[i].like, pairs[i].t))
            return lnet_fail(LNET_ERR_INVALID, "attention: %s has shape %s but %s has shape %s",
                             pairs[i].name,
                             lnet_shape_str(pairs[i].t->ndim, pairs[i].t->shape, a, sizeof a),
                             i == 0 ? "k" : "q",
                             lnet_shape_str(pairs[i].like->ndim, pairs[i].like->shape, b, sizeof b));
    if (k->ndim != 4 || k->shape[0] != q->shape[0] || k->shape[2] != q->shape[2] ||
        k->shape[3] != q->shape[3])
        return lnet_fail(LNET_ERR_INVALID, "attention: k has shape %s but q has shape %s: B, H "
                         "and D must agree", lnet_shape_str(k->ndim, k->shape, a, sizeof a),
                         lnet_shape_str(q->ndim, q->shape, b, sizeof b));
    if (q->shape[1] > k->shape[1])
        return lnet_fail(LNET_ERR_INVALID, "attention: q has %lld rows but k and v only %lld: "
                         "the queries are the last rows of the K/V sequence, so Q may have at "
                         "most as many", (long long)q->shape[1], (long long)k->shape[1]);
    const struct { const char *name; const lnet_tensor *t; } all[] = {{"k", k}, {"v", v}, {"out", out}};
    for (int i = 0; i < 3; i++)
        if (all[i].t->dtype != q->dtype)
            return lnet_fail(LNET_ERR_INVALID, "attention: %s is %s but q is %s: one element type "
                             "for Q, K, V and O", all[i].name, lnet_dtype_name(all[i].t->dtype),
                             lnet_dtype_name(q->dtype));
    if (!lnet_tensor_view_unaliased(out) || (lse && !lnet_tensor_view_unaliased(lse)))
        return lnet_fail(LNET_ERR_INVALID, "attention: the %s view's strides make elements share "
                         "a place; an output needs one place per element",
                         !lnet_tensor_view_unaliased(out) ? "out" : "lse");
    if (lse && lse->dtype != LNET_DTYPE_F32)
        return lnet_fail(LNET_ERR_INVALID, "attention: lse is %s; the log-sum-exp is float32",
                         lnet_dtype_name(lse->dtype));
    if (lse) {
        int64_t want[3] = {q->shape[0], q->shape[2], q->shape[1]};
        if (lse->ndim != 3 || lse->shape[0] != want[0] || lse->shape[1] != want[1] ||
            lse->shape[2] != want[2])
            return lnet_fail(LNET_ERR_INVALID, "attention: lse has shape %s; need [B, H, N] = %s",
                             lnet_shape_str(lse->ndim, lse->shape, a, sizeof a),
                             lnet_shape_str(3, want, b, sizeof b));
    }
    return LNET_OK;
}

/* Copies and checks the caller's options (NULL: defaults). */
lnet_status lnet_read_run_options(const lnet_run_options *opts, lnet_run_options *o)
{
    memset(o, 0, sizeof *o);
    if (opts) {
        if (opts->size == 0 || opts->size > sizeof *o)
            return lnet_fail(LNET_ERR_INVALID,
                             "lnet_run_options.size is %zu; set it to sizeof(lnet_run_options)",
                             opts->size);
        memcpy(o, opts, opts->size);
    }
    if (!o->device)
        o->device = "cpu";
    if (o->algorithm != LNET_ALGORITHM_AUTO && o->algorithm != LNET_ALGORITHM_GATHER &&
        o->algorithm != LNET_ALGORITHM_RING)
        return lnet_fail(LNET_ERR_INVALID, "algorithm %d is none of auto (0), gather (1), ring (2)",
                         (int)o->algorithm);
    return LNET_OK;
}

/* The devices of the options, with weights (calibrated if not given). */
lnet_status lnet_devices_for(lnet_context *ctx, const lnet_graph *g, const lnet_run_options *o,
                               lnet_devlist *list)
{
    lnet_status st = lnet_devlist_parse(ctx, o->device, list);
    if (!st)
        st = lnet_devlist_place(ctx, g, o->kernel, list);
    if (!st)
        st = lnet_calibrate(ctx, g, o->kernel, list);
    return st;
}

/* The scheduler computes on dense float32 rows: views among the inputs
 * are made dense here, once, and outputs that are views are computed
 * densely and written back once at the end (nothing in between reads a
 * caller's view). Dense float32 tensors pass through without a copy. */
static lnet_status run_dense(lnet_context *ctx, const lnet_graph *g, const lnet_devlist *list,
                             const lnet_run_options *o, const lnet_tensor *q,
                             const lnet_tensor *k, const lnet_tensor *v, lnet_tensor *out,
                             lnet_tensor *lse)
{
    const lnet_tensor *in[3] = {q, k, v};
    lnet_tensor *dense[3] = {NULL, NULL, NULL}, *dout = NULL, *dlse = NULL;
    int owned[3] = {0, 0, 0};
    lnet_status st = LNET_OK;
    for (int i = 0; i < 3 && !st; i++)
        st = lnet_tensor_densify(in[i], &dense[i], &owned[i]);
    /* An output that is a view is computed into a dense tensor first. */
    if (!st)
        st = out->data ? LNET_OK : lnet_tensor_create(out->ndim, out->shape, &dout);
    /* The running LSE is needed to fold levels even when the caller does
     * not want it. */
    int64_t lse_shape[3] = {g->batch, g->heads, g->q_rows};
    if (!st && (!lse || !lse->data))
        st = lnet_tensor_create(3, lse_shape, &dlse);
    if (!st)
        st = lnet_sched_forward(ctx, g, list, o->algorithm, o->kernel, dense[0]->data,
                                dense[1]->data, dense[2]->data, dout ? dout->data : out->data,
                                dlse ? dlse->data : lse->data);
    if (!st && dout)
        lnet_tensor_scatter(out, dout);
    if (!st && dlse && lse)
        lnet_tensor_scatter(lse, dlse);
    for (int i = 0; i < 3; i++)
        if (owned[i])
            lnet_tensor_free(dense[i]);
    lnet_tensor_free(dout);
    lnet_tensor_free(dlse);
    return st;
}

lnet_status lnet_attention_forward(lnet_context *ctx, const lnet_config *cfg,
                                   const lnet_tensor *q, const lnet_tensor *k,
                                   const lnet_tensor *v, lnet_tensor *out, lnet_tensor *lse,
                                   const lnet_run_options *opts)
{
    lnet_run_options o;
    if (!ctx || !cfg)
        return lnet_fail(LNET_ERR_INVALID, "attention: %s is NULL", !ctx ? "context" : "config");
    lnet_status st = lnet_read_run_options(opts, &o);
    if (st)
        return st;
    st = check_inputs(q, k, v, out, lse);
    if (st)
        return st;
    lnet_graph g;
    st = lnet_graph_build(cfg, q->shape[0], k->shape[1], q->shape[2], q->shape[3], &g);
    if (st)
        return st;
    g.q_rows = q->shape[1];
    g.q_first = k->shape[1] - q->shape[1];
    g.dtype = q->dtype;
    g.elem = lnet_dtype_size(q->dtype);
    lnet_devlist list;
    st = lnet_devices_for(ctx, &g, &o, &list);
    if (st)
        return st;
    return run_dense(ctx, &g, &list, &o, q, k, v, out, lse);
}

/* Checks the backward's tensors beyond what check_inputs does for the
 * forward's: dout and dq of q's shape, dk and dv of k's, outputs whose
 * views give each element one place, out and lse both given or neither. */
static lnet_status check_backward(const lnet_tensor *q, const lnet_tensor *k, const lnet_tensor *out,
                                  const lnet_tensor *lse, const lnet_tensor *dout, lnet_tensor *dq,
                                  lnet_tensor *dk, lnet_tensor *dv)
{
    char a[128], b[128];
    if (!dout || !dq || !dk || !dv)
        return lnet_fail(LNET_ERR_INVALID, "attention backward: %s is NULL",
                         !dout ? "dout" : !dq ? "dq" : !dk ? "dk" : "dv");
    if (!out != !lse)
        return lnet_fail(LNET_ERR_INVALID, "attention backward: %s is NULL but %s is not; pass "
                         "both of the forward's outputs, or neither to run the forward first",
                         !out ? "out" : "lse", !out ? "lse" : "out");
    const struct { const char *name; const lnet_tensor *t, *like; const char *like_name; } s[] = {
        {"dout", dout, q, "q"}, {"dq", dq, q, "q"}, {"dk", dk, k, "k"}, {"dv", dv, k, "k"}};
    for (int i = 0; i < 4; i++) {
        if (!same_shape(s[i].t, s[i].like))
            return lnet_fail(LNET_ERR_INVALID, "attention backward: %s has shape %s but %s has "
                             "shape %s", s[i].name, lnet_shape_str(s[i].t->ndim, s[i].t->shape, a, sizeof a),
                             s[i].like_name, lnet_shape_str(s[i].like->ndim, s[i].like->shape, b, sizeof b));
        if (s[i].t->dtype != q->dtype)
            return lnet_fail(LNET_ERR_INVALID, "attention backward: %s is %s but q is %s",
                             s[i].name, lnet_dtype_name(s[i].t->dtype), lnet_dtype_name(q->dtype));
        if (i > 0 && !lnet_tensor_view_unaliased(s[i].t))
            return lnet_fail(LNET_ERR_INVALID, "attention backward: the %s view's strides make "
                             "elements share a place", s[i].name);
    }
    (void)out;
    return LNET_OK;
}

lnet_status lnet_attention_backward(lnet_context *ctx, const lnet_config *cfg,
                                    const lnet_tensor *q, const lnet_tensor *k,
                                    const lnet_tensor *v, const lnet_tensor *out,
                                    const lnet_tensor *lse, const lnet_tensor *dout,
                                    lnet_tensor *dq, lnet_tensor *dk, lnet_tensor *dv,
                                    const lnet_run_options *opts)
{
    lnet_run_options o;
    if (!ctx || !cfg)
        return lnet_fail(LNET_ERR_INVALID, "attention backward: %s is NULL", !ctx ? "context" : "config");
    lnet_status st = lnet_read_run_options(opts, &o);
    if (!st && (!dout || !dq || !dk || !dv))
        st = lnet_fail(LNET_ERR_INVALID, "attention backward: %s is NULL",
                       !dout ? "dout" : !dq ? "dq" : !dk ? "dk" : "dv");
    if (!st)
        st = check_inputs(q, k, v, out ? out : dout, lse);
    if (!st)
        st = check_backward(q, k, out, lse, dout, dq, dk, dv);
    if (st)
        return st;
    lnet_graph g;
    if ((st = lnet_graph_build(cfg, q->shape[0], k->shape[1], q->shape[2], q->shape[3], &g)))
        return st;
    g.q_rows = q->shape[1];
    g.q_first = k->shape[1] - q->shape[1];
    g.dtype = q->dtype;
    g.elem = lnet_dtype_size(q->dtype);
    lnet_graph gb = g;
    lnet_graph_backward(&gb);
    /* Devices: every one must have a backward; weights are measured on
     * the forward, a fair proxy for a device's share. */
    lnet_devlist list;
    if ((st = lnet_devlist_parse(ctx, o.device, &list)) ||
        (st = lnet_devlist_place(ctx, &gb, o.kernel, &list)) ||
        (st = lnet_calibrate(ctx, &g, o.kernel, &list)))
        return st;
    /* The forward's outputs, when the caller did not keep them. */
    lnet_tensor *fo = NULL, *fl = NULL;
    if (!out) {
        int64_t ls[3] = {g.batch, g.heads, g.q_rows};
        if ((st = lnet_tensor_create(q->ndim, q->shape, &fo)) || (st = lnet_tensor_create(3, ls, &fl)) ||
            (st = run_dense(ctx, &g, &list, &o, q, k, v, fo, fl)))
            goto done;
        out = fo;
        lse = fl;
    }
    /* Dense float32 rows in, as the forward does; outputs that are views
     * computed densely and written back once. */
    const lnet_tensor *in[6] = {q, k, v, out, lse, dout};
    lnet_tensor *dense[6] = {NULL}, *dres[3] = {NULL}, *res[3] = {dq, dk, dv};
    int owned[6] = {0};
    for (int i = 0; i < 6 && !st; i++)
        st = lnet_tensor_densify(in[i], &dense[i], &owned[i]);
    for (int i = 0; i < 3 && !st; i++)
        if (!res[i]->data)
            st = lnet_tensor_create(res[i]->ndim, res[i]->shape, &dres[i]);
    if (!st)
        st = lnet_sched_backward(ctx, &gb, &list, o.algorithm, o.kernel, dense[0]->data,
                                 dense[1]->data, dense[2]->data, dense[3]->data, dense[4]->data,
                                 dense[5]->data, dres[0] ? dres[0]->data : dq->data,
                                 dres[1] ? dres[1]->data : dk->data, dres[2] ? dres[2]->data : dv->data);
    for (int i = 0; i < 3; i++) {
        if (!st && dres[i])
            lnet_tensor_scatter(res[i], dres[i]);
        lnet_tensor_free(dres[i]);
    }
    for (int i = 0; i < 6; i++)
        if (owned[i])
            lnet_tensor_free(dense[i]);
done:
    lnet_tensor_free(fo);
    lnet_tensor_free(fl);
    return st;
}

static lnet_status explain(lnet_context *ctx, const lnet_config *cfg, int64_t batch, int64_t q_rows,
                           int64_t kv_rows, int64_t heads, int64_t dim, const lnet_run_options *opts,
                           int backward, char **text)
{
    lnet_run_options o;
    if (!ctx || !cfg || !text)
        return lnet_fail(LNET_ERR_INVALID, "explain: %s is NULL",
                         !ctx ? "context" : !cfg ? "config" : "text");
    *text = NULL;
    lnet_status st = lnet_read_run_options(opts, &o);
    if (st)
        return st;
    int64_t shape[4] = {batch, kv_rows, heads, dim};
    st = lnet_shape_bytes(4, shape, NULL, NULL);
    if (st)
        return st;
    if (q_rows < 1 || q_rows > kv_rows)
        return lnet_fail(LNET_ERR_INVALID, "explain: %lld query rows against %lld K/V rows; "
                         "need 1 to %lld", (long long)q_rows, (long long)kv_rows, (long long)kv_rows);
    lnet_graph g;
    st = lnet_graph_build(cfg, batch, kv_rows, heads, dim, &g);
    if (st)
        return st;
    g.q_rows = q_rows;
    g.q_first = kv_rows - q_rows;
    lnet_graph gb = g;
    if (backward)
        lnet_graph_backward(&gb);
    lnet_devlist list;
    if ((st = lnet_devlist_parse(ctx, o.device, &list)) ||
        (st = lnet_devlist_place(ctx, &gb, o.kernel, &list)) ||
        (st = lnet_calibrate(ctx, &g, o.kernel, &list)))
        return st;
    lnet_plan p;
    st = lnet_plan_build(&p, ctx, &gb, o.algorithm, list.items, list.n, 0, kv_rows);
    if (st)
        return st;
    st = lnet_plan_describe(&p, ctx, text);
    lnet_plan_free(&p);
    return st;
}

lnet_status lnet_attention_explain_rows(lnet_context *ctx, const lnet_config *cfg, int64_t batch,
                                        int64_t q_rows, int64_t kv_rows, int64_t heads, int64_t dim,
                                        const lnet_run_options *opts, char **text)
{
    return explain(ctx, cfg, batch, q_rows, kv_rows, heads, dim, opts, 0, text);
}

lnet_status lnet_attention_explain_backward(lnet_context *ctx, const lnet_config *cfg,
                                            int64_t batch, int64_t q_rows, int64_t kv_rows,
                                            int64_t heads, int64_t dim,
                                            const lnet_run_options *opts, char **text)
{
    return explain(ctx, cfg, batch, q_rows, kv_rows, heads, dim, opts, 1, text);
}

lnet_status lnet_attention_explain(lnet_context *ctx, const lnet_config *cfg, int64_t batch,
                                   int64_t rows, int64_t heads, int64_t dim,
                                   const lnet_run_options *opts, char **text)
{
    return explain(ctx, cfg, batch, rows, rows, heads, dim, opts, 0, text);
}

void lnet_free(void *p)
{
    free(p);
}
