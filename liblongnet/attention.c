/* attention.c — lnet_attention_forward: validate, pick the device, move the
 * tensors to it, run the graph, bring the results back. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "graph.h"
#include "internal.h"

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
    const struct { const char *name; const lnet_tensor *t; } others[] = {{"k", k}, {"v", v}, {"out", out}};
    for (int i = 0; i < 3; i++)
        if (!same_shape(q, others[i].t))
            return lnet_fail(LNET_ERR_INVALID, "attention: %s has shape %s but q has shape %s",
                             others[i].name,
                             lnet_shape_str(others[i].t->ndim, others[i].t->shape, a, sizeof a),
                             lnet_shape_str(q->ndim, q->shape, b, sizeof b));
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

/* A tensor's image on a device: the host memory itself where the backend
 * can use it, else a device buffer. */
typedef struct placed {
    void *buf;
    int wrapped;
} placed;

static lnet_status place(lnet_device *dev, void *host, size_t bytes, int upload, placed *p)
{
    const lnet_plugin *pl = dev->plugin;
    int rc;
    p->buf = NULL;
    p->wrapped = 0;
    if (pl->buffer_wrap_host) {
        rc = pl->buffer_wrap_host(dev->handle, host, bytes, &p->buf);
        if (rc == 0) {
            p->wrapped = 1;
            return LNET_OK;
        }
    }
    rc = pl->buffer_alloc(dev->handle, bytes, &p->buf);
    if (rc != 0) {
        p->buf = NULL;
        return lnet_device_fail(dev, rc, "buffer_alloc");
    }
    if (upload) {
        rc = pl->buffer_write(dev->handle, p->buf, 0, host, bytes);
        if (rc != 0)
            return lnet_device_fail(dev, rc, "buffer_write");
    }
    return LNET_OK;
}

static lnet_status fetch(lnet_device *dev, placed *p, void *host, size_t bytes)
{
    if (p->wrapped)
        return LNET_OK;
    int rc = dev->plugin->buffer_read(dev->handle, p->buf, 0, host, bytes);
    return rc ? lnet_device_fail(dev, rc, "buffer_read") : LNET_OK;
}

static void unplace(lnet_device *dev, placed *p)
{
    if (p->buf)
        dev->plugin->buffer_free(dev->handle, p->buf);
    p->buf = NULL;
}

static lnet_status run_graph(lnet_device *dev, const lnet_graph *g, const char *kernel,
                             placed *bufs)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const lnet_graph_node *n = &g->nodes[i];
        lnet_segment_job job = {
            .size = sizeof job,
            .batch = g->batch, .rows = g->rows, .heads = g->heads, .dim = g->dim,
            .row_begin = n->row_begin, .row_end = n->row_end,
            .segment = n->segment, .dilation = n->dilation,
            .offsets = g->offsets, .causal = g->causal, .init = n->init,
            .scale = g->scale, .kernel = kernel,
            .q = bufs[0].buf, .k = bufs[1].buf, .v = bufs[2].buf,
            .out = bufs[3].buf, .lse = bufs[4].buf,
        };
        int rc = dev->plugin->run_segment(dev->handle, &job);
        if (rc != 0) {
            char what[96];
            snprintf(what, sizeof what, "level %d (segment %lld, dilation %lld)", n->level,
                     (long long)n->segment, (long long)n->dilation);
            return lnet_device_fail(dev, rc, what);
        }
    }
    int rc = dev->plugin->synchronize(dev->handle);
    return rc ? lnet_device_fail(dev, rc, "synchronize") : LNET_OK;
}

lnet_status lnet_attention_forward(lnet_context *ctx, const lnet_config *cfg,
                                   const lnet_tensor *q, const lnet_tensor *k,
                                   const lnet_tensor *v, lnet_tensor *out, lnet_tensor *lse,
                                   const lnet_run_options *opts)
{
    lnet_run_options o = {0};
    if (!ctx || !cfg)
        return lnet_fail(LNET_ERR_INVALID, "attention: %s is NULL", !ctx ? "context" : "config");
    if (opts) {
        if (opts->size == 0 || opts->size > sizeof o)
            return lnet_fail(LNET_ERR_INVALID,
                             "lnet_run_options.size is %zu; set it to sizeof(lnet_run_options)",
                             opts->size);
        memcpy(&o, opts, opts->size);
    }
    lnet_status st = check_inputs(q, k, v, out, lse);
    if (st)
        return st;
    lnet_graph g;
    st = lnet_graph_build(cfg, q->shape[0], q->shape[1], q->shape[2], q->shape[3], &g);
    if (st)
        return st;
    int index;
    st = lnet_context_find_device(ctx, o.device ? o.device : "cpu", &index);
    if (st)
        return st;

    /* The running LSE is needed to fold levels even when the caller does
     * not want it. */
    size_t lse_bytes;
    int64_t lse_shape[3] = {g.batch, g.heads, g.rows};
    st = lnet_shape_bytes(3, lse_shape, NULL, &lse_bytes);
    if (st)
        return st;
    float *lse_host = lse ? lse->data : malloc(lse_bytes);
    if (!lse_host)
        return lnet_fail(LNET_ERR_NOMEM, "out of memory allocating %zu bytes for the log-sum-exp",
                         lse_bytes);

    lnet_device *dev;
    st = lnet_device_acquire(ctx, index, &dev);
    if (st) {
        if (!lse)
            free(lse_host);
        return st;
    }
    size_t bytes = q->numel * sizeof(float);
    placed bufs[5] = {{0}};
    void *hosts[5] = {q->data, k->data, v->data, out->data, lse_host};
    size_t sizes[5] = {bytes, bytes, bytes, bytes, lse_bytes};
    for (int i = 0; i < 5 && !st; i++)
        st = place(dev, hosts[i], sizes[i], i < 3, &bufs[i]);
    if (!st)
        st = run_graph(dev, &g, o.kernel, bufs);
    if (!st)
        st = fetch(dev, &bufs[3], out->data, bytes);
    if (!st && lse)
        st = fetch(dev, &bufs[4], lse_host, lse_bytes);
    for (int i = 0; i < 5; i++)
        unplace(dev, &bufs[i]);
    lnet_device_release(dev);
    if (!lse)
        free(lse_host);
    return st;
}
