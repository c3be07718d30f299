#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cmd_run.c — `longnet run`: dilated attention forward on three .npy files.
 *
 * Everything that can be checked before computing is checked first, cheapest
 * first (the command line, then the configuration's syntax, then the files,
 * then the devices), so that a mistake is reported before minutes of work and
 * an existing output file is never touched by a run that fails.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

void cmd_run_usage(FILE *out)
{
    fputs("Usage: longnet run --q Q.npy --k K.npy --v V.npy\n"
          "                   --segments W0,W1,... --dilations R0,R1,...\n"
          "                   --out O.npy [--lse LSE.npy] [--causal]\n"
          "                   [--offsets interleaved|grouped] [--scale S]\n"
          "                   [--device LIST] [--kernel NAME]\n"
          "                   [--algorithm auto|gather|ring] [--explain] [--force]\n"
          "                   [--quiet]\n"
          "\n"
          "Computes LongNet's dilated attention O = attn(Q, K, V) for float32 or\n"
          "float64 .npy inputs: K and V of shape [B, N, H, D] (batch, tokens,\n"
          "heads, head dim), Q of the same shape or of fewer rows [B, Nq, H, D]\n"
          "(the sequence's last Nq positions: cross-attention, decoding), and\n"
          "writes O as float32 [B, Nq, H, D].\n"
          "\n"
          "  --q, --k, --v FILE   the inputs\n"
          "  --segments LIST      segment length of each level (w >= 1)\n"
          "  --dilations LIST     dilation of each level (1 <= r <= w); as many\n"
          "                       entries as --segments, at least one equal to 1\n"
          "  --out FILE           the output O (replaced atomically: a failed run\n"
          "                       leaves an existing file as it was; a symlink's\n"
          "                       target is replaced, a device or FIFO written to)\n"
          "  --lse FILE           also write the log-sum-exp, float32 [B, H, Nq]\n"
          "                       (O and LSE are committed together or not at all)\n"
          "  --causal             a query attends only keys at or before it\n"
          "  --offsets MODE       head offsets: interleaved (head h uses h mod r,\n"
          "                       the default) or grouped (h / ceil(H / r))\n"
          "  --scale S            score scale, a positive finite number\n"
          "                       (default 1/sqrt(D))\n"
          "  --device LIST        one device, BACKEND or BACKEND:INDEX (default\n"
          "                       cpu; see 'longnet info'), or several that split\n"
          "                       the sequence: cpu,opencl:0 (weights measured by\n"
          "                       a short calibration) or cpu=1,opencl:0=3;\n"
          "                       device options in braces: 'opencl:0{tile_q=32}'\n"
          "  --kernel NAME        a kernel of every listed device (default: each\n"
          "                       device's first)\n"
          "  --algorithm NAME     for segments that span devices: gather (LongNet's\n"
          "                       sparse K/V exchange), ring (K/V blocks passed\n"
          "                       around; dilation-1 levels) or auto (default: ring\n"
          "                       for dilation-1 levels spanning every device)\n"
          "  --explain            print the plan first: rows per device, per level\n"
          "                       local or exchanged, bytes sent and received\n"
          "  --force              run even when the inputs and outputs need more\n"
          "                       memory than is available (also LONGNET_FORCE=1)\n"
          "  --quiet              print nothing on success\n"
          "\n"
          "Output files must differ from each other and from the inputs.\n", out);
}

enum {
    OPT_Q = 1, OPT_K, OPT_V, OPT_SEGMENTS, OPT_DILATIONS, OPT_CAUSAL, OPT_OFFSETS,
    OPT_SCALE, OPT_DEVICE, OPT_KERNEL, OPT_OUT, OPT_LSE, OPT_QUIET, OPT_ALGORITHM, OPT_EXPLAIN,
    OPT_FORCE
};

typedef struct run_args {
    const char *path[3]; /* q, k, v */
    const char *segments, *dilations, *offsets, *scale, *device, *kernel;
    const char *out, *lse, *algorithm;
    int causal, quiet, explain, force;
} run_args;

static const char *const input_name[3] = { "--q", "--k", "--v" };

/* Parses the command line into `a`; returns -1 when done, else an exit code. */
static int parse_args(int argc, char **argv, run_args *a)
{
    static const cli_option options[] = {
        { "q", 1, OPT_Q }, { "k", 1, OPT_K }, { "v", 1, OPT_V },
        { "segments", 1, OPT_SEGMENTS }, { "dilations", 1, OPT_DILATIONS },
        { "causal", 0, OPT_CAUSAL }, { "offsets", 1, OPT_OFFSETS },
        { "scale", 1, OPT_SCALE }, { "device", 1, OPT_DEVICE },
        { "kernel", 1, OPT_KERNEL }, { "out", 1, OPT_OUT }, { "lse", 1, OPT_LSE },
        { "quiet", 0, OPT_QUIET }, { "algorithm", 1, OPT_ALGORITHM },
        { "explain", 0, OPT_EXPLAIN }, { "force", 0, OPT_FORCE },
        { NULL, 0, 0 }
    };
    memset(a, 0, sizeof *a);
    a->device = "cpu";

    cli_parser p;
    cli_parser_init(&p, argc, argv, options);
    for (int id; (id = cli_next_option(&p)) != CLI_OPT_END;) {
        switch (id) {
        case CLI_OPT_HELP: cmd_run_usage(stdout); return CLI_EXIT_OK;
        case CLI_OPT_ERROR: return CLI_EXIT_USAGE;
        case OPT_Q: a->path[0] = p.value; break;
        case OPT_K: a->path[1] = p.value; break;
        case OPT_V: a->path[2] = p.value; break;
        case OPT_SEGMENTS: a->segments = p.value; break;
        case OPT_DILATIONS: a->dilations = p.value; break;
        case OPT_CAUSAL: a->causal = 1; break;
        case OPT_OFFSETS: a->offsets = p.value; break;
        case OPT_SCALE: a->scale = p.value; break;
        case OPT_DEVICE: a->device = p.value; break;
        case OPT_KERNEL: a->kernel = p.value; break;
        case OPT_OUT: a->out = p.value; break;
        case OPT_LSE: a->lse = p.value; break;
        case OPT_QUIET: a->quiet = 1; break;
        case OPT_ALGORITHM: a->algorithm = p.value; break;
        case OPT_EXPLAIN: a->explain = 1; break;
        case OPT_FORCE: a->force = 1; break;
        }
    }
    for (int i = 0; i < 3; i++)
        if (!a->path[i])
            return cli_usage_error("missing required option %s", input_name[i]);
    if (!a->segments)
        return cli_usage_error("missing required option --segments");
    if (!a->dilations)
        return cli_usage_error("missing required option --dilations");
    if (!a->out)
        return cli_usage_error("missing required option --out");
    return -1;
}

/* Writing O over Q would destroy an input the user may still need, and the
 * same file for O and LSE would keep only the last one written. */
static int check_paths(const run_args *a)
{
    const char *outs[2] = { a->out, a->lse };
    const char *out_name[2] = { "--out", "--lse" };
    for (int o = 0; o < 2; o++) {
        if (!outs[o])
            continue;
        for (int i = 0; i < 3; i++)
            if (cli_same_file(outs[o], a->path[i])) {
                cli_error("%s '%s' is the same file as the input %s '%s'", out_name[o],
                          outs[o], input_name[i], a->path[i]);
                return CLI_EXIT_FAIL;
            }
    }
    /* Both into /dev/null (or one terminal) is fine: nothing is replaced. */
    struct stat sb;
    int device = stat(a->out, &sb) == 0 && S_ISCHR(sb.st_mode);
    if (a->lse && !device && cli_same_file(a->out, a->lse)) {
        cli_error("--out '%s' and --lse '%s' are the same file", a->out, a->lse);
        return CLI_EXIT_FAIL;
    }
    return -1;
}

/* The levels and settings; D is not known yet, so validation comes later. */
static int build_config(const run_args *a, lnet_config **out)
{
    lnet_config *cfg = NULL;
    if (lnet_config_create(&cfg) != LNET_OK)
        return cli_lib_error(NULL);
    *out = cfg;
    if (lnet_config_parse_levels(cfg, a->segments, a->dilations) != LNET_OK)
        return cli_lib_error(NULL);
    if (lnet_config_set_causal(cfg, a->causal) != LNET_OK)
        return cli_lib_error(NULL);
    if (a->offsets) {
        lnet_offsets mode;
        if (lnet_offsets_parse(a->offsets, &mode) != LNET_OK)
            return cli_lib_error("--offsets");
        if (lnet_config_set_offsets(cfg, mode) != LNET_OK)
            return cli_lib_error(NULL);
    }
    if (a->scale) {
        double s;
        /* 0 would silently mean "default" to the library; a user who typed
         * 0 made a mistake, so only positive values are accepted here. */
        cli_num_status ns = cli_parse_double(a->scale, &s);
        if (ns != CLI_NUM_OK || !(s > 0)) {
            cli_error("--scale '%s' is not a positive finite number%s", a->scale,
                      ns == CLI_NUM_NONFINITE && strchr(a->scale, 'e') ? " (it over- or underflows)" : "");
            return CLI_EXIT_FAIL;
        }
        /* The library's own message offers 0 for the default, which this
         * command refuses; say what to do here instead. */
        if (lnet_config_set_scale(cfg, s) != LNET_OK) {
            cli_error("--scale '%s' is not a positive finite float32 (between %.9g and %.9g); "
                      "leave --scale out for 1/sqrt(D)", a->scale, 1.40129846e-45, 3.40282347e38);
            return CLI_EXIT_FAIL;
        }
    }
    return -1;
}

static const char *const tname[3] = { "Q", "K", "V" };

/* Reads the headers of Q, K, V (no data yet) and checks they are 4-D, K and
 * V of one shape and Q of the same B, H, D with at most K's rows, so that a
 * mistake costs nothing and the memory a run needs is known before
 * anything is read. */
static int inspect_inputs(const run_args *a, lnet_npy_info info[3])
{
    char s0[256], s1[256];
    for (int i = 0; i < 3; i++) {
        info[i].size = sizeof info[i];
        if (lnet_npy_inspect(a->path[i], &info[i]) != LNET_OK)
            return cli_lib_error(NULL);
        if (info[i].ndim != 4) {
            cli_error("%s '%s' has shape %s (%d-D); expected 4-D [B, N, H, D]", tname[i],
                      a->path[i], lnet_shape_str(info[i].ndim, info[i].shape, s0, sizeof s0),
                      info[i].ndim);
            return CLI_EXIT_FAIL;
        }
    }
    for (int d = 0; d < 4; d++)
        if (info[2].shape[d] != info[1].shape[d]) {
            cli_error("%s '%s' has shape %s but %s '%s' has shape %s; K and V must have one "
                      "shape", tname[2], a->path[2], lnet_shape_str(4, info[2].shape, s1, sizeof s1),
                      tname[1], a->path[1], lnet_shape_str(4, info[1].shape, s0, sizeof s0));
            return CLI_EXIT_FAIL;
        }
    for (int d = 0; d < 4; d++)
        if (d == 1 ? info[0].shape[1] > info[1].shape[1] : info[0].shape[d] != info[1].shape[d]) {
            cli_error("%s '%s' has shape %s but %s '%s' has shape %s; Q needs the B, H and D "
                      "of K and V and at most their rows (%s has fewer rows only as the "
                      "sequence's last positions)", tname[0], a->path[0],
                      lnet_shape_str(4, info[0].shape, s0, sizeof s0), tname[1], a->path[1],
                      lnet_shape_str(4, info[1].shape, s1, sizeof s1), tname[0]);
            return CLI_EXIT_FAIL;
        }
    return -1;
}

/* Loads Q, K, V; a file whose shape changed since it was inspected is
 * refused rather than computed on. */
static int load_inputs(const run_args *a, const lnet_npy_info info[3], lnet_tensor *t[3])
{
    for (int i = 0; i < 3; i++) {
        if (lnet_npy_load(a->path[i], &t[i]) != LNET_OK)
            return cli_lib_error(NULL);
        int same = lnet_tensor_ndim(t[i]) == info[i].ndim;
        for (int d = 0; same && d < info[i].ndim; d++)
            same = lnet_tensor_dim(t[i], d) == info[i].shape[d];
        if (!same) {
            cli_error("%s '%s' changed while longnet was reading it", tname[i], a->path[i]);
            return CLI_EXIT_FAIL;
        }
    }
    return -1;
}

/* What the run holds in host memory at once: Q, K, V and O as float32,
 * LSE, and for an OpenCL device that runs on the host's CPU (PoCL, Intel's
 * CPU runtime) its buffers, which are host memory too: up to one more copy
 * of each tensor. Refused with the numbers when more than is available,
 * unless forced. */
static int check_memory(const run_args *a, const int64_t shape[4], int host_buffers)
{
    const char *env = getenv("LONGNET_FORCE");
    if (a->force || (env && strcmp(env, "1") == 0))
        return -1;
    /* Sizes were overflow-checked by the reader; products of the four
     * dimensions fit in size_t, so in uint64_t. */
    uint64_t tensor = 4, lse = 4;
    for (int d = 0; d < 4; d++)
        tensor *= (uint64_t)shape[d];
    lse *= (uint64_t)shape[0] * (uint64_t)shape[1] * (uint64_t)shape[2];
    uint64_t host = 4 * tensor + (a->lse ? lse : 0);
    /* One copy however many such devices share it. */
    const uint64_t copies = host_buffers ? 4 * tensor + lse : 0;
    uint64_t need = host + copies;
    const char *source;
    uint64_t avail = cli_memory_available(&source);
    if (need <= avail)
        return -1;
    char bn[32], ba[32], bt[32], bc[32];
    cli_bytes_str(need, bn, sizeof bn);
    cli_bytes_str(avail, ba, sizeof ba);
    cli_bytes_str(tensor, bt, sizeof bt);
    cli_bytes_str(copies, bc, sizeof bc);
    cli_error("the run needs %s (Q, K, V and O %s each as float32%s%s%s) but only %s is "
              "available (%s); use smaller inputs or fewer devices in host memory, or pass "
              "--force (LONGNET_FORCE=1) to try anyway", bn, bt,
              a->lse ? ", LSE" : "", copies ? ", device buffers in host memory " : "",
              copies ? bc : "", ba, source);
    return CLI_EXIT_FAIL;
}

/* How many elements of t are NaN or infinite, and the first one's index. */
static size_t count_non_finite(const lnet_tensor *t, size_t *first)
{
    const float *x = lnet_tensor_cdata(t);
    size_t n = lnet_tensor_numel(t), bad = 0;
    *first = 0;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]) && bad++ == 0)
            *first = i;
    return bad;
}

/* A NaN or infinity in the result is the operator's honest answer to a
 * non-finite input (DESIGN §1), but rarely what the user meant: say how
 * many and where the first is, on stderr, without failing. */
static void warn_non_finite(const lnet_tensor *out, const lnet_tensor *lse, const char *out_path,
                            const char *lse_path)
{
    size_t first, bad = count_non_finite(out, &first);
    if (bad) {
        int64_t N = lnet_tensor_dim(out, 1), H = lnet_tensor_dim(out, 2), D = lnet_tensor_dim(out, 3);
        size_t row = first / (size_t)D;
        cli_warning("O '%s' holds %zu non-finite value%s (NaN or infinity); the first is in "
                    "row b=%lld, n=%lld, h=%lld (an input holds non-finite values or scores "
                    "that overflow float32)", out_path, bad, bad == 1 ? "" : "s",
                    (long long)(row / (size_t)H / (size_t)N), (long long)(row / (size_t)H % (size_t)N),
                    (long long)(row % (size_t)H));
    }
    if (!lse)
        return;
    size_t lfirst, lbad = count_non_finite(lse, &lfirst);
    if (lbad) {
        int64_t H = lnet_tensor_dim(lse, 1), N = lnet_tensor_dim(lse, 2);
        cli_warning("LSE '%s' holds %zu non-finite value%s; the first is b=%lld, h=%lld, n=%lld",
                    lse_path, lbad, lbad == 1 ? "" : "s",
                    (long long)(lfirst / (size_t)N / (size_t)H),
                    (long long)(lfirst / (size_t)N % (size_t)H), (long long)(lfirst % (size_t)N));
    }
}

/* Log messages of `run`. While plugins load they are not printed (a
 * refused plugin the user does not need is no reason for noise, and stderr
 * must stay one line on failure), only counted so that a missing device can
 * point at them. Once running, a warning (a device failed and its rows went
 * to the others) is news the user must see. */
typedef struct run_log {
    int loading;
    int warnings;
} run_log;

static void on_log(lnet_log_level level, const char *message, void *user)
{
    run_log *log = user;
    if (level < LNET_LOG_WARNING)
        return;
    if (log->loading)
        log->warnings++;
    else
        fprintf(stderr, "longnet run: warning: %s\n", message);
}

/* 1 if `name` is one entry of the comma-separated `list`. */
static int in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* Finds every device of the list (its entries "SPEC" or "SPEC=WEIGHT") and
 * checks the kernel against each device's kernels, so that a typo is
 * reported with the names that would have worked. `dev` gets the first;
 * *host_buffers says whether a listed device other than the CPU backend
 * runs on the host's CPU (its buffers are host memory: check_memory). */
static int pick_devices(const run_args *a, lnet_context *ctx, const run_log *log,
                        lnet_device_info *dev, int *host_buffers)
{
    *host_buffers = 0;
    const char *p = a->device;
    char spec[128];
    for (int first = 1; p;) {
        p = cli_next_device_spec(p, spec, sizeof spec);
        if (!spec[0])
            continue; /* the library names a malformed list precisely */
        lnet_device_info d;
        int index;
        if (lnet_context_find_device(ctx, spec, &index) != LNET_OK) {
            /* Read now: finding a device probes its backend, which may
             * have warned just now. */
            const int warnings = log->warnings;
            if (warnings > 0)
                cli_error("%s (%d plugin warning%s; see 'longnet info')", lnet_last_error(),
                          warnings, warnings == 1 ? "" : "s");
            else
                cli_error("%s", lnet_last_error());
            return CLI_EXIT_FAIL;
        }
        if (lnet_context_device(ctx, index, &d) != LNET_OK)
            return cli_lib_error(NULL);
        if (a->kernel && d.kernels && !in_list(d.kernels, a->kernel)) {
            cli_error("--kernel '%s' is not a kernel of device %s:%d (it has: %s)", a->kernel,
                      d.backend, d.index, d.kernels);
            return CLI_EXIT_FAIL;
        }
        if (strcmp(d.backend, "cpu") != 0 && d.kind && strcmp(d.kind, "cpu") == 0)
            *host_buffers = 1;
        if (first)
            *dev = d;
        first = 0;
    }
    return -1;
}

static void print_summary(const run_args *a, const lnet_config *cfg, const lnet_tensor *q,
                          const lnet_tensor *lse, const lnet_device_info *dev, double ms)
{
    char s[256];
    printf("input   %s [B, N, H, D]\n", cli_tensor_shape_str(q, s, sizeof s));
    printf("levels ");
    for (int i = 0; i < lnet_config_levels(cfg); i++)
        printf(" %lld/%lld", (long long)lnet_config_segment(cfg, i),
               (long long)lnet_config_dilation(cfg, i));
    printf("  (segment/dilation)\n");
    double scale = lnet_config_scale(cfg);
    printf("causal  %s, offsets %s, scale ", lnet_config_causal(cfg) ? "yes" : "no",
           lnet_config_offsets(cfg) == LNET_OFFSETS_GROUPED ? "grouped" : "interleaved");
    if (scale > 0)
        printf("%.17g\n", scale);
    else
        printf("1/sqrt(%lld)\n", (long long)lnet_tensor_dim(q, 3));
    const char *kernel = a->kernel;
    char first[128];
    if (!kernel) {
        /* The default kernel is the first of the device's list. */
        const char *k = dev->kernels ? dev->kernels : "";
        size_t len = strcspn(k, ",");
        snprintf(first, sizeof first, "%.*s", (int)len, k);
        kernel = *first ? first : "default";
    }
    if (strchr(a->device, ','))
        printf("devices %s, kernel %s\n", a->device, kernel);
    else
        printf("device  %s:%d (%s), kernel %s\n", dev->backend, dev->index,
               dev->name ? dev->name : "?", kernel);
    printf("time    %.3f ms\n", ms);
    printf("out     %s %s\n", a->out, cli_tensor_shape_str(q, s, sizeof s));
    if (lse)
        printf("lse     %s %s\n", a->lse, cli_tensor_shape_str(lse, s, sizeof s));
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

int cmd_run_main(int argc, char **argv)
{
    cli_set_prog("longnet run");
    cli_signals_install();
    run_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if ((rc = check_paths(&a)) >= 0)
        return rc;

    lnet_config *cfg = NULL;
    lnet_tensor *in[3] = { NULL, NULL, NULL };
    lnet_tensor *out = NULL, *lse = NULL;
    lnet_context *ctx = NULL;
    run_log log = { 1, 0 };
    lnet_device_info dev = { 0 };
    lnet_algorithm algorithm = LNET_ALGORITHM_AUTO;
    lnet_npy_info info[3];

    if (a.algorithm && lnet_algorithm_parse(a.algorithm, &algorithm) != LNET_OK) {
        rc = cli_lib_error(NULL);
        goto done;
    }
    if ((rc = build_config(&a, &cfg)) >= 0)
        goto done;
    if ((rc = inspect_inputs(&a, info)) >= 0)
        goto done;
    int64_t shape[4];
    for (int d = 0; d < 4; d++)
        shape[d] = info[0].shape[d];
    if (lnet_config_validate(cfg, shape[3]) != LNET_OK) {
        rc = cli_lib_error(NULL);
        goto done;
    }

    lnet_context_options copts = { .size = sizeof copts, .log = on_log, .log_user = &log };
    if (lnet_context_create(&copts, &ctx) != LNET_OK) {
        rc = cli_lib_error(NULL);
        goto done;
    }
    int host_buffers;
    if ((rc = pick_devices(&a, ctx, &log, &dev, &host_buffers)) >= 0)
        goto done;
    log.loading = 0;
    /* Loading a device's runtime may have replaced our handlers. */
    cli_signals_install();
    /* Counted at K's rows for every tensor: Q and O have at most as many. */
    if ((rc = check_memory(&a, info[1].shape, host_buffers)) >= 0)
        goto done;
    if ((rc = load_inputs(&a, info, in)) >= 0)
        goto done;

    int64_t lse_shape[3] = { shape[0], shape[2], shape[1] }; /* [B, H, N] */
    if (lnet_tensor_create(4, shape, &out) != LNET_OK ||
        (a.lse && lnet_tensor_create(3, lse_shape, &lse) != LNET_OK)) {
        rc = cli_lib_error(NULL);
        goto done;
    }

    lnet_run_options ropts = { .size = sizeof ropts, .device = a.device, .kernel = a.kernel,
                               .algorithm = algorithm };
    if (a.explain) {
        char *plan = NULL;
        if (lnet_attention_explain_rows(ctx, cfg, shape[0], shape[1], info[1].shape[1], shape[2],
                                        shape[3], &ropts,
                                   &plan) != LNET_OK) {
            rc = cli_lib_error(NULL);
            goto done;
        }
        fputs(plan, stdout);
        lnet_free(plan);
    }
    double t0 = now_ms();
    if (lnet_attention_forward(ctx, cfg, in[0], in[1], in[2], out, lse, &ropts) != LNET_OK) {
        rc = cli_lib_error(NULL);
        goto done;
    }
    double ms = now_ms() - t0;
    warn_non_finite(out, lse, a.out, a.lse);

    /* O and LSE together or not at all: a failed LSE must not leave a new
     * O beside an old LSE. */
    const char *paths[2] = { a.out, a.lse };
    const lnet_tensor *tensors[2] = { out, lse };
    if ((rc = cli_outputs_save(lse ? 2 : 1, paths, tensors)) != CLI_EXIT_OK)
        goto done;
    if (!a.quiet)
        print_summary(&a, cfg, in[0], lse, &dev, ms);
    rc = CLI_EXIT_OK;

done:
    lnet_tensor_free(lse);
    lnet_tensor_free(out);
    for (int i = 0; i < 3; i++)
        lnet_tensor_free(in[i]);
    lnet_context_free(ctx);
    lnet_config_free(cfg);
    return rc;
}
