/* A fault-injecting plugin for the scheduler's failover tests: it offers
 * LONGNET_FAULTY_DEVICES (default 2) devices, each a pass-through to the
 * real CPU backend (the module named by LONGNET_FAULTY_INNER), and makes
 * device D fail from its K-th run_segment call on, as LONGNET_FAULTY_FAIL =
 * "D:K[,D:K...]" says — the way a GPU that falls off the bus fails.
 *
 * The way a discrete GPU's buffers fail (test_faults.c):
 * LONGNET_FAULTY_FAIL_ALLOC, _FAIL_WRITE, _FAIL_READ = k fail the k-th
 * buffer_alloc, buffer_write or buffer_read call (counted over all devices
 * of the plugin since the last probe) with LNET_PLUGIN_ERR_NOMEM or
 * LNET_PLUGIN_ERR_DEVICE. With any of them set, or LONGNET_FAULTY_NOWRAP=1,
 * buffer_wrap_host refuses, so that every buffer is allocated, written and
 * read as on a device with memory of its own.
 *
 * Built a second time with FAULTY_PICKY as longnet-picky (backend "picky",
 * an ABI 2 table of full size): a device whose supports() refuses jobs of
 * head dim LONGNET_PICKY_REFUSE_DIM, and whose run_segment, given such a
 * job anyway, returns success without computing: a scheduler that placed
 * work on it regardless would give a silently wrong answer, which the
 * placement test (test_scheduler) would catch. */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "longnet-plugin.h"

#define MAX_DEVICES 8

static void *inner_module;
static const lnet_plugin *inner;
static int n_devices;
static int fail_at[MAX_DEVICES]; /* 0: never */
static _Thread_local char message[512];
static int no_wrap;
static long long refuse_dim; /* picky: the head dim supports() refuses, 0 none */
enum { OP_ALLOC, OP_WRITE, OP_READ, N_OPS };
static const char *const op_names[N_OPS] = {"buffer_alloc", "buffer_write", "buffer_read"};
static int op_fail_at[N_OPS];     /* 0: never */
static atomic_int op_calls[N_OPS]; /* calls so far, over all devices */

typedef struct faulty_device {
    int index;
    int calls;
    void *inner;
} faulty_device;

static int fail(int status, const char *text)
{
    snprintf(message, sizeof message, "%s", text);
    return status;
}

static const char *last_error(void)
{
    return message[0] ? message : (inner ? inner->last_error() : "");
}

static int probe(int *n)
{
    const char *path = getenv("LONGNET_FAULTY_INNER");
    if (!path)
        return fail(LNET_PLUGIN_ERR_DEVICE, "faulty: LONGNET_FAULTY_INNER is not set");
    if (!inner_module) {
        inner_module = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!inner_module)
            return fail(LNET_PLUGIN_ERR_DEVICE, dlerror());
        lnet_plugin_entry_fn entry;
        *(void **)&entry = dlsym(inner_module, LNET_PLUGIN_ENTRY_SYMBOL);
        inner = entry ? entry() : NULL;
        int m = 0;
        if (!inner || inner->probe(&m) != 0 || m < 1)
            return fail(LNET_PLUGIN_ERR_DEVICE, "faulty: the inner plugin has no device");
    }
    const char *nd = getenv("LONGNET_FAULTY_DEVICES");
    n_devices = nd ? atoi(nd) : 2;
    if (n_devices < 1 || n_devices > MAX_DEVICES)
        n_devices = 2;
    memset(fail_at, 0, sizeof fail_at);
    const char *spec = getenv("LONGNET_FAULTY_FAIL");
    for (const char *p = spec; p && *p;) {
        int d, k;
        if (sscanf(p, "%d:%d", &d, &k) == 2 && d >= 0 && d < MAX_DEVICES)
            fail_at[d] = k;
        p = strchr(p, ',');
        p = p ? p + 1 : NULL;
    }
    static const char *const op_env[N_OPS] = {
        "LONGNET_FAULTY_FAIL_ALLOC", "LONGNET_FAULTY_FAIL_WRITE", "LONGNET_FAULTY_FAIL_READ"};
    const char *rd = getenv("LONGNET_PICKY_REFUSE_DIM");
    refuse_dim = rd ? atoll(rd) : 0;
    const char *nw = getenv("LONGNET_FAULTY_NOWRAP");
    no_wrap = nw && atoi(nw) != 0;
    for (int op = 0; op < N_OPS; op++) {
        const char *v = getenv(op_env[op]);
        op_fail_at[op] = v ? atoi(v) : 0;
        no_wrap |= op_fail_at[op] > 0;
        atomic_store(&op_calls[op], 0);
    }
    *n = n_devices;
    return 0;
}

static void shutdown(void)
{
    if (inner)
        inner->shutdown();
    if (inner_module)
        dlclose(inner_module);
    inner = NULL;
    inner_module = NULL;
}

static int describe(int i, lnet_plugin_device_desc *d)
{
    int rc = inner->describe(0, d);
    snprintf(d->name, sizeof d->name, "faulty pass-through %d", i);
    return rc;
}

static int open_dev(int i, const char *options, void **out)
{
    faulty_device *f = calloc(1, sizeof *f);
    if (!f)
        return fail(LNET_PLUGIN_ERR_NOMEM, "faulty: out of memory");
    int rc = inner->open(0, options, &f->inner);
    if (rc) {
        free(f);
        return rc;
    }
    f->index = i;
    *out = f;
    return 0;
}

static void close_dev(void *d)
{
    faulty_device *f = d;
    inner->close(f->inner);
    free(f);
}

#define INNER(d) (((faulty_device *)(d))->inner)

/* 1 when this call of `op` is the one to fail (the message is set). */
static int inject(void *d, int op)
{
    message[0] = '\0';
    int call = atomic_fetch_add(&op_calls[op], 1) + 1;
    if (op_fail_at[op] <= 0 || call != op_fail_at[op])
        return 0;
    char text[128];
    snprintf(text, sizeof text, "faulty:%d: injected %s failure on call %d",
             ((faulty_device *)d)->index, op_names[op], call);
    fail(0, text);
    return 1;
}

static int alloc(void *d, size_t n, void **b)
{
    if (inject(d, OP_ALLOC))
        return LNET_PLUGIN_ERR_NOMEM;
    return inner->buffer_alloc(INNER(d), n, b);
}
static int wrap(void *d, void *h, size_t n, void **b)
{
    if (no_wrap)
        return fail(LNET_PLUGIN_ERR_UNSUPPORTED, "faulty: host memory is not wrapped");
    return inner->buffer_wrap_host(INNER(d), h, n, b);
}
static void release(void *d, void *b) { inner->buffer_free(INNER(d), b); }
static int put(void *d, void *b, size_t o, const void *s, size_t n)
{
    if (inject(d, OP_WRITE))
        return LNET_PLUGIN_ERR_DEVICE;
    return inner->buffer_write(INNER(d), b, o, s, n);
}
static int get(void *d, void *b, size_t o, void *s, size_t n)
{
    if (inject(d, OP_READ))
        return LNET_PLUGIN_ERR_DEVICE;
    return inner->buffer_read(INNER(d), b, o, s, n);
}
static int sync_dev(void *d) { return inner->synchronize(INNER(d)); }

#ifdef FAULTY_PICKY
static int refused(const lnet_segment_job *j)
{
    return refuse_dim && j->dim == refuse_dim;
}

static int supports(void *d, const lnet_segment_job *j)
{
    if (refused(j)) {
        snprintf(message, sizeof message,
                 "head dim %lld (refused on purpose: LONGNET_PICKY_REFUSE_DIM)", (long long)j->dim);
        return 0;
    }
    message[0] = '\0';
    return inner->supports ? inner->supports(INNER(d), j) : 1;
}
#endif

static int run(void *d, const lnet_segment_job *j)
{
    faulty_device *f = d;
    message[0] = '\0';
#ifdef FAULTY_PICKY
    if (refused(j))
        return LNET_PLUGIN_OK; /* "succeeds" without computing: a wrong answer */
#endif
    f->calls++;
    if (fail_at[f->index] && f->calls >= fail_at[f->index]) {
        char text[128];
        snprintf(text, sizeof text, "faulty:%d: injected failure on call %d", f->index, f->calls);
        return fail(LNET_PLUGIN_ERR_DEVICE, text);
    }
    return inner->run_segment(f->inner, j);
}

#ifndef FAULTY_PICKY
/* Injects on backward jobs as on forward ones: the same count of calls. */
static int run_backward(void *d, const lnet_segment_backward_job *j)
{
    faulty_device *f = d;
    message[0] = '\0';
    f->calls++;
    if (fail_at[f->index] && f->calls >= fail_at[f->index]) {
        char text[128];
        snprintf(text, sizeof text, "faulty:%d: injected failure on call %d", f->index, f->calls);
        return fail(LNET_PLUGIN_ERR_DEVICE, text);
    }
    if (!inner->run_segment_backward)
        return fail(LNET_PLUGIN_ERR_UNSUPPORTED, "faulty: the inner plugin has no backward");
    return inner->run_segment_backward(f->inner, j);
}
#endif

static const lnet_plugin table = {
    .abi_version = LNET_PLUGIN_ABI_VERSION,
#ifdef FAULTY_PICKY
    .size = sizeof(lnet_plugin),
    .name = "picky",
    .description = "pass-through to the CPU backend that refuses some jobs (tests only)",
    .supports = supports,
#else
    /* A table shorter than this SDK's, ending at the backward slot (no
     * get_proc_address, no take_warning): such a plugin must still load,
     * its missing slots read as NULL (test_scheduler uses this one). */
    .size = offsetof(lnet_plugin, get_proc_address),
    .name = "faulty",
    .description = "fault-injecting pass-through to the CPU backend (tests only)",
#endif
    .probe = probe,
    .shutdown = shutdown,
    .describe = describe,
    .open = open_dev,
    .close = close_dev,
    .buffer_alloc = alloc,
    .buffer_wrap_host = wrap,
    .buffer_free = release,
    .buffer_write = put,
    .buffer_read = get,
    .run_segment = run,
#ifndef FAULTY_PICKY
    .run_segment_backward = run_backward, /* picky has none: grad must refuse it */
#endif
    .synchronize = sync_dev,
    .last_error = last_error,
};

LNET_PLUGIN_EXPORT const lnet_plugin *lnet_plugin_entry(void);
const lnet_plugin *lnet_plugin_entry(void)
{
    return &table;
}
