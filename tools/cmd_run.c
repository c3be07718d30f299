#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cmd_run.c — `longnet run`: dilated attention forward on three .npy files.
 * The steps it shares with `longnet grad` (options, configuration, inputs,
 * devices, memory check, summary) are in cli_attn.c.
 */
#include <string.h>

#include "cli.h"

void cmd_run_usage(FILE *out)
{
    fputs("Usage: longnet run --q Q.npy --k K.npy --v V.npy\n"
          "                   --segments W0,W1,... --dilations R0,R1,...\n"
          "                   --out O.npy [--lse LSE.npy] [--causal]\n"
          "                   [--offsets interleaved|grouped] [--scale S]\n"
          "                   [--device LIST] [--kernel NAME]\n"
          "                   [--algorithm auto|gather|ring] [--explain] [--force]\n"
          "                   [--quiet]\n"
          "\n"
          "Computes LongNet's dilated attention O = attn(Q, K, V) for float32 or\n"
          "float64 .npy inputs: K and V of shape [B, N, H, D] (batch, tokens,\n"
          "heads, head dim), Q of the same shape or of fewer rows [B, Nq, H, D]\n"
          "(the sequence's last Nq positions: cross-attention, decoding), and\n"
          "writes O as float32 [B, Nq, H, D].\n"
          "\n"
          "  --out FILE           the output O (replaced atomically: a failed run\n"
          "                       leaves an existing file as it was; a symlink's\n"
          "                       target is replaced, a device or FIFO written to)\n"
          "  --lse FILE           also write the log-sum-exp, float32 [B, H, Nq]\n"
          "                       (O and LSE are committed together or not at all)\n", out);
    cli_attn_usage(out);
}

enum { OPT_OUT = CLI_ATTN_OPT_END, OPT_LSE };

typedef struct run_args {
    cli_attn_args c;
    const char *out, *lse;
} run_args;

/* Parses the command line into `a`; returns -1 when done, else an exit code. */
static int parse_args(int argc, char **argv, run_args *a)
{
    static const cli_option options[] = {
        CLI_ATTN_OPTIONS, { "out", 1, OPT_OUT }, { "lse", 1, OPT_LSE }, { NULL, 0, 0 }
    };
    memset(a, 0, sizeof *a);
    cli_attn_args_init(&a->c);

    cli_parser p;
    cli_parser_init(&p, argc, argv, options);
    int rc;
    for (int id; (id = cli_attn_next_option(&p, &a->c, cmd_run_usage, &rc)) != CLI_OPT_END;) {
        if (id == OPT_OUT)
            a->out = p.value;
        else if (id == OPT_LSE)
            a->lse = p.value;
    }
    if (rc >= 0 || (rc = cli_attn_require(&a->c)) >= 0)
        return rc;
    if (!a->out)
        return cli_usage_error("missing required option --out");
    return -1;
}

int cmd_run_main(int argc, char **argv)
{
    cli_set_prog("longnet run");
    cli_signals_install();
    run_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    const char *const outs[2] = { a.out, a.lse }, *const out_flag[2] = { "--out", "--lse" };
    if ((rc = cli_check_paths(3, a.c.path, cli_attn_input_flag, 2, outs, out_flag)) >= 0)
        return rc;
    if (a.c.mpi) {
        const char *const in[6] = { a.c.path[0], a.c.path[1], a.c.path[2], NULL, NULL, NULL };
        const char *const out3[3] = { a.out, a.lse, NULL };
        return cli_mpi_main(&a.c, 0, in, out3);
    }

    cli_attn s;
    lnet_tensor *in[3] = { NULL, NULL, NULL };
    lnet_tensor *out = NULL, *lse = NULL;
    if ((rc = cli_attn_prepare(&s, &a.c)) >= 0 || (rc = cli_attn_open(&s)) >= 0 ||
        (rc = cli_attn_check_memory(&s, 4, a.lse != NULL, "Q, K, V and O")) >= 0 ||
        (rc = cli_load(3, a.c.path, cli_attn_input_name, s.info, in)) >= 0)
        goto done;

    int64_t lse_shape[3] = { s.shape[0], s.shape[2], s.shape[1] }; /* [B, H, N] */
    if (lnet_tensor_create(4, s.shape, &out) != LNET_OK ||
        (a.lse && lnet_tensor_create(3, lse_shape, &lse) != LNET_OK)) {
        rc = cli_lib_error(NULL);
        goto done;
    }
    if ((rc = cli_attn_explain(&s, 0)) >= 0)
        goto done;
    double t0 = cli_now_ms();
    if (lnet_attention_forward(s.ctx, s.cfg, in[0], in[1], in[2], out, lse, &s.ropts) != LNET_OK) {
        rc = cli_lib_error(NULL);
        goto done;
    }
    double ms = cli_now_ms() - t0;
    cli_warn_non_finite("O", a.out, out);
    if (lse)
        cli_warn_non_finite("LSE", a.lse, lse);

    /* O and LSE together or not at all: a failed LSE must not leave a new
     * O beside an old LSE. */
    const lnet_tensor *tensors[2] = { out, lse };
    if ((rc = cli_outputs_save(lse ? 2 : 1, outs, tensors)) != CLI_EXIT_OK)
        goto done;
    if (!a.c.quiet) {
        char buf[256];
        cli_attn_print_setup(&s, in[0], ms);
        printf("out     %s %s\n", a.out, cli_tensor_shape_str(in[0], buf, sizeof buf));
        if (lse)
            printf("lse     %s %s\n", a.lse, cli_tensor_shape_str(lse, buf, sizeof buf));
    }
    rc = CLI_EXIT_OK;

done:
    lnet_tensor_free(lse);
    lnet_tensor_free(out);
    for (int i = 0; i < 3; i++)
        lnet_tensor_free(in[i]);
    cli_attn_free(&s);
    return rc;
}
