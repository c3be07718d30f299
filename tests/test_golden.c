#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* test_golden.c — every golden oracle case (DESIGN §1) through the public
 * API on the CPU backend, with the reference kernel and with the default
 * kernel (which a faster kernel will become), within 1e-4 absolute. Skips
 * (exit 77) when the golden cases are not there. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "golden_cases.h"

#define TOL 1e-4

static golden_set cases;

static void run_one(int i, const char *kernel)
{
    const golden_case *c = &cases.cases[i];
    lnet_context *ctx = NULL;
    ck_assert_msg(lnet_context_create(NULL, &ctx) == LNET_OK, "lnet_context_create: %s",
                  lnet_last_error());

    golden_result r;
    char err[4400];
    int rc = golden_run_case(ctx, &cases, c, "cpu", kernel, &r, err, sizeof err);
    lnet_context_free(ctx);
    ck_assert_msg(rc == 0, "%s", err);

    printf("golden %-16s cpu/%-9s max |out err| %.3g, max |lse err| %.3g\n", c->name,
           kernel ? kernel : "default", r.out_err, r.lse_err);
    fflush(stdout);
    ck_assert_msg(r.out_err <= TOL, "case %s, kernel %s: max |out - expected| = %g > %g",
                  c->name, kernel ? kernel : "default", r.out_err, TOL);
    ck_assert_msg(r.lse_err <= TOL, "case %s, kernel %s: max |lse - expected| = %g > %g",
                  c->name, kernel ? kernel : "default", r.lse_err, TOL);
}

START_TEST(golden_reference)
{
    run_one(_i, "reference");
}
END_TEST

START_TEST(golden_default_kernel)
{
    run_one(_i, NULL);
}
END_TEST

int main(void)
{
    golden_load_required(&cases);

    Suite *s = suite_create("golden");
    TCase *tc = tcase_create("cpu");
    /* Generous: valgrind runs are many times slower than native ones. */
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, golden_reference, 0, cases.n);
    tcase_add_loop_test(tc, golden_default_kernel, 0, cases.n);
    suite_add_tcase(s, tc);

    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    golden_free(&cases);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
