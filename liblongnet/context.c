/* context.c — a context: the loaded plugins, their devices, and the devices
 * opened so far. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "internal.h"

lnet_status lnet_context_create(const lnet_context_options *opts, lnet_context **out)
{
    lnet_context_options o = {0};
    if (!out)
        return lnet_fail(LNET_ERR_INVALID, "context output pointer is NULL");
    *out = NULL;
    if (opts) {
        if (opts->size == 0 || opts->size > sizeof o)
            return lnet_fail(LNET_ERR_INVALID,
                             "lnet_context_options.size is %zu; set it to sizeof(lnet_context_options)",
                             opts->size);
        memcpy(&o, opts, opts->size);
    }
    lnet_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return lnet_fail(LNET_ERR_NOMEM, "out of memory allocating a context");
    ctx->log = o.log;
    ctx->log_user = o.log_user;
    lnet_status st = lnet_plugins_load(&ctx->plugins, o.plugin_path, o.no_default_paths, o.log,
                                       o.log_user);
    if (st) {
        free(ctx);
        return st;
    }
    /* The plugins are found and their tables checked, but none is probed:
     * that waits until one of its devices is asked for. */
    const size_t n = ctx->plugins.count ? (size_t)ctx->plugins.count : 1;
    ctx->blocks = calloc(n, sizeof *ctx->blocks);
    ctx->block_len = calloc(n, sizeof *ctx->block_len);
    if (!ctx->blocks || !ctx->block_len) {
        free(ctx->blocks);
        free(ctx->block_len);
        lnet_plugins_release(&ctx->plugins);
        free(ctx);
        return lnet_fail(LNET_ERR_NOMEM, "out of memory listing %zu plugins", n);
    }
    pthread_mutex_init(&ctx->dev_lock, NULL);
    pthread_mutex_init(&ctx->cal_lock, NULL);
    *out = ctx;
    return LNET_OK;
}

static void log_warning(const lnet_context *ctx, const char *msg)
{
    if (ctx->log)
        ctx->log(LNET_LOG_WARNING, msg, ctx->log_user);
}

/* Describes the devices of plugin record r (just probed, serving) and
 * appends them to the context's list. Called with dev_lock held. */
static void describe_plugin(lnet_context *ctx, int r)
{
    lnet_plugin_record *rec = &ctx->plugins.items[r];
    if (!rec->table || ctx->blocks[r] || rec->n_devices <= 0)
        return;
    const int n = rec->n_devices;
    lnet_device *block = calloc((size_t)n, sizeof *block);
    lnet_device **grown = NULL;
    if (block && ctx->n_devices > ctx->cap_devices - n) {
        int cap = ctx->cap_devices ? ctx->cap_devices : 8;
        while (cap - ctx->n_devices < n && cap <= INT_MAX / 2)
            cap *= 2;
        if (cap - ctx->n_devices >= n)
            grown = realloc(ctx->devices, (size_t)cap * sizeof *grown);
        if (grown) {
            ctx->devices = grown;
            ctx->cap_devices = cap;
        }
    }
    if (!block || ctx->n_devices > ctx->cap_devices - n) {
        free(block);
        char msg[768];
        snprintf(msg, sizeof msg, "plugin %s: out of memory listing its %d device(s); left out",
                 rec->path, n);
        log_warning(ctx, msg);
        rec->n_devices = 0;
        return;
    }
    /* describe, like probe, open and close, is called by one thread at a
     * time (the SDK's promise), though contexts are used by many. */
    int kept = 0;
    lnet_plugins_lock();
    for (int d = 0; d < n; d++) {
        lnet_device *dev = &block[kept];
        dev->ctx = ctx;
        dev->plugin = rec->table;
        dev->backend_index = d;
        dev->desc.size = sizeof dev->desc;
        if (rec->table->describe(d, &dev->desc) != 0) {
            /* A device that cannot describe itself is not offered. */
            char msg[768];
            const char *e = rec->table->last_error();
            snprintf(msg, sizeof msg, "device %s:%d skipped: %s", rec->table->name, d,
                     e ? e : "describe failed");
            log_warning(ctx, msg);
            memset(dev, 0, sizeof *dev);
            continue;
        }
        dev->desc.name[sizeof dev->desc.name - 1] = '\0';
        dev->desc.kind[sizeof dev->desc.kind - 1] = '\0';
        dev->desc.kernels[sizeof dev->desc.kernels - 1] = '\0';
        /* Only the flags this ABI revision defines count. */
        dev->desc.caps &= LNET_PLUGIN_CAP_WINDOWS;
        pthread_mutex_init(&dev->lock, NULL);
        ctx->devices[ctx->n_devices++] = dev;
        kept++;
    }
    lnet_plugins_unlock();
    ctx->blocks[r] = block;
    ctx->block_len[r] = kept;
    rec->n_devices = kept;
}

/* Probes the backend `name` (len characters), if not yet, and lists its
 * devices. Called with dev_lock held. */
static void probe_backend(lnet_context *ctx, const char *name, size_t len)
{
    lnet_plugins_probe_backend(&ctx->plugins, name, len, ctx->log, ctx->log_user);
    for (int r = 0; r < ctx->plugins.count; r++) {
        const lnet_plugin_record *rec = &ctx->plugins.items[r];
        if (rec->table && !ctx->blocks[r] && strlen(rec->table->name) == len &&
            strncmp(rec->table->name, name, len) == 0)
            describe_plugin(ctx, r);
    }
}

/* Every backend, in search order. Called with dev_lock held. */
static void probe_all(lnet_context *ctx)
{
    if (ctx->all_probed)
        return;
    for (int r = 0; r < ctx->plugins.count; r++) {
        const char *name = lnet_plugin_record_name(&ctx->plugins.items[r]);
        if (name)
            probe_backend(ctx, name, strlen(name));
    }
    ctx->all_probed = 1;
}

/* The accessors of longnet.h take a const context (they only look), but
 * looking may probe a backend, which fills in the device list: the context
 * is never a const object (lnet_context_create allocates it), and dev_lock
 * serialises the change, so the const is cast away here and only here. */
static lnet_context *probing(const lnet_context *ctx)
{
    return (lnet_context *)ctx;
}

void lnet_context_free(lnet_context *ctx)
{
    if (!ctx)
        return;
    lnet_plugins_lock(); /* close: one thread at a time (the SDK's promise) */
    for (int i = 0; i < ctx->n_devices; i++) {
        lnet_device *dev = ctx->devices[i];
        if (dev->handle)
            dev->plugin->close(dev->handle);
        pthread_mutex_destroy(&dev->lock);
    }
    lnet_plugins_unlock();
    for (int r = 0; r < ctx->plugins.count; r++)
        free(ctx->blocks[r]);
    free(ctx->blocks);
    free(ctx->block_len);
    free(ctx->devices);
    lnet_plugins_release(&ctx->plugins);
    free(ctx->cal);
    pthread_mutex_destroy(&ctx->cal_lock);
    pthread_mutex_destroy(&ctx->dev_lock);
    free(ctx);
}

int lnet_context_plugin_count(const lnet_context *ctx)
{
    return ctx ? ctx->plugins.count : 0;
}

lnet_status lnet_context_plugin(const lnet_context *ctx, int i, lnet_plugin_info *out)
{
    if (!ctx || !out)
        return lnet_fail(LNET_ERR_INVALID, "context or output is NULL");
    if (i < 0 || i >= ctx->plugins.count)
        return lnet_fail(LNET_ERR_INVALID, "plugin index %d is outside 0..%d", i,
                         ctx->plugins.count - 1);
    lnet_context *c = probing(ctx);
    pthread_mutex_lock(&c->dev_lock);
    /* Whether it loaded and how many devices it has are the probe's to
     * say: listing a plugin probes its backend. */
    const char *name = lnet_plugin_record_name(&c->plugins.items[i]);
    if (name)
        probe_backend(c, name, strlen(name));
    const lnet_plugin_record *rec = &c->plugins.items[i];
    out->path = rec->path;
    out->name = rec->table ? rec->table->name : NULL;
    out->description = rec->table && rec->table->description ? rec->table->description : "";
    out->abi_version = rec->abi_version;
    out->loaded = rec->table != NULL;
    out->reason = rec->table ? "" : rec->reason;
    out->devices = rec->table ? rec->n_devices : 0;
    pthread_mutex_unlock(&c->dev_lock);
    return LNET_OK;
}

const char *lnet_context_plugin_choice(const lnet_context *ctx, int i)
{
    if (!ctx || i < 0 || i >= ctx->plugins.count)
        return "";
    lnet_context *c = probing(ctx);
    pthread_mutex_lock(&c->dev_lock);
    const lnet_plugin_record *rec = &c->plugins.items[i];
    const char *name = lnet_plugin_record_name(rec);
    if (name)
        probe_backend(c, name, strlen(name));
    const char *choice = rec->table ? rec->choice : "";
    pthread_mutex_unlock(&c->dev_lock);
    return choice;
}

lnet_status lnet_context_plugin_table(const lnet_context *ctx, const char *backend,
                                      const struct lnet_plugin **table)
{
    if (!ctx || !backend || !table)
        return lnet_fail(LNET_ERR_INVALID, "context, backend name or output is NULL");
    *table = NULL;
    lnet_context *c = probing(ctx);
    pthread_mutex_lock(&c->dev_lock);
    probe_backend(c, backend, strlen(backend));
    for (int i = 0; i < c->plugins.count; i++) {
        const lnet_plugin_record *rec = &c->plugins.items[i];
        if (rec->table && strcmp(rec->table->name, backend) == 0)
            *table = rec->table;
    }
    if (*table) {
        pthread_mutex_unlock(&c->dev_lock);
        return LNET_OK;
    }
    probe_all(c);
    char names[512] = "";
    size_t used = 0;
    for (int i = 0; i < c->plugins.count && used < sizeof names; i++) {
        const lnet_plugin_record *rec = &c->plugins.items[i];
        if (rec->table)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "",
                                     rec->table->name);
    }
    pthread_mutex_unlock(&c->dev_lock);
    return lnet_fail(LNET_ERR_DEVICE, "no plugin serves the backend '%.64s' (loaded: %s)", backend,
                     names[0] ? names : "none");
}

int lnet_context_device_count(const lnet_context *ctx)
{
    if (!ctx)
        return 0;
    lnet_context *c = probing(ctx);
    pthread_mutex_lock(&c->dev_lock);
    probe_all(c); /* the count is of every device: every backend is probed */
    const int n = c->n_devices;
    pthread_mutex_unlock(&c->dev_lock);
    return n;
}

lnet_device *lnet_context_dev(const lnet_context *ctx, int i)
{
    lnet_context *c = probing(ctx);
    pthread_mutex_lock(&c->dev_lock);
    lnet_device *dev = c->devices[i];
    pthread_mutex_unlock(&c->dev_lock);
    return dev;
}

lnet_status lnet_context_device(const lnet_context *ctx, int i, lnet_device_info *out)
{
    if (!ctx || !out)
        return lnet_fail(LNET_ERR_INVALID, "context or output is NULL");
    /* An index names a device found before (lnet_context_find_device, or
     * counting them); only one past those, which may be a device of a
     * backend not probed yet, makes every backend be probed. */
    lnet_context *c = probing(ctx);
    pthread_mutex_lock(&c->dev_lock);
    if (i >= c->n_devices)
        probe_all(c);
    const int n = c->n_devices;
    const lnet_device *dev = i >= 0 && i < n ? c->devices[i] : NULL;
    pthread_mutex_unlock(&c->dev_lock);
    if (!dev)
        return lnet_fail(LNET_ERR_INVALID, "device index %d is outside 0..%d", i, n - 1);
    out->backend = dev->plugin->name;
    out->index = dev->backend_index;
    out->name = dev->desc.name;
    out->kind = dev->desc.kind;
    out->memory_bytes = dev->desc.memory_bytes;
    out->compute_units = dev->desc.compute_units;
    out->kernels = dev->desc.kernels;
    return LNET_OK;
}

/* Appends "cpu:0, opencl:0, ..." to buf, for messages. Called with
 * dev_lock held. */
static void list_devices(const lnet_context *ctx, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < ctx->n_devices && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s:%d", i ? ", " : "",
                                 ctx->devices[i]->plugin->name, ctx->devices[i]->backend_index);
    if (ctx->n_devices == 0)
        snprintf(buf, len, "none");
}

lnet_status lnet_context_find_device(const lnet_context *ctx, const char *spec, int *index)
{
    char avail[512];
    if (!ctx || !index)
        return lnet_fail(LNET_ERR_INVALID, "context or output is NULL");
    if (!spec || !spec[0])
        return lnet_fail(LNET_ERR_INVALID, "device spec is empty");
    const char *colon = strchr(spec, ':');
    size_t name_len = colon ? (size_t)(colon - spec) : strlen(spec);
    long long want = 0;
    if (colon) {
        const char *p = colon + 1;
        char *end = NULL;
        errno = 0;
        if (*p < '0' || *p > '9')
            return lnet_fail(LNET_ERR_INVALID,
                             "device spec '%s': index '%s' is not a non-negative integer", spec, p);
        want = strtoll(p, &end, 10);
        if (*end || errno == ERANGE || want > 1000000)
            return lnet_fail(LNET_ERR_INVALID,
                             "device spec '%s': index '%s' is not a non-negative integer", spec, p);
    }
    lnet_context *c = probing(ctx);
    pthread_mutex_lock(&c->dev_lock);
    /* Only the backend named is probed: `--device cpu` loads no OpenCL
     * runtime (issue 10, 14). */
    probe_backend(c, spec, name_len);
    int backend_devices = 0, backend_known = 0;
    for (int i = 0; i < c->n_devices; i++) {
        const lnet_device *dev = c->devices[i];
        if (strlen(dev->plugin->name) != name_len || strncmp(dev->plugin->name, spec, name_len))
            continue;
        backend_devices++;
        if (dev->backend_index == want) {
            *index = i;
            pthread_mutex_unlock(&c->dev_lock);
            return LNET_OK;
        }
    }
    for (int i = 0; i < c->plugins.count; i++) {
        const lnet_plugin_record *rec = &c->plugins.items[i];
        if (rec->table && strlen(rec->table->name) == name_len &&
            !strncmp(rec->table->name, spec, name_len))
            backend_known = 1;
    }
    /* A miss is an error on its way to the user: the devices that do
     * exist are worth probing the rest for. */
    probe_all(c);
    list_devices(c, avail, sizeof avail);
    pthread_mutex_unlock(&c->dev_lock);
    if (backend_known || backend_devices)
        return lnet_fail(LNET_ERR_DEVICE,
                         "device '%s' does not exist: backend '%.*s' has %d device(s) (available: %s)",
                         spec, (int)name_len, spec, backend_devices, avail);
    return lnet_fail(LNET_ERR_DEVICE, "unknown device '%s': no backend '%.*s' is loaded (available: %s)",
                     spec, (int)name_len, spec, avail);
}

/* Returns the device's plugin message with the device named in front. */
lnet_status lnet_device_fail(const lnet_device *dev, int status, const char *what)
{
    const char *e = dev->plugin->last_error();
    lnet_status st = status < 0 && status >= LNET_ERR_UNSUPPORTED ? (lnet_status)status
                                                                  : LNET_ERR_DEVICE;
    return lnet_fail(st, "%s:%d: %s: %s", dev->plugin->name, dev->backend_index, what,
                     e && e[0] ? e : "failed without a message");
}

lnet_status lnet_device_acquire(lnet_context *ctx, int i, const char *options, lnet_device **out)
{
    lnet_device *dev = lnet_context_dev(ctx, i);
    if (!options)
        options = "";
    pthread_mutex_lock(&dev->lock);
    if (dev->handle && strcmp(dev->options, options) != 0) {
        /* Other options than the handle was opened with: the plugin takes
         * options only in open(), so the device is opened again. */
        lnet_plugins_lock();
        dev->plugin->close(dev->handle);
        lnet_plugins_unlock();
        dev->handle = NULL;
    }
    if (!dev->handle) {
        /* open: one thread at a time across contexts (the SDK's promise);
         * the registry lock is taken after the device's, never before. */
        snprintf(dev->options, sizeof dev->options, "%s", options);
        lnet_plugins_lock();
        int rc = dev->plugin->open(dev->backend_index, options[0] ? options : NULL, &dev->handle);
        lnet_plugins_unlock();
        if (rc != 0 || !dev->handle) {
            dev->handle = NULL;
            lnet_status st = lnet_device_fail(dev, rc ? rc : LNET_ERR_DEVICE, "open");
            pthread_mutex_unlock(&dev->lock);
            return st;
        }
    }
    *out = dev;
    return LNET_OK;
}

void lnet_device_release(lnet_device *dev)
{
    /* What the plugin had to say meanwhile (ABI 2's take_warning) goes to
     * the user as a warning naming the device. */
    const char *w = dev->plugin->take_warning ? dev->plugin->take_warning() : NULL;
    if (w && w[0] && dev->ctx->log) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s:%d: %s", dev->plugin->name, dev->backend_index, w);
        dev->ctx->log(LNET_LOG_WARNING, msg, dev->ctx->log_user);
    }
    pthread_mutex_unlock(&dev->lock);
}
