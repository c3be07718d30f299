/* bench_series.h — the series of a sweep (bench_series.c): one device,
 * kernel, configuration and mask, run over the lengths. */
#ifndef LNET_BENCH_SERIES_H
#define LNET_BENCH_SERIES_H

#include "bench.h"

typedef struct series {
    int device;
    char kernel[BENCH_NAME_LEN];
    bench_config_kind config;
    int causal;
    int backward; /* the pass: 0 forward, 1 backward */
    int64_t heads, dim;
    int dk;      /* its device-and-kernel, which owns a share of the budget */
    int members; /* devices of its group: 1 unless a group */
    int stopped;
    int has_last;
    double last_run_s, last_setup_s, last_pairs, last_tokens; /* previous cell */
} series;

/* Builds the series of a sweep from --device, --kernel and the
 * configurations: devices x kernels x configurations x masks (x passes in
 * the matrix and figure5; scaling is forward only), each with its
 * device-and-kernel number (dk); the count, or -1 after printing an error. */
int bench_build_series(const char *sweep, const bench_config_kind *configs, int nconfigs,
                       const bench_options *o, const bench_machine *m, series **out);

#endif /* LNET_BENCH_SERIES_H */
