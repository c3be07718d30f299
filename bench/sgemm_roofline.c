#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* sgemm_roofline.c — OpenBLAS SGEMM measured for each core type the CPU can
 * run, each in a fresh process, each checked; see sgemm_roofline.h for why.
 *
 * OpenBLAS reads OPENBLAS_CORETYPE once, when the library is loaded, so a
 * forked child would keep the parent's choice: each measurement is an exec
 * of /proc/self/exe with the variable set (or removed, for OpenBLAS's own
 * choice), whatever the environment we inherited says.
 */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sgemm_roofline.h"

/* Declared by cblas.h in recent OpenBLAS versions; repeated for older ones. */
char *openblas_get_config(void);
char *openblas_get_corename(void);
int openblas_get_num_threads(void);

#define CHILD_TIMEOUT_S 120 /* a child that hangs must not hang the bench */
#define SAMPLES 64
/* float accumulation over n terms: a correct product stays far below this
 * fraction of sum |a||b| (its error grows like sqrt(n) * 6e-8). */
#define REL_TOLERANCE 1e-4

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------- the child */

/* Runs the SGEMM and prints one line: "ok CORENAME THREADS BEST_MS
 * MEDIAN_MS MAX_REL_ERR CORRECT" and then openblas_get_config(). With
 * runs = 0 it only names the core. */
static int child(int n, int runs)
{
    alarm(CHILD_TIMEOUT_S);
    const char *core = openblas_get_corename();
    if (runs == 0) {
        printf("name %s\n%s\n", core && *core ? core : "?", openblas_get_config());
        return 0;
    }
    size_t nn = (size_t)n * (size_t)n;
    float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    double *ms = malloc((size_t)runs * sizeof *ms);
    if (!a || !b || !c || !ms) {
        printf("error out of memory for n = %d\n", n);
        return 1;
    }
    /* Random entries in [-1, 1): a periodic pattern could hide a kernel
     * that gets some blocks wrong. */
    uint64_t s = 42;
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)lcg(&s) / 2147483648.0f * 2.0f - 1.0f;
        b[i] = (float)lcg(&s) / 2147483648.0f * 2.0f - 1.0f;
        c[i] = 0.0f;
    }
    for (int r = -1; r < runs; r++) { /* r = -1: warm-up (threads, pages) */
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n,
                    0.0f, c, n);
        if (r >= 0)
            ms[r] = (now() - t0) * 1e3;
    }
    /* The last product against a naive one, in double, on sampled entries. */
    double worst = 0.0;
    for (int k = 0; k < SAMPLES; k++) {
        size_t i = lcg(&s) % (size_t)n, j = lcg(&s) % (size_t)n;
        double dot = 0.0, mag = 0.0;
        for (size_t p = 0; p < (size_t)n; p++) {
            double x = (double)a[i * (size_t)n + p] * (double)b[p * (size_t)n + j];
            dot += x;
            mag += fabs(x);
        }
        double rel = fabs((double)c[i * (size_t)n + j] - dot) / (mag > 0 ? mag : 1.0);
        if (!(rel <= worst)) /* NaN is the worst */
            worst = rel;
    }
    qsort(ms, (size_t)runs, sizeof *ms, cmp_double);
    double median = runs % 2 ? ms[runs / 2] : 0.5 * (ms[runs / 2 - 1] + ms[runs / 2]);
    printf("ok %s %d %.6f %.6f %.3g %d\n%s\n", core && *core ? core : "?",
           openblas_get_num_threads(), ms[0], median, worst, worst <= REL_TOLERANCE,
           openblas_get_config());
    free(a);
    free(b);
    free(c);
    free(ms);
    return 0;
}

int sgemm_child_main(int argc, char **argv)
{
    if (argc < 4 || strcmp(argv[1], SGEMM_CHILD_ARG) != 0)
        return -1;
    int n = atoi(argv[2]), runs = atoi(argv[3]);
    if (n < 1 || runs < 0)
        return 2;
    int rc = child(n, runs);
    fflush(stdout);
    return rc;
}

/* ------------------------------------------------------------ the parent */

/* Execs ourselves with OPENBLAS_CORETYPE = core ("" removes it) and fills
 * x from its answer. */
static void run_child(sgemm_core *x, int n, int runs)
{
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(x->error, sizeof x->error, "pipe: %s", strerror(errno));
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(x->error, sizeof x->error, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        if (x->requested[0])
            setenv("OPENBLAS_CORETYPE", x->requested, 1);
        else
            unsetenv("OPENBLAS_CORETYPE");
        char n_arg[32], runs_arg[32];
        snprintf(n_arg, sizeof n_arg, "%d", n);
        snprintf(runs_arg, sizeof runs_arg, "%d", runs);
        char *argv[] = { "sgemm-roofline", SGEMM_CHILD_ARG, n_arg, runs_arg, NULL };
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(fds[1]);
    char buf[1024];
    size_t used = 0;
    for (;;) {
        ssize_t got = read(fds[0], buf + used, sizeof buf - 1 - used);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        used += (size_t)got;
        if (used == sizeof buf - 1)
            break;
    }
    buf[used] = '\0';
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    char *second = strchr(buf, '\n');
    if (second) {
        *second++ = '\0';
        second[strcspn(second, "\n")] = '\0';
        snprintf(x->config, sizeof x->config, "%s", second);
    }
    char core[64] = "";
    int correct = 0;
    if (strncmp(buf, "name ", 5) == 0 && sscanf(buf + 5, "%63s", core) == 1) {
        snprintf(x->corename, sizeof x->corename, "%s", core);
    } else if (sscanf(buf, "ok %63s %d %lf %lf %lf %d", core, &x->threads, &x->best_ms,
                      &x->median_ms, &x->max_rel_err, &correct) == 6 && x->best_ms > 0) {
        double flops = 2.0 * n * (double)n * (double)n;
        snprintf(x->corename, sizeof x->corename, "%s", core);
        x->measured = 1;
        x->correct = correct;
        x->best_gflops = flops / (x->best_ms * 1e-3) * 1e-9;
        x->median_gflops = flops / (x->median_ms * 1e-3) * 1e-9;
        if (!correct)
            snprintf(x->error, sizeof x->error, "wrong results: relative error %.2g on "
                     "sampled entries", x->max_rel_err);
    } else if (WIFSIGNALED(status)) {
        snprintf(x->error, sizeof x->error, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    } else {
        snprintf(x->error, sizeof x->error, "%.200s", used ? buf : "no answer from the child");
    }
}

/* The core types this CPU's instruction set can run, best first within a
 * level; OpenBLAS's own choice is measured besides. */
static int candidates(const char **out, int max)
{
    int n = 0;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl")) {
        if (__builtin_cpu_supports("avx512bf16") && n < max)
            out[n++] = "Cooperlake";
        if (n < max)
            out[n++] = "SkylakeX";
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        if (n < max)
            out[n++] = "Haswell";
        if (__builtin_cpu_is("amd") && n < max)
            out[n++] = "Zen";
    } else if (__builtin_cpu_supports("avx") && n < max) {
        out[n++] = "Sandybridge";
    }
    return n;
}

static void pick(sgemm_roofline *r)
{
    r->used = -1;
    for (int i = 0; i < r->ncores; i++) {
        const sgemm_core *x = &r->cores[i];
        if (x->measured && x->correct &&
            (r->used < 0 || x->best_gflops > r->cores[r->used].best_gflops))
            r->used = i;
    }
}

void sgemm_roofline_measure(sgemm_roofline *r, int n, int runs)
{
    memset(r, 0, sizeof *r);
    r->n = n;
    r->runs = runs;
    r->samples = SAMPLES;
    const char *inherited = getenv("OPENBLAS_CORETYPE");
    if (inherited) {
        r->inherited_set = 1;
        snprintf(r->inherited, sizeof r->inherited, "%s", inherited);
    }
    const char *hook = getenv(SGEMM_CORES_ENV);
    if (hook && *hook)
        snprintf(r->hook, sizeof r->hook, "%s", hook);

    /* OpenBLAS's own choice first: the variable removed. */
    sgemm_core *own = &r->cores[r->ncores++];
    run_child(own, n, r->hook[0] ? 0 : runs);
    snprintf(r->own_choice, sizeof r->own_choice, "%s", own->corename[0] ? own->corename : "?");

    const char *names[SGEMM_MAX_CORES];
    int nnames = 0;
    static char hook_copy[128];
    if (r->hook[0]) {
        snprintf(hook_copy, sizeof hook_copy, "%s", r->hook);
        for (char *save = NULL, *t = strtok_r(hook_copy, ",", &save);
             t && nnames < SGEMM_MAX_CORES - 1; t = strtok_r(NULL, ",", &save))
            names[nnames++] = t;
    } else {
        nnames = candidates(names, SGEMM_MAX_CORES - 1);
    }
    for (int i = 0; i < nnames; i++) {
        /* The own choice was measured already under that name. */
        if (!r->hook[0] && strcmp(names[i], own->corename) == 0 && own->measured)
            continue;
        sgemm_core *x = &r->cores[r->ncores++];
        snprintf(x->requested, sizeof x->requested, "%s", names[i]);
        run_child(x, n, runs);
        /* OpenBLAS silently falls back when it refuses a core (the OS does
         * not save AVX-512 state, say): that is not the core we asked for. */
        if (x->measured && x->corename[0] && strcasecmp(x->corename, names[i]) != 0 &&
            !x->error[0])
        {
            char ran[sizeof x->corename];
            snprintf(ran, sizeof ran, "%s", x->corename);
            snprintf(x->error, sizeof x->error, "OpenBLAS ran %s instead", ran);
        }
    }
    pick(r);
}

void sgemm_roofline_remeasure(sgemm_roofline *r)
{
    if (r->used < 0)
        return;
    sgemm_core again = r->cores[r->used], *x = &r->cores[r->used];
    memset(&again.measured, 0, sizeof again - offsetof(sgemm_core, measured));
    run_child(&again, r->n, r->runs);
    if (again.measured && again.correct && again.best_gflops > x->best_gflops)
        *x = again;
}

const sgemm_core *sgemm_roofline_used(const sgemm_roofline *r)
{
    return r->used >= 0 ? &r->cores[r->used] : NULL;
}

const char *sgemm_roofline_tried(const sgemm_roofline *r, char *buf, size_t len)
{
    size_t u = 0;
    buf[0] = '\0';
    for (int i = 0; i < r->ncores && u < len; i++) {
        const sgemm_core *x = &r->cores[i];
        char label[128];
        if (x->requested[0])
            snprintf(label, sizeof label, "%s", x->requested);
        else
            snprintf(label, sizeof label, "own choice %s", x->corename[0] ? x->corename : "?");
        char what[320];
        if (x->measured)
            snprintf(what, sizeof what, "%.1f GFLOP/s, %s%s%.200s", x->best_gflops,
                     x->correct ? "checked ok" : "WRONG", x->error[0] ? ": " : "", x->error);
        else if (x->error[0])
            snprintf(what, sizeof what, "failed: %.200s", x->error);
        else
            snprintf(what, sizeof what, "named only");
        u += (size_t)snprintf(buf + u, len - u, "%s%s (%s)", i ? "; " : "", label, what);
    }
    return buf;
}

const char *sgemm_suspect_reason(double fraction)
{
    if (!(fraction > SGEMM_SUSPECT_FRACTION))
        return NULL;
    return "above 1.0 of SGEMM: attention does SGEMM's multiply-adds plus a softmax, so "
           "the roofline is likely too slow (an OpenBLAS core type below this CPU, or SGEMM "
           "measured while other processes ran)";
}
