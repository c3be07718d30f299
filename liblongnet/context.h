/* context.h — the context's insides, shared by context.c and attention.c. */
#ifndef LNET_CONTEXT_H
#define LNET_CONTEXT_H

#include <pthread.h>

#include "longnet-plugin.h"
#include "longnet.h"
#include "plugin_loader.h"

typedef struct lnet_device {
    const lnet_context *ctx; /* whose log hears the plugin's warnings */
    const lnet_plugin *plugin;
    int backend_index;
    lnet_plugin_device_desc desc;
    void *handle;          /* opened on first use, closed with the context */
    char options[128];     /* the device options the handle was opened with */
    pthread_mutex_t lock;  /* the plugin ABI allows one thread per device */
} lnet_device;

/* A measured weight: a device's rows per second on one configuration. */
typedef struct lnet_calibration {
    int device;
    uint64_t key;
    double rows_per_second;
} lnet_calibration;

struct lnet_context {
    lnet_log_fn log;
    void *log_user;
    lnet_plugin_list plugins;
    /* Devices, found lazily: a backend is probed (which may load a whole
     * runtime, an OpenCL platform's ICD drivers with their signal handlers)
     * only when one of its devices is asked for, by name or by enumerating
     * them all. devices[] lists them in the order their backends were
     * probed; the lnet_device structs live in per-plugin blocks that never
     * move, so a pointer from lnet_context_dev stays valid for the context's
     * life while devices[] grows. dev_lock guards all of this (and makes the
     * const accessors of longnet.h safe to call from several threads). */
    pthread_mutex_t dev_lock;
    lnet_device **devices;
    int n_devices, cap_devices;
    lnet_device **blocks;  /* per plugin record: its devices, once described */
    int *block_len;        /* per plugin record: how many */
    int all_probed;
    pthread_mutex_t cal_lock;
    lnet_calibration *cal;
    int n_cal, cap_cal;
};

/* Device i, 0 <= i < a count this context has returned (the devices found
 * so far never change index). */
lnet_device *lnet_context_dev(const lnet_context *ctx, int i);

/* Opens device i if needed, with `options` (NULL or "" for none; a handle
 * open with other options is closed and opened again), and locks it for
 * the calling thread. Bad options give LNET_ERR_INVALID with the plugin's
 * message. */
lnet_status lnet_device_acquire(lnet_context *ctx, int i, const char *options, lnet_device **out);
void lnet_device_release(lnet_device *dev);

/* Turns a failed plugin call into an lnet_status whose message names the
 * device, the call and the plugin's message. */
lnet_status lnet_device_fail(const lnet_device *dev, int status, const char *what);

#endif /* LNET_CONTEXT_H */
