/* graph.h — the graph of one attention call (DESIGN §2, The graph): one
 * SEGMENT_ATTENTION node per level over a row range, each folding into the
 * running (O, LSE). */
#ifndef LNET_GRAPH_H
#define LNET_GRAPH_H

#include <stdint.h>

#include "longnet.h"

typedef enum lnet_node_type {
    LNET_NODE_SEGMENT_ATTENTION = 0
} lnet_node_type;

typedef struct lnet_graph_node {
    lnet_node_type type;
    int level;             /* index in the configuration */
    int64_t segment, dilation;
    int64_t row_begin, row_end;
    int init;              /* first node: overwrite (O, LSE) instead of folding */
} lnet_graph_node;

typedef struct lnet_graph {
    int64_t batch, rows, heads, dim;
    int causal;
    int offsets;
    float scale;
    lnet_dtype dtype;      /* of Q, K, V and O: what the devices are asked to support */
    int n_nodes;
    lnet_graph_node nodes[LNET_MAX_LEVELS];
} lnet_graph;

/* Builds the graph for rows [0, N) of a validated configuration. The first
 * node is a level with dilation 1: it selects every row, so it can
 * initialise (O, LSE) and no row is left unwritten. */
lnet_status lnet_graph_build(const lnet_config *cfg, int64_t batch, int64_t rows,
                             int64_t heads, int64_t dim, lnet_graph *g);

#endif /* LNET_GRAPH_H */
