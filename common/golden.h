/* golden.h — the golden oracle cases (tests/golden; DESIGN §1): reading
 * cases.tsv, loading a case's .npy files, and running a case forward on a
 * device spec and kernel of the caller's choice. Shared by the test suite
 * (tests/golden_cases.h) and the installed conformance test (`longnet
 * test`), so that both read the cases the same way. Never prints. */
#ifndef LNET_COMMON_GOLDEN_H
#define LNET_COMMON_GOLDEN_H

#include <stddef.h>
#include <stdint.h>

#include "longnet.h"

typedef struct golden_case {
    char name[64];          /* also the case's folder in the golden directory */
    int64_t batch, rows, heads, dim;
    char segments[256];     /* "16,32,64", as lnet_config_parse_levels takes */
    char dilations[256];
    int causal;
    lnet_offsets offsets;
    double scale;
} golden_case;

typedef struct golden_set {
    char *dir;              /* the golden directory */
    int n;
    golden_case *cases;
} golden_set;

/* Reads dir/cases.tsv (tab-separated; a header line names the columns name,
 * B, N, H, D, segments, dilations, causal, offsets, scale in any order).
 * Returns 0, or -1 with a message naming the file, line and value in err. */
int golden_load(const char *dir, golden_set *set, char *err, size_t errlen);
void golden_free(golden_set *set);

/* The configuration of a case (levels, causal, offsets, scale). Returns 0,
 * or -1 with a message in err. */
int golden_config(const golden_case *c, lnet_config **cfg, char *err, size_t errlen);

/* Loads dir/<case>/<file>.npy ("q", "out", "lse", ...) and checks that its
 * shape is the one the case implies ([B, N, H, D], or [B, H, N] for "lse").
 * Float64 expectations come back as float32 (lnet_npy_load converts). */
int golden_tensor(const golden_set *set, const golden_case *c, const char *file,
                  lnet_tensor **out, char *err, size_t errlen);

typedef struct golden_result {
    double out_err;         /* max |out - expected| */
    double lse_err;         /* max |lse - expected| */
} golden_result;

/* Runs case c forward through the public API on `device` (a spec such as
 * "cpu" or "opencl:1") with `kernel` (NULL: the device's default) and
 * measures the largest errors against the expectations. Returns 0 when the
 * run succeeded (whatever the errors), or -1 with a message in err. */
int golden_run_case(lnet_context *ctx, const golden_set *set, const golden_case *c,
                    const char *device, const char *kernel, golden_result *res, char *err,
                    size_t errlen);

#endif /* LNET_COMMON_GOLDEN_H */
