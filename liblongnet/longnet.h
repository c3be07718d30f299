/* longnet.h — public API of liblongnet: LongNet's dilated attention on any
 * device, through backend plugins loaded at run time.
 *
 * Conventions (see DESIGN.md §3): every function that can fail returns an
 * lnet_status (0 success, negative failure) and leaves a message for this
 * thread in lnet_last_error(); whoever creates an object frees it; handles are
 * opaque; the library never prints, exits or aborts.
 */
#ifndef LONGNET_H
#define LONGNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; only what this header
 * declares is exported. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define LNET_VERSION_MAJOR 0
#define LNET_VERSION_MINOR 1
#define LNET_VERSION_PATCH 0

/* ---------------------------------------------------------------- status */

typedef enum lnet_status {
    LNET_OK = 0,
    LNET_ERR_INVALID = -1,     /* a bad argument, shape or configuration */
    LNET_ERR_NOMEM = -2,       /* an allocation failed */
    LNET_ERR_IO = -3,          /* a file could not be opened, read or written */
    LNET_ERR_FORMAT = -4,      /* a file is not in the expected format */
    LNET_ERR_OVERFLOW = -5,    /* a size does not fit in size_t / int64_t */
    LNET_ERR_DEVICE = -6,      /* a device failed or does not exist */
    LNET_ERR_PLUGIN = -7,      /* a plugin could not be loaded or misbehaved */
    LNET_ERR_UNSUPPORTED = -8  /* the request is valid but not supported here */
} lnet_status;

/* The message for the last failure on the calling thread ("" if none). The
 * pointer stays valid until the next failing call on this thread. */
const char *lnet_last_error(void);

/* A short constant name for a status ("LNET_ERR_INVALID"). */
const char *lnet_status_name(lnet_status status);

/* The library version as "major.minor.patch". */
const char *lnet_version(void);

/* --------------------------------------------------------------- tensors */

#define LNET_MAX_DIMS 8

/* A dense, C-ordered float32 tensor in host memory. Attention inputs and
 * outputs are [B, N, H, D]; the log-sum-exp is [B, H, N]. */
typedef struct lnet_tensor lnet_tensor;

/* Element types. Tensors of every type can be made and described; the
 * attention calls run float32 (a call on another type is refused unless a
 * listed device supports it: none of the in-tree backends does yet). */
typedef enum lnet_dtype {
    LNET_DTYPE_F32 = 0,
    LNET_DTYPE_F16 = 1,
    LNET_DTYPE_BF16 = 2
} lnet_dtype;

/* A new zero-filled tensor; shape entries must be >= 1. */
lnet_status lnet_tensor_create(int ndim, const int64_t *shape, lnet_tensor **out);
/* A tensor that borrows `data` (not freed by lnet_tensor_free). */
lnet_status lnet_tensor_wrap(float *data, int ndim, const int64_t *shape,
                             lnet_tensor **out);
void lnet_tensor_free(lnet_tensor *t);

/* A view that borrows `data`: elements of `dtype`, element (i0, i1, ...)
 * at data + sum(i_k * strides[k]) elements. Strides are >= 0 (0 repeats an
 * element along that axis: fine for inputs); the largest offset must fit
 * in memory. A view given as an attention output must not alias itself
 * (each element its own place): that is checked when it is used. */
lnet_status lnet_tensor_wrap_strided(void *data, lnet_dtype dtype, int ndim,
                                     const int64_t *shape, const int64_t *strides,
                                     lnet_tensor **out);
/* A new zero-filled dense tensor of `dtype`. */
lnet_status lnet_tensor_create_dtype(lnet_dtype dtype, int ndim, const int64_t *shape,
                                     lnet_tensor **out);
lnet_dtype lnet_tensor_dtype(const lnet_tensor *t);
int64_t lnet_tensor_stride(const lnet_tensor *t, int axis); /* in elements */
/* 1 for a dense C-ordered tensor (of any dtype). */
int lnet_tensor_is_dense(const lnet_tensor *t);

int lnet_tensor_ndim(const lnet_tensor *t);
int64_t lnet_tensor_dim(const lnet_tensor *t, int axis);
size_t lnet_tensor_numel(const lnet_tensor *t);
/* The elements of a dense float32 tensor; NULL for a view or another dtype. */
float *lnet_tensor_data(lnet_tensor *t);
const float *lnet_tensor_cdata(const lnet_tensor *t);

/* Writes a shape as "[1, 64, 4, 16]" into buf (truncated to len) and
 * returns buf; for messages. */
const char *lnet_shape_str(int ndim, const int64_t *shape, char *buf, size_t len);

/* ------------------------------------------------------------ .npy files */

/* Reads a little-endian float32 or float64 C-ordered .npy file (float64 is
 * converted to float32). Anything else is refused with LNET_ERR_FORMAT and a
 * message naming the file and the problem. */
lnet_status lnet_npy_load(const char *path, lnet_tensor **out);

/* What a .npy file holds, read from its header alone (nothing allocated
 * for the data): to size a run before loading. Set `size` to sizeof. */
typedef struct lnet_npy_info {
    size_t size;
    int ndim;
    int64_t shape[LNET_MAX_DIMS];
    size_t itemsize; /* bytes per element in the file: 4 (float32) or 8 (float64) */
    size_t numel;
} lnet_npy_info;

/* Checks the file as lnet_npy_load would (header, dtype, size against the
 * shape) without reading the data. A FIFO or other non-regular file is
 * refused at once, never waited on. */
lnet_status lnet_npy_inspect(const char *path, lnet_npy_info *info);

/* Writes a float32 .npy file so that a failure never leaves a partial file
 * and never touches an existing one: lnet_npy_output_create, _write,
 * _commit, _free in one call. */
lnet_status lnet_npy_save(const char *path, const lnet_tensor *t);

/* An output in three steps, so that a program writing several files can
 * commit them together (all renamed only once every one is complete) and
 * knows each temporary's name before a long write (to remove it from a
 * signal handler). What the path names decides how it is replaced:
 *   - a regular file or nothing: a temporary beside it, renamed over it at
 *     commit; an existing file's mode is kept, and its owner and group
 *     where the caller may set them (root, or the group for its owner);
 *   - a symbolic link: its final target is replaced that way (the link
 *     stays a link);
 *   - a character device or FIFO (/dev/null, a pipe, /dev/stdout): written
 *     through by _write, since a rename would replace the device node; a
 *     FIFO with no reader is refused rather than waited on;
 *   - anything else (a directory, a socket, a block device): refused by
 *     _create with a message naming it. */
typedef struct lnet_npy_output lnet_npy_output;
lnet_status lnet_npy_output_create(const char *path, lnet_npy_output **out);
/* The temporary's path (valid until _free), or NULL for a stream. */
const char *lnet_npy_output_temp_path(const lnet_npy_output *o);
/* 1 when the output is written through (a character device or FIFO). */
int lnet_npy_output_is_stream(const lnet_npy_output *o);
/* Writes the whole file (header and data) and flushes it. */
lnet_status lnet_npy_output_write(lnet_npy_output *o, const lnet_tensor *t);
/* Renames the written temporary over the target (nothing for a stream). */
lnet_status lnet_npy_output_commit(lnet_npy_output *o);
/* Closes it; an uncommitted temporary is removed. NULL is ignored. */
void lnet_npy_output_free(lnet_npy_output *o);

/* --------------------------------------------------------- configuration */

typedef enum lnet_offsets {
    LNET_OFFSETS_INTERLEAVED = 0, /* head h uses offset h mod r (the paper) */
    LNET_OFFSETS_GROUPED = 1      /* offset h / ceil(H / r) (torchscale) */
} lnet_offsets;

#define LNET_MAX_LEVELS 64

typedef struct lnet_config lnet_config;

lnet_status lnet_config_create(lnet_config **out);
void lnet_config_free(lnet_config *cfg);
/* Appends a level: segment length w >= 1, dilation 1 <= r <= w. */
lnet_status lnet_config_add_level(lnet_config *cfg, int64_t segment, int64_t dilation);
/* Replaces all levels from two comma-separated lists of equal length, e.g.
 * "2048,4096,8192" and "1,2,4". On failure the levels are unchanged. */
lnet_status lnet_config_parse_levels(lnet_config *cfg, const char *segments,
                                     const char *dilations);
lnet_status lnet_config_set_causal(lnet_config *cfg, int causal);
/* scale > 0 and finite; 0 restores the default 1/sqrt(D). */
lnet_status lnet_config_set_scale(lnet_config *cfg, double scale);
lnet_status lnet_config_set_offsets(lnet_config *cfg, lnet_offsets mode);
/* Parses "interleaved" or "grouped". */
lnet_status lnet_offsets_parse(const char *name, lnet_offsets *out);

int lnet_config_levels(const lnet_config *cfg);
int64_t lnet_config_segment(const lnet_config *cfg, int level);
int64_t lnet_config_dilation(const lnet_config *cfg, int level);
int lnet_config_causal(const lnet_config *cfg);
double lnet_config_scale(const lnet_config *cfg); /* 0 means default */
lnet_offsets lnet_config_offsets(const lnet_config *cfg);

/* Checks every rule of DESIGN §1 (levels present, w >= 1, 1 <= r <= w, one
 * level with r = 1) and, when head_dim > 0, that the scale can be formed. */
lnet_status lnet_config_validate(const lnet_config *cfg, int64_t head_dim);

/* --------------------------------------------------- context and devices */

typedef enum lnet_log_level {
    LNET_LOG_DEBUG = 0,
    LNET_LOG_INFO = 1,
    LNET_LOG_WARNING = 2,
    LNET_LOG_ERROR = 3
} lnet_log_level;

typedef void (*lnet_log_fn)(lnet_log_level level, const char *message, void *user);

typedef struct lnet_context_options {
    size_t size;             /* sizeof(lnet_context_options): set it */
    lnet_log_fn log;         /* warnings while loading plugins etc.; NULL: none */
    void *log_user;
    const char *plugin_path; /* searched first, before LONGNET_PLUGIN_PATH;
                                a ':'-separated list of directories or module files */
    int no_default_paths;    /* 1: search only plugin_path and LONGNET_PLUGIN_PATH */
} lnet_context_options;

typedef struct lnet_context lnet_context;

/* Loads every plugin found (a plugin that fails to load is skipped with a
 * warning, and listed by lnet_context_plugin). A plugin's devices are
 * probed only when they are first asked for — a device spec naming its
 * backend (lnet_context_find_device, a run's device list), listing that
 * plugin (lnet_context_plugin), or counting all devices — so that a run on
 * "cpu" never loads, say, an OpenCL platform's drivers. A probe that fails
 * is warned about then. `opts` may be NULL. */
lnet_status lnet_context_create(const lnet_context_options *opts, lnet_context **out);
void lnet_context_free(lnet_context *ctx);

typedef struct lnet_plugin_info {
    const char *path;        /* the module file */
    const char *name;        /* backend name ("cpu"); NULL if it did not load */
    const char *description;
    uint32_t abi_version;    /* 0 if unknown */
    int loaded;              /* 1 loaded, 0 refused */
    const char *reason;      /* why it was refused; "" when loaded */
    int devices;             /* devices it contributed */
} lnet_plugin_info;

int lnet_context_plugin_count(const lnet_context *ctx);
lnet_status lnet_context_plugin(const lnet_context *ctx, int i, lnet_plugin_info *out);
/* For plugin i that serves its backend: which other modules of the same
 * backend name it was kept over and why ("kept over PATH (score 3 > 1)"),
 * "" when it had no rival or does not serve. Valid for the context's life. */
const char *lnet_context_plugin_choice(const lnet_context *ctx, int i);

struct lnet_plugin; /* longnet-plugin.h */
/* The table of the plugin that serves `backend` (probing it), for programs
 * that drive a plugin directly as a vendor's harness would (`longnet
 * test`): the loader's copy, its optional slots past the module's own
 * size NULL. Valid while the context lives. LNET_ERR_DEVICE when no
 * module serves the name, naming those that do. */
lnet_status lnet_context_plugin_table(const lnet_context *ctx, const char *backend,
                                      const struct lnet_plugin **table);

typedef struct lnet_device_info {
    const char *backend;     /* "cpu", "opencl", ... */
    int index;               /* index within its backend */
    const char *name;        /* e.g. the CPU model */
    const char *kind;        /* "cpu", "gpu", "accelerator", "fpga", "other" */
    uint64_t memory_bytes;   /* 0 if unknown */
    int compute_units;
    const char *kernels;     /* comma-separated kernel names; first is default */
} lnet_device_info;

/* Every device of every plugin (probes those not probed yet). Devices are
 * numbered in the order their backends were probed: an index, once
 * returned, names the same device for the context's life. */
int lnet_context_device_count(const lnet_context *ctx);
lnet_status lnet_context_device(const lnet_context *ctx, int i, lnet_device_info *out);
/* Finds a device by "backend" or "backend:index" (index 0 by default),
 * probing only that backend; a spec that names no device probes the rest,
 * to list the devices there are in the message. */
lnet_status lnet_context_find_device(const lnet_context *ctx, const char *spec, int *index);

/* ------------------------------------------------------------- attention */

/* How a level whose segments span several devices' chunks is computed
 * (DESIGN §2, The scheduler). */
typedef enum lnet_algorithm {
    LNET_ALGORITHM_AUTO = 0,   /* ring for dilation-1 levels spanning every chunk, else gather */
    LNET_ALGORITHM_GATHER = 1, /* LongNet's: bring the segment's sparse K/V rows (1/r of them) */
    LNET_ALGORITHM_RING = 2    /* pass K/V blocks around the devices (dilation-1 levels) */
} lnet_algorithm;

/* Parses "auto", "gather" or "ring". */
lnet_status lnet_algorithm_parse(const char *name, lnet_algorithm *out);

typedef struct lnet_run_options {
    size_t size;        /* sizeof(lnet_run_options): set it */
    /* One device ("cpu", "opencl:1") or a list that splits the sequence:
     * "cpu,opencl:0" (weights measured by a short calibration on this
     * configuration, cached in the context) or "cpu=1,opencl:0=3" (given
     * weights). The same device may appear twice. NULL: "cpu". */
    const char *device;
    const char *kernel; /* backend kernel name ("reference", ...); NULL: default */
    lnet_algorithm algorithm;
} lnet_run_options;

/* Dilated attention forward (DESIGN §1). k and v are [B, N, H, D]; q and
 * out are [B, Nq, H, D] with 1 <= Nq <= N, usually Nq = N; lse, if not
 * NULL, is [B, H, Nq] and receives the log-sum-exp over all levels. With
 * Nq < N (cross-attention with a shorter Q, or decoding) query row i is
 * the sequence's position N - Nq + i — the queries are its last rows,
 * bottom-right aligned as in FlashAttention — and its segments, dilation
 * and causal mask are those of that position. `opts` may be NULL. On
 * failure `out` and `lse` are unspecified. */
lnet_status lnet_attention_forward(lnet_context *ctx, const lnet_config *cfg,
                                   const lnet_tensor *q, const lnet_tensor *k,
                                   const lnet_tensor *v, lnet_tensor *out,
                                   lnet_tensor *lse, const lnet_run_options *opts);

/* Dilated attention backward (DESIGN §1): the gradients of O with respect
 * to Q, K and V for the incoming gradient `dout` (the shape of out), into
 * dq, dk, dv (the shapes of q, k, v), exact through the levels' mixing
 * weights. `out` and `lse` are the forward's saved outputs; pass NULL for
 * both and the forward is run first. Scores are recomputed tile by tile
 * from LSE (FlashAttention-2's way): nothing N x N and nothing per level is
 * kept; the extra memory is delta, [B, H, Nq] floats. A listed device
 * without a backward (plugin slot run_segment_backward) is left out with a
 * warning and the others take its rows; alone, it is refused by name.
 * `opts` as for the forward. */
lnet_status lnet_attention_backward(lnet_context *ctx, const lnet_config *cfg,
                                    const lnet_tensor *q, const lnet_tensor *k,
                                    const lnet_tensor *v, const lnet_tensor *out,
                                    const lnet_tensor *lse, const lnet_tensor *dout,
                                    lnet_tensor *dq, lnet_tensor *dk, lnet_tensor *dv,
                                    const lnet_run_options *opts);

/* The plan a forward call with these options would run, as text: the
 * chunk of rows per device with its weight, per level whether it runs
 * locally or exchanges rows (and by which algorithm), the bytes each device
 * receives and sends. May run the calibration. Free *text with lnet_free. */
lnet_status lnet_attention_explain(lnet_context *ctx, const lnet_config *cfg, int64_t batch,
                                   int64_t rows, int64_t heads, int64_t dim,
                                   const lnet_run_options *opts, char **text);
/* The same for Nq query rows against N K/V rows (Nq <= N, as in
 * lnet_attention_forward). */
lnet_status lnet_attention_explain_rows(lnet_context *ctx, const lnet_config *cfg, int64_t batch,
                                        int64_t q_rows, int64_t kv_rows, int64_t heads, int64_t dim,
                                        const lnet_run_options *opts, char **text);

/* The plan of the backward call (lnet_attention_backward): its graph
 * (DELTA, then per level EXCHANGE, SEGMENT_ATTENTION_BACKWARD, REDUCE)
 * and its transfers, the dK/dV sent back to their owners among them. */
lnet_status lnet_attention_explain_backward(lnet_context *ctx, const lnet_config *cfg,
                                            int64_t batch, int64_t q_rows, int64_t kv_rows,
                                            int64_t heads, int64_t dim,
                                            const lnet_run_options *opts, char **text);

/* ---------------------------------------------------- across ranks (MPI) */

/* One call across the ranks of an MPI job (README "Across machines
 * (MPI)"). Every rank holds its own rows of Q, K, V and its own devices;
 * the plan is one, computed alike on every rank from the configuration and
 * the ranks' weights (agreed by a collective); each rank runs only its own
 * workers, and rows move between ranks as MPI messages. mpi.h is not
 * needed to use it: the communicator is an opaque handle. Without MPI in
 * the build every call is refused (LNET_ERR_UNSUPPORTED), and
 * lnet_mpi_built() says 0. Calls marked collective must be made by every
 * rank, in the same order. */
typedef struct lnet_mpi lnet_mpi;
int lnet_mpi_built(void);
/* Initialises MPI (MPI_Init_thread, serialised threads) unless it is
 * already, and wraps a duplicate of MPI_COMM_WORLD whose errors are
 * returned (MPI_ERRORS_RETURN), never fatal. lnet_mpi_free finalises MPI
 * when this call initialised it. Collective. */
lnet_status lnet_mpi_init(int *argc, char ***argv, lnet_mpi **out);
/* Wraps a duplicate of the caller's communicator (`comm` points to an
 * MPI_Comm) of an MPI already initialised. Collective. */
lnet_status lnet_mpi_from_comm(const void *comm, lnet_mpi **out);
int lnet_mpi_rank(const lnet_mpi *m);
int lnet_mpi_size(const lnet_mpi *m);
/* After a step every rank runs: LNET_OK on every rank when every rank's
 * `mine` is; else the first failed rank's status on every rank, with a
 * message naming that rank, `what`, and its own message. Collective. */
lnet_status lnet_mpi_agree(lnet_mpi *m, lnet_status mine, const char *what);
void lnet_mpi_free(lnet_mpi *m);
/* `bytes` at buf from rank `root` to every rank (a decision one rank
 * makes, that every rank must follow). Collective. */
lnet_status lnet_mpi_bcast(lnet_mpi *m, void *buf, size_t bytes, int root);
/* *value becomes the largest of every rank's *value (the slowest rank's
 * time; a NaN on any rank wins). Collective. */
lnet_status lnet_mpi_max(lnet_mpi *m, double *value);

/* How the sequence's chunks are laid out over the ranks. Causal attention
 * gives a chunk work in proportion to its position, so contiguous chunks
 * give the last rank the most; zigzag (Megatron-LM's context parallelism)
 * cuts 2R chunks and gives rank i chunks i and 2R-1-i. */
typedef enum lnet_layout {
    LNET_LAYOUT_CONTIGUOUS = 0,
    LNET_LAYOUT_ZIGZAG = 1
} lnet_layout;
/* Parses "contiguous" or "zigzag". */
lnet_status lnet_layout_parse(const char *name, lnet_layout *out);

/* This rank's share of calls on one shape across the ranks: [B, N, H, D]
 * for Q, K, V (Q has every row: Nq = N), the configuration and run
 * options (opts->device: this rank's own devices; weights measured by a
 * calibration when not given), a layout. Collective: the ranks' weights
 * are agreed. cfg, opts->device and opts->kernel must outlive it. */
typedef struct lnet_part lnet_part;
lnet_status lnet_part_create(lnet_context *ctx, const lnet_config *cfg, lnet_mpi *mpi,
                             int64_t batch, int64_t rows, int64_t heads, int64_t dim,
                             lnet_layout layout, const lnet_run_options *opts, lnet_part **out);
/* The row ranges of the sequence this rank holds, in the order its
 * tensors hold them (one range, or two with zigzag); their total. */
int lnet_part_ranges(const lnet_part *p);
void lnet_part_range(const lnet_part *p, int i, int64_t *begin, int64_t *end);
int64_t lnet_part_rows(const lnet_part *p);
/* The forward (backward) on this rank's rows: every tensor [B, n, H, D]
 * with n = lnet_part_rows, lse [B, H, n]. The same answer as the one
 * process call on the whole tensors. Collective. */
lnet_status lnet_part_forward(lnet_part *p, const lnet_tensor *q, const lnet_tensor *k,
                              const lnet_tensor *v, lnet_tensor *out, lnet_tensor *lse);
lnet_status lnet_part_backward(lnet_part *p, const lnet_tensor *q, const lnet_tensor *k,
                               const lnet_tensor *v, const lnet_tensor *out,
                               const lnet_tensor *lse, const lnet_tensor *dout, lnet_tensor *dq,
                               lnet_tensor *dk, lnet_tensor *dv);
/* The plan as text (the same on every rank), with the bytes each rank
 * sends and receives per level and the causal work per rank under both
 * layouts. Free with lnet_free. Not collective. */
lnet_status lnet_part_explain(const lnet_part *p, int backward, char **text);
/* Reads this rank's rows (lnet_part_range order) of a [B, N, ...] .npy
 * file (N = the part's rows), seeking to each: nothing else is read. */
lnet_status lnet_part_load(const lnet_part *p, const char *path, lnet_tensor **out);
/* Writes each of n outputs (this rank's rows of a [B, N, H, D] tensor, or
 * of a [B, H, N] log-sum-exp) into one .npy file, byte for byte the file
 * one process writes: rank 0 creates a temporary beside each target,
 * every rank writes its rows into it at their offsets, and only when every
 * rank has written all of them does rank 0 rename them over the targets;
 * a failure on any rank leaves every existing output untouched.
 * Character devices and FIFOs are refused. Collective. */
lnet_status lnet_part_save(lnet_part *p, int n, const char *const paths[],
                           const lnet_tensor *const local[]);
void lnet_part_free(lnet_part *p);

/* What each part of a call split into contiguous chunks moves, from the
 * plan the scheduler would run (the one lnet_attention_explain prints)
 * without any device: for sizing a run across ranks (`longnet plan`).
 * `parts` parts of `workers_per_part` equal-weighted workers each (parts
 * x workers_per_part <= 64, the scheduler's limit), worker i in part
 * i / workers_per_part; rows split as the scheduler splits them, on
 * multiples of the smallest segment length. Bytes count only transfers
 * between different parts (those inside a part stay in one process).
 * With `backward`, the backward's plan: K/V brought again and the dK/dV
 * contributions sent back. Set each entry's `size` to sizeof. */
typedef struct lnet_part_figures {
    size_t size;
    int64_t begin, end;          /* its K/V rows (self-attention: its query rows too) */
    uint64_t bytes_in, bytes_out; /* from and to the other parts, every level */
    /* Per level, indexed as the configuration's levels. */
    uint64_t level_bytes_in[LNET_MAX_LEVELS], level_bytes_out[LNET_MAX_LEVELS];
} lnet_part_figures;

lnet_status lnet_attention_partition(const lnet_config *cfg, int64_t batch, int64_t rows,
                                     int64_t heads, int64_t dim, int backward,
                                     lnet_algorithm algorithm, int parts, int workers_per_part,
                                     lnet_part_figures *out);

/* Frees memory the library returned (explain texts). */
void lnet_free(void *p);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* LONGNET_H */
