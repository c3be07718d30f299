/* example_plugin.c — longnet-example, the vendor plugin to start from.
 *
 * A complete ABI 2 backend in one file: a plain-C "device" over host
 * memory with its own simple kernel (one query row at a time, keys in
 * blocks folded by online softmax, forward and backward), every required
 * slot, the optional ones a device over host memory can honour
 * (buffer_wrap_host, supports, run_segment_backward, probe_warning, score,
 * get_proc_address), errors through last_error, and a device option.
 *
 * It is built against the installed SDK only (pkg-config longnet-plugin):
 * the three headers below are all a plugin needs. Replace the kernel and
 * the buffer slots with your device's, keep the checks. See README.md.
 *
 * Devices: LONGNET_EXAMPLE_DEVICES (1..8, default 2) identical devices,
 * so that a scheduler test can split a sequence over two of them.
 * Device option: key_block=N (1..4096, default 64), the keys one pass of
 * the kernel scores at once (a tuning knob: the answer does not change). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <longnet-plugin-check.h>
#include <longnet-plugin-math.h>
#include <longnet-plugin.h>

#define EX_MAX_DEVICES 8
#define EX_MAX_KEY_BLOCK 4096

/* ------------------------------------------------------------- errors */

/* One message per thread: the ABI says last_error() is the calling
 * thread's last failure, and devices may be driven from several threads. */
static _Thread_local char ex_message[512];

static int ex_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ex_fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ex_message, sizeof ex_message, fmt, ap);
    va_end(ap);
    return status;
}

static const char *ex_last_error(void)
{
    return ex_message;
}

/* ------------------------------------------------------- probe, devices */

static int ex_n_devices;     /* set by probe; probe/describe/open come one at a time */
static char ex_probe_note[160];

static int ex_probe(int *n_devices)
{
    ex_probe_note[0] = '\0';
    if (!n_devices)
        return ex_fail(LNET_PLUGIN_ERR_INVALID, "example probe: n_devices is NULL");
    int n = 2;
    const char *env = getenv("LONGNET_EXAMPLE_DEVICES");
    if (env && env[0]) {
        char *end = NULL;
        long v = strtol(env, &end, 10);
        if (end == env || *end || v < 1 || v > EX_MAX_DEVICES)
            return ex_fail(LNET_PLUGIN_ERR_INVALID,
                           "example probe: LONGNET_EXAMPLE_DEVICES = '%.40s' is not a number "
                           "from 1 to %d", env, EX_MAX_DEVICES);
        n = (int)v;
    }
    ex_n_devices = n;
    *n_devices = n;
    return LNET_PLUGIN_OK;
}

/* Nothing to say after a probe in this example; a real plugin reports
 * what it worked around here (a clamped setting), never prints it. */
static const char *ex_probe_warning(void)
{
    return ex_probe_note;
}

static void ex_shutdown(void)
{
    ex_n_devices = 0;
}

static int ex_check_index(const char *slot, int index)
{
    if (index < 0 || index >= ex_n_devices)
        return ex_fail(LNET_PLUGIN_ERR_INVALID,
                       "example %s: device index %d does not exist (the example has %d devices)",
                       slot, index, ex_n_devices);
    return LNET_PLUGIN_OK;
}

static int ex_describe(int index, lnet_plugin_device_desc *desc)
{
    int st = ex_check_index("describe", index);
    if (st)
        return st;
    if (lnet_plugin_desc_clear(desc))
        return ex_fail(LNET_PLUGIN_ERR_INVALID,
                       "example describe: desc is NULL or smaller than ABI %u's %zu bytes",
                       LNET_PLUGIN_ABI_VERSION, (size_t)LNET_PLUGIN_DESC_MIN_SIZE);
    snprintf(desc->name, sizeof desc->name, "example device %d (host memory)", index);
    snprintf(desc->kind, sizeof desc->kind, "other");
    desc->memory_bytes = 0; /* unknown: the host's */
    desc->compute_units = 1;
    snprintf(desc->kernels, sizeof desc->kernels, "simple");
    desc->caps = LNET_PLUGIN_CAP_WINDOWS; /* the kernel honours row windows */
    return LNET_PLUGIN_OK;
}

typedef struct ex_device {
    int index;
    long key_block;
} ex_device;

/* Options are refused when unknown, so that a typo never passes. */
static int ex_open(int index, const char *options, void **device)
{
    if (!device)
        return ex_fail(LNET_PLUGIN_ERR_INVALID, "example open: device output pointer is NULL");
    *device = NULL;
    int st = ex_check_index("open", index);
    if (st)
        return st;
    long key_block = 64;
    const char *p = options;
    lnet_plugin_option o;
    while (lnet_plugin_next_option(&p, &o)) {
        if (!o.value || !lnet_plugin_option_is(&o, "key_block"))
            return ex_fail(LNET_PLUGIN_ERR_INVALID,
                           "example open: unknown device option '%.*s' in \"%.200s\" (the example "
                           "takes key_block=N)", (int)(o.key_len < 64 ? o.key_len : 64), o.key,
                           options);
        char value[32];
        char *end = NULL;
        if (o.value_len == 0 || o.value_len >= sizeof value)
            return ex_fail(LNET_PLUGIN_ERR_INVALID,
                           "example open: key_block = '%.*s' is not a number from 1 to %d",
                           (int)(o.value_len < 32 ? o.value_len : 32), o.value, EX_MAX_KEY_BLOCK);
        memcpy(value, o.value, o.value_len);
        value[o.value_len] = '\0';
        key_block = strtol(value, &end, 10);
        if (*end || key_block < 1 || key_block > EX_MAX_KEY_BLOCK)
            return ex_fail(LNET_PLUGIN_ERR_INVALID,
                           "example open: key_block = '%s' is not a number from 1 to %d", value,
                           EX_MAX_KEY_BLOCK);
    }
    ex_device *dev = calloc(1, sizeof *dev);
    if (!dev)
        return ex_fail(LNET_PLUGIN_ERR_NOMEM, "example open: out of memory");
    dev->index = index;
    dev->key_block = key_block;
    *device = dev;
    return LNET_PLUGIN_OK;
}

static void ex_close(void *device)
{
    free(device);
}

/* ------------------------------------------------------------ buffers */

/* A buffer: its bytes, and whether the device owns them (a wrapped host
 * buffer stays the caller's). A real device keeps its handle here. */
typedef struct ex_buffer {
    void *data;
    size_t bytes;
    int owned;
} ex_buffer;

static int ex_buffer_alloc(void *device, size_t bytes, void **buffer)
{
    if (!buffer)
        return ex_fail(LNET_PLUGIN_ERR_INVALID, "example buffer_alloc: output pointer is NULL");
    *buffer = NULL;
    if (!device)
        return ex_fail(LNET_PLUGIN_ERR_INVALID, "example buffer_alloc: device is NULL");
    ex_buffer *b = malloc(sizeof *b);
    void *data = malloc(bytes ? bytes : 1);
    if (!b || !data) {
        free(b);
        free(data);
        return ex_fail(LNET_PLUGIN_ERR_NOMEM, "example buffer_alloc: out of memory for %zu bytes",
                       bytes);
    }
    b->data = data;
    b->bytes = bytes;
    b->owned = 1;
    *buffer = b;
    return LNET_PLUGIN_OK;
}

static int ex_buffer_wrap_host(void *device, void *host, size_t bytes, void **buffer)
{
    if (!buffer)
        return ex_fail(LNET_PLUGIN_ERR_INVALID, "example buffer_wrap_host: output pointer is NULL");
    *buffer = NULL;
    if (!device || (!host && bytes))
        return ex_fail(LNET_PLUGIN_ERR_INVALID, "example buffer_wrap_host: %s is NULL",
                       !device ? "device" : "host memory");
    ex_buffer *b = malloc(sizeof *b);
    if (!b)
        return ex_fail(LNET_PLUGIN_ERR_NOMEM, "example buffer_wrap_host: out of memory");
    b->data = host;
    b->bytes = bytes;
    b->owned = 0;
    *buffer = b;
    return LNET_PLUGIN_OK;
}

static void ex_buffer_free(void *device, void *buffer)
{
    (void)device;
    ex_buffer *b = buffer;
    if (!b)
        return;
    if (b->owned)
        free(b->data);
    free(b);
}

static int ex_buffer_range(const char *slot, void *device, const ex_buffer *b, size_t offset,
                           const void *host, size_t bytes)
{
    if (!device || !b)
        return ex_fail(LNET_PLUGIN_ERR_INVALID, "example %s: %s is NULL", slot,
                       !device ? "device" : "buffer");
    if (offset > b->bytes || bytes > b->bytes - offset)
        return ex_fail(LNET_PLUGIN_ERR_INVALID,
                       "example %s: %zu bytes at offset %zu exceed the buffer's %zu bytes", slot,
                       bytes, offset, b->bytes);
    if (bytes && !host)
        return ex_fail(LNET_PLUGIN_ERR_INVALID, "example %s: host pointer is NULL for %zu bytes",
                       slot, bytes);
    return LNET_PLUGIN_OK;
}

static int ex_buffer_write(void *device, void *buffer, size_t offset, const void *src,
                           size_t bytes)
{
    ex_buffer *b = buffer;
    int st = ex_buffer_range("buffer_write", device, b, offset, src, bytes);
    if (!st && bytes)
        memcpy((char *)b->data + offset, src, bytes);
    return st;
}

static int ex_buffer_read(void *device, void *buffer, size_t offset, void *dst, size_t bytes)
{
    const ex_buffer *b = buffer;
    int st = ex_buffer_range("buffer_read", device, b, offset, dst, bytes);
    if (!st && bytes)
        memcpy(dst, (const char *)b->data + offset, bytes);
    return st;
}

/* Jobs run to completion inside run_segment: nothing is ever queued. */
static int ex_synchronize(void *device)
{
    if (!device)
        return ex_fail(LNET_PLUGIN_ERR_INVALID, "example synchronize: device is NULL");
    return LNET_PLUGIN_OK;
}

/* ------------------------------------------------------------- checks */

static int ex_kernel_known(const char *kernel)
{
    return !kernel || !kernel[0] || strcmp(kernel, "simple") == 0;
}

static int ex_check_buffer(const char *slot, const char *name, const void *buffer, size_t need)
{
    const ex_buffer *b = buffer;
    if (!b)
        return ex_fail(LNET_PLUGIN_ERR_INVALID, "example %s: buffer %s is NULL", slot, name);
    if (b->bytes < need)
        return ex_fail(LNET_PLUGIN_ERR_INVALID,
                       "example %s: buffer %s holds %zu bytes but the job needs %zu", slot, name,
                       b->bytes, need);
    return LNET_PLUGIN_OK;
}

/* The SDK's job checks (fields, windows, dtype: the same words as every
 * plugin's), the kernel name, and the four buffers every level reads. */
static int ex_check_level(const char *slot, const lnet_segment_job *job, lnet_plugin_window *w,
                          size_t *q_bytes, size_t *kv_bytes, size_t *lse_bytes)
{
    char msg[400];
    int st = lnet_plugin_job_check(job, "example", w, q_bytes, kv_bytes, lse_bytes, msg,
                                   sizeof msg);
    if (st)
        return ex_fail(st, "%s", msg);
    if (!ex_kernel_known(job->kernel))
        return ex_fail(LNET_PLUGIN_ERR_UNSUPPORTED,
                       "example %s: unknown kernel '%.200s' (available: simple)", slot,
                       job->kernel);
    if ((st = ex_check_buffer(slot, "q", job->q, *q_bytes)) ||
        (st = ex_check_buffer(slot, "k", job->k, *kv_bytes)) ||
        (st = ex_check_buffer(slot, "v", job->v, *kv_bytes)) ||
        (st = ex_check_buffer(slot, "lse", job->lse, *lse_bytes)))
        return st;
    return LNET_PLUGIN_OK;
}

/* ------------------------------------------------------------- kernel */

#define EX_DATA(p) ((float *)((ex_buffer *)(p))->data)

/* Where a job's rows are: element offsets of row `row` (absolute) of
 * batch b and head h, in the [B, rows, H, D] window starting at `base`. */
static size_t ex_row(const lnet_segment_job *job, int64_t rows, int64_t base, int64_t b,
                     int64_t row, int64_t h)
{
    return (((size_t)b * (size_t)rows + (size_t)(row - base)) * (size_t)job->heads + (size_t)h) *
           (size_t)job->dim;
}

/* The selected keys of query row i's segment that lie in the K/V window
 * (causal: up to i): [first, last] in steps of r; 0 when there are none. */
static int ex_keys(const lnet_segment_job *job, const lnet_plugin_window *w, int64_t i, int64_t o,
                   int64_t *first, int64_t *last)
{
    const int64_t seg = i / job->segment * job->segment, r = job->dilation;
    int64_t end = job->rows - seg < job->segment ? job->rows : seg + job->segment; /* exclusive */
    if (job->causal && i + 1 < end)
        end = i + 1;
    if (w->kv_base + w->kv_rows < end)
        end = w->kv_base + w->kv_rows;
    int64_t f = seg + o;
    if (f >= end)
        return 0;
    if (f < w->kv_base) {
        /* The first selected row in the window; counted in steps so that
         * a dilation near INT64_MAX cannot overflow. */
        const int64_t steps = lnet_plugin_ceil_div(w->kv_base - f, r);
        if (steps > (end - 1 - f) / r)
            return 0;
        f += steps * r;
    }
    *first = f;
    *last = f + (end - 1 - f) / r * r;
    return 1;
}

/* 1 when query row i is selected at offset o. */
static int ex_selected(const lnet_segment_job *job, int64_t i, int64_t o)
{
    const int64_t in_seg = i % job->segment;
    return in_seg >= o && (in_seg - o) % job->dilation == 0;
}

static int ex_run_segment(void *device, const lnet_segment_job *job)
{
    if (!device || !job)
        return ex_fail(LNET_PLUGIN_ERR_INVALID, "example run_segment: %s is NULL",
                       !device ? "device" : "job");
    lnet_plugin_window w;
    size_t q_bytes, kv_bytes, lse_bytes;
    int st = ex_check_level("run_segment", job, &w, &q_bytes, &kv_bytes, &lse_bytes);
    if (st || (st = ex_check_buffer("run_segment", "out", job->out, q_bytes)))
        return st;
    const ex_device *dev = device;
    const int64_t D = job->dim;
    double *acc = malloc((size_t)D * sizeof *acc);
    double *score = malloc((size_t)dev->key_block * sizeof *score);
    if (!acc || !score) {
        free(acc);
        free(score);
        return ex_fail(LNET_PLUGIN_ERR_NOMEM, "example run_segment: out of memory");
    }
    const float *q = EX_DATA(job->q), *k = EX_DATA(job->k), *v = EX_DATA(job->v);
    float *out = EX_DATA(job->out), *lse = EX_DATA(job->lse);
    for (int64_t b = 0; b < job->batch; b++)
        for (int64_t h = 0; h < job->heads; h++) {
            const int64_t o = lnet_plugin_head_offset(job->offsets, h, job->heads, job->dilation);
            for (int64_t i = job->row_begin; i < job->row_end; i++) {
                int64_t first, last;
                if (!ex_selected(job, i, o) || !ex_keys(job, &w, i, o, &first, &last))
                    continue;
                const float *qi = q + ex_row(job, w.q_rows, w.q_base, b, i, h);
                /* Online softmax over blocks of keys: running max m, sum l. */
                double m = -INFINITY, l = 0.0;
                for (int64_t d = 0; d < D; d++)
                    acc[d] = 0.0;
                /* Keys by count, not by row, so that no row index past the
                 * last is ever formed (a dilation may be near INT64_MAX). */
                const int64_t n_keys = (last - first) / job->dilation + 1;
                for (int64_t t0 = 0; t0 < n_keys; t0 += dev->key_block) {
                    int64_t n = 0;
                    double bm = -INFINITY;
                    for (; n < dev->key_block && t0 + n < n_keys; n++) {
                        const int64_t j = first + (t0 + n) * job->dilation;
                        const float *kj = k + ex_row(job, w.kv_rows, w.kv_base, b, j, h);
                        double dot = 0.0;
                        for (int64_t d = 0; d < D; d++)
                            dot += (double)qi[d] * (double)kj[d];
                        score[n] = (double)job->scale * dot;
                        if (score[n] > bm)
                            bm = score[n];
                    }
                    const double nm = bm > m ? bm : m;
                    const double c = m == -INFINITY ? 0.0 : exp(m - nm);
                    l *= c;
                    for (int64_t d = 0; d < D; d++)
                        acc[d] *= c;
                    for (int64_t t = 0; t < n; t++) {
                        const double p = exp(score[t] - nm);
                        const float *vj = v + ex_row(job, w.kv_rows, w.kv_base, b,
                                                     first + (t0 + t) * job->dilation, h);
                        l += p;
                        for (int64_t d = 0; d < D; d++)
                            acc[d] += p * (double)vj[d];
                    }
                    m = nm;
                }
                const double lse_i = m + log(l);
                float *oi = out + ex_row(job, w.q_rows, w.q_base, b, i, h);
                float *li = lse + ((size_t)b * (size_t)job->heads + (size_t)h) * (size_t)w.q_rows +
                            (size_t)(i - w.q_base);
                if (job->init) {
                    for (int64_t d = 0; d < D; d++)
                        oi[d] = (float)(acc[d] / l);
                    *li = (float)lse_i;
                } else {
                    const lnet_plugin_fold f = lnet_plugin_lse_fold((double)*li, lse_i);
                    for (int64_t d = 0; d < D; d++)
                        oi[d] = (float)lnet_plugin_fold_value(&f, (double)oi[d], acc[d] / l);
                    *li = (float)f.lse;
                }
            }
        }
    free(acc);
    free(score);
    return LNET_PLUGIN_OK;
}

/* The backward of one level (lnet_segment_backward_job), row by row:
 * P recomputed from the final LSE, then dV, dS, dQ, dK as the header says. */
static int ex_run_segment_backward(void *device, const lnet_segment_backward_job *job)
{
    static const char slot[] = "run_segment_backward";
    if (!device || !job)
        return ex_fail(LNET_PLUGIN_ERR_INVALID, "example %s: %s is NULL", slot,
                       !device ? "device" : "job");
    if (job->size < offsetof(lnet_segment_backward_job, dv) + sizeof(void *))
        return ex_fail(LNET_PLUGIN_ERR_INVALID, "example %s: job size %zu is too small", slot,
                       job->size);
    lnet_segment_job level = job->level;
    level.init = 0; /* unused by the backward */
    lnet_plugin_window w;
    size_t q_bytes, kv_bytes, lse_bytes;
    int st = ex_check_level(slot, &level, &w, &q_bytes, &kv_bytes, &lse_bytes);
    if (st || (st = ex_check_buffer(slot, "dout", job->dout, q_bytes)) ||
        (st = ex_check_buffer(slot, "delta", job->delta, lse_bytes)) ||
        (st = ex_check_buffer(slot, "dq", job->dq, q_bytes)) ||
        (st = ex_check_buffer(slot, "dk", job->dk, kv_bytes)) ||
        (st = ex_check_buffer(slot, "dv", job->dv, kv_bytes)))
        return st;
    const lnet_segment_job *lj = &level;
    const int64_t D = lj->dim;
    const float *q = EX_DATA(lj->q), *k = EX_DATA(lj->k), *v = EX_DATA(lj->v);
    const float *lse = EX_DATA(lj->lse), *dout = EX_DATA(job->dout), *delta = EX_DATA(job->delta);
    float *dq = EX_DATA(job->dq), *dk = EX_DATA(job->dk), *dv = EX_DATA(job->dv);
    for (int64_t b = 0; b < lj->batch; b++)
        for (int64_t h = 0; h < lj->heads; h++) {
            const int64_t o = lnet_plugin_head_offset(lj->offsets, h, lj->heads, lj->dilation);
            for (int64_t i = lj->row_begin; i < lj->row_end; i++) {
                int64_t first, last;
                if (!ex_selected(lj, i, o) || !ex_keys(lj, &w, i, o, &first, &last))
                    continue;
                const size_t qo = ex_row(lj, w.q_rows, w.q_base, b, i, h);
                const size_t lo = ((size_t)b * (size_t)lj->heads + (size_t)h) * (size_t)w.q_rows +
                                  (size_t)(i - w.q_base);
                const int64_t n_keys = (last - first) / lj->dilation + 1;
                for (int64_t t = 0; t < n_keys; t++) {
                    const size_t ko =
                        ex_row(lj, w.kv_rows, w.kv_base, b, first + t * lj->dilation, h);
                    double dot = 0.0, dov = 0.0;
                    for (int64_t d = 0; d < D; d++) {
                        dot += (double)q[qo + d] * (double)k[ko + d];
                        dov += (double)dout[qo + d] * (double)v[ko + d];
                    }
                    const double p = exp((double)lj->scale * dot - (double)lse[lo]);
                    const double ds = p * (dov - (double)delta[lo]);
                    for (int64_t d = 0; d < D; d++) {
                        dv[ko + d] += (float)(p * (double)dout[qo + d]);
                        dq[qo + d] += (float)((double)lj->scale * ds * (double)k[ko + d]);
                        dk[ko + d] += (float)((double)lj->scale * ds * (double)q[qo + d]);
                    }
                }
            }
        }
    return LNET_PLUGIN_OK;
}

/* What the scheduler may send here: float32, the one kernel. Shapes and
 * windows are all fine. */
static int ex_supports(void *device, const lnet_segment_job *job)
{
    (void)device;
    if (!job) {
        ex_fail(LNET_PLUGIN_ERR_INVALID, "example supports: job is NULL");
        return 0;
    }
    if (LNET_PLUGIN_JOB_DTYPE(job) != LNET_PLUGIN_DTYPE_F32) {
        ex_fail(LNET_PLUGIN_ERR_UNSUPPORTED, "%s", lnet_plugin_dtype_unsupported(job));
        return 0;
    }
    if (!ex_kernel_known(job->kernel)) {
        ex_fail(LNET_PLUGIN_ERR_UNSUPPORTED, "no kernel '%.200s' (it has: simple)", job->kernel);
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------- vendor extras */

/* A vendor extension reachable by name (the core never calls it). */
static const char *ex_version(void)
{
    return "longnet-example 1.0";
}

static void *ex_get_proc_address(const char *name)
{
    if (!name || strcmp(name, "example_version") != 0)
        return NULL;
    /* A function pointer handed out as void *, as dlsym does. */
    const char *(*fn)(void) = ex_version;
    void *p;
    memcpy(&p, &fn, sizeof p);
    return p;
}

/* Ranks this module among modules of the same backend name: a build for a
 * wider instruction set would return more where the CPU has it. */
static int ex_score(void)
{
    return 1;
}

/* -------------------------------------------------------------- entry */

static const lnet_plugin ex_plugin = {
    .abi_version = LNET_PLUGIN_ABI_VERSION,
    .size = sizeof(lnet_plugin),
    .name = "example",
    .description = "the vendor example: a plain-C device over host memory",
    .probe = ex_probe,
    .shutdown = ex_shutdown,
    .describe = ex_describe,
    .open = ex_open,
    .close = ex_close,
    .buffer_alloc = ex_buffer_alloc,
    .buffer_wrap_host = ex_buffer_wrap_host,
    .buffer_free = ex_buffer_free,
    .buffer_write = ex_buffer_write,
    .buffer_read = ex_buffer_read,
    .run_segment = ex_run_segment,
    .synchronize = ex_synchronize,
    .last_error = ex_last_error,
    .probe_warning = ex_probe_warning,
    .supports = ex_supports,
    .run_segment_backward = ex_run_segment_backward,
    .get_proc_address = ex_get_proc_address,
    .score = ex_score,
};

LNET_PLUGIN_EXPORT const lnet_plugin *lnet_plugin_entry(void);

LNET_PLUGIN_EXPORT const lnet_plugin *lnet_plugin_entry(void)
{
    return &ex_plugin;
}
