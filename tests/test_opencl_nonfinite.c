#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* test_opencl_nonfinite.c — non-finite inputs on the OpenCL backend (DESIGN
 * §1, "Non-finite inputs"): a NaN in Q, in K or in V, and scores that
 * overflow float32 (Q and K scaled by 1e30), on every OpenCL device, with
 * both forms of the fused kernel (fused=rows, fused=tiled) and the gemm
 * path, causal and not. Each result is compared position by position with
 * the CPU backend's reference kernel: NaN exactly where the reference has
 * NaN, the same infinity where it has one, within 1e-4 elsewhere.
 *
 * Two ways in: the public API (the levels as the library runs them, the
 * first with init), and the plugin table driven directly from
 * (out = 0, lse = -inf) with every level folded, last level first, next to
 * the CPU plugin's reference kernel given the same jobs.
 *
 * Skips (exit 77) only when no OpenCL device exists. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "longnet-plugin.h"
#include "longnet.h"
#include "opencl_test.h"
#include "plugin_direct.h"
#include "seeded_rng.h"

#define TOL 1e-4

static int n_devices;
static int have_gemm;

/* ------------------------------------------------------------- problems */

enum { NF_Q_NAN, NF_K_NAN, NF_V_NAN, NF_K_INF, NF_OVERFLOW, NF_KINDS };
static const char *const kind_names[NF_KINDS] = {
    "NaN in Q", "NaN in K", "NaN in V", "+inf in K",
    "scores overflowing float32 (1e30 Q, 1e30 K)"};

typedef struct nf_case {
    int64_t B, N, H, D;
    int L;
    int64_t w[3], r[3];
} nf_case;

/* The shape and levels first; then odd sizes, a short last segment,
 * a head dimension that is no multiple of 4 (scalar loads), several tiles
 * of keys, three levels. */
static const nf_case shapes[] = {
    {1, 64, 2, 16, 2, {16, 32}, {1, 2}},
    {2, 45, 3, 7, 3, {10, 45, 20}, {2, 1, 3}},
    {1, 150, 2, 32, 2, {150, 96}, {1, 4}},
};
#define N_SHAPES ((int)(sizeof shapes / sizeof shapes[0]))

typedef struct problem {
    nf_case c;
    int kind, causal;
    size_t n4, n3;
    float *q, *k, *v;
} problem;

static problem make_problem(int shape, int kind, int causal)
{
    problem p = {shapes[shape], kind, causal, 0, 0, NULL, NULL, NULL};
    const nf_case *c = &p.c;
    p.n4 = (size_t)(c->B * c->N * c->H * c->D);
    p.n3 = (size_t)(c->B * c->H * c->N);
    p.q = malloc(p.n4 * sizeof(float));
    p.k = malloc(p.n4 * sizeof(float));
    p.v = malloc(p.n4 * sizeof(float));
    ck_assert(p.q && p.k && p.v);
    uint64_t s = 0x9a9aull + (uint64_t)(shape * 16 + kind * 2 + causal);
    for (size_t i = 0; i < p.n4; i++) {
        p.q[i] = (float)rng_real(&s, -1, 1);
        p.k[i] = (float)rng_real(&s, -1, 1);
        p.v[i] = (float)rng_real(&s, -1, 1);
    }
    /* One element of a row in the middle of the sequence (row 5 of the
     * issue's case is a query of both levels), head 1 where there is one. */
    const int64_t row = c->N > 5 ? 5 : 0, h = c->H > 1 ? 1 : 0, d = c->D / 2;
    const size_t at = (size_t)(((0 * c->N + row) * c->H + h) * c->D + d);
    switch (kind) {
    case NF_Q_NAN:
        p.q[at] = NAN;
        break;
    case NF_K_NAN:
        p.k[at] = NAN;
        break;
    case NF_V_NAN:
        p.v[at] = NAN;
        break;
    case NF_K_INF:
        /* Scores +inf (NaN rows) or -inf (that key weighs 0) by the sign
         * of the query's element: the same in float and in double. */
        p.k[at] = INFINITY;
        break;
    default:
        for (size_t i = 0; i < p.n4; i++) {
            p.q[i] *= 1e30f;
            p.k[i] *= 1e30f;
        }
        break;
    }
    return p;
}

static void free_problem(problem *p)
{
    free(p->q);
    free(p->k);
    free(p->v);
}

static void describe(const problem *p, char *buf, size_t len)
{
    const nf_case *c = &p->c;
    int n = snprintf(buf, len, "%s, B%lld N%lld H%lld D%lld levels", kind_names[p->kind],
                     (long long)c->B, (long long)c->N, (long long)c->H, (long long)c->D);
    for (int i = 0; i < c->L && n > 0 && (size_t)n < len; i++)
        n += snprintf(buf + n, len - (size_t)n, " %lld:%lld", (long long)c->w[i],
                      (long long)c->r[i]);
    if (n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, ", %s", p->causal ? "causal" : "not causal");
}

/* ------------------------------------------------------------ comparing */

typedef struct tally {
    size_t nan, inf, finite;
} tally;

/* Position by position: NaN where `want` has NaN, the same infinity where
 * it has one, within TOL elsewhere. Counts what `want` holds.
 *
 * `nan_ok` (scores overflowing float32 only) also takes NaN where the
 * reference has a number: the reference scores in double, where 1e60 is
 * finite, so it still finds each row's largest score; a float32 kernel sees
 * +inf or NaN scores there, and the most it can do is say so (NaN), never
 * make up a number. A finite value must still be the reference's. */
static void compare(const float *got, const float *want, size_t n, const char *what,
                    const char *tensor, int nan_ok, tally *t)
{
    for (size_t i = 0; i < n; i++) {
        const float g = got[i], w = want[i];
        int ok;
        if (isnan(w)) {
            ok = isnan(g);
            t->nan++;
        } else if (isinf(w)) {
            ok = g == w || (nan_ok && isnan(g));
            t->inf++;
        } else {
            ok = (isfinite(g) && fabs((double)g - (double)w) <= TOL) || (nan_ok && isnan(g));
            t->finite++;
        }
        ck_assert_msg(ok, "%s: %s[%zu] is %g where the reference kernel gives %g", what, tensor,
                      i, (double)g, (double)w);
    }
}

/* The reference must show what the case is about: some NaN (or, scores
 * overflowing, some non-finite value) and some finite values, so that the
 * comparison is neither vacuous nor all-NaN. */
static void check_tally(const tally *t, const char *what)
{
    ck_assert_msg(t->nan + t->inf > 0, "%s: the reference has no non-finite value", what);
    ck_assert_msg(t->finite > 0, "%s: the reference has no finite value", what);
}

/* ----------------------------------------------------------- public API */

static void run_public(lnet_context *cx, const problem *p, const char *device, const char *kernel,
                       float *out, float *lse)
{
    const nf_case *c = &p->c;
    lnet_config *cfg = NULL;
    ck_assert(lnet_config_create(&cfg) == LNET_OK);
    for (int i = 0; i < c->L; i++)
        ck_assert(lnet_config_add_level(cfg, c->w[i], c->r[i]) == LNET_OK);
    ck_assert(lnet_config_set_causal(cfg, p->causal) == LNET_OK);
    int64_t s4[4] = {c->B, c->N, c->H, c->D}, s3[3] = {c->B, c->H, c->N};
    /* Sentinels a kernel that writes nothing would leave behind. */
    for (size_t i = 0; i < p->n4; i++)
        out[i] = 12345.0f;
    for (size_t i = 0; i < p->n3; i++)
        lse[i] = 12345.0f;
    lnet_tensor *q, *k, *v, *o, *l;
    ck_assert(lnet_tensor_wrap(p->q, 4, s4, &q) == LNET_OK);
    ck_assert(lnet_tensor_wrap(p->k, 4, s4, &k) == LNET_OK);
    ck_assert(lnet_tensor_wrap(p->v, 4, s4, &v) == LNET_OK);
    ck_assert(lnet_tensor_wrap(out, 4, s4, &o) == LNET_OK);
    ck_assert(lnet_tensor_wrap(lse, 3, s3, &l) == LNET_OK);
    lnet_run_options opts = {.size = sizeof opts, .device = device, .kernel = kernel};
    lnet_status st = lnet_attention_forward(cx, cfg, q, k, v, o, l, &opts);
    ck_assert_msg(st == LNET_OK, "%s/%s: %s", device, kernel, lnet_last_error());
    lnet_tensor_free(q);
    lnet_tensor_free(k);
    lnet_tensor_free(v);
    lnet_tensor_free(o);
    lnet_tensor_free(l);
    lnet_config_free(cfg);
}

/* The kernels and forms: fused in each form (LONGNET_OPENCL_FUSED, read
 * when a context opens the device), and gemm. */
static const struct {
    const char *kernel, *form;
} forms[] = {{"fused", "rows"}, {"fused", "tiled"}, {"gemm", NULL}};

static int n_forms(void)
{
    return have_gemm ? 3 : 2;
}

/* _i: device x shape x kind x causal. */
START_TEST(public_api)
{
    const int per_dev = N_SHAPES * NF_KINDS * 2;
    const int dev = _i / per_dev, shape = (_i % per_dev) / (NF_KINDS * 2);
    const int kind = (_i % (NF_KINDS * 2)) / 2, causal = _i % 2;
    problem p = make_problem(shape, kind, causal);
    char what[512], spec[32];
    snprintf(spec, sizeof spec, "opencl:%d", dev);
    float *want_o = malloc(p.n4 * sizeof(float)), *want_l = malloc(p.n3 * sizeof(float));
    float *out = malloc(p.n4 * sizeof(float)), *lse = malloc(p.n3 * sizeof(float));
    ck_assert(want_o && want_l && out && lse);

    lnet_context *cx = NULL;
    ck_assert_msg(lnet_context_create(NULL, &cx) == LNET_OK, "%s", lnet_last_error());
    run_public(cx, &p, "cpu", "reference", want_o, want_l);
    lnet_context_free(cx);

    for (int f = 0; f < n_forms(); f++) {
        if (forms[f].form)
            ck_assert(setenv("LONGNET_OPENCL_FUSED", forms[f].form, 1) == 0);
        else
            ck_assert(unsetenv("LONGNET_OPENCL_FUSED") == 0);
        ck_assert_msg(lnet_context_create(NULL, &cx) == LNET_OK, "%s", lnet_last_error());
        run_public(cx, &p, spec, forms[f].kernel, out, lse);
        lnet_context_free(cx);
        char head[400];
        describe(&p, head, sizeof head);
        snprintf(what, sizeof what, "public API, %s, %s/%s%s%s", head, spec, forms[f].kernel,
                 forms[f].form ? " fused=" : "", forms[f].form ? forms[f].form : "");
        tally t = {0, 0, 0};
        compare(out, want_o, p.n4, what, "out", kind == NF_OVERFLOW, &t);
        compare(lse, want_l, p.n3, what, "lse", kind == NF_OVERFLOW, &t);
        check_tally(&t, what);
        printf("%s: %zu NaN, %zu inf, %zu finite as the reference\n", what, t.nan, t.inf,
               t.finite);
    }
    ck_assert(unsetenv("LONGNET_OPENCL_FUSED") == 0);
    fflush(stdout);
    free(want_o);
    free(want_l);
    free(out);
    free(lse);
    free_problem(&p);
}
END_TEST

/* ------------------------------------------------ the plugins, directly */

static const lnet_plugin *ocl, *cpu;
static void *ocl_module, *cpu_module;

static void open_plugins(void)
{
    if (!ocl)
        ocl = plugin_direct_open("opencl", &ocl_module);
    if (!cpu)
        cpu = plugin_direct_open("cpu", &cpu_module);
}

static void *upload(const lnet_plugin *pl, void *dev, const float *host, size_t n)
{
    void *b = NULL;
    ck_assert_msg(pl->buffer_alloc(dev, n * sizeof(float), &b) == 0, "buffer_alloc: %s",
                  pl->last_error());
    ck_assert_msg(pl->buffer_write(dev, b, 0, host, n * sizeof(float)) == 0, "buffer_write: %s",
                  pl->last_error());
    return b;
}

/* Every level folded into (out = 0, lse = -inf), last level first: no job
 * has init, so every row goes through the fold. */
static void run_direct(const lnet_plugin *pl, void *dev, const problem *p, const char *kernel,
                       float *out, float *lse)
{
    const nf_case *c = &p->c;
    for (size_t i = 0; i < p->n4; i++)
        out[i] = 0.0f;
    for (size_t i = 0; i < p->n3; i++)
        lse[i] = -INFINITY;
    void *b[5] = {upload(pl, dev, p->q, p->n4), upload(pl, dev, p->k, p->n4),
                  upload(pl, dev, p->v, p->n4), upload(pl, dev, out, p->n4),
                  upload(pl, dev, lse, p->n3)};
    for (int level = c->L - 1; level >= 0; level--) {
        lnet_segment_job job = {.size = sizeof job, .batch = c->B, .rows = c->N,
                                .heads = c->H, .dim = c->D, .row_begin = 0, .row_end = c->N,
                                .segment = c->w[level], .dilation = c->r[level],
                                .offsets = LNET_PLUGIN_OFFSETS_INTERLEAVED,
                                .causal = p->causal, .init = 0,
                                .scale = (float)(1.0 / sqrt((double)c->D)), .kernel = kernel,
                                .q = b[0], .k = b[1], .v = b[2], .out = b[3], .lse = b[4]};
        ck_assert_msg(pl->run_segment(dev, &job) == 0, "%s run_segment level %d: %s", pl->name,
                      level, pl->last_error());
    }
    ck_assert_msg(pl->synchronize(dev) == 0, "synchronize: %s", pl->last_error());
    ck_assert(pl->buffer_read(dev, b[3], 0, out, p->n4 * sizeof(float)) == 0);
    ck_assert(pl->buffer_read(dev, b[4], 0, lse, p->n3 * sizeof(float)) == 0);
    for (int i = 0; i < 5; i++)
        pl->buffer_free(dev, b[i]);
}

START_TEST(plugin_direct)
{
    open_plugins();
    const int per_dev = N_SHAPES * NF_KINDS * 2;
    const int dev_i = _i / per_dev, shape = (_i % per_dev) / (NF_KINDS * 2);
    const int kind = (_i % (NF_KINDS * 2)) / 2, causal = _i % 2;
    problem p = make_problem(shape, kind, causal);
    float *want_o = malloc(p.n4 * sizeof(float)), *want_l = malloc(p.n3 * sizeof(float));
    float *out = malloc(p.n4 * sizeof(float)), *lse = malloc(p.n3 * sizeof(float));
    ck_assert(want_o && want_l && out && lse);

    void *cdev = NULL;
    ck_assert_msg(cpu->open(0, NULL, &cdev) == 0, "cpu open: %s", cpu->last_error());
    run_direct(cpu, cdev, &p, "reference", want_o, want_l);
    cpu->close(cdev);

    for (int f = 0; f < n_forms(); f++) {
        char options[32] = "";
        if (forms[f].form)
            snprintf(options, sizeof options, "fused=%s", forms[f].form);
        void *dev = NULL;
        ck_assert_msg(ocl->open(dev_i, options, &dev) == 0, "open: %s", ocl->last_error());
        run_direct(ocl, dev, &p, forms[f].kernel, out, lse);
        ocl->close(dev);
        char what[512], head[400];
        describe(&p, head, sizeof head);
        snprintf(what, sizeof what, "plugin, folded from -inf, %s, opencl:%d/%s%s%s", head,
                 dev_i, forms[f].kernel, options[0] ? " " : "", options);
        tally t = {0, 0, 0};
        compare(out, want_o, p.n4, what, "out", kind == NF_OVERFLOW, &t);
        compare(lse, want_l, p.n3, what, "lse", kind == NF_OVERFLOW, &t);
        check_tally(&t, what);
    }
    free(want_o);
    free(want_l);
    free(out);
    free(lse);
    free_problem(&p);
}
END_TEST

/* ------------------------------------------------------------------ main */

/* The program cache of this run: a fresh directory, emptied at the end. */
static char cache_dir[256];

static void remove_cache(void)
{
    scratch_dir_remove(cache_dir);
}

int main(void)
{
    /* The context stays for the whole run: it keeps the OpenCL module
     * loaded with the devices of its probe, which the direct tests open. */
    lnet_context *ctx = NULL;
    int rc = opencl_test_start("longnet-test-nonfinite",
                               "the OpenCL backend's non-finite cases", cache_dir,
                               sizeof cache_dir, &ctx, &n_devices, &have_gemm);
    if (rc)
        return rc;

    Suite *s = suite_create("opencl-nonfinite");
    TCase *tc = tcase_create("nonfinite");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, public_api, 0, n_devices * N_SHAPES * NF_KINDS * 2);
    tcase_add_loop_test(tc, plugin_direct, 0, n_devices * N_SHAPES * NF_KINDS * 2);
    suite_add_tcase(s, tc);
    int failed = opencl_run_suite(s);
    lnet_context_free(ctx);
    remove_cache();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
