#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_mpi.c — longnet-bench --mpi under mpirun: every rank runs the same
 * sweep, and each cell's calls run across the ranks through lnet_part, each
 * rank on its own rows (N / ranks: the "tokens per device" level of Figure
 * 5 is then the tokens per rank). Cells run in this process, not a forked
 * child (MPI does not survive a fork), so a cell is not cut off at its
 * share: the sweep's predictions still skip the cells that would overrun.
 *
 * Every rank must make the same decisions, or one would wait for ever in a
 * collective: rank 0's machine description, Figure 5's T and every cell's
 * measurements are broadcast (bench_mpi_share), so that the budget's
 * arithmetic is the same on every rank. Only rank 0 prints and writes.
 * The bench never includes mpi.h: the collectives are longnet's
 * (lnet_mpi_agree, lnet_mpi_bcast, lnet_mpi_max). */
#include <string.h>
#include <sys/resource.h>

#include "bench.h"
#include "cli_util.h"

static lnet_mpi *the_mpi;

int bench_mpi_start(bench_options *o)
{
    if (!o->mpi)
        return 0;
    if (o->run_matrix || o->run_scaling || o->explain || o->peer) {
        cli_error("--mpi runs only --figure5 (not %s)", o->run_matrix ? "the matrix"
                  : o->run_scaling ? "--scaling" : o->explain ? "--explain" : "--peer");
        return CLI_EXIT_USAGE;
    }
    if (!lnet_mpi_built()) {
        cli_error("--mpi: this longnet-bench was built without MPI (configure found no mpicc "
                  "or ompi-c; install openmpi-bin libopenmpi-dev and configure again)");
        return CLI_EXIT_FAIL;
    }
    if (lnet_mpi_init(NULL, NULL, &the_mpi) != LNET_OK) {
        cli_error("--mpi: %s", lnet_last_error());
        return CLI_EXIT_FAIL;
    }
    /* mpirun joins the ranks' stderr: whole lines, never interleaved. */
    static char errbuf[4096];
    setvbuf(stderr, errbuf, _IOLBF, sizeof errbuf);
    static char prog[64];
    snprintf(prog, sizeof prog, "%s [rank %d of %d]", BENCH_PROG, bench_mpi_rank(),
             bench_mpi_ranks());
    cli_set_prog(prog);
    if (bench_mpi_rank() != 0)
        o->quiet = 1; /* rank 0 says the progress */
    /* The error check runs one process on a small instance: it is the
     * one-process bench's; across ranks the answers are the tests'. */
    o->check_length = 0;
    return 0;
}

void bench_mpi_stop(void)
{
    fflush(stdout);
    fflush(stderr);
    lnet_mpi_free(the_mpi);
    the_mpi = NULL;
}

int bench_mpi_active(void)
{
    return the_mpi != NULL;
}

int bench_mpi_rank(void)
{
    return the_mpi ? lnet_mpi_rank(the_mpi) : 0;
}

int bench_mpi_ranks(void)
{
    return the_mpi ? lnet_mpi_size(the_mpi) : 1;
}

int bench_mpi_share(void *buf, size_t bytes)
{
    if (!the_mpi)
        return 0;
    if (lnet_mpi_bcast(the_mpi, buf, bytes, 0) != LNET_OK) {
        cli_error("--mpi: %s", lnet_last_error());
        return -1;
    }
    return 0;
}

int bench_mpi_agree(int failed, const char *what)
{
    if (!the_mpi)
        return failed ? -1 : 0;
    if (lnet_mpi_agree(the_mpi, failed ? LNET_ERR_INVALID : LNET_OK, what) == LNET_OK)
        return 0;
    if (!failed) /* the failed rank said its own */
        cli_error("%s", lnet_last_error());
    return -1;
}

/* The cell failed with the library's last message. */
static void cell_failed(bench_cell *c)
{
    snprintf(c->status, sizeof c->status, "failed");
    snprintf(c->message, sizeof c->message, "%s", lnet_last_error());
}

/* A step every rank ran, agreed: 0 to go on, else -1 with the first failed
 * rank's message in the cell (the same on every rank). */
static int agreed(bench_cell *c, lnet_status mine, const char *what)
{
    if (lnet_mpi_agree(the_mpi, mine, what) == LNET_OK)
        return 0;
    cell_failed(c);
    return -1;
}

void bench_cell_run_mpi(bench_cell *c, const bench_machine *m, const bench_options *o)
{
    (void)o;
    double start = bench_now();
    lnet_context *ctx = NULL;
    lnet_config *cfg = NULL;
    lnet_part *part = NULL;
    /* Q, K, V, O; the backward's LSE, dO, dQ, dK, dV. */
    lnet_tensor *t[4] = { NULL }, *lse = NULL, *dout = NULL, *d[3] = { NULL };
    double ms[BENCH_MAX_REPEAT];
    int n = 0;
    lnet_run_options ro = { .size = sizeof ro, .device = m->devices[c->device].run_spec,
                            .kernel = c->kernel };
    lnet_status st = lnet_context_create(NULL, &ctx);
    if (!st && bench_cell_config(c, &c->levels, &cfg))
        st = LNET_ERR_INVALID;
    if (agreed(c, st, "creating the context and the configuration"))
        goto done;
    /* Collective; a failure is the same on every rank. */
    if (lnet_part_create(ctx, cfg, the_mpi, c->batch, c->length, c->heads, c->dim,
                         LNET_LAYOUT_CONTIGUOUS, &ro, &part) != LNET_OK) {
        agreed(c, LNET_ERR_INVALID, "splitting the cell over the ranks");
        goto done;
    }
    int64_t shape[4] = { c->batch, lnet_part_rows(part), c->heads, c->dim };
    int64_t lse_shape[3] = { c->batch, c->heads, lnet_part_rows(part) };
    for (int i = 0; i < 4 && !st; i++)
        st = lnet_tensor_create(4, shape, &t[i]);
    for (int i = 0; i < 3 && !st; i++)
        bench_fill(t[i], (uint64_t)(bench_mpi_rank() * 4 + i + 1));
    if (c->backward && !st)
        st = lnet_tensor_create(3, lse_shape, &lse);
    if (c->backward && !st)
        st = lnet_tensor_create(4, shape, &dout);
    for (int i = 0; c->backward && i < 3 && !st; i++)
        st = lnet_tensor_create(4, shape, &d[i]);
    if (!st && dout)
        bench_fill(dout, (uint64_t)(bench_mpi_rank() * 4 + 4));
    if (agreed(c, st, "allocating its rows of the tensors"))
        goto done;
    /* The backward's saved O and LSE, as training keeps them: untimed. */
    if (c->backward && lnet_part_forward(part, t[0], t[1], t[2], t[3], lse) != LNET_OK) {
        agreed(c, LNET_ERR_INVALID, "the forward before the backward");
        goto done;
    }
    for (int i = 0; i < c->warmups + c->repeats; i++) {
        if (agreed(c, LNET_OK, "the barrier before a run"))
            goto done;
        double t0 = bench_now();
        st = c->backward ? lnet_part_backward(part, t[0], t[1], t[2], t[3], lse, dout, d[0],
                                              d[1], d[2])
                         : lnet_part_forward(part, t[0], t[1], t[2], t[3], NULL);
        double took = (bench_now() - t0) * 1e3;
        if (st) { /* collective: agreed already, the same failure on every rank */
            cell_failed(c);
            goto done;
        }
        /* The slowest rank's: every rank started at the barrier. */
        if (lnet_mpi_max(the_mpi, &took) != LNET_OK) {
            agreed(c, LNET_ERR_INVALID, "the slowest rank's time");
            goto done;
        }
        if (i >= c->warmups)
            ms[n++] = took;
    }
    bench_cell_times(c, ms, n);
done:;
    /* This process's peak so far (rank 0's is recorded): cells run in it
     * one after another, so a later cell's peak includes an earlier's. */
    struct rusage ru;
    c->peak_rss_bytes = getrusage(RUSAGE_SELF, &ru) == 0 ? (uint64_t)ru.ru_maxrss * 1024u : 0;
    c->wall_s = bench_now() - start;
    for (int i = 0; i < 4; i++)
        lnet_tensor_free(t[i]);
    for (int i = 0; i < 3; i++)
        lnet_tensor_free(d[i]);
    lnet_tensor_free(lse);
    lnet_tensor_free(dout);
    lnet_part_free(part);
    lnet_config_free(cfg);
    lnet_context_free(ctx);
}
