#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* test_opencl_gemm.c — the OpenCL backend's CLBlast "gemm" path under
 * concurrency: several threads at once, on two PoCL devices (POCL_DEVICES
 * "basic pthread", set before the ICD loader starts), each opening devices
 * of its own and running gemm jobs on them, round after round, so that
 * CLBlast sets up its routines for many contexts from several threads at
 * the same time. CLBlast's caches are not safe for that (CLBlast issue 486;
 * longnet once crashed in Routine::InitDatabase beside Routine::InitProgram),
 * so the plugin serialises its CLBlast calls; this test is what shows it:
 *
 *  - plugin_threads: 4 threads x 12 rounds, each round a device opened,
 *    a three-level problem run with gemm, read back and compared with the
 *    single-threaded answer of the same device, the device closed;
 *  - public_threads: the case that crashed (`--device opencl:0=1,opencl:1=2
 *    --kernel gemm`, shape [1,5,6,29], segments 5,6,2,5, dilations
 *    5,2,1,5, ring, gather and auto) from 3 threads, a fresh context each
 *    round, against the one-device answer;
 *  - create_free_cycles: 100 contexts created, run once with gemm and
 *    freed, as a binding does; resident memory after the last within 16 MB
 *    of what it was after the 10th (CLBlast caches a program per OpenCL
 *    context, and the plugin clears the cache when its last CLBlast device
 *    closes).
 *
 * A crash fails the test as it did the command. Skips (exit 77) when there
 * is no OpenCL device or this build has no CLBlast. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "longnet-plugin.h"
#include "longnet.h"
#include "opencl_test.h"
#include "plugin_direct.h"
#include "seeded_rng.h"

#define TOL 1e-5
#define MAX_DEVICES 16

static int n_devices;
static const lnet_plugin *ocl;
static void *ocl_module;

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m))
            m = d; /* NaN propagates */
    }
    return m;
}

/* ------------------------------------------------ the plugin, directly */

/* B2 N96 H3 D16, levels 96:1 (init), 32:2, 24:3; causal. */
enum { PB = 2, PN = 96, PH = 3, PD = 16, PL = 3 };
static const int64_t pw[PL] = {96, 32, 24}, pr[PL] = {1, 2, 3};
#define P4 ((size_t)PB * PN * PH * PD)
#define P3 ((size_t)PB * PH * PN)

static float pq[P4], pk[P4], pv[P4];
static float want_o[MAX_DEVICES][P4], want_l[MAX_DEVICES][P3];

/* open and close come from one thread at a time (longnet-plugin.h). */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;

/* Opens device `index`, runs the levels with gemm, reads out and lse back,
 * closes it. Returns 0, or -1 with the failure in `err`. */
static int run_gemm(int index, float *out, float *lse, char *err, size_t err_len)
{
    void *dev = NULL;
    pthread_mutex_lock(&open_lock);
    int rc = ocl->open(index, NULL, &dev);
    if (rc)
        snprintf(err, err_len, "open(%d): %s", index, ocl->last_error());
    pthread_mutex_unlock(&open_lock);
    if (rc)
        return -1;
    void *b[5] = {NULL, NULL, NULL, NULL, NULL};
    const float *host[3] = {pq, pk, pv};
    const size_t bytes[5] = {P4 * 4, P4 * 4, P4 * 4, P4 * 4, P3 * 4};
    const char *step = "buffer_alloc";
    for (int i = 0; i < 5 && rc == 0; i++)
        rc = ocl->buffer_alloc(dev, bytes[i], &b[i]);
    for (int i = 0; i < 3 && rc == 0; i++) {
        step = "buffer_write";
        rc = ocl->buffer_write(dev, b[i], 0, host[i], bytes[i]);
    }
    for (int level = 0; level < PL && rc == 0; level++) {
        lnet_segment_job job = {.size = sizeof job, .batch = PB, .rows = PN, .heads = PH,
                                .dim = PD, .row_begin = 0, .row_end = PN, .segment = pw[level],
                                .dilation = pr[level],
                                .offsets = LNET_PLUGIN_OFFSETS_INTERLEAVED, .causal = 1,
                                .init = level == 0, .scale = 0.25f, .kernel = "gemm",
                                .q = b[0], .k = b[1], .v = b[2], .out = b[3], .lse = b[4]};
        step = "run_segment";
        rc = ocl->run_segment(dev, &job);
    }
    if (rc == 0) {
        step = "buffer_read";
        rc = ocl->buffer_read(dev, b[3], 0, out, bytes[3]);
    }
    if (rc == 0)
        rc = ocl->buffer_read(dev, b[4], 0, lse, bytes[4]);
    if (rc)
        snprintf(err, err_len, "opencl:%d: %s: %s", index, step, ocl->last_error());
    for (int i = 0; i < 5; i++)
        if (b[i])
            ocl->buffer_free(dev, b[i]);
    pthread_mutex_lock(&open_lock);
    ocl->close(dev);
    pthread_mutex_unlock(&open_lock);
    return rc ? -1 : 0;
}

#define P_THREADS 4
#define P_ROUNDS 12

typedef struct pworker {
    int id;
    int failed;
    char err[1024];
} pworker;

/* Every round starts on all threads at once, and ends with all of them
 * done (their devices closed), so that the next round's first CLBlast
 * calls, for new contexts, coincide again. */
static pthread_barrier_t round_barrier;

static void *plugin_worker(void *arg)
{
    pworker *w = arg;
    float *out = malloc(P4 * sizeof(float)), *lse = malloc(P3 * sizeof(float));
    if (!out || !lse) {
        snprintf(w->err, sizeof w->err, "out of memory");
        w->failed = 1;
    }
    for (int round = 0; round < P_ROUNDS; round++) {
        pthread_barrier_wait(&round_barrier);
        /* Threads take the devices in turn, so that both are busy at once;
         * a thread that failed still meets the others at the barrier. */
        const int index = (w->id + round) % n_devices;
        if (w->failed)
            continue;
        if (run_gemm(index, out, lse, w->err, sizeof w->err)) {
            w->failed = 1;
            continue;
        }
        double eo = max_diff(out, want_o[index], P4), el = max_diff(lse, want_l[index], P3);
        if (!(eo <= TOL && el <= TOL)) {
            snprintf(w->err, sizeof w->err,
                     "thread %d round %d on opencl:%d: max |out diff| %g, |lse diff| %g from "
                     "the single-threaded run",
                     w->id, round, index, eo, el);
            w->failed = 1;
        }
    }
    free(out);
    free(lse);
    return NULL;
}

START_TEST(plugin_threads)
{
    if (!ocl)
        ocl = plugin_direct_open("opencl", &ocl_module);
    uint64_t s = 486;
    for (size_t i = 0; i < P4; i++) {
        pq[i] = (float)rng_real(&s, -1, 1);
        pk[i] = (float)rng_real(&s, -1, 1);
        pv[i] = (float)rng_real(&s, -1, 1);
    }
    /* The single-threaded answer of each device. */
    char err[1024];
    for (int d = 0; d < n_devices; d++)
        ck_assert_msg(run_gemm(d, want_o[d], want_l[d], err, sizeof err) == 0, "%s", err);

    pthread_t th[P_THREADS];
    pworker w[P_THREADS];
    ck_assert(pthread_barrier_init(&round_barrier, NULL, P_THREADS) == 0);
    for (int t = 0; t < P_THREADS; t++) {
        memset(&w[t], 0, sizeof w[t]);
        w[t].id = t;
        ck_assert(pthread_create(&th[t], NULL, plugin_worker, &w[t]) == 0);
    }
    for (int t = 0; t < P_THREADS; t++)
        pthread_join(th[t], NULL);
    pthread_barrier_destroy(&round_barrier);
    for (int t = 0; t < P_THREADS; t++)
        ck_assert_msg(!w[t].failed, "%s", w[t].err);
}
END_TEST

/* ------------------------------------------------------ the public API */

/* The case of the crash report. */
enum { QB = 1, QN = 5, QH = 6, QD = 29 };
#define Q4 ((size_t)QB * QN * QH * QD)
#define Q3 ((size_t)QB * QH * QN)
static float qq[Q4], qk[Q4], qv[Q4];
static float q_want_o[Q4], q_want_l[Q3];

static int run_public(lnet_context *cx, const char *device, lnet_algorithm algo, float *out,
                      float *lse, char *err, size_t err_len)
{
    lnet_config *cfg = NULL;
    int64_t s4[4] = {QB, QN, QH, QD}, s3[3] = {QB, QH, QN};
    lnet_tensor *t[5] = {NULL, NULL, NULL, NULL, NULL};
    lnet_status st = lnet_config_create(&cfg);
    if (!st)
        st = lnet_config_parse_levels(cfg, "5,6,2,5", "5,2,1,5");
    float *data[5] = {qq, qk, qv, out, lse};
    for (int i = 0; i < 5 && !st; i++)
        st = lnet_tensor_wrap(data[i], i < 4 ? 4 : 3, i < 4 ? s4 : s3, &t[i]);
    if (!st) {
        lnet_run_options o = {.size = sizeof o, .device = device, .kernel = "gemm",
                              .algorithm = algo};
        st = lnet_attention_forward(cx, cfg, t[0], t[1], t[2], t[3], t[4], &o);
    }
    if (st)
        snprintf(err, err_len, "%s (algorithm %d): %s", device, (int)algo, lnet_last_error());
    for (int i = 0; i < 5; i++)
        lnet_tensor_free(t[i]);
    lnet_config_free(cfg);
    return st ? -1 : 0;
}

#define Q_THREADS 3
#define Q_ROUNDS 6

static const char *q_devices;

static void *public_worker(void *arg)
{
    pworker *w = arg;
    float out[Q4], lse[Q3];
    for (int round = 0; round < Q_ROUNDS && !w->failed; round++) {
        /* A fresh context each round: new devices, new OpenCL contexts, so
         * CLBlast sets its routines up again, from every thread at once. */
        lnet_context *cx = NULL;
        if (lnet_context_create(NULL, &cx) != LNET_OK) {
            snprintf(w->err, sizeof w->err, "context: %s", lnet_last_error());
            w->failed = 1;
            break;
        }
        const lnet_algorithm algo = (lnet_algorithm)((w->id + round) % 3);
        if (run_public(cx, q_devices, algo, out, lse, w->err, sizeof w->err)) {
            w->failed = 1;
        } else {
            double eo = max_diff(out, q_want_o, Q4), el = max_diff(lse, q_want_l, Q3);
            if (!(eo <= TOL && el <= TOL)) {
                snprintf(w->err, sizeof w->err,
                         "thread %d round %d on %s (algorithm %d): max |out diff| %g, |lse "
                         "diff| %g from one device",
                         w->id, round, q_devices, (int)algo, eo, el);
                w->failed = 1;
            }
        }
        lnet_context_free(cx);
    }
    return NULL;
}

START_TEST(public_threads)
{
    uint64_t s = 139;
    for (size_t i = 0; i < Q4; i++) {
        qq[i] = (float)rng_real(&s, -1, 1);
        qk[i] = (float)rng_real(&s, -1, 1);
        qv[i] = (float)rng_real(&s, -1, 1);
    }
    q_devices = n_devices > 1 ? "opencl:0=1,opencl:1=2" : "opencl:0=1,opencl:0=2";
    char err[1024];
    lnet_context *cx = NULL;
    ck_assert_msg(lnet_context_create(NULL, &cx) == LNET_OK, "%s", lnet_last_error());
    ck_assert_msg(run_public(cx, "opencl:0", LNET_ALGORITHM_AUTO, q_want_o, q_want_l, err,
                             sizeof err) == 0,
                  "%s", err);
    lnet_context_free(cx);

    pthread_t th[Q_THREADS];
    pworker w[Q_THREADS];
    for (int t = 0; t < Q_THREADS; t++) {
        memset(&w[t], 0, sizeof w[t]);
        w[t].id = t;
        ck_assert(pthread_create(&th[t], NULL, public_worker, &w[t]) == 0);
    }
    for (int t = 0; t < Q_THREADS; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < Q_THREADS; t++)
        ck_assert_msg(!w[t].failed, "%s", w[t].err);
}
END_TEST

/* ------------------------------------------- create, run, free, repeat */

/* Resident memory in bytes (/proc/self/statm: pages, the second field);
 * 0 where it cannot be read. */
static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return n == 2 ? (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

#define CYCLES 100
#define CYCLES_WARM 10
/* Growth allowed from cycle 10 to cycle 100: the allocator's own slack and
 * PoCL's caches, well under the ~3 MB a cycle (270 MB over these 90) that
 * CLBlast's per-context program cache held before it was cleared. */
#define RSS_BOUND ((size_t)16 << 20)

/* What a binding does: a context created, one gemm run, the context freed,
 * CYCLES times; resident memory after the last cycle within RSS_BOUND of
 * what it was after cycle CYCLES_WARM (the first ones fill caches that stay:
 * PoCL's, the allocator's). */
START_TEST(create_free_cycles)
{
    uint64_t s = 9;
    for (size_t i = 0; i < Q4; i++) {
        qq[i] = (float)rng_real(&s, -1, 1);
        qk[i] = (float)rng_real(&s, -1, 1);
        qv[i] = (float)rng_real(&s, -1, 1);
    }
    float out[Q4], lse[Q3], first_o[Q4], first_l[Q3];
    char err[1024];
    size_t warm = 0;
    for (int cycle = 1; cycle <= CYCLES; cycle++) {
        lnet_context *cx = NULL;
        ck_assert_msg(lnet_context_create(NULL, &cx) == LNET_OK, "%s", lnet_last_error());
        ck_assert_msg(run_public(cx, "opencl:0", LNET_ALGORITHM_AUTO, out, lse, err,
                                 sizeof err) == 0,
                      "cycle %d: %s", cycle, err);
        lnet_context_free(cx);
        if (cycle == 1) {
            memcpy(first_o, out, sizeof out);
            memcpy(first_l, lse, sizeof lse);
        } else {
            ck_assert_msg(max_diff(out, first_o, Q4) == 0 && max_diff(lse, first_l, Q3) == 0,
                          "cycle %d: a result other than the first cycle's", cycle);
        }
        if (cycle == CYCLES_WARM)
            warm = rss_bytes();
    }
    const size_t last = rss_bytes();
    ck_assert_msg(warm > 0 && last > 0, "cannot read /proc/self/statm");
    printf("resident memory after cycle %d: %.1f MB, after cycle %d: %.1f MB (bound: +%zu MB)\n",
           CYCLES_WARM, warm / 1048576.0, CYCLES, last / 1048576.0, RSS_BOUND >> 20);
    fflush(stdout);
    ck_assert_msg(last <= warm + RSS_BOUND,
                  "%d create/run(gemm)/free cycles grew resident memory from %.1f MB (cycle %d) "
                  "to %.1f MB, more than %zu MB",
                  CYCLES, warm / 1048576.0, CYCLES_WARM, last / 1048576.0, RSS_BOUND >> 20);
}
END_TEST

/* ------------------------------------------------------------------ main */

static char cache_dir[256];

static void remove_cache(void)
{
    scratch_dir_remove(cache_dir);
}

int main(void)
{
    /* Two PoCL devices; ignored by other drivers. */
    setenv("POCL_DEVICES", "basic pthread", 0);
    if (scratch_dir_make("longnet-test-gemm", cache_dir, sizeof cache_dir))
        return 1;
    setenv("LONGNET_CACHE_DIR", cache_dir, 1);

    /* Kept for the whole run: it holds the module and its probed devices,
     * which the direct test opens. */
    lnet_context *ctx = NULL;
    if (lnet_context_create(NULL, &ctx) != LNET_OK) {
        printf("FAIL: lnet_context_create: %s\n", lnet_last_error());
        remove_cache();
        return 1;
    }
    int have_gemm;
    n_devices = opencl_devices(ctx, MAX_DEVICES, &have_gemm);
    if (n_devices == 0 || !have_gemm) {
        printf("SKIP: %s\n", n_devices == 0 ? "no OpenCL device"
                                            : "this build has no CLBlast (no gemm kernel)");
        lnet_context_free(ctx);
        remove_cache();
        return 77;
    }
    if (n_devices == 1)
        printf("one OpenCL device: its handles stand in for two devices\n");
    fflush(stdout);

    Suite *s = suite_create("opencl-gemm");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, create_free_cycles);
    tcase_add_test(tc, plugin_threads);
    tcase_add_test(tc, public_threads);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    /* One process: an OpenCL runtime does not survive fork(). */
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    lnet_context_free(ctx);
    remove_cache();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
