/* test_faults.c — a device's buffers and kernels failing, through the
 * fault-injecting fixture plugin (tests/faulty): the k-th buffer_alloc,
 * buffer_write, buffer_read or kernel call fails, for every k along a run.
 * On one device every failure is a status whose message names the device
 * and the call; on two devices the other one takes over and the answer is
 * the CPU device's. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "longnet.h"

static const char *const op_env[3] = {"LONGNET_FAULTY_FAIL_ALLOC", "LONGNET_FAULTY_FAIL_WRITE",
                                      "LONGNET_FAULTY_FAIL_READ"};
static const char *const op_name[3] = {"buffer_alloc", "buffer_write", "buffer_read"};

typedef struct logbook {
    int warnings;
    char last[2048];
} logbook;

static void on_log(lnet_log_level level, const char *msg, void *user)
{
    logbook *b = user;
    if (level >= LNET_LOG_WARNING) {
        b->warnings++;
        snprintf(b->last, sizeof b->last, "%s", msg);
    }
}

/* A context with the CPU backend and two faulty devices; `env` = "k" fails
 * the k-th call of that kind (NULL: none); the counters start at 0 here. */
static lnet_context *make_context_kernel(const char *env, int k, const char *kernel_fail,
                                        logbook *book)
{
    char v[32];
    setenv("LONGNET_FAULTY_INNER", CPU_PLUGIN_DIR "/.libs/longnet-cpu.so", 1);
    setenv("LONGNET_FAULTY_DEVICES", "2", 1);
    setenv("LONGNET_FAULTY_NOWRAP", "1", 1);
    if (kernel_fail)
        setenv("LONGNET_FAULTY_FAIL", kernel_fail, 1);
    else
        unsetenv("LONGNET_FAULTY_FAIL");
    for (int i = 0; i < 3; i++)
        unsetenv(op_env[i]);
    if (env) {
        snprintf(v, sizeof v, "%d", k);
        setenv(env, v, 1);
    }
    memset(book, 0, sizeof *book);
    lnet_context_options o = {.size = sizeof o, .log = on_log, .log_user = book,
                              .plugin_path = FAULTY_DIR};
    lnet_context *ctx = NULL;
    ck_assert_msg(lnet_context_create(&o, &ctx) == LNET_OK, "%s", lnet_last_error());
    int idx;
    ck_assert_msg(lnet_context_find_device(ctx, "faulty:1", &idx) == LNET_OK, "%s",
                  lnet_last_error());
    return ctx;
}

static lnet_context *make_context(const char *env, int k, logbook *book)
{
    return make_context_kernel(env, k, NULL, book);
}

typedef struct problem {
    int64_t shape[4];
    lnet_tensor *q, *k, *v, *ref_out, *ref_lse;
    lnet_config *cfg;
} problem;

/* B = 2, so that a chunk of rows is never contiguous in host memory. */
static void make_problem(problem *p, int causal)
{
    int64_t s[4] = {2, 96, 3, 8};
    memcpy(p->shape, s, sizeof s);
    lnet_tensor **t[3] = {&p->q, &p->k, &p->v};
    uint32_t x = 12345;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(lnet_tensor_create(4, s, t[i]), LNET_OK);
        float *d = lnet_tensor_data(*t[i]);
        for (size_t j = 0; j < lnet_tensor_numel(*t[i]); j++) {
            x = x * 1664525u + 1013904223u;
            d[j] = (float)((double)(x >> 8) / 8388608.0 - 1.0);
        }
    }
    ck_assert_int_eq(lnet_config_create(&p->cfg), LNET_OK);
    ck_assert_int_eq(lnet_config_parse_levels(p->cfg, "16,32,96", "1,2,3"), LNET_OK);
    ck_assert_int_eq(lnet_config_set_causal(p->cfg, causal), LNET_OK);
    int64_t ls[3] = {s[0], s[2], s[1]};
    ck_assert_int_eq(lnet_tensor_create(4, s, &p->ref_out), LNET_OK);
    ck_assert_int_eq(lnet_tensor_create(3, ls, &p->ref_lse), LNET_OK);
    logbook book;
    lnet_context *ctx = make_context(NULL, 0, &book);
    ck_assert_msg(lnet_attention_forward(ctx, p->cfg, p->q, p->k, p->v, p->ref_out, p->ref_lse,
                                         NULL) == LNET_OK,
                  "%s", lnet_last_error());
    lnet_context_free(ctx);
}

static void free_problem(problem *p)
{
    lnet_tensor_free(p->q);
    lnet_tensor_free(p->k);
    lnet_tensor_free(p->v);
    lnet_tensor_free(p->ref_out);
    lnet_tensor_free(p->ref_lse);
    lnet_config_free(p->cfg);
}

static double max_diff(const lnet_tensor *a, const lnet_tensor *b)
{
    double m = 0;
    const float *x = lnet_tensor_cdata(a), *y = lnet_tensor_cdata(b);
    for (size_t i = 0; i < lnet_tensor_numel(a); i++) {
        double d = fabs((double)x[i] - (double)y[i]);
        if (!(d <= m))
            m = d;
    }
    return m;
}

/* Runs on `devices` with the k-th call of kind `op` failing. Returns the
 * status; *warned: the run logged a warning (a device failed over). */
static lnet_status run_with_fault(problem *p, const char *devices, int op, int k, int *warned,
                                  char *msg, size_t len)
{
    logbook book;
    lnet_context *ctx = make_context(op_env[op], k, &book);
    int64_t ls[3] = {p->shape[0], p->shape[2], p->shape[1]};
    lnet_tensor *out, *lse;
    ck_assert_int_eq(lnet_tensor_create(4, p->shape, &out), LNET_OK);
    ck_assert_int_eq(lnet_tensor_create(3, ls, &lse), LNET_OK);
    lnet_run_options o = {.size = sizeof o, .device = devices};
    lnet_status st = lnet_attention_forward(ctx, p->cfg, p->q, p->k, p->v, out, lse, &o);
    snprintf(msg, len, "%s", st ? lnet_last_error() : book.last);
    *warned = book.warnings;
    if (st == LNET_OK) {
        double eo = max_diff(out, p->ref_out), el = max_diff(lse, p->ref_lse);
        ck_assert_msg(eo <= 1e-5 && el <= 1e-5,
                      "%s, %s call %d failed, run succeeded: out differs by %g, lse by %g",
                      devices, op_name[op], k, eo, el);
    }
    lnet_tensor_free(out);
    lnet_tensor_free(lse);
    lnet_context_free(ctx);
    return st;
}

/* One device: every k-th call fails the run, with a message naming the
 * device and the call; past the last call the run succeeds. */
START_TEST(one_device_every_call)
{
    problem p;
    make_problem(&p, _i & 1);
    for (int op = 0; op < 3; op++) {
        int k, failed = 0;
        for (k = 1; k < 10000; k++) {
            char msg[2048];
            int warned;
            lnet_status st = run_with_fault(&p, "faulty:0", op, k, &warned, msg, sizeof msg);
            if (st == LNET_OK)
                break;
            failed++;
            ck_assert_msg(st == LNET_ERR_DEVICE || st == LNET_ERR_NOMEM, "%s call %d: status %s",
                          op_name[op], k, lnet_status_name(st));
            ck_assert_msg(strstr(msg, "faulty:0") && strstr(msg, op_name[op]),
                          "%s call %d: the message names neither device nor call: %s",
                          op_name[op], k, msg);
        }
        ck_assert_msg(failed >= 1, "no %s call was made on a device without host wrapping",
                      op_name[op]);
    }
    free_problem(&p);
}
END_TEST

/* Two devices: whichever call fails, the other device takes the rows over
 * (a warning names the call) and the answer is unchanged. */
START_TEST(two_devices_fail_over)
{
    problem p;
    make_problem(&p, _i & 1);
    const char *lists[2] = {"faulty:0=1,faulty:1=1", "faulty:0=1,faulty:1=2"};
    const char *devices = lists[_i >> 1];
    for (int op = 0; op < 3; op++) {
        int k, injected = 0;
        for (k = 1; k < 10000; k++) {
            char msg[2048];
            int warned;
            lnet_status st = run_with_fault(&p, devices, op, k, &warned, msg, sizeof msg);
            ck_assert_msg(st == LNET_OK, "%s, %s call %d failed: no failover: %s", devices,
                          op_name[op], k, lnet_last_error());
            if (!warned)
                break; /* no k-th call: the walk is complete */
            injected++;
            ck_assert_msg(strstr(msg, op_name[op]) && strstr(msg, "re-planned"),
                          "%s call %d: the failover warning does not name the call: %s",
                          op_name[op], k, msg);
        }
        ck_assert_msg(injected >= 2, "%s on %s: only %d failures injected", op_name[op],
                      devices, injected);
    }
    free_problem(&p);
}
END_TEST

/* A kernel failure on the only device is a status naming the level. */
START_TEST(kernel_failure_one_device)
{
    problem p;
    make_problem(&p, 0);
    logbook book;
    lnet_context *ctx = make_context_kernel(NULL, 0, "0:2", &book);
    int64_t ls[3] = {p.shape[0], p.shape[2], p.shape[1]};
    lnet_tensor *out, *lse;
    ck_assert_int_eq(lnet_tensor_create(4, p.shape, &out), LNET_OK);
    ck_assert_int_eq(lnet_tensor_create(3, ls, &lse), LNET_OK);
    lnet_run_options ro = {.size = sizeof ro, .device = "faulty:0"};
    lnet_status st = lnet_attention_forward(ctx, p.cfg, p.q, p.k, p.v, out, lse, &ro);
    ck_assert_int_eq(st, LNET_ERR_DEVICE);
    ck_assert_msg(strstr(lnet_last_error(), "faulty:0") && strstr(lnet_last_error(), "level") &&
                      strstr(lnet_last_error(), "injected failure on call 2"),
                  "%s", lnet_last_error());
    lnet_tensor_free(out);
    lnet_tensor_free(lse);
    lnet_context_free(ctx);
    free_problem(&p);
}
END_TEST

static Suite *faults_suite(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, one_device_every_call, 0, 2);
    tcase_add_loop_test(tc, two_devices_fail_over, 0, 4);
    tcase_add_test(tc, kernel_failure_one_device);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(faults_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
