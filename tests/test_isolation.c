/* test_isolation.c — workers compute only on their own chunk and on what
 * was sent to them (DESIGN §2, The graph; issue 12). In the executor's
 * isolation check (LONGNET_ISOLATION_CHECK=1) every buffer a worker is
 * given is private and NaN wherever nothing was scattered or sent into it,
 * with NaN guard zones around: a read of any row a worker was not given
 * puts NaN into the answer. Every algorithm (auto, gather, ring), causal
 * and not, on 2 to 4 devices with the faulty fixture among them (failover
 * included) must still give the one-device answer.
 *
 * And the check is shown able to fail: with LONGNET_ISOLATION_DROP=i,
 * transfer i arrives empty; for every transfer of a plan, that must be
 * caught (the answer is no longer the one-device answer). */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "longnet.h"
#include "multidev.h"

static lnet_context *make_context(const char *fail)
{
    return faulty_context(3, fail, NULL, NULL);
}

static void isolation(int on, int drop)
{
    if (on)
        setenv("LONGNET_ISOLATION_CHECK", "1", 1);
    else
        unsetenv("LONGNET_ISOLATION_CHECK");
    if (drop >= 0) {
        char d[16];
        snprintf(d, sizeof d, "%d", drop);
        setenv("LONGNET_ISOLATION_DROP", d, 1);
    } else {
        unsetenv("LONGNET_ISOLATION_DROP");
    }
}

/* The number of transfers --explain lists for this plan. */
static int transfers_of(lnet_context *ctx, problem *p, const char *devices, lnet_algorithm algo)
{
    lnet_run_options o = {.size = sizeof o, .device = devices, .algorithm = algo};
    char *text = NULL;
    ck_assert_msg(lnet_attention_explain(ctx, p->cfg, p->shape[0], p->shape[1], p->shape[2],
                                         p->shape[3], &o, &text) == LNET_OK,
                  "%s", lnet_last_error());
    int n = 0;
    const char *s = strstr(text, "transfers (");
    if (s)
        n = atoi(s + strlen("transfers ("));
    else
        ck_assert_msg(strstr(text, "transfers: none") != NULL, "%s", text);
    lnet_free(text);
    return n;
}

/* Runs `devices` in the isolation check; returns the largest difference
 * from `want` over O and LSE (NaN counts as infinite), or -1 when the call
 * failed. */
static double isolated_diff(lnet_context *ctx, problem *p, const char *devices,
                            lnet_algorithm algo, const lnet_tensor *want_o,
                            const lnet_tensor *want_l, int drop)
{
    lnet_tensor *o, *l;
    isolation(1, drop);
    lnet_status st = run(ctx, p, devices, algo, &o, &l);
    isolation(0, -1);
    double d = -1;
    if (st == LNET_OK) {
        double eo = max_diff(want_o, o), el = max_diff(want_l, l);
        d = eo == eo && el == el ? (eo > el ? eo : el) : 1e300;
    }
    lnet_tensor_free(o);
    lnet_tensor_free(l);
    return d;
}

typedef struct scenario {
    const char *devices;
    const char *fail; /* LONGNET_FAULTY_FAIL, or NULL */
} scenario;

static const scenario scenarios[] = {
    {"cpu=1,faulty:0=1", NULL},
    {"cpu=1,cpu=2", NULL},
    {"faulty:0=1,cpu=2,faulty:1=1", NULL},
    {"faulty:2=1,faulty:0=3,cpu=1,faulty:1=2", NULL},
    {"cpu=1,faulty:0=1,faulty:1=1", "0:2"},           /* failover: faulty:0 fails mid-run */
    {"faulty:1=1,cpu=1,faulty:0=2,faulty:2=1", "1:1"}, /* failover on four devices */
};
#define N_SCENARIOS ((int)(sizeof scenarios / sizeof scenarios[0]))

typedef struct shape_case {
    int64_t B, N, H, D;
    const char *segments, *dilations;
} shape_case;

static const shape_case cases[] = {
    {2, 300, 3, 8, "32,128,300", "1,2,4"},  /* gathered sparse rows, ragged last segment */
    {1, 256, 2, 16, "256", "1"},             /* dense: ring blocks (or gathered whole rows) */
    {2, 200, 4, 4, "16,64,1000", "1,4,8"},   /* a segment longer than the sequence */
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

/* _i runs over scenarios x cases. */
START_TEST(isolated_answer_is_exact)
{
    const scenario *sc = &scenarios[_i / N_CASES];
    const shape_case *cs = &cases[_i % N_CASES];
    uint64_t r = 0x150u + (uint64_t)_i;
    for (int causal = 0; causal <= 1; causal++) {
        for (int a = 0; a <= 2; a++) {
            lnet_context *ctx = make_context(NULL);
            problem p;
            make_problem(&p, &r, cs->B, cs->N, cs->H, cs->D);
            ck_assert_int_eq(lnet_config_parse_levels(p.cfg, cs->segments, cs->dilations), LNET_OK);
            lnet_config_set_causal(p.cfg, causal);
            lnet_tensor *o1, *l1;
            ck_assert_msg(run(ctx, &p, "cpu", LNET_ALGORITHM_AUTO, &o1, &l1) == LNET_OK, "%s",
                          lnet_last_error());
            int moved = transfers_of(ctx, &p, sc->devices, (lnet_algorithm)a);
            lnet_context_free(ctx);
            ctx = make_context(sc->fail);
            double d = isolated_diff(ctx, &p, sc->devices, (lnet_algorithm)a, o1, l1, -1);
            ck_assert_msg(d >= 0, "%s (algorithm %d, causal %d): %s", sc->devices, a, causal,
                          lnet_last_error());
            ck_assert_msg(d <= 1e-5, "%s (algorithm %d, causal %d, segments %s): isolated answer "
                          "differs by %g", sc->devices, a, causal, cs->segments, d);
            /* Something was exchanged, or the case would prove nothing:
             * every case here has segments spanning chunks. */
            ck_assert_msg(moved > 0 || sc->fail, "%s, segments %s: no transfer in the plan",
                          sc->devices, cs->segments);
            lnet_context_free(ctx);
            lnet_tensor_free(o1);
            lnet_tensor_free(l1);
            free_problem(&p);
        }
    }
}
END_TEST

/* Every transfer is needed and the check sees it missing. */
START_TEST(a_dropped_transfer_is_caught)
{
    const scenario *sc = &scenarios[_i % 4]; /* no failure injected: one plan */
    const shape_case *cs = &cases[_i / 4];
    uint64_t r = 0xd40u + (uint64_t)_i;
    lnet_context *ctx = make_context(NULL);
    for (int causal = 0; causal <= 1; causal++) {
        problem p;
        make_problem(&p, &r, cs->B, cs->N, cs->H, cs->D);
        ck_assert_int_eq(lnet_config_parse_levels(p.cfg, cs->segments, cs->dilations), LNET_OK);
        lnet_config_set_causal(p.cfg, causal);
        lnet_tensor *o1, *l1;
        ck_assert_int_eq(run(ctx, &p, "cpu", LNET_ALGORITHM_AUTO, &o1, &l1), LNET_OK);
        for (int a = 0; a <= 2; a++) {
            int n = transfers_of(ctx, &p, sc->devices, (lnet_algorithm)a);
            for (int x = 0; x < n; x++) {
                double d = isolated_diff(ctx, &p, sc->devices, (lnet_algorithm)a, o1, l1, x);
                ck_assert_msg(d < 0 || d > 1e-3, "%s (algorithm %d, causal %d): transfer %d of %d "
                              "dropped, yet the answer is exact: the check would miss it",
                              sc->devices, a, causal, x, n);
            }
        }
        lnet_tensor_free(o1);
        lnet_tensor_free(l1);
        free_problem(&p);
    }
    lnet_context_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("isolation");
    TCase *tc = tcase_create("isolation");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, isolated_answer_is_exact, 0, N_SCENARIOS * N_CASES);
    tcase_add_loop_test(tc, a_dropped_transfer_is_caught, 0, 4 * N_CASES);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
