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
 *  - the settings' refusals: a bad LONGNET_CPU_SIMD or LONGNET_CPU_THREADS
 *    and an unknown kernel name, each with a message naming the value.
 *
 * The SIMD path and the thread count are read from LONGNET_CPU_SIMD and
 * LONGNET_CPU_THREADS when the device is opened, i.e. at a fresh context's
 * first run; a path the CPU cannot run is reported UNSUPPORTED, and then
 * skipped here with a note (it is not this machine's failure). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden_cases.h"
#include "longnet.h"

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

/* splitmix64: the same numbers on every platform. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int64_t rng_int(uint64_t *s, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng_next(s) % (uint64_t)(hi - lo + 1));
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

int main(void)
{
    const char *dir = getenv("LONGNET_GOLDEN_DIR");
    if (dir && dir[0]) {
        char err[1024];
        have_golden = golden_load(dir, &golden, err, sizeof err) == 0;
        if (!have_golden)
            printf("note: golden cases not loaded: %s\n", err);
    }

    Suite *s = suite_create("cpu_fast");
    TCase *tc = tcase_create("fast");
    /* Generous: valgrind runs are many times slower than native ones. */
    tcase_set_timeout(tc, 600);
    if (have_golden)
        tcase_add_loop_test(tc, golden_every_path, 0, golden.n);
    tcase_add_loop_test(tc, random_vs_reference, 0, N_RANDOM);
    tcase_add_test(tc, bad_settings_named);
    tcase_add_test(tc, device_lists_kernels);
    suite_add_tcase(s, tc);

    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (have_golden)
        golden_free(&golden);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
