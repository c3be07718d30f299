/* test_concurrency.c — several threads at once: running attention on one
 * shared context and on a context each (the answers equal a single-threaded
 * run), and creating and freeing contexts (the plugin loader is shared
 * process-wide). CI runs this under ThreadSanitizer (.ci/run), which is
 * what finds the races; here the results are checked. Threads report back
 * to the main thread, which alone asserts (Check's asserts are not for
 * other threads). */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "longnet.h"

#define THREADS 6
#define ROUNDS 3

typedef struct problem {
    int64_t shape[4];
    lnet_tensor *q, *k, *v, *ref_out, *ref_lse;
    lnet_config *cfg;
    const char *devices;
} problem;

static problem problems[THREADS];
static const char *const device_lists[THREADS] = {"cpu", "cpu=1,cpu=1", "cpu", "cpu,cpu",
                                                  "cpu=2,cpu=1,cpu=1", "cpu"};

static lnet_tensor *random_tensor(const int64_t *s, uint32_t seed)
{
    lnet_tensor *t;
    if (lnet_tensor_create(4, s, &t) != LNET_OK)
        return NULL;
    float *d = lnet_tensor_data(t);
    for (size_t i = 0; i < lnet_tensor_numel(t); i++) {
        seed = seed * 1664525u + 1013904223u;
        d[i] = (float)((double)(seed >> 8) / 8388608.0 - 1.0);
    }
    return t;
}

/* Problem i: its own shape and configuration, and its answer computed
 * alone on a context of its own. */
static void setup(void)
{
    static const char *const segs[3] = {"16,32,64", "8,32", "40"};
    static const char *const dils[3] = {"1,2,4", "1,4", "1"};
    lnet_context *ctx;
    ck_assert_int_eq(lnet_context_create(NULL, &ctx), LNET_OK);
    for (int i = 0; i < THREADS; i++) {
        problem *p = &problems[i];
        int64_t s[4] = {1 + i % 2, 64 + 8 * i, 1 + i % 3, 8};
        int64_t ls[3] = {s[0], s[2], s[1]};
        memcpy(p->shape, s, sizeof s);
        p->q = random_tensor(s, 10u * (uint32_t)i + 1);
        p->k = random_tensor(s, 10u * (uint32_t)i + 2);
        p->v = random_tensor(s, 10u * (uint32_t)i + 3);
        ck_assert(p->q && p->k && p->v);
        ck_assert_int_eq(lnet_config_create(&p->cfg), LNET_OK);
        ck_assert_int_eq(lnet_config_parse_levels(p->cfg, segs[i % 3], dils[i % 3]), LNET_OK);
        ck_assert_int_eq(lnet_config_set_causal(p->cfg, i & 1), LNET_OK);
        p->devices = device_lists[i];
        ck_assert_int_eq(lnet_tensor_create(4, s, &p->ref_out), LNET_OK);
        ck_assert_int_eq(lnet_tensor_create(3, ls, &p->ref_lse), LNET_OK);
        ck_assert_msg(lnet_attention_forward(ctx, p->cfg, p->q, p->k, p->v, p->ref_out,
                                             p->ref_lse, NULL) == LNET_OK,
                      "%s", lnet_last_error());
    }
    lnet_context_free(ctx);
}

static void teardown(void)
{
    for (int i = 0; i < THREADS; i++) {
        problem *p = &problems[i];
        lnet_tensor_free(p->q);
        lnet_tensor_free(p->k);
        lnet_tensor_free(p->v);
        lnet_tensor_free(p->ref_out);
        lnet_tensor_free(p->ref_lse);
        lnet_config_free(p->cfg);
    }
    memset(problems, 0, sizeof problems);
}

typedef struct job {
    int index;
    lnet_context *shared; /* NULL: the thread makes its own contexts */
    int fresh_context_each_round;
    char error[1024];     /* empty: every round gave the reference answer */
} job;

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

static void *run_job(void *arg)
{
    job *j = arg;
    problem *p = &problems[j->index];
    int64_t ls[3] = {p->shape[0], p->shape[2], p->shape[1]};
    lnet_context *own = NULL;
    for (int round = 0; round < ROUNDS && !j->error[0]; round++) {
        lnet_context *ctx = j->shared;
        if (!ctx) {
            if (!own && lnet_context_create(NULL, &own) != LNET_OK) {
                snprintf(j->error, sizeof j->error, "context: %s", lnet_last_error());
                break;
            }
            ctx = own;
        }
        lnet_tensor *out = NULL, *lse = NULL;
        if (lnet_tensor_create(4, p->shape, &out) != LNET_OK ||
            lnet_tensor_create(3, ls, &lse) != LNET_OK) {
            snprintf(j->error, sizeof j->error, "tensors: %s", lnet_last_error());
        } else {
            lnet_run_options o = {.size = sizeof o, .device = p->devices};
            if (lnet_attention_forward(ctx, p->cfg, p->q, p->k, p->v, out, lse, &o) != LNET_OK) {
                snprintf(j->error, sizeof j->error, "round %d on %s: %s", round, p->devices,
                         lnet_last_error());
            } else {
                double eo = max_diff(out, p->ref_out), el = max_diff(lse, p->ref_lse);
                if (!(eo <= 1e-5 && el <= 1e-5))
                    snprintf(j->error, sizeof j->error,
                             "round %d on %s: out differs by %g, lse by %g from the "
                             "single-threaded run",
                             round, p->devices, eo, el);
            }
        }
        lnet_tensor_free(out);
        lnet_tensor_free(lse);
        if (j->fresh_context_each_round) {
            lnet_context_free(own);
            own = NULL;
        }
    }
    lnet_context_free(own);
    return NULL;
}

static void run_threads(lnet_context *shared, int fresh)
{
    pthread_t t[THREADS];
    job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (job){.index = i, .shared = shared, .fresh_context_each_round = fresh};
        ck_assert_int_eq(pthread_create(&t[i], NULL, run_job, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++)
        ck_assert_msg(jobs[i].error[0] == '\0', "thread %d: %s", i, jobs[i].error);
}

START_TEST(one_shared_context)
{
    lnet_context *ctx;
    ck_assert_int_eq(lnet_context_create(NULL, &ctx), LNET_OK);
    run_threads(ctx, 0);
    lnet_context_free(ctx);
}
END_TEST

START_TEST(a_context_each)
{
    run_threads(NULL, 0);
}
END_TEST

START_TEST(fresh_contexts_each_round)
{
    run_threads(NULL, 1);
}
END_TEST

/* Contexts created and freed at once by many threads, with the plugin
 * found by the default search and by an explicit path; every context must
 * see the CPU device. */
typedef struct churn {
    int index;
    char error[1024];
} churn;

static void *churn_main(void *arg)
{
    churn *c = arg;
    for (int round = 0; round < 8 && !c->error[0]; round++) {
        lnet_context_options o = {.size = sizeof o};
        if ((c->index + round) % 2)
            o.plugin_path = CPU_PLUGIN_DIR;
        lnet_context *ctx;
        if (lnet_context_create(&o, &ctx) != LNET_OK) {
            snprintf(c->error, sizeof c->error, "round %d: %s", round, lnet_last_error());
            break;
        }
        int idx;
        lnet_device_info info;
        if (lnet_context_find_device(ctx, "cpu:0", &idx) != LNET_OK ||
            lnet_context_device(ctx, idx, &info) != LNET_OK || strcmp(info.backend, "cpu") != 0)
            snprintf(c->error, sizeof c->error, "round %d: no cpu device: %s", round,
                     lnet_last_error());
        lnet_context_free(ctx);
    }
    return NULL;
}

START_TEST(contexts_created_and_freed_at_once)
{
    pthread_t t[8];
    churn c[8];
    for (int i = 0; i < 8; i++) {
        c[i] = (churn){.index = i};
        ck_assert_int_eq(pthread_create(&t[i], NULL, churn_main, &c[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 8; i++)
        ck_assert_msg(c[i].error[0] == '\0', "thread %d: %s", i, c[i].error);
}
END_TEST

static Suite *concurrency_suite(void)
{
    Suite *s = suite_create("concurrency");
    TCase *tc = tcase_create("concurrency");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, one_shared_context);
    tcase_add_test(tc, a_context_each);
    tcase_add_test(tc, fresh_contexts_each_round);
    tcase_add_test(tc, contexts_created_and_freed_at_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(concurrency_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
