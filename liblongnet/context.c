/* context.c — a context: the loaded plugins, their devices, and the devices
 * opened so far. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
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
    pthread_mutex_init(&ctx->cal_lock, NULL);
    lnet_status st = lnet_plugins_load(&ctx->plugins, o.plugin_path, o.no_default_paths, o.log,
                                       o.log_user);
    if (st) {
        pthread_mutex_destroy(&ctx->cal_lock);
        free(ctx);
        return st;
    }
    int total = 0;
    for (int i = 0; i < ctx->plugins.count; i++)
        if (ctx->plugins.items[i].table)
            total += ctx->plugins.items[i].n_devices;
    ctx->devices = calloc(total ? (size_t)total : 1, sizeof *ctx->devices);
    if (!ctx->devices) {
        lnet_plugins_release(&ctx->plugins);
        pthread_mutex_destroy(&ctx->cal_lock);
        free(ctx);
        return lnet_fail(LNET_ERR_NOMEM, "out of memory listing %d devices", total);
    }
    /* describe, like probe, open and close, is called by one thread at a
     * time (the SDK's promise), though contexts are made by many. */
    lnet_plugins_lock();
    for (int i = 0; i < ctx->plugins.count; i++) {
        lnet_plugin_record *rec = &ctx->plugins.items[i];
        if (!rec->table)
            continue;
        int kept = 0;
        for (int d = 0; d < rec->n_devices; d++) {
            lnet_device *dev = &ctx->devices[ctx->n_devices];
            memset(dev, 0, sizeof *dev);
            dev->plugin = rec->table;
            dev->backend_index = d;
            if (rec->table->describe(d, &dev->desc) != 0) {
                /* A device that cannot describe itself is not offered. */
                if (ctx->log) {
                    char msg[768];
                    const char *e = rec->table->last_error();
                    snprintf(msg, sizeof msg, "device %s:%d skipped: %s", rec->table->name, d,
                             e ? e : "describe failed");
                    ctx->log(LNET_LOG_WARNING, msg, ctx->log_user);
                }
                continue;
            }
            dev->desc.name[sizeof dev->desc.name - 1] = '\0';
            dev->desc.kind[sizeof dev->desc.kind - 1] = '\0';
            dev->desc.kernels[sizeof dev->desc.kernels - 1] = '\0';
            /* Only the flags this ABI revision defines count. */
            dev->desc.caps &= LNET_PLUGIN_CAP_WINDOWS;
            pthread_mutex_init(&dev->lock, NULL);
            ctx->n_devices++;
            kept++;
        }
        rec->n_devices = kept;
    }
    lnet_plugins_unlock();
    *out = ctx;
    return LNET_OK;
}

void lnet_context_free(lnet_context *ctx)
{
    if (!ctx)
        return;
    lnet_plugins_lock(); /* close: one thread at a time (the SDK's promise) */
    for (int i = 0; i < ctx->n_devices; i++) {
        lnet_device *dev = &ctx->devices[i];
        if (dev->handle)
            dev->plugin->close(dev->handle);
        pthread_mutex_destroy(&dev->lock);
    }
    lnet_plugins_unlock();
    free(ctx->devices);
    lnet_plugins_release(&ctx->plugins);
    free(ctx->cal);
    pthread_mutex_destroy(&ctx->cal_lock);
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
    const lnet_plugin_record *rec = &ctx->plugins.items[i];
    out->path = rec->path;
    out->name = rec->table ? rec->table->name : NULL;
    out->description = rec->table && rec->table->description ? rec->table->description : "";
    out->abi_version = rec->abi_version;
    out->loaded = rec->table != NULL;
    out->reason = rec->table ? "" : rec->reason;
    out->devices = rec->table ? rec->n_devices : 0;
    return LNET_OK;
}

int lnet_context_device_count(const lnet_context *ctx)
{
    return ctx ? ctx->n_devices : 0;
}

lnet_status lnet_context_device(const lnet_context *ctx, int i, lnet_device_info *out)
{
    if (!ctx || !out)
        return lnet_fail(LNET_ERR_INVALID, "context or output is NULL");
    if (i < 0 || i >= ctx->n_devices)
        return lnet_fail(LNET_ERR_INVALID, "device index %d is outside 0..%d", i,
                         ctx->n_devices - 1);
    const lnet_device *dev = &ctx->devices[i];
    out->backend = dev->plugin->name;
    out->index = dev->backend_index;
    out->name = dev->desc.name;
    out->kind = dev->desc.kind;
    out->memory_bytes = dev->desc.memory_bytes;
    out->compute_units = dev->desc.compute_units;
    out->kernels = dev->desc.kernels;
    return LNET_OK;
}

/* Appends "cpu:0, opencl:0, ..." to buf, for messages. */
static void list_devices(const lnet_context *ctx, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < ctx->n_devices && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s:%d", i ? ", " : "",
                                 ctx->devices[i].plugin->name, ctx->devices[i].backend_index);
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
    int backend_devices = 0, backend_known = 0;
    for (int i = 0; i < ctx->n_devices; i++) {
        const lnet_device *dev = &ctx->devices[i];
        if (strlen(dev->plugin->name) != name_len || strncmp(dev->plugin->name, spec, name_len))
            continue;
        backend_devices++;
        if (dev->backend_index == want) {
            *index = i;
            return LNET_OK;
        }
    }
    for (int i = 0; i < ctx->plugins.count; i++) {
        const lnet_plugin_record *rec = &ctx->plugins.items[i];
        if (rec->table && strlen(rec->table->name) == name_len &&
            !strncmp(rec->table->name, spec, name_len))
            backend_known = 1;
    }
    list_devices(ctx, avail, sizeof avail);
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

lnet_status lnet_device_acquire(lnet_context *ctx, int i, lnet_device **out)
{
    lnet_device *dev = &ctx->devices[i];
    pthread_mutex_lock(&dev->lock);
    if (!dev->handle) {
        /* open: one thread at a time across contexts (the SDK's promise);
         * the registry lock is taken after the device's, never before. */
        lnet_plugins_lock();
        int rc = dev->plugin->open(dev->backend_index, NULL, &dev->handle);
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
    pthread_mutex_unlock(&dev->lock);
}
