/* test_scheduler.c — one sequence across several devices (DESIGN §2, The
 * scheduler): multi-device results equal one-device results for random
 * configurations on 2 to 4 devices, with both algorithms; failover after an
 * injected failure on every device position; device lists; the plan. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "longnet.h"
#include "multidev.h"

typedef struct logbook {
    int warnings;
    int failures; /* warnings that a device failed (failover) */
    char last[1024];
} logbook;

static void on_log(lnet_log_level level, const char *msg, void *user)
{
    logbook *b = user;
    if (level >= LNET_LOG_WARNING) {
        b->warnings++;
        b->failures += strstr(msg, " failed") != NULL;
        snprintf(b->last, sizeof b->last, "%s", msg);
    }
}

/* A context with the CPU backend and `devices` faulty pass-through devices,
 * the first failing from call `k` on device `bad` (k = 0: none fails). */
static lnet_context *make_context(int devices, const char *fail, logbook *book)
{
    lnet_context *ctx = faulty_context(devices, fail, on_log, book);
    int idx;
    ck_assert_msg(lnet_context_find_device(ctx, "faulty:0", &idx) == LNET_OK, "%s",
                  lnet_last_error());
    return ctx;
}

static const char *const lists[] = {
    "cpu=1,faulty:0=1",
    "faulty:0=1,cpu=3",
    "cpu=2,faulty:0=1,faulty:1=1",
    "faulty:2=1,faulty:0=5,cpu=1,faulty:1=2",
    "cpu=1,cpu=1",
};

START_TEST(random_configurations)
{
    logbook book = {0};
    lnet_context *ctx = make_context(3, NULL, &book);
    uint64_t r = 0x5eed0000u + (uint64_t)_i;
    for (int c = 0; c < 8; c++) {
        problem p;
        int64_t N = rng_int(&r, 1, 600);
        make_problem(&p, &r, rng_int(&r, 1, 2), N, rng_int(&r, 1, 4),
                     (int64_t[]){4, 16, 32}[rng_int(&r, 0, 2)]);
        int levels = (int)rng_int(&r, 1, 3);
        int dense = (int)rng_int(&r, 0, levels - 1);
        for (int l = 0; l < levels; l++) {
            int64_t w = rng_int(&r, 1, 2 * N + 3);
            int64_t d = l == dense ? 1 : rng_int(&r, 1, w < 9 ? w : 9);
            ck_assert_int_eq(lnet_config_add_level(p.cfg, w, d), LNET_OK);
        }
        lnet_config_set_causal(p.cfg, (int)rng_int(&r, 0, 1));
        lnet_config_set_offsets(p.cfg, (lnet_offsets)rng_int(&r, 0, 1));
        const char *list = lists[rng_int(&r, 0, 4)];
        for (int a = 0; a < 3; a++)
            check_same(ctx, &p, list, (lnet_algorithm)a, "random case");
        free_problem(&p);
    }
    /* No device failed: the only warnings allowed name a device that got
     * no rows (small N, uneven weights). */
    ck_assert_int_eq(book.failures, 0);
    lnet_context_free(ctx);
}
END_TEST

START_TEST(edge_cases)
{
    logbook book = {0};
    lnet_context *ctx = make_context(3, NULL, &book);
    uint64_t r = 42;
    static const struct {
        int64_t N;
        const char *w, *r;
        int causal;
    } cases[] = {
        {300, "1000", "1", 1},            /* dense, N smaller than one segment */
        {300, "1000", "1", 0},
        {257, "16,64,1024", "1,4,16", 1}, /* ragged end, segments longer than a chunk */
        {100, "64,100", "1,3", 0},        /* fewer aligned blocks than devices */
        {5, "2,8", "1,2", 1},             /* tiny */
        {640, "64,128,640", "1,2,5", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        problem p;
        make_problem(&p, &r, 2, cases[i].N, 3, 8);
        ck_assert_int_eq(lnet_config_parse_levels(p.cfg, cases[i].w, cases[i].r), LNET_OK);
        lnet_config_set_causal(p.cfg, cases[i].causal);
        for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++)
            for (int a = 0; a < 3; a++)
                check_same(ctx, &p, lists[l], (lnet_algorithm)a, cases[i].w);
        free_problem(&p);
    }
    lnet_context_free(ctx);
}
END_TEST

START_TEST(calibrated_weights)
{
    logbook book = {0};
    lnet_context *ctx = make_context(2, NULL, &book);
    uint64_t r = 7;
    problem p;
    make_problem(&p, &r, 1, 512, 2, 16);
    ck_assert_int_eq(lnet_config_parse_levels(p.cfg, "64,256", "1,4"), LNET_OK);
    check_same(ctx, &p, "cpu,faulty:0", LNET_ALGORITHM_AUTO, "calibrated");
    char *plan = NULL;
    lnet_run_options o = {.size = sizeof o, .device = "cpu,faulty:0"};
    ck_assert_int_eq(lnet_attention_explain(ctx, p.cfg, 1, 512, 2, 16, &o, &plan), LNET_OK);
    ck_assert_ptr_nonnull(strstr(plan, "cpu:0"));
    ck_assert_ptr_nonnull(strstr(plan, "faulty:0"));
    lnet_free(plan);
    free_problem(&p);
    lnet_context_free(ctx);
}
END_TEST

/* Failover: device `_i` of three fails on its first or second job; the
 * answer is still exact and a warning names the device and the error. */
START_TEST(failover_each_position)
{
    for (int k = 1; k <= 2; k++) {
        char fail[32];
        snprintf(fail, sizeof fail, "%d:%d", _i, k);
        logbook book = {0};
        lnet_context *ctx = make_context(3, fail, &book);
        uint64_t r = 100 + (uint64_t)_i;
        problem p;
        make_problem(&p, &r, 2, 400, 3, 8);
        ck_assert_int_eq(lnet_config_parse_levels(p.cfg, "32,128,400", "1,2,4"), LNET_OK);
        lnet_config_set_causal(p.cfg, k == 1);
        check_same(ctx, &p, "faulty:0=1,faulty:1=1,faulty:2=1", LNET_ALGORITHM_AUTO, fail);
        char name[32];
        snprintf(name, sizeof name, "faulty:%d", _i);
        ck_assert_int_ge(book.warnings, 1);
        ck_assert_msg(strstr(book.last, name) && strstr(book.last, "injected failure") &&
                          strstr(book.last, "re-planned"),
                      "warning: %s", book.last);
        free_problem(&p);
        lnet_context_free(ctx);
    }
}
END_TEST

START_TEST(every_device_fails)
{
    logbook book = {0};
    lnet_context *ctx = make_context(2, "0:1,1:1", &book);
    uint64_t r = 9;
    problem p;
    make_problem(&p, &r, 1, 256, 2, 8);
    ck_assert_int_eq(lnet_config_parse_levels(p.cfg, "32,256", "1,2"), LNET_OK);
    lnet_tensor *o, *l;
    lnet_status st = run(ctx, &p, "faulty:0=1,faulty:1=1", LNET_ALGORITHM_AUTO, &o, &l);
    ck_assert_int_eq(st, LNET_ERR_DEVICE);
    ck_assert_msg(strstr(lnet_last_error(), "injected failure") &&
                      strstr(lnet_last_error(), "no device is left"),
                  "%s", lnet_last_error());
    lnet_tensor_free(o);
    lnet_tensor_free(l);
    free_problem(&p);
    lnet_context_free(ctx);
}
END_TEST

/* Placement (plugin ABI 2's supports): a device that refuses the call's
 * jobs gets none of them, with a warning naming it and what it lacks, and
 * the answer is the one-device answer. The picky fixture "succeeds" on a
 * job it refused without computing, so work placed on it regardless would
 * show as a wrong answer here. */
START_TEST(unsupported_device_gets_no_work)
{
    logbook book = {0};
    setenv("LONGNET_PICKY_REFUSE_DIM", "8", 1);
    lnet_context *ctx = make_context(2, NULL, &book);
    uint64_t r = 11;
    problem p;
    make_problem(&p, &r, 1, 256, 2, 8);
    ck_assert_int_eq(lnet_config_parse_levels(p.cfg, "32,256", "1,2"), LNET_OK);
    book.warnings = 0;
    check_same(ctx, &p, "cpu=1,picky:0=3", LNET_ALGORITHM_AUTO, "picky refuses D = 8");
    ck_assert_int_ge(book.warnings, 1);
    ck_assert_msg(strstr(book.last, "picky:0 does not support") &&
                      strstr(book.last, "head dim 8") && strstr(book.last, "left out"),
                  "%s", book.last);
    check_same(ctx, &p, "picky:0,cpu", LNET_ALGORITHM_RING, "picky refuses D = 8, calibrated");

    /* Every listed device refuses: the call is refused, naming each. */
    lnet_tensor *o = NULL, *l = NULL;
    lnet_status st = run(ctx, &p, "picky:0=1,picky:1=1", LNET_ALGORITHM_AUTO, &o, &l);
    ck_assert_int_eq(st, LNET_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(lnet_last_error(), "picky:0 does not support") &&
                      strstr(lnet_last_error(), "picky:1 does not support"),
                  "%s", lnet_last_error());
    lnet_tensor_free(o);
    lnet_tensor_free(l);
    free_problem(&p);

    /* Another head dim: picky takes its share and the answer is the same. */
    r = 12;
    make_problem(&p, &r, 1, 256, 2, 16);
    ck_assert_int_eq(lnet_config_parse_levels(p.cfg, "32,256", "1,2"), LNET_OK);
    book.warnings = 0;
    check_same(ctx, &p, "cpu=1,picky:0=3", LNET_ALGORITHM_AUTO, "picky takes D = 16");
    ck_assert_int_eq(book.warnings, 0);
    free_problem(&p);
    lnet_context_free(ctx);
    unsetenv("LONGNET_PICKY_REFUSE_DIM");
}
END_TEST

/* Device options from the API (plugin ABI 2): "cpu{threads=1}" reaches
 * the plugin's open(); the answer is the plain device's; options with
 * commas of their own sit in braces inside a list; a device asked for with
 * other options is opened again with them; a bad option is refused with
 * the plugin's message, never failed over. */
START_TEST(device_options_from_the_api)
{
    logbook book = {0};
    lnet_context *ctx = make_context(2, NULL, &book);
    uint64_t r = 21;
    problem p;
    make_problem(&p, &r, 1, 192, 3, 8);
    ck_assert_int_eq(lnet_config_parse_levels(p.cfg, "32,64", "1,2"), LNET_OK);
    check_same(ctx, &p, "cpu{threads=1}", LNET_ALGORITHM_AUTO, "cpu{threads=1}");
    check_same(ctx, &p, "cpu{threads=2,simd=generic}", LNET_ALGORITHM_AUTO, "two options");
    check_same(ctx, &p, "cpu{threads=1}=1, faulty:0{simd=generic}=2", LNET_ALGORITHM_GATHER,
               "options in a weighted list");
    check_same(ctx, &p, "faulty:0{threads=1},faulty:1", LNET_ALGORITHM_RING,
               "options in a calibrated list");

    static const struct { const char *list, *want; } bad[] = {
        {"cpu{threads=0}", "threads"},
        {"cpu{colour=blue}", "unknown device option 'colour'"},
        {"cpu{threads=1", "no closing '}'"},
        {"cpu{threads=1}x", "only '=WEIGHT' may follow"},
        {"cpu{a{b}}", "'{' inside its device options"},
        {"faulty:0=1,cpu{colour=blue}=1", "unknown device option 'colour'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lnet_tensor *o = NULL, *l = NULL;
        lnet_status st = run(ctx, &p, bad[i].list, LNET_ALGORITHM_AUTO, &o, &l);
        ck_assert_msg(st == LNET_ERR_INVALID && strstr(lnet_last_error(), bad[i].want),
                      "%s: %s: %s", bad[i].list, lnet_status_name(st), lnet_last_error());
        lnet_tensor_free(o);
        lnet_tensor_free(l);
    }
    free_problem(&p);
    lnet_context_free(ctx);
}
END_TEST

START_TEST(device_lists_refused)
{
    logbook book = {0};
    lnet_context *ctx = make_context(1, NULL, &book);
    uint64_t r = 3;
    problem p;
    make_problem(&p, &r, 1, 64, 1, 4);
    ck_assert_int_eq(lnet_config_parse_levels(p.cfg, "16", "1"), LNET_OK);
    static const struct { const char *list, *text; } bad[] = {
        {"cpu,,faulty:0", "entry 2 is empty"},
        {"cpu=abc", "weight 'abc'"},
        {"cpu=0,faulty:0=1", "weight '0'"},
        {"cpu=1,faulty:0", "every device or to none"},
        {"cpu,tpu", "unknown device 'tpu'"},
        {"cpu,faulty:5", "'faulty:5' does not exist"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lnet_tensor *o, *l;
        ck_assert_int_ne(run(ctx, &p, bad[i].list, LNET_ALGORITHM_AUTO, &o, &l), LNET_OK);
        ck_assert_msg(strstr(lnet_last_error(), bad[i].text), "%s: %s", bad[i].list,
                      lnet_last_error());
        lnet_tensor_free(o);
        lnet_tensor_free(l);
    }
    lnet_algorithm a;
    ck_assert_int_eq(lnet_algorithm_parse("ring", &a), LNET_OK);
    ck_assert_int_eq(a, LNET_ALGORITHM_RING);
    ck_assert_int_eq(lnet_algorithm_parse("spiral", &a), LNET_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lnet_last_error(), "'spiral'"));
    free_problem(&p);
    lnet_context_free(ctx);
}
END_TEST

/* The bytes a device exchanges per level are O(w/r): the same at N = 256K
 * and N = 4M for a fixed configuration (the plan alone, nothing runs). */
static char *bytes_section(lnet_context *ctx, lnet_config *cfg, int64_t N)
{
    char *plan = NULL;
    lnet_run_options o = {.size = sizeof o, .device = "cpu=1,cpu=1,cpu=1"};
    ck_assert_msg(lnet_attention_explain(ctx, cfg, 1, N, 1, 64, &o, &plan) == LNET_OK, "%s",
                  lnet_last_error());
    char *s = strstr(plan, "bytes per device");
    ck_assert_ptr_nonnull(s);
    char *copy = strdup(s);
    lnet_free(plan);
    return copy;
}

START_TEST(bytes_independent_of_n)
{
    logbook book = {0};
    lnet_context *ctx = make_context(1, NULL, &book);
    lnet_config *cfg;
    ck_assert_int_eq(lnet_config_create(&cfg), LNET_OK);
    ck_assert_int_eq(lnet_config_parse_levels(cfg, "2048,8192,32768,131072", "1,4,16,64"),
                     LNET_OK);
    for (int causal = 0; causal <= 1; causal++) {
        lnet_config_set_causal(cfg, causal);
        char *a = bytes_section(ctx, cfg, 262144), *b = bytes_section(ctx, cfg, 4194304);
        ck_assert_msg(strcmp(a, b) == 0, "N=256K:\n%s\nN=4M:\n%s", a, b);
        ck_assert_ptr_null(strstr(a, "receives 0 B, sends 0 B")); /* something moves */
        free(a);
        free(b);
    }
    lnet_config_free(cfg);
    lnet_context_free(ctx);
}
END_TEST

/* LONGNET_CPU_DEVICES=2 shares the cores out into two CPU devices, which
 * split a sequence like any other pair; a bad count refuses the backend.
 * The variable is read when the backend is probed, i.e. when a cpu device
 * is first asked for, so it stays set until then. */
START_TEST(cpu_backend_as_two_devices)
{
    setenv("LONGNET_CPU_DEVICES", "2", 1);
    logbook book = {0};
    lnet_context *ctx = make_context(1, NULL, &book);
    int i0, i1;
    ck_assert_int_eq(lnet_context_find_device(ctx, "cpu:0", &i0), LNET_OK);
    unsetenv("LONGNET_CPU_DEVICES");
    ck_assert_int_eq(lnet_context_find_device(ctx, "cpu:1", &i1), LNET_OK);
    lnet_device_info d0, d1;
    lnet_context_device(ctx, i0, &d0);
    lnet_context_device(ctx, i1, &d1);
    ck_assert_int_ge(d0.compute_units, 1);
    ck_assert_int_ge(d1.compute_units, 1);
    uint64_t r = 21;
    problem p;
    make_problem(&p, &r, 1, 500, 2, 16);
    ck_assert_int_eq(lnet_config_parse_levels(p.cfg, "50,100,500", "1,2,5"), LNET_OK);
    lnet_config_set_causal(p.cfg, 1);
    for (int a = 0; a < 3; a++)
        check_same(ctx, &p, "cpu:0=1,cpu:1=1", (lnet_algorithm)a, "two CPU devices");
    check_same(ctx, &p, "cpu:1,cpu:0", LNET_ALGORITHM_AUTO, "two calibrated CPU devices");
    free_problem(&p);
    lnet_context_free(ctx);

    setenv("LONGNET_CPU_DEVICES", "0", 1);
    book.warnings = 0;
    lnet_context_options o = {.size = sizeof o, .log = on_log, .log_user = &book};
    ck_assert_int_eq(lnet_context_create(&o, &ctx), LNET_OK);
    int idx;
    ck_assert_int_ne(lnet_context_find_device(ctx, "cpu", &idx), LNET_OK);
    unsetenv("LONGNET_CPU_DEVICES");
    ck_assert_msg(book.warnings >= 1 && strstr(book.last, "LONGNET_CPU_DEVICES = '0'"), "%s",
                  book.last);
    lnet_context_free(ctx);
}
END_TEST

/* More CPU devices than cores asked for: the backend stays, clamped to one
 * device per core, with a warning that says so (issue 10, 16). */
START_TEST(cpu_devices_clamped_to_cores)
{
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    ck_assert_int_ge(cores, 1);
    const char *asks[] = {"1000", "99999999999999999999999"};
    for (int a = 0; a < 2; a++) {
        char want[32];
        snprintf(want, sizeof want, "%s", asks[a]);
        setenv("LONGNET_CPU_DEVICES", want, 1);
        logbook book = {0};
        lnet_context_options o = {.size = sizeof o, .log = on_log, .log_user = &book};
        lnet_context *ctx = NULL;
        ck_assert_int_eq(lnet_context_create(&o, &ctx), LNET_OK);
        char spec[32];
        int idx;
        snprintf(spec, sizeof spec, "cpu:%ld", cores - 1);
        ck_assert_msg(lnet_context_find_device(ctx, spec, &idx) == LNET_OK, "%s: %s", want,
                      lnet_last_error());
        snprintf(spec, sizeof spec, "cpu:%ld", cores);
        ck_assert_int_eq(lnet_context_find_device(ctx, spec, &idx), LNET_ERR_DEVICE);
        unsetenv("LONGNET_CPU_DEVICES");
        ck_assert_msg(book.warnings >= 1 && strstr(book.last, "LONGNET_CPU_DEVICES") &&
                          strstr(book.last, want) && strstr(book.last, "online cores") &&
                          strstr(book.last, "longnet-cpu"),
                      "warning: '%s'", book.last);
        lnet_context_free(ctx);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("scheduler");
    TCase *tc = tcase_create("scheduler");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, random_configurations, 0, 4);
    tcase_add_test(tc, edge_cases);
    tcase_add_test(tc, calibrated_weights);
    tcase_add_loop_test(tc, failover_each_position, 0, 3);
    tcase_add_test(tc, every_device_fails);
    tcase_add_test(tc, device_lists_refused);
    tcase_add_test(tc, unsupported_device_gets_no_work);
    tcase_add_test(tc, device_options_from_the_api);
    tcase_add_test(tc, bytes_independent_of_n);
    tcase_add_test(tc, cpu_backend_as_two_devices);
    tcase_add_test(tc, cpu_devices_clamped_to_cores);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
