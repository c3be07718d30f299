/* longnet-plugin.h — the SDK a backend plugin is built against.
 *
 * A plugin is a shared module (libtool: -module -avoid-version) that exports
 * one C symbol, LNET_PLUGIN_ENTRY_SYMBOL, a function returning a pointer to a
 * constant lnet_plugin table. The table starts with the ABI version and its
 * own size so that the loader can refuse a module built for another ABI, and
 * so that later ABI revisions can add slots at the end (as SQLite's VFS does).
 *
 * Threading: the loader calls probe/describe/open/close from one thread at a
 * time. Calls on one opened device come from one thread at a time; calls on
 * different devices may come from different threads at once.
 *
 * Errors: a slot returns 0 on success or a negative lnet_status value (the
 * same numbers as in longnet.h) and leaves a message for the calling thread,
 * returned by last_error().
 *
 * Versioning (ABI 2 on): every struct that crosses the ABI starts with its
 * size, as the side that made it knows it; slots and fields are only ever
 * appended. A reader uses a field only when the size covers it, and a
 * writer writes only the fields the other side's size covers. The loader
 * accepts a table of any version from LNET_PLUGIN_ABI_MIN up to its own
 * whose size covers the required slots (SQLite's rule), and refuses a
 * newer table, or one of ABI 1 (the one break: ABI 1 structs carry no
 * size), with a warning that says so.
 */
#ifndef LONGNET_PLUGIN_H
#define LONGNET_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LNET_PLUGIN_ABI_VERSION 2u
/* The oldest table version this SDK's loader accepts. */
#define LNET_PLUGIN_ABI_MIN 2u
#define LNET_PLUGIN_ENTRY_SYMBOL "lnet_plugin_entry"

/* Status values a plugin returns; equal to those of longnet.h. */
#define LNET_PLUGIN_OK 0
#define LNET_PLUGIN_ERR_INVALID (-1)
#define LNET_PLUGIN_ERR_NOMEM (-2)
#define LNET_PLUGIN_ERR_DEVICE (-6)
#define LNET_PLUGIN_ERR_UNSUPPORTED (-8)

/* Head offset modes (DESIGN §1); equal to lnet_offsets in longnet.h. */
#define LNET_PLUGIN_OFFSETS_INTERLEAVED 0
#define LNET_PLUGIN_OFFSETS_GROUPED 1

/* Element types of a job's tensors. Only float32 is implemented by the
 * in-tree backends; a job of another type is refused as UNSUPPORTED (by
 * supports() before it is ever sent, and by run_segment). */
#define LNET_PLUGIN_DTYPE_F32 0
#define LNET_PLUGIN_DTYPE_F16 1
#define LNET_PLUGIN_DTYPE_BF16 2

/* The loader sets `size` to its sizeof before describe(); the plugin
 * writes only fields that size covers (all of these do, from ABI 2). */
typedef struct lnet_plugin_device_desc {
    size_t size;
    char name[128];        /* human-readable device name */
    char kind[16];         /* "cpu", "gpu", "accelerator", "fpga" or "other" */
    uint64_t memory_bytes; /* usable memory, 0 if unknown */
    int compute_units;
    char kernels[128];     /* comma-separated kernel names, the default first */
    unsigned caps;         /* LNET_PLUGIN_CAP_* flags */
} lnet_plugin_device_desc;

/* The device's kernels honour the row windows of lnet_segment_job. */
#define LNET_PLUGIN_CAP_WINDOWS 1u

/* One SEGMENT_ATTENTION node of the graph: one level of dilated attention
 * applied to the query rows [row_begin, row_end) of every batch and head.
 *
 * Buffers hold whole tensors in C order: q, k, v, out are float32
 * [batch, rows, heads, dim]; lse is float32 [batch, heads, rows].
 *
 * For head h the offset o is h mod dilation (interleaved) or
 * h / ceil(heads / dilation) (grouped). A query row q in segment
 * s = q / segment, selected iff (q - s*segment) >= o and
 * (q - s*segment - o) % dilation == 0, attends every selected key row of the
 * same segment (causal: key <= q), with scores scale * q.k. The branch result
 * (o_i, lse_i) is folded into the running (out, lse):
 *     m = max(lse, lse_i);  out = (e^(lse-m) out + e^(lse_i-m) o_i) / (e^(lse-m) + e^(lse_i-m));
 *     lse = m + log(e^(lse-m) + e^(lse_i-m)).
 * With init = 1 (given only with dilation 1, which selects every row) the
 * kernel overwrites out and lse instead of folding. Rows not selected are
 * left untouched. Segments are aligned to row 0, not to row_begin.
 *
 * Row windows (used by the multi-device scheduler, only on devices whose
 * description sets LNET_PLUGIN_CAP_WINDOWS). `rows` is then the length of the
 * whole sequence (it decides where the last segment ends), while the buffers
 * hold only part of it: q, out and lse hold `q_rows` rows starting at the
 * absolute row `q_base` (q, out: [batch, q_rows, heads, dim]; lse:
 * [batch, heads, q_rows]), k and v hold `kv_rows` rows starting at `kv_base`.
 * A selected query then attends only the selected keys of its segment that
 * lie in the K/V window; a query left with no key is left untouched. init = 1
 * is given only when every query's own row lies in the K/V window. With
 * q_rows = 0 (or a job too small to have these fields) there is no window:
 * all four are taken as 0, rows, 0, rows.
 */
typedef struct lnet_segment_job {
    size_t size;           /* sizeof(lnet_segment_job) of the caller */
    int64_t batch, rows, heads, dim;
    int64_t row_begin, row_end;
    int64_t segment, dilation;
    int offsets;           /* LNET_PLUGIN_OFFSETS_* */
    int causal;
    int init;
    float scale;
    const char *kernel;    /* NULL or "": the device's default kernel */
    void *q, *k, *v, *out, *lse; /* buffers of this device */
    /* Row windows (see above); read only when `size` covers them. */
    int64_t q_base, q_rows;
    int64_t kv_base, kv_rows;
    /* ABI 2: the element type of q, k, v, out (LNET_PLUGIN_DTYPE_*; lse is
     * always float32); a job whose size does not cover it is float32. */
    int dtype;
} lnet_segment_job;

/* The element type of a job, float32 for a job made before the field. */
#define LNET_PLUGIN_JOB_DTYPE(job) \
    ((job)->size >= offsetof(lnet_segment_job, dtype) + sizeof(int) ? (job)->dtype \
                                                                    : LNET_PLUGIN_DTYPE_F32)

/* One SEGMENT_ATTENTION_BACKWARD node: the backward pass of one level
 * (DESIGN §1), for the query rows [row_begin, row_end) and the keys of the
 * K/V window, accumulated into dq, dk, dv.
 *
 * `level` is the level's forward job exactly (shape, rows, segment,
 * dilation, offsets, causal, scale, kernel, windows, dtype and the buffers
 * q, k, v); its `out` and `lse` are the forward's *final* O and LSE over
 * all levels (read only), and `init` is unused. With P = exp(scale·q·k −
 * LSE) for every selected query row i of the range and every selected key
 * j of its segment in the K/V window (causal: j <= i):
 *     dV_j += P_ij dO_i
 *     dS_ij = P_ij (dO_i·V_j − delta_i)
 *     dQ_i += scale dS_ij K_j
 *     dK_j += scale dS_ij Q_i
 * Rows the level does not select get nothing. dq is laid out like q (and
 * dout like q, delta like lse), dk and dv like k and v; the kernel adds to
 * what they hold (the core zeroes them first and sums levels and blocks
 * this way). delta is rowsum(dO ∘ O) per row and head, computed by the
 * core. */
typedef struct lnet_segment_backward_job {
    size_t size;            /* sizeof(lnet_segment_backward_job) of the caller */
    lnet_segment_job level;
    void *dout;             /* float32 [batch, q rows, heads, dim] */
    void *delta;            /* float32 [batch, heads, q rows] */
    void *dq;               /* float32, as q: accumulated */
    void *dk, *dv;          /* float32, as k and v: accumulated */
} lnet_segment_backward_job;

/* The job fields a plugin must see before it may read the windows. */
#define LNET_PLUGIN_JOB_HAS_WINDOWS(job) \
    ((job)->size >= offsetof(lnet_segment_job, kv_rows) + sizeof(int64_t) && (job)->q_rows > 0)

typedef struct lnet_plugin {
    uint32_t abi_version;  /* LNET_PLUGIN_ABI_VERSION */
    uint32_t size;         /* sizeof(lnet_plugin) */
    const char *name;      /* backend name: lower case, [a-z0-9_], e.g. "cpu" */
    const char *description;

    /* Finds the devices; may be called again after shutdown. A plugin whose
     * probe fails is refused with its message; zero devices is not a failure. */
    int (*probe)(int *n_devices);
    void (*shutdown)(void);
    int (*describe)(int index, lnet_plugin_device_desc *desc);

    /* options: NULL or a "key=value,key=value" string for the device. */
    int (*open)(int index, const char *options, void **device);
    void (*close)(void *device);

    int (*buffer_alloc)(void *device, size_t bytes, void **buffer);
    /* Optional (may be NULL): a buffer that is the host memory itself, for
     * devices that share the host's memory; the host keeps ownership. */
    int (*buffer_wrap_host)(void *device, void *host, size_t bytes, void **buffer);
    void (*buffer_free)(void *device, void *buffer);
    int (*buffer_write)(void *device, void *buffer, size_t offset, const void *src,
                        size_t bytes);
    int (*buffer_read)(void *device, void *buffer, size_t offset, void *dst, size_t bytes);

    int (*run_segment)(void *device, const lnet_segment_job *job);
    /* Waits until every job queued on the device has finished. */
    int (*synchronize)(void *device);

    /* The message of the last failure on the calling thread. */
    const char *(*last_error)(void);

    /* Optional (may be NULL): a write that returns at once and overlaps the
     * jobs queued before it, so that the next K/V block travels while the
     * current one is computed. It starts only after every job queued on the
     * device before this call has finished with its buffers, and a job
     * queued after it that uses `buffer` waits for it. `src` must stay
     * valid and unchanged until the device's next synchronize. */
    int (*buffer_write_async)(void *device, void *buffer, size_t offset, const void *src,
                              size_t bytes);

    /* Optional (may be NULL): after a probe that succeeded, what it had to
     * work around and the user should hear of (a setting clamped to what
     * the machine has, say), or NULL or "" for nothing. A plugin never
     * prints; the loader passes this on as a warning naming the module,
     * through the log callback of every context that gets the plugin. The
     * text stays valid until the next probe or shutdown. */
    const char *(*probe_warning)(void);

    /* ABI 2. Optional (may be NULL: every job of float32 is supported):
     * whether the device can run `job` (the buffers are NULL; dtype, head
     * dim, windows, kernel, causal are what it may look at). Returns 1 if
     * so, 0 if not, with last_error() saying what it lacks ("float16 jobs:
     * this device runs float32 only"). The scheduler gives a device only
     * jobs it supports; an unsupported job is never a device fault. */
    int (*supports)(void *device, const lnet_segment_job *job);

    /* ABI 2. Optional (NULL: the device has no backward pass): one level
     * of the backward pass; the job type comes with the backward ABI. */
    int (*run_segment_backward)(void *device, const lnet_segment_backward_job *job);

    /* ABI 2. Optional: a vendor extension by name (NULL when unknown), for
     * programs that know the vendor; the core never calls it. */
    void *(*get_proc_address)(const char *name);

    /* ABI 2. Optional: a warning the plugin has for the user since it was
     * last asked (the program cache it would not trust, say), or NULL.
     * The core asks after each call on a device and logs the text, naming
     * the device, through the context's log callback; a plugin never
     * prints. The text stays valid until the next call of this slot; a
     * warning is returned once. Called from any thread. */
    const char *(*take_warning)(void);

    /* ABI 2, appended. Optional (NULL counts as 0): how well this module
     * suits the machine, for when two modules give the same backend name (a
     * vendor's tuned "cpu" beside the in-tree one, or two builds for
     * different instruction sets). The loader keeps the one with the higher
     * score; equal scores keep the first found in the search order. Called
     * before probe, from one thread at a time: it must be cheap and must not
     * start a runtime (read CPUID, not the driver). A negative score ranks
     * below a module without the slot. */
    int (*score)(void);
} lnet_plugin;

/* The slots every plugin has (through last_error); those after them are
 * optional additions, read only when the table's size covers them. */
#define LNET_PLUGIN_REQUIRED_SIZE offsetof(lnet_plugin, buffer_write_async)

typedef const lnet_plugin *(*lnet_plugin_entry_fn)(void);

#if defined(_WIN32)
#define LNET_PLUGIN_EXPORT __declspec(dllexport)
#else
#define LNET_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
}
#endif

#endif /* LONGNET_PLUGIN_H */
