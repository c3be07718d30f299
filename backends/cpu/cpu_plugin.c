#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cpu_plugin.c — the CPU backend: one device (the host), host-memory
 * buffers, and the segment kernels ("fast", cpu_fast.c, the default;
 * "reference", cpu_reference.c) behind the plugin ABI of longnet-plugin.h. It is the backend that is always there, so it checks
 * every job fully and never trusts the caller's sizes. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_backend.h"
#include "cpu_backward.h"
#include "cpu_fast.h"
#include "cpu_simd.h"

/* ------------------------------------------------------------ kernels */

/* The host is one device: the index is checked once, in open, so the
 * other slots may rely on it. The fast kernel's state (thread pool, SIMD
 * path) lives as long as the opened device. */
typedef struct cpu_device {
    int index;
    cpu_fast *fast;
} cpu_device;

/* A kernel as run_segment calls it: with the device, for the kernels that
 * keep state in it. */
typedef int (*cpu_device_kernel_fn)(cpu_device *dev, const lnet_segment_job *job, const float *q,
                                    const float *k, const float *v, float *out, float *lse);

static int cpu_run_fast(cpu_device *dev, const lnet_segment_job *job, const float *q,
                        const float *k, const float *v, float *out, float *lse)
{
    return cpu_fast_segment(dev->fast, job, q, k, v, out, lse);
}

static int cpu_run_reference(cpu_device *dev, const lnet_segment_job *job, const float *q,
                             const float *k, const float *v, float *out, float *lse)
{
    (void)dev;
    return cpu_reference_segment(job, q, k, v, out, lse);
}

static int cpu_run_fast_backward(cpu_device *dev, const lnet_segment_job *job,
                                 const cpu_backward_buffers *buf)
{
    return cpu_backward_fast(dev->fast, job, buf);
}

static int cpu_run_reference_backward(cpu_device *dev, const lnet_segment_job *job,
                                      const cpu_backward_buffers *buf)
{
    (void)dev;
    return cpu_backward_reference(job, buf);
}

/* The kernels a job may name, forward and backward; the first is the
 * default. */
static const struct {
    const char *name;
    cpu_device_kernel_fn run;
    int (*backward)(cpu_device *dev, const lnet_segment_job *job, const cpu_backward_buffers *buf);
} cpu_kernels[] = {
    {"fast", cpu_run_fast, cpu_run_fast_backward},
    {"reference", cpu_run_reference, cpu_run_reference_backward},
};
#define CPU_N_KERNELS (sizeof cpu_kernels / sizeof cpu_kernels[0])

/* "reference,..." for describe() and for messages. */
static void cpu_kernel_list(char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < CPU_N_KERNELS && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? "," : "", cpu_kernels[i].name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* ------------------------------------------------------------ devices */

typedef struct cpu_buffer {
    void *data;
    size_t bytes;
    int owned; /* 0: wraps host memory the caller keeps */
} cpu_buffer;

/* The host is one device, or, with LONGNET_CPU_DEVICES=K, K devices that
 * share the cores out (as NUMA nodes or sockets would be): each takes its
 * share of the threads, so that the scheduler can split one sequence over
 * them. Read at probe; every device index below is checked against it. */
static int cpu_n_devices = 1;

static int cpu_online_cores(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores < 1 ? 1 : cores > CPU_MAX_THREADS ? CPU_MAX_THREADS : (int)cores;
}

/* Device i's share of the cores: an even split, the first ones taking the
 * remainder. */
static int cpu_device_cores(int index)
{
    int cores = cpu_online_cores();
    return cores / cpu_n_devices + (index < cores % cpu_n_devices);
}

/* What the last probe worked around (probe_warning); probe and shutdown
 * are called by one thread at a time, so one buffer serves. */
static char cpu_probe_note[256];

static int cpu_probe(int *n_devices)
{
    cpu_probe_note[0] = '\0';
    if (!n_devices)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu probe: n_devices is NULL");
    const char *env = getenv("LONGNET_CPU_DEVICES");
    cpu_n_devices = 1;
    if (env && env[0]) {
        char *end = NULL;
        errno = 0;
        long n = strtol(env, &end, 10);
        if (end == env || *end || n < 1)
            return cpu_fail(LNET_PLUGIN_ERR_INVALID,
                            "cpu probe: LONGNET_CPU_DEVICES = '%.40s' is not a number of devices "
                            "from 1 to the %d online cores",
                            env, cpu_online_cores());
        /* More devices than cores would leave some with no core at all;
         * the count is a wish about sharing the machine, not a fact about
         * it, so the backend stays (with one device per core) rather than
         * being refused, and says so. ERANGE is just a very large number. */
        const int cores = cpu_online_cores();
        if (errno == ERANGE || n > cores) {
            snprintf(cpu_probe_note, sizeof cpu_probe_note,
                     "LONGNET_CPU_DEVICES = '%.40s' is more than the %d online cores: "
                     "using %d cpu devices, one per core",
                     env, cores, cores);
            n = cores;
        }
        cpu_n_devices = (int)n;
    }
    *n_devices = cpu_n_devices;
    return LNET_PLUGIN_OK;
}

static const char *cpu_probe_warning(void)
{
    return cpu_probe_note;
}

static void cpu_shutdown(void)
{
    /* Nothing global to release: devices own everything they allocate. */
}

static int cpu_check_index(const char *what, int index)
{
    if (index < 0 || index >= cpu_n_devices)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID,
                        "cpu %s: device index %d does not exist (the cpu backend has %d device(s), "
                        "LONGNET_CPU_DEVICES)",
                        what, index, cpu_n_devices);
    return LNET_PLUGIN_OK;
}

/* The "model name" of /proc/cpuinfo (x86 and some others); "CPU" where the
 * file or the field is missing (other architectures, non-Linux systems). */
static void cpu_model_name(char *buf, size_t len)
{
    snprintf(buf, len, "CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        char *p = strchr(line, ':');
        if (!p)
            continue;
        p++;
        while (*p && isspace((unsigned char)*p))
            p++;
        size_t n = strlen(p);
        while (n > 0 && isspace((unsigned char)p[n - 1]))
            p[--n] = '\0';
        if (n > 0)
            snprintf(buf, len, "%s", p);
        break;
    }
    fclose(f);
}

static int cpu_describe(int index, lnet_plugin_device_desc *desc)
{
    int st = cpu_check_index("describe", index);
    if (st)
        return st;
    if (lnet_plugin_desc_clear(desc))
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu describe: desc is NULL or its size %zu is "
                        "smaller than ABI %u's %zu bytes", desc ? desc->size : (size_t)0,
                        LNET_PLUGIN_ABI_VERSION, (size_t)LNET_PLUGIN_DESC_MIN_SIZE);
    cpu_model_name(desc->name, sizeof desc->name);
    /* The SIMD path the fast kernel will take when the device is opened
     * (LONGNET_CPU_SIMD, else the best this CPU runs); a bad value is
     * reported by open, not here. */
    const cpu_tile_kernel *simd = NULL;
    if (cpu_simd_select(getenv("LONGNET_CPU_SIMD"), "LONGNET_CPU_SIMD", &simd))
        simd = cpu_simd_best();
    size_t name_len = strlen(desc->name);
    snprintf(desc->name + name_len, sizeof desc->name - name_len, " (%s)", simd->name);
    snprintf(desc->kind, sizeof desc->kind, "cpu");

    long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
    desc->memory_bytes = 0; /* unknown */
    if (pages > 0 && page_size > 0 && (uint64_t)pages <= UINT64_MAX / (uint64_t)page_size)
        desc->memory_bytes = (uint64_t)pages * (uint64_t)page_size;

    desc->compute_units = cpu_device_cores(index);
    if (cpu_n_devices > 1) {
        name_len = strlen(desc->name);
        snprintf(desc->name + name_len, sizeof desc->name - name_len, ", %d of %d cores",
                 desc->compute_units, cpu_online_cores());
    }

    cpu_kernel_list(desc->kernels, sizeof desc->kernels);
    /* Both kernels ("fast", "reference") honour the row windows. */
    desc->caps = LNET_PLUGIN_CAP_WINDOWS;
    return LNET_PLUGIN_OK;
}

/* The device options the cpu backend takes ("threads=4,simd=avx2"); a key
 * it does not know is refused rather than ignored, so that a typo never
 * passes silently. Empty items ("", ",,") are allowed. */
typedef struct cpu_options {
    char threads[64], simd[64];
    int has_threads, has_simd;
} cpu_options;

static int cpu_parse_options(const char *options, cpu_options *opt)
{
    memset(opt, 0, sizeof *opt);
    if (!options)
        return LNET_PLUGIN_OK;
    const char *p = options;
    lnet_plugin_option o;
    while (lnet_plugin_next_option(&p, &o)) {
        char *value = NULL;
        int *has = NULL;
        if (o.value && lnet_plugin_option_is(&o, "threads")) {
            value = opt->threads;
            has = &opt->has_threads;
        } else if (o.value && lnet_plugin_option_is(&o, "simd")) {
            value = opt->simd;
            has = &opt->has_simd;
        } else {
            return cpu_fail(LNET_PLUGIN_ERR_INVALID,
                            "cpu open: unknown device option '%.*s' in \"%s\" "
                            "(the cpu backend takes threads=N and simd=avx512|avx2|generic|auto)",
                            (int)(o.key_len < 200 ? o.key_len : 200), o.key, options);
        }
        if (o.value_len >= sizeof opt->threads)
            return cpu_fail(LNET_PLUGIN_ERR_INVALID,
                            "cpu open: the value of device option '%.*s' is too long in \"%.200s\"",
                            (int)o.key_len, o.key, options);
        memcpy(value, o.value, o.value_len);
        value[o.value_len] = '\0';
        *has = 1;
    }
    return LNET_PLUGIN_OK;
}

static int cpu_open(int index, const char *options, void **device)
{
    if (!device)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu open: device output pointer is NULL");
    *device = NULL;
    int st = cpu_check_index("open", index);
    if (st)
        return st;
    cpu_options opt;
    st = cpu_parse_options(options, &opt);
    if (st)
        return st;
    cpu_device *dev = calloc(1, sizeof *dev);
    if (!dev)
        return cpu_fail(LNET_PLUGIN_ERR_NOMEM, "cpu open: out of memory allocating %zu bytes",
                        sizeof *dev);
    dev->index = index;
    /* Options win over LONGNET_CPU_SIMD / LONGNET_CPU_THREADS. */
    st = cpu_fast_create(opt.has_simd ? opt.simd : NULL, opt.has_threads ? opt.threads : NULL,
                         cpu_device_cores(index), &dev->fast);
    if (st) {
        free(dev);
        return st;
    }
    *device = dev;
    return LNET_PLUGIN_OK;
}

static void cpu_close(void *device)
{
    cpu_device *dev = device;
    if (!dev)
        return;
    cpu_fast_free(dev->fast);
    free(dev);
}

/* ------------------------------------------------------------ buffers */

/* 64 bytes: a cache line and the widest vector loads a faster kernel uses. */
#define CPU_BUFFER_ALIGN 64

static int cpu_buffer_alloc(void *device, size_t bytes, void **buffer)
{
    if (!buffer)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu buffer_alloc: buffer output pointer is NULL");
    *buffer = NULL;
    if (!device)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu buffer_alloc: device is NULL");
    cpu_buffer *buf = malloc(sizeof *buf);
    if (!buf)
        return cpu_fail(LNET_PLUGIN_ERR_NOMEM,
                        "cpu buffer_alloc: out of memory allocating a buffer header of %zu bytes",
                        sizeof *buf);
    void *data = NULL;
    /* A zero-byte buffer still gets real memory, so that data is never NULL. */
    if (posix_memalign(&data, CPU_BUFFER_ALIGN, bytes ? bytes : 1) != 0) {
        free(buf);
        return cpu_fail(LNET_PLUGIN_ERR_NOMEM, "cpu buffer_alloc: out of memory allocating %zu bytes",
                        bytes);
    }
    buf->data = data;
    buf->bytes = bytes;
    buf->owned = 1;
    *buffer = buf;
    return LNET_PLUGIN_OK;
}

static int cpu_buffer_wrap_host(void *device, void *host, size_t bytes, void **buffer)
{
    if (!buffer)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu buffer_wrap_host: buffer output pointer is NULL");
    *buffer = NULL;
    if (!device)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu buffer_wrap_host: device is NULL");
    if (!host && bytes > 0)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID,
                        "cpu buffer_wrap_host: host memory is NULL for %zu bytes", bytes);
    cpu_buffer *buf = malloc(sizeof *buf);
    if (!buf)
        return cpu_fail(LNET_PLUGIN_ERR_NOMEM,
                        "cpu buffer_wrap_host: out of memory allocating a buffer header of %zu bytes",
                        sizeof *buf);
    buf->data = host;
    buf->bytes = bytes;
    buf->owned = 0;
    *buffer = buf;
    return LNET_PLUGIN_OK;
}

static void cpu_buffer_free(void *device, void *buffer)
{
    (void)device;
    cpu_buffer *buf = buffer;
    if (!buf)
        return;
    if (buf->owned)
        free(buf->data);
    free(buf);
}

/* offset + bytes <= size, written so that it cannot overflow. */
static int cpu_check_range(const char *what, const cpu_buffer *buf, size_t offset, size_t bytes)
{
    if (offset > buf->bytes || bytes > buf->bytes - offset)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID,
                        "cpu %s: range of %zu bytes at offset %zu exceeds the buffer's %zu bytes",
                        what, bytes, offset, buf->bytes);
    return LNET_PLUGIN_OK;
}

static int cpu_buffer_write(void *device, void *buffer, size_t offset, const void *src,
                            size_t bytes)
{
    if (!device || !buffer)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu buffer_write: %s is NULL",
                        !device ? "device" : "buffer");
    cpu_buffer *buf = buffer;
    int st = cpu_check_range("buffer_write", buf, offset, bytes);
    if (st)
        return st;
    if (bytes == 0)
        return LNET_PLUGIN_OK; /* memcpy with NULL pointers is undefined even for 0 bytes */
    if (!src)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu buffer_write: source is NULL for %zu bytes",
                        bytes);
    memcpy((char *)buf->data + offset, src, bytes);
    return LNET_PLUGIN_OK;
}

static int cpu_buffer_read(void *device, void *buffer, size_t offset, void *dst, size_t bytes)
{
    if (!device || !buffer)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu buffer_read: %s is NULL",
                        !device ? "device" : "buffer");
    const cpu_buffer *buf = buffer;
    int st = cpu_check_range("buffer_read", buf, offset, bytes);
    if (st)
        return st;
    if (bytes == 0)
        return LNET_PLUGIN_OK;
    if (!dst)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu buffer_read: destination is NULL for %zu bytes",
                        bytes);
    memcpy(dst, (const char *)buf->data + offset, bytes);
    return LNET_PLUGIN_OK;
}

static int cpu_synchronize(void *device)
{
    /* Jobs run to completion inside run_segment: nothing is ever queued. */
    if (!device)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu synchronize: device is NULL");
    return LNET_PLUGIN_OK;
}

/* --------------------------------------------------------- run_segment */

/* `slot` names the call in the message: "run_segment", "run_segment_backward". */
static int cpu_check_buffer(const char *slot, const char *name, const void *buffer, size_t need)
{
    const cpu_buffer *buf = buffer;
    if (!buf)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu %s: buffer %s is NULL", slot, name);
    if (buf->bytes < need)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID,
                        "cpu %s: buffer %s holds %zu bytes but the job's shape needs %zu", slot,
                        name, buf->bytes, need);
    if (!buf->data)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu %s: buffer %s has no memory", slot, name);
    return LNET_PLUGIN_OK;
}

/* The SDK's checks of the job's fields and windows, the buffer sizes they
 * imply in q_bytes, kv_bytes, lse_bytes, and q, k, v, lse. The SDK's
 * message starts "cpu run_segment: "; for another slot that is renamed. */
static int cpu_check_level(const char *slot, const lnet_segment_job *job, size_t *q_bytes,
                           size_t *kv_bytes, size_t *lse_bytes)
{
    lnet_plugin_window win;
    char msg[512];
    int st = lnet_plugin_job_check(job, "cpu", &win, q_bytes, kv_bytes, lse_bytes, msg,
                                   sizeof msg);
    if (st) {
        const char *prefix = "cpu run_segment: ";
        const char *rest = strncmp(msg, prefix, strlen(prefix)) == 0 ? msg + strlen(prefix) : msg;
        return cpu_fail(st, "cpu %s: %s", slot, rest);
    }
    if ((st = cpu_check_buffer(slot, "q", job->q, *q_bytes)) ||
        (st = cpu_check_buffer(slot, "k", job->k, *kv_bytes)) ||
        (st = cpu_check_buffer(slot, "v", job->v, *kv_bytes)) ||
        (st = cpu_check_buffer(slot, "lse", job->lse, *lse_bytes)))
        return st;
    return LNET_PLUGIN_OK;
}

static int cpu_check_job(const lnet_segment_job *job)
{
    size_t q_bytes, kv_bytes, lse_bytes;
    int st = cpu_check_level("run_segment", job, &q_bytes, &kv_bytes, &lse_bytes);
    if (!st)
        st = cpu_check_buffer("run_segment", "out", job->out, q_bytes);
    return st;
}

/* The kernel a job names (NULL or "": the default), or -1 with the
 * message. */
static int cpu_kernel_index(const char *slot, const char *kernel)
{
    if (!kernel || !kernel[0])
        return 0;
    for (size_t i = 0; i < CPU_N_KERNELS; i++)
        if (strcmp(kernel, cpu_kernels[i].name) == 0)
            return (int)i;
    char list[128];
    cpu_kernel_list(list, sizeof list);
    cpu_fail(LNET_PLUGIN_ERR_UNSUPPORTED, "cpu %s: unknown kernel '%.200s' (available: %s)", slot,
             kernel, list);
    return -1;
}

static int cpu_run_segment(void *device, const lnet_segment_job *job)
{
    if (!device)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu run_segment: device is NULL");
    if (!job)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu run_segment: job is NULL");
    int st = cpu_check_job(job);
    if (st)
        return st;

    const int kernel = cpu_kernel_index("run_segment", job->kernel);
    if (kernel < 0)
        return LNET_PLUGIN_ERR_UNSUPPORTED;
    return cpu_kernels[kernel].run(device, job, ((const cpu_buffer *)job->q)->data,
               ((const cpu_buffer *)job->k)->data, ((const cpu_buffer *)job->v)->data,
               ((cpu_buffer *)job->out)->data, ((cpu_buffer *)job->lse)->data);
}

/* One level of the backward pass (lnet_segment_backward_job): the level's
 * job checked as run_segment checks it (but `init`, which the backward
 * does not use, and `out`, which it does not read), then dout, delta, dq,
 * dk, dv. */
static int cpu_run_segment_backward(void *device, const lnet_segment_backward_job *job)
{
    static const char slot[] = "run_segment_backward";
    if (!device)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu %s: device is NULL", slot);
    if (!job)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu %s: job is NULL", slot);
    const size_t min_size = offsetof(lnet_segment_backward_job, dv) + sizeof(void *);
    if (job->size < min_size)
        return cpu_fail(LNET_PLUGIN_ERR_INVALID,
                        "cpu %s: job size %zu is smaller than the %zu bytes of ABI %u", slot,
                        job->size, min_size, LNET_PLUGIN_ABI_VERSION);
    lnet_segment_job level = job->level;
    level.init = 0;
    size_t q_bytes, kv_bytes, lse_bytes;
    int st = cpu_check_level(slot, &level, &q_bytes, &kv_bytes, &lse_bytes);
    if (st || (st = cpu_check_buffer(slot, "dout", job->dout, q_bytes)) ||
        (st = cpu_check_buffer(slot, "delta", job->delta, lse_bytes)) ||
        (st = cpu_check_buffer(slot, "dq", job->dq, q_bytes)) ||
        (st = cpu_check_buffer(slot, "dk", job->dk, kv_bytes)) ||
        (st = cpu_check_buffer(slot, "dv", job->dv, kv_bytes)))
        return st;
    const int kernel = cpu_kernel_index(slot, level.kernel);
    if (kernel < 0)
        return LNET_PLUGIN_ERR_UNSUPPORTED;
#define CPU_DATA(p) ((cpu_buffer *)(p))->data
    const cpu_backward_buffers buf = {
        .q = CPU_DATA(level.q), .k = CPU_DATA(level.k), .v = CPU_DATA(level.v),
        .lse = CPU_DATA(level.lse), .dout = CPU_DATA(job->dout), .delta = CPU_DATA(job->delta),
        .dq = CPU_DATA(job->dq), .dk = CPU_DATA(job->dk), .dv = CPU_DATA(job->dv),
    };
#undef CPU_DATA
    return cpu_kernels[kernel].backward(device, &level, &buf);
}

/* Whether a job could run here: float32 and a kernel this backend has
 * (every shape, window and option is fine: both kernels take them all). */
static int cpu_supports(void *device, const lnet_segment_job *job)
{
    (void)device;
    if (!job) {
        cpu_fail(LNET_PLUGIN_ERR_INVALID, "cpu supports: job is NULL");
        return 0;
    }
    if (LNET_PLUGIN_JOB_DTYPE(job) != LNET_PLUGIN_DTYPE_F32) {
        cpu_fail(LNET_PLUGIN_ERR_UNSUPPORTED, "%s", lnet_plugin_dtype_unsupported(job));
        return 0;
    }
    int known = !job->kernel || !job->kernel[0];
    for (size_t i = 0; !known && i < CPU_N_KERNELS; i++)
        known = strcmp(job->kernel, cpu_kernels[i].name) == 0;
    if (!known) {
        char list[128];
        cpu_kernel_list(list, sizeof list);
        cpu_fail(LNET_PLUGIN_ERR_UNSUPPORTED, "no kernel '%.200s' (it has: %s)", job->kernel, list);
        return 0;
    }
    return 1;
}

/* -------------------------------------------------------------- entry */

static const lnet_plugin cpu_plugin = {
    .abi_version = LNET_PLUGIN_ABI_VERSION,
    .size = sizeof(lnet_plugin),
    .name = "cpu",
    .description = "host CPU (fast and reference kernels)",
    .probe = cpu_probe,
    .shutdown = cpu_shutdown,
    .describe = cpu_describe,
    .open = cpu_open,
    .close = cpu_close,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_wrap_host = cpu_buffer_wrap_host,
    .buffer_free = cpu_buffer_free,
    .buffer_write = cpu_buffer_write,
    .buffer_read = cpu_buffer_read,
    .run_segment = cpu_run_segment,
    .synchronize = cpu_synchronize,
    .last_error = cpu_last_error,
    .probe_warning = cpu_probe_warning,
    .supports = cpu_supports,
    .run_segment_backward = cpu_run_segment_backward,
};

LNET_PLUGIN_EXPORT const lnet_plugin *lnet_plugin_entry(void);

LNET_PLUGIN_EXPORT const lnet_plugin *lnet_plugin_entry(void)
{
    return &cpu_plugin;
}
