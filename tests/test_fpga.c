/* test_fpga.c — the FPGA backend in Intel's FPGA emulator (the very
 * kernels a board runs, built from source): every golden case; randomized
 * cases against the CPU reference kernel (D 1, 5, 64, 256; ragged last
 * segments, causal or not, both offset modes, the default and a given
 * scale); and fpga:0 beside cpu in device lists, gather and ring, whose
 * chunks send the FPGA query-row and K/V windows. Kept small: the emulator
 * runs the single work-item kernels one value at a time. Skips (77) naming
 * scripts/install-fpga-emulator when the emulator is not installed. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fpga_test.h"
#include "golden_cases.h"
#include "longnet.h"
#include "multidev.h"
#include "opencl_test.h"

#define TOL 1e-5

static lnet_context *ctx; /* kept for the whole run: programs stay built */

START_TEST(golden_all)
{
    ck_assert_msg(golden_run_all("fpga:0", "fused", TOL) == 0,
                  "a golden case failed on fpga:0 (lines above)");
}
END_TEST

/* The configuration of a random case: levels, causal, offsets, scale. */
static void random_config(problem *p, uint64_t *s, int64_t N)
{
    const int L = (int)rng_int(s, 1, 3), dense = (int)rng_int(s, 0, L - 1);
    for (int i = 0; i < L; i++) {
        int64_t w = rng_int(s, 1, 2 * N + 3);
        int64_t r = i == dense ? 1 : rng_int(s, 1, w < 6 ? w : 6);
        ck_assert_int_eq(lnet_config_add_level(p->cfg, w, r), LNET_OK);
    }
    ck_assert_int_eq(lnet_config_set_causal(p->cfg, (int)rng_int(s, 0, 1)), LNET_OK);
    ck_assert_int_eq(lnet_config_set_offsets(p->cfg, rng_int(s, 0, 1) ? LNET_OFFSETS_GROUPED
                                                                      : LNET_OFFSETS_INTERLEAVED),
                     LNET_OK);
    if (rng_int(s, 0, 1))
        ck_assert_int_eq(lnet_config_set_scale(p->cfg, rng_real(s, 0.05, 1.0)), LNET_OK);
}

static lnet_status run_on(problem *p, const char *device, const char *kernel, lnet_tensor **out,
                          lnet_tensor **lse)
{
    int64_t ls[3] = {p->shape[0], p->shape[2], p->shape[1]};
    ck_assert_int_eq(lnet_tensor_create(4, p->shape, out), LNET_OK);
    ck_assert_int_eq(lnet_tensor_create(3, ls, lse), LNET_OK);
    lnet_run_options o = {.size = sizeof o, .device = device, .kernel = kernel};
    return lnet_attention_forward(ctx, p->cfg, p->q, p->k, p->v, *out, *lse, &o);
}

/* Head dimensions: 1, odd, a usual size, and the largest asked for (each
 * a program build of some seconds in the emulator; the golden cases add
 * 8, 16 and 32). */
static const int64_t dims[] = {1, 5, 64, 256};
/* Under a sanitizer, D 1 and 5 only (the same code paths, fewer builds). */
#define N_RANDOM (FPGA_TEST_SANITIZED ? 2 : 6)

START_TEST(random_vs_reference)
{
    uint64_t s = 9100 + (uint64_t)_i;
    const int64_t D = dims[_i % (int)(sizeof dims / sizeof dims[0])];
    const int64_t B = rng_int(&s, 1, 2), N = rng_int(&s, 1, D >= 64 ? 24 : 60),
                  H = rng_int(&s, 1, 4);
    problem p;
    make_problem(&p, &s, B, N, H, D);
    random_config(&p, &s, N);
    lnet_tensor *o1, *l1, *o2, *l2;
    ck_assert_msg(run_on(&p, "cpu", "reference", &o1, &l1) == LNET_OK, "%s", lnet_last_error());
    lnet_status st = run_on(&p, "fpga:0", NULL, &o2, &l2);
    ck_assert_msg(st == LNET_OK, "case %d (B%lld N%lld H%lld D%lld): %s", _i, (long long)B,
                  (long long)N, (long long)H, (long long)D, lnet_last_error());
    double eo = max_diff(o1, o2), el = max_diff(l1, l2);
    printf("random %d: B%lld N%lld H%lld D%lld: max |out err| %.3g, max |lse err| %.3g\n", _i,
           (long long)B, (long long)N, (long long)H, (long long)D, eo, el);
    fflush(stdout);
    ck_assert_msg(eo <= TOL && el <= TOL, "case %d (D%lld): out %g, lse %g > %g", _i,
                  (long long)D, eo, el, TOL);
    lnet_tensor_free(o1);
    lnet_tensor_free(l1);
    lnet_tensor_free(o2);
    lnet_tensor_free(l2);
    free_problem(&p);
}
END_TEST

/* fpga:0 beside the CPU backend: the scheduler's chunks (gather: query
 * windows; ring: K/V windows folded one after another) give the one-device
 * answer. */
START_TEST(fpga_beside_cpu)
{
    static const struct {
        int64_t N;
        const char *w, *r;
        int causal;
    } cases[] = {
        {96, "32,96", "1,2", 1},
        {70, "70", "1", 0}, /* dense: ring across the devices */
    };
    static const char *const lists[] = {"cpu=1,fpga:0=1", "fpga:0=2,cpu=1"};
    uint64_t r = 23;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        problem p;
        make_problem(&p, &r, 1, cases[c].N, 2, 8);
        ck_assert_int_eq(lnet_config_parse_levels(p.cfg, cases[c].w, cases[c].r), LNET_OK);
        lnet_config_set_causal(p.cfg, cases[c].causal);
        for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++) {
            check_same(ctx, &p, lists[l], LNET_ALGORITHM_GATHER, cases[c].w);
            check_same(ctx, &p, lists[l], LNET_ALGORITHM_RING, cases[c].w);
        }
        free_problem(&p);
    }
}
END_TEST

int main(int argc, char **argv)
{
    int st = fpga_test_start(argc, argv);
    if (st)
        return st;
    char cache[512];
    if (scratch_dir_make("longnet-fpga-test", cache, sizeof cache))
        return 1;
    setenv("LONGNET_CACHE_DIR", cache, 1);
    unsetenv("LONGNET_FPGA_BINARY_DIR");
    unsetenv("LONGNET_FPGA_SAVE_BINARY_DIR");
    int index;
    if (lnet_context_create(NULL, &ctx) != LNET_OK ||
        lnet_context_find_device(ctx, "fpga:0", &index) != LNET_OK) {
        printf("FAIL: the emulator is installed but fpga:0 is not there: %s\n",
               lnet_last_error());
        scratch_dir_remove(cache);
        return 1;
    }
    lnet_device_info d;
    if (lnet_context_device(ctx, index, &d) == LNET_OK)
        printf("fpga:0 is %s (kind %s)\n", d.name, d.kind);
    Suite *s = suite_create("fpga");
    TCase *tc = tcase_create("emulator");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, golden_all);
    tcase_add_loop_test(tc, random_vs_reference, 0, N_RANDOM);
    tcase_add_test(tc, fpga_beside_cpu);
    suite_add_tcase(s, tc);
    int failed = opencl_run_suite(s);
    lnet_context_free(ctx);
    scratch_dir_remove(cache);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
