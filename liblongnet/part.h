/* part.h — a call across ranks (part.c; its files in part_files.c). */
#ifndef LNET_PART_H
#define LNET_PART_H

#include "executor.h"
#include "scheduler.h"

struct lnet_part {
    lnet_context *ctx;
    lnet_mpi *mpi;
    int me, ranks;
    lnet_run_options o;
    lnet_layout layout;
    lnet_graph g;          /* the forward's */
    lnet_devlist local;    /* this rank's devices, weighted */
    int *count;            /* per rank: its devices */
    double *weight;        /* per rank, LNET_MAX_WORKERS each: their weights */
    int n;
    lnet_worker_spec specs[LNET_MAX_WORKERS]; /* every rank's workers in sequence order */
    host_rows rows;        /* this rank's */
};

#endif /* LNET_PART_H */
