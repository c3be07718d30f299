/* test_scheduler_opencl.c — one sequence across real, different devices:
 * the CPU backend beside OpenCL devices. PoCL is asked (POCL_DEVICES, set
 * before the ICD loader starts) for a "basic" and a "pthread" device, of
 * different speeds, so that CI runs a heterogeneous list in one process.
 * Skips (77) only when no OpenCL device exists at all. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "longnet.h"
#include "multidev.h"

static int opencl_devices(void)
{
    lnet_context *ctx = NULL;
    if (lnet_context_create(NULL, &ctx) != LNET_OK)
        return 0;
    int n = 0;
    for (int i = 0; i < lnet_context_device_count(ctx); i++) {
        lnet_device_info d;
        if (lnet_context_device(ctx, i, &d) == LNET_OK && strcmp(d.backend, "opencl") == 0)
            n++;
    }
    lnet_context_free(ctx);
    return n;
}

static int n_opencl;

START_TEST(cpu_beside_opencl)
{
    lnet_context *ctx = NULL;
    ck_assert_int_eq(lnet_context_create(NULL, &ctx), LNET_OK);
    static const char *const lists[] = {
        "cpu=1,opencl:0=1",
        "opencl:0=2,cpu=1",
        "cpu=1,opencl:0=1,opencl:1=1",
        "opencl:1=1,cpu=2,opencl:0=1",
        "cpu,opencl:0,opencl:1", /* calibrated */
    };
    static const struct {
        int64_t N;
        const char *w, *r;
        int causal;
    } cases[] = {
        {384, "64,128,384", "1,2,4", 1},
        {300, "32,512", "1,3", 0},
        {256, "256", "1", 1}, /* dense: ring across the devices */
    };
    uint64_t r = 11;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        problem p;
        make_problem(&p, &r, 1, cases[c].N, 2, 16);
        ck_assert_int_eq(lnet_config_parse_levels(p.cfg, cases[c].w, cases[c].r), LNET_OK);
        lnet_config_set_causal(p.cfg, cases[c].causal);
        for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++) {
            if (n_opencl < 2 && strstr(lists[l], "opencl:1"))
                continue;
            for (int a = 0; a < 3; a++)
                check_same(ctx, &p, lists[l], (lnet_algorithm)a, cases[c].w);
        }
        free_problem(&p);
    }
    lnet_context_free(ctx);
}
END_TEST

int main(void)
{
    /* Two PoCL devices of different speeds; ignored by other drivers. */
    setenv("POCL_DEVICES", "basic pthread", 0);
    n_opencl = opencl_devices();
    if (n_opencl == 0) {
        printf("no OpenCL device: the heterogeneous scheduler test cannot run\n");
        return 77;
    }
    printf("%d OpenCL device(s) beside the CPU backend\n", n_opencl);
    Suite *s = suite_create("scheduler-opencl");
    TCase *tc = tcase_create("heterogeneous");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, cpu_beside_opencl);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    /* OpenCL was started above (counting the devices): a forked child
     * would inherit PoCL's state without its worker threads and wait for
     * them forever, so the test runs in this process. */
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
