#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_fields.c — a cell as named fields, the one list that the CSV and
 * JSON writers both use, so the two files can never disagree on what a
 * field is called or how it is counted. */
#include <math.h>
#include <string.h>

#include "bench_fields.h"

static void num(bench_field *f, const char *name, double v, const char *fmt)
{
    f->name = name;
    f->numeric = 1;
    if (isnan(v))
        f->value[0] = '\0'; /* unknown: empty in CSV, null in JSON */
    else
        snprintf(f->value, sizeof f->value, fmt, v);
}

static void text(bench_field *f, const char *name, const char *v)
{
    f->name = name;
    f->numeric = 0;
    snprintf(f->value, sizeof f->value, "%s", v);
}

int bench_cell_fields(const bench_cell *c, const bench_machine *m, const bench_roofline *rl,
                      bench_field *f)
{
    const bench_device *d = &m->devices[c->device];
    int ok = strcmp(c->status, "ok") == 0;
    double unknown = NAN;
    int n = 0;
    char levels[BENCH_TEXT_LEN];
    text(&f[n++], "sweep", c->sweep);
    text(&f[n++], "device", d->spec);
    text(&f[n++], "device_name", d->name);
    text(&f[n++], "device_kind", d->kind);
    text(&f[n++], "kernel", c->kernel);
    text(&f[n++], "config", bench_config_name(c->config));
    text(&f[n++], "pass", c->pass);
    num(&f[n++], "causal", c->causal, "%.0f");
    text(&f[n++], "offsets", c->offsets == LNET_OFFSETS_GROUPED ? "grouped" : "interleaved");
    num(&f[n++], "batch", (double)c->batch, "%.0f");
    num(&f[n++], "length", (double)c->length, "%.0f");
    num(&f[n++], "heads", (double)c->heads, "%.0f");
    num(&f[n++], "dim", (double)c->dim, "%.0f");
    text(&f[n++], "levels", bench_levels_str(&c->levels, levels, sizeof levels));
    num(&f[n++], "pairs", c->pairs, "%.0f");
    num(&f[n++], "flops", c->flops, "%.0f");
    num(&f[n++], "warmups", c->warmups, "%.0f");
    num(&f[n++], "repeats", c->repeats, "%.0f");
    num(&f[n++], "median_ms", ok ? c->median_ms : unknown, "%.6g");
    num(&f[n++], "min_ms", ok ? c->min_ms : unknown, "%.6g");
    num(&f[n++], "max_ms", ok ? c->max_ms : unknown, "%.6g");
    num(&f[n++], "tokens_per_s", ok ? c->tokens_per_s : unknown, "%.6g");
    num(&f[n++], "gflops", ok ? c->gflops : unknown, "%.6g");
    num(&f[n++], "sgemm_gflops", rl->available ? rl->gflops : unknown, "%.6g");
    num(&f[n++], "sgemm_fraction", c->sgemm_fraction, "%.4f");
    text(&f[n++], "sgemm_core", isnan(c->sgemm_fraction) ? "" : bench_roofline_core(rl));
    num(&f[n++], "sgemm_suspect", isnan(c->sgemm_fraction) ? unknown : c->sgemm_suspect,
        "%.0f");
    text(&f[n++], "sgemm_suspect_reason",
         c->sgemm_suspect ? sgemm_suspect_reason(c->sgemm_fraction) : "");
    num(&f[n++], "peak_rss_bytes", c->peak_rss_bytes ? (double)c->peak_rss_bytes : unknown,
        "%.0f");
    num(&f[n++], "qkvo_bytes", (double)c->qkvo_bytes, "%.0f");
    num(&f[n++], "check_length", c->check_length ? (double)c->check_length : unknown, "%.0f");
    num(&f[n++], "max_abs_err", c->max_abs_err, "%.3g");
    num(&f[n++], "wall_s", c->wall_s, "%.3f");
    text(&f[n++], "status", c->status);
    text(&f[n++], "message", c->message);
    /* Last, so that a reader of the older columns finds them where they were.
     * --peer: the same operator over PyTorch (bench_peer.c), its own median. */
    text(&f[n++], "peer", c->peer_ran ? m->peer : "");
    num(&f[n++], "peer_median_ms", c->peer_ran ? c->peer_ms : unknown, "%.6g");
    num(&f[n++], "peer_ratio", c->peer_ran ? c->peer_ratio : unknown, "%.4f");
    num(&f[n++], "peer_max_abs_err", c->peer_ran ? c->peer_err : unknown, "%.3g");
    return n;
}
