#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_options.c — longnet-bench's command line: the usage text (the
 * defaults are documented here and in bench/README.md), parsing with the
 * command's own helpers (tools/cli_util.c), and every check that can be made
 * before a plugin is loaded. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli_util.h"

#define DEFAULT_LENGTHS "2048,4096"
#define DEFAULT_REPEAT 3
#define DEFAULT_MAX_SECONDS 60.0
#define DEFAULT_CHECK_LENGTH 512
#define DEFAULT_SCALING_MAX (16LL << 20)
#define MAX_TOKENS (1LL << 30) /* the paper's 1B tokens per batch */
#define MAX_LENGTH (1LL << 40)

void bench_usage(FILE *out)
{
    fputs("Usage: longnet-bench [--matrix] [--figure5] [--scaling] [--device LIST]\n"
          "                     [--kernel LIST|all]\n"
          "                     [--config LIST] [--segments LIST --dilations LIST]\n"
          "                     [--heads H] [--dim D] [--batch B] [--lengths LIST]\n"
          "                     [--causal yes|no|both] [--offsets interleaved|grouped]\n"
          "                     [--pass forward,backward]\n"
          "                     [--repeat R] [--warmup W] [--max-seconds S]\n"
          "                     [--max-memory BYTES] [--check-length N]\n"
          "                     [--csv FILE] [--json FILE] [--outdir DIR]\n"
          "                     [--tokens-per-batch T] [--scaling-max-length N] [--explain]\n"
          "                     [--peer torch] [--peer-python PYTHON] [--quiet] [--mpi]\n"
          "\n"
          "Benchmarks LongNet's dilated attention forward on every device of\n"
          "'longnet info' and prints a table: median time, tokens/s, GFLOP/s (4*D\n"
          "FLOPs per (query, key) pair actually scored; causal: key <= query),\n"
          "the fraction of OpenBLAS SGEMM for CPU devices, peak memory, and the\n"
          "max abs error against the CPU reference kernel on a small instance.\n"
          "A backward cell (--pass backward) times lnet_attention_backward with\n"
          "the forward's saved O and LSE (the forward runs once before, untimed)\n"
          "and counts 2.5 times the forward's FLOPs for the same pairs\n"
          "(FlashAttention-2's convention); its error is the max over dQ, dK, dV.\n"
          "Without arguments: the matrix, then Figure 5 (see bench/README.md for\n"
          "how long: each sweep keeps to --max-seconds).\n"
          "\n"
          "Sweeps (none of the three flags: --matrix and --figure5):\n"
          "  --matrix             devices x kernels x configurations x causal x lengths\n"
          "  --figure5            the paper's Figure 5: T tokens per batch held\n"
          "                       constant, B = T/N for N = 8192, 16384, ..., T;\n"
          "                       dilated (config figure5: segments 2048, the tokens\n"
          "                       per device, N; dilation w/2048, so every segment\n"
          "                       selects 2048 rows) against vanilla (w=N, r=1);\n"
          "                       causal unless --causal says otherwise; H=1, D=64\n"
          "                       unless --heads/--dim; --pass forward,backward adds\n"
          "                       forward+backward latency; writes figure5.csv, .gp, .png,\n"
          "                       .svg into --outdir (default ./bench-out)\n"
          "  --tokens-per-batch T Figure 5's T, a power of two >= 8192 (default: the\n"
          "                       largest that --max-memory and --max-seconds allow)\n"
          "  --scaling            B=1, N from 8192 doubling until the budget or\n"
          "                       --scaling-max-length (default 16777216): dense vs\n"
          "                       dilated (config scaling) latency, the per-token cost;\n"
          "                       writes scaling.csv, .gp, .png, .svg into --outdir\n"
          "What to run:\n"
          "  --device LIST        device specs as in 'longnet run' (cpu, opencl:1),\n"
          "                       comma-separated (default: every device); a group\n"
          "                       cpu:0+opencl:0 is one sequence split over those\n"
          "                       devices by the scheduler (weights calibrated)\n"
          "  --kernel LIST        kernels to run on each device that has them, or\n"
          "                       'all' (default: every kernel but the CPU reference)\n"
          "  --config LIST        of paper (segments 2048,4096,8192,16384,32768,\n"
          "                       dilations 1,2,4,6,12, H=12, D=64), figure5 (segments\n"
          "                       2048, tokens per device, N; dilation w/2048; H=1,\n"
          "                       D=64), scaling (segments 2048*4^k <= N, dilation\n"
          "                       w/2048, H=1, D=64), dense (one level w=N r=1, H=12,\n"
          "                       D=64), custom (default: paper,dense; custom alone\n"
          "                       when --segments is given)\n"
          "  --segments, --dilations LIST   the custom configuration (H=12, D=64)\n"
          "  --heads H, --dim D   override every configuration's H and D\n"
          "  --batch B            batch size (default 1)\n"
          "  --lengths LIST       sequence lengths of the matrix (default " DEFAULT_LENGTHS ")\n"
          "  --causal MODE        yes, no or both (default both; Figure 5: yes)\n"
          "  --offsets MODE       head offsets, interleaved (default) or grouped\n"
          "  --pass LIST          the passes of the matrix and --figure5: forward,\n"
          "                       backward or both as forward,backward (default\n"
          "                       forward; --scaling is forward only); with both,\n"
          "                       --figure5 also gets forward+backward cells (the\n"
          "                       sum of the two medians) and lines in its plot\n"
          "How:\n"
          "  --repeat R           timed runs per cell, the median is reported (default 3)\n"
          "  --warmup W           untimed runs before them (default 1)\n"
          "  --max-seconds S      the time budget of each sweep (default 60), shared\n"
          "                       equally by the devices-and-kernels (a share left\n"
          "                       unused goes to the others): a series stops before\n"
          "                       a cell predicted to overrun its share, and a cell\n"
          "                       still running when its share is spent is cut off\n"
          "  --max-memory BYTES   stop before a length whose Q, K, V and O exceed BYTES\n"
          "                       (suffix K, M, G allowed; default half the memory)\n"
          "  --check-length N     error-check instance length: min(N, this), segments\n"
          "                       capped to it (default 512; 0: no error check)\n"
          "Output:\n"
          "  --csv FILE, --json FILE   every field of every cell and the machine\n"
          "                       description (written atomically)\n"
          "  --outdir DIR         where the Figure-5 files go (default ./bench-out)\n"
          "  --explain            run nothing: for every cell the sweeps would run (and\n"
          "                       those the budget would skip) print a line naming it\n"
          "                       and its plan from lnet_attention_explain: the chunk\n"
          "                       per device, the graph's nodes, the transfers and the\n"
          "                       bytes per device; no roofline, no files; exit 1 if\n"
          "                       any explain failed\n"
          "  --peer torch         also time the same operator written over PyTorch's\n"
          "                       scaled_dot_product_attention (bench/peers/torch_sdpa.py)\n"
          "                       on every forward cell (not under --mpi), checked on\n"
          "                       the small instance; adds its median and\n"
          "                       torch/longnet to the table, CSV and JSON, and its\n"
          "                       lines to the plots (needs torch >= 2:\n"
          "                       scripts/install-peers); without --peer, on by\n"
          "                       itself once install-peers' virtualenv exists\n"
          "                       ($LONGNET_PEERS_VENV or ~/.cache/longnet/peers);\n"
          "                       --peer none: off\n"
          "  --peer-python PYTHON the Python with torch (default $LONGNET_PEER_PYTHON,\n"
          "                       else install-peers' ~/.cache/longnet/peers, else python3)\n"
          "  --quiet              no progress on stderr\n"
          "  --mpi                with --figure5 under mpirun: every cell's calls across\n"
          "                       the ranks (lnet_part), each rank on N/ranks rows, timed\n"
          "                       as the slowest rank's; rank 0 prints and writes; no\n"
          "                       error check (needs longnet built with MPI)\n"
          "  --version            the version\n"
          "\n"
          "Exit status: 0 success, 1 a cell or an output failed, 2 bad command line.\n",
          out);
}

enum {
    OPT_DEVICE = 1, OPT_KERNEL, OPT_CONFIG, OPT_SEGMENTS, OPT_DILATIONS, OPT_HEADS, OPT_DIM,
    OPT_BATCH, OPT_LENGTHS, OPT_CAUSAL, OPT_OFFSETS, OPT_REPEAT, OPT_WARMUP,
    OPT_MAX_SECONDS, OPT_MAX_MEMORY, OPT_CHECK_LENGTH, OPT_CSV, OPT_JSON, OPT_OUTDIR,
    OPT_MATRIX, OPT_FIGURE5, OPT_SCALING, OPT_TOKENS, OPT_SCALING_MAX, OPT_QUIET,
    OPT_EXPLAIN, OPT_VERSION, OPT_PASS, OPT_PEER, OPT_PEER_PYTHON, OPT_MPI
};

/* A positive integer option in [min, max]; prints the error itself. */
static int int_option(const char *opt, const char *v, int64_t min, int64_t max, int64_t *out)
{
    switch (cli_parse_i64(v, min, max, out)) {
    case CLI_NUM_OK:
        return 0;
    case CLI_NUM_SMALL:
        cli_error("%s '%s' is less than %lld", opt, v, (long long)min);
        return -1;
    case CLI_NUM_LARGE:
        cli_error("%s '%s' is larger than %lld", opt, v, (long long)max);
        return -1;
    default:
        cli_error("%s '%s' is not an integer", opt, v);
        return -1;
    }
}

/* "8G", "512M", "4096": bytes. */
static int bytes_option(const char *v, uint64_t *out)
{
    size_t len = strlen(v);
    uint64_t mult = 1;
    char num[64];
    char last = len ? v[len - 1] : 0;
    if (last == 'K' || last == 'M' || last == 'G' || last == 'T') {
        mult = last == 'K' ? 1ull << 10 : last == 'M' ? 1ull << 20 : last == 'G' ? 1ull << 30
                                                                              : 1ull << 40;
        len--;
    }
    int64_t n;
    snprintf(num, sizeof num, "%.*s", (int)(len < sizeof num ? len : sizeof num - 1), v);
    if (len == 0 || len >= sizeof num || cli_parse_i64(num, 1, INT64_MAX / (int64_t)mult, &n)) {
        cli_error("--max-memory '%s' is not a positive size in bytes (e.g. 8G, 512M, 4096)", v);
        return -1;
    }
    *out = (uint64_t)n * mult;
    return 0;
}

/* The entry of a comma list that starts at p, into name; where the next
 * one starts. */
static const char *next_entry(const char *p, char *name, size_t len)
{
    size_t n = strcspn(p, ",");
    snprintf(name, len, "%.*s", (int)n, p);
    return p[n] ? p + n + 1 : p + n;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The values of the options, checked; -1 to go on, else an exit code. */
typedef struct raw {
    const char *configs, *segments, *dilations, *lengths, *causal, *offsets, *passes;
} raw;

static int check_values(const raw *r, bench_options *o)
{
    char err[BENCH_TEXT_LEN];
    if (!r->segments != !r->dilations)
        return cli_usage_error("%s needs %s too", r->segments ? "--segments" : "--dilations",
                               r->segments ? "--dilations" : "--segments");
    if (r->segments) {
        /* The library's own rules and messages (DESIGN §1); no plugin needed. */
        lnet_config *cfg = NULL;
        if (lnet_config_create(&cfg) || lnet_config_parse_levels(cfg, r->segments, r->dilations) ||
            lnet_config_validate(cfg, 0)) {
            lnet_config_free(cfg);
            return cli_lib_error(NULL);
        }
        o->custom.n = lnet_config_levels(cfg);
        for (int i = 0; i < o->custom.n; i++) {
            o->custom.w[i] = lnet_config_segment(cfg, i);
            o->custom.r[i] = lnet_config_dilation(cfg, i);
        }
        lnet_config_free(cfg);
    }
    const char *configs = r->configs ? r->configs : r->segments ? "custom" : "paper,dense";
    o->nconfigs = 0;
    for (const char *p = configs; *p;) {
        char name[64];
        p = next_entry(p, name, sizeof name);
        bench_config_kind k;
        if (!name[0] || bench_config_parse(name, &k) != 0) {
            cli_error("--config '%s': unknown configuration '%s' (known: paper, figure5, "
                      "scaling, dense, custom)", configs, name);
            return CLI_EXIT_FAIL;
        }
        if (k == BENCH_CFG_CUSTOM && !r->segments)
            return cli_usage_error("--config custom needs --segments and --dilations");
        int dup = 0;
        for (int i = 0; i < o->nconfigs; i++)
            dup |= o->configs[i] == k;
        if (!dup)
            o->configs[o->nconfigs++] = k;
    }
    if (r->lengths) {
        if (cli_parse_i64_list(r->lengths, "--lengths", 1, MAX_LENGTH, o->lengths,
                               BENCH_MAX_LIST, &o->nlengths, err, sizeof err)) {
            cli_error("%s", err);
            return CLI_EXIT_FAIL;
        }
    } else {
        cli_parse_i64_list(DEFAULT_LENGTHS, "lengths", 1, MAX_LENGTH, o->lengths,
                           BENCH_MAX_LIST, &o->nlengths, err, sizeof err);
    }
    /* Shortest first (the budget predicts each length from the one before),
     * each once. */
    qsort(o->lengths, (size_t)o->nlengths, sizeof *o->lengths, cmp_i64);
    int n = 0;
    for (int i = 0; i < o->nlengths; i++)
        if (n == 0 || o->lengths[n - 1] != o->lengths[i])
            o->lengths[n++] = o->lengths[i];
    o->nlengths = n;

    const char *causal = r->causal ? r->causal : "both";
    if (strcmp(causal, "both") == 0) {
        o->causal_modes[0] = 0;
        o->causal_modes[1] = 1;
        o->ncausal = 2;
    } else if (strcmp(causal, "yes") == 0 || strcmp(causal, "no") == 0) {
        o->causal_modes[0] = strcmp(causal, "yes") == 0;
        o->ncausal = 1;
    } else {
        cli_error("--causal '%s' must be yes, no or both", causal);
        return CLI_EXIT_FAIL;
    }
    o->npasses = 0;
    const char *passes = r->passes ? r->passes : "forward";
    unsigned seen = 0; /* bit 0 forward, bit 1 backward */
    for (const char *p = passes; *p || o->npasses == 0;) {
        char name[64];
        p = next_entry(p, name, sizeof name);
        int backward = strcmp(name, "backward") == 0;
        if (!backward && strcmp(name, "forward") != 0) {
            cli_error("--pass '%s': unknown pass '%s' (known: forward, backward)", passes, name);
            return CLI_EXIT_FAIL;
        }
        if (!(seen & (1u << backward)))
            o->passes[o->npasses++] = backward;
        seen |= 1u << backward;
    }
    if (r->offsets && lnet_offsets_parse(r->offsets, &o->offsets) != LNET_OK)
        return cli_lib_error("--offsets");
    if (o->max_memory == 0) {
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        o->max_memory = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 2
                                              : 4ull << 30;
    }
    if (!o->run_matrix && !o->run_figure5 && !o->run_scaling)
        o->run_matrix = o->run_figure5 = 1;
    return -1;
}

int bench_parse_options(int argc, char **argv, bench_options *o)
{
    static const cli_option options[] = {
        { "device", 1, OPT_DEVICE }, { "kernel", 1, OPT_KERNEL }, { "config", 1, OPT_CONFIG },
        { "segments", 1, OPT_SEGMENTS }, { "dilations", 1, OPT_DILATIONS },
        { "heads", 1, OPT_HEADS }, { "dim", 1, OPT_DIM }, { "batch", 1, OPT_BATCH },
        { "lengths", 1, OPT_LENGTHS }, { "causal", 1, OPT_CAUSAL },
        { "offsets", 1, OPT_OFFSETS }, { "repeat", 1, OPT_REPEAT },
        { "warmup", 1, OPT_WARMUP }, { "max-seconds", 1, OPT_MAX_SECONDS },
        { "max-memory", 1, OPT_MAX_MEMORY }, { "check-length", 1, OPT_CHECK_LENGTH },
        { "csv", 1, OPT_CSV }, { "json", 1, OPT_JSON }, { "outdir", 1, OPT_OUTDIR },
        { "matrix", 0, OPT_MATRIX }, { "figure5", 0, OPT_FIGURE5 },
        { "scaling", 0, OPT_SCALING }, { "tokens-per-batch", 1, OPT_TOKENS },
        { "scaling-max-length", 1, OPT_SCALING_MAX }, { "quiet", 0, OPT_QUIET },
        { "explain", 0, OPT_EXPLAIN }, { "version", 0, OPT_VERSION }, { "pass", 1, OPT_PASS },
        { "peer", 1, OPT_PEER }, { "peer-python", 1, OPT_PEER_PYTHON },
        { "mpi", 0, OPT_MPI },
        { NULL, 0, 0 }
    };
    memset(o, 0, sizeof *o);
    o->batch = 1;
    o->repeat = DEFAULT_REPEAT;
    o->warmup = 1;
    o->max_seconds = DEFAULT_MAX_SECONDS;
    o->check_length = DEFAULT_CHECK_LENGTH;
    o->outdir = "bench-out";
    o->scaling_max_length = DEFAULT_SCALING_MAX;
    o->offsets = LNET_OFFSETS_INTERLEAVED;

    raw r;
    memset(&r, 0, sizeof r);
    int64_t v;
    cli_parser p;
    cli_parser_init(&p, argc, argv, options);
    for (int id; (id = cli_next_option(&p)) != CLI_OPT_END;) {
        switch (id) {
        case CLI_OPT_HELP: bench_usage(stdout); return CLI_EXIT_OK;
        case CLI_OPT_ERROR: return CLI_EXIT_USAGE;
        case OPT_VERSION: printf("longnet-bench %s\n", lnet_version()); return CLI_EXIT_OK;
        case OPT_DEVICE: o->devices = p.value; break;
        case OPT_KERNEL: o->kernels = p.value; break;
        case OPT_CONFIG: r.configs = p.value; break;
        case OPT_SEGMENTS: r.segments = p.value; break;
        case OPT_DILATIONS: r.dilations = p.value; break;
        case OPT_LENGTHS: r.lengths = p.value; break;
        case OPT_CAUSAL: r.causal = p.value; o->causal_given = 1; break;
        case OPT_OFFSETS: r.offsets = p.value; break;
        case OPT_PASS: r.passes = p.value; break;
        case OPT_CSV: o->csv = p.value; break;
        case OPT_JSON: o->json = p.value; break;
        case OPT_OUTDIR: o->outdir = p.value; break;
        case OPT_MATRIX: o->run_matrix = 1; break;
        case OPT_FIGURE5: o->run_figure5 = 1; break;
        case OPT_SCALING: o->run_scaling = 1; break;
        case OPT_TOKENS:
            if (int_option("--tokens-per-batch", p.value, 8192, MAX_TOKENS,
                           &o->tokens_per_batch))
                return CLI_EXIT_FAIL;
            if (o->tokens_per_batch & (o->tokens_per_batch - 1)) {
                cli_error("--tokens-per-batch '%s' is not a power of two (B = T/N must be "
                          "whole for N = 8192, 16384, ...)", p.value);
                return CLI_EXIT_FAIL;
            }
            break;
        case OPT_QUIET: o->quiet = 1; break;
        case OPT_PEER:
            if (strcmp(p.value, "torch") != 0 && strcmp(p.value, "none") != 0) {
                cli_error("--peer '%s' is not a peer (torch, or none)", p.value);
                return CLI_EXIT_FAIL;
            }
            o->peer = strcmp(p.value, "torch") == 0 ? "torch" : NULL;
            o->peer_given = 1;
            break;
        case OPT_PEER_PYTHON: o->peer_python = p.value; break;
        case OPT_EXPLAIN: o->explain = 1; break;
        case OPT_MPI: o->mpi = 1; break;
        case OPT_HEADS:
            if (int_option("--heads", p.value, 1, 1 << 20, &o->heads))
                return CLI_EXIT_FAIL;
            break;
        case OPT_DIM:
            if (int_option("--dim", p.value, 1, 1 << 16, &o->dim))
                return CLI_EXIT_FAIL;
            break;
        case OPT_BATCH:
            if (int_option("--batch", p.value, 1, 1 << 20, &o->batch))
                return CLI_EXIT_FAIL;
            break;
        case OPT_REPEAT:
            if (int_option("--repeat", p.value, 1, BENCH_MAX_REPEAT, &v))
                return CLI_EXIT_FAIL;
            o->repeat = (int)v;
            break;
        case OPT_WARMUP:
            if (int_option("--warmup", p.value, 0, 100, &v))
                return CLI_EXIT_FAIL;
            o->warmup = (int)v;
            break;
        case OPT_CHECK_LENGTH:
            if (int_option("--check-length", p.value, 0, 1 << 20, &o->check_length))
                return CLI_EXIT_FAIL;
            break;
        case OPT_SCALING_MAX:
            if (int_option("--scaling-max-length", p.value, 8192, MAX_LENGTH,
                           &o->scaling_max_length))
                return CLI_EXIT_FAIL;
            break;
        case OPT_MAX_SECONDS: {
            double s;
            if (cli_parse_double(p.value, &s) != CLI_NUM_OK || !(s > 0)) {
                cli_error("--max-seconds '%s' is not a positive number", p.value);
                return CLI_EXIT_FAIL;
            }
            o->max_seconds = s;
            break;
        }
        case OPT_MAX_MEMORY:
            if (bytes_option(p.value, &o->max_memory))
                return CLI_EXIT_FAIL;
            break;
        }
    }
    if (o->explain && (o->csv || o->json))
        return cli_usage_error("--explain runs nothing and writes no %s",
                               o->csv ? "--csv" : "--json");
    if (o->csv && o->json && cli_same_file(o->csv, o->json)) {
        cli_error("--csv '%s' and --json '%s' are the same file", o->csv, o->json);
        return CLI_EXIT_FAIL;
    }
    return check_values(&r, o);
}
