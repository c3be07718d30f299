/* context.h — the context's insides, shared by context.c and attention.c. */
#ifndef LNET_CONTEXT_H
#define LNET_CONTEXT_H

#include <pthread.h>

#include "longnet-plugin.h"
#include "longnet.h"
#include "plugin_loader.h"

typedef struct lnet_device {
    const lnet_plugin *plugin;
    int backend_index;
    lnet_plugin_device_desc desc;
    void *handle;          /* opened on first use, closed with the context */
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
    lnet_device *devices;
    int n_devices;
    pthread_mutex_t cal_lock;
    lnet_calibration *cal;
    int n_cal, cap_cal;
};

/* Opens device i if needed and locks it for the calling thread. */
lnet_status lnet_device_acquire(lnet_context *ctx, int i, lnet_device **out);
void lnet_device_release(lnet_device *dev);

/* Turns a failed plugin call into an lnet_status whose message names the
 * device, the call and the plugin's message. */
lnet_status lnet_device_fail(const lnet_device *dev, int status, const char *what);

#endif /* LNET_CONTEXT_H */
