/* conform.h — `longnet test`, the conformance test any plugin can run: the
 * target, the session a check runs in (its own context, the device under
 * test's table and the CPU reference's), and the job harness the checks
 * share. Each check runs in a forked child (cmd_test.c), so a plugin that
 * crashes or hangs fails its check and the report goes on.
 *
 * The harness drives plugin tables directly (longnet-plugin.h, the SDK a
 * vendor has installed), as the core would, and compares every answer with
 * the CPU backend's "reference" kernel run on the same job. */
#ifndef LNET_TOOLS_CONFORM_H
#define LNET_TOOLS_CONFORM_H

#include <stdint.h>
#include <stdio.h>

#include "longnet-plugin.h"
#include "longnet.h"

/* Child exit codes: distinct from 1, which a sanitizer's report or a
 * plugin's exit(1) would give, so that such an end reads as a crash. */
enum { CONFORM_PASS = 0, CONFORM_FAIL = 40, CONFORM_SKIP = 41 };

/* Agreement with the reference: |x - ref| <= CONFORM_TOL * (1 + |ref|). */
#define CONFORM_TOL 2e-4

typedef struct conform_target {
    char backend[64];        /* the backend name under test */
    int index;               /* its device */
    char spec[96];           /* "backend:index", for device lists */
    const char *plugin_path; /* --plugin MODULE, searched first; NULL for none */
    const char *golden_dir;  /* NULL: the golden check is skipped */
    int quick;
    uint64_t seed;
    int step_fd;             /* where a child writes what it is doing, -1 none */
} conform_target;

typedef struct conform_session {
    const conform_target *t;
    lnet_context *ctx;
    const lnet_plugin *dut;  /* the device under test's table */
    const lnet_plugin *ref;  /* the cpu backend's, for the reference kernel */
    void *dut_dev, *ref_dev; /* opened devices */
    int n_devices;           /* of the plugin under test */
    lnet_plugin_device_desc desc;
    char kernels[8][32];     /* the kernels to test: all, or the default one (--quick) */
    int n_kernels;
    int failures;            /* lines reported as FAIL so far */
} conform_session;

/* Opens the session for a check (context, both tables, both devices);
 * with --plugin and no backend name, fills in t's name from the module.
 * Returns 0, or -1 after printing why. */
int conform_open(conform_target *t, conform_session *s);
void conform_close(conform_session *s);

/* One detail line of the check ("    ..."), and a FAIL line (counted). */
void conform_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void conform_fail(conform_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* What the check is doing now, for the report if it crashes. */
void conform_step(const conform_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------- the job harness */

/* One level's job with its host data. The buffers of `job` are set by
 * conform_run; q, out, lse hold the query window, k, v the K/V window. */
typedef struct conform_case {
    lnet_segment_job job;
    float *q, *k, *v, *out, *lse;                 /* forward: out, lse are the running state */
    float *dout, *delta, *dq, *dk, *dv;           /* backward (NULL for a forward case) */
    size_t q_elems, kv_elems, lse_elems;
    char what[256];                               /* the case in words, for reports */
} conform_case;

/* A small deterministic generator (splitmix64). */
uint64_t conform_rand(uint64_t *state);
int64_t conform_rand_range(uint64_t *state, int64_t lo, int64_t hi); /* [lo, hi] */
double conform_rand_unit(uint64_t *state);                           /* [-1, 1) */

/* Allocates the host arrays for c->job's shape and windows (forward; with
 * backward = 1 also the gradients), filled from the generator. 0, or -1
 * when out of memory. */
int conform_case_alloc(conform_case *c, int backward, uint64_t *rng);
void conform_case_free(conform_case *c);
/* A copy of c's host arrays (same job), to run the same case elsewhere. */
int conform_case_copy(const conform_case *c, conform_case *copy);

/* Runs c on `dev` of `table` with `kernel`: buffers allocated, written,
 * the job run (forward, or backward when c->dq is set), synchronized,
 * the outputs read back into c and the buffers freed. Returns the
 * plugin's status (0 on success); on failure *msg is its last_error(). */
int conform_run(const lnet_plugin *table, void *dev, conform_case *c, const char *kernel,
                const char **msg);

/* Compares c's outputs with the reference's; 0 when they agree, else -1
 * with where and by how much in `why`. */
int conform_compare(const conform_case *c, const conform_case *ref, char *why, size_t len);

/* The case in words, into c->what. */
void conform_describe_case(conform_case *c);

/* --------------------------------------------------------------- checks */

typedef int (*conform_check_fn)(conform_session *s);

typedef struct conform_check {
    const char *name;
    const char *summary;
    conform_check_fn run;    /* returns CONFORM_PASS, _FAIL or _SKIP */
} conform_check;

extern const conform_check conform_checks[];

#endif /* LNET_TOOLS_CONFORM_H */
