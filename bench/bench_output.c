#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_output.c — what a person reads (the header and an aligned table on
 * stdout) and what a program reads (CSV and JSON with every field and the
 * machine description), both written atomically. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_fields.h"
#include "cli_util.h"

static double gib(uint64_t b)
{
    return (double)b / (1024.0 * 1024.0 * 1024.0);
}

void bench_print_header(FILE *out, const bench_machine *m, const bench_roofline *rl,
                        const bench_options *o)
{
    fprintf(out, "longnet-bench, longnet %s, %s\n", m->longnet_version, m->date);
    fprintf(out, "machine  %s, %d cores, %.1f GiB; load average %.2f at start\n", m->cpu_model,
            m->cores, gib(m->memory_bytes), m->load_start);
    if (m->ranks > 1)
        fprintf(out, "ranks    %d (MPI: every cell's calls across them, each rank on N/%d "
                "rows; the slowest rank's time)\n", m->ranks, m->ranks);
    for (int i = 0; i < m->ndevices; i++) {
        const bench_device *d = &m->devices[i];
        fprintf(out, "device   %s  %s (%s, %d compute units, %.1f GiB; kernels %s)\n",
                d->spec, d->name, d->kind, d->compute_units, gib(d->memory_bytes), d->kernels);
    }
    bench_roofline_print(out, rl);
    fprintf(out, "counting GFLOP/s = 4*D FLOPs per (query, key) pair actually scored "
            "(causal: key <= query only), over the median of %d runs after %d warm-up%s\n",
            o->repeat, o->warmup, o->warmup == 1 ? "" : "s");
    for (int i = 0; i < o->npasses; i++)
        if (o->passes[i])
            fprintf(out, "backward cells: lnet_attention_backward with the forward's saved O "
                    "and LSE, counted as %.1f times the forward's FLOPs for the same pairs "
                    "(FlashAttention-2's convention); max|err| over dQ, dK, dV\n",
                    BENCH_BACKWARD_FLOPS);
}

/* ---------------------------------------------------------------- table */

#define TABLE_COLS 17
#define TABLE_PEER_COLS 2 /* the last ones, shown only when a peer ran */
#define TABLE_WORDS 5 /* the first columns, left-aligned */

static const char *const table_head[TABLE_COLS] = {
    "device", "kernel", "config", "causal", "pass", "N", "H", "D", "median ms", "tokens/s",
    "GFLOP/s", "%SGEMM", "peak MiB", "QKVO MiB", "max|err|", "torch ms", "torch/longnet"
};

void bench_print_table(FILE *out, const bench_results *res, const bench_machine *m,
                       const bench_roofline *rl, const char *sweep)
{
    int rows = 0, peer = 0;
    for (int i = 0; i < res->ncells; i++) {
        rows += strcmp(res->cells[i].sweep, sweep) == 0;
        peer |= strcmp(res->cells[i].sweep, sweep) == 0 && res->cells[i].peer_ran;
    }
    int cols = peer ? TABLE_COLS : TABLE_COLS - TABLE_PEER_COLS;
    if (rows == 0) {
        fprintf(out, "(%s: no cells ran)\n", sweep);
        return;
    }
    char (*cell)[TABLE_COLS][64] = calloc((size_t)rows, sizeof *cell);
    if (!cell)
        return;
    int width[TABLE_COLS];
    for (int j = 0; j < TABLE_COLS; j++)
        width[j] = (int)strlen(table_head[j]);
    int r = 0;
    for (int i = 0; i < res->ncells; i++) {
        const bench_cell *c = &res->cells[i];
        if (strcmp(c->sweep, sweep) != 0)
            continue;
        char (*t)[64] = cell[r++];
        int ok = strcmp(c->status, "ok") == 0;
        snprintf(t[0], 64, "%.60s", m->devices[c->device].spec);
        snprintf(t[1], 64, "%.60s", c->kernel);
        snprintf(t[2], 64, "%s", bench_config_name(c->config));
        snprintf(t[3], 64, "%s", c->causal ? "yes" : "no");
        snprintf(t[4], 64, "%s", c->pass);
        snprintf(t[5], 64, "%lld", (long long)c->length);
        snprintf(t[6], 64, "%lld", (long long)c->heads);
        snprintf(t[7], 64, "%lld", (long long)c->dim);
        if (ok) {
            snprintf(t[8], 64, "%.2f", c->median_ms);
            snprintf(t[9], 64, "%.3g", c->tokens_per_s);
            snprintf(t[10], 64, "%.1f", c->gflops);
        } else {
            snprintf(t[8], 64, "failed");
            snprintf(t[9], 64, "-");
            snprintf(t[10], 64, "-");
        }
        if (isnan(c->sgemm_fraction))
            snprintf(t[11], 64, "-");
        else
            snprintf(t[11], 64, "%.0f%%%s", 100 * c->sgemm_fraction,
                     c->sgemm_suspect ? " suspect" : "");
        snprintf(t[12], 64, "%.0f", (double)c->peak_rss_bytes / (1024.0 * 1024.0));
        snprintf(t[13], 64, "%.0f", (double)c->qkvo_bytes / (1024.0 * 1024.0));
        if (isnan(c->max_abs_err))
            snprintf(t[14], 64, "-");
        else
            snprintf(t[14], 64, "%.1e", c->max_abs_err);
        snprintf(t[15], 64, "-");
        snprintf(t[16], 64, "-");
        if (c->peer_ran && !isnan(c->peer_ms))
            snprintf(t[15], 64, "%.2f", c->peer_ms);
        if (c->peer_ran && !isnan(c->peer_ratio))
            snprintf(t[16], 64, "%.2f", c->peer_ratio);
        for (int j = 0; j < TABLE_COLS; j++)
            if ((int)strlen(t[j]) > width[j])
                width[j] = (int)strlen(t[j]);
    }
    /* Words left-aligned, numbers right-aligned, as one reads them. */
    for (int j = 0; j < cols; j++)
        fprintf(out, j < TABLE_WORDS ? "%-*s%s" : "%*s%s", width[j], table_head[j],
                j + 1 < cols ? "  " : "\n");
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            fprintf(out, j < TABLE_WORDS ? "%-*s%s" : "%*s%s", width[j], cell[i][j],
                    j + 1 < cols ? "  " : "\n");
    free(cell);
    int suspects = 0;
    for (int i = 0; i < res->ncells; i++)
        suspects += strcmp(res->cells[i].sweep, sweep) == 0 && res->cells[i].sgemm_suspect;
    if (rl->available)
        fprintf(out, "%%SGEMM: of %.1f GFLOP/s, OpenBLAS SGEMM with core %s (OpenBLAS's own "
                "choice: %s)\n", rl->gflops, bench_roofline_core(rl), rl->sg.own_choice);
    if (suspects)
        fprintf(out, "suspect: %d fraction%s %s\n", suspects, suspects == 1 ? "" : "s",
                sgemm_suspect_reason(2.0));
    if (peer)
        fprintf(out, "torch: the same operator over PyTorch's scaled_dot_product_attention "
                "per segment (bench/peers/torch_sdpa.py), its median after the same warm-up; "
                "torch/longnet > 1: longnet is faster; %s\n", m->peer);
}

/* ------------------------------------------------------------------ CSV */

static void csv_value(FILE *f, const char *v)
{
    if (strpbrk(v, ",\"\n") == NULL) {
        fputs(v, f);
        return;
    }
    fputc('"', f);
    for (const char *p = v; *p; p++) {
        if (*p == '"')
            fputc('"', f);
        fputc(*p == '\n' ? ' ' : *p, f);
    }
    fputc('"', f);
}

/* The machine description as '#' lines before the header: gnuplot,
 * pandas (comment='#') and R skip them. */
static void csv_machine(FILE *f, const bench_machine *m, const bench_roofline *rl)
{
    fprintf(f, "# longnet-bench: longnet %s, %s\n", m->longnet_version, m->date);
    fprintf(f, "# machine: %s; %d cores; %llu bytes of memory; %s\n", m->cpu_model, m->cores,
            (unsigned long long)m->memory_bytes, m->os);
    fprintf(f, "# load average: %.2f at start, %.2f at end\n", m->load_start, m->load_end);
    if (m->ranks > 1) /* --mpi: each cell across the ranks, rank 0's machine described */
        fprintf(f, "# ranks: %d (MPI, every cell's calls across them; rank 0's machine)\n",
                m->ranks);
    for (int i = 0; i < m->ndevices; i++) {
        const bench_device *d = &m->devices[i];
        fprintf(f, "# device: %s; %s; %s; %d compute units; %llu bytes; kernels %s\n", d->spec,
                d->name, d->kind, d->compute_units, (unsigned long long)d->memory_bytes,
                d->kernels);
    }
    for (int i = 0; i < m->nplugins; i++) {
        const bench_plugin *p = &m->plugins[i];
        fprintf(f, "# plugin: %s; %s; ABI %u; %s%s\n", p->name[0] ? p->name : "?",
                p->description, p->abi, p->loaded ? "loaded" : "refused: ",
                p->loaded ? "" : p->reason);
    }
    bench_roofline_csv(f, rl);
    if (m->peer[0])
        fprintf(f, "# peer: %s\n", m->peer);
    fprintf(f, "# flops = 4 * dim * pairs; pairs = (query, key) pairs actually scored "
            "(causal: key <= query); gflops = flops / median\n");
}

int bench_write_csv(const char *path, const bench_results *res, const bench_machine *m,
                    const bench_roofline *rl, const char *sweep)
{
    bench_atomic a;
    if (bench_atomic_open(&a, path) != 0)
        return -1;
    csv_machine(a.f, m, rl);
    static bench_field f[BENCH_MAX_FIELDS];
    bench_cell blank;
    memset(&blank, 0, sizeof blank);
    int n = bench_cell_fields(&blank, m, rl, f); /* the names */
    for (int j = 0; j < n; j++)
        fprintf(a.f, "%s%s", f[j].name, j + 1 < n ? "," : "\n");
    for (int i = 0; i < res->ncells; i++) {
        if (sweep && strcmp(res->cells[i].sweep, sweep) != 0)
            continue;
        n = bench_cell_fields(&res->cells[i], m, rl, f);
        for (int j = 0; j < n; j++) {
            csv_value(a.f, f[j].value);
            fputc(j + 1 < n ? ',' : '\n', a.f);
        }
    }
    return bench_atomic_commit(&a);
}

/* ----------------------------------------------------------------- JSON */

void bench_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

void bench_json_key(FILE *f, const char *indent, const char *key, int *first)
{
    fprintf(f, "%s%s", *first ? "" : ",\n", indent);
    bench_json_string(f, key);
    fputs(": ", f);
    *first = 0;
}

void bench_json_kv_str(FILE *f, const char *indent, const char *key, const char *v, int *first)
{
    bench_json_key(f, indent, key, first);
    bench_json_string(f, v);
}

void bench_json_kv_num(FILE *f, const char *indent, const char *key, double v, int *first)
{
    bench_json_key(f, indent, key, first);
    if (isnan(v))
        fputs("null", f);
    else
        fprintf(f, "%.10g", v);
}

static void json_machine(FILE *f, const bench_machine *m, const bench_roofline *rl)
{
    int first = 1;
    fputs("  \"machine\": {\n", f);
    bench_json_kv_str(f, "    ", "cpu_model", m->cpu_model, &first);
    bench_json_kv_num(f, "    ", "cores", m->cores, &first);
    bench_json_kv_num(f, "    ", "ranks", m->ranks > 1 ? m->ranks : 1, &first);
    bench_json_kv_num(f, "    ", "memory_bytes", (double)m->memory_bytes, &first);
    bench_json_kv_str(f, "    ", "os", m->os, &first);
    bench_json_kv_str(f, "    ", "compiler", m->compiler, &first);
    bench_json_kv_str(f, "    ", "longnet_version", m->longnet_version, &first);
    bench_json_kv_str(f, "    ", "date", m->date, &first);
    bench_json_kv_num(f, "    ", "load_average_start", m->load_start, &first);
    bench_json_kv_num(f, "    ", "load_average_end", m->load_end, &first);
    bench_json_kv_num(f, "    ", "baseline_rss_bytes", (double)m->baseline_rss_bytes, &first);
    bench_json_kv_str(f, "    ", "plugin_warnings", m->warnings, &first);
    bench_json_kv_str(f, "    ", "peer", m->peer, &first);
    bench_json_key(f, "    ", "devices", &first);
    fputs("[", f);
    for (int i = 0; i < m->ndevices; i++) {
        const bench_device *d = &m->devices[i];
        int df = 1;
        fprintf(f, "%s\n      {\n", i ? "," : "");
        bench_json_kv_str(f, "        ", "spec", d->spec, &df);
        bench_json_kv_str(f, "        ", "backend", d->backend, &df);
        bench_json_kv_num(f, "        ", "index", d->index, &df);
        bench_json_kv_str(f, "        ", "name", d->name, &df);
        bench_json_kv_str(f, "        ", "kind", d->kind, &df);
        bench_json_kv_num(f, "        ", "memory_bytes", (double)d->memory_bytes, &df);
        bench_json_kv_num(f, "        ", "compute_units", d->compute_units, &df);
        bench_json_kv_str(f, "        ", "kernels", d->kernels, &df);
        fputs("\n      }", f);
    }
    fputs("\n    ]", f);
    bench_json_key(f, "    ", "plugins", &first);
    fputs("[", f);
    for (int i = 0; i < m->nplugins; i++) {
        const bench_plugin *p = &m->plugins[i];
        int pf = 1;
        fprintf(f, "%s\n      {\n", i ? "," : "");
        bench_json_kv_str(f, "        ", "path", p->path, &pf);
        bench_json_kv_str(f, "        ", "name", p->name, &pf);
        bench_json_kv_str(f, "        ", "description", p->description, &pf);
        bench_json_kv_num(f, "        ", "abi_version", p->abi, &pf);
        bench_json_kv_num(f, "        ", "loaded", p->loaded, &pf);
        bench_json_kv_str(f, "        ", "reason", p->reason, &pf);
        fputs("\n      }", f);
    }
    fputs("\n    ]\n  },\n", f);
    bench_roofline_json(f, rl);
}

int bench_write_json(const char *path, const bench_results *res, const bench_machine *m,
                     const bench_roofline *rl, const bench_options *o)
{
    bench_atomic a;
    if (bench_atomic_open(&a, path) != 0)
        return -1;
    FILE *f = a.f;
    fputs("{\n  \"longnet_bench\": 1,\n", f);
    json_machine(f, m, rl);
    int first = 1;
    fputs("  \"settings\": {\n", f);
    bench_json_kv_num(f, "    ", "repeat", o->repeat, &first);
    bench_json_kv_num(f, "    ", "warmup", o->warmup, &first);
    bench_json_kv_num(f, "    ", "max_seconds", o->max_seconds, &first);
    bench_json_kv_num(f, "    ", "max_memory_bytes", (double)o->max_memory, &first);
    bench_json_kv_num(f, "    ", "check_length", (double)o->check_length, &first);
    bench_json_kv_num(f, "    ", "figure5_tokens_per_batch",
                      o->run_figure5 ? (double)o->tokens_per_batch : NAN, &first);
    bench_json_kv_str(f, "    ", "figure5_tokens_why", o->run_figure5 ? o->tokens_why : "",
                      &first);
    bench_json_kv_str(f, "    ", "check_against", "cpu kernel reference", &first);
    bench_json_kv_str(f, "    ", "flops", "4 * dim per (query, key) pair actually scored "
                "(causal: key <= query)", &first);
    fputs("\n  },\n  \"cells\": [", f);
    static bench_field fl[BENCH_MAX_FIELDS];
    for (int i = 0; i < res->ncells; i++) {
        int n = bench_cell_fields(&res->cells[i], m, rl, fl);
        int cf = 1;
        fprintf(f, "%s\n    {\n", i ? "," : "");
        for (int j = 0; j < n; j++) {
            bench_json_key(f, "      ", fl[j].name, &cf);
            if (!fl[j].numeric)
                bench_json_string(f, fl[j].value);
            else
                fputs(fl[j].value[0] ? fl[j].value : "null", f);
        }
        fputs("\n    }", f);
    }
    fputs("\n  ],\n  \"stops\": [", f);
    for (int i = 0; i < res->nstops; i++) {
        fprintf(f, "%s\n    ", i ? "," : "");
        bench_json_string(f, res->stops[i]);
    }
    fputs("\n  ]\n}\n", f);
    return bench_atomic_commit(&a);
}
