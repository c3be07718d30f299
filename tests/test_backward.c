/* test_backward.c — lnet_attention_backward (DESIGN §1; issue 13): the
 * golden gradients (float64 oracle) within 1e-4 through the library on the
 * CPU backend's kernels; randomized cases against a naive double backward
 * written here; directional derivatives of the forward alone; one
 * sequence over 2-4 devices (gather, ring, auto; the faulty fixture with
 * failover at every position; the isolation check) equal to one device
 * within 1e-5; a device without a backward refused or left out by name;
 * bad calls refused. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden_cases.h"
#include "longnet.h"
#include "multidev.h"

static golden_set golden;

/* ------------------------------------------------------------ helpers */

static lnet_tensor *like(const lnet_tensor *t)
{
    int64_t s[4];
    for (int i = 0; i < lnet_tensor_ndim(t); i++)
        s[i] = lnet_tensor_dim(t, i);
    lnet_tensor *o;
    ck_assert_int_eq(lnet_tensor_create(lnet_tensor_ndim(t), s, &o), LNET_OK);
    return o;
}

typedef struct grads {
    lnet_tensor *dq, *dk, *dv;
} grads;

static void grads_free(grads *g)
{
    lnet_tensor_free(g->dq);
    lnet_tensor_free(g->dk);
    lnet_tensor_free(g->dv);
}

static lnet_status backward(lnet_context *ctx, const lnet_config *cfg, const lnet_tensor *q,
                            const lnet_tensor *k, const lnet_tensor *v, const lnet_tensor *out,
                            const lnet_tensor *lse, const lnet_tensor *dout, const char *devices,
                            const char *kernel, lnet_algorithm algo, grads *g)
{
    g->dq = like(q);
    g->dk = like(k);
    g->dv = like(v);
    lnet_run_options o = {.size = sizeof o, .device = devices, .kernel = kernel, .algorithm = algo};
    return lnet_attention_backward(ctx, cfg, q, k, v, out, lse, dout, g->dq, g->dk, g->dv, &o);
}

static double grads_diff(const grads *a, const grads *b)
{
    double d[3] = {max_diff(a->dq, b->dq), max_diff(a->dk, b->dk), max_diff(a->dv, b->dv)};
    return fmax(d[0], fmax(d[1], d[2]));
}

static lnet_tensor *random_like(const lnet_tensor *t, uint64_t *r)
{
    lnet_tensor *o = like(t);
    float *d = lnet_tensor_data(o);
    for (size_t i = 0; i < lnet_tensor_numel(o); i++)
        d[i] = (float)rng_real(r, -1.0, 1.0);
    return o;
}

/* ------------------------------------------------------------ golden */

START_TEST(golden_gradients)
{
    const golden_case *c = &golden.cases[_i];
    const char *kernels[] = {"fast", "reference"};
    lnet_context *ctx = faulty_context(1, NULL, NULL, NULL);
    char err[512];
    lnet_config *cfg;
    ck_assert_msg(golden_config(c, &cfg, err, sizeof err) == 0, "%s", err);
    const char *names[] = {"q", "k", "v", "out", "lse", "dout", "dq", "dk", "dv"};
    lnet_tensor *t[9];
    for (int i = 0; i < 9; i++)
        ck_assert_msg(golden_tensor(&golden, c, names[i], &t[i], err, sizeof err) == 0, "%s", err);
    for (int kk = 0; kk < 2; kk++) {
        for (int saved = 0; saved <= 1; saved++) {
            grads g;
            lnet_status st = backward(ctx, cfg, t[0], t[1], t[2], saved ? t[3] : NULL,
                                      saved ? t[4] : NULL, t[5], "cpu", kernels[kk],
                                      LNET_ALGORITHM_AUTO, &g);
            ck_assert_msg(st == LNET_OK, "%s (%s): %s", c->name, kernels[kk], lnet_last_error());
            double e[3] = {max_diff(g.dq, t[6]), max_diff(g.dk, t[7]), max_diff(g.dv, t[8])};
            ck_assert_msg(e[0] <= 1e-4 && e[1] <= 1e-4 && e[2] <= 1e-4,
                          "%s (%s, %s): dq %g, dk %g, dv %g", c->name, kernels[kk],
                          saved ? "saved forward" : "forward run first", e[0], e[1], e[2]);
            grads_free(&g);
        }
    }
    for (int i = 0; i < 9; i++)
        lnet_tensor_free(t[i]);
    lnet_config_free(cfg);
    lnet_context_free(ctx);
}
END_TEST

/* ------------------------------------------------------ naive oracle */

typedef struct level {
    int64_t w, r;
} level;

typedef struct naive {
    int64_t B, N, H, D;
    int n_levels;
    level lv[4];
    int causal, grouped;
    double scale;
} naive;

static int64_t head_offset(const naive *p, int64_t h, int64_t r)
{
    if (!p->grouped)
        return h % r;
    int64_t per = (p->H + r - 1) / r;
    return h / per;
}

/* Every (query i, key j) pair a level scores for head h, as the operator
 * defines it; fn called with each. */
typedef void (*pair_fn)(void *u, int64_t b, int64_t h, int64_t i, int64_t j);

static void each_pair(const naive *p, pair_fn fn, void *u)
{
    for (int l = 0; l < p->n_levels; l++) {
        const int64_t w = p->lv[l].w, r = p->lv[l].r;
        for (int64_t b = 0; b < p->B; b++)
            for (int64_t h = 0; h < p->H; h++) {
                const int64_t o = head_offset(p, h, r);
                for (int64_t s = 0; s * w < p->N; s++) {
                    const int64_t end = (s + 1) * w < p->N ? (s + 1) * w : p->N;
                    for (int64_t i = s * w + o; i < end; i += r)
                        for (int64_t j = s * w + o; j < end && (!p->causal || j <= i); j += r)
                            fn(u, b, h, i, j);
                }
            }
    }
}

typedef struct oracle {
    const naive *p;
    const float *q, *k, *v, *dout;
    double *m, *sum, *acc, *lse, *o, *delta, *dq, *dk, *dv;
    int pass;
} oracle;

static double dot(const oracle *x, const float *a, const float *b, int64_t bi, int64_t h, int64_t i,
                  int64_t j)
{
    const naive *p = x->p;
    double s = 0;
    for (int64_t d = 0; d < p->D; d++)
        s += (double)a[((bi * p->N + i) * p->H + h) * p->D + d] * (double)b[((bi * p->N + j) * p->H + h) * p->D + d];
    return s;
}

static void visit(void *u, int64_t b, int64_t h, int64_t i, int64_t j)
{
    oracle *x = u;
    const naive *p = x->p;
    const size_t row = (size_t)((b * p->H + h) * p->N + i);
    const double s = p->scale * dot(x, x->q, x->k, b, h, i, j);
    const size_t qi = (size_t)(((b * p->N + i) * p->H + h) * p->D), kj = (size_t)(((b * p->N + j) * p->H + h) * p->D);
    if (x->pass == 0) { /* the row's max score */
        if (s > x->m[row])
            x->m[row] = s;
    } else if (x->pass == 1) { /* O and the sum */
        const double e = exp(s - x->m[row]);
        x->sum[row] += e;
        for (int64_t d = 0; d < p->D; d++)
            x->acc[qi + d] += e * x->v[kj + d];
    } else { /* the gradients */
        const double P = exp(s - x->lse[row]);
        double dp = 0;
        for (int64_t d = 0; d < p->D; d++)
            dp += (double)x->dout[qi + d] * x->v[kj + d];
        const double ds = P * (dp - x->delta[row]);
        for (int64_t d = 0; d < p->D; d++) {
            x->dv[kj + d] += P * x->dout[qi + d];
            x->dq[qi + d] += p->scale * ds * x->k[kj + d];
            x->dk[kj + d] += p->scale * ds * x->q[qi + d];
        }
    }
}

/* The naive forward and backward in double. */
static void naive_run(oracle *x)
{
    const naive *p = x->p;
    const size_t rows = (size_t)(p->B * p->H * p->N), n = (size_t)(p->B * p->N * p->H * p->D);
    x->m = malloc(rows * sizeof(double));
    x->sum = calloc(rows, sizeof(double));
    x->lse = calloc(rows, sizeof(double));
    x->delta = calloc(rows, sizeof(double));
    x->acc = calloc(n, sizeof(double));
    x->dq = calloc(n, sizeof(double));
    x->dk = calloc(n, sizeof(double));
    x->dv = calloc(n, sizeof(double));
    for (size_t i = 0; i < rows; i++)
        x->m[i] = -INFINITY;
    for (x->pass = 0; x->pass < 2; x->pass++)
        each_pair(p, visit, x);
    x->o = x->acc;
    for (int64_t b = 0; b < p->B; b++)
        for (int64_t i = 0; i < p->N; i++)
            for (int64_t h = 0; h < p->H; h++) {
                const size_t row = (size_t)((b * p->H + h) * p->N + i);
                const size_t qi = (size_t)(((b * p->N + i) * p->H + h) * p->D);
                x->lse[row] = x->m[row] + log(x->sum[row]);
                double dl = 0;
                for (int64_t d = 0; d < p->D; d++) {
                    x->o[qi + d] /= x->sum[row];
                    dl += x->o[qi + d] * x->dout[qi + d];
                }
                x->delta[row] = dl;
            }
    x->pass = 2;
    each_pair(p, visit, x);
}

static void oracle_free(oracle *x)
{
    free(x->m);
    free(x->sum);
    free(x->lse);
    free(x->delta);
    free(x->acc);
    free(x->dq);
    free(x->dk);
    free(x->dv);
}

static double vs_double(const lnet_tensor *t, const double *want)
{
    const float *f = lnet_tensor_cdata(t);
    double m = 0;
    for (size_t i = 0; i < lnet_tensor_numel(t); i++) {
        double d = fabs((double)f[i] - want[i]) / (1.0 + fabs(want[i]));
        if (!(d <= m))
            m = d != d ? INFINITY : d;
    }
    return m;
}

/* A random problem: its config and naive description. */
static void random_problem(uint64_t *r, problem *pr, naive *nv)
{
    memset(nv, 0, sizeof *nv);
    nv->B = rng_int(r, 1, 2);
    nv->N = rng_int(r, 1, 160);
    nv->H = rng_int(r, 1, 5);
    nv->D = (int64_t[]){1, 4, 8, 16, 33, 64, 256}[rng_int(r, 0, 6)];
    make_problem(pr, r, nv->B, nv->N, nv->H, nv->D);
    nv->n_levels = (int)rng_int(r, 1, 3);
    int dense = (int)rng_int(r, 0, nv->n_levels - 1);
    for (int l = 0; l < nv->n_levels; l++) {
        nv->lv[l].w = rng_int(r, 1, nv->N + 8);
        nv->lv[l].r = l == dense ? 1 : rng_int(r, 1, nv->lv[l].w < 5 ? nv->lv[l].w : 5);
        ck_assert_int_eq(lnet_config_add_level(pr->cfg, nv->lv[l].w, nv->lv[l].r), LNET_OK);
    }
    nv->causal = (int)rng_int(r, 0, 1);
    nv->grouped = (int)rng_int(r, 0, 1);
    nv->scale = rng_int(r, 0, 1) ? 0.5 + rng_real(r, 0, 1) : 1.0 / sqrt((double)nv->D);
    lnet_config_set_causal(pr->cfg, nv->causal);
    lnet_config_set_offsets(pr->cfg, nv->grouped ? LNET_OFFSETS_GROUPED : LNET_OFFSETS_INTERLEAVED);
    lnet_config_set_scale(pr->cfg, nv->scale);
}

START_TEST(random_against_naive)
{
    lnet_context *ctx = faulty_context(1, NULL, NULL, NULL);
    uint64_t r = 0xbac0000u + (uint64_t)_i;
    for (int c = 0; c < 6; c++) {
        problem pr;
        naive nv;
        random_problem(&r, &pr, &nv);
        lnet_tensor *dout = random_like(pr.q, &r);
        oracle x = {&nv, lnet_tensor_cdata(pr.q), lnet_tensor_cdata(pr.k), lnet_tensor_cdata(pr.v),
                    lnet_tensor_cdata(dout), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0};
        naive_run(&x);
        for (int kk = 0; kk < 2; kk++) {
            grads g;
            ck_assert_msg(backward(ctx, pr.cfg, pr.q, pr.k, pr.v, NULL, NULL, dout, "cpu",
                                   kk ? "reference" : "fast", LNET_ALGORITHM_AUTO, &g) == LNET_OK,
                          "%s", lnet_last_error());
            double e[3] = {vs_double(g.dq, x.dq), vs_double(g.dk, x.dk), vs_double(g.dv, x.dv)};
            ck_assert_msg(e[0] <= 1e-4 && e[1] <= 1e-4 && e[2] <= 1e-4,
                          "B=%lld N=%lld H=%lld D=%lld levels=%d causal=%d grouped=%d (%s): "
                          "dq %g dk %g dv %g", (long long)nv.B, (long long)nv.N, (long long)nv.H,
                          (long long)nv.D, nv.n_levels, nv.causal, nv.grouped,
                          kk ? "reference" : "fast", e[0], e[1], e[2]);
            grads_free(&g);
        }
        oracle_free(&x);
        lnet_tensor_free(dout);
        free_problem(&pr);
    }
    lnet_context_free(ctx);
}
END_TEST

/* ---------------------------------------------- directional derivatives */

/* f(x) = sum(O(x) * dO), through the forward alone. */
static double objective(lnet_context *ctx, problem *p, const lnet_tensor *dout)
{
    lnet_tensor *o, *l;
    ck_assert_int_eq(run(ctx, p, "cpu", LNET_ALGORITHM_AUTO, &o, &l), LNET_OK);
    const float *a = lnet_tensor_cdata(o), *b = lnet_tensor_cdata(dout);
    double s = 0;
    for (size_t i = 0; i < lnet_tensor_numel(o); i++)
        s += (double)a[i] * (double)b[i];
    lnet_tensor_free(o);
    lnet_tensor_free(l);
    return s;
}

/* The central difference (f(x + eps u) - f(x - eps u)) / 2 eps. */
static double central(lnet_context *ctx, problem *p, const lnet_tensor *dout, lnet_tensor *x,
                      const lnet_tensor *u, double eps)
{
    float *xd = lnet_tensor_data(x);
    const float *ud = lnet_tensor_cdata(u);
    const size_t n = lnet_tensor_numel(u);
    float *keep = malloc(n * sizeof(float));
    memcpy(keep, xd, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        xd[i] = keep[i] + (float)(eps * ud[i]);
    const double fp = objective(ctx, p, dout);
    for (size_t i = 0; i < n; i++)
        xd[i] = keep[i] - (float)(eps * ud[i]);
    const double fm = objective(ctx, p, dout);
    memcpy(xd, keep, n * sizeof(float));
    free(keep);
    return (fp - fm) / (2 * eps);
}

/* The directional derivative of f along u, against <grad, u>, for x each
 * of Q, K and V. A float32 forward limits the step: eps = 2e-2 and 1e-2
 * keep f's rounding (about 1e-7 |f| sqrt(n), over 2 eps) near 1e-3, and
 * Richardson's (4 D(eps/2) - D(eps)) / 3 removes the eps^2 term that a
 * peaked softmax makes large, leaving eps^4. */
START_TEST(directional_derivatives)
{
    lnet_context *ctx = faulty_context(1, NULL, NULL, NULL);
    uint64_t r = 0xd1ec0000u + (uint64_t)_i;
    problem pr;
    naive nv;
    random_problem(&r, &pr, &nv);
    lnet_tensor *dout = random_like(pr.q, &r);
    grads g;
    ck_assert_int_eq(backward(ctx, pr.cfg, pr.q, pr.k, pr.v, NULL, NULL, dout, "cpu", NULL,
                              LNET_ALGORITHM_AUTO, &g), LNET_OK);
    lnet_tensor *x[3] = {pr.q, pr.k, pr.v}, *grad[3] = {g.dq, g.dk, g.dv};
    const double eps = 1e-2;
    for (int t = 0; t < 3; t++) {
        for (int dir = 0; dir < 3; dir++) {
            lnet_tensor *u = random_like(x[t], &r);
            const float *ud = lnet_tensor_cdata(u), *gd = lnet_tensor_cdata(grad[t]);
            const size_t n = lnet_tensor_numel(u);
            const double d1 = central(ctx, &pr, dout, x[t], u, 2 * eps);
            const double d2 = central(ctx, &pr, dout, x[t], u, eps);
            double an = 0;
            for (size_t i = 0; i < n; i++)
                an += (double)gd[i] * (double)ud[i];
            const double fd = (4 * d2 - d1) / 3, tol = 1e-2 * fmax(1.0, fabs(an));
            ck_assert_msg(fabs(fd - an) <= tol, "%c, direction %d: finite difference %.6g, "
                          "<grad, u> %.6g", "qkv"[t], dir, fd, an);
            /* The check is able to fail: a gradient 10% off is told apart
             * whenever the directional derivative is not tiny. */
            if (fabs(an) > 1.0)
                ck_assert_msg(fabs(fd - 1.1 * an) > tol, "%c: 1.1 <grad, u> passes too", "qkv"[t]);
            lnet_tensor_free(u);
        }
    }
    grads_free(&g);
    lnet_tensor_free(dout);
    free_problem(&pr);
    lnet_context_free(ctx);
}
END_TEST

/* ------------------------------------------------------- multi-device */

typedef struct scenario {
    const char *devices, *fail;
} scenario;

static const scenario scenarios[] = {
    {"cpu=1,cpu=2", NULL},
    {"cpu=1,faulty:0=1", NULL},
    {"faulty:0=1,cpu=2,faulty:1=1", NULL},
    {"faulty:2=1,faulty:0=3,cpu=1,faulty:1=2", NULL},
    {"faulty:0=1,cpu=1,faulty:1=1", "0:1"},
    {"cpu=1,faulty:0=1,faulty:1=1", "1:2"},
    {"faulty:1=1,faulty:0=1,cpu=1", "0:3"},
};
#define N_SCENARIOS ((int)(sizeof scenarios / sizeof scenarios[0]))

START_TEST(many_devices_equal_one)
{
    const scenario *sc = &scenarios[_i];
    uint64_t r = 0x3d00u + (uint64_t)_i;
    for (int c = 0; c < 3; c++) {
        problem pr;
        const int64_t N = rng_int(&r, 64, 300);
        make_problem(&pr, &r, rng_int(&r, 1, 2), N, rng_int(&r, 1, 3), (int64_t[]){4, 8, 16}[c]);
        const char *segs[3] = {"16,64,512", "300", "32,100"}, *dils[3] = {"1,2,4", "1", "1,3"};
        ck_assert_int_eq(lnet_config_parse_levels(pr.cfg, segs[c], dils[c]), LNET_OK);
        lnet_tensor *dout = random_like(pr.q, &r);
        for (int causal = 0; causal <= 1; causal++) {
            lnet_config_set_causal(pr.cfg, causal);
            lnet_context *one = faulty_context(3, NULL, NULL, NULL);
            grads g1;
            ck_assert_int_eq(backward(one, pr.cfg, pr.q, pr.k, pr.v, NULL, NULL, dout, "cpu", NULL,
                                      LNET_ALGORITHM_AUTO, &g1), LNET_OK);
            lnet_context_free(one);
            for (int a = 0; a <= 2; a++) {
                for (int poison = 0; poison <= 1; poison++) {
                    if (poison)
                        setenv("LONGNET_ISOLATION_CHECK", "1", 1);
                    lnet_context *ctx = faulty_context(3, sc->fail, NULL, NULL);
                    grads g;
                    lnet_status st = backward(ctx, pr.cfg, pr.q, pr.k, pr.v, NULL, NULL, dout,
                                              sc->devices, NULL, (lnet_algorithm)a, &g);
                    unsetenv("LONGNET_ISOLATION_CHECK");
                    ck_assert_msg(st == LNET_OK, "%s: %s", sc->devices, lnet_last_error());
                    const double d = grads_diff(&g, &g1);
                    ck_assert_msg(d <= 1e-5, "%s (algorithm %d, causal %d, segments %s, isolation "
                                  "%d): gradients differ from one device by %g", sc->devices, a,
                                  causal, segs[c], poison, d);
                    grads_free(&g);
                    lnet_context_free(ctx);
                }
            }
            grads_free(&g1);
        }
        lnet_tensor_free(dout);
        free_problem(&pr);
    }
}
END_TEST

/* The backward plan lists its REDUCE transfers (dK, dV back to their
 * owners); a device without a backward is left out of a list, or refused
 * alone, by name. */
static void on_log(lnet_log_level level, const char *msg, void *user)
{
    if (level >= LNET_LOG_WARNING)
        snprintf(user, 512, "%s", msg);
}

START_TEST(devices_without_backward)
{
    char warning[512] = "";
    lnet_context *ctx = faulty_context(1, NULL, on_log, warning);
    uint64_t r = 77;
    problem pr;
    make_problem(&pr, &r, 1, 128, 2, 8);
    ck_assert_int_eq(lnet_config_parse_levels(pr.cfg, "32,128", "1,2"), LNET_OK);
    lnet_tensor *dout = random_like(pr.q, &r);
    int idx;
    if (lnet_context_find_device(ctx, "picky:0", &idx) == LNET_OK) {
        grads g;
        ck_assert_int_eq(backward(ctx, pr.cfg, pr.q, pr.k, pr.v, NULL, NULL, dout, "picky:0", NULL,
                                  LNET_ALGORITHM_AUTO, &g), LNET_ERR_UNSUPPORTED);
        ck_assert_msg(strstr(lnet_last_error(), "picky:0") &&
                      strstr(lnet_last_error(), "backward"), "%s", lnet_last_error());
        grads_free(&g);
        grads g1, g2;
        ck_assert_int_eq(backward(ctx, pr.cfg, pr.q, pr.k, pr.v, NULL, NULL, dout, "cpu", NULL,
                                  LNET_ALGORITHM_AUTO, &g1), LNET_OK);
        ck_assert_msg(backward(ctx, pr.cfg, pr.q, pr.k, pr.v, NULL, NULL, dout, "cpu=1,picky:0=1",
                               NULL, LNET_ALGORITHM_AUTO, &g2) == LNET_OK, "%s", lnet_last_error());
        ck_assert_msg(strstr(warning, "picky:0") && strstr(warning, "left out"), "%s", warning);
        ck_assert_double_le(grads_diff(&g1, &g2), 0.0);
        grads_free(&g1);
        grads_free(&g2);
    } else {
        ck_abort_msg("the picky fixture is not there: %s", lnet_last_error());
    }
    lnet_tensor_free(dout);
    free_problem(&pr);
    lnet_context_free(ctx);
}
END_TEST

/* PoCL's two devices beside the CPU (POCL_DEVICES="basic pthread"):
 * every algorithm, within 1e-5 of one CPU device. */
START_TEST(opencl_devices_equal_one)
{
    lnet_context *ctx = faulty_context(1, NULL, NULL, NULL);
    int idx;
    if (lnet_context_find_device(ctx, "opencl:1", &idx) != LNET_OK) {
        fprintf(stderr, "test_backward: no two OpenCL devices here (%s); CI has PoCL's two\n",
                lnet_last_error());
        lnet_context_free(ctx);
        return;
    }
    const char *lists[] = {"cpu=1,opencl:0=1", "opencl:0=1,opencl:1=2", "opencl:1=1,cpu=1,opencl:0=1"};
    uint64_t r = 0x0c1u;
    for (int c = 0; c < 2; c++) {
        problem pr;
        make_problem(&pr, &r, 1 + c, 200, 2, c ? 16 : 64);
        ck_assert_int_eq(lnet_config_parse_levels(pr.cfg, c ? "200" : "32,64,256", c ? "1" : "1,2,4"),
                         LNET_OK);
        lnet_tensor *dout = random_like(pr.q, &r);
        for (int causal = 0; causal <= 1; causal++) {
            lnet_config_set_causal(pr.cfg, causal);
            grads g1;
            ck_assert_int_eq(backward(ctx, pr.cfg, pr.q, pr.k, pr.v, NULL, NULL, dout, "cpu", NULL,
                                      LNET_ALGORITHM_AUTO, &g1), LNET_OK);
            for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++)
                for (int a = 0; a <= 2; a++) {
                    grads g;
                    ck_assert_msg(backward(ctx, pr.cfg, pr.q, pr.k, pr.v, NULL, NULL, dout, lists[l],
                                           NULL, (lnet_algorithm)a, &g) == LNET_OK,
                                  "%s: %s", lists[l], lnet_last_error());
                    const double d = grads_diff(&g, &g1);
                    ck_assert_msg(d <= 1e-5, "%s (algorithm %d, causal %d): %g from one CPU device",
                                  lists[l], a, causal, d);
                    grads_free(&g);
                }
            grads_free(&g1);
        }
        lnet_tensor_free(dout);
        free_problem(&pr);
    }
    lnet_context_free(ctx);
}
END_TEST

/* The backward plan: REDUCE transfers send dK, dV back, and the bytes per
 * device do not grow with N (the plan alone, nothing runs). */
static char *backward_plan(lnet_context *ctx, lnet_config *cfg, int64_t N, const char *devices)
{
    char *plan = NULL;
    lnet_run_options o = {.size = sizeof o, .device = devices};
    ck_assert_msg(lnet_attention_explain_backward(ctx, cfg, 1, N, N, 1, 64, &o, &plan) == LNET_OK,
                  "%s", lnet_last_error());
    return plan;
}

START_TEST(backward_plan_bytes)
{
    lnet_context *ctx = faulty_context(1, NULL, NULL, NULL);
    lnet_config *cfg;
    ck_assert_int_eq(lnet_config_create(&cfg), LNET_OK);
    ck_assert_int_eq(lnet_config_parse_levels(cfg, "2048,8192,32768,131072", "1,4,16,64"), LNET_OK);
    for (int causal = 0; causal <= 1; causal++) {
        lnet_config_set_causal(cfg, causal);
        char *a = backward_plan(ctx, cfg, 262144, "cpu=1,cpu=1,cpu=1");
        char *b = backward_plan(ctx, cfg, 4194304, "cpu=1,cpu=1,cpu=1");
        ck_assert_msg(strstr(a, "SEGMENT_ATTENTION_BACKWARD") && strstr(a, "DELTA") &&
                      strstr(a, " dK ") && strstr(a, " dV "), "%s", a);
        const char *sa = strstr(a, "bytes per device"), *sb = strstr(b, "bytes per device");
        ck_assert_ptr_nonnull(sa);
        ck_assert_ptr_nonnull(sb);
        ck_assert_msg(strcmp(sa, sb) == 0, "N=256K:\n%s\nN=4M:\n%s", sa, sb);
        lnet_free(a);
        lnet_free(b);
    }
    lnet_config_free(cfg);
    lnet_context_free(ctx);
}
END_TEST

START_TEST(bad_calls_refused)
{
    lnet_context *ctx = faulty_context(1, NULL, NULL, NULL);
    uint64_t r = 9;
    problem pr;
    make_problem(&pr, &r, 1, 32, 2, 8);
    ck_assert_int_eq(lnet_config_parse_levels(pr.cfg, "16", "1"), LNET_OK);
    lnet_tensor *dout = random_like(pr.q, &r), *dq = like(pr.q), *dk = like(pr.k), *dv = like(pr.v);
    lnet_tensor *o, *l;
    ck_assert_int_eq(run(ctx, &pr, "cpu", LNET_ALGORITHM_AUTO, &o, &l), LNET_OK);
    ck_assert_int_eq(lnet_attention_backward(ctx, pr.cfg, pr.q, pr.k, pr.v, o, NULL, dout, dq, dk,
                                             dv, NULL), LNET_ERR_INVALID);
    ck_assert_msg(strstr(lnet_last_error(), "lse is NULL but out is not"), "%s", lnet_last_error());
    ck_assert_int_eq(lnet_attention_backward(ctx, pr.cfg, pr.q, pr.k, pr.v, NULL, NULL, NULL, dq,
                                             dk, dv, NULL), LNET_ERR_INVALID);
    ck_assert_msg(strstr(lnet_last_error(), "dout is NULL"), "%s", lnet_last_error());
    int64_t bad[4] = {1, 32, 2, 4};
    lnet_tensor *wrong;
    ck_assert_int_eq(lnet_tensor_create(4, bad, &wrong), LNET_OK);
    ck_assert_int_eq(lnet_attention_backward(ctx, pr.cfg, pr.q, pr.k, pr.v, o, l, wrong, dq, dk, dv,
                                             NULL), LNET_ERR_INVALID);
    ck_assert_msg(strstr(lnet_last_error(), "dout has shape [1, 32, 2, 4]"), "%s", lnet_last_error());
    ck_assert_int_eq(lnet_attention_backward(ctx, pr.cfg, pr.q, pr.k, pr.v, o, l, dout, dq, wrong, dv,
                                             NULL), LNET_ERR_INVALID);
    ck_assert_msg(strstr(lnet_last_error(), "dk has shape"), "%s", lnet_last_error());
    lnet_tensor_free(wrong);
    lnet_tensor_free(o);
    lnet_tensor_free(l);
    lnet_tensor_free(dout);
    lnet_tensor_free(dq);
    lnet_tensor_free(dk);
    lnet_tensor_free(dv);
    free_problem(&pr);
    lnet_context_free(ctx);
}
END_TEST

int main(void)
{
    golden_load_required(&golden);
    setenv("LONGNET_PICKY_REFUSE_DIM", "0", 1);
    setenv("POCL_DEVICES", "basic pthread", 0); /* two PoCL devices, unless told otherwise */
    Suite *s = suite_create("backward");
    TCase *tc = tcase_create("backward");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, golden_gradients, 0, golden.n);
    tcase_add_loop_test(tc, random_against_naive, 0, 4);
    tcase_add_loop_test(tc, directional_derivatives, 0, 4);
    tcase_add_loop_test(tc, many_devices_equal_one, 0, N_SCENARIOS);
    tcase_add_test(tc, devices_without_backward);
    tcase_add_test(tc, bad_calls_refused);
    tcase_add_test(tc, backward_plan_bytes);
    tcase_add_test(tc, opencl_devices_equal_one);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    golden_free(&golden);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
