#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cmd_plan.c — `longnet plan`: what a run of N tokens split over R ranks
 * needs before anyone books a cluster: per rank its memory, the bytes it
 * sends and receives per level, its FLOPs, and the time predicted from a
 * given or measured throughput.
 *
 * The bytes come from the plan the scheduler itself would run
 * (lnet_attention_partition), so they are what `longnet run --explain`
 * prints for the same split; the FLOPs from the exact pair count the bench
 * uses (common/attn_pairs.c). Every size is 64-bit and overflow-checked:
 * N = 10^9 and beyond are the point of the command.
 */
#include <stdlib.h>
#include <string.h>

#include "attn_pairs.h"
#include "cli.h"
#include "cli_plan.h"

void cmd_plan_usage(FILE *out)
{
    fputs("Usage: longnet plan --tokens N --ranks R --mem-per-rank BYTES\n"
          "                    --segments W0,W1,... --dilations R0,R1,...\n"
          "                    [--devices-per-rank D] [--throughput TOKENS_PER_S | --measure]\n"
          "                    [--bandwidth BYTES_PER_S] [--backward] [--heads H]\n"
          "                    [--head-dim D] [--batch B] [--causal]\n"
          "                    [--offsets interleaved|grouped] [--algorithm NAME]\n"
          "                    [--device LIST] [--kernel NAME] [--measure-tokens M]\n"
          "\n"
          "Sizes a run of N tokens (self-attention, [B, N, H, D] float32) split\n"
          "over R ranks in contiguous chunks, as the scheduler splits rows (on\n"
          "multiples of the smallest segment length), each rank's chunk again\n"
          "over its D devices. Prints per rank: the memory of Q, K, V, O, LSE\n"
          "(and dO, dQ, dK, dV, Delta with --backward) and the exchange buffers,\n"
          "against --mem-per-rank; the bytes it sends and receives per level (from\n"
          "the plan the scheduler runs: what 'longnet run --explain' prints for\n"
          "the same split); its FLOPs; and the predicted time. Exits 1 when a\n"
          "rank's memory does not fit, after printing the plan.\n"
          "\n"
          "  --tokens N           the sequence length, 1 <= N (no upper bound but\n"
          "                       64-bit sizes); N need not divide by R\n"
          "  --ranks R            ranks (processes), 1 <= R <= N; R x D <= 64\n"
          "  --devices-per-rank D devices splitting each rank's chunk (default 1)\n"
          "  --mem-per-rank BYTES memory of one rank, in bytes or with a suffix\n"
          "                       KiB, MiB, GiB, TiB (80GiB)\n"
          "  --throughput T       one rank's forward (with --backward: forward +\n"
          "                       backward) tokens per second on this configuration\n"
          "  --measure            measure T instead: a short real run on this\n"
          "                       machine's --device LIST (one rank's devices)\n"
          "  --measure-tokens M   its length (default: a multiple of the largest\n"
          "                       segment up to 131072, less for large B x H x D)\n"
          "  --bandwidth B        one rank's link, bytes per second each way\n"
          "                       (default 12.5e9: 100 Gbit/s)\n"
          "  --backward           plan forward + backward (a training step)\n"
          "  --heads H, --head-dim D, --batch B   the shape (default 1, 64, 1)\n"
          "  --segments, --dilations, --causal, --offsets, --algorithm, --device,\n"
          "  --kernel             as for 'longnet run'\n"
          "\n"
          "The model: a rank computes FLOPs_r / rate, rate = T x FLOPs(N) / N (the\n"
          "configuration's FLOPs per token on one device), and sends and receives\n"
          "max(sent_r, received_r) / B; predicted time = max_r compute_r +\n"
          "max_r communication_r (no overlap assumed: an upper bound; link latency\n"
          "not counted).\n", out);
}

enum {
    OPT_TOKENS = CLI_ATTN_OPT_END, OPT_RANKS, OPT_DPR, OPT_MEM, OPT_THROUGHPUT, OPT_MEASURE,
    OPT_MEASURE_TOKENS, OPT_BANDWIDTH, OPT_BACKWARD, OPT_HEADS, OPT_HEAD_DIM, OPT_BATCH
};

typedef struct plan_args {
    cli_attn_args c;
    const char *text[OPT_BATCH + 1]; /* the values as given, by option id */
    int measure, backward;
} plan_args;

static int parse_args(int argc, char **argv, plan_args *a)
{
    static const cli_option options[] = {
        { "segments", 1, CLI_ATTN_OPT_SEGMENTS }, { "dilations", 1, CLI_ATTN_OPT_DILATIONS },
        { "causal", 0, CLI_ATTN_OPT_CAUSAL }, { "offsets", 1, CLI_ATTN_OPT_OFFSETS },
        { "device", 1, CLI_ATTN_OPT_DEVICE }, { "kernel", 1, CLI_ATTN_OPT_KERNEL },
        { "algorithm", 1, CLI_ATTN_OPT_ALGORITHM },
        { "tokens", 1, OPT_TOKENS }, { "ranks", 1, OPT_RANKS },
        { "devices-per-rank", 1, OPT_DPR }, { "mem-per-rank", 1, OPT_MEM },
        { "throughput", 1, OPT_THROUGHPUT }, { "measure", 0, OPT_MEASURE },
        { "measure-tokens", 1, OPT_MEASURE_TOKENS }, { "bandwidth", 1, OPT_BANDWIDTH },
        { "backward", 0, OPT_BACKWARD }, { "heads", 1, OPT_HEADS },
        { "head-dim", 1, OPT_HEAD_DIM }, { "batch", 1, OPT_BATCH }, { NULL, 0, 0 }
    };
    memset(a, 0, sizeof *a);
    cli_attn_args_init(&a->c);
    a->c.device = NULL; /* --measure's default depends on D */
    cli_parser p;
    cli_parser_init(&p, argc, argv, options);
    int rc;
    for (int id; (id = cli_attn_next_option(&p, &a->c, cmd_plan_usage, &rc)) != CLI_OPT_END;) {
        if (id == OPT_MEASURE)
            a->measure = 1;
        else if (id == OPT_BACKWARD)
            a->backward = 1;
        else
            a->text[id] = p.value;
    }
    if (rc >= 0)
        return rc;
    static const struct { int id; const char *flag; } required[] = {
        { OPT_TOKENS, "--tokens" }, { OPT_RANKS, "--ranks" }, { OPT_MEM, "--mem-per-rank" }
    };
    for (int i = 0; i < 3; i++)
        if (!a->text[required[i].id])
            return cli_usage_error("missing required option %s", required[i].flag);
    if (!a->c.segments)
        return cli_usage_error("missing required option --segments");
    if (!a->c.dilations)
        return cli_usage_error("missing required option --dilations");
    if (a->measure && a->text[OPT_THROUGHPUT])
        return cli_usage_error("--throughput and --measure both given; give one (a stated "
                               "throughput or a measured one)");
    if (a->text[OPT_MEASURE_TOKENS] && !a->measure)
        return cli_usage_error("--measure-tokens without --measure");
    if ((a->c.device || a->c.kernel) && !a->measure)
        return cli_usage_error("--%s without --measure (the devices are only used to measure)",
                               a->c.device ? "device" : "kernel");
    return -1;
}

/* An integer option in [min, max]; `what` says what it is, for the message. */
static int int_option(const char *flag, const char *s, int64_t min, int64_t max, int64_t *out)
{
    cli_num_status ns = cli_parse_i64(s, min, max, out);
    if (ns == CLI_NUM_OK)
        return -1;
    if (ns == CLI_NUM_SMALL)
        cli_error("%s '%s' is too small; it must be at least %lld", flag, s, (long long)min);
    else if (ns == CLI_NUM_LARGE)
        cli_error("%s '%s' is too large; it must be at most %lld", flag, s, (long long)max);
    else
        cli_error("%s '%s' is not a whole number", flag, s);
    return CLI_EXIT_FAIL;
}

/* A positive finite number (bytes or tokens per second). */
static int rate_option(const char *flag, const char *s, double *out)
{
    if (cli_parse_double(s, out) != CLI_NUM_OK || !(*out > 0)) {
        cli_error("%s '%s' is not a positive finite number", flag, s);
        return CLI_EXIT_FAIL;
    }
    return -1;
}

/* Bytes, plain or with a binary suffix: "85899345920", "80GiB". */
static int bytes_option(const char *flag, const char *s, uint64_t *out)
{
    static const char *const suffix[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
    size_t digits = strspn(s, "0123456789");
    uint64_t scale = 1;
    if (s[digits]) {
        int found = 0;
        for (int i = 0; i < 5 && !found; i++)
            if (strcmp(s + digits, suffix[i]) == 0) {
                scale = (uint64_t)1 << (10 * (i + 1));
                found = 1;
            }
        if (!found || digits == 0) {
            cli_error("%s '%s' is not a number of bytes (digits, optionally followed by KiB, "
                      "MiB, GiB, TiB or PiB)", flag, s);
            return CLI_EXIT_FAIL;
        }
    }
    char num[32];
    uint64_t v;
    if (digits >= sizeof num || (memcpy(num, s, digits), num[digits] = '\0',
                                 cli_parse_u64(num, &v) != CLI_NUM_OK) ||
        __builtin_mul_overflow(v, scale, out)) {
        cli_error("%s '%s' does not fit in 64 bits", flag, s);
        return CLI_EXIT_FAIL;
    }
    if (*out == 0) {
        cli_error("%s '%s' is zero; a rank needs some memory", flag, s);
        return CLI_EXIT_FAIL;
    }
    return -1;
}

/* The numbers of the command line, checked. */
static int read_numbers(const plan_args *a, cli_plan *p)
{
    int rc;
    const char *const *t = a->text;
    if ((rc = int_option("--tokens", t[OPT_TOKENS], 1, INT64_MAX, &p->tokens)) >= 0 ||
        (rc = int_option("--ranks", t[OPT_RANKS], 1, INT64_MAX, &p->ranks)) >= 0 ||
        (rc = int_option("--devices-per-rank", t[OPT_DPR] ? t[OPT_DPR] : "1", 1, INT64_MAX,
                         &p->devices_per_rank)) >= 0 ||
        (rc = int_option("--heads", t[OPT_HEADS] ? t[OPT_HEADS] : "1", 1, INT64_MAX,
                         &p->heads)) >= 0 ||
        (rc = int_option("--head-dim", t[OPT_HEAD_DIM] ? t[OPT_HEAD_DIM] : "64", 1, INT64_MAX,
                         &p->dim)) >= 0 ||
        (rc = int_option("--batch", t[OPT_BATCH] ? t[OPT_BATCH] : "1", 1, INT64_MAX,
                         &p->batch)) >= 0 ||
        (rc = bytes_option("--mem-per-rank", t[OPT_MEM], &p->mem_per_rank)) >= 0)
        return rc;
    p->bandwidth = CLI_PLAN_DEFAULT_BANDWIDTH;
    if (t[OPT_BANDWIDTH] && (rc = rate_option("--bandwidth", t[OPT_BANDWIDTH], &p->bandwidth)) >= 0)
        return rc;
    if (t[OPT_THROUGHPUT] &&
        (rc = rate_option("--throughput", t[OPT_THROUGHPUT], &p->throughput)) >= 0)
        return rc;
    if (t[OPT_MEASURE_TOKENS] &&
        (rc = int_option("--measure-tokens", t[OPT_MEASURE_TOKENS], 1, INT64_MAX,
                         &p->measure_tokens)) >= 0)
        return rc;
    if (p->ranks > p->tokens) {
        cli_error("--ranks %lld is more than --tokens %lld; every rank needs at least one token",
                  (long long)p->ranks, (long long)p->tokens);
        return CLI_EXIT_FAIL;
    }
    if (p->devices_per_rank > CLI_PLAN_MAX_WORKERS ||
        p->ranks > CLI_PLAN_MAX_WORKERS / p->devices_per_rank) {
        cli_error("--ranks %lld x --devices-per-rank %lld is more than %d devices, the most the "
                  "scheduler plans", (long long)p->ranks, (long long)p->devices_per_rank,
                  CLI_PLAN_MAX_WORKERS);
        return CLI_EXIT_FAIL;
    }
    if (p->ranks * p->devices_per_rank > p->tokens) {
        cli_error("--ranks %lld x --devices-per-rank %lld devices for %lld tokens; every device "
                  "needs at least one token", (long long)p->ranks,
                  (long long)p->devices_per_rank, (long long)p->tokens);
        return CLI_EXIT_FAIL;
    }
    return -1;
}

int cmd_plan_main(int argc, char **argv)
{
    cli_set_prog("longnet plan");
    plan_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    cli_plan p;
    memset(&p, 0, sizeof p);
    p.backward = a.backward;
    p.measure = a.measure;
    p.algorithm = LNET_ALGORITHM_AUTO;
    if ((rc = read_numbers(&a, &p)) >= 0)
        return rc;
    if (a.c.algorithm && lnet_algorithm_parse(a.c.algorithm, &p.algorithm) != LNET_OK)
        return cli_lib_error(NULL);
    rc = cli_attn_build_config(&a.c, &p.cfg);
    if (rc < 0 && lnet_config_validate(p.cfg, p.dim) != LNET_OK)
        rc = cli_lib_error(NULL);
    if (rc < 0)
        rc = cli_plan_figures(&p);
    if (rc < 0 && p.measure)
        rc = cli_plan_measure(&p, a.c.device, a.c.kernel);
    if (rc < 0)
        rc = cli_plan_print(&p);
    lnet_config_free(p.cfg);
    free(p.rank);
    return rc;
}
