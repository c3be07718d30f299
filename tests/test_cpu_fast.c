#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* test_cpu_fast.c — the CPU backend's fast kernel through the public API,
 * on every SIMD path this machine can run and with 1, 2 and 3 threads
 * (3: more threads than a small machine has cores, so that items are
 * handed out while threads are descheduled):
 *
 *  - every golden oracle case within 1e-4 (out and lse);
 *  - randomized problems (fixed seeds: small N, D in {1, 7, 16, 32, 64, 80,
 *    128}, H 1..4, 1..4 levels with segments longer than N, dilation equal
 *    to the segment, ragged last segments, causal or not, both offset
 *    modes) against the reference kernel within 2e-5;
 *  - non-finite inputs (NaN and infinities in Q, K, V; scores past float
 *    range): NaN exactly where the reference kernel has it, equal elsewhere;
 *  - the settings' refusals: a bad LONGNET_CPU_SIMD or LONGNET_CPU_THREADS
 *    and an unknown kernel name, each with a message naming the value.
 *
 * The SIMD path and the thread count are read from LONGNET_CPU_SIMD and
 * LONGNET_CPU_THREADS when the device is opened, i.e. at a fresh context's
 * first run; a path the CPU cannot run is reported UNSUPPORTED, and then
 * skipped here with a note (it is not this machine's failure). */
#include <check.h>
#include <dlfcn.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden_cases.h"
#include "longnet-plugin.h"
#include "longnet.h"
#include "seeded_rng.h"
#include "plugin_direct.h"

#define GOLDEN_TOL 1e-4
#define RANDOM_TOL 2e-5
#define N_RANDOM 36
#define MAX_LEVELS 4

static const char *const simd_paths[] = {"avx512", "avx2", "generic"};
static const char *const thread_counts[] = {"1", "2", "3"};
#define N_SIMD 3
#define N_THREADS 3

static golden_set golden;
static int have_golden;

/* ------------------------------------------------------------ helpers */

/* A fresh context whose cpu device will open with this SIMD path and
 * thread count. */
static lnet_context *context_for(const char *simd, const char *threads)
{
    setenv("LONGNET_CPU_SIMD", simd, 1);
    setenv("LONGNET_CPU_THREADS", threads, 1);
    lnet_context *ctx = NULL;
    ck_assert_msg(lnet_context_create(NULL, &ctx) == LNET_OK, "lnet_context_create: %s",
                  lnet_last_error());
    return ctx;
}

static lnet_tensor *tensor4(int64_t B, int64_t N, int64_t H, int64_t D)
{
    int64_t shape[4] = {B, N, H, D};
    lnet_tensor *t = NULL;
    ck_assert_msg(lnet_tensor_create(4, shape, &t) == LNET_OK, "%s", lnet_last_error());
    return t;
}

static lnet_tensor *tensor3(int64_t B, int64_t H, int64_t N)
{
    int64_t shape[3] = {B, H, N};
    lnet_tensor *t = NULL;
    ck_assert_msg(lnet_tensor_create(3, shape, &t) == LNET_OK, "%s", lnet_last_error());
    return t;
}

/* Whether the SIMD path runs here: a one-row problem on a fresh context.
 * Returns 0 (with a note printed) when the CPU cannot run it. */
static int path_runs(const char *simd)
{
    lnet_context *ctx = context_for(simd, "1");
    lnet_tensor *q = tensor4(1, 1, 1, 1), *out = tensor4(1, 1, 1, 1);
    lnet_config *cfg = NULL;
    ck_assert(lnet_config_create(&cfg) == LNET_OK);
    ck_assert(lnet_config_add_level(cfg, 1, 1) == LNET_OK);
    lnet_run_options opts = {.size = sizeof opts, .device = "cpu", .kernel = "fast"};
    lnet_status st = lnet_attention_forward(ctx, cfg, q, q, q, out, NULL, &opts);
    int ok = 1;
    if (st == LNET_ERR_UNSUPPORTED) {
        printf("note: SIMD path %s skipped: %s\n", simd, lnet_last_error());
        fflush(stdout);
        ok = 0;
    } else {
        ck_assert_msg(st == LNET_OK, "simd %s: %s: %s", simd, lnet_status_name(st),
                      lnet_last_error());
    }
    lnet_config_free(cfg);
    lnet_tensor_free(q);
    lnet_tensor_free(out);
    lnet_context_free(ctx);
    return ok;
}

static double max_abs_diff(const lnet_tensor *a, const lnet_tensor *b)
{
    const float *x = lnet_tensor_cdata(a), *y = lnet_tensor_cdata(b);
    double worst = 0.0;
    for (size_t i = 0; i < lnet_tensor_numel(a); i++) {
        if (x[i] == y[i])
            continue; /* also equal infinities */
        double d = fabs((double)x[i] - (double)y[i]);
        if (!(d <= worst))
            worst = d; /* NaN sticks */
    }
    return worst;
}

static float rng_normal(uint64_t *s)
{
    double u = ((double)(rng_next(s) >> 11) + 1.0) * 0x1.0p-53;
    double v = (double)(rng_next(s) >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* ------------------------------------------------------------- golden */

START_TEST(golden_every_path)
{
    if (!have_golden) {
        printf("note: golden cases not found; skipped\n");
        return;
    }
    const golden_case *c = &golden.cases[_i];
    for (int p = 0; p < N_SIMD; p++) {
        if (!path_runs(simd_paths[p]))
            continue;
        for (int t = 0; t < N_THREADS; t++) {
            lnet_context *ctx = context_for(simd_paths[p], thread_counts[t]);
            golden_result r;
            char err[4400];
            int rc = golden_run_case(ctx, &golden, c, "cpu", "fast", &r, err, sizeof err);
            lnet_context_free(ctx);
            ck_assert_msg(rc == 0, "simd %s, %s threads: %s", simd_paths[p], thread_counts[t],
                          err);
            printf("golden %-16s fast/%-7s %s thr: max |out err| %.3g, max |lse err| %.3g\n",
                   c->name, simd_paths[p], thread_counts[t], r.out_err, r.lse_err);
            ck_assert_msg(r.out_err <= GOLDEN_TOL && r.lse_err <= GOLDEN_TOL,
                          "case %s, simd %s, %s threads: max |out err| %g, max |lse err| %g > %g",
                          c->name, simd_paths[p], thread_counts[t], r.out_err, r.lse_err,
                          GOLDEN_TOL);
        }
    }
    fflush(stdout);
}
END_TEST

/* ----------------------------------------------------------- randomized */

typedef struct rcase {
    int64_t B, N, H, D;
    int L;
    int64_t w[MAX_LEVELS], r[MAX_LEVELS];
    int causal, grouped;
} rcase;

static void make_case(int i, rcase *c)
{
    static const int64_t dims[] = {1, 7, 16, 32, 64, 80, 128};
    uint64_t s = 0x5eed0000u + (uint64_t)i;
    c->B = rng_int(&s, 1, 2);
    /* Mostly small, now and then up to ~600 rows (several tiles). */
    c->N = rng_int(&s, 0, 3) == 0 ? rng_int(&s, 200, 600) : rng_int(&s, 1, 200);
    c->H = rng_int(&s, 1, 4);
    c->D = dims[rng_int(&s, 0, 6)];
    c->L = (int)rng_int(&s, 1, MAX_LEVELS);
    for (int l = 0; l < c->L; l++) {
        int kind = (int)rng_int(&s, 0, 5);
        if (kind == 0)
            c->w[l] = c->N + rng_int(&s, 1, 300); /* longer than the sequence */
        else if (kind == 1)
            c->w[l] = rng_int(&s, 1, 8); /* tiny segments */
        else
            c->w[l] = rng_int(&s, 1, c->N + 10); /* ragged ends */
        int rk = (int)rng_int(&s, 0, 3);
        c->r[l] = rk == 0 ? c->w[l] : rk == 1 ? 1 : rng_int(&s, 1, c->w[l] < 9 ? c->w[l] : 9);
    }
    c->r[rng_int(&s, 0, c->L - 1)] = 1; /* DESIGN §1: one level has r = 1 */
    c->causal = (int)rng_int(&s, 0, 1);
    c->grouped = (int)rng_int(&s, 0, 1);
}

static void case_label(const rcase *c, char *buf, size_t len)
{
    int n = snprintf(buf, len, "B%lld N%lld H%lld D%lld %s %s w/r", (long long)c->B,
                     (long long)c->N, (long long)c->H, (long long)c->D,
                     c->causal ? "causal" : "full", c->grouped ? "grouped" : "interleaved");
    for (int l = 0; l < c->L && n > 0 && (size_t)n < len; l++)
        n += snprintf(buf + n, len - (size_t)n, " %lld/%lld", (long long)c->w[l],
                      (long long)c->r[l]);
}

static void run_case(lnet_context *ctx, const rcase *c, const char *kernel, lnet_tensor *q,
                     lnet_tensor *k, lnet_tensor *v, lnet_tensor *out, lnet_tensor *lse)
{
    lnet_config *cfg = NULL;
    ck_assert(lnet_config_create(&cfg) == LNET_OK);
    for (int l = 0; l < c->L; l++)
        ck_assert_msg(lnet_config_add_level(cfg, c->w[l], c->r[l]) == LNET_OK, "%s",
                      lnet_last_error());
    ck_assert(lnet_config_set_causal(cfg, c->causal) == LNET_OK);
    ck_assert(lnet_config_set_offsets(cfg, c->grouped ? LNET_OFFSETS_GROUPED
                                                      : LNET_OFFSETS_INTERLEAVED) == LNET_OK);
    /* NaN first: a row the kernel forgets to write cannot pass. */
    for (size_t i = 0; i < lnet_tensor_numel(out); i++)
        lnet_tensor_data(out)[i] = NAN;
    lnet_run_options opts = {.size = sizeof opts, .device = "cpu", .kernel = kernel};
    lnet_status st = lnet_attention_forward(ctx, cfg, q, k, v, out, lse, &opts);
    ck_assert_msg(st == LNET_OK, "kernel %s: %s: %s", kernel, lnet_status_name(st),
                  lnet_last_error());
    lnet_config_free(cfg);
}

START_TEST(random_vs_reference)
{
    rcase c;
    make_case(_i, &c);
    char label[256];
    case_label(&c, label, sizeof label);

    uint64_t s = 0xfeed0000u + (uint64_t)_i;
    lnet_tensor *in[3];
    for (int t = 0; t < 3; t++) {
        in[t] = tensor4(c.B, c.N, c.H, c.D);
        float *x = lnet_tensor_data(in[t]);
        for (size_t e = 0; e < lnet_tensor_numel(in[t]); e++)
            x[e] = rng_normal(&s);
    }
    lnet_tensor *ref_out = tensor4(c.B, c.N, c.H, c.D), *ref_lse = tensor3(c.B, c.H, c.N);
    lnet_tensor *out = tensor4(c.B, c.N, c.H, c.D), *lse = tensor3(c.B, c.H, c.N);

    lnet_context *ctx = context_for("generic", "1");
    run_case(ctx, &c, "reference", in[0], in[1], in[2], ref_out, ref_lse);
    lnet_context_free(ctx);

    double worst = 0.0;
    for (int p = 0; p < N_SIMD; p++) {
        if (!path_runs(simd_paths[p]))
            continue;
        for (int t = 0; t < N_THREADS; t++) {
            ctx = context_for(simd_paths[p], thread_counts[t]);
            run_case(ctx, &c, "fast", in[0], in[1], in[2], out, lse);
            lnet_context_free(ctx);
            double eo = max_abs_diff(out, ref_out), el = max_abs_diff(lse, ref_lse);
            ck_assert_msg(eo <= RANDOM_TOL && el <= RANDOM_TOL,
                          "%s, simd %s, %s threads: max |out - reference| %g, "
                          "max |lse - reference| %g (tol %g)",
                          label, simd_paths[p], thread_counts[t], eo, el, RANDOM_TOL);
            worst = fmax(worst, fmax(eo, el));
        }
    }
    printf("random %2d %-60s worst |fast - reference| %.3g\n", _i, label, worst);
    fflush(stdout);
    for (int t = 0; t < 3; t++)
        lnet_tensor_free(in[t]);
    lnet_tensor_free(ref_out);
    lnet_tensor_free(ref_lse);
    lnet_tensor_free(out);
    lnet_tensor_free(lse);
}
END_TEST

/* ---------------------------------------------------------- non-finite */

/* DESIGN §1, Non-finite inputs: a NaN or an infinity in Q, K or V, or
 * scores past float range, reach exactly the elements the reference kernel
 * puts them in. Each case perturbs a random problem one way; the fast
 * kernel on every path and thread count must have NaN exactly where the
 * reference has NaN (out and lse), and equal values elsewhere (the same
 * infinities; finite values within RANDOM_TOL, relative past 1). Issue 10,
 * 6: a NaN key used to vanish (no NaN at all where the reference had 256). */
#define N_NONFINITE 24

static const char *const nonfinite_kinds[] = {
    "NaN in K", "NaN in Q", "NaN in V", "+Inf in K", "-Inf in K", "+Inf in Q",
    "+Inf in V", "-Inf in V", "1e30 Q and 1e30 K", "1e20 Q and 1e20 K", "-Inf K row",
    "NaN everywhere in one V row"};
#define N_KINDS (sizeof nonfinite_kinds / sizeof nonfinite_kinds[0])

static void make_nonfinite(int i, rcase *c, lnet_tensor *in[3], uint64_t *s)
{
    memset(c, 0, sizeof *c);
    c->B = 1;
    c->N = 150; /* several tiles on every path (TQ 32 and 64) */
    c->H = 2;
    c->D = (i / (int)N_KINDS) % 2 ? 64 : 7;
    c->causal = (i / (int)N_KINDS + (i % (int)N_KINDS) / 2) % 2;
    c->grouped = 0;
    /* Dense and dilated levels folded together: the non-finite value meets
     * both a first branch (init) and the fold. */
    c->L = 3;
    c->w[0] = 64, c->r[0] = 1;
    c->w[1] = 100, c->r[1] = 2;
    c->w[2] = 150, c->r[2] = 1;
    for (int t = 0; t < 3; t++) {
        in[t] = tensor4(c->B, c->N, c->H, c->D);
        float *x = lnet_tensor_data(in[t]);
        for (size_t e = 0; e < lnet_tensor_numel(in[t]); e++)
            x[e] = rng_normal(s);
    }
    const int kind = i % (int)N_KINDS;
    const size_t n = lnet_tensor_numel(in[0]);
    const size_t row = (size_t)c->D; /* floats between two heads of a row */
    float *q = lnet_tensor_data(in[0]), *k = lnet_tensor_data(in[1]), *v = lnet_tensor_data(in[2]);
    /* A few elements each, at random places (some rows are selected by a
     * level, some not). */
    for (int hits = 0; hits < 3; hits++) {
        const size_t at = (size_t)rng_int(s, 0, (int64_t)n - 1);
        switch (kind) {
        case 0: k[at] = NAN; break;
        case 1: q[at] = NAN; break;
        case 2: v[at] = NAN; break;
        case 3: k[at] = INFINITY; break;
        case 4: k[at] = -INFINITY; break;
        case 5: q[at] = INFINITY; break;
        case 6: v[at] = INFINITY; break;
        case 7: v[at] = -INFINITY; break;
        case 10:
            for (size_t d = 0; d < row; d++)
                k[at / row * row + d] = -INFINITY * (d % 2 ? 1.0f : -1.0f);
            break;
        case 11:
            for (size_t d = 0; d < row; d++)
                v[at / row * row + d] = NAN;
            break;
        default: break;
        }
    }
    if (kind == 8 || kind == 9) {
        const float big = kind == 8 ? 1e30f : 1e20f;
        for (size_t e = 0; e < n; e++) {
            q[e] *= big;
            k[e] *= big;
        }
    }
}

/* The first element where fast and reference disagree (NaN against not,
 * or values apart), or -1. */
static long long nonfinite_mismatch(const lnet_tensor *fast, const lnet_tensor *ref, int *ref_nan)
{
    const float *x = lnet_tensor_cdata(fast), *y = lnet_tensor_cdata(ref);
    *ref_nan = 0;
    long long bad = -1;
    for (size_t i = 0; i < lnet_tensor_numel(ref); i++) {
        *ref_nan += isnan(y[i]) != 0;
        if (bad >= 0)
            continue;
        if (isnan(x[i]) || isnan(y[i])) {
            if (!(isnan(x[i]) && isnan(y[i])))
                bad = (long long)i;
            continue;
        }
        if (x[i] == y[i])
            continue;
        if (isinf(x[i]) || isinf(y[i]) ||
            !(fabs((double)x[i] - (double)y[i]) <= RANDOM_TOL * fmax(1.0, fabs((double)y[i]))))
            bad = (long long)i;
    }
    return bad;
}

START_TEST(non_finite_vs_reference)
{
    rcase c;
    lnet_tensor *in[3];
    uint64_t s = 0x0a0a0000u + (uint64_t)_i;
    make_nonfinite(_i, &c, in, &s);
    const char *kind = nonfinite_kinds[_i % N_KINDS];
    char label[256];
    case_label(&c, label, sizeof label);

    lnet_tensor *ref_out = tensor4(c.B, c.N, c.H, c.D), *ref_lse = tensor3(c.B, c.H, c.N);
    lnet_tensor *out = tensor4(c.B, c.N, c.H, c.D), *lse = tensor3(c.B, c.H, c.N);
    lnet_context *ctx = context_for("generic", "1");
    run_case(ctx, &c, "reference", in[0], in[1], in[2], ref_out, ref_lse);
    lnet_context_free(ctx);

    int ref_nan_out = 0, ref_nan_lse = 0;
    for (int p = 0; p < N_SIMD; p++) {
        if (!path_runs(simd_paths[p]))
            continue;
        for (int t = 0; t < 2; t++) {
            ctx = context_for(simd_paths[p], thread_counts[t]);
            run_case(ctx, &c, "fast", in[0], in[1], in[2], out, lse);
            lnet_context_free(ctx);
            const long long bo = nonfinite_mismatch(out, ref_out, &ref_nan_out);
            const long long bl = nonfinite_mismatch(lse, ref_lse, &ref_nan_lse);
            ck_assert_msg(bo < 0, "%s, %s, simd %s, %s threads: out[%lld] fast %g, reference %g",
                          kind, label, simd_paths[p], thread_counts[t], bo,
                          bo < 0 ? 0.0 : (double)lnet_tensor_cdata(out)[bo],
                          bo < 0 ? 0.0 : (double)lnet_tensor_cdata(ref_out)[bo]);
            ck_assert_msg(bl < 0, "%s, %s, simd %s, %s threads: lse[%lld] fast %g, reference %g",
                          kind, label, simd_paths[p], thread_counts[t], bl,
                          bl < 0 ? 0.0 : (double)lnet_tensor_cdata(lse)[bl],
                          bl < 0 ? 0.0 : (double)lnet_tensor_cdata(ref_lse)[bl]);
        }
    }
    /* The cases are what they say: a NaN in Q or K reaches some rows. */
    if (_i % N_KINDS <= 1)
        ck_assert_msg(ref_nan_out > 0, "%s: the reference has no NaN", kind);
    printf("non-finite %2d %-28s %-44s reference NaN: %d out, %d lse\n", _i, kind, label,
           ref_nan_out, ref_nan_lse);
    fflush(stdout);
    for (int t = 0; t < 3; t++)
        lnet_tensor_free(in[t]);
    lnet_tensor_free(ref_out);
    lnet_tensor_free(ref_lse);
    lnet_tensor_free(out);
    lnet_tensor_free(lse);
}
END_TEST

/* ------------------------------------------------------------- settings */

/* Runs a tiny problem with the given settings and kernel; returns the status
 * and leaves the message in msg. */
static lnet_status try_run(const char *simd, const char *threads, const char *kernel, char *msg,
                           size_t len)
{
    lnet_context *ctx = context_for(simd, threads);
    lnet_tensor *q = tensor4(1, 4, 1, 2), *out = tensor4(1, 4, 1, 2);
    lnet_config *cfg = NULL;
    ck_assert(lnet_config_create(&cfg) == LNET_OK);
    ck_assert(lnet_config_add_level(cfg, 2, 1) == LNET_OK);
    lnet_run_options opts = {.size = sizeof opts, .device = "cpu", .kernel = kernel};
    lnet_status st = lnet_attention_forward(ctx, cfg, q, q, q, out, NULL, &opts);
    snprintf(msg, len, "%s", lnet_last_error());
    lnet_config_free(cfg);
    lnet_tensor_free(q);
    lnet_tensor_free(out);
    lnet_context_free(ctx);
    return st;
}

START_TEST(bad_settings_named)
{
    char msg[1024];
    lnet_status st = try_run("avx9000", "1", NULL, msg, sizeof msg);
    ck_assert_msg(st == LNET_ERR_INVALID && strstr(msg, "avx9000"), "bad simd: %s: %s",
                  lnet_status_name(st), msg);

    static const char *const bad_threads[] = {"0", "-2", "two", "3x", "100000"};
    for (size_t i = 0; i < sizeof bad_threads / sizeof bad_threads[0]; i++) {
        st = try_run("auto", bad_threads[i], NULL, msg, sizeof msg);
        ck_assert_msg(st == LNET_ERR_INVALID && strstr(msg, bad_threads[i]) &&
                          strstr(msg, "LONGNET_CPU_THREADS"),
                      "threads '%s': %s: %s", bad_threads[i], lnet_status_name(st), msg);
    }

    st = try_run("auto", "2", "warp-drive", msg, sizeof msg);
    ck_assert_msg(st == LNET_ERR_UNSUPPORTED && strstr(msg, "warp-drive") &&
                      strstr(msg, "fast,reference"),
                  "unknown kernel: %s: %s", lnet_status_name(st), msg);

    /* The default kernel and both named ones run. */
    ck_assert_msg(try_run("auto", "2", NULL, msg, sizeof msg) == LNET_OK, "%s", msg);
    ck_assert_msg(try_run("auto", "2", "", msg, sizeof msg) == LNET_OK, "%s", msg);
    ck_assert_msg(try_run("auto", "2", "reference", msg, sizeof msg) == LNET_OK, "%s", msg);
}
END_TEST

START_TEST(device_lists_kernels)
{
    lnet_context *ctx = context_for("generic", "1");
    int index;
    ck_assert_msg(lnet_context_find_device(ctx, "cpu", &index) == LNET_OK, "%s",
                  lnet_last_error());
    lnet_device_info info;
    ck_assert(lnet_context_device(ctx, index, &info) == LNET_OK);
    ck_assert_msg(strcmp(info.kernels, "fast,reference") == 0, "kernels: '%s'", info.kernels);
    ck_assert_msg(strstr(info.name, "generic") != NULL, "name '%s' does not say the SIMD path",
                  info.name);
    lnet_context_free(ctx);
}
END_TEST

/* ---------------------------------------- row windows, the plugin driven directly */

/* The public API does not make windowed jobs (the multi-device scheduler
 * will), so these tests call the cpu plugin's table, as test_random.c's
 * "cpu plugin" group does. */

static void *cpu_module;
static const lnet_plugin *cpu;

/* The module the library loads as "cpu" (plugin_direct.c). */
static void open_cpu_plugin(void)
{
    if (cpu)
        return;
    cpu = plugin_direct_open("cpu", &cpu_module);
}

/* A kernel on one opened device: "reference" once, "fast" on every SIMD
 * path this machine runs (the thread count varies with the case, so that
 * 1, 2 and 3 threads all get windowed jobs). */
typedef struct runner {
    const char *kernel;
    char label[48];
    void *dev;
} runner;
#define MAX_RUNNERS (1 + N_SIMD)

static int open_runners(runner *rs, int seed)
{
    open_cpu_plugin();
    int n = 0;
    for (int p = -1; p < N_SIMD; p++) {
        const char *simd = p < 0 ? "generic" : simd_paths[p];
        const char *threads = p < 0 ? "1" : thread_counts[(seed + p) % N_THREADS];
        char options[96];
        snprintf(options, sizeof options, "simd=%s,threads=%s", simd, threads);
        void *dev = NULL;
        int rc = cpu->open(0, options, &dev);
        if (rc == LNET_PLUGIN_ERR_UNSUPPORTED)
            continue; /* this CPU cannot run the path; path_runs() notes it */
        ck_assert_msg(rc == 0, "open(%s): %d: %s", options, rc, cpu->last_error());
        rs[n].kernel = p < 0 ? "reference" : "fast";
        rs[n].dev = dev;
        if (p < 0)
            snprintf(rs[n].label, sizeof rs[n].label, "reference");
        else
            snprintf(rs[n].label, sizeof rs[n].label, "fast/%s/%s thr", simd, threads);
        n++;
    }
    return n;
}

static void close_runners(runner *rs, int n)
{
    for (int i = 0; i < n; i++)
        cpu->close(rs[i].dev);
}

/* One level of a problem, with the whole tensors (full [B, N, H, D] q, k,
 * v) the windows are cut from. */
typedef struct wcase {
    int64_t B, N, H, D, w, r;
    int causal, grouped;
    float scale;
    float *q, *k, *v;
    char label[160];
} wcase;

static void make_wcase(uint64_t seed, wcase *c)
{
    static const int64_t dims[] = {1, 5, 16, 64};
    uint64_t s = seed;
    c->B = rng_int(&s, 1, 2);
    c->N = rng_int(&s, 0, 2) == 0 ? rng_int(&s, 1, 12) : rng_int(&s, 13, 300);
    c->H = rng_int(&s, 1, 3);
    c->D = dims[rng_int(&s, 0, 3)];
    int kind = (int)rng_int(&s, 0, 3);
    c->w = kind == 0   ? c->N + rng_int(&s, 1, 100) /* longer than the sequence */
           : kind == 1 ? rng_int(&s, 1, 9)          /* tiny segments */
                       : rng_int(&s, 1, c->N + 5);  /* ragged ends */
    int rk = (int)rng_int(&s, 0, 3);
    c->r = rk == 0 ? c->w : rk == 1 ? 1 : rng_int(&s, 1, c->w < 9 ? c->w : 9);
    c->causal = (int)rng_int(&s, 0, 1);
    c->grouped = (int)rng_int(&s, 0, 1);
    c->scale = (float)(1.0 / sqrt((double)c->D));
    size_t n = (size_t)(c->B * c->N * c->H * c->D);
    float **t[3] = {&c->q, &c->k, &c->v};
    for (int i = 0; i < 3; i++) {
        *t[i] = malloc(n * sizeof(float));
        ck_assert(*t[i] != NULL);
        for (size_t e = 0; e < n; e++)
            (*t[i])[e] = rng_normal(&s);
    }
    snprintf(c->label, sizeof c->label, "B%lld N%lld H%lld D%lld w%lld r%lld %s %s",
             (long long)c->B, (long long)c->N, (long long)c->H, (long long)c->D,
             (long long)c->w, (long long)c->r, c->causal ? "causal" : "full",
             c->grouped ? "grouped" : "interleaved");
}

static void free_wcase(wcase *c)
{
    free(c->q);
    free(c->k);
    free(c->v);
}

/* The rows a job's buffers hold; q_rows = 0: no window (whole tensors). */
typedef struct wspec {
    int64_t q_base, q_rows, kv_base, kv_rows;
} wspec;

static size_t rows4(const wcase *c, int64_t rows)
{
    return (size_t)(c->B * rows * c->H * c->D);
}

static size_t rows3(const wcase *c, int64_t rows)
{
    return (size_t)(c->B * c->H * rows);
}

/* dst[b][i] = src[b][base + i] for i < rows, of [B, *, H, D] tensors. */
static void cut4(const wcase *c, float *dst, const float *src, int64_t base, int64_t rows)
{
    const size_t row = (size_t)(c->H * c->D);
    for (int64_t b = 0; b < c->B; b++)
        memcpy(dst + (size_t)(b * rows) * row, src + (size_t)(b * c->N + base) * row,
               (size_t)rows * row * sizeof(float));
}

/* The same for [B, H, *] (lse). */
static void cut3(const wcase *c, float *dst, const float *src, int64_t base, int64_t rows)
{
    for (int64_t bh = 0; bh < c->B * c->H; bh++)
        memcpy(dst + (size_t)(bh * rows), src + (size_t)(bh * c->N + base),
               (size_t)rows * sizeof(float));
}

/* A running (out, lse) as levels before this one would leave it: random
 * rows, some with no branch yet (lse = -inf). */
static void random_state(const wcase *c, uint64_t *s, float *out, float *lse)
{
    for (size_t i = 0; i < rows4(c, c->N); i++)
        out[i] = rng_normal(s);
    for (size_t i = 0; i < rows3(c, c->N); i++)
        lse[i] = rng_int(s, 0, 3) == 0 ? -INFINITY : 2.0f * rng_normal(s);
}

/* A malloc'ed copy of exactly n floats: the kernel sees arrays holding
 * exactly the windows' rows, so that a stray access falls outside them for
 * valgrind or ASan. */
static float *exact_copy(const float *src, size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    ck_assert(p != NULL);
    memcpy(p, src, n * sizeof(float));
    return p;
}

/* Runs one job of the level over rows [rb, re) with the given windows; q,
 * k, v, out and lse hold the windows' rows (at least). `old_size`: a caller
 * built before the window fields, which the plugin must take as no
 * window. */
static void run_wjob(const runner *ru, const wcase *c, const wspec *ws, int64_t rb, int64_t re,
                     int init, int old_size, const float *q, const float *k, const float *v,
                     float *out, float *lse)
{
    const int64_t qn = ws->q_rows ? ws->q_rows : c->N, kn = ws->q_rows ? ws->kv_rows : c->N;
    const size_t q4 = rows4(c, qn), k4 = rows4(c, kn), q3 = rows3(c, qn);
    float *xq = exact_copy(q, q4), *xk = exact_copy(k, k4), *xv = exact_copy(v, k4);
    float *xo = exact_copy(out, q4), *xl = exact_copy(lse, q3);
    void *bq, *bk, *bv, *bo, *bl;
    ck_assert(cpu->buffer_wrap_host(ru->dev, xq, q4 * sizeof(float), &bq) == 0);
    ck_assert(cpu->buffer_wrap_host(ru->dev, xk, k4 * sizeof(float), &bk) == 0);
    ck_assert(cpu->buffer_wrap_host(ru->dev, xv, k4 * sizeof(float), &bv) == 0);
    ck_assert(cpu->buffer_wrap_host(ru->dev, xo, q4 * sizeof(float), &bo) == 0);
    ck_assert(cpu->buffer_wrap_host(ru->dev, xl, q3 * sizeof(float), &bl) == 0);
    lnet_segment_job job = {
        .size = old_size ? offsetof(lnet_segment_job, q_base) : sizeof job,
        .batch = c->B, .rows = c->N, .heads = c->H, .dim = c->D,
        .row_begin = rb, .row_end = re,
        .segment = c->w, .dilation = c->r,
        .offsets = c->grouped ? LNET_PLUGIN_OFFSETS_GROUPED : LNET_PLUGIN_OFFSETS_INTERLEAVED,
        .causal = c->causal, .init = init, .scale = c->scale, .kernel = ru->kernel,
        .q = bq, .k = bk, .v = bv, .out = bo, .lse = bl,
        .q_base = ws->q_base, .q_rows = ws->q_rows, .kv_base = ws->kv_base,
        .kv_rows = ws->kv_rows,
    };
    if (old_size)
        job.q_base = job.q_rows = job.kv_base = job.kv_rows = 12345; /* must not be read */
    int rc = cpu->run_segment(ru->dev, &job);
    ck_assert_msg(rc == 0,
                  "%s, %s: rows [%lld, %lld), q window %lld+%lld, kv window %lld+%lld: %d: %s",
                  c->label, ru->label, (long long)rb, (long long)re, (long long)ws->q_base,
                  (long long)ws->q_rows, (long long)ws->kv_base, (long long)ws->kv_rows, rc,
                  cpu->last_error());
    cpu->buffer_free(ru->dev, bq);
    cpu->buffer_free(ru->dev, bk);
    cpu->buffer_free(ru->dev, bv);
    cpu->buffer_free(ru->dev, bo);
    cpu->buffer_free(ru->dev, bl);
    memcpy(out, xo, q4 * sizeof(float));
    memcpy(lse, xl, q3 * sizeof(float));
    free(xq), free(xk), free(xv), free(xo), free(xl);
}

static double max_diff(const float *x, const float *y, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (x[i] == y[i])
            continue; /* also equal infinities */
        double d = fabs((double)x[i] - (double)y[i]);
        if (!(d <= worst))
            worst = d; /* NaN sticks */
    }
    return worst;
}

/* A row range [*rb, *re) (the whole sequence a third of the time, empty now
 * and then) and a query window holding it. */
static void random_rows(const wcase *c, uint64_t *s, int64_t *rb, int64_t *re, wspec *ws)
{
    const int64_t N = c->N;
    if (rng_int(s, 0, 2) == 0) {
        *rb = 0;
        *re = N;
    } else {
        *rb = rng_int(s, 0, N);
        *re = rng_int(s, *rb, N);
    }
    const int64_t lo = *rb < N - 1 ? *rb : N - 1;
    ws->q_base = rng_int(s, 0, lo);
    const int64_t q_end = rng_int(s, *re > ws->q_base + 1 ? *re : ws->q_base + 1, N);
    ws->q_rows = q_end - ws->q_base;
}

#define N_WINDOWS 40

/* (a) A query window with the whole sequence as the K/V window gives the
 * rows of the job without windows, on every kernel and path. */
START_TEST(window_q_matches_full)
{
    wcase c;
    make_wcase(0x71d0000u + (uint64_t)_i, &c);
    uint64_t s = 0xa11ce000u + (uint64_t)_i;
    runner rs[MAX_RUNNERS];
    int nr = open_runners(rs, _i);
    const size_t n4 = rows4(&c, c.N), n3 = rows3(&c, c.N);
    float *prior_o = malloc(n4 * sizeof(float)), *prior_l = malloc(n3 * sizeof(float));
    float *full_o = malloc(n4 * sizeof(float)), *full_l = malloc(n3 * sizeof(float));
    float *qw = malloc(n4 * sizeof(float)), *ow = malloc(n4 * sizeof(float));
    float *lw = malloc(n3 * sizeof(float)), *want_o = malloc(n4 * sizeof(float));
    float *want_l = malloc(n3 * sizeof(float));
    ck_assert(prior_o && prior_l && full_o && full_l && qw && ow && lw && want_o && want_l);

    double worst = 0.0;
    for (int rep = 0; rep < 3; rep++) {
        int64_t rb, re;
        wspec ws;
        random_rows(&c, &s, &rb, &re, &ws);
        ws.kv_base = 0;
        ws.kv_rows = c.N;
        /* init is allowed: every query's own row is in the K/V window. */
        const int init = c.r == 1 && rng_int(&s, 0, 1);
        const int old_size = (int)rng_int(&s, 0, 1);
        random_state(&c, &s, prior_o, prior_l);
        for (int i = 0; i < nr; i++) {
            memcpy(full_o, prior_o, n4 * sizeof(float));
            memcpy(full_l, prior_l, n3 * sizeof(float));
            const wspec none = {0, 0, 0, 0};
            run_wjob(&rs[i], &c, &none, rb, re, init, old_size, c.q, c.k, c.v, full_o, full_l);

            cut4(&c, qw, c.q, ws.q_base, ws.q_rows);
            cut4(&c, ow, prior_o, ws.q_base, ws.q_rows);
            cut3(&c, lw, prior_l, ws.q_base, ws.q_rows);
            run_wjob(&rs[i], &c, &ws, rb, re, init, 0, qw, c.k, c.v, ow, lw);

            cut4(&c, want_o, full_o, ws.q_base, ws.q_rows);
            cut3(&c, want_l, full_l, ws.q_base, ws.q_rows);
            double eo = max_diff(ow, want_o, rows4(&c, ws.q_rows));
            double el = max_diff(lw, want_l, rows3(&c, ws.q_rows));
            ck_assert_msg(eo <= RANDOM_TOL && el <= RANDOM_TOL,
                          "%s, %s: rows [%lld, %lld) in q window %lld+%lld%s: windowed vs "
                          "whole: max |out diff| %g, max |lse diff| %g (tol %g)",
                          c.label, rs[i].label, (long long)rb, (long long)re,
                          (long long)ws.q_base, (long long)ws.q_rows, init ? ", init" : "", eo,
                          el, RANDOM_TOL);
            worst = fmax(worst, fmax(eo, el));
        }
    }
    printf("window q %2d %-48s %d kernels, worst |windowed - whole| %.3g\n", _i, c.label, nr,
           worst);
    fflush(stdout);
    close_runners(rs, nr);
    free(prior_o), free(prior_l), free(full_o), free(full_l), free(qw), free(ow), free(lw);
    free(want_o), free(want_l);
    free_wcase(&c);
}
END_TEST

/* (b) The keys cut into 2 or 3 consecutive K/V windows, one job each (in
 * any order, init = 0, from out = 0 and lse = -inf), give the job with all
 * the keys: folding by blocks of keys is exact, which ring attention relies
 * on. The query window is random too. */
START_TEST(window_kv_blocks_fold)
{
    wcase c;
    make_wcase(0x8b10000u + (uint64_t)_i, &c);
    uint64_t s = 0xb0b0000u + (uint64_t)_i;
    runner rs[MAX_RUNNERS];
    int nr = open_runners(rs, _i + 1);
    const size_t n4 = rows4(&c, c.N);
    float *qw = malloc(n4 * sizeof(float)), *kw = malloc(n4 * sizeof(float));
    float *vw = malloc(n4 * sizeof(float));
    float *one_o = malloc(n4 * sizeof(float)), *one_l = malloc(rows3(&c, c.N) * sizeof(float));
    float *cut_o = malloc(n4 * sizeof(float)), *cut_l = malloc(rows3(&c, c.N) * sizeof(float));
    ck_assert(qw && kw && vw && one_o && one_l && cut_o && cut_l);

    double worst = 0.0;
    for (int rep = 0; rep < 3; rep++) {
        int64_t rb, re;
        wspec ws;
        random_rows(&c, &s, &rb, &re, &ws);
        cut4(&c, qw, c.q, ws.q_base, ws.q_rows);
        /* Cut points 0 = cut[0] < ... < cut[nb] = N. */
        int64_t cut[4] = {0, c.N, c.N, c.N};
        int nb = 1;
        if (c.N >= 2) {
            nb = c.N >= 3 ? (int)rng_int(&s, 2, 3) : 2;
            if (nb == 2) {
                cut[1] = rng_int(&s, 1, c.N - 1);
            } else {
                cut[1] = rng_int(&s, 1, c.N - 2);
                cut[2] = rng_int(&s, cut[1] + 1, c.N - 1);
            }
        }
        cut[nb] = c.N;
        int order[3] = {0, 1, 2};
        for (int i = nb - 1; i > 0; i--) {
            int j = (int)rng_int(&s, 0, i), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        const size_t qn4 = rows4(&c, ws.q_rows), qn3 = rows3(&c, ws.q_rows);
        for (int i = 0; i < nr; i++) {
            for (size_t e = 0; e < qn4; e++)
                one_o[e] = cut_o[e] = 0.0f;
            for (size_t e = 0; e < qn3; e++)
                one_l[e] = cut_l[e] = -INFINITY;
            wspec all = ws;
            all.kv_base = 0;
            all.kv_rows = c.N;
            run_wjob(&rs[i], &c, &all, rb, re, 0, 0, qw, c.k, c.v, one_o, one_l);
            for (int bi = 0; bi < nb; bi++) {
                const int blk = order[bi];
                wspec part = ws;
                part.kv_base = cut[blk];
                part.kv_rows = cut[blk + 1] - cut[blk];
                cut4(&c, kw, c.k, part.kv_base, part.kv_rows);
                cut4(&c, vw, c.v, part.kv_base, part.kv_rows);
                run_wjob(&rs[i], &c, &part, rb, re, 0, 0, qw, kw, vw, cut_o, cut_l);
            }
            double eo = max_diff(cut_o, one_o, qn4), el = max_diff(cut_l, one_l, qn3);
            ck_assert_msg(eo <= RANDOM_TOL && el <= RANDOM_TOL,
                          "%s, %s: rows [%lld, %lld), q window %lld+%lld, keys cut at %lld %lld "
                          "(%d blocks): folded blocks vs all keys: max |out diff| %g, "
                          "max |lse diff| %g (tol %g)",
                          c.label, rs[i].label, (long long)rb, (long long)re,
                          (long long)ws.q_base, (long long)ws.q_rows, (long long)cut[1],
                          (long long)cut[2], nb, eo, el, RANDOM_TOL);
            worst = fmax(worst, fmax(eo, el));
        }
    }
    printf("window kv %2d %-47s %d kernels, worst |blocks - all keys| %.3g\n", _i, c.label, nr,
           worst);
    fflush(stdout);
    close_runners(rs, nr);
    free(qw), free(kw), free(vw), free(one_o), free(one_l), free(cut_o), free(cut_l);
    free_wcase(&c);
}
END_TEST

/* (c) The fast kernel equals the reference on windowed jobs with any query
 * and K/V windows (overlapping or not, before or after each other), from a
 * random running state: rows with no key in the window must be left as
 * they were, like every unselected row. */
START_TEST(window_fast_vs_reference)
{
    wcase c;
    make_wcase(0x9c20000u + (uint64_t)_i, &c);
    uint64_t s = 0xc0de000u + (uint64_t)_i;
    runner rs[MAX_RUNNERS];
    int nr = open_runners(rs, _i + 2);
    ck_assert_str_eq(rs[0].kernel, "reference");
    const size_t n4 = rows4(&c, c.N), n3 = rows3(&c, c.N);
    float *prior_o = malloc(n4 * sizeof(float)), *prior_l = malloc(n3 * sizeof(float));
    float *qw = malloc(n4 * sizeof(float)), *kw = malloc(n4 * sizeof(float));
    float *vw = malloc(n4 * sizeof(float));
    float *ref_o = malloc(n4 * sizeof(float)), *ref_l = malloc(n3 * sizeof(float));
    float *ow = malloc(n4 * sizeof(float)), *lw = malloc(n3 * sizeof(float));
    ck_assert(prior_o && prior_l && qw && kw && vw && ref_o && ref_l && ow && lw);

    double worst = 0.0;
    for (int rep = 0; rep < 4; rep++) {
        int64_t rb, re;
        wspec ws;
        random_rows(&c, &s, &rb, &re, &ws);
        ws.kv_base = rng_int(&s, 0, c.N - 1);
        ws.kv_rows = rng_int(&s, 1, c.N - ws.kv_base);
        const int init = c.r == 1 && rb >= ws.kv_base && re <= ws.kv_base + ws.kv_rows &&
                         rng_int(&s, 0, 1);
        random_state(&c, &s, prior_o, prior_l);
        cut4(&c, qw, c.q, ws.q_base, ws.q_rows);
        cut4(&c, kw, c.k, ws.kv_base, ws.kv_rows);
        cut4(&c, vw, c.v, ws.kv_base, ws.kv_rows);
        const size_t qn4 = rows4(&c, ws.q_rows), qn3 = rows3(&c, ws.q_rows);
        cut4(&c, ref_o, prior_o, ws.q_base, ws.q_rows);
        cut3(&c, ref_l, prior_l, ws.q_base, ws.q_rows);
        run_wjob(&rs[0], &c, &ws, rb, re, init, 0, qw, kw, vw, ref_o, ref_l);
        for (int i = 1; i < nr; i++) {
            cut4(&c, ow, prior_o, ws.q_base, ws.q_rows);
            cut3(&c, lw, prior_l, ws.q_base, ws.q_rows);
            run_wjob(&rs[i], &c, &ws, rb, re, init, 0, qw, kw, vw, ow, lw);
            double eo = max_diff(ow, ref_o, qn4), el = max_diff(lw, ref_l, qn3);
            ck_assert_msg(eo <= RANDOM_TOL && el <= RANDOM_TOL,
                          "%s, %s: rows [%lld, %lld), q window %lld+%lld, kv window "
                          "%lld+%lld%s: max |out - reference| %g, max |lse - reference| %g "
                          "(tol %g)",
                          c.label, rs[i].label, (long long)rb, (long long)re,
                          (long long)ws.q_base, (long long)ws.q_rows, (long long)ws.kv_base,
                          (long long)ws.kv_rows, init ? ", init" : "", eo, el, RANDOM_TOL);
            worst = fmax(worst, fmax(eo, el));
        }
    }
    printf("window fast %2d %-45s %d paths, worst |fast - reference| %.3g\n", _i, c.label,
           nr - 1, worst);
    fflush(stdout);
    close_runners(rs, nr);
    free(prior_o), free(prior_l), free(qw), free(kw), free(vw), free(ref_o), free(ref_l);
    free(ow), free(lw);
    free_wcase(&c);
}
END_TEST

/* Windows deep inside a sequence far longer than any buffer: the kernels'
 * work and scratch must follow the windows, not `rows` (a sequence spread
 * over many devices). A small problem (200 rows in one segment of 512) is
 * compared with the same rows placed at 2^40 of a 1.5 * 2^40 row sequence
 * whose segments of 2^39 rows put a segment start at 2^40: the rows see
 * the same segment-relative positions, so the results must agree. */
START_TEST(window_far_rows)
{
    const int64_t far = (int64_t)1 << 40;
    wcase c = {.B = 1, .N = 200, .H = 2, .D = 16, .w = 512, .r = 2, .causal = 1, .scale = 0.25f};
    uint64_t s = 0xfa40001u;
    const size_t n4 = rows4(&c, c.N), n3 = rows3(&c, c.N);
    float *in[3];
    for (int t = 0; t < 3; t++) {
        in[t] = malloc(n4 * sizeof(float));
        ck_assert(in[t] != NULL);
        for (size_t e = 0; e < n4; e++)
            in[t][e] = rng_normal(&s);
    }
    c.q = in[0], c.k = in[1], c.v = in[2];
    snprintf(c.label, sizeof c.label, "far rows");
    runner rs[MAX_RUNNERS];
    int nr = open_runners(rs, 0);
    float *small_o = malloc(n4 * sizeof(float)), *small_l = malloc(n3 * sizeof(float));
    float *far_o = malloc(n4 * sizeof(float)), *far_l = malloc(n3 * sizeof(float));
    ck_assert(small_o && small_l && far_o && far_l);

    /* Rows [50, 190) of a q window [40, 200), K/V window [10, 150). */
    const wspec ws_small = {40, 160, 10, 140};
    for (int i = 0; i < nr; i++) {
        wcase cs = c;
        for (size_t e = 0; e < n4; e++)
            small_o[e] = far_o[e] = 0.0f;
        for (size_t e = 0; e < n3; e++)
            small_l[e] = far_l[e] = -INFINITY;
        run_wjob(&rs[i], &cs, &ws_small, 50, 190, 0, 0, c.q + rows4(&c, 40),
                 c.k + rows4(&c, 10), c.v + rows4(&c, 10), small_o, small_l);

        wcase cf = c;
        cf.N = far + far / 2;
        cf.w = far / 2;
        const wspec ws_far = {far + 40, 160, far + 10, 140};
        run_wjob(&rs[i], &cf, &ws_far, far + 50, far + 190, 0, 0, c.q + rows4(&c, 40),
                 c.k + rows4(&c, 10), c.v + rows4(&c, 10), far_o, far_l);
        double eo = max_diff(far_o, small_o, rows4(&c, 160));
        double el = max_diff(far_l, small_l, rows3(&c, 160));
        ck_assert_msg(eo <= RANDOM_TOL && el <= RANDOM_TOL,
                      "%s: rows near 2^40 vs near 0: max |out diff| %g, max |lse diff| %g",
                      rs[i].label, eo, el);
    }
    close_runners(rs, nr);
    free(small_o), free(small_l), free(far_o), free(far_l);
    for (int t = 0; t < 3; t++)
        free(in[t]);
}
END_TEST

/* (d) The device says its kernels honour windows. */
START_TEST(window_caps)
{
    open_cpu_plugin();
    lnet_plugin_device_desc desc = {.size = sizeof desc}; /* ABI 2: the caller's size */
    ck_assert_msg(cpu->describe(0, &desc) == 0, "describe: %s", cpu->last_error());
    ck_assert_msg(desc.caps & LNET_PLUGIN_CAP_WINDOWS, "caps 0x%x lack LNET_PLUGIN_CAP_WINDOWS",
                  desc.caps);
}
END_TEST

/* (e) Windows that do not fit the job are refused, naming the values. */
START_TEST(window_refusals)
{
    open_cpu_plugin();
    void *dev = NULL;
    ck_assert_msg(cpu->open(0, "threads=1", &dev) == 0, "open: %s", cpu->last_error());
    /* B 1, N 50, H 1, D 2; buffers of 20 rows (q, out, lse) and 10 (k, v). */
    static float q[40], kv[20], out[40], lse[20];
    void *bq, *bk, *bv, *bo, *bl;
    ck_assert(cpu->buffer_wrap_host(dev, q, sizeof q, &bq) == 0);
    ck_assert(cpu->buffer_wrap_host(dev, kv, sizeof kv, &bk) == 0);
    ck_assert(cpu->buffer_wrap_host(dev, kv, sizeof kv, &bv) == 0);
    ck_assert(cpu->buffer_wrap_host(dev, out, sizeof out, &bo) == 0);
    ck_assert(cpu->buffer_wrap_host(dev, lse, sizeof lse, &bl) == 0);
    const lnet_segment_job good = {
        .size = sizeof good, .batch = 1, .rows = 50, .heads = 1, .dim = 2,
        .row_begin = 25, .row_end = 35, .segment = 16, .dilation = 1,
        .offsets = LNET_PLUGIN_OFFSETS_INTERLEAVED, .causal = 1, .init = 0, .scale = 0.5f,
        .q = bq, .k = bk, .v = bv, .out = bo, .lse = bl,
        .q_base = 20, .q_rows = 20, .kv_base = 30, .kv_rows = 10,
    };
    static const char *const kernels[] = {"fast", "reference", NULL};
    for (const char *const *kernel = kernels; *kernel; kernel++) {
        lnet_segment_job job = good;
        job.kernel = *kernel;
        ck_assert_msg(cpu->run_segment(dev, &job) == 0, "%s: the good job: %s", *kernel,
                      cpu->last_error());

        static const struct {
            int64_t q_base, q_rows, kv_base, kv_rows, row_begin, row_end;
            const char *needle[2];
        } bad[] = {
            {-1, 20, 30, 10, 25, 35, {"20 rows from row -1", "50"}}, /* q window before row 0 */
            {31, 20, 30, 10, 35, 40, {"20 rows from row 31", "50"}}, /* q window past the end */
            {20, 20, 30, 0, 25, 35, {"0 rows from row 30", "key/value"}}, /* kv_rows 0 */
            {20, 20, 45, 10, 25, 35, {"10 rows from row 45", "key/value"}}, /* kv past the end */
            {20, 20, -3, 10, 25, 35, {"10 rows from row -3", "key/value"}},
            {20, 20, 30, 10, 15, 35, {"[15, 35)", "[20, 40)"}}, /* rows begin before */
            {20, 20, 30, 10, 25, 41, {"[25, 41)", "[20, 40)"}}, /* rows end after */
            {20, 21, 30, 10, 25, 35, {"buffer q", "168"}},      /* q buffer too small */
            {20, 20, 30, 11, 25, 35, {"buffer k", "88"}},       /* k buffer too small */
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            job = good;
            job.kernel = *kernel;
            job.q_base = bad[i].q_base;
            job.q_rows = bad[i].q_rows;
            job.kv_base = bad[i].kv_base;
            job.kv_rows = bad[i].kv_rows;
            job.row_begin = bad[i].row_begin;
            job.row_end = bad[i].row_end;
            int rc = cpu->run_segment(dev, &job);
            const char *msg = cpu->last_error();
            ck_assert_msg(rc == LNET_PLUGIN_ERR_INVALID && strstr(msg, bad[i].needle[0]) &&
                              strstr(msg, bad[i].needle[1]),
                          "%s, bad window %zu: rc %d, message '%s' (should name '%s' and '%s')",
                          *kernel, i, rc, msg, bad[i].needle[0], bad[i].needle[1]);
        }
    }
    cpu->buffer_free(dev, bq);
    cpu->buffer_free(dev, bk);
    cpu->buffer_free(dev, bv);
    cpu->buffer_free(dev, bo);
    cpu->buffer_free(dev, bl);
    cpu->close(dev);
}
END_TEST

int main(void)
{
    /* The golden cases ship with the project (tests/golden): without them
     * this test would quietly check less, so it fails instead. */
    const char *dir = getenv("LONGNET_GOLDEN_DIR");
    char err[1024];
    have_golden = dir && dir[0] && golden_load(dir, &golden, err, sizeof err) == 0;
    if (!have_golden) {
        printf("FAIL: golden cases not loaded from LONGNET_GOLDEN_DIR='%s'%s%s\n",
               dir ? dir : "", dir && dir[0] ? ": " : "", dir && dir[0] ? err : "");
        return EXIT_FAILURE;
    }

    Suite *s = suite_create("cpu_fast");
    TCase *tc = tcase_create("fast");
    /* Generous: valgrind runs are many times slower than native ones. */
    tcase_set_timeout(tc, 600);
    if (have_golden)
        tcase_add_loop_test(tc, golden_every_path, 0, golden.n);
    tcase_add_loop_test(tc, random_vs_reference, 0, N_RANDOM);
    tcase_add_loop_test(tc, non_finite_vs_reference, 0, N_NONFINITE);
    tcase_add_test(tc, bad_settings_named);
    tcase_add_test(tc, device_lists_kernels);
    suite_add_tcase(s, tc);

    tc = tcase_create("windows");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, window_q_matches_full, 0, N_WINDOWS);
    tcase_add_loop_test(tc, window_kv_blocks_fold, 0, N_WINDOWS);
    tcase_add_loop_test(tc, window_fast_vs_reference, 0, N_WINDOWS);
    tcase_add_test(tc, window_far_rows);
    tcase_add_test(tc, window_caps);
    tcase_add_test(tc, window_refusals);
    suite_add_tcase(s, tc);

    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (have_golden)
        golden_free(&golden);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
