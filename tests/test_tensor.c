/* test_tensor.c — tensors, overflow-checked shapes, status names and the
 * per-thread error message. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "longnet.h"

START_TEST(create_and_read)
{
    int64_t shape[4] = {2, 3, 4, 5};
    lnet_tensor *t = NULL;
    ck_assert_int_eq(lnet_tensor_create(4, shape, &t), LNET_OK);
    ck_assert_int_eq(lnet_tensor_ndim(t), 4);
    ck_assert_int_eq(lnet_tensor_dim(t, 3), 5);
    ck_assert_int_eq(lnet_tensor_dim(t, 4), 0);
    ck_assert_uint_eq(lnet_tensor_numel(t), 120);
    for (size_t i = 0; i < 120; i++)
        ck_assert(lnet_tensor_data(t)[i] == 0.0f);
    lnet_tensor_free(t);
    lnet_tensor_free(NULL);
}
END_TEST

START_TEST(wrap_borrows)
{
    float data[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    lnet_tensor *t = NULL;
    ck_assert_int_eq(lnet_tensor_wrap(data, 2, shape, &t), LNET_OK);
    ck_assert_ptr_eq(lnet_tensor_data(t), data);
    lnet_tensor_free(t); /* must not free `data` */
    ck_assert(data[5] == 6);
    ck_assert_int_eq(lnet_tensor_wrap(NULL, 2, shape, &t), LNET_ERR_INVALID);
    ck_assert_ptr_null(t);
}
END_TEST

START_TEST(bad_shapes)
{
    lnet_tensor *t = (lnet_tensor *)1;
    int64_t zero[2] = {3, 0};
    ck_assert_int_eq(lnet_tensor_create(2, zero, &t), LNET_ERR_INVALID);
    ck_assert_ptr_null(t);
    ck_assert(strstr(lnet_last_error(), "[3, 0]") != NULL);
    int64_t neg[1] = {-7};
    ck_assert_int_eq(lnet_tensor_create(1, neg, &t), LNET_ERR_INVALID);
    ck_assert(strstr(lnet_last_error(), "-7") != NULL);
    int64_t one[1] = {1};
    ck_assert_int_eq(lnet_tensor_create(0, one, &t), LNET_ERR_INVALID);
    ck_assert_int_eq(lnet_tensor_create(LNET_MAX_DIMS + 1, one, &t), LNET_ERR_INVALID);
    /* B*N*H*D overflowing size_t is refused before anything is allocated. */
    int64_t huge[4] = {INT64_MAX, INT64_MAX, 2, 2};
    ck_assert_int_eq(lnet_tensor_create(4, huge, &t), LNET_ERR_OVERFLOW);
    int64_t big[2] = {(int64_t)1 << 31, (int64_t)1 << 31}; /* 2^62 elements */
    ck_assert_int_eq(lnet_tensor_create(2, big, &t), LNET_ERR_OVERFLOW);
    ck_assert(strstr(lnet_last_error(), "2147483648") != NULL);
}
END_TEST

START_TEST(status_names)
{
    ck_assert_str_eq(lnet_status_name(LNET_OK), "LNET_OK");
    ck_assert_str_eq(lnet_status_name(LNET_ERR_FORMAT), "LNET_ERR_FORMAT");
    ck_assert_str_eq(lnet_status_name((lnet_status)-99), "LNET_ERR_UNKNOWN");
    ck_assert_str_eq(lnet_version(), "0.1.0");
}
END_TEST

static void *fail_in_thread(void *arg)
{
    (void)arg;
    int64_t zero[1] = {0};
    lnet_tensor *t;
    lnet_tensor_create(1, zero, &t);
    return NULL;
}

START_TEST(errors_are_per_thread)
{
    int64_t neg[1] = {-42};
    lnet_tensor *t;
    ck_assert_int_eq(lnet_tensor_create(1, neg, &t), LNET_ERR_INVALID);
    pthread_t th;
    pthread_create(&th, NULL, fail_in_thread, NULL);
    pthread_join(th, NULL);
    ck_assert(strstr(lnet_last_error(), "-42") != NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tensor");
    TCase *tc = tcase_create("tensor");
    tcase_add_test(tc, create_and_read);
    tcase_add_test(tc, wrap_borrows);
    tcase_add_test(tc, bad_shapes);
    tcase_add_test(tc, status_names);
    tcase_add_test(tc, errors_are_per_thread);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
