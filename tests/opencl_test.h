/* opencl_test.h — what the OpenCL tests share: a scratch directory for the
 * program cache of one run, and the OpenCL devices of a context. */
#ifndef LNET_TEST_OPENCL_H
#define LNET_TEST_OPENCL_H

#include <stddef.h>

#include "longnet.h"

/* A new directory $TMPDIR/NAME.XXXXXX (default /tmp) into dir; 0, or -1
 * after printing a FAIL line. */
int scratch_dir_make(const char *name, char *dir, size_t len);
/* Removes dir and everything below it. */
void scratch_dir_remove(const char *dir);

/* How many of opencl:0, opencl:1, ... (up to max) the context has, each
 * printed with its name and kernels; *have_gemm says whether opencl:0 has
 * the gemm kernel (this build has CLBlast). */
int opencl_devices(lnet_context *ctx, int max, int *have_gemm);

#endif /* LNET_TEST_OPENCL_H */
