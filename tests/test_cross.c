/* test_cross.c — Q with fewer rows than K and V (issue 12, item 4): the
 * queries are the sequence's last Nq positions (bottom-right aligned, the
 * decoding case at Nq = 1), so the answer must be exactly the last Nq rows
 * of the self-attention answer whose Q has those rows last. Checked on one
 * device and split over several (every algorithm, causal and not, the
 * faulty fixture and failover among them, OpenCL when it is there), in
 * the isolation check too; shapes that do not fit are refused by name. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "longnet.h"
#include "multidev.h"

static lnet_context *make_context(const char *fail)
{
    return faulty_context(2, fail, NULL, NULL);
}

/* Rows [N - Nq, N) of a [B, N, H, D] tensor, as a new [B, Nq, H, D] one. */
static lnet_tensor *last_rows(const lnet_tensor *t, int64_t Nq)
{
    const int64_t B = lnet_tensor_dim(t, 0), N = lnet_tensor_dim(t, 1);
    const size_t row = (size_t)lnet_tensor_dim(t, 2) * (size_t)lnet_tensor_dim(t, 3);
    int64_t s[4] = {B, Nq, lnet_tensor_dim(t, 2), lnet_tensor_dim(t, 3)};
    lnet_tensor *out;
    ck_assert_int_eq(lnet_tensor_create(4, s, &out), LNET_OK);
    for (int64_t b = 0; b < B; b++)
        memcpy(lnet_tensor_data(out) + (size_t)b * (size_t)Nq * row,
               lnet_tensor_cdata(t) + ((size_t)b * (size_t)N + (size_t)(N - Nq)) * row,
               (size_t)Nq * row * sizeof(float));
    return out;
}

/* The last Nq columns of a [B, H, N] LSE. */
static lnet_tensor *last_lse(const lnet_tensor *t, int64_t Nq)
{
    const int64_t BH = lnet_tensor_dim(t, 0) * lnet_tensor_dim(t, 1), N = lnet_tensor_dim(t, 2);
    int64_t s[3] = {lnet_tensor_dim(t, 0), lnet_tensor_dim(t, 1), Nq};
    lnet_tensor *out;
    ck_assert_int_eq(lnet_tensor_create(3, s, &out), LNET_OK);
    for (int64_t i = 0; i < BH; i++)
        memcpy(lnet_tensor_data(out) + (size_t)i * (size_t)Nq,
               lnet_tensor_cdata(t) + (size_t)i * (size_t)N + (size_t)(N - Nq),
               (size_t)Nq * sizeof(float));
    return out;
}

static double cross_diff(lnet_context *ctx, problem *p, lnet_tensor *q, const char *devices,
                         lnet_algorithm algo, const char *kernel, const lnet_tensor *want_o,
                         const lnet_tensor *want_l)
{
    int64_t os[4] = {p->shape[0], lnet_tensor_dim(q, 1), p->shape[2], p->shape[3]};
    int64_t ls[3] = {p->shape[0], p->shape[2], lnet_tensor_dim(q, 1)};
    lnet_tensor *o, *l;
    ck_assert_int_eq(lnet_tensor_create(4, os, &o), LNET_OK);
    ck_assert_int_eq(lnet_tensor_create(3, ls, &l), LNET_OK);
    lnet_run_options opts = {.size = sizeof opts, .device = devices, .algorithm = algo,
                             .kernel = kernel};
    lnet_status st = lnet_attention_forward(ctx, p->cfg, q, p->k, p->v, o, l, &opts);
    ck_assert_msg(st == LNET_OK, "%s: %s", devices, lnet_last_error());
    double eo = max_diff(want_o, o), el = max_diff(want_l, l);
    lnet_tensor_free(o);
    lnet_tensor_free(l);
    return eo > el ? eo : el;
}

typedef struct run_case {
    const char *devices, *fail, *kernel;
} run_case;

static const run_case runs[] = {
    {"cpu", NULL, NULL},
    {"cpu", NULL, "reference"},
    {"cpu=1,cpu=2", NULL, NULL},
    {"faulty:0=1,cpu=1", NULL, NULL},
    {"cpu=2,faulty:0=1,faulty:1=1", NULL, NULL},
    {"cpu=1,faulty:0=1,faulty:1=2", "0:1", NULL}, /* failover */
};

START_TEST(last_rows_of_self_attention)
{
    uint64_t r = 0xc4055u + (uint64_t)_i;
    lnet_context *plain = make_context(NULL);
    int have_opencl = 0, idx;
    have_opencl = lnet_context_find_device(plain, "opencl:0", &idx) == LNET_OK;
    if (!have_opencl && _i == 0)
        fprintf(stderr, "test_cross: no opencl:0 here; the CPU and faulty devices only\n");
    for (int c = 0; c < 6; c++) {
        problem p;
        const int64_t N = rng_int(&r, 2, 400);
        make_problem(&p, &r, rng_int(&r, 1, 2), N, rng_int(&r, 1, 4),
                     (int64_t[]){4, 8, 16}[rng_int(&r, 0, 2)]);
        const int64_t Nq = c == 0 ? 1 : rng_int(&r, 1, N - 1); /* c = 0: decoding */
        int levels = (int)rng_int(&r, 1, 3), dense = (int)rng_int(&r, 0, levels - 1);
        for (int l = 0; l < levels; l++) {
            int64_t w = rng_int(&r, 1, 2 * N);
            ck_assert_int_eq(lnet_config_add_level(p.cfg, w, l == dense ? 1 : rng_int(&r, 1, w < 6 ? w : 6)),
                             LNET_OK);
        }
        lnet_config_set_causal(p.cfg, (int)rng_int(&r, 0, 1));
        /* The self-attention answer with the full Q; the cross Q is its
         * last Nq rows. */
        lnet_tensor *o_full, *l_full;
        ck_assert_msg(run(plain, &p, "cpu", LNET_ALGORITHM_AUTO, &o_full, &l_full) == LNET_OK,
                      "%s", lnet_last_error());
        lnet_tensor *q = last_rows(p.q, Nq), *want_o = last_rows(o_full, Nq),
                    *want_l = last_lse(l_full, Nq);
        for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
            for (int a = 0; a <= 2; a++) {
                if (strchr(runs[i].devices, ',') == NULL && a > 0)
                    continue;
                for (int poison = 0; poison <= 1; poison++) {
                    if (poison)
                        setenv("LONGNET_ISOLATION_CHECK", "1", 1);
                    lnet_context *ctx = make_context(runs[i].fail);
                    double d = cross_diff(ctx, &p, q, runs[i].devices, (lnet_algorithm)a,
                                          runs[i].kernel, want_o, want_l);
                    unsetenv("LONGNET_ISOLATION_CHECK");
                    ck_assert_msg(d <= 1e-5, "N=%lld Nq=%lld on %s (algorithm %d, kernel %s, "
                                  "isolation %d): differs by %g", (long long)N, (long long)Nq,
                                  runs[i].devices, a, runs[i].kernel ? runs[i].kernel : "default",
                                  poison, d);
                    lnet_context_free(ctx);
                }
            }
        }
        if (have_opencl) {
            double d = cross_diff(plain, &p, q, "opencl:0", LNET_ALGORITHM_AUTO, NULL, want_o, want_l);
            ck_assert_msg(d <= 1e-4, "N=%lld Nq=%lld on opencl:0: differs by %g", (long long)N,
                          (long long)Nq, d);
        }
        lnet_tensor_free(q);
        lnet_tensor_free(want_o);
        lnet_tensor_free(want_l);
        lnet_tensor_free(o_full);
        lnet_tensor_free(l_full);
        free_problem(&p);
    }
    lnet_context_free(plain);
}
END_TEST

/* Shapes that do not fit are refused, naming them. */
START_TEST(bad_shapes_refused)
{
    lnet_context *ctx = make_context(NULL);
    uint64_t r = 5;
    problem p;
    make_problem(&p, &r, 1, 64, 2, 8);
    ck_assert_int_eq(lnet_config_parse_levels(p.cfg, "16", "1"), LNET_OK);
    const struct { int64_t shape[4]; const char *says; } bad[] = {
        {{1, 65, 2, 8}, "q has 65 rows but k and v only 64"},
        {{1, 32, 3, 8}, "B, H and D must agree"},
        {{2, 32, 2, 8}, "B, H and D must agree"},
        {{1, 32, 2, 4}, "B, H and D must agree"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lnet_tensor *q, *o;
        ck_assert_int_eq(lnet_tensor_create(4, bad[i].shape, &q), LNET_OK);
        ck_assert_int_eq(lnet_tensor_create(4, bad[i].shape, &o), LNET_OK);
        ck_assert_int_eq(lnet_attention_forward(ctx, p.cfg, q, p.k, p.v, o, NULL, NULL),
                         LNET_ERR_INVALID);
        ck_assert_msg(strstr(lnet_last_error(), bad[i].says), "%s", lnet_last_error());
        lnet_tensor_free(q);
        lnet_tensor_free(o);
    }
    /* LSE of the query rows, not of the K/V rows. */
    int64_t qs[4] = {1, 10, 2, 8}, wrong[3] = {1, 2, 64};
    lnet_tensor *q, *o, *l;
    ck_assert_int_eq(lnet_tensor_create(4, qs, &q), LNET_OK);
    ck_assert_int_eq(lnet_tensor_create(4, qs, &o), LNET_OK);
    ck_assert_int_eq(lnet_tensor_create(3, wrong, &l), LNET_OK);
    ck_assert_int_eq(lnet_attention_forward(ctx, p.cfg, q, p.k, p.v, o, l, NULL), LNET_ERR_INVALID);
    ck_assert_msg(strstr(lnet_last_error(), "[1, 2, 10]"), "%s", lnet_last_error());
    char *text = NULL;
    ck_assert_int_eq(lnet_attention_explain_rows(ctx, p.cfg, 1, 65, 64, 2, 8, NULL, &text),
                     LNET_ERR_INVALID);
    lnet_run_options opts = {.size = sizeof opts, .device = "cpu=1,cpu=1"};
    ck_assert_msg(lnet_attention_explain_rows(ctx, p.cfg, 1, 10, 64, 2, 8, &opts, &text) == LNET_OK,
                  "%s", lnet_last_error());
    ck_assert_msg(strstr(text, "queries: 10 rows at positions [54, 64)"), "%s", text);
    lnet_free(text);
    lnet_tensor_free(q);
    lnet_tensor_free(o);
    lnet_tensor_free(l);
    free_problem(&p);
    lnet_context_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cross");
    TCase *tc = tcase_create("cross");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, last_rows_of_self_attention, 0, 4);
    tcase_add_test(tc, bad_shapes_refused);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
