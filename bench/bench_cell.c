#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_cell.c — one cell of the matrix: its timing child (warm-up, then
 * --repeat timed runs of lnet_attention_forward, or for a backward cell of
 * lnet_attention_backward with the forward's saved O and LSE, computed once
 * untimed), its error check against the CPU reference kernel on a small
 * instance of the same configuration and pass (a backward compares dQ, dK
 * and dV), and its plan (--explain: lnet_attention_explain, or
 * lnet_attention_explain_backward for a backward cell; nothing run).
 *
 * All three run in forked children (bench_child.c). The reference output of each
 * small instance is computed once per bench run and kept in a temporary
 * .npy file, so that comparing several devices costs one reference run, and
 * the parent never holds it in memory (a child inherits the parent's pages,
 * which would count in every later cell's peak).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli_util.h"

/* -------------------------------------------------------------- the child */

typedef struct cell_job {
    const bench_cell *cell;
    const char *device;   /* spec */
    const char *kernel;
    const char *save_to;  /* error check: write O (dQ, dK, dV) here (the reference) */
    int save_inputs;      /* and Q, K, V beside it (bench_check_input_path), for --peer */
    const char *compare_with; /* error check: max |O - this| (of dQ, dK, dV) */
    int64_t length;       /* overrides cell->length (the small instance) */
    const bench_levels *levels;
    int64_t batch;
} cell_job;

typedef struct cell_answer {
    int ok;
    int n;
    double ms[BENCH_MAX_REPEAT];
    double max_abs_err;
    char message[BENCH_TEXT_LEN];
} cell_answer;

/* Inputs in [-1, 1) from a fixed xorshift stream: the same bytes in every
 * child, so the reference and the device see identical Q, K, V. */
void bench_fill(lnet_tensor *t, uint64_t seed)
{
    float *p = lnet_tensor_data(t);
    size_t n = lnet_tensor_numel(t);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (float)((double)(x >> 40) / (double)(1ull << 23) - 1.0);
    }
}

static int answer_error(cell_answer *a, int fd, const char *what)
{
    a->ok = 0;
    snprintf(a->message, sizeof a->message, "%s%s%s", what ? what : "",
             what ? ": " : "", lnet_last_error());
    bench_write_all(fd, a, sizeof *a);
    return 0;
}

/* The cell's configuration with these levels (its own, or the error
 * check's capped ones); nonzero with lnet_last_error() set. */
int bench_cell_config(const bench_cell *c, const bench_levels *levels, lnet_config **cfg)
{
    char w[BENCH_TEXT_LEN], r[BENCH_TEXT_LEN];
    bench_levels_lists(levels, w, r, sizeof w);
    return lnet_config_create(cfg) || lnet_config_parse_levels(*cfg, w, r) ||
           lnet_config_set_causal(*cfg, c->causal) ||
           lnet_config_set_offsets(*cfg, c->offsets) || lnet_config_validate(*cfg, c->dim);
}

static int cell_child(void *arg, int fd)
{
    const cell_job *job = arg;
    const bench_cell *c = job->cell;
    static cell_answer a;
    memset(&a, 0, sizeof a);
    lnet_context *ctx = NULL;
    lnet_config *cfg = NULL;
    lnet_tensor *t[4] = { NULL, NULL, NULL, NULL };
    lnet_tensor *lse = NULL, *dout = NULL, *grads = NULL, *d[3] = { NULL, NULL, NULL };

    if (lnet_context_create(NULL, &ctx) || bench_cell_config(c, job->levels, &cfg))
        return answer_error(&a, fd, NULL);
    int64_t shape[4] = { job->batch, job->length, c->heads, c->dim };
    for (int i = 0; i < 4; i++)
        if (lnet_tensor_create(4, shape, &t[i]))
            return answer_error(&a, fd, "allocating Q, K, V, O");
    for (int i = 0; i < 3; i++)
        bench_fill(t[i], (uint64_t)i + 1);
    lnet_run_options ro = { .size = sizeof ro, .device = job->device, .kernel = job->kernel };
    if (c->backward) {
        /* dQ, dK, dV are thirds of one [3, B, N, H, D] tensor: one file
         * for the error check's reference. */
        int64_t lse_shape[3] = { job->batch, c->heads, job->length };
        int64_t grads_shape[5] = { 3, job->batch, job->length, c->heads, c->dim };
        if (lnet_tensor_create(3, lse_shape, &lse) || lnet_tensor_create(4, shape, &dout) ||
            lnet_tensor_create(5, grads_shape, &grads))
            return answer_error(&a, fd, "allocating LSE, dO, dQ, dK, dV");
        bench_fill(dout, 4);
        for (int i = 0; i < 3; i++)
            if (lnet_tensor_wrap(lnet_tensor_data(grads) + (size_t)i * lnet_tensor_numel(dout), 4,
                                 shape, &d[i]))
                return answer_error(&a, fd, "allocating dQ, dK, dV");
        /* The forward's O and LSE, saved as training keeps them: untimed. */
        if (lnet_attention_forward(ctx, cfg, t[0], t[1], t[2], t[3], lse, &ro))
            return answer_error(&a, fd, "the forward before the backward");
    }

    int runs = job->save_to || job->compare_with ? 1 : c->warmups + c->repeats;
    for (int i = 0; i < runs; i++) {
        double t0 = bench_now();
        if (c->backward ? lnet_attention_backward(ctx, cfg, t[0], t[1], t[2], t[3], lse, dout,
                                                  d[0], d[1], d[2], &ro)
                        : lnet_attention_forward(ctx, cfg, t[0], t[1], t[2], t[3], NULL, &ro))
            return answer_error(&a, fd, NULL);
        if (i >= runs - c->repeats)
            a.ms[a.n++] = (bench_now() - t0) * 1e3;
    }
    const lnet_tensor *result = c->backward ? grads : t[3];
    if (job->save_to && lnet_npy_save(job->save_to, result))
        return answer_error(&a, fd, NULL);
    for (int i = 0; job->save_to && job->save_inputs && i < 3; i++) {
        char path[4096 + 8];
        bench_check_input_path(job->save_to, i, path, sizeof path);
        if (lnet_npy_save(path, t[i]))
            return answer_error(&a, fd, NULL);
    }
    if (job->compare_with) {
        lnet_tensor *ref = NULL;
        if (lnet_npy_load(job->compare_with, &ref))
            return answer_error(&a, fd, NULL);
        const float *x = lnet_tensor_cdata(result), *y = lnet_tensor_cdata(ref);
        double worst = 0;
        for (size_t i = 0, n = lnet_tensor_numel(ref); i < n; i++) {
            double d = fabs((double)x[i] - (double)y[i]);
            if (!(d <= worst)) /* NaN counts as the worst */
                worst = d;
        }
        a.max_abs_err = worst;
        lnet_tensor_free(ref);
    }
    a.ok = 1;
    bench_write_all(fd, &a, sizeof a);
    for (int i = 0; i < 4; i++)
        lnet_tensor_free(t[i]);
    for (int i = 0; i < 3; i++)
        lnet_tensor_free(d[i]);
    lnet_tensor_free(grads);
    lnet_tensor_free(dout);
    lnet_tensor_free(lse);
    lnet_config_free(cfg);
    lnet_context_free(ctx);
    return 0;
}

/* Runs a job in a child; 0 with *a filled, or -1 with the reason in msg. */
static int run_job(cell_job *job, cell_answer *a, uint64_t *rss, char *msg, size_t len)
{
    char *data;
    size_t n;
    char err[BENCH_TEXT_LEN];
    int rc = bench_child_run(cell_child, job, &data, &n, rss, err, sizeof err);
    if (n == sizeof *a)
        memcpy(a, data, sizeof *a);
    free(data);
    if (n == sizeof *a && !a->ok) {
        snprintf(msg, len, "%s", a->message);
        return -1;
    }
    if (rc != 0 || n != sizeof *a) {
        snprintf(msg, len, "%s", rc ? err : "the child process gave no answer");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- the timing */

void bench_cell_run(bench_cell *c, const bench_machine *m, const bench_options *o)
{
    (void)o;
    static cell_answer a;
    cell_job job = { .cell = c, .device = m->devices[c->device].run_spec, .kernel = c->kernel,
                     .length = c->length, .levels = &c->levels, .batch = c->batch };
    double t0 = bench_now();
    int rc = run_job(&job, &a, &c->peak_rss_bytes, c->message, sizeof c->message);
    c->wall_s = bench_now() - t0;
    if (rc != 0) {
        snprintf(c->status, sizeof c->status, "failed");
        return;
    }
    bench_cell_times(c, a.ms, a.n);
}

void bench_cell_times(bench_cell *c, double *ms, int n)
{
    snprintf(c->status, sizeof c->status, "ok");
    c->median_ms = bench_median(ms, n);
    c->min_ms = bench_min(ms, n);
    c->max_ms = bench_max(ms, n);
    double s = c->median_ms * 1e-3;
    c->tokens_per_s = s > 0 ? (double)(c->batch * c->length) / s : 0;
    c->gflops = s > 0 ? c->flops / s * 1e-9 : 0;
}

/* ------------------------------------------------------- the error check */

/* A small instance: its levels, mask, shape and pass; its reference file. */
typedef struct check_instance {
    bench_levels levels;
    int causal;
    int backward;
    lnet_offsets offsets;
    int64_t length, heads, dim;
    char ref_path[4096];
    int ref_ok;
    char ref_error[BENCH_TEXT_LEN];
    int peer_checked;     /* --peer: the peer's error below is known */
    double peer_err;
    char peer_error[BENCH_TEXT_LEN];
} check_instance;

/* The error found for a device and kernel on an instance. */
typedef struct check_result {
    int instance;
    char device[BENCH_NAME_LEN], kernel[BENCH_NAME_LEN];
    double err;
    char message[BENCH_TEXT_LEN];
} check_result;

static char check_dir[4096];
static check_instance *instances;
static int ninstances;
static check_result *results;
static int nresults;

void bench_check_input_path(const char *ref_path, int which, char *out, size_t len)
{
    snprintf(out, len, "%s.%c.npy", ref_path, "qkv"[which % 3]);
}

void bench_check_cache_clear(void)
{
    for (int i = 0; i < ninstances; i++)
        if (instances[i].ref_ok) {
            unlink(instances[i].ref_path);
            for (int j = 0; j < 3; j++) {
                char path[4096 + 8];
                bench_check_input_path(instances[i].ref_path, j, path, sizeof path);
                unlink(path); /* there only with --peer */
            }
        }
    if (check_dir[0])
        rmdir(check_dir);
    check_dir[0] = '\0';
    free(instances);
    free(results);
    instances = NULL;
    results = NULL;
    ninstances = nresults = 0;
}

/* The instance for this cell, computing its reference output if new. */
static int find_instance(const bench_cell *c, int64_t small, int save_inputs)
{
    bench_levels lv;
    bench_levels_cap(&c->levels, small, &lv);
    for (int i = 0; i < ninstances; i++) {
        check_instance *x = &instances[i];
        if (bench_levels_same(&x->levels, &lv) && x->causal == c->causal && x->backward == c->backward &&
            x->offsets == c->offsets && x->length == small && x->heads == c->heads &&
            x->dim == c->dim)
            return i;
    }
    check_instance *grown = realloc(instances, (size_t)(ninstances + 1) * sizeof *grown);
    if (!grown)
        return -1;
    instances = grown;
    check_instance *x = &instances[ninstances];
    memset(x, 0, sizeof *x);
    x->levels = lv;
    x->causal = c->causal;
    x->backward = c->backward;
    x->offsets = c->offsets;
    x->length = small;
    x->heads = c->heads;
    x->dim = c->dim;
    if (!check_dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(check_dir, sizeof check_dir, "%s/longnet-bench.XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(check_dir)) {
            snprintf(x->ref_error, sizeof x->ref_error, "cannot create %.400s", check_dir);
            check_dir[0] = '\0';
            return ninstances++;
        }
    }
    snprintf(x->ref_path, sizeof x->ref_path, "%s/reference-%d.npy", check_dir, ninstances);

    bench_cell shape = *c;
    shape.repeats = 1;
    shape.warmups = 0;
    cell_job job = { .cell = &shape, .device = "cpu", .kernel = "reference",
                     .save_to = x->ref_path, .save_inputs = save_inputs, .length = small,
                     .levels = &x->levels, .batch = 1 };
    static cell_answer a;
    if (run_job(&job, &a, NULL, x->ref_error, sizeof x->ref_error) == 0)
        x->ref_ok = 1;
    return ninstances++;
}

void bench_cell_check(bench_cell *c, const bench_machine *m, const bench_options *o)
{
    c->max_abs_err = NAN;
    c->check_length = 0;
    if (o->check_length <= 0 || strcmp(c->status, "ok") != 0)
        return;
    int64_t small = c->length < o->check_length ? c->length : o->check_length;
    const bench_device *d = &m->devices[c->device];
    int peer = o->peer && !c->backward;
    int inst = find_instance(c, small, peer);
    if (inst < 0)
        return;
    c->check_length = small;
    check_instance *x = &instances[inst];
    if (peer && x->ref_ok && !x->peer_checked) {
        x->peer_err = bench_peer_check(c, &x->levels, small, x->ref_path, o, x->peer_error,
                                       sizeof x->peer_error);
        x->peer_checked = 1;
    }
    if (peer) {
        c->peer_err = x->peer_checked ? x->peer_err : NAN;
        if (x->peer_checked && x->peer_error[0] && !c->message[0])
            snprintf(c->message, sizeof c->message, "%s", x->peer_error);
    }
    for (int i = 0; i < nresults; i++)
        if (results[i].instance == inst && strcmp(results[i].device, d->spec) == 0 &&
            strcmp(results[i].kernel, c->kernel) == 0) {
            c->max_abs_err = results[i].err;
            if (results[i].message[0] && !c->message[0])
                snprintf(c->message, sizeof c->message, "%s", results[i].message);
            return;
        }

    check_result r;
    memset(&r, 0, sizeof r);
    r.instance = inst;
    r.err = NAN;
    snprintf(r.device, sizeof r.device, "%s", d->spec);
    snprintf(r.kernel, sizeof r.kernel, "%s", c->kernel);
    if (!x->ref_ok) {
        snprintf(r.message, sizeof r.message, "error check: reference kernel: %.400s",
                 x->ref_error);
    } else if (strcmp(d->backend, "cpu") == 0 && strcmp(c->kernel, "reference") == 0) {
        r.err = 0; /* the reference against itself */
    } else {
        bench_cell shape = *c;
        shape.repeats = 1;
        shape.warmups = 0;
        cell_job job = { .cell = &shape, .device = d->run_spec, .kernel = c->kernel,
                         .compare_with = x->ref_path, .length = small,
                         .levels = &x->levels, .batch = 1 };
        static cell_answer a;
        char msg[BENCH_TEXT_LEN];
        if (run_job(&job, &a, NULL, msg, sizeof msg) == 0)
            r.err = a.max_abs_err;
        else
            snprintf(r.message, sizeof r.message, "error check: %.400s", msg);
    }
    check_result *grown = realloc(results, (size_t)(nresults + 1) * sizeof *grown);
    if (grown) {
        results = grown;
        results[nresults++] = r;
    }
    c->max_abs_err = r.err;
    if (r.message[0] && !c->message[0])
        snprintf(c->message, sizeof c->message, "%s", r.message);
}

/* ------------------------------------------------------------ the plan */

/* The explain child: 'P' and the plan, or 'E' and the library's message.
 * Like a cell's run it loads the plugins in its own process, never in the
 * bench's (bench_child.c). */
static int explain_child(void *arg, int fd)
{
    const cell_job *job = arg;
    const bench_cell *c = job->cell;
    lnet_context *ctx = NULL;
    lnet_config *cfg = NULL;
    char *text = NULL;
    lnet_run_options ro = { .size = sizeof ro, .device = job->device, .kernel = c->kernel };
    int failed = lnet_context_create(NULL, &ctx) || bench_cell_config(c, &c->levels, &cfg) ||
                 (c->backward ? lnet_attention_explain_backward(ctx, cfg, c->batch, c->length,
                                                                c->length, c->heads, c->dim,
                                                                &ro, &text)
                              : lnet_attention_explain(ctx, cfg, c->batch, c->length, c->heads,
                                                       c->dim, &ro, &text));
    const char *say = failed ? lnet_last_error() : text;
    bench_write_all(fd, failed ? "E" : "P", 1);
    bench_write_all(fd, say, strlen(say));
    lnet_free(text);
    lnet_config_free(cfg);
    lnet_context_free(ctx);
    return 0;
}

int bench_cell_explain(const bench_cell *c, const bench_machine *m, const char *what,
                       const char *note)
{
    const bench_device *d = &m->devices[c->device];
    char levels[BENCH_TEXT_LEN], err[BENCH_TEXT_LEN];
    printf("\n== %s N=%lld: B=%lld H=%lld D=%lld, levels %s, --device %s --kernel %s%s\n",
           what, (long long)c->length, (long long)c->batch, (long long)c->heads,
           (long long)c->dim, bench_levels_str(&c->levels, levels, sizeof levels),
           d->run_spec, c->kernel, note);
    cell_job job = { .cell = c, .device = d->run_spec };
    char *data;
    size_t n;
    int rc = bench_child_run(explain_child, &job, &data, &n, NULL, err, sizeof err);
    if (rc == 0 && n > 0 && data[0] == 'P') {
        fputs(data + 1, stdout);
    } else {
        cli_error("%s N=%lld: explain failed: %s", what, (long long)c->length,
                  rc == 0 && n > 0 ? data + 1 : rc ? err : "the child process gave no answer");
        rc = -1;
    }
    free(data);
    return rc;
}
