#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_config.c — the built-in configurations as levels for a
 * given sequence length, and the small instance the error check runs. */
#include <stdio.h>
#include <string.h>

#include "bench.h"

static const char *const config_names[] = { "paper", "figure5", "dense", "custom", "scaling" };

const char *bench_config_name(bench_config_kind kind)
{
    return config_names[kind];
}

int bench_config_parse(const char *name, bench_config_kind *out)
{
    for (int i = 0; i < 5; i++)
        if (strcmp(name, config_names[i]) == 0) {
            *out = (bench_config_kind)i;
            return 0;
        }
    return -1;
}

/* Adds level w with dilation w/2048 (2048 rows per segment), unless it is
 * shorter than 2048 or not longer than the last one. */
static void add_2048_rows(bench_levels *out, int64_t w)
{
    if (w < 2048 || out->n == LNET_MAX_LEVELS || (out->n > 0 && w <= out->w[out->n - 1]))
        return;
    out->w[out->n] = w;
    out->r[out->n] = w / 2048;
    out->n++;
}

void bench_config_levels(bench_config_kind kind, int64_t n, int members,
                         const bench_levels *custom, bench_levels *out)
{
    static const int64_t paper_w[] = { 2048, 4096, 8192, 16384, 32768 };
    static const int64_t paper_r[] = { 1, 2, 4, 6, 12 };
    memset(out, 0, sizeof *out);
    switch (kind) {
    case BENCH_CFG_PAPER:
        /* The paper's language-model setting (its Table 7). Segments longer
         * than N are one segment of N rows: the operator allows it. */
        for (int i = 0; i < 5; i++) {
            out->w[i] = paper_w[i];
            out->r[i] = paper_r[i];
        }
        out->n = 5;
        break;
    case BENCH_CFG_FIGURE5:
        /* The paper's §3.2: "up to 3 segment lengths, which are 2,048, the
         * number of tokens per device, and the sequence length", each
         * dilated to select 2048 rows per segment. A device of a group gets
         * N / members tokens of each sequence; a lone device gets all N. */
        add_2048_rows(out, 2048);
        add_2048_rows(out, n / (members > 0 ? members : 1));
        add_2048_rows(out, n);
        break;
    case BENCH_CFG_SCALING:
        /* 2048 rows per segment at every level 2048*4^k <= N, B = 1: the
         * cost per token is constant, so latency is linear in N. */
        for (int64_t w = 2048; out->n < LNET_MAX_LEVELS; w *= 4) {
            out->w[out->n] = w;
            out->r[out->n] = w / 2048;
            out->n++;
            if (w > n / 4)
                break;
        }
        break;
    case BENCH_CFG_DENSE:
        out->w[0] = n;
        out->r[0] = 1;
        out->n = 1;
        break;
    case BENCH_CFG_CUSTOM:
        *out = *custom;
        break;
    }
}

void bench_levels_cap(const bench_levels *in, int64_t small, bench_levels *out)
{
    *out = *in;
    for (int i = 0; i < in->n; i++) {
        if (out->w[i] > small)
            out->w[i] = small;
        if (out->r[i] > out->w[i])
            out->r[i] = out->w[i];
    }
}

const char *bench_levels_str(const bench_levels *lv, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < lv->n && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld/%lld", i ? " " : "",
                                 (long long)lv->w[i], (long long)lv->r[i]);
    return buf;
}

void bench_levels_lists(const bench_levels *lv, char *w, char *r, size_t len)
{
    size_t uw = 0, ur = 0;
    w[0] = r[0] = '\0';
    for (int i = 0; i < lv->n && uw < len && ur < len; i++) {
        uw += (size_t)snprintf(w + uw, len - uw, "%s%lld", i ? "," : "", (long long)lv->w[i]);
        ur += (size_t)snprintf(r + ur, len - ur, "%s%lld", i ? "," : "", (long long)lv->r[i]);
    }
}

int bench_levels_same(const bench_levels *a, const bench_levels *b)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++)
        if (a->w[i] != b->w[i] || a->r[i] != b->r[i])
            return 0;
    return 1;
}
