#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* test_opencl.c — the OpenCL backend on every OpenCL device found:
 *
 *  - every golden case (DESIGN §1), kernels "fused" and "gemm", within 1e-4;
 *  - randomized problems (fixed seeds) against the CPU backend's reference
 *    kernel, within 1e-4, both kernels; head dimensions 1..256;
 *  - the plugin driven directly, with both forms of the fused kernel
 *    (fused=rows, fused=tiled) and the gemm path: row ranges cut anywhere
 *    and folding from lse = -inf in reverse level order (as the scheduler
 *    will run it); row windows — queries split into query windows, keys
 *    into consecutive K/V windows folded one after another from
 *    (out = 0, lse = -inf), as ring attention does — equal to one job
 *    without windows within 1e-5; tile overrides (results unchanged);
 *    refused options, windows and oversized buffers with messages naming
 *    the value;
 *  - the program cache: a first run writes one entry, a second context's run
 *    reads it without rewriting it, and a garbage, truncated, wrong-key or
 *    corrupted entry is rebuilt (results still right, a valid file again);
 *    an unwritable cache directory only means no caching.
 *
 * Skips (exit 77) only when no OpenCL device exists. The cache lives in a
 * fresh temporary directory (LONGNET_CACHE_DIR), removed at the end. The
 * tests run in one process (no fork): an OpenCL runtime does not survive
 * fork(), and one process keeps the built programs for every test. */
#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../backends/opencl-common/ocl_sha256.h"
#include "golden_cases.h"
#include "longnet-plugin.h"
#include "longnet.h"
#include "opencl_test.h"
#include "seeded_rng.h"

#define TOL 1e-4
#define N_RANDOM 40
#define N_CHUNKED 12
#define MAX_LEVELS 4
#define MAX_DEVICES 16

static golden_set cases;
static lnet_context *ctx;       /* kept for the whole run: programs stay built */
static int n_devices;
static char cache_root[256];    /* the temporary directory of this run */
static const char *kernels[] = {"fused", "gemm"};
static int n_kernels = 2;

/* ------------------------------------------------------------ helpers */

typedef struct rcase {
    int64_t B, N, H, D;
    int L;
    int64_t w[MAX_LEVELS], r[MAX_LEVELS];
    int causal, grouped;
    double scale;
    uint64_t seed;
} rcase;

/* Head dimensions drawn from a short list: every distinct D is a program
 * build (seconds on PoCL), and these cover 1, odd, and the usual sizes. */
static const int64_t dims[] = {1, 7, 8, 16, 32};

static rcase random_case(uint64_t seed)
{
    uint64_t s = seed;
    rcase c = {.seed = seed};
    c.B = rng_int(&s, 1, 2);
    c.N = rng_int(&s, 1, 200);
    c.H = rng_int(&s, 1, 5);
    c.D = dims[rng_int(&s, 0, sizeof dims / sizeof dims[0] - 1)];
    c.L = (int)rng_int(&s, 1, MAX_LEVELS);
    int dense = (int)rng_int(&s, 0, c.L - 1);
    for (int i = 0; i < c.L; i++) {
        c.w[i] = rng_int(&s, 1, 2 * c.N + 3);
        c.r[i] = i == dense ? 1 : rng_int(&s, 1, c.w[i]);
    }
    c.causal = (int)rng_int(&s, 0, 1);
    c.grouped = (int)rng_int(&s, 0, 1);
    c.scale = rng_int(&s, 0, 2) == 0 ? 0.0 : rng_real(&s, 0.05, 1.0);
    return c;
}

static void describe(const rcase *c, char *buf, size_t len)
{
    int n = snprintf(buf, len, "seed %llu: B%lld N%lld H%lld D%lld levels",
                     (unsigned long long)c->seed, (long long)c->B, (long long)c->N,
                     (long long)c->H, (long long)c->D);
    for (int i = 0; i < c->L && n > 0 && (size_t)n < len; i++)
        n += snprintf(buf + n, len - (size_t)n, " %lld:%lld", (long long)c->w[i],
                      (long long)c->r[i]);
    if (n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " %s %s", c->causal ? "causal" : "full",
                 c->grouped ? "grouped" : "interleaved");
}

static size_t numel4(const rcase *c)
{
    return (size_t)(c->B * c->N * c->H * c->D);
}

static size_t numel3(const rcase *c)
{
    return (size_t)(c->B * c->H * c->N);
}

static double actual_scale(const rcase *c)
{
    return c->scale > 0 ? c->scale : 1.0 / sqrt((double)c->D);
}

typedef struct problem {
    rcase c;
    float *q, *k, *v;
} problem;

static problem make_problem(const rcase *c)
{
    problem p = {*c, NULL, NULL, NULL};
    size_t n = numel4(c);
    p.q = malloc(n * sizeof(float));
    p.k = malloc(n * sizeof(float));
    p.v = malloc(n * sizeof(float));
    ck_assert_msg(p.q && p.k && p.v, "out of memory");
    uint64_t s = c->seed ^ 0x5eed5eed5eedull;
    for (size_t i = 0; i < n; i++) {
        p.q[i] = (float)rng_real(&s, -1, 1);
        p.k[i] = (float)rng_real(&s, -1, 1);
        p.v[i] = (float)rng_real(&s, -1, 1);
    }
    return p;
}

static void free_problem(problem *p)
{
    free(p->q);
    free(p->k);
    free(p->v);
}

static double max_err(const float *got, const float *want, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= m))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

/* Runs the problem through the public API on `device` with `kernel`;
 * out and lse are malloc'd by the callee. */
static void run_public(lnet_context *cx, const problem *p, const char *device, const char *kernel,
                       float **out_p, float **lse_p)
{
    const rcase *c = &p->c;
    char what[256];
    describe(c, what, sizeof what);
    lnet_config *cfg = NULL;
    ck_assert(lnet_config_create(&cfg) == LNET_OK);
    for (int i = 0; i < c->L; i++)
        ck_assert_msg(lnet_config_add_level(cfg, c->w[i], c->r[i]) == LNET_OK, "%s: %s", what,
                      lnet_last_error());
    ck_assert(lnet_config_set_causal(cfg, c->causal) == LNET_OK);
    ck_assert(lnet_config_set_offsets(cfg, c->grouped ? LNET_OFFSETS_GROUPED
                                                      : LNET_OFFSETS_INTERLEAVED) == LNET_OK);
    ck_assert(lnet_config_set_scale(cfg, c->scale) == LNET_OK);
    int64_t s4[4] = {c->B, c->N, c->H, c->D}, s3[3] = {c->B, c->H, c->N};
    float *out = malloc(numel4(c) * sizeof(float)), *lse = malloc(numel3(c) * sizeof(float));
    ck_assert(out && lse);
    for (size_t i = 0; i < numel4(c); i++)
        out[i] = NAN;
    for (size_t i = 0; i < numel3(c); i++)
        lse[i] = NAN;
    lnet_tensor *q, *k, *v, *o, *l;
    ck_assert(lnet_tensor_wrap(p->q, 4, s4, &q) == LNET_OK);
    ck_assert(lnet_tensor_wrap(p->k, 4, s4, &k) == LNET_OK);
    ck_assert(lnet_tensor_wrap(p->v, 4, s4, &v) == LNET_OK);
    ck_assert(lnet_tensor_wrap(out, 4, s4, &o) == LNET_OK);
    ck_assert(lnet_tensor_wrap(lse, 3, s3, &l) == LNET_OK);
    lnet_run_options opts = {.size = sizeof opts, .device = device, .kernel = kernel};
    lnet_status st = lnet_attention_forward(cx, cfg, q, k, v, o, l, &opts);
    ck_assert_msg(st == LNET_OK, "%s on %s/%s: %s", what, device, kernel ? kernel : "default",
                  lnet_last_error());
    lnet_tensor_free(q);
    lnet_tensor_free(k);
    lnet_tensor_free(v);
    lnet_tensor_free(o);
    lnet_tensor_free(l);
    lnet_config_free(cfg);
    *out_p = out;
    *lse_p = lse;
}

/* The OpenCL device `dev` with `kernel` against the CPU reference kernel. */
static void check_against_cpu(lnet_context *cx, const rcase *c, int dev, const char *kernel)
{
    char what[256], spec[32];
    describe(c, what, sizeof what);
    snprintf(spec, sizeof spec, "opencl:%d", dev);
    problem p = make_problem(c);
    float *want_o, *want_l, *got_o, *got_l;
    run_public(cx, &p, "cpu", "reference", &want_o, &want_l);
    run_public(cx, &p, spec, kernel, &got_o, &got_l);
    double eo = max_err(got_o, want_o, numel4(c)), el = max_err(got_l, want_l, numel3(c));
    ck_assert_msg(eo <= TOL && el <= TOL, "%s on %s/%s: max |out err| %g, max |lse err| %g > %g",
                  what, spec, kernel, eo, el, TOL);
    free(want_o);
    free(want_l);
    free(got_o);
    free(got_l);
    free_problem(&p);
}

/* ------------------------------------------------------------- golden */

START_TEST(golden)
{
    const int per_dev = cases.n * n_kernels;
    const int dev = _i / per_dev, kern = (_i % per_dev) / cases.n, ci = _i % cases.n;
    const golden_case *c = &cases.cases[ci];
    char spec[32], err[4400];
    snprintf(spec, sizeof spec, "opencl:%d", dev);
    golden_result r;
    int rc = golden_run_case(ctx, &cases, c, spec, kernels[kern], &r, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    printf("golden %-16s %s/%-5s max |out err| %.3g, max |lse err| %.3g\n", c->name, spec,
           kernels[kern], r.out_err, r.lse_err);
    fflush(stdout);
    ck_assert_msg(r.out_err <= TOL && r.lse_err <= TOL,
                  "case %s on %s/%s: max |out err| %g, max |lse err| %g > %g", c->name, spec,
                  kernels[kern], r.out_err, r.lse_err, TOL);
}
END_TEST

/* ------------------------------------------------------------ random */

START_TEST(random_vs_cpu)
{
    const int dev = _i / N_RANDOM;
    rcase c = random_case(7000 + (uint64_t)(_i % N_RANDOM));
    for (int k = 0; k < n_kernels; k++)
        check_against_cpu(ctx, &c, dev, kernels[k]);
}
END_TEST

/* Head dimensions past the random ones: large (private rows, local-memory
 * tiles), not a power of two. */
START_TEST(large_head_dims)
{
    static const rcase big[] = {
        {1, 70, 2, 80, 2, {32, 70}, {1, 3}, 1, 0, 0, 81},
        {1, 40, 1, 128, 2, {40, 16}, {1, 2}, 0, 1, 0, 82},
        {2, 33, 2, 256, 1, {20}, {1}, 1, 0, 0, 83},
    };
    const int n_big = (int)(sizeof big / sizeof big[0]);
    const int dev = _i / n_big;
    for (int k = 0; k < n_kernels; k++)
        check_against_cpu(ctx, &big[_i % n_big], dev, kernels[k]);
}
END_TEST

/* ------------------------------------------- the plugin, driven directly */

static void *ocl_module;
static const lnet_plugin *ocl;

/* The kernels the direct tests drive: both forms of the fused kernel (the
 * device picks one by default; the options force each) and the gemm path. */
typedef struct kconf {
    const char *kernel, *options;
} kconf;
static const kconf kconfs[] = {
    {"fused", "fused=rows"}, {"fused", "fused=tiled"}, {"gemm", NULL}};

static int n_kconfs(void)
{
    return n_kernels > 1 ? 3 : 2;
}

/* The module the context loaded (dlopen gives the same copy back, with the
 * devices its probe found). */
static void open_plugin(void)
{
    if (ocl)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/.libs/longnet-opencl.so", OPENCL_PLUGIN_DIR);
    ocl_module = dlopen(path, RTLD_NOW);
    ck_assert_msg(ocl_module != NULL, "dlopen %s: %s", path, dlerror());
    lnet_plugin_entry_fn entry;
    *(void **)&entry = dlsym(ocl_module, LNET_PLUGIN_ENTRY_SYMBOL);
    ck_assert_msg(entry != NULL, "no %s in %s", LNET_PLUGIN_ENTRY_SYMBOL, path);
    ocl = entry();
    ck_assert(ocl && ocl->abi_version == LNET_PLUGIN_ABI_VERSION);
    ck_assert_str_eq(ocl->name, "opencl");
}

typedef struct dbufs {
    void *q, *k, *v, *out, *lse;
} dbufs;

static void *upload(void *dev, const void *host, size_t bytes)
{
    void *b = NULL;
    ck_assert_msg(ocl->buffer_alloc(dev, bytes, &b) == 0, "buffer_alloc: %s", ocl->last_error());
    ck_assert_msg(ocl->buffer_write(dev, b, 0, host, bytes) == 0, "buffer_write: %s",
                  ocl->last_error());
    return b;
}

static dbufs upload_all(void *dev, const problem *p, const float *out, const float *lse)
{
    size_t b4 = numel4(&p->c) * sizeof(float), b3 = numel3(&p->c) * sizeof(float);
    dbufs b = {upload(dev, p->q, b4), upload(dev, p->k, b4), upload(dev, p->v, b4),
               upload(dev, out, b4), upload(dev, lse, b3)};
    return b;
}

static void download_free(void *dev, dbufs *b, const problem *p, float *out, float *lse)
{
    size_t b4 = numel4(&p->c) * sizeof(float), b3 = numel3(&p->c) * sizeof(float);
    ck_assert_msg(ocl->synchronize(dev) == 0, "synchronize: %s", ocl->last_error());
    ck_assert(ocl->buffer_read(dev, b->out, 0, out, b4) == 0);
    ck_assert(ocl->buffer_read(dev, b->lse, 0, lse, b3) == 0);
    void *all[5] = {b->q, b->k, b->v, b->out, b->lse};
    for (int i = 0; i < 5; i++)
        ocl->buffer_free(dev, all[i]);
}

static lnet_segment_job make_job(const problem *p, const dbufs *b, int level, const char *kernel)
{
    const rcase *c = &p->c;
    lnet_segment_job job = {
        .size = sizeof job, .batch = c->B, .rows = c->N, .heads = c->H, .dim = c->D,
        .row_begin = 0, .row_end = c->N, .segment = c->w[level], .dilation = c->r[level],
        .offsets = c->grouped ? LNET_PLUGIN_OFFSETS_GROUPED : LNET_PLUGIN_OFFSETS_INTERLEAVED,
        .causal = c->causal, .init = 0, .scale = (float)actual_scale(c), .kernel = kernel,
        .q = b->q, .k = b->k, .v = b->v, .out = b->out, .lse = b->lse};
    return job;
}

static void run_job(void *dev, const lnet_segment_job *job, const char *what)
{
    int rc = ocl->run_segment(dev, job);
    ck_assert_msg(rc == 0, "%s: run_segment rows [%lld, %lld) level %lld:%lld: %s", what,
                  (long long)job->row_begin, (long long)job->row_end, (long long)job->segment,
                  (long long)job->dilation, ocl->last_error());
}

/* All levels with the dense one first (init), whole row range. */
static void run_levels(void *dev, const problem *p, const char *kernel, float *out, float *lse)
{
    const rcase *c = &p->c;
    int dense = 0;
    while (c->r[dense] != 1)
        dense++;
    dbufs b = upload_all(dev, p, out, lse);
    for (int k = 0; k < c->L; k++) {
        int level = k == 0 ? dense : (k <= dense ? k - 1 : k);
        lnet_segment_job job = make_job(p, &b, level, kernel);
        job.init = k == 0;
        run_job(dev, &job, "whole range");
    }
    download_free(dev, &b, p, out, lse);
}

START_TEST(chunked_rows_plugin)
{
    open_plugin();
    const int dev_i = _i / N_CHUNKED;
    rcase c = random_case(9000 + (uint64_t)(_i % N_CHUNKED));
    char what[256];
    describe(&c, what, sizeof what);
    problem p = make_problem(&c);
    size_t n4 = numel4(&c), n3 = numel3(&c);
    float *want_o, *want_l;
    run_public(ctx, &p, "cpu", "reference", &want_o, &want_l);
    float *out = malloc(n4 * sizeof(float)), *lse = malloc(n3 * sizeof(float));
    ck_assert(out && lse);

    for (int kc = 0; kc < n_kconfs(); kc++) {
        void *dev = NULL;
        ck_assert_msg(ocl->open(dev_i, kconfs[kc].options, &dev) == 0, "open: %s",
                      ocl->last_error());
        /* From (out = 0, lse = -inf), every level folded, last level first,
         * each level's rows cut into random chunks (empty ones included). */
        for (size_t i = 0; i < n4; i++)
            out[i] = 0.0f;
        for (size_t i = 0; i < n3; i++)
            lse[i] = -INFINITY;
        dbufs b = upload_all(dev, &p, out, lse);
        uint64_t s = c.seed;
        for (int level = c.L - 1; level >= 0; level--) {
            lnet_segment_job job = make_job(&p, &b, level, kconfs[kc].kernel);
            int64_t at = 0;
            while (at < c.N) {
                int64_t left = c.N - at;
                int64_t len = rng_int(&s, 0, rng_int(&s, 0, 1) ? left : (left < 7 ? left : 7));
                job.row_begin = at;
                job.row_end = at + len;
                run_job(dev, &job, what);
                at += len;
            }
        }
        download_free(dev, &b, &p, out, lse);
        ocl->close(dev);
        double eo = max_err(out, want_o, n4), el = max_err(lse, want_l, n3);
        ck_assert_msg(eo <= TOL && el <= TOL,
                      "%s, %s (%s): chunked, folded from -inf: max |out err| %g, |lse err| %g",
                      what, kconfs[kc].kernel, kconfs[kc].options ? kconfs[kc].options : "",
                      eo, el);
    }
    free(out);
    free(lse);
    free(want_o);
    free(want_l);
    free_problem(&p);
}
END_TEST

/* ------------------------------------------------------- row windows */

#define N_WINDOWED 12
#define WTOL 1e-5

/* Rows [base, base + n) of a [B, N, row] tensor (row: floats a row), packed
 * as [B, n, row]: into `win` (to_window) or back into `full`. An lse
 * [B, H, N] is the case B*H, row 1. */
static void copy_rows(float *win, float *full, int64_t B, int64_t N, int64_t base, int64_t n,
                      int64_t row, int to_window)
{
    for (int64_t b = 0; b < B; b++) {
        float *w = win + (size_t)(b * n * row), *f = full + (size_t)((b * N + base) * row);
        size_t bytes = (size_t)(n * row) * sizeof(float);
        if (to_window)
            memcpy(w, f, bytes);
        else
            memcpy(f, w, bytes);
    }
}

/* `parts` consecutive windows covering [0, N), none empty: bounds[0..parts]
 * (fewer parts when N is smaller). Returns the number of parts. */
static int cut_rows(uint64_t *s, int64_t N, int parts, int64_t *bounds)
{
    if (parts > N)
        parts = (int)N;
    bounds[0] = 0;
    for (int i = 1; i < parts; i++) {
        /* Leave at least one row to each of the parts - i windows after. */
        int64_t lo = bounds[i - 1] + 1, hi = N - (parts - i);
        bounds[i] = rng_int(s, lo, hi);
    }
    bounds[parts] = N;
    return parts;
}

static void *upload_rows(void *dev, float *full, int64_t B, int64_t N, int64_t base, int64_t n,
                         int64_t row)
{
    size_t count = (size_t)(B * n * row);
    float *tmp = malloc(count * sizeof(float));
    ck_assert(tmp);
    copy_rows(tmp, full, B, N, base, n, row, 1);
    void *buf = upload(dev, tmp, count * sizeof(float));
    free(tmp);
    return buf;
}

static void download_rows(void *dev, void *buf, float *full, int64_t B, int64_t N, int64_t base,
                          int64_t n, int64_t row)
{
    size_t count = (size_t)(B * n * row);
    float *tmp = malloc(count * sizeof(float));
    ck_assert(tmp);
    ck_assert_msg(ocl->buffer_read(dev, buf, 0, tmp, count * sizeof(float)) == 0,
                  "buffer_read: %s", ocl->last_error());
    copy_rows(tmp, full, B, N, base, n, row, 0);
    free(tmp);
    ocl->buffer_free(dev, buf);
}

/* Queries cut into query windows, keys into consecutive K/V windows: for
 * each query window, every level (last first) folds the K/V windows one
 * after another into (out = 0, lse = -inf), as the scheduler's chunks and
 * ring attention run them. The result equals the same kernel's run without
 * windows (every level one job, folded from the same start) within 1e-5.
 * One query window is the K/V-windows-only case, one K/V window the
 * query-windows-only case. */
START_TEST(windows_plugin)
{
    open_plugin();
    const int dev_i = _i / N_WINDOWED, ci = _i % N_WINDOWED;
    rcase c = random_case(11000 + (uint64_t)ci);
    char what[256];
    describe(&c, what, sizeof what);
    problem p = make_problem(&c);
    const size_t n4 = numel4(&c), n3 = numel3(&c);
    const int64_t row = c.H * c.D;
    uint64_t s = c.seed * 31 + 7;
    int64_t qcut[4], kcut[4];
    const int n_qw = cut_rows(&s, c.N, 1 + ci % 3, qcut);
    const int n_kw = cut_rows(&s, c.N, 1 + (ci / 3) % 3, kcut);
    float *want_o = malloc(n4 * sizeof(float)), *want_l = malloc(n3 * sizeof(float));
    float *out = malloc(n4 * sizeof(float)), *lse = malloc(n3 * sizeof(float));
    ck_assert(want_o && want_l && out && lse);

    for (int kc = 0; kc < n_kconfs(); kc++) {
        void *dev = NULL;
        ck_assert_msg(ocl->open(dev_i, kconfs[kc].options, &dev) == 0, "open: %s",
                      ocl->last_error());
        for (size_t i = 0; i < n4; i++)
            want_o[i] = out[i] = 0.0f;
        for (size_t i = 0; i < n3; i++)
            want_l[i] = lse[i] = -INFINITY;

        /* Without windows. */
        dbufs b = upload_all(dev, &p, want_o, want_l);
        for (int level = c.L - 1; level >= 0; level--) {
            lnet_segment_job job = make_job(&p, &b, level, kconfs[kc].kernel);
            run_job(dev, &job, what);
        }
        download_free(dev, &b, &p, want_o, want_l);

        /* With windows. */
        for (int qw = 0; qw < n_qw; qw++) {
            const int64_t qa = qcut[qw], qn = qcut[qw + 1] - qcut[qw];
            dbufs wb = {upload_rows(dev, p.q, c.B, c.N, qa, qn, row), NULL, NULL,
                        upload_rows(dev, out, c.B, c.N, qa, qn, row),
                        upload_rows(dev, lse, c.B * c.H, c.N, qa, qn, 1)};
            void *kb[3], *vb[3];
            for (int kw = 0; kw < n_kw; kw++) {
                kb[kw] = upload_rows(dev, p.k, c.B, c.N, kcut[kw], kcut[kw + 1] - kcut[kw], row);
                vb[kw] = upload_rows(dev, p.v, c.B, c.N, kcut[kw], kcut[kw + 1] - kcut[kw], row);
            }
            for (int level = c.L - 1; level >= 0; level--)
                for (int kw = 0; kw < n_kw; kw++) {
                    wb.k = kb[kw];
                    wb.v = vb[kw];
                    lnet_segment_job job = make_job(&p, &wb, level, kconfs[kc].kernel);
                    job.row_begin = qa;
                    job.row_end = qa + qn;
                    job.q_base = qa;
                    job.q_rows = qn;
                    job.kv_base = kcut[kw];
                    job.kv_rows = kcut[kw + 1] - kcut[kw];
                    char jw[400];
                    snprintf(jw, sizeof jw, "%s, %s (%s), q window %lld+%lld, kv window %lld+%lld",
                             what, kconfs[kc].kernel,
                             kconfs[kc].options ? kconfs[kc].options : "", (long long)qa,
                             (long long)qn, (long long)job.kv_base, (long long)job.kv_rows);
                    run_job(dev, &job, jw);
                }
            ck_assert_msg(ocl->synchronize(dev) == 0, "synchronize: %s", ocl->last_error());
            download_rows(dev, wb.out, out, c.B, c.N, qa, qn, row);
            download_rows(dev, wb.lse, lse, c.B * c.H, c.N, qa, qn, 1);
            ocl->buffer_free(dev, wb.q);
            for (int kw = 0; kw < n_kw; kw++) {
                ocl->buffer_free(dev, kb[kw]);
                ocl->buffer_free(dev, vb[kw]);
            }
        }
        ocl->close(dev);
        double eo = max_err(out, want_o, n4), el = max_err(lse, want_l, n3);
        ck_assert_msg(eo <= WTOL && el <= WTOL,
                      "%s, %s (%s), %d query x %d K/V windows: max |out diff| %g, |lse diff| %g "
                      "> %g",
                      what, kconfs[kc].kernel, kconfs[kc].options ? kconfs[kc].options : "",
                      n_qw, n_kw, eo, el, WTOL);
    }
    free(want_o);
    free(want_l);
    free(out);
    free(lse);
    free_problem(&p);
}
END_TEST

static void expect_fail(int rc, const char *needle, const char *what)
{
    ck_assert_msg(rc != 0, "%s: succeeded, expected a failure naming '%s'", what, needle);
    ck_assert_msg(strstr(ocl->last_error(), needle) != NULL,
                  "%s: message '%s' does not name '%s'", what, ocl->last_error(), needle);
}

/* Tiles given as options give the same results as the chosen ones (up to
 * rounding: the order of the online softmax's steps changes). */
START_TEST(tile_overrides)
{
    open_plugin();
    static const rcase c = {2, 90, 3, 16, 3, {90, 24, 40}, {1, 2, 5}, 1, 0, 0, 4242};
    static const char *const tiles[] = {"tile_q=16,tile_k=8", "tile_q=32,tile_k=3",
                                        "tile_k=1,tile_q=64"};
    problem p = make_problem(&c);
    size_t n4 = numel4(&c), n3 = numel3(&c);
    float *want_o = malloc(n4 * sizeof(float)), *want_l = malloc(n3 * sizeof(float));
    float *out = malloc(n4 * sizeof(float)), *lse = malloc(n3 * sizeof(float));
    ck_assert(want_o && want_l && out && lse);
    void *dev = NULL;
    ck_assert_msg(ocl->open(_i, "", &dev) == 0, "open: %s", ocl->last_error());
    run_levels(dev, &p, "fused", want_o, want_l);
    ocl->close(dev);
    for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++) {
        ck_assert_msg(ocl->open(_i, tiles[t], &dev) == 0, "open(\"%s\"): %s", tiles[t],
                      ocl->last_error());
        run_levels(dev, &p, "fused", out, lse);
        ocl->close(dev);
        double eo = max_err(out, want_o, n4), el = max_err(lse, want_l, n3);
        ck_assert_msg(eo <= 1e-5 && el <= 1e-5, "%s: max |out diff| %g, |lse diff| %g", tiles[t],
                      eo, el);
    }
    free(want_o);
    free(want_l);
    free(out);
    free(lse);
    free_problem(&p);
}
END_TEST

START_TEST(refusals)
{
    open_plugin();
    void *dev = NULL;
    expect_fail(ocl->open(_i, "tile_q=0", &dev), "tile_q=0", "tile_q=0");
    expect_fail(ocl->open(_i, "tile_q=100000000", &dev), "tile_q=100000000", "huge tile_q");
    expect_fail(ocl->open(_i, "tile_k=x", &dev), "tile_k=x", "tile_k=x");
    expect_fail(ocl->open(_i, "tile=4", &dev), "'tile'", "unknown option");
    expect_fail(ocl->open(n_devices, NULL, &dev), "index", "open past the last device");
    ck_assert(dev == NULL);
    ck_assert_int_eq(ocl->open(_i, NULL, &dev), 0);

    void *buf = NULL;
    expect_fail(ocl->buffer_alloc(dev, SIZE_MAX / 2, &buf), "CL_DEVICE_MAX_MEM_ALLOC_SIZE",
                "a buffer larger than the device");
    ck_assert(buf == NULL);
    ck_assert_int_eq(ocl->buffer_alloc(dev, 16, &buf), 0);
    unsigned char data[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, back[16];
    ck_assert_int_eq(ocl->buffer_write(dev, buf, 0, data, 16), 0);
    ck_assert_int_eq(ocl->buffer_read(dev, buf, 4, back, 12), 0);
    ck_assert_int_eq(memcmp(back, data + 4, 12), 0);
    expect_fail(ocl->buffer_write(dev, buf, 8, data, 9), "offset 8", "write past the end");
    expect_fail(ocl->buffer_read(dev, buf, 1, back, SIZE_MAX), "16 bytes", "read overflowing");
    ocl->buffer_free(dev, buf);

    /* A job with an unknown kernel and one with a tile too large for the
     * device's local memory: refused, naming the value. */
    static const rcase c = {1, 8, 2, 4, 1, {4}, {1}, 0, 0, 0, 5};
    problem p = make_problem(&c);
    float out[64] = {0}, lse[16] = {0};
    dbufs b = upload_all(dev, &p, out, lse);
    lnet_segment_job job = make_job(&p, &b, 0, "bogus");
    expect_fail(ocl->run_segment(dev, &job), "available: fused", "unknown kernel");
    job.kernel = "fused";
    job.dim = 0;
    expect_fail(ocl->run_segment(dev, &job), "dim = 0", "dim = 0");
    job.dim = c.D;

    /* Windows the buffers or the sequence cannot hold, or a row range
     * outside the query window: refused, naming the values. */
    lnet_segment_job wj = job;
    wj.q_base = 6;
    wj.q_rows = 4;
    wj.kv_base = 0;
    wj.kv_rows = 8;
    expect_fail(ocl->run_segment(dev, &wj), "query window of 4 rows from row 6",
                "q window past the end");
    wj.q_base = 0;
    wj.kv_base = 3;
    wj.kv_rows = 0;
    wj.q_rows = 8;
    /* kv_rows = 0 with q_rows > 0 is a window with no key row. */
    expect_fail(ocl->run_segment(dev, &wj), "key/value window of 0 rows from row 3",
                "empty K/V window");
    wj.kv_base = 0;
    wj.kv_rows = 8;
    wj.q_base = 2;
    wj.q_rows = 4;
    wj.row_begin = 1;
    wj.row_end = 5;
    expect_fail(ocl->run_segment(dev, &wj), "rows [1, 5) are not inside the query window [2, 6)",
                "row range outside the q window");
    /* A window of 4 rows fits the 8-row buffers; one of 8 rows needs them
     * all, which the 4-row lse of another job would not hold. */
    wj.q_base = 0;
    wj.q_rows = 4;
    wj.row_begin = 0;
    wj.row_end = 4;
    ck_assert_msg(ocl->run_segment(dev, &wj) == 0, "a window inside the buffers: %s",
                  ocl->last_error());
    void *small = NULL;
    ck_assert_int_eq(ocl->buffer_alloc(dev, 4 * sizeof(float), &small), 0);
    wj.lse = small;
    wj.q_rows = 8;
    wj.row_end = 8;
    expect_fail(ocl->run_segment(dev, &wj), "buffer lse holds 16 bytes", "lse too small");
    ocl->buffer_free(dev, small);
    download_free(dev, &b, &p, out, lse);
    ocl->close(dev);
    free_problem(&p);

    lnet_plugin_device_desc desc = {.size = sizeof desc}; /* ABI 2: the caller's size */
    ck_assert_int_eq(ocl->describe(_i, &desc), 0);
    ck_assert_msg(strncmp(desc.kernels, "fused", 5) == 0, "kernels '%s'", desc.kernels);
    ck_assert_msg(desc.caps & LNET_PLUGIN_CAP_WINDOWS, "caps %#x lack LNET_PLUGIN_CAP_WINDOWS",
                  desc.caps);
    expect_fail(ocl->open(_i, "fused=fast", &dev), "fused=fast", "unknown fused form");
    ck_assert_msg(strcmp(desc.kind, "cpu") == 0 || strcmp(desc.kind, "gpu") == 0 ||
                      strcmp(desc.kind, "accelerator") == 0 || strcmp(desc.kind, "other") == 0,
                  "kind '%s'", desc.kind);
}
END_TEST

/* ------------------------------------------------------------- cache */

static char cache_dir[512];

/* The one cache file in cache_dir; its path in `path`. */
static void the_cache_file(char *path, size_t len)
{
    DIR *d = opendir(cache_dir);
    ck_assert_msg(d != NULL, "cache directory %s was not created", cache_dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        ck_assert_msg(strncmp(e->d_name, "opencl-", 7) == 0 && !strstr(e->d_name, ".tmp"),
                      "unexpected file %s in the cache", e->d_name);
        snprintf(path, len, "%s/%s", cache_dir, e->d_name);
        n++;
    }
    closedir(d);
    ck_assert_msg(n == 1, "%d files in the cache directory %s; expected 1", n, cache_dir);
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    ck_assert(buf && fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void write_file(const char *path, const unsigned char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert(f && fwrite(data, 1, len, f) == len);
    ck_assert(fclose(f) == 0);
}

/* A valid entry: magic, version, length matching the file, checksum. */
static void check_valid_entry(const char *path)
{
    size_t len;
    unsigned char *buf = read_file(path, &len);
    ck_assert_msg(len > 88 && memcmp(buf, "LNETCLB", 8) == 0, "%s: bad magic or size %zu", path,
                  len);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)buf[48 + i] << (8 * i);
    ck_assert_msg(n + 88 == len, "%s: payload length %llu, file %zu", path,
                  (unsigned long long)n, len);
    unsigned char sum[32];
    ocl_sha256(buf + 88, (size_t)n, sum);
    ck_assert_msg(memcmp(sum, buf + 56, 32) == 0, "%s: checksum mismatch", path);
    free(buf);
}

/* One run of a small problem in a new context (so the device handle and
 * its in-memory programs are new too), checked against the CPU. */
static void run_fresh_context(int dev)
{
    lnet_context *cx = NULL;
    ck_assert_msg(lnet_context_create(NULL, &cx) == LNET_OK, "%s", lnet_last_error());
    static const rcase c = {1, 50, 2, 12, 2, {16, 50}, {1, 2}, 1, 0, 0, 77};
    check_against_cpu(cx, &c, dev, "fused");
    lnet_context_free(cx);
}

START_TEST(program_cache)
{
    snprintf(cache_dir, sizeof cache_dir, "%s/cache-dev%d", cache_root, _i);
    ck_assert(setenv("LONGNET_CACHE_DIR", cache_dir, 1) == 0);

    /* First run: builds and writes one entry (the directory is created). */
    run_fresh_context(_i);
    char path[1024];
    the_cache_file(path, sizeof path);
    check_valid_entry(path);
    struct stat st1, st2;
    ck_assert(stat(path, &st1) == 0);
    ck_assert_msg((st1.st_mode & 0777) == 0600, "cache file mode %o", st1.st_mode & 0777);
    struct stat dst;
    ck_assert(stat(cache_dir, &dst) == 0 && (dst.st_mode & 0777) == 0700);
    size_t good_len;
    unsigned char *good = read_file(path, &good_len);

    /* Second context: a hit, the file untouched. */
    run_fresh_context(_i);
    the_cache_file(path, sizeof path);
    ck_assert(stat(path, &st2) == 0);
    ck_assert_msg(st1.st_ino == st2.st_ino && st1.st_mtim.tv_sec == st2.st_mtim.tv_sec &&
                      st1.st_mtim.tv_nsec == st2.st_mtim.tv_nsec,
                  "the cache entry was rewritten on a hit");
    size_t len;
    unsigned char *now = read_file(path, &len);
    ck_assert(len == good_len && memcmp(now, good, len) == 0);
    free(now);

    /* Broken entries: each is detected, the results stay right, and the
     * file is replaced by a valid one. */
    for (int how = 0; how < 4; how++) {
        unsigned char *bad = malloc(good_len);
        ck_assert(bad);
        memcpy(bad, good, good_len);
        size_t bad_len = good_len;
        const char *label;
        switch (how) {
        case 0:
            label = "garbage";
            for (size_t i = 0; i < bad_len; i++)
                bad[i] = (unsigned char)(i * 131 + 7);
            break;
        case 1:
            label = "truncated";
            bad_len = good_len / 2;
            break;
        case 2:
            label = "wrong key";
            bad[16] ^= 0xff;
            break;
        default:
            label = "corrupted payload";
            bad[88 + (good_len - 88) / 2] ^= 0x5a;
            break;
        }
        write_file(path, bad, bad_len);
        ck_assert(stat(path, &st1) == 0);
        run_fresh_context(_i);
        the_cache_file(path, sizeof path);
        check_valid_entry(path);
        ck_assert(stat(path, &st2) == 0);
        ck_assert_msg(st1.st_ino != st2.st_ino, "%s entry was not rewritten", label);
        free(bad);
    }
    free(good);

    /* A cache directory that cannot be created: no caching, no failure. */
    ck_assert(setenv("LONGNET_CACHE_DIR", "/proc/longnet-no-such-dir/cache", 1) == 0);
    run_fresh_context(_i);
    snprintf(cache_dir, sizeof cache_dir, "%s/shared", cache_root);
    ck_assert(setenv("LONGNET_CACHE_DIR", cache_dir, 1) == 0);
}
END_TEST

/* -------------------------------------------------------------- main */

int main(void)
{
    golden_load_required(&cases);

    if (scratch_dir_make("longnet-test-opencl", cache_root, sizeof cache_root))
        return 1;
    /* Every test but the cache test shares one cache of this run. */
    char shared[512];
    snprintf(shared, sizeof shared, "%s/shared", cache_root);
    setenv("LONGNET_CACHE_DIR", shared, 1);

    if (lnet_context_create(NULL, &ctx) != LNET_OK) {
        printf("FAIL: lnet_context_create: %s\n", lnet_last_error());
        return 1;
    }
    int have_gemm;
    n_devices = opencl_devices(ctx, MAX_DEVICES, &have_gemm);
    if (n_devices > 0 && !have_gemm)
        n_kernels = 1; /* built without CLBlast */
    if (n_devices == 0) {
        printf("SKIP: no OpenCL device: %s\n", lnet_last_error());
        lnet_context_free(ctx);
        scratch_dir_remove(cache_root);
        return GOLDEN_SKIP;
    }
    fflush(stdout);

    Suite *s = suite_create("opencl");
    TCase *tc = tcase_create("opencl");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, golden, 0, n_devices * n_kernels * cases.n);
    tcase_add_loop_test(tc, random_vs_cpu, 0, n_devices * N_RANDOM);
    tcase_add_loop_test(tc, large_head_dims, 0, n_devices * 3);
    tcase_add_loop_test(tc, chunked_rows_plugin, 0, n_devices * N_CHUNKED);
    tcase_add_loop_test(tc, windows_plugin, 0, n_devices * N_WINDOWED);
    tcase_add_loop_test(tc, tile_overrides, 0, n_devices);
    tcase_add_loop_test(tc, refusals, 0, n_devices);
    tcase_add_loop_test(tc, program_cache, 0, n_devices);
    suite_add_tcase(s, tc);

    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    lnet_context_free(ctx);
    golden_free(&cases);
    scratch_dir_remove(cache_root);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
