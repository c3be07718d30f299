/* graph.c — building the per-call graph from a configuration. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <math.h>
#include <string.h>

#include "graph.h"
#include "internal.h"

static lnet_graph_node *add_node(lnet_graph *g, lnet_node_type type, int level, int64_t segment,
                                 int64_t dilation)
{
    lnet_graph_node *n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->level = level;
    n->segment = segment;
    n->dilation = dilation;
    return n;
}

static void io(lnet_graph_node *n, int out, lnet_tensor_name t)
{
    if (out)
        n->out[n->n_out++] = t;
    else
        n->in[n->n_in++] = t;
}

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
    g->q_rows = rows;
    g->q_first = 0;
    g->dtype = LNET_DTYPE_F32;
    g->elem = lnet_dtype_size(g->dtype);
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
        int64_t w = lnet_config_segment(cfg, level), r = lnet_config_dilation(cfg, level);
        g->exchange_node[k] = g->n_nodes;
        lnet_graph_node *x = add_node(g, LNET_NODE_EXCHANGE, level, w, r);
        io(x, 0, LNET_TENSOR_K);
        io(x, 0, LNET_TENSOR_V);
        io(x, 1, LNET_TENSOR_K);
        io(x, 1, LNET_TENSOR_V);
        g->level_node[k] = g->n_nodes;
        lnet_graph_node *a = add_node(g, LNET_NODE_SEGMENT_ATTENTION, level, w, r);
        io(a, 0, LNET_TENSOR_Q);
        io(a, 0, LNET_TENSOR_K);
        io(a, 0, LNET_TENSOR_V);
        if (k > 0) {
            io(a, 0, LNET_TENSOR_O);
            io(a, 0, LNET_TENSOR_LSE);
        }
        io(a, 1, LNET_TENSOR_O);
        io(a, 1, LNET_TENSOR_LSE);
        a->init = k == 0;
    }
    g->n_levels = levels;
    return LNET_OK;
}

void lnet_graph_backward(lnet_graph *g)
{
    lnet_graph_node levels[LNET_MAX_LEVELS];
    for (int k = 0; k < g->n_levels; k++)
        levels[k] = *lnet_graph_level(g, k);
    g->n_nodes = 0;
    g->backward = 1;
    lnet_graph_node *d = add_node(g, LNET_NODE_DELTA, 0, 0, 0);
    io(d, 0, LNET_TENSOR_O);
    io(d, 0, LNET_TENSOR_DO);
    io(d, 1, LNET_TENSOR_DELTA);
    for (int k = 0; k < g->n_levels; k++) {
        const lnet_graph_node *l = &levels[k];
        g->exchange_node[k] = g->n_nodes;
        lnet_graph_node *x = add_node(g, LNET_NODE_EXCHANGE, l->level, l->segment, l->dilation);
        io(x, 0, LNET_TENSOR_K);
        io(x, 0, LNET_TENSOR_V);
        io(x, 1, LNET_TENSOR_K);
        io(x, 1, LNET_TENSOR_V);
        g->level_node[k] = g->n_nodes;
        lnet_graph_node *b = add_node(g, LNET_NODE_SEGMENT_ATTENTION_BACKWARD, l->level, l->segment,
                                      l->dilation);
        const lnet_tensor_name in[5] = {LNET_TENSOR_Q, LNET_TENSOR_K, LNET_TENSOR_V,
                                        LNET_TENSOR_LSE, LNET_TENSOR_DELTA};
        for (int i = 0; i < 5; i++)
            io(b, 0, in[i]);
        io(b, 1, LNET_TENSOR_DQ);
        io(b, 1, LNET_TENSOR_DK);
        io(b, 1, LNET_TENSOR_DV);
        g->reduce_node[k] = g->n_nodes;
        lnet_graph_node *r = add_node(g, LNET_NODE_REDUCE, l->level, l->segment, l->dilation);
        io(r, 0, LNET_TENSOR_DK);
        io(r, 0, LNET_TENSOR_DV);
        io(r, 1, LNET_TENSOR_DK);
        io(r, 1, LNET_TENSOR_DV);
    }
}

const char *lnet_tensor_name_str(lnet_tensor_name t)
{
    static const char *names[LNET_TENSOR_COUNT] = {"Q", "K", "V", "O", "LSE",
                                                   "dO", "Delta", "dQ", "dK", "dV"};
    return (unsigned)t < LNET_TENSOR_COUNT ? names[t] : "?";
}

const char *lnet_node_type_str(lnet_node_type t)
{
    switch (t) {
    case LNET_NODE_SEGMENT_ATTENTION:
        return "SEGMENT_ATTENTION";
    case LNET_NODE_EXCHANGE:
        return "EXCHANGE";
    case LNET_NODE_REDUCE:
        return "REDUCE";
    case LNET_NODE_DELTA:
        return "DELTA";
    case LNET_NODE_SEGMENT_ATTENTION_BACKWARD:
        return "SEGMENT_ATTENTION_BACKWARD";
    }
    return "?";
}
