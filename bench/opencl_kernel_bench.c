#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* opencl_kernel_bench.c — the OpenCL backend's kernels against the SGEMM
 * rooflines of the same machine:
 *
 *   OpenBLAS SGEMM, n = 2048, on the host            (GFLOP/s; the fastest
 *     correct core type of sgemm_roofline.c, named with OpenBLAS's own choice;
 *     a fraction of it above 1.0 is marked SUSPECT)
 *   CLBlast SGEMM, n = 1024, on the OpenCL device    (GFLOP/s)
 *   the fused kernel and the gemm path on the device, dilated attention
 *   with D = 64, segment 2048, dilation 1, H = 1, N = 32768, causal and not
 *
 * Attention FLOPs count 4*D per (query, key) pair scored (2*D for the
 * score, 2*D for the weighted sum); causal counts only key <= query. Each
 * figure is the best of --reps timed runs after one untimed warm-up (which
 * builds the programs). The plugin is driven through its table, as the
 * core drives it. Usage: bench/opencl_kernel_bench [--device I] [--rows N]
 * [--dim D] [--segment W] [--reps R] [--peak-gflops G] [--kernel K]
 * [--options S] [--backward] (--kernel: only that kernel; --options: the
 * device options, e.g. fused=tiled,tile_q=32; --backward: time the backward
 * pass, run_segment_backward, instead, from the forward's O and LSE; its
 * FLOPs count 10*D per pair: S = QK^T and dP = dO V^T (2*D each), dV, dQ
 * and dK (2*D each), the usual count; the fused kernels recompute S and dP
 * in each of their two kernels, which is not counted). */
#include <clblast_c.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <CL/cl.h>

#include "longnet-plugin.h"
#include "sgemm_roofline.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(float *x, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
}

/* The host's OpenBLAS SGEMM roofline (sgemm_roofline.c): each core type the
 * CPU can run, in its own process, checked; prints which one it used. */
static double bench_openblas(int n, int reps)
{
    static sgemm_roofline r;
    sgemm_roofline_measure(&r, n, reps);
    char tried[2048];
    sgemm_roofline_tried(&r, tried, sizeof tried);
    const sgemm_core *x = sgemm_roofline_used(&r);
    printf("OpenBLAS SGEMM n=%d (host):           %8.1f GFLOP/s, core %s (fastest correct; "
           "OpenBLAS's own choice: %s)\n  tried %s; checked %d sampled entries each; %s%s\n", n,
           x ? x->best_gflops : 0.0, x ? x->corename : "none", r.own_choice, tried, r.samples,
           r.inherited_set ? "OPENBLAS_CORETYPE inherited, ignored: " : "OPENBLAS_CORETYPE not set",
           r.inherited);
    return x ? x->best_gflops : 0.0;
}

/* The device_index-th OpenCL device over all platforms, as the plugin
 * orders them (it drops devices it cannot use, so the index may differ on
 * machines with unusable devices; the name is printed). */
static double bench_clblast(int device_index, int n, int reps, char *name, size_t name_len)
{
    cl_platform_id plats[16];
    cl_uint np = 0;
    if (clGetPlatformIDs(16, plats, &np) != CL_SUCCESS)
        return 0;
    int seen = 0;
    cl_device_id dev = NULL;
    for (cl_uint p = 0; p < np && !dev; p++) {
        cl_device_id ids[16];
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 16, ids, &nd) != CL_SUCCESS)
            continue;
        for (cl_uint i = 0; i < nd && !dev; i++)
            if (seen++ == device_index)
                dev = ids[i];
    }
    if (!dev)
        return 0;
    clGetDeviceInfo(dev, CL_DEVICE_NAME, name_len, name, NULL);
    cl_int err;
    cl_context cx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    cl_command_queue q = clCreateCommandQueue(cx, dev, 0, &err);
    size_t nn = (size_t)n * (size_t)n;
    float *h = malloc(nn * sizeof(float));
    fill(h, nn, 3);
    cl_mem a = clCreateBuffer(cx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, nn * 4, h, &err);
    cl_mem b = clCreateBuffer(cx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, nn * 4, h, &err);
    cl_mem c = clCreateBuffer(cx, CL_MEM_READ_WRITE, nn * 4, NULL, &err);
    double best = 1e30;
    for (int i = 0; i <= reps; i++) {
        double t = now();
        CLBlastStatusCode st = CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo,
                                            CLBlastTransposeNo, (size_t)n, (size_t)n, (size_t)n,
                                            1.0f, a, 0, (size_t)n, b, 0, (size_t)n, 0.0f, c, 0,
                                            (size_t)n, &q, NULL);
        clFinish(q);
        t = now() - t;
        if (st != CLBlastSuccess) {
            fprintf(stderr, "CLBlastSgemm: status %d\n", (int)st);
            best = 1e30;
            break;
        }
        if (i > 0 && t < best)
            best = t;
    }
    clReleaseMemObject(a);
    clReleaseMemObject(b);
    clReleaseMemObject(c);
    clReleaseCommandQueue(q);
    clReleaseContext(cx);
    free(h);
    return best < 1e30 ? 2.0 * n * (double)n * n / best * 1e-9 : 0;
}

typedef struct attn {
    const lnet_plugin *pl;
    void *dev;
    int64_t N, D, W;
    void *q, *k, *v, *out, *lse;
    void *dout, *delta, *dq, *dk, *dv; /* --backward only */
} attn;

/* GFLOP/s of one level (segment W, dilation 1) with `kernel`; 0 on failure. */
static double bench_attention(attn *a, const char *kernel, int causal, int reps)
{
    lnet_segment_job job = {.size = sizeof job, .batch = 1, .rows = a->N, .heads = 1,
                            .dim = a->D, .row_begin = 0, .row_end = a->N, .segment = a->W,
                            .dilation = 1, .offsets = LNET_PLUGIN_OFFSETS_INTERLEAVED,
                            .causal = causal, .init = 1, .scale = 1.0f / sqrtf((float)a->D),
                            .kernel = kernel, .q = a->q, .k = a->k, .v = a->v, .out = a->out,
                            .lse = a->lse};
    lnet_segment_backward_job bwd = {.size = sizeof bwd, .level = job, .dout = a->dout,
                                     .delta = a->delta, .dq = a->dq, .dk = a->dk, .dv = a->dv};
    /* The backward from the forward's own O and LSE (so that P is a
     * softmax), computed once, untimed. */
    if (a->dq && (a->pl->run_segment(a->dev, &job) || a->pl->synchronize(a->dev))) {
        fprintf(stderr, "%s: %s\n", kernel, a->pl->last_error());
        return 0;
    }
    double best = 1e30;
    for (int i = 0; i <= reps; i++) {
        double t = now();
        if ((a->dq ? a->pl->run_segment_backward(a->dev, &bwd) : a->pl->run_segment(a->dev, &job)) ||
            a->pl->synchronize(a->dev)) {
            fprintf(stderr, "%s: %s\n", kernel, a->pl->last_error());
            return 0;
        }
        t = now() - t;
        if (i > 0 && t < best)
            best = t;
    }
    double pairs = 0;
    for (int64_t s = 0; s < a->N; s += a->W) {
        double n = (double)(a->N - s < a->W ? a->N - s : a->W);
        pairs += causal ? n * (n + 1) / 2 : n * n;
    }
    return (a->dq ? 10.0 : 4.0) * (double)a->D * pairs / best * 1e-9;
}

int main(int argc, char **argv)
{
    /* Our own re-executed copy measuring one SGEMM core type. */
    int child_rc = sgemm_child_main(argc, argv);
    if (child_rc >= 0)
        return child_rc;
    int device = 0, reps = 3, backward = 0;
    const char *only = NULL, *options = NULL;
    int64_t N = 32768, D = 64, W = 2048;
    double peak = 0;
    /* Options come in pairs: --name value. */
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: %s [--device I] [--rows N] [--dim D] [--segment W] [--reps R] "
                   "[--peak-gflops G] [--kernel fused|gemm] [--options DEVICE_OPTIONS] "
                   "[--backward]\n",
                   argv[0]);
            return 0;
        } else if (strcmp(argv[i], "--backward") == 0) {
            backward = 1; /* a flag: no value */
            i--;
        } else if (v && strcmp(argv[i], "--device") == 0)
            device = atoi(v);
        else if (v && strcmp(argv[i], "--rows") == 0)
            N = atoll(v);
        else if (v && strcmp(argv[i], "--dim") == 0)
            D = atoll(v);
        else if (v && strcmp(argv[i], "--segment") == 0)
            W = atoll(v);
        else if (v && strcmp(argv[i], "--reps") == 0)
            reps = atoi(v);
        else if (v && strcmp(argv[i], "--peak-gflops") == 0)
            peak = atof(v);
        else if (v && strcmp(argv[i], "--kernel") == 0)
            only = v;
        else if (v && strcmp(argv[i], "--options") == 0)
            options = v;
        else {
            fprintf(stderr, "%s: unknown argument '%s' (try --help)\n", argv[0], argv[i]);
            return 2;
        }
    }
    if (N < 1 || D < 1 || W < 1 || reps < 1) {
        fprintf(stderr, "%s: --rows, --dim, --segment and --reps must be >= 1\n", argv[0]);
        return 2;
    }

    char path[4096];
    snprintf(path, sizeof path, "%s/.libs/longnet-opencl.so", OPENCL_PLUGIN_DIR);
    void *mod = dlopen(path, RTLD_NOW);
    if (!mod) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return 1;
    }
    lnet_plugin_entry_fn entry;
    *(void **)&entry = dlsym(mod, LNET_PLUGIN_ENTRY_SYMBOL);
    attn a = {.pl = entry ? entry() : NULL, .N = N, .D = D, .W = W};
    int n_dev = 0;
    if (!a.pl || a.pl->probe(&n_dev) || device < 0 || device >= n_dev) {
        fprintf(stderr, "no OpenCL device %d (%d found)\n", device, n_dev);
        return 1;
    }
    lnet_plugin_device_desc desc;
    a.pl->describe(device, &desc);
    if (a.pl->open(device, options, &a.dev)) {
        fprintf(stderr, "open: %s\n", a.pl->last_error());
        return 1;
    }
    size_t n4 = (size_t)N * (size_t)D;
    float *h = malloc(n4 * sizeof(float));
    fill(h, n4, 4);
    /* q, k, v, out, dout, dq, dk, dv hold N x D floats; lse, delta N. */
    void **bufs[10] = {&a.q, &a.k, &a.v, &a.out, &a.lse, &a.delta, &a.dout, &a.dq, &a.dk, &a.dv};
    const int n_bufs = backward ? 10 : 5;
    for (int i = 0; i < n_bufs; i++) {
        size_t bytes = (i == 4 || i == 5 ? (size_t)N : n4) * sizeof(float);
        if (a.pl->buffer_alloc(a.dev, bytes, bufs[i]) ||
            a.pl->buffer_write(a.dev, *bufs[i], 0, h, bytes)) {
            fprintf(stderr, "buffers: %s\n", a.pl->last_error());
            return 1;
        }
    }

    printf("device %d: %s (%s), %d compute units\n", device, desc.name, desc.kind,
           desc.compute_units);
    double blas = bench_openblas(2048, reps);
    char clname[256] = "";
    double clb = bench_clblast(device, 1024, reps, clname, sizeof clname);
    printf("CLBlast SGEMM n=1024 (%s): %8.1f GFLOP/s\n", clname, clb);
    printf("attention%s: N=%lld, D=%lld, segment %lld, dilation 1, H=1, B=1\n",
           backward ? " backward (10*D FLOPs a pair)" : "", (long long)N, (long long)D,
           (long long)W);
    const char *kernels[2] = {"fused", strstr(desc.kernels, "gemm") ? "gemm" : NULL};
    int suspects = 0;
    for (int k = 0; k < 2; k++) {
        if (!kernels[k] || (only && strcmp(only, kernels[k]) != 0))
            continue;
        for (int causal = 0; causal <= 1; causal++) {
            double g = bench_attention(&a, kernels[k], causal, reps);
            const char *why = blas > 0 ? sgemm_suspect_reason(g / blas) : NULL;
            suspects += why != NULL;
            printf("%-5s %-10s %8.1f GFLOP/s  = %5.1f%% of OpenBLAS%s, %5.2fx CLBlast SGEMM",
                   kernels[k], causal ? "causal" : "non-causal", g,
                   blas > 0 ? 100 * g / blas : 0, why ? " (SUSPECT)" : "", clb > 0 ? g / clb : 0);
            if (peak > 0)
                printf(", %5.1f%% of peak", 100 * g / peak);
            printf("\n");
        }
    }
    if (suspects)
        printf("SUSPECT: %s\n", sgemm_suspect_reason(2.0));
    if (strcmp(desc.kind, "gpu") == 0 && peak <= 0)
        printf("(a GPU: give --peak-gflops for the fraction of its FP32 peak)\n");
    for (int i = 0; i < n_bufs; i++)
        a.pl->buffer_free(a.dev, *bufs[i]);
    a.pl->close(a.dev);
    free(h);
    return 0;
}
