/* test_hostile.c — sizes chosen to break arithmetic: segment lengths and
 * dilations at and near INT64_MAX, sequences whose B·N·H·D overflow size_t,
 * on one to three devices. Each is either refused with a message naming
 * the value before anything is allocated, or computed correctly: a segment
 * of INT64_MAX rows with dilation 1 is dense attention, and a dilation
 * larger than the sequence selects one row per head, so each hostile
 * configuration is checked against an ordinary one that means the same.
 * (The .npy header claiming 2^62 elements is in test_npy, test_huge_shapes;
 * B·N·H·D past size_t for tensors in test_tensor, bad_shapes.) */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "longnet.h"

#define MAX64 INT64_MAX

static lnet_context *ctx;

static void setup(void)
{
    ck_assert_msg(lnet_context_create(NULL, &ctx) == LNET_OK, "%s", lnet_last_error());
}

static void teardown(void)
{
    lnet_context_free(ctx);
    ctx = NULL;
}

static lnet_tensor *random_tensor(int64_t B, int64_t N, int64_t H, int64_t D, uint32_t seed)
{
    int64_t s[4] = {B, N, H, D};
    lnet_tensor *t;
    ck_assert_int_eq(lnet_tensor_create(4, s, &t), LNET_OK);
    float *d = lnet_tensor_data(t);
    for (size_t i = 0; i < lnet_tensor_numel(t); i++) {
        seed = seed * 1664525u + 1013904223u;
        d[i] = (float)((double)(seed >> 8) / 8388608.0 - 1.0);
    }
    return t;
}

static lnet_config *config(const int64_t *w, const int64_t *r, int n, int causal, int grouped)
{
    lnet_config *c;
    ck_assert_int_eq(lnet_config_create(&c), LNET_OK);
    for (int i = 0; i < n; i++)
        ck_assert_msg(lnet_config_add_level(c, w[i], r[i]) == LNET_OK, "level %lld/%lld: %s",
                      (long long)w[i], (long long)r[i], lnet_last_error());
    ck_assert_int_eq(lnet_config_set_causal(c, causal), LNET_OK);
    ck_assert_int_eq(lnet_config_set_offsets(c, grouped ? LNET_OFFSETS_GROUPED
                                                        : LNET_OFFSETS_INTERLEAVED),
                     LNET_OK);
    return c;
}

static double max_diff(const lnet_tensor *a, const lnet_tensor *b)
{
    double m = 0;
    const float *x = lnet_tensor_cdata(a), *y = lnet_tensor_cdata(b);
    for (size_t i = 0; i < lnet_tensor_numel(a); i++) {
        double d = fabs((double)x[i] - (double)y[i]);
        if (!(d <= m))
            m = d; /* NaN propagates */
    }
    return m;
}

/* Runs `hostile` and `plain` (the same attention written with ordinary
 * numbers) on `devices` and checks they agree. */
static void same_as(const lnet_config *hostile, const lnet_config *plain, int64_t B, int64_t N,
                    int64_t H, int64_t D, const char *devices, lnet_algorithm algo,
                    const char *what)
{
    lnet_tensor *q = random_tensor(B, N, H, D, 1), *k = random_tensor(B, N, H, D, 2),
                *v = random_tensor(B, N, H, D, 3);
    int64_t s[4] = {B, N, H, D}, ls[3] = {B, H, N};
    lnet_tensor *o1, *l1, *o2, *l2;
    ck_assert_int_eq(lnet_tensor_create(4, s, &o1), LNET_OK);
    ck_assert_int_eq(lnet_tensor_create(4, s, &o2), LNET_OK);
    ck_assert_int_eq(lnet_tensor_create(3, ls, &l1), LNET_OK);
    ck_assert_int_eq(lnet_tensor_create(3, ls, &l2), LNET_OK);
    lnet_run_options ref = {.size = sizeof ref, .device = "cpu"};
    lnet_run_options o = {.size = sizeof o, .device = devices, .algorithm = algo};
    ck_assert_msg(lnet_attention_forward(ctx, plain, q, k, v, o1, l1, &ref) == LNET_OK,
                  "%s (plain): %s", what, lnet_last_error());
    ck_assert_msg(lnet_attention_forward(ctx, hostile, q, k, v, o2, l2, &o) == LNET_OK,
                  "%s on %s (N = %lld): %s", what, devices, (long long)N, lnet_last_error());
    double eo = max_diff(o1, o2), el = max_diff(l1, l2);
    ck_assert_msg(eo <= 1e-5 && el <= 1e-5,
                  "%s on %s, algorithm %d, N = %lld: out differs by %g, lse by %g", what,
                  devices, (int)algo, (long long)N, eo, el);
    lnet_tensor *all[] = {q, k, v, o1, o2, l1, l2};
    for (int i = 0; i < 7; i++)
        lnet_tensor_free(all[i]);
}

static const char *const device_lists[] = {"cpu", "cpu=1,cpu=1", "cpu=1,cpu=2,cpu=1"};
static const int64_t sizes[] = {1, 7, 333};

/* A segment of INT64_MAX (or INT64_MAX - 1) with dilation 1 is dense
 * attention over the whole sequence. _i: causal, and the size. */
START_TEST(huge_segment_is_dense)
{
    const int causal = _i & 1;
    const int64_t N = sizes[_i >> 1];
    const int64_t wd[1] = {N}, rd[1] = {1};
    lnet_config *plain = config(wd, rd, 1, causal, 0);
    const int64_t segments[2] = {MAX64, MAX64 - 1};
    for (int s = 0; s < 2; s++) {
        const int64_t w[1] = {segments[s]}, r[1] = {1};
        lnet_config *hostile = config(w, r, 1, causal, 0);
        for (int d = 0; d < 3; d++)
            for (int a = 0; a < 3; a++)
                same_as(hostile, plain, 1, N, 2, 4, device_lists[d], (lnet_algorithm)a,
                        s ? "segment INT64_MAX-1, dilation 1" : "segment INT64_MAX, dilation 1");
        lnet_config_free(hostile);
    }
    lnet_config_free(plain);
}
END_TEST

/* A dilation past the sequence selects, in head h, only row h (offset
 * h mod r = h, or h / ceil(H / r) = h grouped): the same as any other
 * dilation past N + H. Levels: a small dense one, then the huge one. */
START_TEST(huge_dilation_selects_one_row)
{
    const int causal = _i & 1, grouped = (_i >> 1) & 1;
    const int64_t N = sizes[1 + (_i >> 2)];
    const int64_t M = N + 8; /* an ordinary dilation past the sequence and the heads */
    const int64_t wp[2] = {4, M}, rp[2] = {1, M};
    lnet_config *plain = config(wp, rp, 2, causal, grouped);
    const int64_t hw[3][2] = {{4, MAX64}, {4, MAX64}, {4, MAX64 - 1}};
    const int64_t hr[3][2] = {{1, MAX64}, {1, MAX64 - 1}, {1, MAX64 - 1}};
    for (int c = 0; c < 3; c++) {
        lnet_config *hostile = config(hw[c], hr[c], 2, causal, grouped);
        char what[96];
        snprintf(what, sizeof what, "segment %lld, dilation %lld", (long long)hw[c][1],
                 (long long)hr[c][1]);
        for (int d = 0; d < 3; d++)
            same_as(hostile, plain, 2, N, 3, 4, device_lists[d], LNET_ALGORITHM_AUTO, what);
        lnet_config_free(hostile);
    }
    lnet_config_free(plain);
}
END_TEST

/* Levels at INT64_MAX parse; one past it, and dilations past the segment,
 * are refused naming the value. */
START_TEST(limits_parse_and_refuse)
{
    lnet_config *c;
    ck_assert_int_eq(lnet_config_create(&c), LNET_OK);
    ck_assert_int_eq(lnet_config_parse_levels(c, "9223372036854775807,9223372036854775806",
                                              "1,9223372036854775806"),
                     LNET_OK);
    ck_assert_int_eq(lnet_config_segment(c, 0), MAX64);
    ck_assert_int_eq(lnet_config_dilation(c, 1), MAX64 - 1);
    ck_assert_int_eq(lnet_config_validate(c, 16), LNET_OK);
    ck_assert_int_eq(lnet_config_parse_levels(c, "9223372036854775808", "1"), LNET_ERR_INVALID);
    ck_assert(strstr(lnet_last_error(), "9223372036854775808") != NULL);
    ck_assert_int_eq(lnet_config_parse_levels(c, "9223372036854775806", "9223372036854775807"),
                     LNET_ERR_INVALID);
    ck_assert(strstr(lnet_last_error(), "9223372036854775807") != NULL);
    ck_assert_int_eq(lnet_config_add_level(c, MAX64 - 1, MAX64), LNET_ERR_INVALID);
    ck_assert(strstr(lnet_last_error(), "9223372036854775807") != NULL);
    ck_assert_int_eq(lnet_config_add_level(c, -MAX64 - 1, 1), LNET_ERR_INVALID);
    /* The refusals left the levels as they were. */
    ck_assert_int_eq(lnet_config_levels(c), 2);
    lnet_config_free(c);
}
END_TEST

/* Shapes past size_t are refused by explain and forward before anything
 * is allocated; a sequence that fits size_t but not memory is planned
 * (explain allocates nothing per row) on given weights. */
START_TEST(sizes_past_memory)
{
    const int64_t w[2] = {MAX64, MAX64}, r[2] = {1, MAX64 - 1};
    lnet_config *c = config(w, r, 2, 1, 0);
    char *text = (char *)1;
    lnet_run_options o = {.size = sizeof o, .device = "cpu=1,cpu=1,cpu=1"};
    /* B·N·H·D·4 past SIZE_MAX, in several ways. */
    const int64_t bad[][4] = {{1, MAX64, 1, 1}, {MAX64, 2, 1, 1}, {1, (int64_t)1 << 62, 1, 1},
                              {(int64_t)1 << 31, (int64_t)1 << 31, 1, 1},
                              {1, (int64_t)1 << 40, (int64_t)1 << 20, 16}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(lnet_attention_explain(ctx, c, bad[i][0], bad[i][1], bad[i][2],
                                                bad[i][3], &o, &text),
                         LNET_ERR_OVERFLOW);
        ck_assert_ptr_null(text);
        ck_assert_msg(strstr(lnet_last_error(), "more") != NULL, "%s", lnet_last_error());
    }
    /* 2^40 rows: 4 TiB per tensor, but a valid plan. */
    const int64_t N = (int64_t)1 << 40;
    ck_assert_msg(lnet_attention_explain(ctx, c, 1, N, 1, 1, &o, &text) == LNET_OK, "%s",
                  lnet_last_error());
    ck_assert_msg(strstr(text, "N=1099511627776") != NULL, "%s", text);
    lnet_free(text);
    for (int a = 1; a <= 2; a++) {
        o.algorithm = (lnet_algorithm)a;
        ck_assert_msg(lnet_attention_explain(ctx, c, 2, N, 3, 8, &o, &text) == LNET_OK, "%s",
                      lnet_last_error());
        lnet_free(text);
    }
    /* Weights whose sum overflows a double are refused or planned, never
     * a crash. */
    o.device = "cpu=1e308,cpu=1e308";
    o.algorithm = LNET_ALGORITHM_AUTO;
    lnet_status st = lnet_attention_explain(ctx, c, 1, 100, 1, 1, &o, &text);
    if (st == LNET_OK)
        lnet_free(text);
    else
        ck_assert(lnet_last_error()[0] != '\0');
    lnet_config_free(c);
}
END_TEST

/* Tensors whose B·N·H·D overflow size_t are never created, so forward is
 * never reached with them; the largest shapes that fit are refused by the
 * allocator, not by a crash. */
START_TEST(tensor_past_size_t)
{
    lnet_tensor *t = (lnet_tensor *)1;
    const int64_t s[4] = {(int64_t)1 << 16, (int64_t)1 << 16, (int64_t)1 << 16, (int64_t)1 << 16};
    ck_assert_int_eq(lnet_tensor_create(4, s, &t), LNET_ERR_OVERFLOW);
    ck_assert_ptr_null(t);
    ck_assert(strstr(lnet_last_error(), "65536") != NULL);
    const int64_t s2[4] = {3, MAX64 / 3 + 1, 1, 1};
    ck_assert_int_eq(lnet_tensor_create(4, s2, &t), LNET_ERR_OVERFLOW);
}
END_TEST

static Suite *hostile_suite(void)
{
    Suite *s = suite_create("hostile");
    TCase *tc = tcase_create("hostile");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, huge_segment_is_dense, 0, 6);
    tcase_add_loop_test(tc, huge_dilation_selects_one_row, 0, 8);
    tcase_add_test(tc, limits_parse_and_refuse);
    tcase_add_test(tc, sizes_past_memory);
    tcase_add_test(tc, tensor_past_size_t);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hostile_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
