#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* plan_print.c — `longnet plan`'s time model and its report. Every line
 * about a rank starts "rank I:", so a script (or a test) can pick its
 * figures; bytes are printed exact and in the units --explain uses. */
#include <stdio.h>
#include <string.h>

#include "attn_pairs.h"
#include "cli.h"
#include "cli_plan.h"

/* "1.0 KiB (1024 B)" — the human form as --explain prints it, then exact. */
static const char *bytes2(uint64_t b, char *buf, size_t len)
{
    char h[32];
    if (b < 1024)
        snprintf(buf, len, "%llu B", (unsigned long long)b);
    else
        snprintf(buf, len, "%s (%llu B)", cli_bytes_str(b, h, sizeof h), (unsigned long long)b);
    return buf;
}

/* The rate and each rank's times; nothing when no throughput is known. */
static void model(cli_plan *p)
{
    const double tokens = (double)p->batch * (double)p->tokens;
    if (p->measure && p->measured_s > 0)
        p->rate = p->measured_flops / p->measured_s;
    else if (p->throughput > 0)
        p->rate = p->throughput * p->flops_total / tokens;
    for (int64_t i = 0; i < p->ranks; i++) {
        cli_plan_rank *k = &p->rank[i];
        uint64_t sent = k->fwd.bytes_out + k->bwd.bytes_out;
        uint64_t got = k->fwd.bytes_in + k->bwd.bytes_in;
        k->comm_s = (double)(sent > got ? sent : got) / p->bandwidth;
        k->compute_s = p->rate > 0 ? k->flops / p->rate : 0;
        if (k->compute_s > p->max_compute_s)
            p->max_compute_s = k->compute_s;
        if (k->comm_s > p->max_comm_s)
            p->max_comm_s = k->comm_s;
    }
    p->predicted_s = p->max_compute_s + p->max_comm_s;
}

static void print_header(const cli_plan *p)
{
    printf("plan: N = %lld tokens, B = %lld, H = %lld, D = %lld, float32, %s, %s; %lld rank(s) "
           "x %lld device(s); algorithm %s\n", (long long)p->tokens, (long long)p->batch,
           (long long)p->heads, (long long)p->dim,
           lnet_config_causal(p->cfg) ? "causal" : "non-causal",
           p->backward ? "forward + backward" : "forward", (long long)p->ranks,
           (long long)p->devices_per_rank,
           p->algorithm == LNET_ALGORITHM_GATHER ? "gather"
           : p->algorithm == LNET_ALGORITHM_RING ? "ring" : "auto");
    printf("levels:");
    for (int i = 0; i < p->levels; i++)
        printf(" %lld/%lld", (long long)p->w[i], (long long)p->r[i]);
    printf(" (segment/dilation), offsets %s\n",
           lnet_config_offsets(p->cfg) == LNET_OFFSETS_GROUPED ? "grouped" : "interleaved");
}

static void print_bytes(const cli_plan *p, int64_t i, const char *pass,
                        const lnet_part_figures *f)
{
    char a[64], b[64];
    printf("rank %lld: %s receives %s, sends %s\n", (long long)i, pass,
           bytes2(f->bytes_in, a, sizeof a), bytes2(f->bytes_out, b, sizeof b));
    for (int l = 0; l < p->levels; l++)
        printf("rank %lld: %s level %d (%lld/%lld) receives %s, sends %s\n", (long long)i, pass,
               l, (long long)p->w[l], (long long)p->r[l],
               bytes2(f->level_bytes_in[l], a, sizeof a),
               bytes2(f->level_bytes_out[l], b, sizeof b));
}

static void print_rank(const cli_plan *p, int64_t i)
{
    const cli_plan_rank *k = &p->rank[i];
    char a[64], b[64], c[64], d[64];
    printf("rank %lld: rows [%lld, %lld), %lld tokens\n", (long long)i, (long long)k->begin,
           (long long)k->end, (long long)(k->end - k->begin));
    printf("rank %lld: memory Q, K, V, O %s each, LSE %s", (long long)i,
           bytes2(k->tensor, a, sizeof a), bytes2(k->lse, b, sizeof b));
    if (p->backward)
        printf("; dO, dQ, dK, dV %s each, Delta %s", a, b);
    printf("; exchange buffers %s\n", bytes2(k->exchange, c, sizeof c));
    printf("rank %lld: memory total %s of %s: %s (per device, 1/%lld of it: %s)\n",
           (long long)i, bytes2(k->total, a, sizeof a), bytes2(p->mem_per_rank, b, sizeof b),
           k->total <= p->mem_per_rank ? "fits" : "DOES NOT FIT", (long long)p->devices_per_rank,
           cli_bytes_str(k->total / (uint64_t)p->devices_per_rank +
                         (k->total % (uint64_t)p->devices_per_rank != 0), d, sizeof d));
    print_bytes(p, i, "forward", &k->fwd);
    if (p->backward)
        print_bytes(p, i, "backward", &k->bwd);
    printf("rank %lld: pairs", (long long)i);
    for (int l = 0; l < p->levels; l++)
        printf(" level %d %.0f%s", l, k->pairs[l], l + 1 < p->levels ? "," : "");
    printf("; FLOPs %.0f (%.4g)\n", k->flops, k->flops);
    if (p->rate > 0)
        printf("rank %lld: time compute %.4g s + communication %.4g s\n", (long long)i,
               k->compute_s, k->comm_s);
}

static void print_model(const cli_plan *p)
{
    const double tokens = (double)p->batch * (double)p->tokens;
    const char *pass = p->backward ? "forward + backward" : "forward";
    if (p->backward)
        printf("model: FLOPs = 4 x D per (query, key) pair scored, x (1 + %.4g) for forward + "
               "backward (FlashAttention-2's count of the backward)", CLI_BACKWARD_FLOPS);
    else
        printf("model: FLOPs = 4 x D per (query, key) pair scored (the softmax not counted)");
    printf("; the whole call %.0f FLOPs, %.6g per token\n", p->flops_total, p->flops_total / tokens);
    if (p->measure) {
        int cut = 0;
        for (int l = 0; l < p->levels; l++)
            cut |= p->w[l] > p->measured_tokens;
        const double mt = (double)p->batch * (double)p->measured_tokens;
        printf("measured: %s of N = %lld (B = %lld) on --device %s, median of 3 runs %.4g s: "
               "%.6g tokens/s, %.4g GFLOP/s%s\n", pass, (long long)p->measured_tokens,
               (long long)p->batch, p->measured_on, p->measured_s, mt / p->measured_s,
               p->rate / 1e9,
               cut ? "; segments longer than that N were cut at it: the FLOP rate is taken "
                     "to carry over" : "");
    }
    if (p->rate <= 0) {
        printf("predicted time: not computed (give --throughput or --measure)\n");
        return;
    }
    if (!p->measure)
        printf("given: %s throughput %.6g tokens/s per rank = %.4g GFLOP/s on this "
               "configuration\n", pass, p->throughput, p->rate / 1e9);
    printf("model: compute_r = FLOPs_r / %.4g FLOP/s; communication_r = max(sent_r, "
           "received_r) / %.4g B/s (--bandwidth, each way%s)\n", p->rate, p->bandwidth,
           p->bandwidth == CLI_PLAN_DEFAULT_BANDWIDTH ? "; default 100 Gbit/s" : "");
    printf("model: predicted = max_r compute_r + max_r communication_r (no overlap: an upper "
           "bound; ranks equally fast; link latency and the host's packing not counted)\n");
    printf("predicted time: %.4g s (compute %.4g s + communication %.4g s)\n", p->predicted_s,
           p->max_compute_s, p->max_comm_s);
}

int cli_plan_print(cli_plan *p)
{
    model(p);
    print_header(p);
    for (int64_t i = 0; i < p->ranks; i++)
        print_rank(p, i);
    print_model(p);
    if (p->fits)
        return CLI_EXIT_OK;
    for (int64_t i = 0; i < p->ranks; i++) {
        const cli_plan_rank *k = &p->rank[i];
        if (k->total <= p->mem_per_rank)
            continue;
        char a[32], b[32];
        fflush(stdout);
        cli_error("rank %lld needs %s (%llu B) but --mem-per-rank is %s (%llu B); use more "
                  "ranks or fewer tokens", (long long)i, cli_bytes_str(k->total, a, sizeof a),
                  (unsigned long long)k->total, cli_bytes_str(p->mem_per_rank, b, sizeof b),
                  (unsigned long long)p->mem_per_rank);
        break;
    }
    return CLI_EXIT_FAIL;
}
