/* placement.c — which devices of a list may take part in a call: those
 * whose plugin says it supports every job the call would give it (plugin
 * ABI 2's supports slot). An unsupported job is never a device fault: a
 * device that lacks something is left out before any work is planned, with
 * a warning that names it and what it lacks, and the others take its rows;
 * when none is left the call is refused with the reasons. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "scheduler.h"

/* The job each level would be, without buffers: what supports() may look
 * at (dtype, head dim, windows when the sequence is split, kernel). */
static void probe_job(lnet_segment_job *j, const lnet_graph *g, const lnet_graph_node *n,
                      const char *kernel, int split)
{
    lnet_job_base(j, g, n, kernel);
    j->row_begin = g->q_first;
    j->row_end = g->rows;
    if (split || g->q_first) {
        /* A split sequence gives each device windows of rows. */
        j->q_base = g->q_first;
        j->q_rows = g->q_rows;
        j->kv_base = 0;
        j->kv_rows = g->rows;
    }
}

/* 1 if device i supports every level's job; 0 with the reason in why; -1
 * when it cannot be opened with its options (the error is set). */
static int device_supports(lnet_context *ctx, int i, const char *options, const lnet_graph *g,
                           const char *kernel, int split, char *why, size_t len)
{
    lnet_device *probe = lnet_context_dev(ctx, i);
    if (g->backward && !probe->plugin->run_segment_backward) {
        snprintf(why, len, "the backward pass (its plugin has no run_segment_backward)");
        return 0;
    }
    if (!probe->plugin->supports) {
        /* No slot: every float32 job is supported (ABI 2's rule), and
         * nothing else. */
        if (g->dtype == LNET_DTYPE_F32)
            return 1;
        snprintf(why, len, "%s jobs (its plugin has no supports slot: float32 only)",
                 lnet_dtype_name(g->dtype));
        return 0;
    }
    lnet_device *dev;
    lnet_status st = lnet_device_acquire(ctx, i, options, &dev);
    if (st == LNET_ERR_INVALID)
        return -1; /* bad device options: the caller's mistake, refused as such */
    if (st != LNET_OK) {
        /* A device that cannot even open is a fault, not a lack: the
         * scheduler meets it as before (failover, or the error itself). */
        return 1;
    }
    int ok = 1;
    _Static_assert(LNET_DTYPE_F16 == LNET_PLUGIN_DTYPE_F16 && LNET_DTYPE_BF16 == LNET_PLUGIN_DTYPE_BF16,
                   "public and plugin dtypes must be the same numbers");
    for (int k = 0; ok && k < g->n_levels; k++) {
        const lnet_graph_node *n = lnet_graph_level(g, k);
        lnet_segment_job j;
        probe_job(&j, g, n, kernel, split);
        if (dev->plugin->supports(dev->handle, &j) != 1) {
            const char *e = dev->plugin->last_error();
            snprintf(why, len, "level %d (segment %lld, dilation %lld): %s", k,
                     (long long)n->segment, (long long)n->dilation,
                     e && e[0] ? e : "not supported");
            ok = 0;
        }
    }
    lnet_device_release(dev);
    return ok;
}

lnet_status lnet_devlist_place(lnet_context *ctx, const lnet_graph *g, const char *kernel,
                               lnet_devlist *list)
{
    const int split = list->n > 1;
    char why[LNET_MAX_WORKERS][256];
    int ok[LNET_MAX_WORKERS], kept = 0;
    for (int i = 0; i < list->n; i++) {
        ok[i] = device_supports(ctx, list->items[i].device, list->items[i].options, g, kernel,
                                split, why[i], sizeof why[i]);
        if (ok[i] < 0)
            return LNET_ERR_INVALID;
        kept += ok[i];
    }
    if (kept == list->n)
        return LNET_OK;
    char reasons[1024] = "";
    size_t used = 0;
    for (int i = 0; i < list->n; i++) {
        if (ok[i])
            continue;
        const lnet_device *dev = lnet_context_dev(ctx, list->items[i].device);
        char msg[400];
        snprintf(msg, sizeof msg, "device %s:%d does not support %s", dev->plugin->name,
                 dev->backend_index, why[i]);
        if (used < sizeof reasons)
            used += (size_t)snprintf(reasons + used, sizeof reasons - used, "%s%s",
                                     used ? "; " : "", msg);
        if (kept > 0 && ctx->log) {
            char warn[480];
            snprintf(warn, sizeof warn, "%s; it is left out and the other device(s) take its rows",
                     msg);
            ctx->log(LNET_LOG_WARNING, warn, ctx->log_user);
        }
    }
    if (kept == 0)
        return lnet_fail(LNET_ERR_UNSUPPORTED, "%s", reasons);
    int n = 0;
    for (int i = 0; i < list->n; i++)
        if (ok[i])
            list->items[n++] = list->items[i];
    list->n = n;
    if (n == 1 && !list->weighted) {
        /* One device left takes every row: nothing to calibrate. */
        list->weighted = 1;
        list->items[0].weight = 1.0;
    }
    return LNET_OK;
}
