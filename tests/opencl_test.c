/* opencl_test.c — see opencl_test.h. Test code: it may print. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "opencl_test.h"

int scratch_dir_make(const char *name, char *dir, size_t len)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, len, "%s/%s.XXXXXX", tmp && tmp[0] ? tmp : "/tmp", name);
    if (!mkdtemp(dir)) {
        printf("FAIL: mkdtemp %s\n", dir);
        return -1;
    }
    return 0;
}

void scratch_dir_remove(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            scratch_dir_remove(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

int opencl_devices(lnet_context *ctx, int max, int *have_gemm)
{
    int n = 0;
    *have_gemm = 0;
    for (; n < max; n++) {
        char spec[32];
        int index;
        snprintf(spec, sizeof spec, "opencl:%d", n);
        if (lnet_context_find_device(ctx, spec, &index) != LNET_OK)
            break;
        lnet_device_info info;
        lnet_context_device(ctx, index, &info);
        printf("%s: %s (%s), kernels %s\n", spec, info.name, info.kind, info.kernels);
        if (n == 0)
            *have_gemm = strstr(info.kernels, "gemm") != NULL;
    }
    return n;
}

int opencl_test_start(const char *name, const char *what, char *cache_dir, size_t len,
                      lnet_context **ctx, int *n_devices, int *have_gemm)
{
    if (scratch_dir_make(name, cache_dir, len))
        return 1;
    setenv("LONGNET_CACHE_DIR", cache_dir, 1);
    *ctx = NULL;
    if (lnet_context_create(NULL, ctx) != LNET_OK) {
        printf("FAIL: lnet_context_create: %s\n", lnet_last_error());
        scratch_dir_remove(cache_dir);
        return 1;
    }
    *n_devices = opencl_devices(*ctx, 16, have_gemm);
    if (*n_devices == 0) {
        lnet_context_free(*ctx);
        *ctx = NULL;
        scratch_dir_remove(cache_dir);
        printf("SKIP: no OpenCL device: %s cannot run\n", what);
        return 77;
    }
    fflush(stdout);
    return 0;
}

int opencl_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed;
}
