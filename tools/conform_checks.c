#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* conform_checks.c — the checks of `longnet test` (conform.h): each one
 * part of the plugin contract of longnet-plugin.h, run against the device
 * under test and compared with the CPU backend's reference kernel. Each
 * runs in its own process (cmd_test.c), prints its detail lines and
 * returns CONFORM_PASS, CONFORM_FAIL or CONFORM_SKIP. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "conform.h"
#include "golden.h"

#define GOLDEN_TOL 1e-4

/* ------------------------------------------------------------ helpers */

/* A random valid job of one level: shapes up to D = 256, ragged ends
 * (N not a multiple of the segment) in most of them, segments longer than
 * the sequence, partial row ranges, causal, both offset modes, any scale.
 * The head dim cycles through the list so that every one is met. */
static void random_job(const conform_session *s, uint64_t *rng, int i, lnet_segment_job *j)
{
    static const int64_t dims[] = {8, 256, 1, 16, 3, 64, 32, 128};
    memset(j, 0, sizeof *j);
    j->size = sizeof *j;
    j->dim = dims[i % 8];
    j->batch = conform_rand_range(rng, 1, 2);
    j->heads = conform_rand_range(rng, 1, j->dim >= 128 ? 2 : 5);
    const int64_t max_rows = s->t->quick || j->dim >= 128 ? 72 : 160;
    j->segment = conform_rand_range(rng, 1, max_rows / 2);
    const int64_t whole = conform_rand_range(rng, 1, 4);
    /* Three in four ragged: a last segment shorter than the others. */
    j->rows = whole * j->segment + (i % 4 != 3 && j->segment > 1
                                        ? conform_rand_range(rng, 1, j->segment - 1) : 0);
    if (i % 7 == 5)
        j->segment = j->rows + conform_rand_range(rng, 1, 50); /* longer than the sequence */
    const int64_t max_r = j->segment < 6 ? j->segment : 6;
    j->dilation = conform_rand_range(rng, 1, max_r);
    j->row_begin = 0;
    j->row_end = j->rows;
    if (i % 3 == 1) {
        j->row_begin = conform_rand_range(rng, 0, j->rows - 1);
        j->row_end = conform_rand_range(rng, j->row_begin + 1, j->rows);
    }
    j->causal = (int)conform_rand_range(rng, 0, 1);
    j->offsets = (int)conform_rand_range(rng, 0, 1);
    j->scale = (float)((0.25 + 1.25 * (conform_rand_unit(rng) + 1.0) / 2.0) / sqrt((double)j->dim));
    j->init = j->dilation == 1 && i % 2 == 0;
    j->dtype = LNET_PLUGIN_DTYPE_F32;
}

/* Row windows inside the sequence, and the row range inside the query
 * window (the scheduler's jobs on a chunk of the sequence). */
static void random_windows(uint64_t *rng, lnet_segment_job *j)
{
    j->q_base = conform_rand_range(rng, 0, j->rows - 1);
    j->q_rows = conform_rand_range(rng, 1, j->rows - j->q_base);
    j->kv_base = conform_rand_range(rng, 0, j->rows - 1);
    j->kv_rows = conform_rand_range(rng, 1, j->rows - j->kv_base);
    j->row_begin = conform_rand_range(rng, j->q_base, j->q_base + j->q_rows - 1);
    j->row_end = conform_rand_range(rng, j->row_begin + 1, j->q_base + j->q_rows);
    j->init = 0; /* init needs every query's own row in the K/V window */
}

/* Whether the device says it supports the job; 1 without the slot. A
 * refusal must come with a message. */
static int dut_supports(conform_session *s, const lnet_segment_job *job, const char *kernel,
                        const char **msg)
{
    *msg = "";
    if (!s->dut->supports)
        return 1;
    lnet_segment_job j = *job;
    j.kernel = kernel && kernel[0] ? kernel : NULL;
    j.q = j.k = j.v = j.out = j.lse = NULL;
    const int yes = s->dut->supports(s->dut_dev, &j);
    if (!yes) {
        const char *e = s->dut->last_error();
        *msg = e ? e : "";
    }
    return yes;
}

typedef struct tally {
    int run, refused, failed;
} tally;

/* Runs case c on the device under test with `kernel` and on the
 * reference, and compares: the one step every correctness check shares.
 * supports() is asked first: a job it refuses is counted, not run; a job
 * it accepts must run and agree. c's arrays become the device's answer. */
static void run_and_compare(conform_session *s, conform_case *c, const char *kernel, tally *t)
{
    conform_describe_case(c);
    conform_step(s, "%s, kernel %s", c->what, kernel[0] ? kernel : "(default)");
    const char *msg;
    if (!dut_supports(s, &c->job, kernel, &msg)) {
        t->refused++;
        if (!msg[0]) {
            t->failed++;
            conform_fail(s, "supports() refused %s without a message (last_error is empty)",
                         c->what);
        }
        return;
    }
    conform_case ref;
    if (conform_case_copy(c, &ref)) {
        t->failed++;
        conform_fail(s, "out of memory");
        return;
    }
    t->run++;
    int st = conform_run(s->ref, s->ref_dev, &ref, "reference", &msg);
    if (st) {
        /* Every valid job must run there: without it nothing is checked
         * (a --plugin module named "cpu" that lacks the reference kernel). */
        t->failed++;
        conform_fail(s, "the cpu reference kernel refused %s: %s", c->what, msg);
        conform_case_free(&ref);
        return;
    }
    st = conform_run(s->dut, s->dut_dev, c, kernel, &msg);
    char why[512];
    if (st) {
        t->failed++;
        conform_fail(s, "%s kernel %s: supports() accepted it but %s failed (%d): %s", c->what,
                     kernel[0] ? kernel : "(default)",
                     c->dq ? "run_segment_backward" : "run_segment", st, msg);
    } else if (conform_compare(c, &ref, why, sizeof why)) {
        t->failed++;
        conform_fail(s, "%s kernel %s: %s", c->what, kernel[0] ? kernel : "(default)", why);
    }
    conform_case_free(&ref);
}

static int tally_verdict(conform_session *s, const tally *t, const char *what)
{
    conform_note("%d %s run and compared, %d refused by supports(), %d failed", t->run, what,
                 t->refused, t->failed);
    if (t->failed == 0 && t->run == 0) {
        conform_fail(s, "supports() refused every %s: nothing was checked", what);
        return CONFORM_FAIL;
    }
    return t->failed || s->failures ? CONFORM_FAIL : CONFORM_PASS;
}

/* ---------------------------------------------------------- describe */

static int check_describe(conform_session *s)
{
    const lnet_plugin *p = s->dut;
    const lnet_plugin_device_desc *d = &s->desc;
    static const char *const kinds[] = {"cpu", "gpu", "accelerator", "fpga", "other"};
    int kind_ok = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        kind_ok |= strcmp(d->kind, kinds[i]) == 0;
    conform_note("%s: ABI %u, table %u bytes, %d device(s); %s: \"%s\", kind %s, kernels %s%s",
                 p->name, p->abi_version, p->size, s->n_devices, s->t->spec, d->name, d->kind,
                 d->kernels[0] ? d->kernels : "(none)",
                 d->caps & LNET_PLUGIN_CAP_WINDOWS ? ", row windows" : "");
    conform_note("optional slots: wrap_host %s, write_async %s, supports %s, backward %s, "
                 "score %s",
                 p->buffer_wrap_host ? "yes" : "no", p->buffer_write_async ? "yes" : "no",
                 p->supports ? "yes" : "no", p->run_segment_backward ? "yes" : "no",
                 p->score ? "yes" : "no");
    if (!d->name[0])
        conform_fail(s, "describe() leaves the device name empty");
    if (!kind_ok)
        conform_fail(s, "describe() gives kind '%s' (cpu, gpu, accelerator, fpga or other)", d->kind);
    if (!d->kernels[0])
        conform_fail(s, "describe() lists no kernel");
    if (d->caps & ~LNET_PLUGIN_CAP_WINDOWS)
        conform_fail(s, "describe() sets unknown caps bits 0x%x", d->caps & ~LNET_PLUGIN_CAP_WINDOWS);
    lnet_plugin_device_desc bad = {.size = sizeof bad};
    if (p->describe(s->n_devices, &bad) == 0)
        conform_fail(s, "describe(%d) succeeds, but the plugin has %d device(s)", s->n_devices,
                     s->n_devices);
    else if (!p->last_error() || !p->last_error()[0])
        conform_fail(s, "describe(%d) fails without a message", s->n_devices);
    return s->failures ? CONFORM_FAIL : CONFORM_PASS;
}

/* ------------------------------------------------------------ golden */

static int check_golden(conform_session *s)
{
    if (!s->t->golden_dir) {
        conform_note("no golden cases: give --golden DIR or set LONGNET_GOLDEN_DIR (the folder "
                     "holding cases.tsv)");
        return CONFORM_SKIP;
    }
    golden_set set;
    char err[4400];
    if (golden_load(s->t->golden_dir, &set, err, sizeof err)) {
        conform_fail(s, "%s", err);
        return CONFORM_FAIL;
    }
    double worst_out = 0, worst_lse = 0;
    int runs = 0;
    for (int k = 0; k < s->n_kernels; k++)
        for (int i = 0; i < set.n; i++) {
            const golden_case *c = &set.cases[i];
            const char *kernel = s->kernels[k][0] ? s->kernels[k] : NULL;
            conform_step(s, "golden case %s, kernel %s", c->name, kernel ? kernel : "(default)");
            golden_result r;
            if (golden_run_case(s->ctx, &set, c, s->t->spec, kernel, &r, err, sizeof err)) {
                conform_fail(s, "%s", err);
                continue;
            }
            runs++;
            if (r.out_err > worst_out)
                worst_out = r.out_err;
            if (r.lse_err > worst_lse)
                worst_lse = r.lse_err;
            if (!(r.out_err <= GOLDEN_TOL && r.lse_err <= GOLDEN_TOL))
                conform_fail(s, "case %s kernel %s: max |out err| %.3g, max |lse err| %.3g (tol %g)",
                             c->name, kernel ? kernel : "(default)", r.out_err, r.lse_err,
                             GOLDEN_TOL);
        }
    conform_note("%d case run(s) of %d case(s) in %s: max |out err| %.3g, max |lse err| %.3g",
                 runs, set.n, set.dir, worst_out, worst_lse);
    golden_free(&set);
    return s->failures ? CONFORM_FAIL : CONFORM_PASS;
}

/* ----------------------------------------------------------- random */

/* Random configurations: one to three levels folded one after the other
 * into the same (O, LSE), as the core runs them, each level compared. */
static int check_random(conform_session *s)
{
    uint64_t rng = s->t->seed;
    const int n = s->t->quick ? 10 : 40;
    tally t = {0, 0, 0};
    for (int k = 0; k < s->n_kernels; k++)
        for (int i = 0; i < n; i++) {
            conform_case c = {0};
            random_job(s, &rng, i, &c.job);
            if (conform_case_alloc(&c, 0, &rng)) {
                conform_fail(s, "out of memory");
                return CONFORM_FAIL;
            }
            const int levels = (int)conform_rand_range(&rng, 1, 3);
            for (int l = 0; l < levels; l++) {
                if (l > 0) {
                    /* The next level on the same rows: a longer segment,
                     * another dilation, folded (init = 0). */
                    c.job.segment = c.job.segment * conform_rand_range(&rng, 2, 3);
                    const int64_t max_r = c.job.segment < 8 ? c.job.segment : 8;
                    c.job.dilation = conform_rand_range(&rng, 1, max_r);
                    c.job.init = 0;
                }
                const int before = t.failed;
                run_and_compare(s, &c, s->kernels[k], &t);
                if (t.failed > before)
                    break;
            }
            conform_case_free(&c);
        }
    return tally_verdict(s, &t, "level(s)");
}

/* ---------------------------------------------------------- windows */

static int check_windows(conform_session *s)
{
    if (!(s->desc.caps & LNET_PLUGIN_CAP_WINDOWS)) {
        conform_note("the device does not claim row windows (LNET_PLUGIN_CAP_WINDOWS): the "
                     "scheduler never sends it a windowed job");
        return CONFORM_SKIP;
    }
    uint64_t rng = s->t->seed ^ 0x77;
    const int n = s->t->quick ? 8 : 30;
    tally t = {0, 0, 0};
    for (int k = 0; k < s->n_kernels; k++)
        for (int i = 0; i < n; i++) {
            conform_case c = {0};
            random_job(s, &rng, i, &c.job);
            random_windows(&rng, &c.job);
            if (conform_case_alloc(&c, 0, &rng)) {
                conform_fail(s, "out of memory");
                return CONFORM_FAIL;
            }
            run_and_compare(s, &c, s->kernels[k], &t);
            conform_case_free(&c);
        }
    return tally_verdict(s, &t, "windowed job(s)");
}

/* --------------------------------------------------------- bad jobs */

/* A small valid job, for the bad ones to spoil one field each. */
static void base_job(lnet_segment_job *j)
{
    memset(j, 0, sizeof *j);
    j->size = sizeof *j;
    j->batch = 1, j->rows = 24, j->heads = 2, j->dim = 8;
    j->row_begin = 0, j->row_end = 24;
    j->segment = 8, j->dilation = 1, j->init = 1;
    j->scale = 0.35f;
}

typedef struct bad_job {
    const char *what;
    void (*spoil)(lnet_segment_job *j);
    int windows; /* 1: only for a device that claims row windows */
} bad_job;

static void spoil_batch(lnet_segment_job *j) { j->batch = 0; }
static void spoil_dim(lnet_segment_job *j) { j->dim = -8; }
static void spoil_row_end(lnet_segment_job *j) { j->row_end = j->rows + 1; }
static void spoil_row_range(lnet_segment_job *j) { j->row_begin = 10, j->row_end = 5; }
static void spoil_segment(lnet_segment_job *j) { j->segment = 0; }
static void spoil_dilation(lnet_segment_job *j) { j->dilation = j->segment + 1, j->init = 0; }
static void spoil_init(lnet_segment_job *j) { j->dilation = 2; }
static void spoil_causal(lnet_segment_job *j) { j->causal = 2; }
static void spoil_offsets(lnet_segment_job *j) { j->offsets = 7; }
static void spoil_scale(lnet_segment_job *j) { j->scale = NAN; }
static void spoil_size(lnet_segment_job *j) { j->size = 8; }
static void spoil_shape(lnet_segment_job *j) { j->rows *= 4, j->row_end = j->rows; }
static void spoil_kernel(lnet_segment_job *j) { j->kernel = "longnet-test-no-such-kernel"; }
static void spoil_dtype(lnet_segment_job *j) { j->dtype = LNET_PLUGIN_DTYPE_F16; }
static void spoil_window(lnet_segment_job *j)
{
    j->q_base = 20, j->q_rows = 10, j->kv_base = 0, j->kv_rows = 24, j->init = 0;
}
static void spoil_window_rows(lnet_segment_job *j)
{
    j->q_base = 0, j->q_rows = 8, j->kv_base = 0, j->kv_rows = 24, j->init = 0;
    j->row_begin = 4, j->row_end = 16;
}

static const bad_job bad_jobs[] = {
    {"batch = 0", spoil_batch, 0},
    {"dim = -8", spoil_dim, 0},
    {"row_end past the rows", spoil_row_end, 0},
    {"row_begin > row_end", spoil_row_range, 0},
    {"segment = 0", spoil_segment, 0},
    {"dilation > segment", spoil_dilation, 0},
    {"init = 1 with dilation 2", spoil_init, 0},
    {"causal = 2", spoil_causal, 0},
    {"offsets mode 7", spoil_offsets, 0},
    {"scale = NaN", spoil_scale, 0},
    {"job size 8 bytes", spoil_size, 0},
    {"buffers smaller than the job's shape", spoil_shape, 0},
    {"an unknown kernel", spoil_kernel, 0},
    {"float16 elements", spoil_dtype, 0},
    {"a query window past the rows", spoil_window, 1},
    {"rows outside the query window", spoil_window_rows, 1},
};

static int check_bad_jobs(conform_session *s)
{
    uint64_t rng = s->t->seed ^ 0xbad;
    int refused = 0;
    for (size_t i = 0; i < sizeof bad_jobs / sizeof bad_jobs[0]; i++) {
        const bad_job *b = &bad_jobs[i];
        if (b->windows && !(s->desc.caps & LNET_PLUGIN_CAP_WINDOWS))
            continue;
        conform_case c = {0};
        base_job(&c.job);
        if (b->windows)
            spoil_window_rows(&c.job); /* buffers of an 8-row window */
        if (conform_case_alloc(&c, 0, &rng)) {
            conform_fail(s, "out of memory");
            return CONFORM_FAIL;
        }
        b->spoil(&c.job);
        conform_step(s, "bad job: %s", b->what);
        const char *msg;
        const char *kernel = c.job.kernel ? c.job.kernel : "";
        if (b->spoil == spoil_kernel || b->spoil == spoil_dtype) {
            /* supports() must say no to what run_segment refuses, and
             * yes only to what it runs. */
            const char *smsg;
            const int yes = dut_supports(s, &c.job, kernel, &smsg);
            const int st = conform_run(s->dut, s->dut_dev, &c, kernel, &msg);
            if (yes && st)
                conform_fail(s, "%s: supports() says yes but run_segment fails (%d): %s", b->what,
                             st, msg);
            else if (!yes && !st)
                conform_fail(s, "%s: supports() says no (%s) but run_segment runs it", b->what,
                             smsg);
            else if (!yes && !smsg[0])
                conform_fail(s, "%s: supports() says no without a message", b->what);
            else if (st && !msg[0])
                conform_fail(s, "%s: refused without a message (last_error is empty)", b->what);
            else if (st)
                refused++;
            if (st)
                conform_note("%-38s refused (%d): %s", b->what, st, msg);
            conform_case_free(&c);
            continue;
        }
        const int st = conform_run(s->dut, s->dut_dev, &c, kernel, &msg);
        if (st == 0)
            conform_fail(s, "%s: run_segment accepted it (returned 0)", b->what);
        else if (!msg[0])
            conform_fail(s, "%s: refused (%d) without a message (last_error is empty)", b->what, st);
        else {
            refused++;
            conform_note("%-38s refused (%d): %s", b->what, st, msg);
        }
        conform_case_free(&c);
    }
    /* Bad calls of the other slots, then a good job: the device must still
     * answer right after all of that. */
    void *buf = NULL;
    char bytes[64] = {0};
    const char *e;
    if (s->dut->buffer_alloc(s->dut_dev, 16, &buf) == 0 && buf) {
        if (s->dut->buffer_write(s->dut_dev, buf, 8, bytes, 16) == 0)
            conform_fail(s, "buffer_write of 16 bytes at offset 8 of a 16-byte buffer succeeds");
        else if (!(e = s->dut->last_error()) || !e[0])
            conform_fail(s, "buffer_write past the end fails without a message");
        if (s->dut->buffer_read(s->dut_dev, buf, 0, bytes, 17) == 0)
            conform_fail(s, "buffer_read of 17 bytes from a 16-byte buffer succeeds");
        s->dut->buffer_free(s->dut_dev, buf);
    } else {
        conform_fail(s, "buffer_alloc of 16 bytes fails: %s", s->dut->last_error());
    }
    tally t = {0, 0, 0};
    conform_case c = {0};
    base_job(&c.job);
    if (conform_case_alloc(&c, 0, &rng) == 0) {
        run_and_compare(s, &c, s->kernels[0], &t);
        conform_case_free(&c);
    }
    conform_note("%d bad job(s) refused with a message; a good job after them: %s", refused,
                 t.failed ? "WRONG" : t.run ? "right" : "refused by supports()");
    return s->failures ? CONFORM_FAIL : CONFORM_PASS;
}

/* ----------------------------------------------------- two devices */

typedef struct device_thread {
    conform_session *s;
    void *dev;
    conform_case c;
    int st;
    const char *msg;
    char msg_copy[256];
} device_thread;

static void *run_on_device(void *arg)
{
    device_thread *d = arg;
    d->st = conform_run(d->s->dut, d->dev, &d->c, d->s->kernels[0], &d->msg);
    /* last_error is per thread: keep the text before the thread ends. */
    snprintf(d->msg_copy, sizeof d->msg_copy, "%s", d->st ? d->msg : "");
    return NULL;
}

/* The public API on `devices` (a device list) for a fixed configuration,
 * into out and lse; 0 or -1 with the message printed as a failure. */
static int api_forward(conform_session *s, const char *devices, const char *kernel,
                       lnet_tensor *const in[3], lnet_tensor *out, lnet_tensor *lse)
{
    lnet_config *cfg = NULL;
    int rc = -1;
    if (lnet_config_create(&cfg) == LNET_OK &&
        lnet_config_parse_levels(cfg, "16,32,80", "1,2,4") == LNET_OK &&
        lnet_config_set_causal(cfg, 1) == LNET_OK) {
        lnet_run_options o = {.size = sizeof o, .device = devices, .kernel = kernel};
        if (lnet_attention_forward(s->ctx, cfg, in[0], in[1], in[2], out, lse, &o) == LNET_OK)
            rc = 0;
    }
    if (rc)
        conform_fail(s, "lnet_attention_forward on %s: %s", devices, lnet_last_error());
    lnet_config_free(cfg);
    return rc;
}

static double tensor_err(const lnet_tensor *a, const lnet_tensor *b)
{
    const float *x = lnet_tensor_cdata(a), *y = lnet_tensor_cdata(b);
    double m = 0;
    for (size_t i = 0; i < lnet_tensor_numel(a); i++) {
        const double d = fabs((double)x[i] - (double)y[i]) / (1.0 + fabs((double)y[i]));
        if (!(d <= m))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

static int check_two_devices(conform_session *s)
{
    /* Two handles at once, driven from two threads: a second device of the
     * plugin when it has one, else the same device opened twice. */
    const int other = s->n_devices > 1 ? (s->t->index + 1) % s->n_devices : s->t->index;
    void *second = NULL;
    int st = s->dut->open(other, NULL, &second);
    if (st || !second) {
        conform_fail(s, "open(%d) with %s:%d open already fails (%d): %s", other, s->t->backend,
                     s->t->index, st, s->dut->last_error());
        return CONFORM_FAIL;
    }
    uint64_t rng = s->t->seed ^ 0x2d;
    device_thread d[2] = {{.s = s, .dev = s->dut_dev}, {.s = s, .dev = second}};
    const int rounds = s->t->quick ? 3 : 10;
    for (int r = 0; r < rounds; r++) {
        lnet_segment_job job;
        random_job(s, &rng, r, &job);
        d[0].c = (conform_case){.job = job};
        if (conform_case_alloc(&d[0].c, 0, &rng) || conform_case_copy(&d[0].c, &d[1].c)) {
            conform_fail(s, "out of memory");
            break;
        }
        conform_case ref = {0};
        const char *msg = "out of memory";
        conform_describe_case(&d[0].c);
        conform_step(s, "two devices at once: %s", d[0].c.what);
        if (conform_case_copy(&d[0].c, &ref) == 0 &&
            conform_run(s->ref, s->ref_dev, &ref, "reference", &msg) == 0) {
            pthread_t th[2];
            int started[2];
            for (int i = 0; i < 2; i++)
                started[i] = pthread_create(&th[i], NULL, run_on_device, &d[i]) == 0;
            for (int i = 0; i < 2; i++) {
                if (started[i])
                    pthread_join(th[i], NULL);
                else
                    run_on_device(&d[i]);
                char why[512];
                if (d[i].st)
                    conform_fail(s, "%s on device %d beside another: failed (%d): %s",
                                 d[0].c.what, i ? other : s->t->index, d[i].st, d[i].msg_copy);
                else if (conform_compare(&d[i].c, &ref, why, sizeof why))
                    conform_fail(s, "%s on device %d beside another: %s", d[0].c.what,
                                 i ? other : s->t->index, why);
            }
        } else {
            conform_fail(s, "the cpu reference kernel refused %s: %s", d[0].c.what, msg);
        }
        conform_case_free(&ref);
        conform_case_free(&d[0].c);
        conform_case_free(&d[1].c);
    }
    s->dut->close(second);

    /* Through the library: the sequence split over two devices of the
     * plugin equals one device's answer and the reference's. */
    char two[200];
    snprintf(two, sizeof two, "%s,%s:%d", s->t->spec, s->t->backend, other);
    const int64_t shape[4] = {1, 160, 2, 16}, lse_shape[3] = {1, 2, 160};
    lnet_tensor *in[3] = {NULL}, *out[3] = {NULL}, *lse[3] = {NULL};
    int ok = 1;
    for (int i = 0; i < 3 && ok; i++) {
        ok = lnet_tensor_create(4, shape, &in[i]) == LNET_OK &&
             lnet_tensor_create(4, shape, &out[i]) == LNET_OK &&
             lnet_tensor_create(3, lse_shape, &lse[i]) == LNET_OK;
        for (size_t e = 0; ok && e < lnet_tensor_numel(in[i]); e++)
            lnet_tensor_data(in[i])[e] = (float)conform_rand_unit(&rng);
    }
    /* Without row windows a device cannot share a sequence (the planner
     * refuses such a list): the one-device run stands in for the split. */
    const int split = (s->desc.caps & LNET_PLUGIN_CAP_WINDOWS) != 0;
    if (!split) {
        snprintf(two, sizeof two, "%s", s->t->spec);
        conform_note("no row windows: the library is not asked to split a sequence over two "
                     "devices of the plugin");
    }
    conform_step(s, "the library on %s", two);
    if (ok && api_forward(s, "cpu", "reference", in, out[0], lse[0]) == 0 &&
        api_forward(s, s->t->spec, NULL, in, out[1], lse[1]) == 0 &&
        api_forward(s, two, NULL, in, out[2], lse[2]) == 0) {
        const double e1 = fmax(tensor_err(out[1], out[0]), tensor_err(lse[1], lse[0]));
        const double e2 = fmax(tensor_err(out[2], out[1]), tensor_err(lse[2], lse[1]));
        conform_note("the library: %s against the reference %.3g, %s against %s %.3g (tol %.1g)",
                     s->t->spec, e1, two, s->t->spec, e2, CONFORM_TOL);
        if (!(e1 <= CONFORM_TOL))
            conform_fail(s, "lnet_attention_forward on %s differs from the reference by %.3g",
                         s->t->spec, e1);
        if (!(e2 <= CONFORM_TOL))
            conform_fail(s, "lnet_attention_forward on %s differs from %s alone by %.3g", two,
                         s->t->spec, e2);
    } else if (!ok) {
        conform_fail(s, "out of memory");
    }
    for (int i = 0; i < 3; i++) {
        lnet_tensor_free(in[i]);
        lnet_tensor_free(out[i]);
        lnet_tensor_free(lse[i]);
    }
    return s->failures ? CONFORM_FAIL : CONFORM_PASS;
}

/* ------------------------------------------------------- open/close */

static int check_open_close(conform_session *s)
{
    const int rounds = s->t->quick ? 5 : 25;
    uint64_t rng = s->t->seed ^ 0x0c;
    tally t = {0, 0, 0};
    for (int r = 0; r < rounds; r++) {
        conform_step(s, "open/close round %d", r + 1);
        void *dev = NULL;
        int st = s->dut->open(s->t->index, r % 2 ? "" : NULL, &dev);
        if (st || !dev) {
            conform_fail(s, "round %d: open(%d) fails (%d): %s", r + 1, s->t->index, st,
                         s->dut->last_error());
            break;
        }
        void *keep = s->dut_dev;
        s->dut_dev = dev;
        conform_case c = {0};
        base_job(&c.job);
        c.job.dim = 16;
        if (conform_case_alloc(&c, 0, &rng) == 0) {
            run_and_compare(s, &c, s->kernels[0], &t);
            conform_case_free(&c);
        }
        s->dut_dev = keep;
        s->dut->close(dev);
    }
    void *dev = NULL;
    const char *bad = "longnet_test_no_such_option=1";
    if (s->dut->open(s->t->index, bad, &dev) == 0) {
        conform_fail(s, "open with the unknown device option \"%s\" succeeds (a typo would pass "
                     "unnoticed)", bad);
        if (dev)
            s->dut->close(dev);
    } else if (!s->dut->last_error() || !s->dut->last_error()[0]) {
        conform_fail(s, "open with an unknown device option fails without a message");
    } else {
        conform_note("unknown option refused: %s", s->dut->last_error());
    }
    if (s->dut->open(s->n_devices, NULL, &dev) == 0) {
        conform_fail(s, "open(%d) succeeds, but the plugin has %d device(s)", s->n_devices,
                     s->n_devices);
        if (dev)
            s->dut->close(dev);
    }
    conform_note("%d open/run/close round(s), %d wrong", t.run, t.failed);
    return s->failures ? CONFORM_FAIL : CONFORM_PASS;
}

/* --------------------------------------------------------- backward */

static int check_backward(conform_session *s)
{
    if (!s->dut->run_segment_backward) {
        conform_note("the plugin has no run_segment_backward slot (forward only)");
        return CONFORM_SKIP;
    }
    uint64_t rng = s->t->seed ^ 0xb4;
    const int n = s->t->quick ? 8 : 30;
    const int windows = (s->desc.caps & LNET_PLUGIN_CAP_WINDOWS) != 0;
    tally t = {0, 0, 0};
    for (int k = 0; k < s->n_kernels; k++)
        for (int i = 0; i < n; i++) {
            conform_case c = {0};
            random_job(s, &rng, i, &c.job);
            if (windows && i % 3 == 2)
                random_windows(&rng, &c.job);
            if (conform_case_alloc(&c, 1, &rng)) {
                conform_fail(s, "out of memory");
                return CONFORM_FAIL;
            }
            /* A real LSE: the level's own forward from no branch yet,
             * into c's own out and lse (the backward reads only lse). */
            conform_describe_case(&c);
            for (size_t e = 0; e < c.lse_elems; e++)
                c.lse[e] = -INFINITY;
            conform_case fwd = c;
            fwd.dout = fwd.delta = fwd.dq = fwd.dk = fwd.dv = NULL;
            fwd.job.init = 0;
            const char *msg;
            if (conform_run(s->ref, s->ref_dev, &fwd, "reference", &msg)) {
                conform_fail(s, "the cpu reference kernel refused %s: %s", c.what, msg);
                conform_case_free(&c);
                continue;
            }
            run_and_compare(s, &c, s->kernels[k], &t);
            conform_case_free(&c);
        }
    return tally_verdict(s, &t, "backward job(s)");
}

/* ------------------------------------------------------------ the list */

const conform_check conform_checks[] = {
    {"describe", "the table and the device's description", check_describe},
    {"golden", "every golden case through the library", check_golden},
    {"random", "random configurations against the reference kernel", check_random},
    {"windows", "row windows against the reference kernel", check_windows},
    {"bad-jobs", "bad jobs and calls refused with messages", check_bad_jobs},
    {"two-devices", "two devices of the plugin at once", check_two_devices},
    {"open-close", "repeated open and close; bad options", check_open_close},
    {"backward", "run_segment_backward against the reference kernel", check_backward},
    {NULL, NULL, NULL},
};
