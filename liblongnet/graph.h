/* graph.h — the graph of one attention call (DESIGN §2, The graph): typed
 * nodes over named tensors. Per level an EXCHANGE node (the level's K/V rows
 * brought to where its segments need them: nothing when every segment lies
 * in one chunk, the sparse selected rows or ring blocks when one spans
 * chunks) and a SEGMENT_ATTENTION node that folds the level into the
 * running (O, LSE). REDUCE is the backward's kind (dK/dV contributions sent
 * back to their rows' owners); the forward builds none. The graph knows
 * nothing of devices: the plan (scheduler.h) cuts it into per-worker steps
 * and a list of transfers. */
#ifndef LNET_GRAPH_H
#define LNET_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "longnet.h"

/* The tensors a graph's nodes read and write. */
typedef enum lnet_tensor_name {
    LNET_TENSOR_Q = 0,
    LNET_TENSOR_K,
    LNET_TENSOR_V,
    LNET_TENSOR_O,
    LNET_TENSOR_LSE,
    LNET_TENSOR_DO,    /* backward: the incoming gradient of O */
    LNET_TENSOR_DELTA, /* backward: rowsum(dO * O) */
    LNET_TENSOR_DQ,
    LNET_TENSOR_DK,
    LNET_TENSOR_DV,
    LNET_TENSOR_COUNT
} lnet_tensor_name;

typedef enum lnet_node_type {
    LNET_NODE_SEGMENT_ATTENTION = 0,
    LNET_NODE_EXCHANGE = 1,
    LNET_NODE_REDUCE = 2,
    LNET_NODE_DELTA = 3,                      /* backward: Delta = rowsum(dO * O) */
    LNET_NODE_SEGMENT_ATTENTION_BACKWARD = 4  /* backward: one level's dQ, dK, dV */
} lnet_node_type;

#define LNET_NODE_MAX_IO 5

typedef struct lnet_graph_node {
    lnet_node_type type;
    int level;             /* index in the configuration */
    int64_t segment, dilation;
    int n_in, n_out;
    lnet_tensor_name in[LNET_NODE_MAX_IO], out[LNET_NODE_MAX_IO];
    int init;              /* SEGMENT_ATTENTION of the first level: overwrites (O, LSE) */
} lnet_graph_node;

typedef struct lnet_graph {
    int64_t batch, rows, heads, dim; /* rows: of K and V, the sequence's positions */
    /* Queries: q_rows rows at positions [q_first, rows), q_first =
     * rows - q_rows (bottom-right aligned, as in decoding: the queries are
     * the sequence's last positions). Self-attention: q_rows = rows. */
    int64_t q_rows, q_first;
    int causal;
    int offsets;
    float scale;
    lnet_dtype dtype;      /* of Q, K, V and O: what the devices are asked to support */
    size_t elem;           /* bytes of one element of dtype: what buffers and transfers count in */
    int backward;          /* the backward graph (lnet_graph_backward) */
    int n_nodes;
    lnet_graph_node nodes[3 * LNET_MAX_LEVELS + 1];
    /* The levels in the order they run (the dense level first): for each,
     * its SEGMENT_ATTENTION node and the EXCHANGE node feeding it. */
    int n_levels;
    int level_node[LNET_MAX_LEVELS];
    int exchange_node[LNET_MAX_LEVELS];
    int reduce_node[LNET_MAX_LEVELS]; /* backward: the REDUCE node after each level */
} lnet_graph;

/* Turns a forward graph into the backward one: a DELTA node, then per
 * level an EXCHANGE (K, V to where the level needs them, as in the
 * forward), a SEGMENT_ATTENTION_BACKWARD (Q, K, V, LSE, dO, Delta -> dQ,
 * dK, dV) and a REDUCE (dK, dV contributions for rows another worker owns
 * sent back to it and added there). */
void lnet_graph_backward(lnet_graph *g);

/* Builds the graph for rows [0, N) of a validated configuration. The first
 * level has dilation 1: it selects every row, so it can initialise
 * (O, LSE) and no row is left unwritten. */
lnet_status lnet_graph_build(const lnet_config *cfg, int64_t batch, int64_t rows,
                             int64_t heads, int64_t dim, lnet_graph *g);

/* The SEGMENT_ATTENTION node of the k-th level to run. */
static inline const lnet_graph_node *lnet_graph_level(const lnet_graph *g, int k)
{
    return &g->nodes[g->level_node[k]];
}

const char *lnet_tensor_name_str(lnet_tensor_name t);
const char *lnet_node_type_str(lnet_node_type t);

#endif /* LNET_GRAPH_H */
