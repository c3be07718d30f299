#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cpu_kernel_bench.c — the CPU backend's fast kernel against the machine's
 * roofline. Prints plain tables:
 *
 *  (a) OpenBLAS SGEMM, n = 2048, all cores: GFLOP/s (best of runs) of the
 *      fastest correct core type (sgemm_roofline.c), which it names, with
 *      OpenBLAS's own choice;
 *  (b) the fast kernel through lnet_attention_forward, D = 64, one level
 *      (segment 2048, dilation 1), non-causal and causal, all cores:
 *      GFLOP/s and the ratio to (a). FLOPs are counted as 4*D per (query,
 *      key) pair actually scored: under causal masking only key <= query;
 *      a ratio above 1.0 is marked SUSPECT (the roofline is too slow);
 *  (c) time per token for segments 2048,8192,32768,131072 with dilations
 *      1,4,16,64, H = 1, D = 64, at N = 64K, 256K, 1M, 4M (up to --max-n),
 *      relative to the smallest N;
 *  (d) peak resident memory against the bytes of Q, K, V and O.
 *
 * Times are medians of runs, and for (b) and (c) also the best run: on a
 * virtual machine whose host steals cycles (top's "st"), stolen time only
 * ever adds, so the best run is the closer measure of the kernel.
 *
 * Each N of (c)/(d) runs in a fresh process (this program re-executed with
 * --one-n), so that each peak is that run's own: the peak is the process's
 * VmHWM (a new address space's high-water mark), read from /proc.
 *
 * Only the cpu plugin of the build tree is loaded (CPU_PLUGIN_DIR), so that
 * the memory other backends' drivers take (an OpenCL runtime, say) does not
 * count against the kernel; --all-plugins loads everything, as a user's
 * program would.
 *
 * With --backward, (b) is the backward pass instead (and (c), (d) are not
 * run): one level's run_segment_backward on the cpu plugin's table (the
 * module of the build tree, called directly: the library's backward is
 * not needed for it), kernel "fast", with FLOPs counted as 10*D per pair
 * (five products of 2*D each: S, dP, dV, dK, dQ, FlashAttention's count;
 * the recomputed S is counted once).
 *
 * Usage: cpu_kernel_bench [--max-n N] [--heads H] [--runs R] [--causal]
 *                         [--skip-sgemm] [--skip-scan] [--all-plugins] [--one-n N]
 *                         [--backward]
 * The thread count is the cpu device's default (all online cores) unless
 * LONGNET_CPU_THREADS says otherwise; OpenBLAS uses its own default. */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "longnet-plugin.h"
#include "longnet.h"
#include "sgemm_roofline.h"

#define SCAN_SEGMENTS "2048,8192,32768,131072"
#define SCAN_DILATIONS "1,4,16,64"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int all_plugins;

static void die(const char *what);

static lnet_context *make_context(void)
{
    lnet_context_options o = {.size = sizeof o};
#ifdef CPU_PLUGIN_DIR
    if (!all_plugins) {
        o.plugin_path = CPU_PLUGIN_DIR;
        o.no_default_paths = 1;
    }
#endif
    lnet_context *ctx;
    if (lnet_context_create(&o, &ctx) != LNET_OK)
        die("lnet_context_create");
    return ctx;
}

static void die(const char *what)
{
    fprintf(stderr, "cpu_kernel_bench: %s: %s\n", what, lnet_last_error());
    exit(1);
}

/* Uniform values in [-1, 1) from a 64-bit LCG: fast enough for 4 GiB. */
static void fill(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((int32_t)(s >> 32)) * (1.0f / 2147483648.0f);
    }
}

/* ------------------------------------------------------------ (a) SGEMM */

/* The roofline of sgemm_roofline.c: each core type this CPU can run, in its
 * own process, checked; prints which one was used and returns its rate. */
static double bench_sgemm(int runs)
{
    static sgemm_roofline r;
    sgemm_roofline_measure(&r, 2048, runs);
    char tried[2048];
    sgemm_roofline_tried(&r, tried, sizeof tried);
    const sgemm_core *x = sgemm_roofline_used(&r);
    if (!x) {
        printf("\n(a) OpenBLAS cblas_sgemm, n = 2048: no correct measurement (%s)\n", tried);
        return 0.0;
    }
    printf("\n(a) OpenBLAS cblas_sgemm, n = 2048, all cores: %.1f GFLOP/s (best of %d; median "
           "%.1f)\n    core %s: the fastest correct core type; OpenBLAS's own choice: %s\n"
           "    tried %s\n    checked %d sampled entries of each product against a naive "
           "one; %s%s\n", x->best_gflops, runs, x->median_gflops, x->corename, r.own_choice,
           tried, r.samples, r.inherited_set ? "OPENBLAS_CORETYPE inherited, ignored: " :
           "OPENBLAS_CORETYPE not set", r.inherited);
    return x->best_gflops;
}

/* --------------------------------------------------- attention helpers */

typedef struct problem {
    int64_t N, H, D;
    lnet_tensor *q, *k, *v, *out;
    lnet_config *cfg;
} problem;

static void problem_make(problem *p, int64_t N, int64_t H, int64_t D, const char *segments,
                         const char *dilations, int causal)
{
    int64_t shape[4] = {1, N, H, D};
    p->N = N;
    p->H = H;
    p->D = D;
    lnet_tensor **t[4] = {&p->q, &p->k, &p->v, &p->out};
    for (int i = 0; i < 4; i++)
        if (lnet_tensor_create(4, shape, t[i]) != LNET_OK)
            die("lnet_tensor_create");
    size_t n = lnet_tensor_numel(p->q);
    fill(lnet_tensor_data(p->q), n, 11);
    fill(lnet_tensor_data(p->k), n, 12);
    fill(lnet_tensor_data(p->v), n, 13);
    if (lnet_config_create(&p->cfg) != LNET_OK ||
        lnet_config_parse_levels(p->cfg, segments, dilations) != LNET_OK ||
        lnet_config_set_causal(p->cfg, causal) != LNET_OK)
        die("configuration");
}

static void problem_free(problem *p)
{
    lnet_tensor_free(p->q);
    lnet_tensor_free(p->k);
    lnet_tensor_free(p->v);
    lnet_tensor_free(p->out);
    lnet_config_free(p->cfg);
}

static double run_forward(lnet_context *ctx, problem *p)
{
    lnet_run_options opts = {.size = sizeof opts, .device = "cpu", .kernel = "fast"};
    double t = now();
    if (lnet_attention_forward(ctx, p->cfg, p->q, p->k, p->v, p->out, NULL, &opts) != LNET_OK)
        die("lnet_attention_forward");
    return now() - t;
}

/* (query, key) pairs scored by one level (segment w, dilation r) over N
 * rows and H heads, offsets interleaved (DESIGN §1), causal or not. */
static double level_pairs(int64_t N, int64_t H, int64_t w, int64_t r, int causal)
{
    double pairs = 0.0;
    for (int64_t h = 0; h < H; h++) {
        int64_t o = h % r;
        for (int64_t s = 0; s * w < N; s++) {
            int64_t start = s * w, end = w > N - start ? N : start + w;
            if (start + o >= end)
                continue;
            double n = (double)((end - start - o + r - 1) / r);
            pairs += causal ? n * (n + 1) / 2 : n * n;
        }
    }
    return pairs;
}

/* ------------------------------------------------- (b) one dense level */

static void bench_level(lnet_context *ctx, int64_t N, int64_t H, int runs, double sgemm)
{
    printf("\n(b) fast kernel, one level: segment 2048, dilation 1, N = %lld, H = %lld, D = 64\n",
           (long long)N, (long long)H);
    printf("    GFLOP/s count 4*D per (query, key) pair scored (causal: key <= query only)\n");
    printf("    %-10s %12s %12s %12s %12s %12s\n", "mode", "ms (median)", "GFLOP/s",
           "of SGEMM", "ms (best)", "best GFLOP/s");
    int suspects = 0;
    for (int causal = 0; causal <= 1; causal++) {
        problem p;
        problem_make(&p, N, H, 64, "2048", "1", causal);
        double *t = malloc((size_t)runs * sizeof *t);
        run_forward(ctx, &p); /* warm-up: device open, pages, caches */
        for (int r = 0; r < runs; r++)
            t[r] = run_forward(ctx, &p);
        double sec = median(t, runs), best = t[0]; /* sorted by median() */
        double flops = 4.0 * 64 * level_pairs(N, H, 2048, 1, causal);
        double gf = flops / sec * 1e-9, gb = flops / best * 1e-9;
        const char *why = sgemm > 0 ? sgemm_suspect_reason(gf / sgemm) : NULL;
        suspects += why != NULL;
        printf("    %-10s %12.2f %12.1f %11.1f%% %12.2f %12.1f%s\n",
               causal ? "causal" : "non-causal", sec * 1e3, gf,
               sgemm > 0 ? 100.0 * gf / sgemm : 0.0, best * 1e3, gb, why ? "  SUSPECT" : "");
        fflush(stdout);
        free(t);
        problem_free(&p);
    }
    if (suspects)
        printf("    SUSPECT: %s\n", sgemm_suspect_reason(2.0));
}


/* ------------------------------------------- (b) backward, one level */

/* The cpu plugin of the build tree, opened directly. */
static const lnet_plugin *open_cpu_table(void **dev)
{
    static const char *const names[] = {"/.libs/longnet-cpu.so", "/longnet-cpu.so"};
    void *module = NULL;
#ifdef CPU_PLUGIN_DIR
    for (size_t i = 0; !module && i < sizeof names / sizeof names[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s%s", CPU_PLUGIN_DIR, names[i]);
        module = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
#endif
    if (!module) {
        fprintf(stderr, "cpu_kernel_bench: cannot dlopen the cpu plugin: %s\n", dlerror());
        exit(1);
    }
    lnet_plugin_entry_fn entry;
    *(void **)&entry = dlsym(module, LNET_PLUGIN_ENTRY_SYMBOL);
    const lnet_plugin *cpu = entry ? entry() : NULL;
    int n = 0;
    if (!cpu || cpu->size < offsetof(lnet_plugin, run_segment_backward) + sizeof(void *) ||
        !cpu->run_segment_backward || cpu->probe(&n) != 0 || n < 1 ||
        cpu->open(0, NULL, dev) != 0) {
        fprintf(stderr, "cpu_kernel_bench: the cpu plugin has no backward device%s%s\n",
                cpu ? ": " : "", cpu ? cpu->last_error() : "");
        exit(1);
    }
    return cpu;
}

static void bench_backward(int64_t N, int64_t H, int runs, double sgemm)
{
    const int64_t D = 64, w = 2048;
    printf("\n(b) fast kernel, backward of one level (run_segment_backward): segment 2048, "
           "dilation 1, N = %lld, H = %lld, D = 64\n", (long long)N, (long long)H);
    printf("    GFLOP/s count 10*D per (query, key) pair (causal: key <= query only)\n");
    printf("    %-10s %12s %12s %12s %12s %12s\n", "mode", "ms (median)", "GFLOP/s",
           "of SGEMM", "ms (best)", "best GFLOP/s");
    void *dev = NULL;
    const lnet_plugin *cpu = open_cpu_table(&dev);
    const size_t n4 = (size_t)(N * H * D), n3 = (size_t)(N * H);
    /* q k v dout dq dk dv, lse delta */
    float *x[9];
    void *b[9];
    for (int i = 0; i < 9; i++) {
        const size_t n = i < 7 ? n4 : n3;
        x[i] = malloc(n * sizeof(float));
        if (!x[i] || cpu->buffer_wrap_host(dev, x[i], n * sizeof(float), &b[i]) != 0) {
            fprintf(stderr, "cpu_kernel_bench: out of memory\n");
            exit(1);
        }
        fill(x[i], n, 21 + (uint64_t)i);
    }
    /* A plausible LSE: the log of a row's w keys at score ~0, so that P ~ 1/w. */
    for (size_t i = 0; i < n3; i++)
        x[7][i] = (float)log((double)w);
    for (int causal = 0; causal <= 1; causal++) {
        lnet_segment_backward_job job = {
            .size = sizeof job,
            .level = {.size = sizeof job.level, .batch = 1, .rows = N, .heads = H, .dim = D,
                      .row_begin = 0, .row_end = N, .segment = w, .dilation = 1,
                      .causal = causal, .scale = 0.125f, .kernel = "fast", .q = b[0], .k = b[1],
                      .v = b[2], .lse = b[7]},
            .dout = b[3], .delta = b[8], .dq = b[4], .dk = b[5], .dv = b[6],
        };
        double *t = malloc((size_t)runs * sizeof *t);
        for (int r = -1; r < runs; r++) { /* r = -1: warm-up */
            double t0 = now();
            if (cpu->run_segment_backward(dev, &job) != 0) {
                fprintf(stderr, "cpu_kernel_bench: run_segment_backward: %s\n", cpu->last_error());
                exit(1);
            }
            if (r >= 0)
                t[r] = now() - t0;
        }
        double sec = median(t, runs), best = t[0];
        double flops = 10.0 * (double)D * level_pairs(N, H, w, 1, causal);
        double gf = flops / sec * 1e-9, gb = flops / best * 1e-9;
        const char *why = sgemm > 0 ? sgemm_suspect_reason(gf / sgemm) : NULL;
        printf("    %-10s %12.2f %12.1f %11.1f%% %12.2f %12.1f%s\n",
               causal ? "causal" : "non-causal", sec * 1e3, gf,
               sgemm > 0 ? 100.0 * gf / sgemm : 0.0, best * 1e3, gb, why ? "  SUSPECT" : "");
        fflush(stdout);
        free(t);
    }
    for (int i = 0; i < 9; i++) {
        cpu->buffer_free(dev, b[i]);
        free(x[i]);
    }
    cpu->close(dev);
}

/* --------------------------------------------- (c)/(d) one N, in a child */

/* The high-water mark of this address space in bytes (VmHWM), or
 * ru_maxrss where /proc is missing. */
static double peak_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f)) {
            long long kb;
            if (sscanf(line, "VmHWM: %lld kB", &kb) == 1) {
                fclose(f);
                return (double)kb * 1024.0;
            }
        }
        fclose(f);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss * 1024.0;
}

/* Prints one line: N best-seconds-per-run pairs peak-bytes qkvo-bytes. */
static int one_n(int64_t N, int causal, int runs)
{
    lnet_context *ctx = make_context();
    problem p;
    problem_make(&p, N, 1, 64, SCAN_SEGMENTS, SCAN_DILATIONS, causal);
    double *t = malloc((size_t)runs * sizeof *t);
    for (int r = 0; r < runs; r++)
        t[r] = run_forward(ctx, &p);
    double sec = INFINITY;
    for (int r = 0; r < runs; r++)
        sec = t[r] < sec ? t[r] : sec;
    static const int64_t w[4] = {2048, 8192, 32768, 131072}, d[4] = {1, 4, 16, 64};
    double pairs = 0.0;
    for (int l = 0; l < 4; l++)
        pairs += level_pairs(N, 1, w[l], d[l], causal);
    double qkvo = 4.0 * (double)N * 64 * sizeof(float);
    printf("%lld %.6f %.0f %.0f %.0f\n", (long long)N, sec, pairs, peak_rss_bytes(), qkvo);
    free(t);
    problem_free(&p);
    lnet_context_free(ctx);
    return 0;
}

/* Runs this program again with --one-n N and reads its line. */
static int spawn_one(int64_t N, int causal, int runs, double out[5])
{
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        char n_arg[32], runs_arg[32];
        snprintf(n_arg, sizeof n_arg, "%lld", (long long)N);
        snprintf(runs_arg, sizeof runs_arg, "%d", runs);
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        close(fd[1]);
        char *argv[8] = {"cpu_kernel_bench", "--one-n", n_arg, "--runs", runs_arg};
        int argc = 5;
        if (causal)
            argv[argc++] = "--causal";
        if (all_plugins)
            argv[argc++] = "--all-plugins";
        argv[argc] = NULL;
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    long long n = 0;
    int got = f ? fscanf(f, "%lld %lf %lf %lf %lf", &n, &out[1], &out[2], &out[3], &out[4]) : 0;
    if (f)
        fclose(f);
    int status = 0;
    waitpid(pid, &status, 0);
    out[0] = (double)n;
    return got == 5 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void bench_scan(int64_t max_n, int causal)
{
    static const int64_t sizes[] = {65536, 262144, 1048576, 4194304};
    printf("\n(c) time per token and (d) peak memory: segments %s, dilations %s,\n"
           "    H = 1, D = 64, %s, one process per N\n",
           SCAN_SEGMENTS, SCAN_DILATIONS, causal ? "causal" : "non-causal");
    printf("    %-9s %10s %12s %10s %9s %12s %12s %8s\n", "N", "best s/run", "ns/token",
           "vs first",
           "GFLOP/s", "peak MiB", "QKVO MiB", "peak/QKVO");
    double first = 0.0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && sizes[i] <= max_n; i++) {
        /* Fewer runs where one takes long; the smallest N repeats more. */
        int runs = sizes[i] <= 262144 ? 5 : sizes[i] <= 1048576 ? 3 : 2;
        double r[5];
        if (spawn_one(sizes[i], causal, runs, r) != 0) {
            printf("    %-9lld failed (see stderr)\n", (long long)sizes[i]);
            continue;
        }
        double per_token = r[1] / r[0] * 1e9;
        if (first == 0.0)
            first = per_token;
        printf("    %-9lld %10.3f %12.1f %9.1f%% %9.1f %12.1f %12.1f %8.3f\n", (long long)r[0],
               r[1], per_token, 100.0 * per_token / first, 4.0 * 64 * r[2] / r[1] * 1e-9,
               r[3] / 1048576.0, r[4] / 1048576.0, r[3] / r[4]);
        fflush(stdout);
    }
}

/* --------------------------------------------------------------- main */

static int64_t arg_int(const char *opt, const char *v)
{
    char *end;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || end == v || *end || errno || x < 1) {
        fprintf(stderr, "cpu_kernel_bench: %s needs a positive integer, not '%s'\n", opt,
                v ? v : "");
        exit(2);
    }
    return x;
}

int main(int argc, char **argv)
{
    /* Our own re-executed copy measuring one SGEMM core type. */
    int child_rc = sgemm_child_main(argc, argv);
    if (child_rc >= 0)
        return child_rc;
    int64_t max_n = 4194304, one = 0, heads = 1, runs = 5;
    int causal = 0, skip_sgemm = 0, skip_scan = 0, backward = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--max-n") == 0)
            max_n = arg_int(argv[i], argv[i + 1]), i++;
        else if (strcmp(argv[i], "--one-n") == 0)
            one = arg_int(argv[i], argv[i + 1]), i++;
        else if (strcmp(argv[i], "--heads") == 0)
            heads = arg_int(argv[i], argv[i + 1]), i++;
        else if (strcmp(argv[i], "--runs") == 0)
            runs = arg_int(argv[i], argv[i + 1]), i++;
        else if (strcmp(argv[i], "--causal") == 0)
            causal = 1;
        else if (strcmp(argv[i], "--skip-sgemm") == 0)
            skip_sgemm = 1;
        else if (strcmp(argv[i], "--skip-scan") == 0)
            skip_scan = 1;
        else if (strcmp(argv[i], "--all-plugins") == 0)
            all_plugins = 1;
        else if (strcmp(argv[i], "--backward") == 0)
            backward = 1;
        else {
            fprintf(stderr,
                    "usage: %s [--max-n N] [--heads H] [--runs R] [--causal] [--skip-sgemm] "
                    "[--skip-scan] [--all-plugins] [--one-n N] [--backward]\n",
                    argv[0]);
            return 2;
        }
    }
    if (one)
        return one_n(one, causal, (int)runs);


    lnet_context *ctx = make_context();
    int index;
    lnet_device_info info;
    if (lnet_context_find_device(ctx, "cpu", &index) != LNET_OK ||
        lnet_context_device(ctx, index, &info) != LNET_OK)
        die("cpu device");
    const char *thr = getenv("LONGNET_CPU_THREADS");
    printf("device: %s, %d cores, kernels %s, threads %s\n", info.name, info.compute_units,
           info.kernels, thr && thr[0] ? thr : "all cores");

    double sgemm = 0.0;
    if (!skip_sgemm) {
        sgemm = bench_sgemm((int)runs);
    }
    if (backward) {
        lnet_context_free(ctx);
        bench_backward(65536, heads, (int)runs, sgemm);
        return 0;
    }
    bench_level(ctx, 65536, heads, (int)runs, sgemm);
    lnet_context_free(ctx);
    if (!skip_scan)
        bench_scan(max_n, causal);
    return 0;
}
