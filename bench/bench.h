/* bench.h — what the files of longnet-bench share: the options, the
 * configurations, a cell of the matrix and its measurements, the machine
 * description, and the functions of each bench_*.c file.
 *
 * The bench uses only the public API (longnet.h), like any user would, plus
 * the command-line helpers of tools/cli_util.c.
 */
#ifndef LNET_BENCH_H
#define LNET_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "attn_pairs.h"
#include "longnet.h"
#include "sgemm_roofline.h"

#define BENCH_PROG "longnet-bench"
#define BENCH_MAX_LIST 64       /* entries of --lengths, --device, --kernel */
#define BENCH_MAX_REPEAT 1000
#define BENCH_NAME_LEN 128
#define BENCH_TEXT_LEN 512

/* ------------------------------------------------------------ configurations */

/* The built-in configurations, and one from the command line. */
typedef enum bench_config_kind {
    BENCH_CFG_PAPER = 0,   /* segments 2048..32768, dilations 1,2,4,6,12, H 12 D 64 */
    BENCH_CFG_FIGURE5 = 1, /* the paper's Figure 5: segments 2048, the tokens per
                            * device and N, dilation w/2048, H 1 D 64 */
    BENCH_CFG_DENSE = 2,   /* one level w = N, r = 1 */
    BENCH_CFG_CUSTOM = 3,  /* --segments / --dilations */
    BENCH_CFG_SCALING = 4  /* segments 2048*4^k <= N, dilation w/2048, H 1 D 64 */
} bench_config_kind;

typedef struct bench_levels {
    int n;
    int64_t w[LNET_MAX_LEVELS];
    int64_t r[LNET_MAX_LEVELS];
} bench_levels;

const char *bench_config_name(bench_config_kind kind);
int bench_config_parse(const char *name, bench_config_kind *out);
/* The levels of `kind` for a sequence of N tokens split over `members`
 * devices (1 unless a device group; `custom` is the user's). */
void bench_config_levels(bench_config_kind kind, int64_t n, int members,
                         const bench_levels *custom, bench_levels *out);
/* The small instance the error check runs: every segment capped at `small`
 * tokens, every dilation at its capped segment (DESIGN §1: r <= w). */
void bench_levels_cap(const bench_levels *in, int64_t small, bench_levels *out);
/* 1 if a and b are the same levels. */
int bench_levels_same(const bench_levels *a, const bench_levels *b);
/* "2048/1 4096/2" into buf. */
const char *bench_levels_str(const bench_levels *lv, char *buf, size_t len);
/* The comma lists lnet_config_parse_levels takes. */
void bench_levels_lists(const bench_levels *lv, char *w, char *r, size_t len);

/* (query, key) pairs actually scored for B x N x H under `lv` (causal: key
 * <= query), counted exactly per level, head offset and segment (bench_flops.c). */
double bench_pairs(const bench_levels *lv, int64_t batch, int64_t n, int64_t heads,
                   int causal, lnet_offsets offsets);
/* FLOPs: 4*D per pair (2*D for the score q.k, 2*D for p*v); a backward
 * pass counts 2.5 times that (FlashAttention-2's convention: the scores
 * recomputed, then dV, dP, dQ and dK, 10*D per pair). */
double bench_flops(double pairs, int64_t dim, int backward);
/* What a backward cell costs against the forward of the same pairs, for
 * the budget's predictions: it runs the forward once (untimed) and the
 * backward's 2.5 times the FLOPs; measured 2.5-3 times a forward cell. */
#define BENCH_BACKWARD_COST 2.75
#define BENCH_BACKWARD_FLOPS CLI_BACKWARD_FLOPS /* common/attn_pairs.h */

/* ------------------------------------------------------------------ options */

typedef struct bench_options {
    const char *devices;  /* comma-separated specs, NULL: every device */
    const char *kernels;  /* comma-separated names, "all", NULL: the default set */
    bench_config_kind configs[5];
    int nconfigs;
    bench_levels custom;  /* --segments/--dilations */
    int64_t heads, dim;   /* 0: the configuration's own */
    int64_t batch;
    int64_t lengths[BENCH_MAX_LIST];
    int nlengths;
    int causal_modes[2];  /* the causal values to run, in order */
    int ncausal;
    int causal_given;     /* --causal was on the command line */
    int passes[2];        /* the matrix's passes, in order: 0 forward, 1 backward */
    int npasses;
    lnet_offsets offsets;
    int repeat, warmup;
    double max_seconds;   /* per sweep */
    uint64_t max_memory;  /* bytes of Q, K, V and O */
    int64_t check_length; /* error-check instance length; 0: no check */
    const char *csv, *json, *outdir;
    int run_matrix, run_figure5, run_scaling;
    int64_t tokens_per_batch;   /* Figure 5's T (B = T/N); 0: planned from the budgets */
    int64_t scaling_max_length; /* the scaling sweep's longest N */
    char tokens_why[BENCH_TEXT_LEN]; /* how T was chosen */
    int quiet;            /* no progress on stderr */
    int explain;          /* print every cell's plan, run nothing */
    int mpi;              /* --mpi: across the ranks of mpirun (bench_mpi.c) */
    const char *peer;     /* --peer: "torch", or NULL for none (bench_peer.c) */
    int peer_given;       /* --peer was on the command line (else: torch if installed) */
    const char *peer_python, *peer_script; /* found by bench_peer_find */
    char peer_version[BENCH_TEXT_LEN];     /* the script's "torch=2.x threads=T" */
} bench_options;

/* Returns -1 to go on, else the exit code (help printed, or a usage error). */
int bench_parse_options(int argc, char **argv, bench_options *o);
void bench_usage(FILE *out);

/* ------------------------------------------------------------------ machine */

typedef struct bench_device {
    char spec[BENCH_NAME_LEN];    /* "cpu:0", or a group "cpu:0+opencl:0" */
    char run_spec[BENCH_NAME_LEN]; /* for lnet_run_options.device: "cpu:0,opencl:0" */
    char backend[BENCH_NAME_LEN];
    int index;
    char name[BENCH_TEXT_LEN];
    char kind[32];
    uint64_t memory_bytes;
    int compute_units;
    char kernels[BENCH_TEXT_LEN]; /* comma list, first is default */
} bench_device;

typedef struct bench_plugin {
    char path[BENCH_TEXT_LEN];
    char name[BENCH_NAME_LEN];
    char description[BENCH_TEXT_LEN];
    unsigned abi;
    int loaded;
    char reason[BENCH_TEXT_LEN];
} bench_plugin;

typedef struct bench_machine {
    char cpu_model[BENCH_TEXT_LEN];
    int cores;
    uint64_t memory_bytes;
    char os[BENCH_TEXT_LEN];       /* uname */
    char longnet_version[32];
    char compiler[BENCH_NAME_LEN];
    char blas[BENCH_TEXT_LEN];     /* OpenBLAS config, or why none */
    char date[40];                 /* UTC, ISO 8601 */
    double load_start, load_end;   /* 1-minute load average: noise from others */
    uint64_t baseline_rss_bytes;   /* peak RSS of a forked child that does nothing */
    bench_device devices[BENCH_MAX_LIST];
    int ndevices;
    bench_plugin plugins[BENCH_MAX_LIST];
    int nplugins;
    char warnings[BENCH_TEXT_LEN * 2]; /* plugin warnings, '; '-joined */
    char peer[BENCH_TEXT_LEN];     /* --peer: "torch=2.x threads=T; python P; script S" */
    int ranks;                     /* MPI ranks each cell ran across (1: no --mpi) */
} bench_machine;

/* Host facts, then the plugins and devices as a fresh process sees them
 * (enumerated in a forked child: see bench_machine.c). */
int bench_machine_describe(bench_machine *m);
void bench_machine_finish(bench_machine *m); /* the closing load average */
/* Resolves a device spec ("opencl", "cpu:0") against the enumerated
 * devices; -1 with a message in err when none matches. */
int bench_machine_find(const bench_machine *m, const char *spec, char *err, size_t len);

/* Adds a device for every group of --device ("cpu:0+opencl:0": one sequence
 * split over those devices by the scheduler, weights by calibration);
 * 0, or -1 with a message in err naming the bad member. */
int bench_machine_add_groups(bench_machine *m, const char *devices, char *err, size_t len);

/* --------------------------------------------------------------- roofline */

typedef struct bench_roofline {
    int available;      /* 0: built without OpenBLAS, or every core failed */
    char note[BENCH_TEXT_LEN]; /* the used core's OpenBLAS config, or why none */
    int n, threads;
    double median_ms, best_ms;
    double gflops;      /* the roofline: 2 n^3 / best run of the used core */
    double best_gflops;
    sgemm_roofline sg;  /* every core type tried, OpenBLAS's own choice, the used one */
} bench_roofline;

/* OpenBLAS cblas_sgemm, n x n x n, all cores, for each core type the CPU
 * can run, each in its own process (sgemm_roofline.c); the fastest correct. */
void bench_roofline_measure(bench_roofline *rl, int quiet);
/* The used core once more, keeping the better run. */
void bench_roofline_again(bench_roofline *rl, int quiet);
/* The core type used ("" when none). */
const char *bench_roofline_core(const bench_roofline *rl);

/* ------------------------------------------------------------------- cells */

typedef struct bench_cell {
    char sweep[16];              /* "matrix", "figure5" or "scaling" */
    int device;                  /* index into bench_machine.devices */
    char kernel[BENCH_NAME_LEN];
    bench_config_kind config;
    char pass[24];               /* "forward", "backward" or (figure5) "forward+backward" */
    int backward;                /* 1 for a backward cell */
    int causal;
    lnet_offsets offsets;
    int64_t batch, length, heads, dim;
    bench_levels levels;
    double pairs, flops;
    int repeats, warmups;
    double median_ms, min_ms, max_ms;
    double tokens_per_s, gflops;
    double sgemm_fraction;       /* NAN when not a CPU device or no roofline */
    int sgemm_suspect;           /* the fraction is above 1.0: not believed */
    uint64_t peak_rss_bytes, qkvo_bytes; /* backward: also dO, dQ, dK, dV */
    double max_abs_err;          /* NAN when not checked; backward: of dQ, dK, dV */
    int64_t check_length;
    double wall_s;               /* the child's whole life: setup, warm-up, runs */
    char status[16];             /* "ok" or "failed" */
    char message[BENCH_TEXT_LEN];
    int peer_ran;                /* --peer: the peer was asked for this cell */
    double peer_ms;              /* its median, NAN if it failed */
    double peer_ratio;           /* peer_ms / median_ms: > 1, longnet is faster */
    double peer_err;             /* max |O_peer - O_reference| on the small instance */
} bench_cell;

typedef struct bench_results {
    bench_cell *cells;
    int ncells, cap;
    char (*stops)[BENCH_TEXT_LEN]; /* why a series ended early (budget) */
    int nstops, stopcap;
    int failures;
} bench_results;

void bench_results_free(bench_results *r);

/* Runs one cell in a forked child (timing, peak memory) and fills the
 * measurements; and the error check, cached per small instance. */
void bench_cell_run(bench_cell *c, const bench_machine *m, const bench_options *o);
void bench_cell_check(bench_cell *c, const bench_machine *m, const bench_options *o);
/* A cell that ran: status ok, and its times from the n runs' ms (sorted). */
void bench_cell_times(bench_cell *c, double *ms, int n);
void bench_check_cache_clear(void);
/* The cell's inputs and configuration, as its child makes them: inputs in
 * [-1, 1) from a fixed stream per seed; nonzero with lnet_last_error(). */
void bench_fill(lnet_tensor *t, uint64_t seed);
int bench_cell_config(const bench_cell *c, const bench_levels *levels, lnet_config **cfg);

/* --mpi (bench_mpi.c): the sweep on every rank of an MPI job, each cell's
 * calls across the ranks (lnet_part), rank 0's decisions followed by all.
 * Without --mpi every call is a no-op for one process (rank 0 of 1). */
int bench_mpi_start(bench_options *o); /* 0, or an exit code after a message */
void bench_mpi_stop(void);
int bench_mpi_active(void);
int bench_mpi_rank(void);
int bench_mpi_ranks(void);
/* 0 when no rank `failed` (each said its own), else -1 on every rank. */
int bench_mpi_agree(int failed, const char *what);
/* Rank 0's `bytes` at buf to every rank: 0, or -1 with a message. */
int bench_mpi_share(void *buf, size_t bytes);
/* One cell across the ranks, in this process: the time of a call is the
 * slowest rank's, between a barrier before it and its end on every rank. */
void bench_cell_run_mpi(bench_cell *c, const bench_machine *m, const bench_options *o);
/* Where the error check keeps the small instance's Q (0), K (1), V (2)
 * beside the reference output at ref_path, for the peer's check. */
void bench_check_input_path(const char *ref_path, int which, char *out, size_t len);

/* ------------------------------------------------------------------ peer */

/* --peer torch (bench_peer.c): finds the Python and the script
 * (bench/peers/torch_sdpa.py) and asks for torch's version; 0, or -1 after
 * printing an error that says how to install it. Nothing when no --peer. */
int bench_peer_find(bench_options *o);
/* Times the peer on a forward cell (memoised per configuration, mask and
 * length), filling peer_ms and peer_ratio. */
void bench_peer_run(bench_cell *c, const bench_machine *m, const bench_options *o);
/* The peer's max |O - reference| on the small instance whose reference
 * output (and inputs, bench_check_input_path) are at ref_path; NAN with
 * the reason in msg. */
double bench_peer_check(const bench_cell *c, const bench_levels *lv, int64_t length,
                        const char *ref_path, const bench_options *o, char *msg, size_t len);
void bench_peer_clear(void);
/* --explain: prints a line naming the cell (`what`, its series; `note`
 * appended) and the plan lnet_attention_explain gives for it, made in a
 * forked child; 0, or -1 after printing the library's message with the
 * cell named. */
int bench_cell_explain(const bench_cell *c, const bench_machine *m, const char *what,
                       const char *note);

/* The sweep: the series (device x kernel x configuration x causal) crossed
 * with lengths, shortest lengths first so that every series gets its short
 * cells before the budget is spent on long ones. With --explain every cell
 * is explained instead, those the budget would skip too, and a failed
 * explain counts in res->failures. */
int bench_sweep(const char *sweep, const bench_config_kind *configs, int nconfigs,
                const int64_t *lengths, int nlengths, const bench_options *o,
                const bench_machine *m, const bench_roofline *rl, bench_results *res);

/* Checks --device and --kernel against the devices found, before anything
 * runs; -1 after printing an error. */
int bench_check_selection(const bench_options *o, const bench_machine *m);

/* ------------------------------------------------------------ child process */

/* Forks; the child runs fn(arg, fd) writing its answer to fd and exits with
 * its return value. The parent collects everything written (malloc'd into
 * *data, *len) and the child's rusage. Returns 0 if the child exited with 0;
 * otherwise -1 with a description ("exited with status 3", "killed by
 * signal 9") in err. */
int bench_child_run(int (*fn)(void *arg, int fd), void *arg, char **data, size_t *len,
                    uint64_t *maxrss_bytes, char *err, size_t errlen);
/* Children started from now on are killed after `seconds` (0: never);
 * bench_child_timed_out() says whether the last one was. */
void bench_child_timeout(double seconds);
int bench_child_timed_out(void);
/* SIGINT, SIGTERM, SIGHUP: kill the running child and let the bench stop
 * at the next cell (bench_interrupted() returns the signal) and clean up. */
void bench_catch_signals(void);
int bench_interrupted(void);
/* write(2) all of buf. */
int bench_write_all(int fd, const void *buf, size_t len);

/* ------------------------------------------------------------- statistics */

double bench_now(void);                 /* monotonic seconds */
double bench_median(double *v, int n);  /* sorts v */
double bench_min(const double *v, int n);
double bench_max(const double *v, int n);

/* ---------------------------------------------------------------- progress */

typedef struct bench_progress {
    const char *sweep;
    int total, done;
    double start;
    int quiet;
    int shown; /* a progress line was printed */
} bench_progress;

void bench_progress_start(bench_progress *p, const char *sweep, int total, int quiet);
/* Before a cell predicted to take long or not predicted at all
 * (`predicted_s` < 0; it runs under `cutoff_s`); after every cell, with the
 * time left (`remaining_s` < 0: unknown); skipped cells count as done. */
void bench_progress_before(bench_progress *p, const bench_cell *c, const bench_machine *m,
                           double predicted_s, double cutoff_s);
void bench_progress_after(bench_progress *p, const bench_cell *c, const bench_machine *m,
                          double remaining_s);
void bench_progress_skip(bench_progress *p, int cells);
/* "longnet-bench: budget: ..." and the line stored in res->stops. */
void bench_note_stop(bench_results *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------ output */

/* A file written atomically: a temporary file beside `path`, renamed over it
 * by bench_atomic_commit; bench_atomic_abort removes it. */
typedef struct bench_atomic {
    char path[4096], tmp[4096 + 16];
    FILE *f;
} bench_atomic;

int bench_atomic_open(bench_atomic *a, const char *path);
int bench_atomic_commit(bench_atomic *a); /* -1 with cli_error already printed */
void bench_atomic_abort(bench_atomic *a);

/* Creates `dir` and its parents; -1 with cli_error printed. */
int bench_mkdirs(const char *dir);

void bench_print_header(FILE *out, const bench_machine *m, const bench_roofline *rl,
                        const bench_options *o);
void bench_print_table(FILE *out, const bench_results *res, const bench_machine *m,
                       const bench_roofline *rl, const char *sweep);
int bench_write_csv(const char *path, const bench_results *res, const bench_machine *m,
                    const bench_roofline *rl, const char *sweep);
int bench_write_json(const char *path, const bench_results *res, const bench_machine *m,
                     const bench_roofline *rl, const bench_options *o);

/* Figure 5 or the scaling plot (sweep "figure5" or "scaling"):
 * outdir/SWEEP.{csv,gp,png,svg}; returns 0, or 1 after an error was
 * printed. `drawn` receives the image paths written ("" if none). */
int bench_figure5_write(const char *sweep, const char *outdir, const bench_results *res,
                        const bench_machine *m, const bench_roofline *rl,
                        const bench_options *o, char *drawn, size_t len);

/* ------------------------------------------------------ Figure 5's plan */

/* The device-and-kernel pairs a sweep runs (each owns a budget share). */
int bench_count_dk(const bench_options *o, const bench_machine *m);
/* The devices of a spec's group (1 for a single device). */
int bench_device_members(const bench_device *d);
/* Figure 5's token budget T: --tokens-per-batch, or the largest power of
 * two whose Q, K, V, O fit --max-memory and whose dilated line and first
 * two vanilla lengths are predicted to fit the fastest device-and-kernel's
 * share of --max-seconds (rates from the matrix's dense cells, else from the
 * roofline).
 * `why` says how it was chosen (bench_figure5_plan.c). */
int64_t bench_figure5_tokens(const bench_options *o, const bench_machine *m,
                             const bench_roofline *rl, const bench_results *res, char *why,
                             size_t len);

#endif /* LNET_BENCH_H */
