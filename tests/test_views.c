/* test_views.c — tensors with strides and element types (issue 12, item
 * 4): non-contiguous views in and out of lnet_attention_forward give the
 * same answer as dense tensors, to the bit (the same dense rows reach the
 * same kernels); an element type no device supports is refused before any
 * work, naming the devices; outputs whose strides alias, mixed element
 * types and bad strides are refused with the value named. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "longnet.h"
#include "seeded_rng.h"

enum { B = 2, N = 96, H = 3, D = 8 };

static lnet_context *context(void)
{
    lnet_context *ctx = NULL;
    ck_assert_msg(lnet_context_create(NULL, &ctx) == LNET_OK, "%s", lnet_last_error());
    return ctx;
}

static lnet_config *config(void)
{
    lnet_config *cfg = NULL;
    ck_assert_int_eq(lnet_config_create(&cfg), LNET_OK);
    ck_assert_int_eq(lnet_config_parse_levels(cfg, "16,32,96", "1,2,4"), LNET_OK);
    ck_assert_int_eq(lnet_config_set_causal(cfg, 1), LNET_OK);
    return cfg;
}

/* Element (b, n, h, d) of a [B, H, N, D] buffer: the [B, N, H, D] view of
 * it has strides {H*N*D, D, N*D, 1}. */
static size_t bhnd(int b, int n, int h, int d)
{
    return (((size_t)b * H + (size_t)h) * N + (size_t)n) * D + (size_t)d;
}

START_TEST(strided_views_same_answer)
{
    lnet_context *ctx = context();
    lnet_config *cfg = config();
    const int64_t shape[4] = {B, N, H, D}, lse_shape[3] = {B, H, N};
    lnet_tensor *dq, *dk, *dv, *dout, *dlse;
    ck_assert_int_eq(lnet_tensor_create(4, shape, &dq), LNET_OK);
    ck_assert_int_eq(lnet_tensor_create(4, shape, &dk), LNET_OK);
    ck_assert_int_eq(lnet_tensor_create(4, shape, &dv), LNET_OK);
    ck_assert_int_eq(lnet_tensor_create(4, shape, &dout), LNET_OK);
    ck_assert_int_eq(lnet_tensor_create(3, lse_shape, &dlse), LNET_OK);
    /* The same values twice: dense [B, N, H, D], and transposed buffers
     * [B, H, N, D] seen through [B, N, H, D] views. */
    const size_t n = (size_t)B * N * H * D;
    float *tq = malloc(n * sizeof(float)), *tk = malloc(n * sizeof(float)),
          *tv = malloc(n * sizeof(float)), *to = calloc(n, sizeof(float));
    /* LSE inside a padded buffer: [B, H, N] with rows of N + 5. */
    float *tl = calloc((size_t)B * H * (N + 5), sizeof(float));
    uint64_t r = 5;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < N; i++)
            for (int h = 0; h < H; h++)
                for (int d = 0; d < D; d++) {
                    size_t dense = (((size_t)b * N + (size_t)i) * H + (size_t)h) * D + (size_t)d;
                    lnet_tensor_data(dq)[dense] = tq[bhnd(b, i, h, d)] = (float)rng_real(&r, -1, 1);
                    lnet_tensor_data(dk)[dense] = tk[bhnd(b, i, h, d)] = (float)rng_real(&r, -1, 1);
                    lnet_tensor_data(dv)[dense] = tv[bhnd(b, i, h, d)] = (float)rng_real(&r, -1, 1);
                }
    const int64_t strides[4] = {(int64_t)H * N * D, D, (int64_t)N * D, 1};
    const int64_t lse_strides[3] = {(int64_t)H * (N + 5), N + 5, 1};
    lnet_tensor *vq, *vk, *vv, *vo, *vl;
    ck_assert_int_eq(lnet_tensor_wrap_strided(tq, LNET_DTYPE_F32, 4, shape, strides, &vq), LNET_OK);
    ck_assert_int_eq(lnet_tensor_wrap_strided(tk, LNET_DTYPE_F32, 4, shape, strides, &vk), LNET_OK);
    ck_assert_int_eq(lnet_tensor_wrap_strided(tv, LNET_DTYPE_F32, 4, shape, strides, &vv), LNET_OK);
    ck_assert_int_eq(lnet_tensor_wrap_strided(to, LNET_DTYPE_F32, 4, shape, strides, &vo), LNET_OK);
    ck_assert_int_eq(lnet_tensor_wrap_strided(tl, LNET_DTYPE_F32, 3, lse_shape, lse_strides, &vl),
                     LNET_OK);
    ck_assert_int_eq(lnet_tensor_is_dense(vq), 0);
    ck_assert_ptr_null(lnet_tensor_data(vq));
    ck_assert_int_eq(lnet_tensor_stride(vq, 2), (int64_t)N * D);

    static const char *const devices[] = {"cpu", "cpu=1,cpu=2"};
    for (int dv_i = 0; dv_i < 2; dv_i++) {
        lnet_run_options o = {.size = sizeof o, .device = devices[dv_i]};
        ck_assert_msg(lnet_attention_forward(ctx, cfg, dq, dk, dv, dout, dlse, &o) == LNET_OK, "%s",
                      lnet_last_error());
        ck_assert_msg(lnet_attention_forward(ctx, cfg, vq, vk, vv, vo, vl, &o) == LNET_OK, "%s",
                      lnet_last_error());
        for (int b = 0; b < B; b++)
            for (int i = 0; i < N; i++)
                for (int h = 0; h < H; h++) {
                    for (int d = 0; d < D; d++) {
                        size_t dense = (((size_t)b * N + (size_t)i) * H + (size_t)h) * D + (size_t)d;
                        ck_assert_msg(memcmp(&lnet_tensor_cdata(dout)[dense], &to[bhnd(b, i, h, d)],
                                             sizeof(float)) == 0,
                                      "%s: O differs at (%d, %d, %d, %d)", devices[dv_i], b, i, h, d);
                    }
                    const float want = lnet_tensor_cdata(dlse)[((size_t)b * H + (size_t)h) * N + (size_t)i];
                    const float got = tl[((size_t)b * H + (size_t)h) * (N + 5) + (size_t)i];
                    ck_assert_msg(memcmp(&want, &got, sizeof want) == 0, "LSE differs at (%d, %d, %d)",
                                  b, h, i);
                }
        /* The padding around the LSE view is untouched. */
        for (int bh = 0; bh < B * H; bh++)
            for (int pad = N; pad < N + 5; pad++)
                ck_assert(tl[(size_t)bh * (N + 5) + (size_t)pad] == 0.0f);
    }
    lnet_tensor *all[] = {dq, dk, dv, dout, dlse, vq, vk, vv, vo, vl};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        lnet_tensor_free(all[i]);
    free(tq);
    free(tk);
    free(tv);
    free(to);
    free(tl);
    lnet_config_free(cfg);
    lnet_context_free(ctx);
}
END_TEST

START_TEST(dtypes_and_bad_views_refused)
{
    lnet_context *ctx = context();
    lnet_config *cfg = config();
    const int64_t shape[4] = {B, N, H, D};
    lnet_tensor *h[4], *f;
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(lnet_tensor_create_dtype(LNET_DTYPE_F16, 4, shape, &h[i]), LNET_OK);
    ck_assert_int_eq(lnet_tensor_dtype(h[0]), LNET_DTYPE_F16);
    ck_assert_ptr_null(lnet_tensor_data(h[0]));
    lnet_run_options o = {.size = sizeof o, .device = "cpu"};
    /* Float16: every in-tree device refuses it before any work. */
    lnet_status st = lnet_attention_forward(ctx, cfg, h[0], h[1], h[2], h[3], NULL, &o);
    ck_assert_msg(st == LNET_ERR_UNSUPPORTED && strstr(lnet_last_error(), "cpu:0") &&
                      strstr(lnet_last_error(), "float16"),
                  "%s: %s", lnet_status_name(st), lnet_last_error());
    /* Mixed element types. */
    ck_assert_int_eq(lnet_tensor_create(4, shape, &f), LNET_OK);
    st = lnet_attention_forward(ctx, cfg, f, h[1], f, f, NULL, &o);
    ck_assert_msg(st == LNET_ERR_INVALID && strstr(lnet_last_error(), "k is float16 but q is float32"),
                  "%s", lnet_last_error());
    /* An output view whose elements share places (stride 0 along D). */
    float *buf = calloc((size_t)B * N * H, sizeof(float));
    const int64_t alias[4] = {(int64_t)N * H, H, 1, 0};
    lnet_tensor *vo;
    ck_assert_int_eq(lnet_tensor_wrap_strided(buf, LNET_DTYPE_F32, 4, shape, alias, &vo), LNET_OK);
    st = lnet_attention_forward(ctx, cfg, f, f, f, vo, NULL, &o);
    ck_assert_msg(st == LNET_ERR_INVALID && strstr(lnet_last_error(), "share a place"), "%s",
                  lnet_last_error());
    /* ... which is fine as an input: every D element repeats one value. */
    lnet_tensor *out;
    ck_assert_int_eq(lnet_tensor_create(4, shape, &out), LNET_OK);
    ck_assert_msg(lnet_attention_forward(ctx, cfg, vo, f, f, out, NULL, &o) == LNET_OK, "%s",
                  lnet_last_error());
    /* Bad strides and types at construction; a view cannot be saved. */
    lnet_tensor *t = (lnet_tensor *)&t;
    const int64_t neg[4] = {1, 1, -1, 1}, huge[4] = {INT64_MAX, 1, 1, 1};
    ck_assert_int_eq(lnet_tensor_wrap_strided(buf, LNET_DTYPE_F32, 4, shape, neg, &t), LNET_ERR_INVALID);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(lnet_last_error(), "stride -1 of axis 2"), "%s", lnet_last_error());
    ck_assert_int_eq(lnet_tensor_wrap_strided(buf, LNET_DTYPE_F32, 4, shape, huge, &t),
                     LNET_ERR_OVERFLOW);
    ck_assert_int_eq(lnet_tensor_wrap_strided(buf, (lnet_dtype)7, 4, shape, alias, &t),
                     LNET_ERR_INVALID);
    ck_assert_int_eq(lnet_npy_save("/nonexistent-dir/x.npy", vo), LNET_ERR_INVALID);
    ck_assert_msg(strstr(lnet_last_error(), "not dense float32"), "%s", lnet_last_error());
    lnet_tensor_free(vo);
    lnet_tensor_free(out);
    free(buf);
    for (int i = 0; i < 4; i++)
        lnet_tensor_free(h[i]);
    lnet_tensor_free(f);
    lnet_config_free(cfg);
    lnet_context_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("views");
    TCase *tc = tcase_create("views");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, strided_views_same_answer);
    tcase_add_test(tc, dtypes_and_bad_views_refused);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
