/* calibrate.c — weights for a device list without given weights: each
 * device's rows per second on a short run of the actual configuration,
 * cached in the context per device and configuration. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "scheduler.h"

/* The longest calibration run. Weights are relative speeds, which a run of
 * this length measures as well as a longer one; without a bound a plan for
 * a sequence of 2^40 rows (lnet_attention_explain) would first run the
 * whole sequence on every device (test_hostile). */
#define CALIBRATION_MAX_ROWS 16384

/* Rows of the calibration run: a few of the smallest segments, at least
 * 4096, at most the sequence itself and CALIBRATION_MAX_ROWS. */
static int64_t calibration_rows(const lnet_graph *g)
{
    int64_t smallest = lnet_graph_level(g, 0)->segment;
    for (int k = 1; k < g->n_levels; k++)
        if (lnet_graph_level(g, k)->segment < smallest)
            smallest = lnet_graph_level(g, k)->segment;
    int64_t n = smallest >= g->rows / 4 ? g->rows
              : smallest > 1024 ? (smallest > CALIBRATION_MAX_ROWS ? CALIBRATION_MAX_ROWS : 4 * smallest)
              : 4096;
    if (n > g->rows)
        n = g->rows;
    return n < CALIBRATION_MAX_ROWS ? n : CALIBRATION_MAX_ROWS;
}

/* FNV-1a over what decides a device's speed on this configuration. */
static uint64_t config_key(const lnet_graph *g, int64_t rows, const char *kernel)
{
    uint64_t h = 1469598103934665603ull;
    int64_t fields[8] = {rows, g->heads, g->dim, g->causal, g->offsets, g->n_levels, 0, 0};
    const unsigned char *p = (const unsigned char *)fields;
    for (size_t i = 0; i < sizeof fields; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    for (int k = 0; k < g->n_levels; k++) {
        int64_t wr[2] = {lnet_graph_level(g, k)->segment, lnet_graph_level(g, k)->dilation};
        p = (const unsigned char *)wr;
        for (size_t i = 0; i < sizeof wr; i++)
            h = (h ^ p[i]) * 1099511628211ull;
    }
    for (const char *c = kernel ? kernel : ""; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ull;
    return h;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cache_find(lnet_context *ctx, int device, uint64_t key, double *weight)
{
    int found = 0;
    pthread_mutex_lock(&ctx->cal_lock);
    for (int i = 0; i < ctx->n_cal; i++) {
        if (ctx->cal[i].device == device && ctx->cal[i].key == key) {
            *weight = ctx->cal[i].rows_per_second;
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&ctx->cal_lock);
    return found;
}

static void cache_put(lnet_context *ctx, int device, uint64_t key, double weight)
{
    pthread_mutex_lock(&ctx->cal_lock);
    if (ctx->n_cal == ctx->cap_cal) {
        int cap = ctx->cap_cal ? 2 * ctx->cap_cal : 8;
        lnet_calibration *c = realloc(ctx->cal, (size_t)cap * sizeof *c);
        if (c) {
            ctx->cal = c;
            ctx->cap_cal = cap;
        }
    }
    if (ctx->n_cal < ctx->cap_cal) /* out of memory: measured again next time */
        ctx->cal[ctx->n_cal++] = (lnet_calibration){device, key, weight};
    pthread_mutex_unlock(&ctx->cal_lock);
}

/* One device's rows per second: a warm-up run (program builds, thread
 * pools, page faults), then a timed one, on zero inputs of batch 1. */
static lnet_status measure(lnet_context *ctx, const lnet_graph *full, const lnet_worker_spec *spec,
                           int64_t rows, const char *kernel, double *weight)
{
    lnet_graph g = *full;
    g.batch = 1;
    g.rows = rows;
    g.q_rows = rows; /* self-attention: speeds are per row either way */
    g.q_first = 0;
    /* rows <= CALIBRATION_MAX_ROWS, but heads and dim are the caller's:
     * every product is checked. */
    size_t n, lse_n, total;
    if (lnet_mul_size((size_t)rows, (size_t)g.heads, &lse_n) || lnet_mul_size(lse_n, (size_t)g.dim, &n) ||
        lnet_mul_size(n, 4, &total) || lnet_add_size(total, lse_n, &total))
        return lnet_fail(LNET_ERR_OVERFLOW,
                         "calibration run of %lld rows x %lld heads x %lld dims does not fit in memory",
                         (long long)rows, (long long)g.heads, (long long)g.dim);
    float *mem = calloc(total, sizeof(float));
    if (!mem)
        return lnet_fail(LNET_ERR_NOMEM, "out of memory for the calibration run (%lld rows)",
                         (long long)rows);
    lnet_devlist one = {.n = 1, .weighted = 1};
    one.items[0] = *spec;
    one.items[0].weight = 1.0;
    lnet_status st = LNET_OK;
    double t = 0;
    for (int run = 0; run < 2 && !st; run++) {
        double t0 = now_seconds();
        st = lnet_sched_forward(ctx, &g, &one, LNET_ALGORITHM_AUTO, kernel, mem, mem + n,
                                mem + 2 * n, mem + 3 * n, mem + 4 * n);
        t = now_seconds() - t0;
    }
    free(mem);
    if (st)
        return st;
    *weight = (double)rows / (t > 1e-9 ? t : 1e-9);
    return LNET_OK;
}

lnet_status lnet_calibrate(lnet_context *ctx, const lnet_graph *g, const char *kernel,
                           lnet_devlist *list)
{
    if (list->weighted)
        return LNET_OK;
    const int64_t rows = calibration_rows(g);
    const uint64_t key = config_key(g, rows, kernel);
    int kept = 0;
    lnet_status last = LNET_OK;
    char last_msg[1024] = "";
    for (int i = 0; i < list->n; i++) {
        lnet_worker_spec *w = &list->items[i];
        double weight = 0;
        /* Options change a device's speed (tiles, threads): part of the key. */
        uint64_t wkey = key;
        for (const char *c = w->options; *c; c++)
            wkey = (wkey ^ (unsigned char)*c) * 1099511628211ull;
        if (!cache_find(ctx, w->device, wkey, &weight)) {
            lnet_status st = measure(ctx, g, w, rows, kernel, &weight);
            if (st) {
                /* A device that cannot run the calibration is left out,
                 * with a warning, as failover would leave it out. */
                last = st;
                snprintf(last_msg, sizeof last_msg, "%s", lnet_last_error());
                if (ctx->log) {
                    char msg[1300];
                    snprintf(msg, sizeof msg, "device %s:%d left out: calibration failed: %s",
                             lnet_context_dev(ctx, w->device)->plugin->name,
                             lnet_context_dev(ctx, w->device)->backend_index, last_msg);
                    ctx->log(LNET_LOG_WARNING, msg, ctx->log_user);
                }
                continue;
            }
            cache_put(ctx, w->device, wkey, weight);
        }
        list->items[kept] = *w;
        list->items[kept].weight = weight;
        kept++;
    }
    list->n = kept;
    list->weighted = 1;
    if (kept == 0)
        return lnet_fail(last ? last : LNET_ERR_DEVICE,
                         "no device of the list could run the calibration: %s", last_msg);
    return LNET_OK;
}
