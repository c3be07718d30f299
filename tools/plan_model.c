#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* plan_model.c — `longnet plan`'s numbers: each rank's rows and the bytes
 * it exchanges (the scheduler's own plan, through
 * lnet_attention_partition), its memory (64-bit, overflow-checked), its
 * FLOPs (the bench's exact pair count). */
#include <stdlib.h>
#include <string.h>

#include "attn_pairs.h"
#include "cli.h"
#include "cli_plan.h"

double cli_plan_flops(const cli_plan *p, int64_t n, int64_t lo, int64_t hi)
{
    const int causal = lnet_config_causal(p->cfg);
    const lnet_offsets offsets = lnet_config_offsets(p->cfg);
    const double pairs = cli_attention_pairs(p->levels, p->w, p->r, p->batch, n, p->heads,
                                             causal, offsets, lo, hi);
    /* A training step runs the forward, then the backward. */
    return cli_attention_flops(pairs, p->dim, 0) +
           (p->backward ? cli_attention_flops(pairs, p->dim, 1) : 0);
}

/* a * b * c * ... into *out; 1 on overflow. */
static int mul_u64(uint64_t *out, int n, const uint64_t *f)
{
    uint64_t v = 1;
    for (int i = 0; i < n; i++)
        if (__builtin_mul_overflow(v, f[i], &v))
            return 1;
    *out = v;
    return 0;
}

static int add_u64(uint64_t *acc, uint64_t b)
{
    return __builtin_add_overflow(*acc, b, acc);
}

/* Rank i's memory: its tensors, its LSE (and Delta), the buffers for the
 * rows it receives from and packs for other ranks (the executor posts
 * every send before computing and may hold every receive at once: counted
 * whole; transfers between a rank's own devices are not counted). The
 * backward holds the forward's Q, K, V, O, LSE too. */
static int rank_memory(const cli_plan *p, cli_plan_rank *k, int i)
{
    const uint64_t rows = (uint64_t)(k->end - k->begin);
    const uint64_t t[5] = { rows, (uint64_t)p->batch, (uint64_t)p->heads, (uint64_t)p->dim, 4 };
    const uint64_t l[4] = { rows, (uint64_t)p->batch, (uint64_t)p->heads, 4 };
    const uint64_t tensors = p->backward ? 8 : 4, lses = p->backward ? 2 : 1;
    uint64_t all_l;
    k->exchange = k->fwd.bytes_in + k->fwd.bytes_out;
    if (p->backward && k->bwd.bytes_in + k->bwd.bytes_out > k->exchange)
        k->exchange = k->bwd.bytes_in + k->bwd.bytes_out;
    if (mul_u64(&k->tensor, 5, t) || mul_u64(&k->lse, 4, l) ||
        __builtin_mul_overflow(k->tensor, tensors, &k->total) ||
        __builtin_mul_overflow(k->lse, lses, &all_l) || add_u64(&k->total, all_l) ||
        add_u64(&k->total, k->exchange)) {
        cli_error("rank %d's memory (%lld rows x B %lld x H %lld x D %lld float32) does not fit "
                  "in 64 bits", i, (long long)rows, (long long)p->batch, (long long)p->heads,
                  (long long)p->dim);
        return CLI_EXIT_FAIL;
    }
    return -1;
}

int cli_plan_figures(cli_plan *p)
{
    p->levels = lnet_config_levels(p->cfg);
    for (int i = 0; i < p->levels; i++) {
        p->w[i] = lnet_config_segment(p->cfg, i);
        p->r[i] = lnet_config_dilation(p->cfg, i);
    }
    const int ranks = (int)p->ranks;
    p->rank = calloc((size_t)ranks, sizeof *p->rank);
    lnet_part_figures *parts = calloc((size_t)ranks, sizeof *parts);
    if (!p->rank || !parts) {
        free(parts);
        cli_error("out of memory for %d ranks' figures", ranks);
        return CLI_EXIT_FAIL;
    }
    int rc = -1;
    for (int pass = 0; pass < 1 + p->backward && rc < 0; pass++) {
        for (int i = 0; i < ranks; i++)
            parts[i].size = sizeof parts[i];
        if (lnet_attention_partition(p->cfg, p->batch, p->tokens, p->heads, p->dim, pass,
                                     p->algorithm, ranks, (int)p->devices_per_rank,
                                     parts) != LNET_OK) {
            rc = cli_lib_error(NULL);
            break;
        }
        for (int i = 0; i < ranks; i++)
            *(pass ? &p->rank[i].bwd : &p->rank[i].fwd) = parts[i];
    }
    free(parts);
    if (rc >= 0)
        return rc;
    const int causal = lnet_config_causal(p->cfg);
    const lnet_offsets offsets = lnet_config_offsets(p->cfg);
    p->fits = 1;
    for (int i = 0; i < ranks; i++) {
        cli_plan_rank *k = &p->rank[i];
        k->begin = k->fwd.begin;
        k->end = k->fwd.end;
        if ((rc = rank_memory(p, k, i)) >= 0)
            return rc;
        p->fits &= k->total <= p->mem_per_rank;
        for (int l = 0; l < p->levels; l++)
            k->pairs[l] = cli_attention_pairs(1, &p->w[l], &p->r[l], p->batch, p->tokens,
                                              p->heads, causal, offsets, k->begin, k->end);
        k->flops = cli_plan_flops(p, p->tokens, k->begin, k->end);
    }
    p->flops_total = cli_plan_flops(p, p->tokens, 0, p->tokens);
    return -1;
}
