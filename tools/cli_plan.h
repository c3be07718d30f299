/* cli_plan.h — what the files of `longnet plan` share: the plan's numbers
 * (plan_model.c: the figures per rank and the time model), the measured
 * throughput (plan_measure.c) and the report (plan_print.c). */
#ifndef LNET_CLI_PLAN_H
#define LNET_CLI_PLAN_H

#include <stdint.h>

#include "longnet.h"

#define CLI_PLAN_MAX_WORKERS 64 /* the scheduler's limit of devices in one plan */
/* --bandwidth's default, bytes/s each way: 100 Gbit/s (InfiniBand EDR, 100GbE). */
#define CLI_PLAN_DEFAULT_BANDWIDTH 12.5e9

typedef struct cli_plan_rank {
    lnet_part_figures fwd, bwd;   /* bytes to and from other ranks (bwd: with --backward) */
    int64_t begin, end;           /* its rows */
    uint64_t tensor;              /* bytes of one [B, rows, H, D] float32 tensor */
    uint64_t lse;                 /* bytes of one [B, H, rows] (LSE, Delta) */
    uint64_t exchange;            /* receive and send buffers, the larger pass's */
    uint64_t total;               /* everything it holds at once */
    double pairs[LNET_MAX_LEVELS]; /* (query, key) pairs its queries score, per level */
    double flops;                 /* forward, or forward + backward */
    double compute_s, comm_s;     /* the model's, when a rate is known */
} cli_plan_rank;

typedef struct cli_plan {
    /* The command line. */
    lnet_config *cfg;
    int64_t tokens, ranks, devices_per_rank, heads, dim, batch;
    uint64_t mem_per_rank;
    double bandwidth;             /* bytes/s each way */
    double throughput;            /* tokens/s of one rank, given; 0: none */
    int measure, backward;
    int64_t measure_tokens;       /* 0: the default */
    lnet_algorithm algorithm;
    /* The figures. */
    int levels;
    int64_t w[LNET_MAX_LEVELS], r[LNET_MAX_LEVELS];
    cli_plan_rank *rank;          /* [ranks] */
    double flops_total;           /* the whole call on one device */
    int fits;                     /* every rank's memory fits */
    /* The measurement (--measure). */
    int64_t measured_tokens;      /* its N (its batch is B) */
    double measured_s;            /* median seconds of one forward (+ backward) */
    double measured_flops;
    char measured_on[320];        /* the device list (D x "cpu," fits) */
    /* The model. */
    double rate;                  /* FLOP/s of one rank; 0: unknown */
    double max_compute_s, max_comm_s, predicted_s;
} cli_plan;

/* The figures of every rank: rows, memory, bytes, FLOPs. -1 or an exit code. */
int cli_plan_figures(cli_plan *p);
/* --measure: a short real run on `device` (NULL: "cpu" once per device of a
 * rank) sets measured_* . -1 or an exit code. */
int cli_plan_measure(cli_plan *p, const char *device, const char *kernel);
/* The time model (the rate from --throughput or the measurement), then the
 * report on stdout; exit code 1, with one error line, when a rank's memory
 * does not fit. */
int cli_plan_print(cli_plan *p);

/* The pairs and FLOPs of the whole call of n rows ([0, n)) with the plan's
 * configuration and shape. */
double cli_plan_flops(const cli_plan *p, int64_t n, int64_t lo, int64_t hi);

#endif /* LNET_CLI_PLAN_H */
