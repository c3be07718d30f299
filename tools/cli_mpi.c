#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cli_mpi.c — `longnet run --mpi` and `longnet grad --mpi` under mpirun:
 * the same checks as one process, each rank on its own; after every step
 * the ranks agree (lnet_mpi_agree), so that a rank that cannot go on makes
 * every rank stop with a message naming it, and none waits for ever in a
 * collective. Each rank reads only its rows of the inputs; the outputs are
 * written by all ranks into one temporary per file and renamed by rank 0
 * once every rank has written (lnet_part_save). Only rank 0 prints the
 * plan and the summary. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static char prog[96];

/* A step's outcome agreed: -1 to go on, else the exit code. `rc` is this
 * rank's (-1, or an exit code after its message was printed). */
static int agree(lnet_mpi *m, int rc, lnet_status st, const char *what)
{
    if (st == LNET_OK && rc >= 0)
        st = LNET_ERR_INVALID; /* its own message is printed; the others hear of it */
    lnet_status all = lnet_mpi_agree(m, st, what);
    if (all == LNET_OK)
        return -1;
    if (rc >= 0)
        return rc;
    cli_error("%s", lnet_last_error());
    return CLI_EXIT_FAIL;
}

/* This rank's rows of each input. */
static lnet_status load_rows(lnet_part *part, int n, const char *const paths[], lnet_tensor *t[])
{
    for (int i = 0; i < n; i++) {
        if (!paths[i])
            continue;
        lnet_status st = lnet_part_load(part, paths[i], &t[i]);
        if (st)
            return st;
    }
    return LNET_OK;
}

static lnet_status new_like(const lnet_part *part, const cli_attn *s, int lse, lnet_tensor **t)
{
    int64_t rows[4] = {s->shape[0], lnet_part_rows(part), s->shape[2], s->shape[3]};
    int64_t per_row[3] = {s->shape[0], s->shape[2], lnet_part_rows(part)};
    return lse ? lnet_tensor_create(3, per_row, t) : lnet_tensor_create(4, rows, t);
}

int cli_mpi_main(const cli_attn_args *a, int backward, const char *const in[6],
                 const char *const outs[3])
{
    lnet_mpi *m = NULL;
    if (lnet_mpi_init(NULL, NULL, &m) != LNET_OK)
        return cli_lib_error(NULL);
    const int me = lnet_mpi_rank(m), ranks = lnet_mpi_size(m);
    /* mpirun forwards every rank's stderr to one stream: whole lines, so
     * that two ranks' messages never interleave within a line. */
    static char errbuf[4096];
    setvbuf(stderr, errbuf, _IOLBF, sizeof errbuf);
    snprintf(prog, sizeof prog, "longnet %s [rank %d of %d]", backward ? "grad" : "run", me, ranks);
    cli_set_prog(prog);

    cli_attn s;
    memset(&s, 0, sizeof s);
    lnet_part *part = NULL;
    lnet_tensor *t[6] = {NULL}, *res[3] = {NULL}, *fwd[2] = {NULL};
    lnet_layout layout = LNET_LAYOUT_CONTIGUOUS;
    int rc = -1;
    lnet_status st = LNET_OK;
    if (a->layout && (st = lnet_layout_parse(a->layout, &layout)))
        rc = cli_lib_error("--layout");
    if (rc < 0 && (rc = cli_attn_prepare(&s, a)) < 0 && s.shape[1] != s.info[1].shape[1]) {
        cli_error("--mpi needs Q with K's rows (%lld); Q has %lld", (long long)s.info[1].shape[1],
                  (long long)s.shape[1]);
        rc = CLI_EXIT_FAIL;
    }
    if (rc < 0)
        rc = cli_attn_open(&s);
    if ((rc = agree(m, rc, LNET_OK, "checking the command line, the inputs and the devices")) >= 0)
        goto done;
    /* Collective: the ranks' weights agreed, the plan the same on all. */
    if (lnet_part_create(s.ctx, s.cfg, m, s.shape[0], s.shape[1], s.shape[2], s.shape[3], layout,
                         &s.ropts, &part) != LNET_OK) {
        rc = cli_lib_error(NULL);
        goto done;
    }
    if (a->explain && me == 0) {
        char *plan = NULL;
        if (lnet_part_explain(part, backward, &plan) == LNET_OK)
            fputs(plan, stdout);
        else
            cli_warning("--explain: %s", lnet_last_error());
        lnet_free(plan);
        fflush(stdout);
    }
    /* Q, K, V (grad: dO, and the saved O, LSE when given). */
    st = load_rows(part, backward ? 6 : 3, in, t);
    const int saved = backward && in[4];
    /* run: O, and LSE when asked for; grad: dQ, dK, dV. */
    const int n_out = backward ? 3 : outs[1] ? 2 : 1;
    for (int i = 0; i < n_out && !st; i++)
        st = new_like(part, &s, !backward && i == 1, &res[i]);
    if (!st && backward && !saved && !(st = new_like(part, &s, 0, &fwd[0])))
        st = new_like(part, &s, 1, &fwd[1]);
    if ((rc = agree(m, -1, st, "reading its rows of the inputs")) >= 0)
        goto done;
    double t0 = cli_now_ms();
    if (!backward)
        st = lnet_part_forward(part, t[0], t[1], t[2], res[0], res[1]);
    else {
        if (!saved)
            st = lnet_part_forward(part, t[0], t[1], t[2], fwd[0], fwd[1]);
        if (!st)
            st = lnet_part_backward(part, t[0], t[1], t[2], saved ? t[4] : fwd[0],
                                    saved ? t[5] : fwd[1], t[3], res[0], res[1], res[2]);
    }
    double ms = cli_now_ms() - t0;
    if (st) {
        rc = cli_lib_error(NULL); /* agreed already: the same failure on every rank */
        goto done;
    }
    const lnet_tensor *local[3] = {res[0], res[1], res[2]};
    if (lnet_part_save(part, n_out, outs, local) != LNET_OK) {
        rc = cli_lib_error(NULL);
        goto done;
    }
    if (!a->quiet && me == 0) {
        printf("ranks   %d (layout %s), each on --device %s\n", ranks,
               layout == LNET_LAYOUT_ZIGZAG ? "zigzag" : "contiguous", a->device);
        printf("shape   [%lld, %lld, %lld, %lld] [B, N, H, D]\n", (long long)s.shape[0],
               (long long)s.shape[1], (long long)s.shape[2], (long long)s.shape[3]);
        printf("time    %.3f ms\n", ms);
        for (int i = 0; i < n_out; i++)
            printf("wrote   %s\n", outs[i]);
    }
    rc = CLI_EXIT_OK;
done:
    for (int i = 0; i < 6; i++)
        lnet_tensor_free(t[i]);
    for (int i = 0; i < 3; i++)
        lnet_tensor_free(res[i]);
    lnet_tensor_free(fwd[0]);
    lnet_tensor_free(fwd[1]);
    lnet_part_free(part);
    cli_attn_free(&s);
    fflush(stdout);
    fflush(stderr);
    lnet_mpi_free(m);
    return rc;
}
