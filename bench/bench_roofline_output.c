#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_roofline_output.c — the roofline as each output shows it: which
 * OpenBLAS core type was used, which one OpenBLAS chose by itself, every
 * core type tried with its rate and its check, and the OPENBLAS_CORETYPE we
 * inherited (and ignored). A reader of a fraction must be able to tell
 * whether the roofline under it was a fast one. */
#include <math.h>
#include <string.h>

#include "bench.h"
#include "bench_fields.h"

static const char *inherited(const bench_roofline *rl, char *buf, size_t len)
{
    if (rl->sg.inherited_set)
        snprintf(buf, len, "OPENBLAS_CORETYPE=%s inherited, ignored", rl->sg.inherited);
    else
        snprintf(buf, len, "OPENBLAS_CORETYPE not set");
    return buf;
}

static const char *checked(const bench_roofline *rl, char *buf, size_t len)
{
    snprintf(buf, len, "yes: %d sampled entries of each product against a naive one "
             "(relative tolerance 1e-4)", rl->sg.samples);
    return buf;
}

void bench_roofline_print(FILE *out, const bench_roofline *rl)
{
    char inh[128], tried[BENCH_TEXT_LEN * 2];
    if (!rl->available) {
        fprintf(out, "roofline none: %s\n", rl->note);
        return;
    }
    const sgemm_core *x = sgemm_roofline_used(&rl->sg);
    fprintf(out, "roofline OpenBLAS SGEMM n=%d, %d threads: %.1f GFLOP/s, core %s (the fastest "
            "correct core type; OpenBLAS's own choice: %s; best run, median %.1f)\n", rl->n,
            rl->threads, rl->gflops, x->corename, rl->sg.own_choice, x->median_gflops);
    fprintf(out, "         tried %s; %s%s%s\n",
            sgemm_roofline_tried(&rl->sg, tried, sizeof tried), inherited(rl, inh, sizeof inh),
            rl->sg.hook[0] ? "; test hook " SGEMM_CORES_ENV "=" : "", rl->sg.hook);
}

void bench_roofline_csv(FILE *f, const bench_roofline *rl)
{
    char inh[128], tried[BENCH_TEXT_LEN * 2], chk[BENCH_TEXT_LEN];
    if (!rl->available) {
        fprintf(f, "# roofline: none: %s\n", rl->note);
        return;
    }
    fprintf(f, "# roofline: OpenBLAS SGEMM n=%d, %d threads, %.3f GFLOP/s (the best run of "
            "those at the start and the end); %s\n", rl->n, rl->threads, rl->gflops, rl->note);
    fprintf(f, "# roofline_core: %s\n", bench_roofline_core(rl));
    fprintf(f, "# roofline_openblas_choice: %s\n", rl->sg.own_choice);
    fprintf(f, "# roofline_checked: %s\n", checked(rl, chk, sizeof chk));
    fprintf(f, "# roofline_tried: %s\n", sgemm_roofline_tried(&rl->sg, tried, sizeof tried));
    fprintf(f, "# roofline_environment: %s%s%s\n", inherited(rl, inh, sizeof inh),
            rl->sg.hook[0] ? "; test hook " SGEMM_CORES_ENV "=" : "", rl->sg.hook);
}

void bench_roofline_json(FILE *f, const bench_roofline *rl)
{
    int first = 1;
    char chk[BENCH_TEXT_LEN];
    const char *in = "    ";
    fputs("  \"roofline\": {\n", f);
    bench_json_kv_num(f, in, "available", rl->available, &first);
    bench_json_kv_str(f, in, "what", rl->available ? "OpenBLAS cblas_sgemm, C = A.B, n x n x n, "
                      "all cores; gflops from the best of 5 runs after a warm-up, for each "
                      "core type tried, each in its own process; the fastest correct core is "
                      "used, measured again at the end of the bench, the better kept" : "",
                      &first);
    bench_json_kv_num(f, in, "n", rl->available ? rl->n : NAN, &first);
    bench_json_kv_num(f, in, "threads", rl->available ? rl->threads : NAN, &first);
    bench_json_kv_num(f, in, "median_ms", rl->available ? rl->median_ms : NAN, &first);
    bench_json_kv_num(f, in, "gflops", rl->available ? rl->gflops : NAN, &first);
    bench_json_kv_num(f, in, "best_gflops", rl->available ? rl->best_gflops : NAN, &first);
    bench_json_kv_str(f, in, "core", bench_roofline_core(rl), &first);
    bench_json_kv_str(f, in, "openblas_choice", rl->sg.own_choice, &first);
    bench_json_kv_str(f, in, "checked", rl->available ? checked(rl, chk, sizeof chk) : "",
                      &first);
    bench_json_kv_str(f, in, "inherited_coretype", rl->sg.inherited_set ? rl->sg.inherited : "",
                      &first);
    bench_json_kv_num(f, in, "inherited_coretype_set", rl->sg.inherited_set, &first);
    bench_json_kv_str(f, in, "test_hook_cores", rl->sg.hook, &first);
    bench_json_kv_num(f, in, "suspect_above", SGEMM_SUSPECT_FRACTION, &first);
    bench_json_key(f, in, "candidates", &first);
    fputs("[", f);
    for (int i = 0; i < rl->sg.ncores; i++) {
        const sgemm_core *x = &rl->sg.cores[i];
        int cf = 1;
        const char *ci = "        ";
        fprintf(f, "%s\n      {\n", i ? "," : "");
        bench_json_kv_str(f, ci, "requested", x->requested[0] ? x->requested : "(own choice)",
                          &cf);
        bench_json_kv_str(f, ci, "corename", x->corename, &cf);
        bench_json_kv_num(f, ci, "measured", x->measured, &cf);
        bench_json_kv_num(f, ci, "correct", x->measured ? x->correct : NAN, &cf);
        bench_json_kv_num(f, ci, "gflops", x->measured ? x->best_gflops : NAN, &cf);
        bench_json_kv_num(f, ci, "median_gflops", x->measured ? x->median_gflops : NAN, &cf);
        bench_json_kv_num(f, ci, "max_rel_err", x->measured ? x->max_rel_err : NAN, &cf);
        bench_json_kv_num(f, ci, "used", i == rl->sg.used, &cf);
        bench_json_kv_str(f, ci, "error", x->error, &cf);
        fputs("\n      }", f);
    }
    fputs("\n    ]", f);
    bench_json_kv_str(f, in, "note", rl->note, &first);
    fputs("\n  },\n", f);
}
