/* multidev.c — what the multi-device tests share: seeded random problems,
 * running them on a device list, comparing with the one-device answer. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multidev.h"

void make_problem(problem *p, uint64_t *r, int64_t B, int64_t N, int64_t H, int64_t D)
{
    int64_t s[4] = {B, N, H, D};
    memcpy(p->shape, s, sizeof s);
    lnet_tensor **t[3] = {&p->q, &p->k, &p->v};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(lnet_tensor_create(4, s, t[i]), LNET_OK);
        float *d = lnet_tensor_data(*t[i]);
        for (size_t j = 0; j < lnet_tensor_numel(*t[i]); j++)
            d[j] = (float)rng_real(r, -1.0, 1.0);
    }
    ck_assert_int_eq(lnet_config_create(&p->cfg), LNET_OK);
}

void free_problem(problem *p)
{
    lnet_tensor_free(p->q);
    lnet_tensor_free(p->k);
    lnet_tensor_free(p->v);
    lnet_config_free(p->cfg);
}

/* Runs on `devices` and returns the status; out/lse filled. */
lnet_status run(lnet_context *ctx, problem *p, const char *devices, lnet_algorithm algo,
                       lnet_tensor **out, lnet_tensor **lse)
{
    int64_t ls[3] = {p->shape[0], p->shape[2], p->shape[1]};
    ck_assert_int_eq(lnet_tensor_create(4, p->shape, out), LNET_OK);
    ck_assert_int_eq(lnet_tensor_create(3, ls, lse), LNET_OK);
    lnet_run_options o = {.size = sizeof o, .device = devices, .algorithm = algo};
    return lnet_attention_forward(ctx, p->cfg, p->q, p->k, p->v, *out, *lse, &o);
}

double max_diff(const lnet_tensor *a, const lnet_tensor *b)
{
    double m = 0;
    const float *x = lnet_tensor_cdata(a), *y = lnet_tensor_cdata(b);
    for (size_t i = 0; i < lnet_tensor_numel(a); i++) {
        double d = fabs((double)x[i] - (double)y[i]);
        if (d != d)
            return INFINITY; /* a NaN where the other has a number (or both NaN): no match */
        if (d > m)
            m = d;
    }
    return m;
}

/* The one-device answer and the multi-device one agree within 1e-5. */
void check_same(lnet_context *ctx, problem *p, const char *devices, lnet_algorithm algo,
                       const char *what)
{
    lnet_tensor *o1, *l1, *o2, *l2;
    ck_assert_msg(run(ctx, p, "cpu", LNET_ALGORITHM_AUTO, &o1, &l1) == LNET_OK, "%s",
                  lnet_last_error());
    lnet_status st = run(ctx, p, devices, algo, &o2, &l2);
    ck_assert_msg(st == LNET_OK, "%s on %s: %s", what, devices, lnet_last_error());
    double eo = max_diff(o1, o2), el = max_diff(l1, l2);
    ck_assert_msg(eo <= 1e-5 && el <= 1e-5, "%s on %s (algorithm %d): out %g, lse %g", what,
                  devices, (int)algo, eo, el);
    lnet_tensor_free(o1);
    lnet_tensor_free(l1);
    lnet_tensor_free(o2);
    lnet_tensor_free(l2);
}


#ifdef FAULTY_DIR
static void quiet(lnet_log_level level, const char *msg, void *user)
{
    (void)level;
    (void)msg;
    (void)user;
}

lnet_context *faulty_context(int devices, const char *fail, lnet_log_fn log, void *log_user)
{
    char n[16];
    snprintf(n, sizeof n, "%d", devices);
    setenv("LONGNET_FAULTY_INNER", CPU_PLUGIN_DIR "/.libs/longnet-cpu.so", 1);
    setenv("LONGNET_FAULTY_DEVICES", n, 1);
    if (fail)
        setenv("LONGNET_FAULTY_FAIL", fail, 1);
    else
        unsetenv("LONGNET_FAULTY_FAIL");
    lnet_context_options o = {.size = sizeof o, .log = log ? log : quiet, .log_user = log_user,
                              .plugin_path = FAULTY_DIR};
    lnet_context *ctx = NULL;
    ck_assert_msg(lnet_context_create(&o, &ctx) == LNET_OK, "%s", lnet_last_error());
    return ctx;
}
#endif
