/* cli.h — what the files of the `longnet` command share: the commands, the
 * memory check, the outputs committed together; and, through cli_util.h
 * (common/, shared with longnet-bench), errors, numbers, lists, options.
 *
 * Only the public API (longnet.h) is used here: the command is the first user
 * of the library and must not lean on anything a user could not.
 */
#ifndef LNET_CLI_H
#define LNET_CLI_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli_util.h"
#include "longnet.h"

/* ------------------------------------------------------------ commands */

/* Each command gets argv with argv[0] being the command's name and returns an
 * exit code; its usage text goes to `out`. */
typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*main)(int argc, char **argv);
    void (*usage)(FILE *out);
} cli_command;

int cmd_info_main(int argc, char **argv);
void cmd_info_usage(FILE *out);
int cmd_run_main(int argc, char **argv);
void cmd_run_usage(FILE *out);
int cmd_gen_main(int argc, char **argv);
void cmd_gen_usage(FILE *out);
int cmd_grad_main(int argc, char **argv);
void cmd_grad_usage(FILE *out);
int cmd_plan_main(int argc, char **argv);
void cmd_plan_usage(FILE *out);
int cmd_test_main(int argc, char **argv);
void cmd_test_usage(FILE *out);

/* --------------------------------------------------------------- memory */

/* Bytes this process may still allocate: the least of MemAvailable, the
 * memory cgroup's limit less its usage, and RLIMIT_AS less the address
 * space in use (UINT64_MAX when nothing is known). *source names the bound
 * that decided it. */
uint64_t cli_memory_available(const char **source);
/* "7.0 GiB" into buf; returns buf. */
const char *cli_bytes_str(uint64_t bytes, char *buf, size_t len);

/* -------------------------------------------------------------- outputs */

#define CLI_MAX_OUTPUTS 8

/* Handlers for SIGINT, SIGTERM and SIGHUP that remove the temporaries of
 * cli_outputs_save and end the process by that signal; SIGXFSZ ignored (a
 * file-size limit becomes a write error). Call at the start of a command
 * and again after plugins load (their runtimes may install handlers of
 * their own). Signals inherited as ignored stay ignored. */
void cli_signals_install(void);

/* Writes tensors[i] to paths[i] for every i, all or nothing: each file is
 * complete before any is renamed over its target, and on any failure none
 * is and every temporary is removed (one error line printed). Returns an
 * exit code. */
int cli_outputs_save(int n, const char *const paths[], const lnet_tensor *const tensors[]);

/* ------------------------------------------- attention commands (run, grad) */

/* What `longnet run` and `longnet grad` share (cli_attn.c): the options
 * of an attention call, the configuration, the inputs Q, K, V, the
 * devices, the memory check, the summary. */

/* Option ids of the shared options; a command numbers its own from
 * CLI_ATTN_OPT_END. CLI_ATTN_OPTIONS lists them for a cli_option table. */
enum {
    CLI_ATTN_OPT_Q = 1, CLI_ATTN_OPT_K, CLI_ATTN_OPT_V, CLI_ATTN_OPT_SEGMENTS,
    CLI_ATTN_OPT_DILATIONS, CLI_ATTN_OPT_CAUSAL, CLI_ATTN_OPT_OFFSETS, CLI_ATTN_OPT_SCALE,
    CLI_ATTN_OPT_DEVICE, CLI_ATTN_OPT_KERNEL, CLI_ATTN_OPT_ALGORITHM, CLI_ATTN_OPT_EXPLAIN,
    CLI_ATTN_OPT_FORCE, CLI_ATTN_OPT_QUIET, CLI_ATTN_OPT_MPI, CLI_ATTN_OPT_LAYOUT, CLI_ATTN_OPT_END
};
#define CLI_ATTN_OPTIONS                                                              \
    { "q", 1, CLI_ATTN_OPT_Q }, { "k", 1, CLI_ATTN_OPT_K }, { "v", 1, CLI_ATTN_OPT_V }, \
    { "segments", 1, CLI_ATTN_OPT_SEGMENTS }, { "dilations", 1, CLI_ATTN_OPT_DILATIONS }, \
    { "causal", 0, CLI_ATTN_OPT_CAUSAL }, { "offsets", 1, CLI_ATTN_OPT_OFFSETS },       \
    { "scale", 1, CLI_ATTN_OPT_SCALE }, { "device", 1, CLI_ATTN_OPT_DEVICE },           \
    { "kernel", 1, CLI_ATTN_OPT_KERNEL }, { "algorithm", 1, CLI_ATTN_OPT_ALGORITHM },   \
    { "explain", 0, CLI_ATTN_OPT_EXPLAIN }, { "force", 0, CLI_ATTN_OPT_FORCE },         \
    { "quiet", 0, CLI_ATTN_OPT_QUIET }, { "mpi", 0, CLI_ATTN_OPT_MPI },                 \
    { "layout", 1, CLI_ATTN_OPT_LAYOUT }

typedef struct cli_attn_args {
    const char *path[3]; /* q, k, v */
    const char *segments, *dilations, *offsets, *scale, *device, *kernel, *algorithm;
    const char *layout; /* --layout, with --mpi */
    int causal, quiet, explain, force, mpi;
} cli_attn_args;

/* The flag names and tensor names of Q, K, V, for messages. */
extern const char *const cli_attn_input_flag[3];
extern const char *const cli_attn_input_name[3];

/* The shared options' lines of a usage text. */
void cli_attn_usage(FILE *out);
/* Clears `a` (device "cpu"). */
void cli_attn_args_init(cli_attn_args *a);
/* Reads options, taking the shared ones into `a`: returns the id of the
 * next one of the command's own (its value in p->value), or CLI_OPT_END
 * at the end, with *rc -1; or CLI_OPT_END with *rc an exit code when the
 * command is done (--help printed with `usage`: 0; a usage error: 2). */
int cli_attn_next_option(cli_parser *p, cli_attn_args *a, void (*usage)(FILE *out), int *rc);
/* The usage error for a missing --q, --k, --v, --segments or --dilations;
 * -1 when all are there. */
int cli_attn_require(const cli_attn_args *a);

/* Every output against every input (an output over an input would destroy
 * it) and against every other output (only the last written would be
 * kept; several character devices such as /dev/null are fine). One error
 * line naming both; -1 when all differ, else an exit code. */
int cli_check_paths(int nin, const char *const in[], const char *const in_flag[], int nout,
                    const char *const outs[], const char *const out_flag[]);

/* Reads a .npy header (no data) and checks it has `ndim` dimensions
 * (`layout` names them: "[B, N, H, D]"); -1 or an exit code. */
int cli_inspect(const char *path, const char *name, int ndim, const char *layout,
                lnet_npy_info *info);
/* Loads files inspected before; one whose shape changed since is refused. */
int cli_load(int n, const char *const paths[], const char *const names[],
             const lnet_npy_info info[], lnet_tensor *t[]);

/* One attention command's state, from the command line to the devices. */
typedef struct cli_attn {
    const cli_attn_args *args;
    lnet_config *cfg;
    lnet_context *ctx;
    lnet_npy_info info[3];   /* Q, K, V */
    int64_t shape[4];        /* Q's [B, Nq, H, D] */
    lnet_device_info dev;    /* the first listed device */
    int host_buffers;        /* a listed device keeps its buffers in host memory */
    int loading, warnings;   /* plugin log while loading: counted, not printed */
    lnet_run_options ropts;
} cli_attn;

/* The configuration of --segments, --dilations, --causal, --offsets and
 * --scale (not validated against D yet): -1, or an exit code with one
 * error printed; *out is set (to be freed) in either case once created. */
int cli_attn_build_config(const cli_attn_args *a, lnet_config **out);
/* The cheap checks: --algorithm, the configuration, the headers of Q, K,
 * V and their shapes, the configuration against D. -1 to go on, else an
 * exit code (one error printed). Call cli_attn_free in every case. */
int cli_attn_prepare(cli_attn *s, const cli_attn_args *a);
/* The context and the devices of --device (and --kernel on each). */
int cli_attn_open(cli_attn *s);
/* Refuses, with the numbers, a run whose `tensors` tensors of K's shape
 * (named by `names`: "Q, K, V and O"), LSE if `with_lse`, and, for
 * devices with buffers in host memory, a copy of each, exceed the memory
 * available; unless --force or LONGNET_FORCE=1. */
int cli_attn_check_memory(const cli_attn *s, int tensors, int with_lse, const char *names);
/* --explain: prints the plan of the forward (or the backward) on these
 * shapes. */
int cli_attn_explain(cli_attn *s, int backward);
/* The summary's first lines: the input shape, levels, mask, device, and
 * `ms` as its time. */
void cli_attn_print_setup(const cli_attn *s, const lnet_tensor *q, double ms);
void cli_attn_free(cli_attn *s);

/* A warning naming the count and the first place of NaN or infinite
 * values in t ([B, N, H, D] rows or [B, H, N] log-sum-exps). */
void cli_warn_non_finite(const char *name, const char *path, const lnet_tensor *t);
double cli_now_ms(void);

/* ------------------------------------------------ across ranks (--mpi) */

/* `longnet run --mpi` / `longnet grad --mpi` under mpirun (cli_mpi.c):
 * every rank reads its rows of the inputs, runs its share, and the ranks
 * write the outputs together. `in` are Q, K, V then the command's other
 * inputs (grad: dO, and O, LSE or NULL, NULL), `outs` its outputs (run:
 * O and LSE or NULL; grad: dQ, dK, dV). Returns the exit code, the same on
 * every rank. */
int cli_mpi_main(const cli_attn_args *a, int backward, const char *const in[6],
                 const char *const outs[3]);

#endif /* LNET_CLI_H */
