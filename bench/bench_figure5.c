#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_figure5.c — the two plots: the paper's Figure 5 (sweep "figure5":
 * T tokens per batch held constant, B = T/N; latency against the sequence
 * length, lengths log-scaled, latency linear, as the paper draws it:
 * dilated stays nearly flat while vanilla grows) and the scaling plot
 * (sweep "scaling": B = 1, N growing, log-log: dilated linear, dense
 * quadratic, the per-token cost). One line per method and device (and
 * kernel, and mask when both are run), and with --peer one per method (and
 * mask) for the peer's times. Figure 5 with --pass forward,backward
 * also draws a forward+backward line (the sum of the two medians, cells of
 * pass "forward+backward" made by the sweep) beside each forward one.
 *
 * Writes, in --outdir: SWEEP.csv (every field, like --csv), SWEEP.gp (a
 * self-contained gnuplot script with the data inline, so the figure can be
 * restyled and redrawn without the bench), and SWEEP.png and SWEEP.svg
 * drawn by gnuplot when it is installed. Every file is written atomically.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cli_util.h"

/* Runs gnuplot with args; 0 when it exited 0. Its output is discarded
 * unless `show` (then its errors reach the user's stderr). */
static int run_gnuplot(char *const argv[], int show)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        FILE *null = fopen("/dev/null", "w");
        if (null) {
            dup2(fileno(null), 1);
            if (!show)
                dup2(fileno(null), 2);
        }
        execvp("gnuplot", argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* The PNG terminal: cairo's when gnuplot has it (antialiased), else libgd's. */
static const char *png_terminal(void)
{
    char *probe[] = { "gnuplot", "-e", "set terminal pngcairo", NULL };
    if (run_gnuplot(probe, 0) == 0)
        return "pngcairo";
    char *probe_gd[] = { "gnuplot", "-e", "set terminal png", NULL };
    if (run_gnuplot(probe_gd, 0) == 0)
        return "png";
    return NULL;
}

/* One line of the figure: cells of one method, device, kernel, mask and
 * pass; or (peer) the peer's times of one method and mask, whatever the
 * devices its cells were run beside. */
typedef struct line {
    bench_config_kind config;
    int device;
    char kernel[BENCH_NAME_LEN];
    int causal;
    char pass[24];
    int peer;
} line;

static int same_line(const line *l, const bench_cell *c, int peer)
{
    if (peer || l->peer)
        return peer && l->peer && l->config == c->config && l->causal == c->causal &&
               l->device == c->device;
    return l->config == c->config && l->device == c->device && l->causal == c->causal &&
           strcmp(l->kernel, c->kernel) == 0 && strcmp(l->pass, c->pass) == 0;
}

/* Whether cell c carries a peer time (--peer: forward cells only). */
static int has_peer(const bench_cell *c)
{
    return c->peer_ran && !isnan(c->peer_ms) && strcmp(c->pass, "forward") == 0;
}

/* A cell drawn in the figure of `sweep`: ok, and not a backward alone when
 * its forward+backward sum is drawn (`combined`). */
static int drawn_cell(const bench_cell *c, const char *sweep, int combined)
{
    return strcmp(c->sweep, sweep) == 0 && strcmp(c->status, "ok") == 0 &&
           !(combined && strcmp(c->pass, "backward") == 0);
}

/* Whether cell i is the first of its peer line at its length (the
 * device's kernels each ran beside the same peer time). */
static int peer_first(const bench_results *res, int i, const line *l, const char *sweep,
                      int combined)
{
    for (int k = 0; k < i; k++) {
        const bench_cell *c = &res->cells[k];
        if (drawn_cell(c, sweep, combined) && has_peer(c) && same_line(l, c, 1) &&
            c->length == res->cells[i].length)
            return 0;
    }
    return 1;
}

/* Whether peer line a times the operator of peer line b at each of a's
 * lengths: the same levels (one device, or groups of as many members:
 * Figure 5's levels depend on the tokens per device), so a is b again. */
static int peer_line_repeats(const bench_results *res, const line *a, const line *b,
                             const char *sweep, int combined)
{
    if (a->config != b->config || a->causal != b->causal)
        return 0;
    for (int i = 0; i < res->ncells; i++) {
        const bench_cell *c = &res->cells[i];
        if (!drawn_cell(c, sweep, combined) || !has_peer(c) || !same_line(a, c, 1))
            continue;
        int twin = 0;
        for (int k = 0; k < res->ncells && !twin; k++) {
            const bench_cell *d = &res->cells[k];
            twin = drawn_cell(d, sweep, combined) && has_peer(d) && same_line(b, d, 1) &&
                   d->length == c->length && bench_levels_same(&d->levels, &c->levels);
        }
        if (!twin)
            return 0;
    }
    return 1;
}

static int write_script(const char *path, const char *sweep, const bench_results *res,
                        const bench_machine *m, const bench_roofline *rl, const char *terminal)
{
    int paper = strcmp(sweep, "figure5") == 0;
    line lines[64];
    int nl = 0, masks = 0, combined = 0;
    for (int i = 0; i < res->ncells; i++)
        combined |= strcmp(res->cells[i].sweep, sweep) == 0 &&
                    strcmp(res->cells[i].pass, "forward+backward") == 0;
    for (int i = 0; i < res->ncells; i++) {
        const bench_cell *c = &res->cells[i];
        if (!drawn_cell(c, sweep, combined))
            continue;
        masks |= 1 << c->causal;
        for (int peer = 0; peer <= has_peer(c); peer++) {
            int found = 0;
            for (int j = 0; j < nl; j++)
                found |= same_line(&lines[j], c, peer);
            if (!found && nl < 64) {
                lines[nl].config = c->config;
                lines[nl].device = c->device;
                snprintf(lines[nl].kernel, sizeof lines[nl].kernel, "%s", c->kernel);
                lines[nl].causal = c->causal;
                snprintf(lines[nl].pass, sizeof lines[nl].pass, "%s", c->pass);
                lines[nl].peer = peer;
                nl++;
            }
        }
    }
    /* One peer line per device, less those that repeat an earlier one. */
    for (int j = 0; j < nl; j++) {
        int repeats = 0;
        for (int k = 0; k < j && !repeats; k++)
            repeats = lines[j].peer && lines[k].peer &&
                      peer_line_repeats(res, &lines[j], &lines[k], sweep, combined);
        if (repeats) {
            memmove(&lines[j], &lines[j + 1], (size_t)(nl - j - 1) * sizeof lines[0]);
            nl--;
            j--;
        }
    }
    bench_atomic a;
    if (bench_atomic_open(&a, path) != 0)
        return -1;
    FILE *f = a.f;
    fprintf(f, "# %s.gp — written by longnet-bench (longnet %s, %s); the data is inline.\n"
            "# Redraw: gnuplot %s.gp (writes %s.png and %s.svg here), or\n"
            "#   gnuplot -e \"png_out='a.png'; svg_out='a.svg'\" %s.gp\n",
            sweep, m->longnet_version, m->date, sweep, sweep, sweep, sweep);
    fprintf(f, "# machine: %s, %d cores", m->cpu_model, m->cores);
    if (rl->available)
        fprintf(f, "; OpenBLAS SGEMM %.1f GFLOP/s", rl->gflops);
    fprintf(f, "\nif (!exists(\"png_out\")) png_out = \"%s.png\"\n"
            "if (!exists(\"svg_out\")) svg_out = \"%s.svg\"\n\n", sweep, sweep);
    for (int j = 0; j < nl; j++) {
        fprintf(f, "$line%d << EOD\n# length median_ms\n", j);
        for (int i = 0; i < res->ncells; i++) {
            const bench_cell *c = &res->cells[i];
            if (!drawn_cell(c, sweep, combined))
                continue;
            if (!lines[j].peer && same_line(&lines[j], c, 0))
                fprintf(f, "%lld %.6g\n", (long long)c->length, c->median_ms);
            else if (lines[j].peer && has_peer(c) && same_line(&lines[j], c, 1) &&
                     peer_first(res, i, &lines[j], sweep, combined))
                fprintf(f, "%lld %.6g\n", (long long)c->length, c->peer_ms);
        }
        fputs("EOD\n", f);
    }
    const bench_cell *any = NULL;
    for (int i = 0; i < res->ncells && !any; i++)
        if (strcmp(res->cells[i].sweep, sweep) == 0)
            any = &res->cells[i];
    const char *mask = masks == 2 ? "causal, " : masks == 1 ? "non-causal, " : "";
    long long heads = any ? (long long)any->heads : 1LL, dim = any ? (long long)any->dim : 64LL;
    int repeats = any ? any->repeats : 0;
    char ranks[48] = ""; /* --mpi: every cell across the ranks */
    if (m->ranks > 1)
        snprintf(ranks, sizeof ranks, "; across %d MPI ranks", m->ranks);
    if (paper) {
        /* What the paper held constant, and how its levels were chosen. */
        long long tokens = any ? (long long)(any->batch * any->length) : 0;
        fprintf(f, "\nset title \"Figure 5 (LongNet, §3.2): %s latency at T = %lld tokens "
                "per batch held constant (B = T/N)\\n"
                "dilated: segments 2048, tokens per %s, N; dilation w/2048, so every "
                "segment selects 2048 rows; vanilla: w = N, r = 1\\n"
                "%sH=%lld, D=%lld, median of %d runs; %s, %d cores%s\" font \",10\"\n",
                combined ? "forward and forward+backward" : "forward", tokens,
                m->ranks > 1 ? "rank" : "device", mask, heads, dim, repeats, m->cpu_model,
                m->cores, ranks);
        fprintf(f, "set xlabel \"sequence length (tokens)\"\n"
                "set ylabel \"latency (ms), median of %d runs\"\n"
                "set logscale x 2\n"
                "set yrange [0:*]\n"
                "set grid xtics ytics\n"
                "set key top left box\n"
                "set pointsize 1.2\n", repeats);
    } else {
        fprintf(f, "\nset title \"Scaling: forward latency as N grows (%sB=%lld, H=%lld, "
                "D=%lld)\\ndilated: segments 2048*4^k <= N, dilation w/2048; dense: w = N, "
                "r = 1\\n%s, %d cores\" font \",10\"\n", mask,
                any ? (long long)any->batch : 1LL, heads, dim, m->cpu_model, m->cores);
        fputs("set xlabel \"sequence length (tokens)\"\n"
              "set ylabel \"latency (ms), median\"\n"
              "set logscale xy 2\n"
              "set format y \"10^{%L}\"\n"
              "set logscale y 10\n"
              "set grid xtics ytics mytics\n"
              "set key below box\n"
              "set pointsize 1.2\n", f);
    }
    /* Dense lines dashed, dilated solid, one colour per device and kernel,
     * as in the paper's figure; forward+backward lines dotted (vanilla's
     * dash-dotted), with open squares (triangles). */
    /* Tics at the measured lengths, named in binary units (8K = 8192), as
     * the paper labels them; gnuplot's own prefixes are decimal (33k). */
    fputs("set xtics (", f);
    int64_t done = 0;
    for (int i = 0, n = 0; i < res->ncells; i++) {
        const bench_cell *c = &res->cells[i];
        if (strcmp(c->sweep, sweep) != 0 || c->length <= done)
            continue;
        done = c->length;
        long long v = (long long)c->length;
        const char *unit = "";
        if (v % (1LL << 30) == 0) { v >>= 30; unit = "G"; }
        else if (v % (1LL << 20) == 0) { v >>= 20; unit = "M"; }
        else if (v % (1LL << 10) == 0) { v >>= 10; unit = "K"; }
        fprintf(f, "%s\"%lld%s\" %lld", n++ ? ", " : "", v, unit, (long long)c->length);
    }
    fputs(")\n", f);
    /* A margin around the lengths (and a range even for a single one). */
    int64_t first_len = 0;
    for (int i = 0; i < res->ncells && !first_len; i++)
        if (strcmp(res->cells[i].sweep, sweep) == 0)
            first_len = res->cells[i].length;
    if (first_len)
        fprintf(f, "set xrange [%g:%g]\n", (double)first_len / 1.3, (double)done * 1.3);
    int colour[64]; /* one per device and kernel (and peer), in order of appearance */
    for (int j = 0, next = 0; j < nl; j++) {
        colour[j] = -1;
        for (int k = 0; k < j && colour[j] < 0; k++)
            if (lines[k].peer ? lines[j].peer && lines[k].device == lines[j].device
                              : !lines[j].peer && lines[k].device == lines[j].device &&
                                    strcmp(lines[k].kernel, lines[j].kernel) == 0)
                colour[j] = colour[k];
        if (colour[j] < 0)
            colour[j] = next++;
    }
    for (int pass = 0; pass < 2; pass++) {
        const char *term = pass == 0 ? terminal : "svg";
        if (!term)
            continue;
        if (pass == 0)
            fprintf(f, "\nset terminal %s size 960,720 font \",11\"\nset output png_out\n", term);
        else
            fputs("\nset terminal svg size 960,720 dynamic font \",11\"\nset output svg_out\n", f);
        fputs("plot ", f);
        for (int j = 0; j < nl; j++) {
            const line *l = &lines[j];
            int rank = colour[j];
            int dense = l->config == BENCH_CFG_DENSE;
            int both = strcmp(l->pass, "forward+backward") == 0;
            char who[2 * BENCH_NAME_LEN + 64];
            /* Peer lines of one method and mask but different levels say
             * whose levels they ran. */
            int kin = 0;
            for (int k = 0; k < nl; k++)
                kin += lines[k].peer && lines[k].config == l->config && lines[k].causal == l->causal;
            if (l->peer && kin > 1)
                snprintf(who, sizeof who, "torch SDPA (--peer) at %s's levels",
                         m->devices[l->device].spec);
            else if (l->peer)
                snprintf(who, sizeof who, "torch SDPA (--peer)");
            else
                snprintf(who, sizeof who, "%s %s", m->devices[l->device].spec, l->kernel);
            fprintf(f, "%s$line%d using 1:2 with linespoints lc %d dt %d pt %d lw 2 "
                    "title \"%s, %s%s%s%s\"", j ? ", \\\n     " : "", j, rank + 1,
                    both ? (dense ? 4 : 3) : dense ? 2 : 1, both ? (dense ? 8 : 4) : dense ? 6 : 7,
                    dense ? (paper ? "vanilla" : "dense") : "dilated", who,
                    masks == 3 ? (l->causal ? ", causal" : ", non-causal") : "",
                    combined || strcmp(l->pass, "forward") != 0 ? ", " : "",
                    combined || strcmp(l->pass, "forward") != 0 ? l->pass : "");
        }
        if (nl == 0)
            fputs("1/0 notitle", f);
        fputs("\nunset output\n", f);
    }
    return bench_atomic_commit(&a);
}

int bench_figure5_write(const char *sweep, const char *outdir, const bench_results *res,
                        const bench_machine *m, const bench_roofline *rl,
                        const bench_options *o, char *drawn, size_t len)
{
    (void)o;
    drawn[0] = '\0';
    if (bench_mkdirs(outdir) != 0)
        return 1;
    if (strchr(outdir, '\'') || strchr(outdir, '"')) {
        cli_error("--outdir '%s': quotes in the directory name cannot be passed to gnuplot",
                  outdir);
        return 1;
    }
    char csv[4200], gp[4200], png[4200], svg[4200];
    snprintf(csv, sizeof csv, "%s/%s.csv", outdir, sweep);
    snprintf(gp, sizeof gp, "%s/%s.gp", outdir, sweep);
    snprintf(png, sizeof png, "%s/%s.png", outdir, sweep);
    snprintf(svg, sizeof svg, "%s/%s.svg", outdir, sweep);
    if (bench_write_csv(csv, res, m, rl, sweep) != 0)
        return 1;
    const char *term = png_terminal();
    if (write_script(gp, sweep, res, m, rl, term ? term : "pngcairo") != 0)
        return 1;
    if (!term) {
        cli_warning("gnuplot was not found (or has no PNG terminal): %s and %s not drawn; "
                    "the data is in %s (install gnuplot-nox)", png, svg, csv);
        return 0;
    }
    /* gnuplot writes temporary files that are renamed once it succeeded. */
    char tpng[4300], tsvg[4300], vars[9000];
    snprintf(tpng, sizeof tpng, "%s/.%s.png.tmp%ld", outdir, sweep, (long)getpid());
    snprintf(tsvg, sizeof tsvg, "%s/.%s.svg.tmp%ld", outdir, sweep, (long)getpid());
    snprintf(vars, sizeof vars, "png_out='%s'; svg_out='%s'", tpng, tsvg);
    char *argv[] = { "gnuplot", "-e", vars, gp, NULL };
    if (run_gnuplot(argv, 1) != 0) {
        unlink(tpng);
        unlink(tsvg);
        cli_error("gnuplot failed on %s: %s and %s not drawn", gp, png, svg);
        return 1;
    }
    if (rename(tpng, png) != 0 || rename(tsvg, svg) != 0) {
        cli_error("%s: %s", png, strerror(errno));
        unlink(tpng);
        unlink(tsvg);
        return 1;
    }
    snprintf(drawn, len, "%s and %s", png, svg);
    return 0;
}
