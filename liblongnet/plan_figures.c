/* plan_figures.c — lnet_attention_partition: what each part of a split
 * call moves, read off the plan the scheduler itself builds (plan.c), so
 * that a sizing tool (`longnet plan`) and a real run (`--explain`) can
 * never disagree on a byte. No device is opened: the plan's workers name
 * none (device -1), as another rank's devices are named. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <string.h>

#include "graph.h"
#include "internal.h"
#include "scheduler.h"

static lnet_status check_args(const lnet_config *cfg, int64_t batch, int64_t rows, int64_t heads,
                              int64_t dim, lnet_algorithm algorithm, int parts,
                              int workers_per_part, const lnet_part_figures *out)
{
    if (!cfg || !out)
        return lnet_fail(LNET_ERR_INVALID, "partition: %s is NULL", !cfg ? "config" : "out");
    int64_t shape[4] = {batch, rows, heads, dim};
    lnet_status st = lnet_shape_bytes(4, shape, NULL, NULL);
    if (st)
        return st;
    if (algorithm != LNET_ALGORITHM_AUTO && algorithm != LNET_ALGORITHM_GATHER &&
        algorithm != LNET_ALGORITHM_RING)
        return lnet_fail(LNET_ERR_INVALID, "partition: algorithm %d is none of auto (0), "
                         "gather (1), ring (2)", (int)algorithm);
    if (parts < 1 || workers_per_part < 1 || parts > LNET_MAX_WORKERS / workers_per_part)
        return lnet_fail(LNET_ERR_INVALID, "partition: %d part(s) of %d worker(s) each; need "
                         "at least 1 of each and at most %d workers in all (the scheduler's "
                         "limit)", parts, workers_per_part, LNET_MAX_WORKERS);
    if ((int64_t)parts * workers_per_part > rows)
        return lnet_fail(LNET_ERR_INVALID, "partition: %d worker(s) for %lld rows; every "
                         "worker needs at least one row", parts * workers_per_part,
                         (long long)rows);
    for (int i = 0; i < parts; i++)
        if (out[i].size != sizeof out[i])
            return lnet_fail(LNET_ERR_INVALID, "partition: out[%d].size is %zu; set it to "
                             "sizeof(lnet_part_figures)", i, out[i].size);
    return LNET_OK;
}

lnet_status lnet_attention_partition(const lnet_config *cfg, int64_t batch, int64_t rows,
                                     int64_t heads, int64_t dim, int backward,
                                     lnet_algorithm algorithm, int parts, int workers_per_part,
                                     lnet_part_figures *out)
{
    lnet_status st = check_args(cfg, batch, rows, heads, dim, algorithm, parts,
                                workers_per_part, out);
    if (st)
        return st;
    lnet_graph g;
    if ((st = lnet_graph_build(cfg, batch, rows, heads, dim, &g)))
        return st;
    if (backward)
        lnet_graph_backward(&g);
    const int n = parts * workers_per_part;
    lnet_worker_spec specs[LNET_MAX_WORKERS];
    memset(specs, 0, sizeof specs);
    for (int i = 0; i < n; i++) {
        specs[i].device = -1; /* no device: the plan is only read */
        specs[i].weight = 1;
    }
    lnet_plan p;
    if ((st = lnet_plan_build(&p, NULL, &g, algorithm, specs, n, 0, rows)))
        return st;
    for (int i = 0; i < parts; i++) {
        lnet_part_figures *f = &out[i];
        memset((char *)f + sizeof f->size, 0, sizeof *f - sizeof f->size);
        f->begin = p.w[i * workers_per_part].begin;
        f->end = p.w[(i + 1) * workers_per_part - 1].end;
    }
    /* Every transfer between two parts: its bytes to both sides, at its
     * level (the node's index in the configuration). A host endpoint is
     * only in failover plans, never in this one. */
    for (int x = 0; x < p.n_x; x++) {
        const lnet_transfer *t = &p.x[x];
        if (t->src < 0 || t->dst < 0)
            continue;
        const int from = t->src / workers_per_part, to = t->dst / workers_per_part;
        if (from == to)
            continue;
        const int level = g.nodes[t->node].level;
        out[from].bytes_out += t->bytes;
        out[from].level_bytes_out[level] += t->bytes;
        out[to].bytes_in += t->bytes;
        out[to].level_bytes_in[level] += t->bytes;
    }
    lnet_plan_free(&p);
    return LNET_OK;
}
