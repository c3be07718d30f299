/* graph.c — building the per-call graph from a configuration. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <math.h>
#include <string.h>

#include "graph.h"
#include "internal.h"

lnet_status lnet_graph_build(const lnet_config *cfg, int64_t batch, int64_t rows,
                             int64_t heads, int64_t dim, lnet_graph *g)
{
    lnet_status st = lnet_config_validate(cfg, dim);
    if (st)
        return st;
    memset(g, 0, sizeof *g);
    g->batch = batch;
    g->rows = rows;
    g->heads = heads;
    g->dim = dim;
    g->causal = lnet_config_causal(cfg);
    g->offsets = (int)lnet_config_offsets(cfg);
    double scale = lnet_config_scale(cfg);
    g->scale = (float)(scale > 0 ? scale : 1.0 / sqrt((double)dim));

    int levels = lnet_config_levels(cfg);
    int first = 0;
    while (lnet_config_dilation(cfg, first) != 1)
        first++; /* validate guarantees one */
    for (int k = 0; k < levels; k++) {
        /* The dense level first, then the others in their order. */
        int level = k == 0 ? first : (k <= first ? k - 1 : k);
        lnet_graph_node *n = &g->nodes[g->n_nodes++];
        n->type = LNET_NODE_SEGMENT_ATTENTION;
        n->level = level;
        n->segment = lnet_config_segment(cfg, level);
        n->dilation = lnet_config_dilation(cfg, level);
        n->row_begin = 0;
        n->row_end = rows;
        n->init = k == 0;
    }
    return LNET_OK;
}
