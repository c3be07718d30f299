#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_figure5_plan.c — Figure 5's token budget T when --tokens-per-batch
 * is not given: the largest power of two that this machine's budgets allow.
 *
 * The paper holds T at 1 billion tokens; a bench that must finish in a
 * minute on two cores cannot. Q, K, V and O take 16*T*H*D bytes whatever N
 * is (B = T/N), so --max-memory bounds T directly. Time is predicted for
 * the dilated line, the one the figure is about: its cost is nearly the
 * same at every N. T is the largest power of two for which the whole
 * dilated line and vanilla attention's first two lengths (a line needs two
 * points to show its growth) are predicted to fit the fastest
 * device-and-kernel's share of --max-seconds (every --pass counted: a
 * backward cell as BENCH_BACKWARD_COST forward ones); vanilla's cost grows with N,
 * and the sweep's budget cuts its longer lengths, and says so.
 */
#include <string.h>

#include "bench.h"

#define SETUP_MARGIN 1.25 /* process, plugin, filling B x N inputs, the error check */

/* Seconds per (query, key) pair of the fastest device-and-kernel: the mean
 * over its dense cells of the matrix when it ran (a mean, not the best
 * cell: on a shared machine the best is a moment nobody else ran), with a
 * margin for the set-up; else half the SGEMM roofline's rate; 0 when
 * neither is known. `from` names the source. */
static double seconds_per_pair(const bench_options *o, const bench_roofline *rl,
                               const bench_results *res, int64_t dim, const char **from)
{
    double best = 0;
    for (int i = 0; i < res->ncells; i++) {
        const bench_cell *c = &res->cells[i];
        if (strcmp(c->sweep, "matrix") != 0 || c->config != BENCH_CFG_DENSE || c->backward ||
            strcmp(c->status, "ok") != 0 || c->pairs <= 0 || c->dim != dim)
            continue;
        double sum = 0;
        int n = 0;
        for (int j = 0; j < res->ncells; j++) {
            const bench_cell *d = &res->cells[j];
            if (strcmp(d->sweep, "matrix") == 0 && d->config == BENCH_CFG_DENSE && !d->backward &&
                strcmp(d->status, "ok") == 0 && d->pairs > 0 && d->dim == dim &&
                d->device == c->device && strcmp(d->kernel, c->kernel) == 0) {
                sum += d->median_ms * 1e-3 / d->pairs;
                n++;
            }
        }
        double mean = sum / n * SETUP_MARGIN;
        if (best == 0 || mean < best)
            best = mean;
    }
    (void)o;
    if (best > 0) {
        *from = "the matrix's dense cells of the fastest device-and-kernel (their mean, "
                "with a 25% margin)";
        return best;
    }
    if (rl->available && rl->gflops > 0) {
        *from = "half the SGEMM roofline";
        return 4.0 * (double)dim / (0.5 * rl->gflops * 1e9);
    }
    *from = "nothing measured";
    return 0;
}

int64_t bench_figure5_tokens(const bench_options *o, const bench_machine *m,
                             const bench_roofline *rl, const bench_results *res, char *why,
                             size_t len)
{
    if (o->tokens_per_batch > 0) {
        snprintf(why, len, "--tokens-per-batch");
        return o->tokens_per_batch;
    }
    int64_t heads = o->heads ? o->heads : 1, dim = o->dim ? o->dim : 64;
    const char *from;
    double spp = seconds_per_pair(o, rl, res, dim, &from);
    int ndk = bench_count_dk(o, m);
    double allowed = o->max_seconds / (ndk > 0 ? ndk : 1);
    int causal = o->causal_given ? o->causal_modes[0] : 1;
    int modes = o->causal_given ? o->ncausal : 1;
    /* Every pass of --pass: a backward cell costs BENCH_BACKWARD_COST
     * forward cells of the same pairs. */
    double passes = 0;
    for (int i = 0; i < o->npasses; i++)
        passes += o->passes[i] ? BENCH_BACKWARD_COST : 1.0;
    if (passes <= 0)
        passes = 1;
    int64_t best = 8192;
    const char *limit = "the smallest T";
    for (int64_t t = 8192; t <= (1LL << 30); t *= 2) {
        uint64_t bytes = 16ull * (uint64_t)t * (uint64_t)heads * (uint64_t)dim;
        if (bytes > o->max_memory) {
            limit = "--max-memory";
            break;
        }
        double seconds = 0;
        for (int64_t n = 8192; n <= t; n *= 2) {
            bench_levels lv;
            bench_config_levels(BENCH_CFG_FIGURE5, n, 1, NULL, &lv);
            seconds += (o->warmup + o->repeat) * modes * passes * spp *
                       bench_pairs(&lv, t / n, n, heads, causal, o->offsets);
            if (n <= 16384) {
                bench_config_levels(BENCH_CFG_DENSE, n, 1, NULL, &lv);
                seconds += (o->warmup + o->repeat) * modes * passes * spp *
                           bench_pairs(&lv, t / n, n, heads, causal, o->offsets);
            }
        }
        if (spp > 0 && seconds > allowed) {
            limit = "--max-seconds";
            break;
        }
        best = t;
        if (spp <= 0) { /* no rate: keep the figure small */
            limit = "no rate known";
            break;
        }
    }
    char counted[80] = "";
    if (passes > 1)
        snprintf(counted, sizeof counted, ", the passes counted as %.3g forward cells", passes);
    snprintf(why, len, "the largest power of two that %s allows (the dilated line and "
             "vanilla at N = 8K and 16K predicted within %.0f s, the fastest "
             "device-and-kernel's share of --max-seconds %.0f, at %.3g s per pair from %s%s; "
             "Q, K, V, O within --max-memory)", limit, allowed, o->max_seconds, spp, from,
             counted);
    return best;
}
