#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_peer.c — the peer beside longnet (--peer torch): the same operator
 * written over PyTorch's scaled_dot_product_attention by
 * bench/peers/torch_sdpa.py, run in a Python that has torch >= 2.
 *
 * The script runs as a child process (bench_child.c: the budget's timeout
 * and the signals take it down too) whose stdout and stderr come back as
 * one text; its answer is the last line, key=value pairs. Its time is the
 * median the script measures around the operator's call alone, so that
 * Python's start and torch's import are not counted. One peer run per
 * configuration, mask and length, whatever the devices and kernels beside
 * it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli_util.h"

#ifndef BENCH_PEERS_DIR
#define BENCH_PEERS_DIR "bench/peers"
#endif

typedef struct peer_job {
    char *argv[40];
} peer_job;

static int peer_child(void *arg, int fd)
{
    peer_job *job = arg;
    if (dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
        return 126;
    execvp(job->argv[0], job->argv);
    dprintf(fd, "cannot run '%s'\n", job->argv[0]);
    return 127;
}

/* The answer in the peer's output: its last line that starts "torch="
 * (a warning torch prints may follow it), else its last non-empty line (an
 * error), in place. */
static char *answer_line(char *text)
{
    char *found = NULL, *last = text;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\r')
            line[--n] = '\0';
        if (n > 0)
            last = line;
        if (strncmp(line, "torch=", 6) == 0)
            found = line;
        line = nl ? nl + 1 : NULL;
    }
    return found ? found : last;
}

/* Runs the script with these arguments (NULL-terminated after the script);
 * 0 with its answer line in out, or -1 with the reason in out. */
static int peer_call(const bench_options *o, const char *const *args, char *out, size_t len)
{
    peer_job job;
    int n = 0;
    job.argv[n++] = (char *)o->peer_python;
    job.argv[n++] = (char *)o->peer_script;
    for (int i = 0; args[i] && n < 39; i++)
        job.argv[n++] = (char *)args[i];
    job.argv[n] = NULL;
    char *data = NULL, err[BENCH_TEXT_LEN];
    size_t got = 0;
    int rc = bench_child_run(peer_child, &job, &data, &got, NULL, err, sizeof err);
    char *text = data ? data : "";
    if (data) {
        char *grown = realloc(data, got + 1);
        if (grown) {
            data = grown;
            data[got] = '\0';
            text = data;
        } else {
            text = "";
        }
    }
    char *line = answer_line(text);
    if (rc != 0)
        snprintf(out, len, "%.180s%s%.300s", err, line[0] ? ": " : "", line);
    else
        snprintf(out, len, "%.400s", line);
    free(data);
    return rc != 0 ? -1 : 0;
}

/* The value of key=VALUE in an answer line; NAN if absent or not a number. */
static double answer_num(const char *line, const char *key)
{
    size_t k = strlen(key);
    for (const char *p = line; (p = strstr(p, key)) != NULL; p += k)
        if ((p == line || p[-1] == ' ') && p[k] == '=') {
            double v;
            char buf[64];
            size_t n = strcspn(p + k + 1, " ");
            if (n == 0 || n >= sizeof buf)
                return NAN;
            memcpy(buf, p + k + 1, n);
            buf[n] = '\0';
            return cli_parse_double(buf, &v) == CLI_NUM_OK ? v : NAN;
        }
    return NAN;
}

/* The python of scripts/install-peers' virtualenv: $LONGNET_PEERS_VENV,
 * else ~/.cache/longnet/peers (the script's own default). */
static const char *venv_python(void)
{
    static char path[4096];
    const char *venv = getenv("LONGNET_PEERS_VENV");
    const char *home = getenv("HOME");
    if (venv && *venv)
        snprintf(path, sizeof path, "%s/bin/python", venv);
    else
        snprintf(path, sizeof path, "%s/.cache/longnet/peers/bin/python",
                 home && *home ? home : "/root");
    return path;
}

int bench_peer_find(bench_options *o)
{
    if (!o->peer && !o->peer_given && !o->mpi && !o->peer_python &&
        access(venv_python(), X_OK) == 0) {
        /* Installed (scripts/install-peers) and not asked about: the
         * default comparison shows longnet beside it. */
        o->peer = "torch";
        o->peer_python = venv_python();
        if (!o->quiet)
            fprintf(stderr, "longnet-bench: the torch peer of scripts/install-peers runs beside "
                            "(%s; --peer none leaves it out)\n", o->peer_python);
    }
    if (!o->peer)
        return 0;
    if (!o->peer_python) {
        const char *env = getenv("LONGNET_PEER_PYTHON");
        const char *venv = venv_python();
        o->peer_python = env && *env ? env : access(venv, X_OK) == 0 ? venv : "python3";
    }
    if (!o->peer_script) {
        const char *env = getenv("LONGNET_PEER_SCRIPT");
        o->peer_script = env && *env ? env : BENCH_PEERS_DIR "/torch_sdpa.py";
    }
    static const char *const args[] = { "--version", NULL };
    char answer[BENCH_TEXT_LEN];
    if (peer_call(o, args, answer, sizeof answer) != 0 ||
        strncmp(answer, "torch=", 6) != 0) {
        cli_error("--peer torch: no Python with torch >= 2 at '%s' (%s): run "
                  "scripts/install-peers, or give --peer-python", o->peer_python, answer);
        return -1;
    }
    snprintf(o->peer_version, sizeof o->peer_version, "%s", answer);
    return 0;
}

/* The shape and levels as the script's arguments, in bufs; the count. */
static int shape_args(const bench_cell *c, const bench_levels *lv, int64_t batch,
                      int64_t length, char bufs[6][BENCH_TEXT_LEN], const char **args)
{
    int n = 0;
    snprintf(bufs[0], BENCH_TEXT_LEN, "%lld", (long long)batch);
    snprintf(bufs[1], BENCH_TEXT_LEN, "%lld", (long long)length);
    snprintf(bufs[2], BENCH_TEXT_LEN, "%lld", (long long)c->heads);
    snprintf(bufs[3], BENCH_TEXT_LEN, "%lld", (long long)c->dim);
    bench_levels_lists(lv, bufs[4], bufs[5], BENCH_TEXT_LEN);
    static const char *const names[] = { "--batch", "--length", "--heads", "--dim",
                                         "--segments", "--dilations" };
    for (int i = 0; i < 6; i++) {
        args[n++] = names[i];
        args[n++] = bufs[i];
    }
    args[n++] = "--offsets";
    args[n++] = c->offsets == LNET_OFFSETS_GROUPED ? "grouped" : "interleaved";
    if (c->causal)
        args[n++] = "--causal";
    return n;
}

/* The peer's times already measured: the same configuration, mask and
 * length cost the same whatever device ran beside it. */
typedef struct peer_memo {
    bench_levels levels;
    int causal;
    lnet_offsets offsets;
    int64_t batch, length, heads, dim;
    double ms;
    char message[BENCH_TEXT_LEN];
} peer_memo;

static peer_memo *memo;
static int nmemo;

static int same_cell(const peer_memo *x, const bench_cell *c)
{
    return bench_levels_same(&x->levels, &c->levels) && x->causal == c->causal &&
           x->offsets == c->offsets && x->batch == c->batch && x->length == c->length &&
           x->heads == c->heads && x->dim == c->dim;
}

static void set_time(bench_cell *c, double ms, const char *message)
{
    c->peer_ran = 1;
    c->peer_ms = ms;
    c->peer_ratio = !isnan(ms) && strcmp(c->status, "ok") == 0 && c->median_ms > 0
                        ? ms / c->median_ms
                        : NAN;
    if (message[0] && !c->message[0])
        snprintf(c->message, sizeof c->message, "peer: %.400s", message);
}

void bench_peer_run(bench_cell *c, const bench_machine *m, const bench_options *o)
{
    if (!o->peer || c->backward)
        return;
    for (int i = 0; i < nmemo; i++)
        if (same_cell(&memo[i], c)) {
            set_time(c, memo[i].ms, memo[i].message);
            return;
        }
    char bufs[6][BENCH_TEXT_LEN], rep[32], warm[32], threads[32];
    const char *args[40];
    int n = 0;
    args[n++] = "time";
    n += shape_args(c, &c->levels, c->batch, c->length, bufs, args + n);
    snprintf(rep, sizeof rep, "%d", c->repeats);
    snprintf(warm, sizeof warm, "%d", c->warmups);
    snprintf(threads, sizeof threads, "%d", m->cores > 0 ? m->cores : 1);
    args[n++] = "--repeat";
    args[n++] = rep;
    args[n++] = "--warmup";
    args[n++] = warm;
    args[n++] = "--threads";
    args[n++] = threads;
    args[n] = NULL;
    char answer[BENCH_TEXT_LEN];
    double ms = NAN;
    int rc = peer_call(o, args, answer, sizeof answer);
    if (rc == 0) {
        ms = answer_num(answer, "median_ms");
        if (isnan(ms) || !(ms > 0))
            rc = -1;
    }
    peer_memo x;
    memset(&x, 0, sizeof x);
    x.levels = c->levels;
    x.causal = c->causal;
    x.offsets = c->offsets;
    x.batch = c->batch;
    x.length = c->length;
    x.heads = c->heads;
    x.dim = c->dim;
    x.ms = rc == 0 ? ms : NAN;
    if (rc != 0)
        snprintf(x.message, sizeof x.message, "%.400s", answer);
    peer_memo *grown = realloc(memo, (size_t)(nmemo + 1) * sizeof *grown);
    if (grown) {
        memo = grown;
        memo[nmemo++] = x;
    }
    set_time(c, x.ms, x.message);
}

double bench_peer_check(const bench_cell *c, const bench_levels *lv, int64_t length,
                        const char *ref_path, const bench_options *o, char *msg, size_t len)
{
    char bufs[6][BENCH_TEXT_LEN], in[3][4096 + 8];
    const char *args[40];
    int n = 0;
    args[n++] = "check";
    n += shape_args(c, lv, 1, length, bufs, args + n);
    static const char *const names[] = { "--q", "--k", "--v" };
    for (int i = 0; i < 3; i++) {
        bench_check_input_path(ref_path, i, in[i], sizeof in[i]);
        args[n++] = names[i];
        args[n++] = in[i];
    }
    args[n++] = "--o";
    args[n++] = ref_path;
    args[n] = NULL;
    char answer[BENCH_TEXT_LEN];
    if (peer_call(o, args, answer, sizeof answer) != 0) {
        snprintf(msg, len, "peer check: %.400s", answer);
        return NAN;
    }
    double err = answer_num(answer, "max_abs_err");
    if (isnan(err))
        snprintf(msg, len, "peer check: no max_abs_err in '%.400s'", answer);
    return err;
}

void bench_peer_clear(void)
{
    free(memo);
    memo = NULL;
    nmemo = 0;
}
