#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* longnet-bench.c — the bench's main: describe the machine, measure the
 * roofline, run the matrix and the Figure-5 sweep, print and write the
 * results; with --explain, print every cell's plan instead and run nothing.
 * What each step does lives in its own bench_*.c file. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli_util.h"

static void print_stops(const bench_results *res)
{
    if (res->nstops == 0)
        return;
    printf("stopped early (the budget, or a failure):\n");
    for (int i = 0; i < res->nstops; i++)
        printf("  %s\n", res->stops[i]);
}

/* CLI_EXIT_FAIL after saying how many cells `failed`; `rc` when none did. */
static int say_failures(const bench_results *res, const char *failed, int rc)
{
    if (res->failures == 0)
        return rc;
    cli_error("%d cell%s %s", res->failures, res->failures == 1 ? "" : "s", failed);
    return CLI_EXIT_FAIL;
}

/* A plotted sweep, figure5 or scaling: N = 8192, doubling, to max_length;
 * causal unless --causal was given (the paper's model is a decoder). */
static int plot_sweep(const char *sweep, const bench_options *o, int64_t max_length,
                      const bench_machine *m, const bench_roofline *rl, bench_results *res,
                      const char **causal)
{
    bench_options p = *o;
    int64_t lengths[BENCH_MAX_LIST];
    int n = 0;
    for (int64_t len = 8192; len <= max_length && n < BENCH_MAX_LIST; len *= 2)
        lengths[n++] = len;
    if (!o->causal_given) {
        p.causal_modes[0] = 1;
        p.ncausal = 1;
    }
    /* Dilated first: when a slow device runs out of its share, the line it
     * keeps is the one the figure is about. */
    bench_config_kind methods[2] = { strcmp(sweep, "figure5") == 0 ? BENCH_CFG_FIGURE5
                                                                  : BENCH_CFG_SCALING,
                                     BENCH_CFG_DENSE };
    *causal = p.ncausal == 2 ? "causal and non-causal" : p.causal_modes[0] ? "causal"
                                                                           : "non-causal";
    return bench_sweep(sweep, methods, 2, lengths, n, &p, m, rl, res);
}

/* The plot's files; 1 after an error. */
static int write_plot(const char *sweep, const bench_options *o, const bench_results *res,
                      bench_machine *m, const bench_roofline *rl)
{
    char drawn[9000];
    bench_machine_finish(m);
    if (bench_figure5_write(sweep, o->outdir, res, m, rl, o, drawn, sizeof drawn) != 0)
        return 1;
    printf("%s: %s/%s.csv%s%s\n", strcmp(sweep, "figure5") == 0 ? "figure 5" : "scaling",
           o->outdir, sweep, drawn[0] ? ", " : "", drawn);
    return 0;
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
    if ((rc = bench_mpi_start(&o)) != 0)
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
    int setup_failed = bench_machine_describe(m) != 0;
    if (!setup_failed && bench_machine_add_groups(m, o.devices, err, sizeof err) != 0) {
        cli_error("%s", err);
        setup_failed = 1;
    }
    if (!setup_failed && bench_check_selection(&o, m) != 0)
        setup_failed = 1;
    /* --mpi: every rank goes on, or none; then rank 0's machine is the
     * one every rank plans with (and the one recorded). */
    if (bench_mpi_agree(setup_failed, "describing the machine and its devices") != 0 ||
        bench_mpi_share(m, sizeof *m) != 0)
        goto done;
    m->ranks = bench_mpi_ranks();
    if (!o.explain && bench_peer_find(&o) != 0)
        goto done;
    if (o.peer)
        snprintf(m->peer, sizeof m->peer, "%.100s; python %.180s; script %.200s", o.peer_version,
                 o.peer_python, o.peer_script);
    if (m->warnings[0])
        cli_warning("plugins: %s", m->warnings);

    bench_roofline rl;
    if (o.explain || bench_mpi_rank() != 0)
        memset(&rl, 0, sizeof rl); /* nothing measured, nothing run; rank 0's plans */
    else
        bench_roofline_measure(&rl, o.quiet);
    const char *f5_causal = "", *scaling_causal = "";

    if (o.run_matrix) {
        if (bench_sweep("matrix", o.configs, o.nconfigs, o.lengths, o.nlengths, &o, m, &rl,
                        &res) != 0)
            goto done;
    }
    int figure_failed = 0;
    /* The roofline between sweeps too: on a shared machine the best of
     * more measurements is the closer one. */
    if (!o.explain && o.run_matrix && (o.run_figure5 || o.run_scaling) && !o.mpi)
        bench_roofline_again(&rl, o.quiet);
    if (o.run_figure5) {
        /* The paper's setup: T tokens per batch, B = T/N, N = 8K .. T. */
        o.tokens_per_batch = bench_figure5_tokens(&o, m, &rl, &res, o.tokens_why,
                                                  sizeof o.tokens_why);
        if (bench_mpi_share(&o.tokens_per_batch, sizeof o.tokens_per_batch) != 0 ||
            bench_mpi_share(o.tokens_why, sizeof o.tokens_why) != 0)
            goto done;
        if (!o.quiet)
            fprintf(stderr, "%s: figure5: T = %lld tokens per batch: %s\n", BENCH_PROG,
                    (long long)o.tokens_per_batch, o.tokens_why);
        if (plot_sweep("figure5", &o, o.tokens_per_batch, m, &rl, &res, &f5_causal) != 0)
            goto done;
    }
    if (o.run_scaling && plot_sweep("scaling", &o, o.scaling_max_length, m, &rl, &res,
                                    &scaling_causal) != 0)
        goto done;
    if (bench_mpi_rank() != 0) { /* rank 0 prints and writes */
        rc = res.failures ? CLI_EXIT_FAIL : CLI_EXIT_OK;
        goto done;
    }
    if (o.explain) {
        rc = say_failures(&res, "could not be explained (see the messages above)",
                          CLI_EXIT_OK);
        goto done;
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
    const char *passes = o.npasses == 2 ? "forward and backward" : o.passes[0] ? "backward"
                                                                                : "forward";
    if (o.run_matrix) {
        printf("\nmatrix: %s, B=%lld\n", passes, (long long)o.batch);
        bench_print_table(stdout, &res, m, &rl, "matrix");
    }
    if (o.run_figure5) {
        printf("\nfigure5: the paper's Figure 5: T = %lld tokens per batch held constant, "
               "B = T/N; dilated (segments 2048, tokens per %s, N; dilation w/2048) "
               "against vanilla (w = N, r = 1), %s%s, %s\n", (long long)o.tokens_per_batch,
               m->ranks > 1 ? "rank" : "device",
               passes, o.npasses == 2 ? " (and forward+backward: their sum)" : "", f5_causal);
        bench_print_table(stdout, &res, m, &rl, "figure5");
        figure_failed |= write_plot("figure5", &o, &res, m, &rl);
    }
    if (o.run_scaling) {
        printf("\nscaling: B=%lld, N growing; dense against dilated (segments 2048*4^k <= N, "
               "dilation w/2048), forward, %s\n", (long long)o.batch, scaling_causal);
        bench_print_table(stdout, &res, m, &rl, "scaling");
        figure_failed |= write_plot("scaling", &o, &res, m, &rl);
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
    rc = say_failures(&res, "failed (see the messages above and the status column)", rc);

done:
    if (bench_interrupted()) {
        cli_error("interrupted by signal %d; no output files were written",
                  bench_interrupted());
        rc = 128 + bench_interrupted();
    }
    bench_check_cache_clear();
    bench_peer_clear();
    bench_results_free(&res);
    free(m);
    bench_mpi_stop();
    return rc;
}
