#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cli_attn.c — what the attention commands `longnet run` (the forward) and
 * `longnet grad` (the backward) share: their common options, the
 * configuration, the headers and shapes of Q, K, V, the devices, the
 * memory check, the plan, the summary's first lines.
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

const char *const cli_attn_input_flag[3] = { "--q", "--k", "--v" };
const char *const cli_attn_input_name[3] = { "Q", "K", "V" };

void cli_attn_usage(FILE *out)
{
    fputs("  --q, --k, --v FILE   the inputs\n"
          "  --segments LIST      segment length of each level (w >= 1)\n"
          "  --dilations LIST     dilation of each level (1 <= r <= w); as many\n"
          "                       entries as --segments, at least one equal to 1\n"
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
          "  --mpi                run across the ranks of mpirun: each rank reads\n"
          "                       its rows, runs its share on its own --device\n"
          "                       list, and the ranks write the outputs together\n"
          "                       (README \"Across machines (MPI)\"); Q must have\n"
          "                       K's rows\n"
          "  --layout NAME        with --mpi: contiguous (default) or zigzag chunks\n"
          "                       (rank i gets chunks i and 2R-1-i: causal balance)\n"
          "\n"
          "Output files must differ from each other and from the inputs.\n", out);
}

void cli_attn_args_init(cli_attn_args *a)
{
    memset(a, 0, sizeof *a);
    a->device = "cpu";
}

/* Takes a shared option into `a`: 1 if `id` was one, else 0. */
static int take_option(cli_attn_args *a, int id, const char *value)
{
    switch (id) {
    case CLI_ATTN_OPT_Q: a->path[0] = value; return 1;
    case CLI_ATTN_OPT_K: a->path[1] = value; return 1;
    case CLI_ATTN_OPT_V: a->path[2] = value; return 1;
    case CLI_ATTN_OPT_SEGMENTS: a->segments = value; return 1;
    case CLI_ATTN_OPT_DILATIONS: a->dilations = value; return 1;
    case CLI_ATTN_OPT_CAUSAL: a->causal = 1; return 1;
    case CLI_ATTN_OPT_OFFSETS: a->offsets = value; return 1;
    case CLI_ATTN_OPT_SCALE: a->scale = value; return 1;
    case CLI_ATTN_OPT_DEVICE: a->device = value; return 1;
    case CLI_ATTN_OPT_KERNEL: a->kernel = value; return 1;
    case CLI_ATTN_OPT_ALGORITHM: a->algorithm = value; return 1;
    case CLI_ATTN_OPT_EXPLAIN: a->explain = 1; return 1;
    case CLI_ATTN_OPT_FORCE: a->force = 1; return 1;
    case CLI_ATTN_OPT_QUIET: a->quiet = 1; return 1;
    case CLI_ATTN_OPT_MPI: a->mpi = 1; return 1;
    case CLI_ATTN_OPT_LAYOUT: a->layout = value; return 1;
    default: return 0;
    }
}

int cli_attn_next_option(cli_parser *p, cli_attn_args *a, void (*usage)(FILE *out), int *rc)
{
    *rc = -1;
    for (int id; (id = cli_next_option(p)) != CLI_OPT_END;) {
        if (take_option(a, id, p->value))
            continue;
        if (id == CLI_OPT_HELP || id == CLI_OPT_ERROR) {
            if (id == CLI_OPT_HELP)
                usage(stdout);
            *rc = id == CLI_OPT_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
            return CLI_OPT_END;
        }
        return id;
    }
    return CLI_OPT_END;
}

int cli_attn_require(const cli_attn_args *a)
{
    for (int i = 0; i < 3; i++)
        if (!a->path[i])
            return cli_usage_error("missing required option %s", cli_attn_input_flag[i]);
    if (!a->segments)
        return cli_usage_error("missing required option --segments");
    if (!a->dilations)
        return cli_usage_error("missing required option --dilations");
    return -1;
}

/* Writing O over Q would destroy an input the user may still need, and the
 * same file for two outputs would keep only the last one written. */
int cli_check_paths(int nin, const char *const in[], const char *const in_flag[], int nout,
                    const char *const outs[], const char *const out_flag[])
{
    for (int o = 0; o < nout; o++) {
        if (!outs[o])
            continue;
        for (int i = 0; i < nin; i++)
            if (in[i] && cli_same_file(outs[o], in[i])) {
                cli_error("%s '%s' is the same file as the input %s '%s'", out_flag[o],
                          outs[o], in_flag[i], in[i]);
                return CLI_EXIT_FAIL;
            }
    }
    for (int o = 0; o < nout; o++) {
        /* Both into /dev/null (or one terminal) is fine: nothing is replaced. */
        struct stat sb;
        if (!outs[o] || (stat(outs[o], &sb) == 0 && S_ISCHR(sb.st_mode)))
            continue;
        for (int p = o + 1; p < nout; p++)
            if (outs[p] && cli_same_file(outs[o], outs[p])) {
                cli_error("%s '%s' and %s '%s' are the same file", out_flag[o], outs[o],
                          out_flag[p], outs[p]);
                return CLI_EXIT_FAIL;
            }
    }
    return -1;
}

/* The levels and settings; D is not known yet, so validation comes later. */
int cli_attn_build_config(const cli_attn_args *a, lnet_config **out)
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

int cli_inspect(const char *path, const char *name, int ndim, const char *layout,
                lnet_npy_info *info)
{
    char s[256];
    info->size = sizeof *info;
    if (lnet_npy_inspect(path, info) != LNET_OK)
        return cli_lib_error(NULL);
    if (info->ndim != ndim) {
        cli_error("%s '%s' has shape %s (%d-D); expected %d-D %s", name, path,
                  lnet_shape_str(info->ndim, info->shape, s, sizeof s), info->ndim, ndim, layout);
        return CLI_EXIT_FAIL;
    }
    return -1;
}

/* Reads the headers of Q, K, V (no data yet) and checks they are 4-D, K and
 * V of one shape and Q of the same B, H, D with at most K's rows, so that a
 * mistake costs nothing and the memory a run needs is known before
 * anything is read. */
static int inspect_inputs(const cli_attn_args *a, lnet_npy_info info[3])
{
    const char *const *tname = cli_attn_input_name;
    char s0[256], s1[256];
    for (int i = 0; i < 3; i++) {
        int rc = cli_inspect(a->path[i], tname[i], 4, "[B, N, H, D]", &info[i]);
        if (rc >= 0)
            return rc;
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

int cli_load(int n, const char *const paths[], const char *const names[],
             const lnet_npy_info info[], lnet_tensor *t[])
{
    for (int i = 0; i < n; i++) {
        if (lnet_npy_load(paths[i], &t[i]) != LNET_OK)
            return cli_lib_error(NULL);
        int same = lnet_tensor_ndim(t[i]) == info[i].ndim;
        for (int d = 0; same && d < info[i].ndim; d++)
            same = lnet_tensor_dim(t[i], d) == info[i].shape[d];
        if (!same) {
            cli_error("%s '%s' changed while longnet was reading it", names[i], paths[i]);
            return CLI_EXIT_FAIL;
        }
    }
    return -1;
}

int cli_attn_prepare(cli_attn *s, const cli_attn_args *a)
{
    memset(s, 0, sizeof *s);
    s->args = a;
    s->loading = 1;
    lnet_algorithm algorithm = LNET_ALGORITHM_AUTO;
    if (a->algorithm && lnet_algorithm_parse(a->algorithm, &algorithm) != LNET_OK)
        return cli_lib_error(NULL);
    s->ropts = (lnet_run_options){ .size = sizeof s->ropts, .device = a->device,
                                   .kernel = a->kernel, .algorithm = algorithm };
    int rc = cli_attn_build_config(a, &s->cfg);
    if (rc < 0)
        rc = inspect_inputs(a, s->info);
    if (rc >= 0)
        return rc;
    for (int d = 0; d < 4; d++)
        s->shape[d] = s->info[0].shape[d];
    if (lnet_config_validate(s->cfg, s->shape[3]) != LNET_OK)
        return cli_lib_error(NULL);
    return -1;
}

/* Log messages. While plugins load they are not printed (a refused plugin
 * the user does not need is no reason for noise, and stderr must stay one
 * line on failure), only counted so that a missing device can point at
 * them. Once running, a warning (a device failed and its rows went to the
 * others) is news the user must see. */
static void on_log(lnet_log_level level, const char *message, void *user)
{
    cli_attn *s = user;
    if (level < LNET_LOG_WARNING)
        return;
    if (s->loading)
        s->warnings++;
    else
        cli_warning("%s", message);
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
 * reported with the names that would have worked. s->dev gets the first;
 * s->host_buffers says whether a listed device other than the CPU backend
 * runs on the host's CPU (its buffers are host memory: the memory check). */
static int pick_devices(cli_attn *s)
{
    const cli_attn_args *a = s->args;
    s->host_buffers = 0;
    const char *p = a->device;
    char spec[128];
    for (int first = 1; p;) {
        p = cli_next_device_spec(p, spec, sizeof spec);
        if (!spec[0])
            continue; /* the library names a malformed list precisely */
        lnet_device_info d;
        int index;
        if (lnet_context_find_device(s->ctx, spec, &index) != LNET_OK) {
            /* Read now: finding a device probes its backend, which may
             * have warned just now. */
            const int warnings = s->warnings;
            if (warnings > 0)
                cli_error("%s (%d plugin warning%s; see 'longnet info')", lnet_last_error(),
                          warnings, warnings == 1 ? "" : "s");
            else
                cli_error("%s", lnet_last_error());
            return CLI_EXIT_FAIL;
        }
        if (lnet_context_device(s->ctx, index, &d) != LNET_OK)
            return cli_lib_error(NULL);
        if (a->kernel && d.kernels && !in_list(d.kernels, a->kernel)) {
            cli_error("--kernel '%s' is not a kernel of device %s:%d (it has: %s)", a->kernel,
                      d.backend, d.index, d.kernels);
            return CLI_EXIT_FAIL;
        }
        if (strcmp(d.backend, "cpu") != 0 && d.kind && strcmp(d.kind, "cpu") == 0)
            s->host_buffers = 1;
        if (first)
            s->dev = d;
        first = 0;
    }
    return -1;
}

int cli_attn_open(cli_attn *s)
{
    lnet_context_options copts = { .size = sizeof copts, .log = on_log, .log_user = s };
    if (lnet_context_create(&copts, &s->ctx) != LNET_OK)
        return cli_lib_error(NULL);
    int rc = pick_devices(s);
    if (rc >= 0)
        return rc;
    s->loading = 0;
    /* Loading a device's runtime may have replaced our handlers. */
    cli_signals_install();
    return -1;
}

/* What the run holds in host memory at once: its tensors as float32, LSE,
 * and for an OpenCL device that runs on the host's CPU (PoCL, Intel's CPU
 * runtime) its buffers, which are host memory too: up to one more copy of
 * each tensor. Counted at K's rows for every tensor: Q, O and their
 * gradients have at most as many. */
int cli_attn_check_memory(const cli_attn *s, int tensors, int with_lse, const char *names)
{
    const char *env = getenv("LONGNET_FORCE");
    if (s->args->force || (env && strcmp(env, "1") == 0))
        return -1;
    const int64_t *shape = s->info[1].shape;
    /* Sizes were overflow-checked by the reader; products of the four
     * dimensions fit in size_t, so in uint64_t. */
    uint64_t tensor = 4, lse = 4;
    for (int d = 0; d < 4; d++)
        tensor *= (uint64_t)shape[d];
    lse *= (uint64_t)shape[0] * (uint64_t)shape[1] * (uint64_t)shape[2];
    uint64_t host = (uint64_t)tensors * tensor + (with_lse ? lse : 0);
    /* One copy however many such devices share it. */
    const uint64_t copies = s->host_buffers ? (uint64_t)tensors * tensor + lse : 0;
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
    cli_error("the run needs %s (%s %s each as float32%s%s%s) but only %s is "
              "available (%s); use smaller inputs or fewer devices in host memory, or pass "
              "--force (LONGNET_FORCE=1) to try anyway", bn, names, bt,
              with_lse ? ", LSE" : "", copies ? ", device buffers in host memory " : "",
              copies ? bc : "", ba, source);
    return CLI_EXIT_FAIL;
}

int cli_attn_explain(cli_attn *s, int backward)
{
    if (!s->args->explain)
        return -1;
    char *plan = NULL;
    lnet_status st = (backward ? lnet_attention_explain_backward : lnet_attention_explain_rows)(
        s->ctx, s->cfg, s->shape[0], s->shape[1], s->info[1].shape[1], s->shape[2], s->shape[3],
        &s->ropts, &plan);
    if (st != LNET_OK)
        return cli_lib_error(NULL);
    fputs(plan, stdout);
    lnet_free(plan);
    return -1;
}

void cli_attn_print_setup(const cli_attn *s, const lnet_tensor *q, double ms)
{
    const cli_attn_args *a = s->args;
    const lnet_config *cfg = s->cfg;
    char buf[256];
    printf("input   %s [B, N, H, D]\n", cli_tensor_shape_str(q, buf, sizeof buf));
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
        const char *k = s->dev.kernels ? s->dev.kernels : "";
        size_t len = strcspn(k, ",");
        snprintf(first, sizeof first, "%.*s", (int)len, k);
        kernel = *first ? first : "default";
    }
    if (strchr(a->device, ','))
        printf("devices %s, kernel %s\n", a->device, kernel);
    else
        printf("device  %s:%d (%s), kernel %s\n", s->dev.backend, s->dev.index,
               s->dev.name ? s->dev.name : "?", kernel);
    printf("time    %.3f ms\n", ms);
}

void cli_attn_free(cli_attn *s)
{
    lnet_context_free(s->ctx);
    lnet_config_free(s->cfg);
    s->ctx = NULL;
    s->cfg = NULL;
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

/* A NaN or infinity in a result is the operator's honest answer to a
 * non-finite input (DESIGN §1), but rarely what the user meant: say how
 * many and where the first is, on stderr, without failing. */
void cli_warn_non_finite(const char *name, const char *path, const lnet_tensor *t)
{
    size_t first, bad = count_non_finite(t, &first);
    if (!bad)
        return;
    if (lnet_tensor_ndim(t) == 4) {
        int64_t N = lnet_tensor_dim(t, 1), H = lnet_tensor_dim(t, 2), D = lnet_tensor_dim(t, 3);
        size_t row = first / (size_t)D;
        cli_warning("%s '%s' holds %zu non-finite value%s (NaN or infinity); the first is in "
                    "row b=%lld, n=%lld, h=%lld (an input holds non-finite values or scores "
                    "that overflow float32)", name, path, bad, bad == 1 ? "" : "s",
                    (long long)(row / (size_t)H / (size_t)N), (long long)(row / (size_t)H % (size_t)N),
                    (long long)(row % (size_t)H));
    } else {
        int64_t H = lnet_tensor_dim(t, 1), N = lnet_tensor_dim(t, 2);
        cli_warning("%s '%s' holds %zu non-finite value%s; the first is b=%lld, h=%lld, n=%lld",
                    name, path, bad, bad == 1 ? "" : "s",
                    (long long)(first / (size_t)N / (size_t)H),
                    (long long)(first / (size_t)N % (size_t)H), (long long)(first % (size_t)N));
    }
}

double cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}
