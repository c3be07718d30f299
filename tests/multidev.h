/* multidev.h — helpers shared by the multi-device tests (test_scheduler,
 * test_scheduler_opencl). */
#ifndef LNET_TEST_MULTIDEV_H
#define LNET_TEST_MULTIDEV_H

#include <stdint.h>

#include "longnet.h"

#include "seeded_rng.h"

/* Random Q, K, V in [-1, 1) of shape [B, N, H, D] and an empty config. */
typedef struct problem {
    int64_t shape[4];
    lnet_tensor *q, *k, *v;
    lnet_config *cfg;
} problem;

void make_problem(problem *p, uint64_t *r, int64_t B, int64_t N, int64_t H, int64_t D);
void free_problem(problem *p);

/* Runs on `devices`; out and lse are created (the caller frees them). */
lnet_status run(lnet_context *ctx, problem *p, const char *devices, lnet_algorithm algo,
                lnet_tensor **out, lnet_tensor **lse);
double max_diff(const lnet_tensor *a, const lnet_tensor *b);

/* Asserts (Check) that `devices` gives the "cpu" answer within 1e-5. */
void check_same(lnet_context *ctx, problem *p, const char *devices, lnet_algorithm algo,
                const char *what);

/* A context with the CPU backend and `devices` faulty pass-through devices
 * (tests/faulty), `fail` as LONGNET_FAULTY_FAIL ("device:call") or NULL,
 * logging to `log` (NULL: a log that keeps quiet). For tests built with FAULTY_DIR and
 * CPU_PLUGIN_DIR. */
lnet_context *faulty_context(int devices, const char *fail, lnet_log_fn log, void *log_user);

#endif /* LNET_TEST_MULTIDEV_H */
