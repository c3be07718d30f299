/* ocl_device.h — the device slots of the plugin table (ocl_device.c). */
#ifndef LNET_OCL_DEVICE_H
#define LNET_OCL_DEVICE_H

#include "longnet-plugin.h"

int ocl_probe(int *n_devices);
void ocl_shutdown(void);
int ocl_describe(int index, lnet_plugin_device_desc *desc);
int ocl_open(int index, const char *options, void **device);
void ocl_close(void *device);

#endif /* LNET_OCL_DEVICE_H */
