#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cmd_grad.c — `longnet grad`: the dilated attention backward on .npy
 * files: dQ, dK, dV for the incoming gradient dO, from Q, K, V and,
 * optionally, the forward's saved O and LSE (else the forward runs first).
 * The steps it shares with `longnet run` are in cli_attn.c; like run it
 * checks everything it can before computing and commits its three outputs
 * together or not at all.
 */
#include <string.h>

#include "cli.h"

void cmd_grad_usage(FILE *out)
{
    fputs("Usage: longnet grad --q Q.npy --k K.npy --v V.npy --dout dO.npy\n"
          "                    [--out O.npy --lse LSE.npy]\n"
          "                    --segments W0,W1,... --dilations R0,R1,...\n"
          "                    --dq dQ.npy --dk dK.npy --dv dV.npy [--causal]\n"
          "                    [--offsets interleaved|grouped] [--scale S]\n"
          "                    [--device LIST] [--kernel NAME]\n"
          "                    [--algorithm auto|gather|ring] [--explain] [--force]\n"
          "                    [--quiet]\n"
          "\n"
          "Computes the gradients of LongNet's dilated attention O = attn(Q, K, V)\n"
          "for the incoming gradient dO: dQ, dK, dV, written as float32 of the\n"
          "shapes of Q, K and V (Q and dO [B, Nq, H, D], K and V [B, N, H, D], as\n"
          "for 'longnet run'). A device without a backward pass is refused alone\n"
          "and left out of a list (with a warning; the others take its rows).\n"
          "\n"
          "  --dout FILE          the incoming gradient dO, of Q's shape\n"
          "  --out, --lse FILE    the forward's saved O and LSE ('longnet run --out\n"
          "                       --lse' with the same inputs and options), both or\n"
          "                       neither: without them the forward runs first\n"
          "  --dq, --dk, --dv FILE\n"
          "                       the outputs, committed together or not at all\n"
          "                       (each replaced atomically, as run's --out)\n"
          "(--explain prints the backward's plan: dK and dV sent back to their rows'\n"
          "owners among its transfers.)\n", out);
    cli_attn_usage(out);
}

enum { OPT_DOUT = CLI_ATTN_OPT_END, OPT_OUT, OPT_LSE, OPT_DQ, OPT_DK, OPT_DV };

/* The inputs beyond Q, K, V: dO, then the optional saved O and LSE. */
enum { IN_DOUT, IN_OUT, IN_LSE, N_EXTRA };
static const char *const extra_flag[N_EXTRA] = { "--dout", "--out", "--lse" };
static const char *const extra_name[N_EXTRA] = { "dO", "O", "LSE" };
static const char *const grad_flag[3] = { "--dq", "--dk", "--dv" };

typedef struct grad_args {
    cli_attn_args c;
    const char *extra[N_EXTRA]; /* dout, out, lse */
    const char *grad[3];        /* dq, dk, dv */
} grad_args;

static int parse_args(int argc, char **argv, grad_args *a)
{
    static const cli_option options[] = {
        CLI_ATTN_OPTIONS, { "dout", 1, OPT_DOUT }, { "out", 1, OPT_OUT }, { "lse", 1, OPT_LSE },
        { "dq", 1, OPT_DQ }, { "dk", 1, OPT_DK }, { "dv", 1, OPT_DV }, { NULL, 0, 0 }
    };
    memset(a, 0, sizeof *a);
    cli_attn_args_init(&a->c);

    cli_parser p;
    cli_parser_init(&p, argc, argv, options);
    int rc;
    for (int id; (id = cli_attn_next_option(&p, &a->c, cmd_grad_usage, &rc)) != CLI_OPT_END;) {
        if (id >= OPT_DOUT && id <= OPT_LSE)
            a->extra[id - OPT_DOUT] = p.value;
        else if (id >= OPT_DQ && id <= OPT_DV)
            a->grad[id - OPT_DQ] = p.value;
    }
    if (rc >= 0 || (rc = cli_attn_require(&a->c)) >= 0)
        return rc;
    if (!a->extra[IN_DOUT])
        return cli_usage_error("missing required option --dout");
    if (!a->extra[IN_OUT] != !a->extra[IN_LSE])
        return cli_usage_error("%s '%s' given without %s: the forward's saved O and LSE go "
                               "together (or leave both out to run the forward first)",
                               a->extra[IN_OUT] ? "--out" : "--lse",
                               a->extra[IN_OUT] ? a->extra[IN_OUT] : a->extra[IN_LSE],
                               a->extra[IN_OUT] ? "--lse" : "--out");
    for (int i = 0; i < 3; i++)
        if (!a->grad[i])
            return cli_usage_error("missing required option %s", grad_flag[i]);
    return -1;
}

/* dO and the saved O of Q's shape, the saved LSE [B, H, Nq]; headers only. */
static int inspect_extra(const grad_args *a, const cli_attn *s, int n, lnet_npy_info info[])
{
    const int64_t *q = s->shape;
    const int64_t lse_shape[3] = { q[0], q[2], q[1] };
    char s0[256], s1[256];
    for (int i = 0; i < n; i++) {
        int ndim = i == IN_LSE ? 3 : 4;
        const int64_t *want = i == IN_LSE ? lse_shape : q;
        int rc = cli_inspect(a->extra[i], extra_name[i], ndim,
                             i == IN_LSE ? "[B, H, Nq]" : "[B, Nq, H, D]", &info[i]);
        if (rc >= 0)
            return rc;
        for (int d = 0; d < ndim; d++)
            if (info[i].shape[d] != want[d]) {
                cli_error("%s '%s' has shape %s but Q '%s' has shape %s; %s must be %s", extra_name[i],
                          a->extra[i], lnet_shape_str(ndim, info[i].shape, s0, sizeof s0),
                          a->c.path[0], lnet_shape_str(4, q, s1, sizeof s1), extra_name[i],
                          i == IN_LSE ? "[B, H, Nq] of Q's B, H and rows" : "of Q's shape");
                return CLI_EXIT_FAIL;
            }
    }
    return -1;
}

int cmd_grad_main(int argc, char **argv)
{
    cli_set_prog("longnet grad");
    cli_signals_install();
    grad_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    /* Every input (Q, K, V, dO, O, LSE) against every output. */
    const char *in_path[3 + N_EXTRA], *in_flag[3 + N_EXTRA];
    for (int i = 0; i < 3 + N_EXTRA; i++) {
        in_path[i] = i < 3 ? a.c.path[i] : a.extra[i - 3];
        in_flag[i] = i < 3 ? cli_attn_input_flag[i] : extra_flag[i - 3];
    }
    if ((rc = cli_check_paths(3 + N_EXTRA, in_path, in_flag, 3, a.grad, grad_flag)) >= 0)
        return rc;
    if (a.c.mpi)
        return cli_mpi_main(&a.c, 1, in_path, a.grad);

    const int saved = a.extra[IN_OUT] != NULL;
    const int nextra = saved ? N_EXTRA : 1;
    cli_attn s;
    lnet_npy_info info[N_EXTRA];
    lnet_tensor *in[3] = { NULL, NULL, NULL }, *ex[N_EXTRA] = { NULL, NULL, NULL };
    lnet_tensor *grad[3] = { NULL, NULL, NULL };
    /* Q, K, V, dO, O (saved or computed), LSE, dQ, dK, dV. */
    if ((rc = cli_attn_prepare(&s, &a.c)) >= 0 || (rc = inspect_extra(&a, &s, nextra, info)) >= 0 ||
        (rc = cli_attn_open(&s)) >= 0 ||
        (rc = cli_attn_check_memory(&s, 8, 1, "Q, K, V, dO, O, dQ, dK and dV")) >= 0 ||
        (rc = cli_load(3, a.c.path, cli_attn_input_name, s.info, in)) >= 0 ||
        (rc = cli_load(nextra, a.extra, extra_name, info, ex)) >= 0)
        goto done;
    for (int i = 0; i < 3; i++)
        if (lnet_tensor_create(4, i == 0 ? s.shape : s.info[1].shape, &grad[i]) != LNET_OK) {
            rc = cli_lib_error(NULL);
            goto done;
        }
    if ((rc = cli_attn_explain(&s, 1)) >= 0)
        goto done;
    double t0 = cli_now_ms();
    if (lnet_attention_backward(s.ctx, s.cfg, in[0], in[1], in[2], ex[IN_OUT], ex[IN_LSE],
                                ex[IN_DOUT], grad[0], grad[1], grad[2], &s.ropts) != LNET_OK) {
        rc = cli_lib_error(NULL);
        goto done;
    }
    double ms = cli_now_ms() - t0;
    static const char *const grad_name[3] = { "dQ", "dK", "dV" };
    for (int i = 0; i < 3; i++)
        cli_warn_non_finite(grad_name[i], a.grad[i], grad[i]);

    /* dQ, dK and dV together or not at all. */
    const lnet_tensor *tensors[3] = { grad[0], grad[1], grad[2] };
    if ((rc = cli_outputs_save(3, a.grad, tensors)) != CLI_EXIT_OK)
        goto done;
    if (!a.c.quiet) {
        char buf[256];
        cli_attn_print_setup(&s, in[0], ms);
        if (saved)
            printf("forward saved: out %s, lse %s\n", a.extra[IN_OUT], a.extra[IN_LSE]);
        else
            printf("forward run first (no --out/--lse given; counted in the time)\n");
        for (int i = 0; i < 3; i++)
            printf("%-7s %s %s\n", grad_flag[i] + 2, a.grad[i],
                   cli_tensor_shape_str(grad[i], buf, sizeof buf));
    }
    rc = CLI_EXIT_OK;

done:
    for (int i = 0; i < 3; i++) {
        lnet_tensor_free(grad[i]);
        lnet_tensor_free(in[i]);
        lnet_tensor_free(ex[i]);
    }
    cli_attn_free(&s);
    return rc;
}
