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

/* A test's start: a fresh program cache (cache_dir, made and set as
 * LONGNET_CACHE_DIR), a context (it keeps the OpenCL module loaded with the
 * devices of its probe) and the OpenCL devices, printed. Returns 0 to go
 * on, or the exit status: 1 on a failure, 77 (after printing "SKIP: no
 * OpenCL device: <what> cannot run") when there is no device; then nothing
 * is left behind. */
int opencl_test_start(const char *name, const char *what, char *cache_dir, size_t len,
                      lnet_context **ctx, int *n_devices, int *have_gemm);

/* Runs the suite in this process (an OpenCL runtime does not survive
 * fork()) and frees it; returns the number of failed tests. */
struct Suite;
int opencl_run_suite(struct Suite *s);

#endif /* LNET_TEST_OPENCL_H */
