#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_sweep.c — the sweep: every series (device x kernel x configuration
 * x causal mode) over the lengths, with the budget.
 *
 * Lengths are the outer loop: every series gets its short cells before any
 * gets a long one, so a budget that runs out cuts the longest lengths, not
 * whole devices. Before a cell, its time is predicted from the same series'
 * previous cell (the kernel runs scale with the exact pair count, the rest
 * — process, plugins, compiling, the error check — with B x N) or from its
 * device-and-kernel's other series. A cell predicted to end past its share
 * of --max-seconds, or whose Q, K, V and O exceed --max-memory or the
 * device's memory, ends its series, and the bench says so; a cell that
 * cannot be predicted (the first of its device-and-kernel) or overruns its
 * prediction is cut off when the share is spent.
 *
 * Each device-and-kernel owns an equal share of the budget, so that one slow
 * device cannot starve the others of their longer lengths; the share a
 * device-and-kernel leaves unused when all its series have ended is handed
 * on to those still running.
 *
 * With --explain the same cells are made and explained instead of run.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_series.h"
#include "cli_util.h"

static void make_cell(bench_cell *c, const char *sweep, const series *s, int64_t length,
                      const bench_options *o)
{
    memset(c, 0, sizeof *c);
    snprintf(c->sweep, sizeof c->sweep, "%s", sweep);
    c->device = s->device;
    snprintf(c->kernel, sizeof c->kernel, "%s", s->kernel);
    c->config = s->config;
    c->backward = s->backward;
    snprintf(c->pass, sizeof c->pass, "%s", s->backward ? "backward" : "forward");
    c->causal = s->causal;
    c->offsets = o->offsets;
    /* Figure 5 holds the tokens per batch: B = T / N. */
    c->batch = strcmp(sweep, "figure5") == 0 && o->tokens_per_batch >= length
                   ? o->tokens_per_batch / length : o->batch;
    c->length = length;
    c->heads = s->heads;
    c->dim = s->dim;
    bench_config_levels(s->config, length, s->members, &o->custom, &c->levels);
    c->pairs = bench_pairs(&c->levels, c->batch, length, c->heads, c->causal, c->offsets);
    c->flops = bench_flops(c->pairs, c->dim, c->backward);
    c->repeats = o->repeat;
    c->warmups = o->warmup;
    /* Q, K, V, O; the backward also holds dO, dQ, dK, dV. */
    c->qkvo_bytes = (c->backward ? 8ull : 4ull) * 4ull * (uint64_t)c->batch *
                    (uint64_t)length * (uint64_t)c->heads * (uint64_t)c->dim;
    c->sgemm_fraction = NAN;
    c->max_abs_err = NAN;
    c->peer_ms = c->peer_ratio = c->peer_err = NAN;
}

/* What a device-and-kernel has shown so far: the rate of its runs and the
 * cost of a cell beyond them (process, plugin, compiling, error check). */
typedef struct dk_history {
    double s_per_pair, setup_s;
    int known;
} dk_history;

/* Seconds the cell is expected to take, from its series' previous cell, or
 * from what its device and kernel showed in another series; -1 if nothing
 * is known (its first cell: it runs under a cut-off instead). */
static double predict(const series *s, const bench_cell *c, const dk_history *h)
{
    double tokens = (double)c->batch * (double)c->length;
    if (s->has_last && s->last_pairs > 0)
        return s->last_run_s * (c->pairs / s->last_pairs) +
               s->last_setup_s * (tokens / s->last_tokens);
    /* The history is of forward seconds per pair; a backward costs more. */
    if (h->known)
        return h->s_per_pair * (c->backward ? BENCH_BACKWARD_COST : 1.0) * c->pairs *
                   (c->warmups + c->repeats) + h->setup_s;
    return -1;
}

static int append(bench_results *res, const bench_cell *c)
{
    if (res->ncells == res->cap) {
        int cap = res->cap ? 2 * res->cap : 32;
        bench_cell *grown = realloc(res->cells, (size_t)cap * sizeof *grown);
        if (!grown)
            return -1;
        res->cells = grown;
        res->cap = cap;
    }
    res->cells[res->ncells++] = *c;
    return 0;
}

void bench_results_free(bench_results *r)
{
    free(r->cells);
    free(r->stops);
    memset(r, 0, sizeof *r);
}

/* Figure 5 with --pass forward,backward: for every forward cell of `sweep`
 * whose backward twin (same device, kernel, configuration, mask and length)
 * ran too, appends a cell of pass "forward+backward" whose times are the
 * sums of the two (the backward's memory and the worse error); -1 when out
 * of memory. */
static int combine_passes(bench_results *res, const char *sweep)
{
    int n = res->ncells;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            const bench_cell *f = &res->cells[i], *b = &res->cells[j];
            if (strcmp(f->sweep, sweep) != 0 || f->backward || strcmp(f->status, "ok") != 0 ||
                strcmp(b->sweep, sweep) != 0 || !b->backward || strcmp(b->status, "ok") != 0 ||
                f->device != b->device || f->config != b->config || f->causal != b->causal ||
                f->length != b->length || strcmp(f->kernel, b->kernel) != 0)
                continue;
            bench_cell c = *b;
            snprintf(c.pass, sizeof c.pass, "forward+backward");
            c.flops = f->flops + b->flops;
            c.median_ms = f->median_ms + b->median_ms;
            c.min_ms = f->min_ms + b->min_ms;
            c.max_ms = f->max_ms + b->max_ms;
            double s = c.median_ms * 1e-3;
            c.tokens_per_s = s > 0 ? (double)(c.batch * c.length) / s : 0;
            c.gflops = s > 0 ? c.flops / s * 1e-9 : 0;
            c.peak_rss_bytes = f->peak_rss_bytes > b->peak_rss_bytes ? f->peak_rss_bytes
                                                                      : b->peak_rss_bytes;
            c.max_abs_err = isnan(f->max_abs_err) ? b->max_abs_err : fmax(f->max_abs_err,
                                                                         b->max_abs_err);
            c.wall_s = f->wall_s + b->wall_s;
            if (append(res, &c) != 0)
                return -1;
            break;
        }
    }
    return 0;
}

static double fmt_gib(uint64_t b)
{
    return (double)b / (1024.0 * 1024.0 * 1024.0);
}

/* 1 with the reason in buf when the cell's Q, K, V and O (and for a
 * backward dO, dQ, dK, dV) exceed --max-memory or its device's memory;
 * else 0. */
static int over_memory(const bench_cell *c, const bench_machine *m, const bench_options *o,
                       char *buf, size_t len)
{
    uint64_t dev = m->devices[c->device].memory_bytes;
    int mine = c->qkvo_bytes > o->max_memory;
    if (!mine && !(dev > 0 && c->qkvo_bytes > dev))
        return 0;
    snprintf(buf, len, "%s would take %.2f GiB, more than %s %.2f GiB",
             c->backward ? "Q, K, V, O, dO, dQ, dK and dV" : "Q, K, V and O", fmt_gib(c->qkvo_bytes), mine ? "--max-memory" : "the device's",
             fmt_gib(mine ? o->max_memory : dev));
    return 1;
}

/* In a plot (figure5, scaling) the first configuration is the line the
 * figure is about (dilated): the seconds its series on the same
 * device-and-kernel as s[si] are predicted to need for their remaining
 * lengths, which a cell of another configuration must leave to them. */
static double reserve_for(const series *s, int ns, int si, int li, const int64_t *lengths,
                          int nlengths, const char *sweep, const bench_config_kind main_config,
                          const bench_options *o, const dk_history *hist)
{
    if (strcmp(sweep, "matrix") == 0 || s[si].config == main_config)
        return 0;
    double sum = 0;
    for (int sj = 0; sj < ns; sj++) {
        if (sj == si || s[sj].dk != s[si].dk || s[sj].config != main_config || s[sj].stopped)
            continue;
        for (int lj = sj < si ? li + 1 : li; lj < nlengths; lj++) {
            bench_cell next;
            make_cell(&next, sweep, &s[sj], lengths[lj], o);
            double e = predict(&s[sj], &next, &hist[s[sj].dk]);
            sum += e > 0 ? e : 0;
        }
    }
    return sum;
}

/* "cpu:0 fast paper causal" */
static void series_name(char *buf, size_t len, const char *sweep, const series *x,
                        const bench_machine *m)
{
    snprintf(buf, len, "%s %s %s %s %s%s", sweep, m->devices[x->device].spec, x->kernel,
             bench_config_name(x->config), x->causal ? "causal" : "non-causal",
             x->backward ? " backward" : "");
}

/* The plan, said before the first cell, so that the totals never change. */
static void say_plan(const char *sweep, const series *s, int ns, int nlengths, int ndk,
                     const bench_options *o, const bench_machine *m)
{
    if (o->quiet)
        return;
    char dks[BENCH_TEXT_LEN] = "";
    for (int k = 0; k < ndk; k++)
        for (int i = 0; i < ns; i++)
            if (s[i].dk == k) {
                size_t u = strlen(dks);
                snprintf(dks + u, sizeof dks - u, "%s%s %s", k ? ", " : "",
                         m->devices[s[i].device].spec, s[i].kernel);
                break;
            }
    fprintf(stderr, "%s: %s: %d cells planned (%d series of %s, x %d length%s), "
            "--max-seconds %.0f shared by %d device-and-kernel%s; a cell predicted to "
            "overrun its share is skipped and said\n", BENCH_PROG, sweep, ns * nlengths, ns,
            dks, nlengths, nlengths == 1 ? "" : "s", o->max_seconds, ndk, ndk == 1 ? "" : "s");
}

/* --explain: every cell of the sweep in the order it would run, those the
 * budget would skip too (a memory stop is said; a time stop cannot be
 * known without running). Nothing runs. */
static void explain_sweep(const char *sweep, const series *s, int ns, const int64_t *lengths,
                          int nlengths, const bench_options *o, const bench_machine *m,
                          bench_results *res)
{
    if (ns == 0 || nlengths == 0)
        printf("\n(%s: no cells)\n", sweep); /* as the table says it */
    for (int li = 0; li < nlengths; li++)
        for (int si = 0; si < ns && !bench_interrupted(); si++) {
            bench_cell c;
            make_cell(&c, sweep, &s[si], lengths[li], o);
            char what[BENCH_TEXT_LEN], over[BENCH_TEXT_LEN], note[BENCH_TEXT_LEN + 32] = "";
            series_name(what, sizeof what, sweep, &s[si], m);
            if (over_memory(&c, m, o, over, sizeof over))
                snprintf(note, sizeof note, " (a run skips it: %s)", over);
            if (bench_cell_explain(&c, m, what, note) != 0)
                res->failures++;
        }
}

int bench_sweep(const char *sweep, const bench_config_kind *configs, int nconfigs,
                const int64_t *lengths, int nlengths, const bench_options *o,
                const bench_machine *m, const bench_roofline *rl, bench_results *res)
{
    (void)rl; /* the fractions are set once the roofline is final */
    series *s = NULL;
    int ns = bench_build_series(sweep, configs, nconfigs, o, m, &s);
    if (ns < 0)
        return -1;
    if (o->explain) {
        explain_sweep(sweep, s, ns, lengths, nlengths, o, m, res);
        free(s);
        return bench_interrupted() ? -1 : 0;
    }
    int ndk = 0;
    for (int i = 0; i < ns; i++)
        ndk = s[i].dk + 1 > ndk ? s[i].dk + 1 : ndk;
    dk_history *hist = calloc((size_t)ndk + 1, sizeof *hist);
    double *share = calloc((size_t)ndk + 1, sizeof *share);
    double *spent = calloc((size_t)ndk + 1, sizeof *spent);
    int *done_dk = calloc((size_t)ndk + 1, sizeof *done_dk);
    for (int i = 0; i < ndk; i++)
        share[i] = o->max_seconds / ndk;
    say_plan(sweep, s, ns, nlengths, ndk, o, m);
    bench_progress prog;
    bench_progress_start(&prog, sweep, ns * nlengths, o->quiet);

    for (int li = 0; li < nlengths; li++) {
        for (int si = 0; si < ns; si++) {
            series *x = &s[si];
            if (x->stopped)
                continue;
            bench_cell c;
            make_cell(&c, sweep, x, lengths[li], o);
            char what[BENCH_TEXT_LEN], over[BENCH_TEXT_LEN];
            series_name(what, sizeof what, sweep, x, m);
            int left = nlengths - li;
            double share_left = share[x->dk] - spent[x->dk];
            if (over_memory(&c, m, o, over, sizeof over)) {
                bench_note_stop(res, "budget: %s stops before N=%lld: %s", what,
                                (long long)c.length, over);
                x->stopped = 1;
                bench_progress_skip(&prog, left);
                continue;
            }
            if (bench_interrupted())
                goto out;
            double expect = predict(x, &c, &hist[x->dk]);
            /* At most half of what is left: the dilated line may be
             * predicted to use all of it (B = 1, N up to 16M), and the
             * figure needs the other line too. */
            double reserve = reserve_for(s, ns, si, li, lengths, nlengths, sweep, configs[0],
                                         o, hist);
            if (reserve > share_left / 2)
                reserve = share_left > 0 ? share_left / 2 : 0;
            /* Each device-and-kernel keeps to its own share, so that a slow
             * one cannot eat the others'. */
            if (share_left <= 0 || (expect >= 0 && expect + reserve > share_left)) {
                if (share_left > 0 && expect <= share_left)
                    bench_note_stop(res, "budget: %s stops before N=%lld: it would take "
                                    "about %.0f s of the %.0f s left of its "
                                    "device-and-kernel's share (%.0f s), which keeps %.0f s "
                                    "for the %s line's remaining lengths", what,
                                    (long long)c.length, expect, share_left, share[x->dk],
                                    reserve, bench_config_name(configs[0]));
                else if (share_left <= 0)
                    bench_note_stop(res, "budget: %s stops before N=%lld: its "
                                    "device-and-kernel's share (%.0f s) of --max-seconds "
                                    "%.0f is spent", what, (long long)c.length,
                                    share[x->dk], o->max_seconds);
                else
                    bench_note_stop(res, "budget: %s stops before N=%lld: it would take "
                                    "about %.0f s, %.0f s are left of its device-and-kernel's "
                                    "share (%.0f s) of --max-seconds %.0f", what,
                                    (long long)c.length, expect, share_left, share[x->dk],
                                    o->max_seconds);
                x->stopped = 1;
                bench_progress_skip(&prog, left);
                continue;
            }

            bench_progress_before(&prog, &c, m, expect, share_left);
            double t0 = bench_now();
            /* Nothing may run past the share: a cell that could not be
             * predicted, or ran slower than predicted, is cut off there. */
            bench_child_timeout(share_left);
            if (bench_mpi_active())
                bench_cell_run_mpi(&c, m, o);
            else
                bench_cell_run(&c, m, o);
            int cut = !bench_mpi_active() && bench_child_timed_out(); /* no child */
            if (!cut && strcmp(c.status, "ok") == 0) {
                bench_child_timeout(share_left - (bench_now() - t0));
                bench_cell_check(&c, m, o);
            }
            bench_child_timeout(0);
            if (bench_interrupted())
                goto out;
            double took = bench_now() - t0;
            /* --mpi: rank 0's measurements, so that every rank's budget
             * takes the same decisions (and no rank waits in a cell the
             * others skipped). */
            if (bench_mpi_share(&c, sizeof c) != 0 || bench_mpi_share(&took, sizeof took) != 0) {
                res->failures++;
                goto out;
            }
            /* The peer beside longnet, in every sweep: outside the budget,
             * which is longnet's. Not across ranks: one process's peer
             * against the slowest rank's time would compare nothing. */
            if (!cut && !bench_mpi_active())
                bench_peer_run(&c, m, o);
            if (bench_interrupted())
                goto out;
            spent[x->dk] += took;
            if (cut) {
                bench_note_stop(res, "budget: %s stops at N=%lld: cut off after %.0f s, the "
                                "rest of its device-and-kernel's share (%.0f s) of "
                                "--max-seconds %.0f%s", what, (long long)c.length, took,
                                share[x->dk], o->max_seconds,
                                expect < 0 ? " (its first cell: nothing to predict from)" : "");
                x->stopped = 1;
                bench_progress_skip(&prog, left);
                continue;
            }
            if (strcmp(c.status, "ok") == 0) {
                double run_s = c.median_ms * 1e-3 * (c.warmups + c.repeats);
                x->has_last = 1;
                x->last_run_s = run_s;
                /* Everything beyond the runs: process, plugin, compiling,
                 * the error check; it recurs in every cell. */
                x->last_setup_s = took > run_s ? took - run_s : 0;
                x->last_pairs = c.pairs;
                x->last_tokens = (double)c.batch * (double)c.length;
                if (c.pairs > 0) {
                    hist[x->dk].known = 1;
                    hist[x->dk].s_per_pair = c.median_ms * 1e-3 / c.pairs /
                                             (c.backward ? BENCH_BACKWARD_COST : 1.0);
                    hist[x->dk].setup_s = x->last_setup_s;
                }
            } else {
                res->failures++;
                cli_error("%s N=%lld failed: %s", what, (long long)c.length, c.message);
                if (li + 1 < nlengths)
                    bench_note_stop(res, "%s stops after the failure at N=%lld", what,
                                    (long long)c.length);
                x->stopped = 1;
                bench_progress_skip(&prog, left - 1);
            }
            if (append(res, &c) != 0) {
                cli_error("out of memory");
                goto out;
            }

            /* What is left: every remaining cell, predicted like this one,
             * never more than the budget left. */
            double remaining = 0;
            for (int lj = li; lj < nlengths && remaining >= 0; lj++)
                for (int sj = lj == li ? si + 1 : 0; sj < ns; sj++) {
                    if (s[sj].stopped)
                        continue;
                    bench_cell next;
                    make_cell(&next, sweep, &s[sj], lengths[lj], o);
                    double e = predict(&s[sj], &next, &hist[s[sj].dk]);
                    double cap = share[s[sj].dk] - spent[s[sj].dk];
                    remaining += e < 0 || e > cap ? (cap > 0 ? cap : 0) : e;
                }
            double budget_left = 0;
            for (int k = 0; k < ndk; k++)
                budget_left += share[k] > spent[k] ? share[k] - spent[k] : 0;
            if (remaining > budget_left)
                remaining = budget_left;
            bench_progress_after(&prog, &c, m, remaining);
        }
        /* Hand the unused share of finished device-and-kernels on. */
        int active = 0;
        double freed = 0;
        for (int k = 0; k < ndk; k++) {
            int running = 0;
            for (int si = 0; si < ns; si++)
                running |= s[si].dk == k && !s[si].stopped;
            if (!running && !done_dk[k]) {
                done_dk[k] = 1;
                if (share[k] > spent[k])
                    freed += share[k] - spent[k];
                share[k] = spent[k];
            }
            active += running;
        }
        for (int k = 0; k < ndk && active > 0; k++)
            if (!done_dk[k])
                share[k] += freed / active;
    }
    if (strcmp(sweep, "figure5") == 0 && combine_passes(res, sweep) != 0)
        cli_error("out of memory");
out:
    bench_child_timeout(0);
    free(share);
    free(spent);
    free(done_dk);
    free(hist);
    free(s);
    return bench_interrupted() ? -1 : 0;
}
