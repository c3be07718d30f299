#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* conform_harness.c — the conformance test's session and job harness; see
 * conform.h. It drives plugin tables as the core does: buffers allocated
 * and written, the job run, the device synchronized, the outputs read. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_util.h"
#include "conform.h"

/* ------------------------------------------------------------ reports */

void conform_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("        ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
}

void conform_fail(conform_session *s, const char *fmt, ...)
{
    /* The first few failures in full; the count says the rest. */
    s->failures++;
    if (s->failures > 12)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("        FAIL: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
}

void conform_step(const conform_session *s, const char *fmt, ...)
{
    if (s->t->step_fd < 0)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    /* A short pipe write is atomic; the parent keeps the last line. */
    if (write(s->t->step_fd, line, (size_t)n) < 0) {
        /* the report loses a detail, the check goes on */
    }
}

/* ------------------------------------------------------------ session */

/* The kernels of a description's comma list into s->kernels: all, or
 * only the first (the default) with --quick. */
static void session_kernels(conform_session *s)
{
    const char *p = s->desc.kernels;
    s->n_kernels = 0;
    while (*p && s->n_kernels < 8) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 0 && n < sizeof s->kernels[0]) {
            memcpy(s->kernels[s->n_kernels], p, n);
            s->kernels[s->n_kernels][n] = '\0';
            s->n_kernels++;
        }
        if (!end || s->t->quick)
            break;
        p = end + 1;
    }
    if (s->n_kernels == 0) {
        s->kernels[0][0] = '\0'; /* the device's default, unnamed */
        s->n_kernels = 1;
    }
}

/* The backend name of the module given with --plugin, into t. */
static int plugin_name(lnet_context *ctx, conform_target *t)
{
    for (int i = 0; i < lnet_context_plugin_count(ctx); i++) {
        lnet_plugin_info p;
        if (lnet_context_plugin(ctx, i, &p) != LNET_OK || !p.path ||
            strcmp(p.path, t->plugin_path) != 0)
            continue;
        if (!p.name) {
            conform_note("the module %s was refused: %s", p.path, p.reason);
            return -1;
        }
        snprintf(t->backend, sizeof t->backend, "%s", p.name);
        snprintf(t->spec, sizeof t->spec, "%s:%d", p.name, t->index);
        return 0;
    }
    conform_note("the module %s was not found", t->plugin_path);
    return -1;
}

int conform_open(conform_target *t, conform_session *s)
{
    memset(s, 0, sizeof *s);
    s->t = t;
    lnet_context_options o = {.size = sizeof o, .plugin_path = t->plugin_path};
    if (lnet_context_create(&o, &s->ctx) != LNET_OK) {
        conform_note("cannot create a context: %s", lnet_last_error());
        return -1;
    }
    if (!t->backend[0] && plugin_name(s->ctx, t) != 0) {
        conform_close(s);
        return -1;
    }
    if (lnet_context_plugin_table(s->ctx, t->backend, &s->dut) != LNET_OK ||
        lnet_context_plugin_table(s->ctx, "cpu", &s->ref) != LNET_OK) {
        conform_note("%s", lnet_last_error());
        conform_close(s);
        return -1;
    }
    int n = 0;
    for (int i = 0; i < lnet_context_device_count(s->ctx); i++) {
        lnet_device_info d;
        if (lnet_context_device(s->ctx, i, &d) == LNET_OK && strcmp(d.backend, t->backend) == 0)
            n++;
    }
    s->n_devices = n;
    if (t->index >= n) {
        conform_note("backend '%s' has %d device(s): there is no %s", t->backend, n, t->spec);
        conform_close(s);
        return -1;
    }
    s->desc.size = sizeof s->desc;
    int st = s->dut->describe(t->index, &s->desc);
    if (st) {
        conform_note("%s describe(%d) failed (%d): %s", t->backend, t->index, st,
                     s->dut->last_error());
        conform_close(s);
        return -1;
    }
    session_kernels(s);
    if ((st = s->dut->open(t->index, NULL, &s->dut_dev)) != 0 || !s->dut_dev) {
        conform_note("%s open(%d) failed (%d): %s", t->backend, t->index, st,
                     s->dut->last_error());
        conform_close(s);
        return -1;
    }
    if ((st = s->ref->open(0, NULL, &s->ref_dev)) != 0) {
        conform_note("the cpu reference does not open: %s", s->ref->last_error());
        conform_close(s);
        return -1;
    }
    return 0;
}

void conform_close(conform_session *s)
{
    if (s->dut_dev)
        s->dut->close(s->dut_dev);
    if (s->ref_dev)
        s->ref->close(s->ref_dev);
    lnet_context_free(s->ctx);
    s->dut_dev = s->ref_dev = NULL;
    s->ctx = NULL;
}

/* ------------------------------------------------------------- random */

uint64_t conform_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int64_t conform_rand_range(uint64_t *state, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(conform_rand(state) % (uint64_t)(hi - lo + 1));
}

double conform_rand_unit(uint64_t *state)
{
    return (double)(conform_rand(state) >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

/* --------------------------------------------------------------- cases */

static float *fill(size_t n, uint64_t *rng, double lo, double hi)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (p && rng)
        for (size_t i = 0; i < n; i++)
            p[i] = (float)(lo + (hi - lo) * (conform_rand_unit(rng) + 1.0) / 2.0);
    return p;
}

int conform_case_alloc(conform_case *c, int backward, uint64_t *rng)
{
    const lnet_segment_job *j = &c->job;
    const int64_t qr = LNET_PLUGIN_JOB_HAS_WINDOWS(j) ? j->q_rows : j->rows;
    const int64_t kr = LNET_PLUGIN_JOB_HAS_WINDOWS(j) ? j->kv_rows : j->rows;
    c->q_elems = (size_t)(j->batch * qr * j->heads * j->dim);
    c->kv_elems = (size_t)(j->batch * kr * j->heads * j->dim);
    c->lse_elems = (size_t)(j->batch * j->heads * qr);
    c->q = fill(c->q_elems, rng, -1, 1);
    c->k = fill(c->kv_elems, rng, -1, 1);
    c->v = fill(c->kv_elems, rng, -1, 1);
    c->out = fill(c->q_elems, rng, -1, 1);
    c->lse = fill(c->lse_elems, rng, 0, 2);
    int ok = c->q && c->k && c->v && c->out && c->lse;
    if (backward) {
        c->dout = fill(c->q_elems, rng, -1, 1);
        c->delta = fill(c->lse_elems, rng, -0.5, 0.5);
        c->dq = fill(c->q_elems, rng, -0.1, 0.1);
        c->dk = fill(c->kv_elems, rng, -0.1, 0.1);
        c->dv = fill(c->kv_elems, rng, -0.1, 0.1);
        ok = ok && c->dout && c->delta && c->dq && c->dk && c->dv;
    }
    if (!ok) {
        conform_case_free(c);
        return -1;
    }
    return 0;
}

void conform_case_free(conform_case *c)
{
    float **all[] = {&c->q, &c->k, &c->v, &c->out, &c->lse, &c->dout, &c->delta, &c->dq, &c->dk,
                     &c->dv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        free(*all[i]);
        *all[i] = NULL;
    }
}

static float *dup_floats(const float *src, size_t n, int *ok)
{
    if (!src)
        return NULL;
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p)
        *ok = 0;
    else
        memcpy(p, src, n * sizeof *p);
    return p;
}

int conform_case_copy(const conform_case *c, conform_case *copy)
{
    int ok = 1;
    *copy = *c;
    copy->q = dup_floats(c->q, c->q_elems, &ok);
    copy->k = dup_floats(c->k, c->kv_elems, &ok);
    copy->v = dup_floats(c->v, c->kv_elems, &ok);
    copy->out = dup_floats(c->out, c->q_elems, &ok);
    copy->lse = dup_floats(c->lse, c->lse_elems, &ok);
    copy->dout = dup_floats(c->dout, c->q_elems, &ok);
    copy->delta = dup_floats(c->delta, c->lse_elems, &ok);
    copy->dq = dup_floats(c->dq, c->q_elems, &ok);
    copy->dk = dup_floats(c->dk, c->kv_elems, &ok);
    copy->dv = dup_floats(c->dv, c->kv_elems, &ok);
    if (!ok) {
        conform_case_free(copy);
        return -1;
    }
    return 0;
}

void conform_describe_case(conform_case *c)
{
    const lnet_segment_job *j = &c->job;
    int n = snprintf(c->what, sizeof c->what,
                     "B=%lld N=%lld H=%lld D=%lld w=%lld r=%lld rows [%lld, %lld) %s %s "
                     "scale %.3g init %d",
                     (long long)j->batch, (long long)j->rows, (long long)j->heads,
                     (long long)j->dim, (long long)j->segment, (long long)j->dilation,
                     (long long)j->row_begin, (long long)j->row_end,
                     j->causal ? "causal" : "full",
                     j->offsets == LNET_PLUGIN_OFFSETS_GROUPED ? "grouped" : "interleaved",
                     (double)j->scale, j->init);
    if (n > 0 && (size_t)n < sizeof c->what && LNET_PLUGIN_JOB_HAS_WINDOWS(j))
        snprintf(c->what + n, sizeof c->what - (size_t)n, " q window [%lld, +%lld) kv [%lld, +%lld)",
                 (long long)j->q_base, (long long)j->q_rows, (long long)j->kv_base,
                 (long long)j->kv_rows);
}

/* ----------------------------------------------------------------- run */

enum { B_Q, B_K, B_V, B_OUT, B_LSE, B_DOUT, B_DELTA, B_DQ, B_DK, B_DV, N_BUF };

int conform_run(const lnet_plugin *table, void *dev, conform_case *c, const char *kernel,
                const char **msg)
{
    float *host[N_BUF] = {c->q, c->k, c->v, c->out, c->lse, c->dout, c->delta, c->dq, c->dk, c->dv};
    const size_t elems[N_BUF] = {c->q_elems, c->kv_elems, c->kv_elems, c->q_elems, c->lse_elems,
                                 c->q_elems, c->lse_elems, c->q_elems, c->kv_elems, c->kv_elems};
    const int backward = c->dq != NULL;
    void *buf[N_BUF] = {NULL};
    int st = 0;
    *msg = "";
    for (int i = 0; i < N_BUF && !st; i++) {
        if (!host[i])
            continue;
        const size_t bytes = elems[i] * sizeof(float);
        st = table->buffer_alloc(dev, bytes, &buf[i]);
        if (!st)
            st = table->buffer_write(dev, buf[i], 0, host[i], bytes);
    }
    if (!st) {
        lnet_segment_job job = c->job;
        job.kernel = kernel && kernel[0] ? kernel : NULL;
        job.q = buf[B_Q], job.k = buf[B_K], job.v = buf[B_V];
        job.out = buf[B_OUT], job.lse = buf[B_LSE];
        if (backward) {
            lnet_segment_backward_job bj = {.size = sizeof bj, .level = job, .dout = buf[B_DOUT],
                                            .delta = buf[B_DELTA], .dq = buf[B_DQ],
                                            .dk = buf[B_DK], .dv = buf[B_DV]};
            st = table->run_segment_backward ? table->run_segment_backward(dev, &bj)
                                             : LNET_PLUGIN_ERR_UNSUPPORTED;
        } else {
            st = table->run_segment(dev, &job);
        }
    }
    if (!st)
        st = table->synchronize(dev);
    /* Read back what the job writes: out and lse, or the gradients. */
    const int outs[] = {B_OUT, B_LSE, B_DQ, B_DK, B_DV};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0] && !st; i++) {
        const int b = outs[i];
        if (host[b] && (backward ? b >= B_DQ : b < B_DQ))
            st = table->buffer_read(dev, buf[b], 0, host[b], elems[b] * sizeof(float));
    }
    if (st) {
        const char *e = table->last_error();
        *msg = e ? e : "";
    }
    for (int i = 0; i < N_BUF; i++)
        if (buf[i])
            table->buffer_free(dev, buf[i]);
    return st;
}

/* The largest scaled difference of one array, and where. */
static void worst(const char *name, const float *x, const float *ref, size_t n, double *bad,
                  const char **bad_name, size_t *at, double *got, double *want)
{
    if (!x || !ref)
        return;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)x[i] - (double)ref[i]) / (1.0 + fabs((double)ref[i]));
        /* NaN where the reference has a number (or the reverse) is the
         * worst there is; both NaN agree (the same arithmetic). */
        const int nan_x = isnan(x[i]), nan_r = isnan(ref[i]);
        const double e = nan_x && nan_r ? 0.0 : nan_x || nan_r ? INFINITY
                         : (isinf(x[i]) && x[i] == ref[i]) ? 0.0 : d;
        if (e > *bad) {
            *bad = e;
            *bad_name = name;
            *at = i;
            *got = x[i];
            *want = ref[i];
        }
    }
}

int conform_compare(const conform_case *c, const conform_case *ref, char *why, size_t len)
{
    double bad = 0.0, got = 0.0, want = 0.0;
    const char *name = NULL;
    size_t at = 0;
    if (c->dq) {
        worst("dq", c->dq, ref->dq, c->q_elems, &bad, &name, &at, &got, &want);
        worst("dk", c->dk, ref->dk, c->kv_elems, &bad, &name, &at, &got, &want);
        worst("dv", c->dv, ref->dv, c->kv_elems, &bad, &name, &at, &got, &want);
    } else {
        worst("out", c->out, ref->out, c->q_elems, &bad, &name, &at, &got, &want);
        worst("lse", c->lse, ref->lse, c->lse_elems, &bad, &name, &at, &got, &want);
    }
    if (bad <= CONFORM_TOL)
        return 0;
    snprintf(why, len, "%s[%zu] = %.7g but the reference kernel gives %.7g (scaled error %.3g > %.1g)",
             name, at, got, want, bad, CONFORM_TOL);
    return -1;
}
