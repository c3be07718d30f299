#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* test_random.c — the CPU backend against the naive oracle (naive_oracle.c):
 *
 *  - randomized problems (fixed seeds) through lnet_attention_forward, with
 *    the default kernel and with "reference";
 *  - the edge cases of DESIGN §1 spelled out (N = 1, w = 1, w > N, r = w,
 *    H not a multiple of r, H < r in grouped mode, a ragged last segment);
 *  - the plugin driven directly through its table, for what the public API
 *    does not reach yet: row ranges cut anywhere (as the scheduler will cut
 *    them), folding into lse = -inf in any level order, and the refusals of
 *    bad jobs, options and buffer ranges with messages naming the value.
 *
 * Everything must agree with the oracle within 1e-4 (out and lse). */
#include <check.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "longnet-plugin.h"
#include "longnet.h"
#include "seeded_rng.h"
#include "plugin_direct.h"
#include "naive_oracle.h"

#define TOL 1e-4
#define N_RANDOM 80
#define N_CHUNKED 30
#define MAX_LEVELS 4

/* ------------------------------------------------------------ helpers */

typedef struct rcase {
    const char *label;
    int64_t B, N, H, D;
    int L;
    int64_t w[MAX_LEVELS], r[MAX_LEVELS];
    int causal, grouped;
    double scale; /* 0: the default 1/sqrt(D) */
    uint64_t seed;
} rcase;

static void describe(const rcase *c, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s: B%lld N%lld H%lld D%lld levels", c->label, (long long)c->B,
                     (long long)c->N, (long long)c->H, (long long)c->D);
    for (int i = 0; i < c->L && n > 0 && (size_t)n < len; i++)
        n += snprintf(buf + n, len - (size_t)n, " %lld:%lld", (long long)c->w[i],
                      (long long)c->r[i]);
    if (n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " %s %s scale %g", c->causal ? "causal" : "full",
                 c->grouped ? "grouped" : "interleaved", c->scale);
}

/* A random problem in the brief's ranges, with one level of dilation 1. */
static rcase random_case(uint64_t seed)
{
    uint64_t s = seed;
    rcase c = {.label = "random", .seed = seed};
    c.B = rng_int(&s, 1, 2);
    c.N = rng_int(&s, 1, 200);
    c.H = rng_int(&s, 1, 5);
    c.D = rng_int(&s, 1, 40);
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

/* The inputs of a case: uniform in [-1, 1), from the case's seed. */
typedef struct inputs {
    float *q, *k, *v;
} inputs;

static inputs make_inputs(const rcase *c)
{
    size_t n = numel4(c);
    inputs in = {malloc(n * sizeof(float)), malloc(n * sizeof(float)), malloc(n * sizeof(float))};
    ck_assert_msg(in.q && in.k && in.v, "out of memory");
    uint64_t s = c->seed ^ 0x5eed5eed5eedull;
    for (size_t i = 0; i < n; i++) {
        in.q[i] = (float)rng_real(&s, -1, 1);
        in.k[i] = (float)rng_real(&s, -1, 1);
        in.v[i] = (float)rng_real(&s, -1, 1);
    }
    return in;
}

static void free_inputs(inputs *in)
{
    free(in->q);
    free(in->k);
    free(in->v);
}

typedef struct expected {
    double *out, *lse;
} expected;

static expected run_oracle(const rcase *c, const inputs *in)
{
    expected e = {malloc(numel4(c) * sizeof(double)), malloc(numel3(c) * sizeof(double))};
    ck_assert_msg(e.out && e.lse, "out of memory");
    oracle_problem p = {.batch = c->B, .rows = c->N, .heads = c->H, .dim = c->D,
                        .levels = c->L, .segments = c->w, .dilations = c->r,
                        .causal = c->causal, .grouped = c->grouped, .scale = actual_scale(c)};
    const char *why = "";
    ck_assert_msg(naive_oracle_forward(&p, in->q, in->k, in->v, e.out, e.lse, &why) == 0,
                  "oracle refused the problem: %s", why);
    return e;
}

static void free_expected(expected *e)
{
    free(e->out);
    free(e->lse);
}

/* max |got - want|, NaN counting as infinite. */
static double max_err(const float *got, const double *want, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= m))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

/* ------------------------------------------- through the public API */

/* Runs c through lnet_attention_forward on "cpu" with `kernel` and checks
 * it against the oracle. */
static void check_public(const rcase *c, const char *kernel)
{
    char what[256];
    describe(c, what, sizeof what);

    lnet_context *ctx = NULL;
    lnet_config *cfg = NULL;
    ck_assert_msg(lnet_context_create(NULL, &ctx) == LNET_OK, "context: %s", lnet_last_error());
    ck_assert_msg(lnet_config_create(&cfg) == LNET_OK, "config: %s", lnet_last_error());
    for (int i = 0; i < c->L; i++)
        ck_assert_msg(lnet_config_add_level(cfg, c->w[i], c->r[i]) == LNET_OK,
                      "%s: add_level: %s", what, lnet_last_error());
    ck_assert(lnet_config_set_causal(cfg, c->causal) == LNET_OK);
    ck_assert(lnet_config_set_offsets(cfg, c->grouped ? LNET_OFFSETS_GROUPED
                                                      : LNET_OFFSETS_INTERLEAVED) == LNET_OK);
    ck_assert_msg(lnet_config_set_scale(cfg, c->scale) == LNET_OK, "%s: set_scale: %s", what,
                  lnet_last_error());

    inputs in = make_inputs(c);
    expected e = run_oracle(c, &in);

    int64_t shape4[4] = {c->B, c->N, c->H, c->D}, shape3[3] = {c->B, c->H, c->N};
    lnet_tensor *q, *k, *v, *out, *lse;
    ck_assert(lnet_tensor_wrap(in.q, 4, shape4, &q) == LNET_OK);
    ck_assert(lnet_tensor_wrap(in.k, 4, shape4, &k) == LNET_OK);
    ck_assert(lnet_tensor_wrap(in.v, 4, shape4, &v) == LNET_OK);
    ck_assert(lnet_tensor_create(4, shape4, &out) == LNET_OK);
    ck_assert(lnet_tensor_create(3, shape3, &lse) == LNET_OK);
    /* NaN: a row the backend forgets to write cannot pass as zero. */
    for (size_t i = 0; i < numel4(c); i++)
        lnet_tensor_data(out)[i] = NAN;
    for (size_t i = 0; i < numel3(c); i++)
        lnet_tensor_data(lse)[i] = NAN;

    lnet_run_options opts = {.size = sizeof opts, .device = "cpu", .kernel = kernel};
    lnet_status st = lnet_attention_forward(ctx, cfg, q, k, v, out, lse, &opts);
    ck_assert_msg(st == LNET_OK, "%s, kernel %s: %s: %s", what, kernel ? kernel : "default",
                  lnet_status_name(st), lnet_last_error());

    double out_err = max_err(lnet_tensor_cdata(out), e.out, numel4(c));
    double lse_err = max_err(lnet_tensor_cdata(lse), e.lse, numel3(c));
    ck_assert_msg(out_err <= TOL && lse_err <= TOL,
                  "%s (seed %llu), kernel %s: max |out err| %g, max |lse err| %g > %g", what,
                  (unsigned long long)c->seed, kernel ? kernel : "default", out_err, lse_err, TOL);

    /* Without lse the output must not change (the core keeps its own). */
    for (size_t i = 0; i < numel4(c); i++)
        lnet_tensor_data(out)[i] = NAN;
    st = lnet_attention_forward(ctx, cfg, q, k, v, out, NULL, &opts);
    ck_assert_msg(st == LNET_OK, "%s without lse: %s", what, lnet_last_error());
    double out_err2 = max_err(lnet_tensor_cdata(out), e.out, numel4(c));
    ck_assert_msg(out_err2 <= TOL, "%s without lse: max |out err| %g > %g", what, out_err2, TOL);

    lnet_tensor_free(q);
    lnet_tensor_free(k);
    lnet_tensor_free(v);
    lnet_tensor_free(out);
    lnet_tensor_free(lse);
    free_inputs(&in);
    free_expected(&e);
    lnet_config_free(cfg);
    lnet_context_free(ctx);
}

START_TEST(random_public)
{
    rcase c = random_case(1000 + (uint64_t)_i);
    check_public(&c, NULL);
    check_public(&c, "reference");
}
END_TEST

/* The edge cases; each runs causal and not (loop index parity). */
static const rcase edge_cases[] = {
    {"N=1", 1, 1, 1, 1, 1, {1}, {1}, 0, 0, 0, 11},
    {"N=1, w>N, r=w", 2, 1, 3, 4, 2, {1, 5}, {1, 5}, 0, 0, 0.5, 12},
    {"N=1, grouped, r=w", 1, 1, 3, 4, 2, {3, 3}, {1, 3}, 0, 1, 0, 13},
    {"w=1 (out = v)", 1, 17, 2, 3, 1, {1}, {1}, 0, 0, 0, 14},
    {"w=1 with a dilated level", 2, 17, 2, 3, 2, {1, 6}, {1, 3}, 0, 0, 0, 15},
    {"segment > N", 1, 37, 2, 5, 2, {500, 100}, {1, 7}, 0, 0, 0, 16},
    {"segment > N, grouped", 2, 37, 3, 5, 2, {74, 500}, {1, 37}, 0, 1, 0, 17},
    {"dilation == segment", 1, 30, 3, 4, 3, {30, 8, 5}, {1, 8, 5}, 0, 0, 0, 18},
    {"dilation == segment, grouped", 1, 30, 3, 4, 3, {30, 8, 5}, {1, 8, 5}, 0, 1, 0, 19},
    {"H not a multiple of r", 1, 50, 5, 6, 3, {12, 12, 24}, {1, 3, 4}, 0, 0, 0, 20},
    {"H not a multiple of r, grouped", 1, 50, 5, 6, 3, {12, 12, 24}, {1, 3, 4}, 0, 1, 0, 21},
    {"H < r, grouped", 2, 64, 2, 8, 3, {16, 16, 32}, {1, 4, 8}, 0, 1, 0, 22},
    {"H < r, interleaved", 2, 64, 2, 8, 3, {16, 16, 32}, {1, 4, 8}, 0, 0, 0, 23},
    {"ragged last segment", 1, 45, 3, 7, 3, {16, 16, 32}, {1, 2, 4}, 0, 0, 0, 24},
    {"ragged, offset past the end", 1, 33, 4, 5, 2, {8, 16}, {1, 4}, 0, 0, 0, 25},
    {"dense", 1, 33, 2, 16, 1, {33}, {1}, 0, 0, 0.125, 26},
    {"a level twice", 1, 20, 2, 4, 2, {8, 8}, {1, 1}, 0, 0, 0, 27},
    {"paper ratios", 1, 96, 4, 8, 4, {12, 24, 48, 96}, {1, 2, 4, 8}, 0, 0, 0, 28},
};
#define N_EDGE ((int)(sizeof edge_cases / sizeof edge_cases[0]))

START_TEST(edge_public)
{
    rcase c = edge_cases[_i / 2];
    c.causal = _i % 2;
    check_public(&c, NULL);
    check_public(&c, "reference");
}
END_TEST

START_TEST(unknown_kernel_public)
{
    rcase c = edge_cases[0];
    lnet_context *ctx = NULL;
    lnet_config *cfg = NULL;
    ck_assert(lnet_context_create(NULL, &ctx) == LNET_OK);
    ck_assert(lnet_config_create(&cfg) == LNET_OK);
    ck_assert(lnet_config_add_level(cfg, 1, 1) == LNET_OK);
    int64_t shape[4] = {c.B, c.N, c.H, c.D};
    lnet_tensor *t;
    ck_assert(lnet_tensor_create(4, shape, &t) == LNET_OK);
    lnet_run_options opts = {.size = sizeof opts, .device = "cpu", .kernel = "bogus"};
    lnet_status st = lnet_attention_forward(ctx, cfg, t, t, t, t, NULL, &opts);
    ck_assert_int_eq(st, LNET_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(lnet_last_error(), "bogus") && strstr(lnet_last_error(), "reference"),
                  "message should name the kernel and the available ones: %s",
                  lnet_last_error());
    lnet_tensor_free(t);
    lnet_config_free(cfg);
    lnet_context_free(ctx);
}
END_TEST

/* ------------------------------------------- the plugin, driven directly */

static void *cpu_module;
static const lnet_plugin *cpu;

/* The module the library loads as "cpu" (plugin_direct.c). */
static void open_cpu_plugin(void)
{
    cpu = plugin_direct_open("cpu", &cpu_module);
    ck_assert_uint_eq(cpu->size, sizeof(lnet_plugin));
}

static void close_cpu_plugin(void)
{
    if (cpu_module)
        dlclose(cpu_module);
    cpu_module = NULL;
    cpu = NULL;
}

/* The five buffers of a job, wrapping host arrays. */
typedef struct job_buffers {
    void *q, *k, *v, *out, *lse;
} job_buffers;

static job_buffers wrap_all(void *dev, const rcase *c, const inputs *in, float *out, float *lse)
{
    job_buffers b;
    size_t b4 = numel4(c) * sizeof(float), b3 = numel3(c) * sizeof(float);
    ck_assert(cpu->buffer_wrap_host(dev, in->q, b4, &b.q) == 0);
    ck_assert(cpu->buffer_wrap_host(dev, in->k, b4, &b.k) == 0);
    ck_assert(cpu->buffer_wrap_host(dev, in->v, b4, &b.v) == 0);
    ck_assert(cpu->buffer_wrap_host(dev, out, b4, &b.out) == 0);
    ck_assert(cpu->buffer_wrap_host(dev, lse, b3, &b.lse) == 0);
    return b;
}

static void free_all(void *dev, job_buffers *b)
{
    cpu->buffer_free(dev, b->q);
    cpu->buffer_free(dev, b->k);
    cpu->buffer_free(dev, b->v);
    cpu->buffer_free(dev, b->out);
    cpu->buffer_free(dev, b->lse);
}

static lnet_segment_job make_job(const rcase *c, const job_buffers *b, int level)
{
    lnet_segment_job job = {
        .size = sizeof job,
        .batch = c->B, .rows = c->N, .heads = c->H, .dim = c->D,
        .row_begin = 0, .row_end = c->N,
        .segment = c->w[level], .dilation = c->r[level],
        .offsets = c->grouped ? LNET_PLUGIN_OFFSETS_GROUPED : LNET_PLUGIN_OFFSETS_INTERLEAVED,
        .causal = c->causal, .init = 0, .scale = (float)actual_scale(c), .kernel = NULL,
        .q = b->q, .k = b->k, .v = b->v, .out = b->out, .lse = b->lse,
    };
    return job;
}

static void run_job(void *dev, const lnet_segment_job *job, const char *what)
{
    int rc = cpu->run_segment(dev, job);
    ck_assert_msg(rc == 0, "%s: run_segment rows [%lld, %lld) level %lld:%lld: %d: %s", what,
                  (long long)job->row_begin, (long long)job->row_end,
                  (long long)job->segment, (long long)job->dilation, rc, cpu->last_error());
}

/* A level's rows cut into random chunks, each its own job: short ones (a
 * few rows, empty ones included) or long ones, anywhere. */
static void run_level_chunked(void *dev, lnet_segment_job job, uint64_t *s, const char *what)
{
    int64_t at = 0;
    while (at < job.rows) {
        int64_t left = job.rows - at;
        int64_t len = rng_int(s, 0, rng_int(s, 0, 1) ? left : (left < 7 ? left : 7));
        job.row_begin = at;
        job.row_end = at + len;
        run_job(dev, &job, what);
        at += len;
    }
}

START_TEST(chunked_rows_plugin)
{
    rcase c = random_case(5000 + (uint64_t)_i);
    char what[256];
    describe(&c, what, sizeof what);
    open_cpu_plugin();
    void *dev = NULL;
    ck_assert_msg(cpu->open(0, NULL, &dev) == 0, "open: %s", cpu->last_error());

    inputs in = make_inputs(&c);
    expected e = run_oracle(&c, &in);
    size_t n4 = numel4(&c), n3 = numel3(&c);
    float *out_full = malloc(n4 * sizeof(float)), *lse_full = malloc(n3 * sizeof(float));
    float *out_cut = malloc(n4 * sizeof(float)), *lse_cut = malloc(n3 * sizeof(float));
    ck_assert(out_full && lse_full && out_cut && lse_cut);

    int dense = 0;
    while (c.r[dense] != 1)
        dense++;

    /* The whole range, the dense level first with init (as the core does). */
    job_buffers b = wrap_all(dev, &c, &in, out_full, lse_full);
    for (int k = 0; k < c.L; k++) {
        int level = k == 0 ? dense : (k <= dense ? k - 1 : k);
        lnet_segment_job job = make_job(&c, &b, level);
        job.init = k == 0;
        run_job(dev, &job, what);
    }
    free_all(dev, &b);
    double out_err = max_err(out_full, e.out, n4), lse_err = max_err(lse_full, e.lse, n3);
    ck_assert_msg(out_err <= TOL && lse_err <= TOL, "%s: whole range: out err %g, lse err %g",
                  what, out_err, lse_err);

    /* The same jobs cut at random rows, not aligned to segments: every
     * row's result is computed the same way, so it must be bit-identical. */
    uint64_t s = c.seed;
    b = wrap_all(dev, &c, &in, out_cut, lse_cut);
    for (int k = 0; k < c.L; k++) {
        int level = k == 0 ? dense : (k <= dense ? k - 1 : k);
        lnet_segment_job job = make_job(&c, &b, level);
        job.init = k == 0;
        run_level_chunked(dev, job, &s, what);
    }
    free_all(dev, &b);
    ck_assert_msg(memcmp(out_full, out_cut, n4 * sizeof(float)) == 0 &&
                      memcmp(lse_full, lse_cut, n3 * sizeof(float)) == 0,
                  "%s: chunked rows differ from the whole range", what);

    /* No init: start from (out = 0, lse = -inf) and fold every level, last
     * level first. The fold is order-independent up to rounding. */
    for (size_t i = 0; i < n4; i++)
        out_cut[i] = 0.0f;
    for (size_t i = 0; i < n3; i++)
        lse_cut[i] = -INFINITY;
    b = wrap_all(dev, &c, &in, out_cut, lse_cut);
    for (int level = c.L - 1; level >= 0; level--) {
        lnet_segment_job job = make_job(&c, &b, level);
        run_level_chunked(dev, job, &s, what);
    }
    free_all(dev, &b);
    out_err = max_err(out_cut, e.out, n4);
    lse_err = max_err(lse_cut, e.lse, n3);
    ck_assert_msg(out_err <= TOL && lse_err <= TOL,
                  "%s: folded from -inf in reverse order: out err %g, lse err %g", what, out_err,
                  lse_err);

    free(out_full);
    free(lse_full);
    free(out_cut);
    free(lse_cut);
    free_inputs(&in);
    free_expected(&e);
    cpu->close(dev);
    close_cpu_plugin();
}
END_TEST

static void expect_fail(int rc, int want, const char *needle, const char *what)
{
    ck_assert_msg(rc == want, "%s: status %d, expected %d (message: %s)", what, rc, want,
                  cpu->last_error());
    ck_assert_msg(strstr(cpu->last_error(), needle) != NULL,
                  "%s: message '%s' does not name '%s'", what, cpu->last_error(), needle);
}

START_TEST(device_and_buffers_plugin)
{
    open_cpu_plugin();
    int n = -1;
    ck_assert_int_eq(cpu->probe(&n), 0);
    ck_assert_int_eq(n, 1);

    lnet_plugin_device_desc desc = {.size = sizeof desc}; /* ABI 2: the caller's size */
    ck_assert_int_eq(cpu->describe(0, &desc), 0);
    ck_assert_msg(desc.name[0] != '\0', "empty device name");
    ck_assert_str_eq(desc.kind, "cpu");
    ck_assert_int_ge(desc.compute_units, 1);
    ck_assert_msg(strstr(desc.kernels, "reference") != NULL, "kernels '%s' lack reference",
                  desc.kernels);
    expect_fail(cpu->describe(1, &desc), LNET_PLUGIN_ERR_INVALID, "index 1", "describe(1)");

    void *dev = NULL;
    expect_fail(cpu->open(3, NULL, &dev), LNET_PLUGIN_ERR_INVALID, "index 3", "open(3)");
    ck_assert(dev == NULL);
    expect_fail(cpu->open(0, "bogus=4", &dev), LNET_PLUGIN_ERR_INVALID, "bogus",
                "open with an unknown option");
    expect_fail(cpu->open(0, ",verbose", &dev), LNET_PLUGIN_ERR_INVALID, "verbose",
                "open with an unknown flag");
    ck_assert_int_eq(cpu->open(0, "", &dev), 0);
    cpu->close(dev);
    ck_assert_int_eq(cpu->open(0, NULL, &dev), 0);

    /* Bounds of write/read, including a range whose end overflows size_t. */
    void *buf = NULL;
    unsigned char data[16], back[16];
    for (int i = 0; i < 16; i++)
        data[i] = (unsigned char)(i * 7 + 1);
    ck_assert_int_eq(cpu->buffer_alloc(dev, 16, &buf), 0);
    ck_assert_int_eq(cpu->buffer_write(dev, buf, 0, data, 16), 0);
    memset(back, 0, sizeof back);
    ck_assert_int_eq(cpu->buffer_read(dev, buf, 4, back, 12), 0);
    ck_assert_int_eq(memcmp(back, data + 4, 12), 0);
    expect_fail(cpu->buffer_write(dev, buf, 8, data, 9), LNET_PLUGIN_ERR_INVALID, "offset 8",
                "write past the end");
    expect_fail(cpu->buffer_read(dev, buf, 17, back, 0), LNET_PLUGIN_ERR_INVALID, "offset 17",
                "read at an offset past the end");
    expect_fail(cpu->buffer_read(dev, buf, 1, back, SIZE_MAX), LNET_PLUGIN_ERR_INVALID, "16 bytes",
                "read whose end overflows");
    ck_assert_int_eq(cpu->buffer_write(dev, buf, 16, NULL, 0), 0);
    cpu->buffer_free(dev, buf);

    /* A wrapped buffer is the host memory itself. */
    ck_assert_int_eq(cpu->buffer_wrap_host(dev, back, sizeof back, &buf), 0);
    ck_assert_int_eq(cpu->buffer_write(dev, buf, 0, data, 16), 0);
    ck_assert_int_eq(memcmp(back, data, 16), 0);
    cpu->buffer_free(dev, buf);

    ck_assert_int_eq(cpu->synchronize(dev), 0);
    cpu->close(dev);
    close_cpu_plugin();
}
END_TEST

START_TEST(bad_jobs_plugin)
{
    open_cpu_plugin();
    void *dev = NULL;
    ck_assert_int_eq(cpu->open(0, NULL, &dev), 0);
    rcase c = {"bad jobs", 1, 8, 2, 4, 1, {4}, {1}, 0, 0, 0, 99};
    inputs in = make_inputs(&c);
    float out[64], lse[16];
    for (int i = 0; i < 64; i++)
        out[i] = 1.0f;
    for (int i = 0; i < 16; i++)
        lse[i] = 2.0f;
    job_buffers b = wrap_all(dev, &c, &in, out, lse);
    const lnet_segment_job good = make_job(&c, &b, 0);
    lnet_segment_job j;

#define BAD(field_change, status, needle)                                                   \
    do {                                                                                    \
        j = good;                                                                           \
        field_change;                                                                       \
        expect_fail(cpu->run_segment(dev, &j), status, needle, #field_change);              \
    } while (0)

    BAD(j.size = 16, LNET_PLUGIN_ERR_INVALID, "size 16");
    BAD(j.batch = 0, LNET_PLUGIN_ERR_INVALID, "batch = 0");
    BAD(j.rows = -2, LNET_PLUGIN_ERR_INVALID, "rows = -2");
    BAD(j.heads = 0, LNET_PLUGIN_ERR_INVALID, "heads = 0");
    BAD(j.dim = 0, LNET_PLUGIN_ERR_INVALID, "dim = 0");
    BAD(j.row_begin = -1, LNET_PLUGIN_ERR_INVALID, "[-1, 8)");
    BAD(j.row_end = 9, LNET_PLUGIN_ERR_INVALID, "[0, 9)");
    BAD((j.row_begin = 5, j.row_end = 4), LNET_PLUGIN_ERR_INVALID, "[5, 4)");
    BAD(j.segment = 0, LNET_PLUGIN_ERR_INVALID, "segment = 0");
    BAD(j.dilation = 0, LNET_PLUGIN_ERR_INVALID, "dilation = 0");
    BAD(j.dilation = 5, LNET_PLUGIN_ERR_INVALID, "dilation = 5");
    BAD((j.dilation = 2, j.init = 1), LNET_PLUGIN_ERR_INVALID, "init");
    BAD(j.init = 2, LNET_PLUGIN_ERR_INVALID, "init = 2");
    BAD(j.causal = -1, LNET_PLUGIN_ERR_INVALID, "causal = -1");
    BAD(j.offsets = 7, LNET_PLUGIN_ERR_INVALID, "offsets mode 7");
    BAD(j.scale = NAN, LNET_PLUGIN_ERR_INVALID, "scale");
    BAD(j.scale = INFINITY, LNET_PLUGIN_ERR_INVALID, "inf");
    BAD(j.q = NULL, LNET_PLUGIN_ERR_INVALID, "buffer q is NULL");
    BAD(j.lse = NULL, LNET_PLUGIN_ERR_INVALID, "buffer lse is NULL");
    BAD(j.rows = 9, LNET_PLUGIN_ERR_INVALID, "buffer q holds 256 bytes");
    BAD(j.dim = INT64_MAX, LNET_PLUGIN_ERR_INVALID, "more bytes than fit");
    BAD(j.kernel = "bogus", LNET_PLUGIN_ERR_UNSUPPORTED, "bogus");
    BAD(j.kernel = "bogus", LNET_PLUGIN_ERR_UNSUPPORTED, "available: fast,reference");
    expect_fail(cpu->run_segment(NULL, &good), LNET_PLUGIN_ERR_INVALID, "device", "NULL device");
    expect_fail(cpu->run_segment(dev, NULL), LNET_PLUGIN_ERR_INVALID, "job", "NULL job");
#undef BAD

    /* A refused job writes nothing; an empty range is fine and writes nothing. */
    j = good;
    j.row_begin = j.row_end = 3;
    ck_assert_int_eq(cpu->run_segment(dev, &j), 0);
    for (int i = 0; i < 64; i++)
        ck_assert_msg(out[i] == 1.0f, "out[%d] changed", i);
    for (int i = 0; i < 16; i++)
        ck_assert_msg(lse[i] == 2.0f, "lse[%d] changed", i);

    /* "" and "reference" name the reference kernel; a row range writes only
     * its rows (selected rows of a dilated level, here rows 4..7 only). */
    j = good;
    j.kernel = "";
    j.init = 1;
    j.row_begin = 4;
    ck_assert_int_eq(cpu->run_segment(dev, &j), 0);
    for (int i = 0; i < 32; i++) /* rows 0..3 of [1, 8, 2, 4] */
        ck_assert_msg(out[i] == 1.0f, "out[%d] outside the row range changed", i);
    for (int h = 0; h < 2; h++)
        for (int n = 0; n < 4; n++)
            ck_assert_msg(lse[h * 8 + n] == 2.0f, "lse[%d, %d] outside the row range changed", h,
                          n);
    j.kernel = "reference";
    ck_assert_int_eq(cpu->run_segment(dev, &j), 0);

    free_all(dev, &b);
    free_inputs(&in);
    cpu->close(dev);
    close_cpu_plugin();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("random");

    TCase *tc = tcase_create("public API");
    /* Generous: valgrind runs are many times slower than native ones. */
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, random_public, 0, N_RANDOM);
    tcase_add_loop_test(tc, edge_public, 0, 2 * N_EDGE);
    tcase_add_test(tc, unknown_kernel_public);
    suite_add_tcase(s, tc);

    tc = tcase_create("cpu plugin");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, chunked_rows_plugin, 0, N_CHUNKED);
    tcase_add_test(tc, device_and_buffers_plugin);
    tcase_add_test(tc, bad_jobs_plugin);
    suite_add_tcase(s, tc);

    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
