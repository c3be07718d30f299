/* scheduler.h — the multi-device scheduler (DESIGN §2, The scheduler): device
 * lists with weights, the plan (contiguous chunks of rows per device, and per
 * level the steps each device runs), and running a plan with one host thread
 * per device, with failover. */
#ifndef LNET_SCHEDULER_H
#define LNET_SCHEDULER_H

#include <stdint.h>

#include "context.h"
#include "graph.h"
#include "longnet-plugin-math.h" /* ceil division, head offsets: the SDK's, shared with backends */
#include "longnet.h"

#define LNET_MAX_WORKERS 64

/* One entry of a device list: "opencl:0=3". weight 0: to be measured. */
/* Device options of a list entry ("opencl:0{tile_q=32}"), as the plugin's
 * open() takes them; "" for none. */
#define LNET_MAX_DEVICE_OPTIONS 128

typedef struct lnet_worker_spec {
    int device;    /* index in the context; -1: a device of another rank */
    int rank;      /* the MPI rank that runs it (0 in one process) */
    double weight;
    char options[LNET_MAX_DEVICE_OPTIONS];
} lnet_worker_spec;

typedef struct lnet_devlist {
    int n;
    int weighted;  /* every entry has a weight */
    lnet_worker_spec items[LNET_MAX_WORKERS];
} lnet_devlist;

/* Parses "cpu", "cpu,opencl:0", "cpu=1,opencl:0=3"; every device must exist. */
lnet_status lnet_devlist_parse(const lnet_context *ctx, const char *list, lnet_devlist *out);

/* A job of level node n with every field the graph decides (no row range,
 * windows or buffers yet): for the executor and for placement alike. */
void lnet_job_base(lnet_segment_job *j, const lnet_graph *g, const lnet_graph_node *n,
                   const char *kernel);

/* Leaves out the devices whose plugin does not support every job of the
 * call (placement.c), each with a warning naming it and what it lacks;
 * LNET_ERR_UNSUPPORTED with the reasons when none is left. */
lnet_status lnet_devlist_place(lnet_context *ctx, const lnet_graph *g, const char *kernel,
                               lnet_devlist *list);

typedef enum lnet_step_kind {
    LNET_STEP_LOCAL = 0,  /* segments inside the chunk: the chunk's own rows */
    LNET_STEP_GATHER = 1, /* a spanning segment: its sparse K/V rows gathered */
    LNET_STEP_RING = 2    /* a spanning dilation-1 segment: one K/V block */
} lnet_step_kind;

/* A transfer endpoint that is no worker: the caller's tensors, which a
 * failover plan takes the rows outside its own range from. */
#define LNET_ENDPOINT_HOST (-1)

typedef enum lnet_transfer_kind {
    LNET_TRANSFER_SPARSE = 0, /* a spanning segment's selected rows: per head the rows
                               * first_h, first_h + r, ... in [row_begin, row_end);
                               * packed [H][B][rows of head h][D] */
    LNET_TRANSFER_BLOCK = 1,  /* rows [row_begin, row_end) of every head (ring);
                               * packed [B][rows][H][D] */
    LNET_TRANSFER_REDUCE = 2  /* backward: contributions sent back to the rows' owner */
} lnet_transfer_kind;

/* One row set of one tensor moved from one worker to another: what the
 * executor hands the transport, and what --explain lists. */
typedef struct lnet_transfer {
    lnet_transfer_kind kind;
    int src, dst;               /* worker indices, or LNET_ENDPOINT_HOST */
    lnet_tensor_name tensor;
    int node;                   /* the EXCHANGE node it belongs to */
    int64_t segment_index;
    int64_t row_begin, row_end; /* absolute rows of the segment it covers */
    uint64_t rows;              /* (head-)rows it moves */
    uint64_t bytes;
} lnet_transfer;

typedef struct lnet_step {
    lnet_step_kind kind;
    int node;                   /* the SEGMENT_ATTENTION node, index in the graph's nodes */
    int xfer, n_xfer;           /* GATHER, RING: the transfers it receives, plan->x[xfer ...] */
    int64_t row_begin, row_end; /* the query rows (absolute) */
    int64_t segment_index;      /* GATHER, RING: the spanning segment */
    int64_t kv_begin, kv_end;   /* LOCAL, RING: the K/V rows used (absolute) */
    int init;                   /* LOCAL: overwrite instead of fold */
    int peer;                   /* RING: the worker whose chunk holds the block; -1: own */
    uint64_t bytes_in;          /* K and V bytes this step takes from other chunks */
} lnet_step;

typedef struct lnet_worker {
    int device;                 /* index in the context; -1: another rank's */
    int rank;                   /* the rank that runs it (0 in one process) */
    const char *options;        /* its device options (the spec's), "" for none */
    double weight;
    int64_t begin, end;         /* its chunk of rows; begin == end: none */
    int64_t q_begin, q_end;     /* the chunk's query rows (graph's q_first on); may be none */
    int windows;                /* the device honours row windows */
    int core_init;              /* O = 0, LSE = -inf set before the steps */
    lnet_step *steps;
    int n_steps, cap;
    uint64_t bytes_in, bytes_out;
} lnet_worker;

typedef struct lnet_plan {
    const lnet_graph *g;
    lnet_algorithm algorithm;
    int64_t align;              /* chunk boundaries are multiples of it */
    int64_t lo, hi;             /* the rows this plan covers */
    int fine;                   /* split finer than the smallest segment */
    int n;
    lnet_worker *w;
    /* Every transfer, grouped by receiving step in each worker's step
     * order: the order one executor loop posts and waits for them. */
    lnet_transfer *x;
    int n_x, cap_x;
    int ranks;                  /* ranks the workers belong to (1 in one process) */
} lnet_plan;

/* Splits rows [lo, hi) among the workers in proportion to their weights,
 * aligned to the smallest segment length, and plans every worker's steps. */
lnet_status lnet_plan_build(lnet_plan *p, const lnet_context *ctx, const lnet_graph *g,
                            lnet_algorithm algorithm, const lnet_worker_spec *specs, int n,
                            int64_t lo, int64_t hi);
void lnet_plan_free(lnet_plan *p);

/* The plan as text, for --explain. */
lnet_status lnet_plan_describe(const lnet_plan *p, const lnet_context *ctx, char **text);

/* Measures each unweighted device's rows per second on a short run of this
 * configuration (cached in the context per device and configuration). */
lnet_status lnet_calibrate(lnet_context *ctx, const lnet_graph *g, const char *kernel,
                           lnet_devlist *list);

/* Runs the graph for every row with the devices of `list`: plans, runs each
 * chunk on its own thread, re-plans a failed device's chunk onto the others. */
lnet_status lnet_sched_forward(lnet_context *ctx, const lnet_graph *g, const lnet_devlist *list,
                               lnet_algorithm algorithm, const char *kernel, const float *q,
                               const float *k, const float *v, float *out, float *lse);

/* The backward graph (lnet_graph_backward) for every row: dq, dk, dv of
 * the caller's shapes are overwritten. A failed device makes the
 * survivors run the whole pass again. */
lnet_status lnet_sched_backward(lnet_context *ctx, const lnet_graph *g, const lnet_devlist *list,
                                lnet_algorithm algorithm, const char *kernel, const float *q,
                                const float *k, const float *v, const float *out, const float *lse,
                                const float *dout, float *dq, float *dk, float *dv);

/* attention.c: the caller's run options copied and checked (NULL:
 * defaults), and the devices of o->device with their weights (placed,
 * calibrated where not given). */
lnet_status lnet_read_run_options(const lnet_run_options *opts, lnet_run_options *o);
lnet_status lnet_devices_for(lnet_context *ctx, const lnet_graph *g, const lnet_run_options *o,
                             lnet_devlist *list);

/* How many of the rows first, first + r, ... lie in [lo, hi). */
static inline int64_t lnet_count_selected(int64_t first, int64_t r, int64_t lo, int64_t hi)
{
    if (lo < first)
        lo = first;
    if (hi <= lo)
        return 0;
    int64_t j_lo = lnet_plugin_ceil_div(lo - first, r);
    int64_t j_hi = lnet_plugin_ceil_div(hi - first, r);
    return j_hi - j_lo;
}

#endif /* LNET_SCHEDULER_H */
