#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_progress.c — progress on stderr, so that a sweep of minutes is not
 * silent: which cell, how many of the planned cells are done or skipped,
 * the time spent and the time still expected. The total is the plan, said
 * before the first cell, and never changes: a skipped cell counts as done. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define LONG_CELL_S 5.0 /* announce a cell predicted to take this long */

void bench_progress_start(bench_progress *p, const char *sweep, int total, int quiet)
{
    memset(p, 0, sizeof *p);
    p->sweep = sweep;
    p->total = total;
    p->start = bench_now();
    p->quiet = quiet;
}

static void describe(char *buf, size_t len, const bench_cell *c, const bench_machine *m)
{
    snprintf(buf, len, "%s %s %s %s N=%lld", m->devices[c->device].spec, c->kernel,
             bench_config_name(c->config), c->causal ? "causal" : "non-causal",
             (long long)c->length);
}

void bench_progress_before(bench_progress *p, const bench_cell *c, const bench_machine *m,
                           double predicted_s, double cutoff_s)
{
    if (p->quiet || (predicted_s >= 0 && predicted_s < LONG_CELL_S))
        return;
    char what[BENCH_TEXT_LEN];
    describe(what, sizeof what, c, m);
    if (predicted_s < 0 && bench_mpi_active()) /* in this process: nothing to cut off */
        fprintf(stderr, "%s: %s [%d/%d] %s: running, its first cell: time unknown (not cut "
                "off under --mpi)\n", BENCH_PROG, p->sweep, p->done + 1, p->total, what);
    else if (predicted_s < 0)
        fprintf(stderr, "%s: %s [%d/%d] %s: running, its first cell: time unknown, cut off "
                "after %.0f s\n", BENCH_PROG, p->sweep, p->done + 1, p->total, what, cutoff_s);
    else
        fprintf(stderr, "%s: %s [%d/%d] %s: running, about %.0f s\n", BENCH_PROG, p->sweep,
                p->done + 1, p->total, what, predicted_s);
    p->shown = 1;
}

void bench_progress_skip(bench_progress *p, int cells)
{
    if (cells <= 0)
        return;
    p->done += cells;
    if (p->quiet)
        return;
    fprintf(stderr, "%s: %s [%d/%d] %d cell%s skipped (said above)\n", BENCH_PROG, p->sweep,
            p->done, p->total, cells, cells == 1 ? "" : "s");
}

void bench_progress_after(bench_progress *p, const bench_cell *c, const bench_machine *m,
                          double remaining_s)
{
    p->done++;
    double elapsed = bench_now() - p->start;
    if (p->quiet)
        return;
    char what[BENCH_TEXT_LEN], left[64];
    describe(what, sizeof what, c, m);
    if (remaining_s >= 0)
        snprintf(left, sizeof left, "about %.0f s left", remaining_s);
    else
        snprintf(left, sizeof left, "time left unknown");
    if (strcmp(c->status, "ok") == 0)
        fprintf(stderr, "%s: %s [%d/%d] %s: %.1f ms; %.0f s elapsed, %s\n", BENCH_PROG,
                p->sweep, p->done, p->total, what, c->median_ms, elapsed, left);
    else
        fprintf(stderr, "%s: %s [%d/%d] %s: failed; %.0f s elapsed, %s\n", BENCH_PROG,
                p->sweep, p->done, p->total, what, elapsed, left);
    p->shown = 1;
}

void bench_note_stop(bench_results *res, const char *fmt, ...)
{
    char line[BENCH_TEXT_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", BENCH_PROG, line);
    if (res->nstops == res->stopcap) {
        int cap = res->stopcap ? 2 * res->stopcap : 8;
        void *grown = realloc(res->stops, (size_t)cap * sizeof *res->stops);
        if (!grown)
            return;
        res->stops = grown;
        res->stopcap = cap;
    }
    snprintf(res->stops[res->nstops++], BENCH_TEXT_LEN, "%s", line);
}
