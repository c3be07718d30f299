#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* longnet-bench.c — the bench's main: describe the machine, measure the
 * roofline, run the matrix and the Figure-5 sweep, print and write the
 * results. What each step does lives in its own bench_*.c file. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"

static void print_stops(const bench_results *res)
{
    if (res->nstops == 0)
        return;
    printf("stopped early (the budget, or a failure):\n");
    for (int i = 0; i < res->nstops; i++)
        printf("  %s\n", res->stops[i]);
}

int main(int argc, char **argv)
{
#ifdef BENCH_HAVE_OPENBLAS
    /* Our own re-executed copy measuring one SGEMM core type. */
    int child_rc = sgemm_child_main(argc, argv);
    if (child_rc >= 0)
        return child_rc;
#endif
    cli_set_prog(BENCH_PROG);
    cli_set_hint("see 'longnet-bench --help'");
    bench_catch_signals();
    bench_options o;
    int rc = bench_parse_options(argc, argv, &o);
    if (rc >= 0)
        return rc;

    bench_machine *m = calloc(1, sizeof *m);
    bench_results res;
    memset(&res, 0, sizeof res);
    if (!m) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    rc = CLI_EXIT_FAIL;
    char err[BENCH_TEXT_LEN];
    if (bench_machine_describe(m) != 0)
        goto done;
    if (bench_machine_add_groups(m, o.devices, err, sizeof err) != 0) {
        cli_error("%s", err);
        goto done;
    }
    if (bench_check_selection(&o, m) != 0)
        goto done;
    if (m->warnings[0])
        cli_warning("plugins: %s", m->warnings);

    bench_roofline rl;
    bench_roofline_measure(&rl, o.quiet);
    const char *f5_causal = "";

    if (o.run_matrix) {
        if (bench_sweep("matrix", o.configs, o.nconfigs, o.lengths, o.nlengths, &o, m, &rl,
                        &res) != 0)
            goto done;
    }
    char drawn[9000] = "";
    int figure_failed = 0;
    if (o.run_figure5) {
        bench_options f5 = o;
        int64_t lengths[BENCH_MAX_LIST];
        int n = 0;
        for (int64_t len = 8192; len <= o.figure5_max_length && n < BENCH_MAX_LIST; len *= 2)
            lengths[n++] = len;
        /* The paper's model is a causal decoder. */
        if (!o.causal_given) {
            f5.causal_modes[0] = 1;
            f5.ncausal = 1;
        }
        /* Dilated first: when a slow device runs out of its share, the line
         * it keeps is the one the figure is about. */
        static const bench_config_kind methods[2] = { BENCH_CFG_FIGURE5, BENCH_CFG_DENSE };
        if (bench_sweep("figure5", methods, 2, lengths, n, &f5, m, &rl, &res) != 0)
            goto done;
        f5_causal = f5.ncausal == 2 ? "causal and non-causal"
                    : f5.causal_modes[0] ? "causal" : "non-causal";
    }

    /* The roofline again, keeping the better: one measured while another
     * process ran would inflate every fraction. */
    bench_roofline_again(&rl, o.quiet);
    for (int i = 0; i < res.ncells; i++) {
        bench_cell *c = &res.cells[i];
        if (rl.available && strcmp(c->status, "ok") == 0 &&
            strcmp(m->devices[c->device].kind, "cpu") == 0)
        {
            c->sgemm_fraction = c->gflops / rl.gflops;
            c->sgemm_suspect = sgemm_suspect_reason(c->sgemm_fraction) != NULL;
        }
    }
    bench_print_header(stdout, m, &rl, &o);
    if (o.run_matrix) {
        printf("\nmatrix: forward, B=%lld\n", (long long)o.batch);
        bench_print_table(stdout, &res, m, &rl, "matrix");
    }
    if (o.run_figure5) {
        printf("\nfigure5: dense vs dilated (segments 2048*4^k <= N, dilation w/2048), "
               "forward, %s\n", f5_causal);
        bench_print_table(stdout, &res, m, &rl, "figure5");
        bench_machine_finish(m);
        figure_failed = bench_figure5_write(o.outdir, &res, m, &rl, &o, drawn, sizeof drawn);
        if (!figure_failed)
            printf("figure 5: %s/figure5.csv%s%s\n", o.outdir, drawn[0] ? ", " : "", drawn);
    }
    print_stops(&res);
    bench_machine_finish(m);
    if (m->load_end > 0 && m->cores > 0 && m->load_end > 1.5 * m->cores)
        printf("note: the load average reached %.2f on %d cores: other processes were "
               "running, timings are noisy\n", m->load_end, m->cores);
    rc = CLI_EXIT_OK;
    if ((o.csv && bench_write_csv(o.csv, &res, m, &rl, NULL) != 0) ||
        (o.json && bench_write_json(o.json, &res, m, &rl, &o) != 0) || figure_failed)
        rc = CLI_EXIT_FAIL;
    else {
        if (o.csv)
            printf("csv: %s\n", o.csv);
        if (o.json)
            printf("json: %s\n", o.json);
    }
    if (res.failures > 0) {
        cli_error("%d cell%s failed (see the messages above and the status column)",
                  res.failures, res.failures == 1 ? "" : "s");
        rc = CLI_EXIT_FAIL;
    }

done:
    if (bench_interrupted()) {
        cli_error("interrupted by signal %d; no output files were written",
                  bench_interrupted());
        rc = 128 + bench_interrupted();
    }
    bench_check_cache_clear();
    bench_results_free(&res);
    free(m);
    return rc;
}
