/* fuzz_npy.c — libFuzzer target for the .npy reader (lnet_npy_load).
 *
 * The reader takes a path, not bytes, and the public API is kept as it is:
 * each input is written to an anonymous memory file (memfd) and loaded
 * through /proc/self/fd/N, so no disk is touched and nothing is left behind.
 * A successful load must give a tensor whose element count matches its
 * shape and whose data can be read in full (ASan checks the reads). */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "longnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_npy", MFD_CLOEXEC);
    if (fd < 0) {
        perror("fuzz_npy: memfd_create");
        abort();
    }
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) {
            perror("fuzz_npy: write");
            abort();
        }
        done += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    lnet_tensor *t = (lnet_tensor *)1;
    lnet_status st = lnet_npy_load(path, &t);
    if (st == LNET_OK) {
        size_t n = 1;
        for (int d = 0; d < lnet_tensor_ndim(t); d++)
            n *= (size_t)lnet_tensor_dim(t, d);
        if (n != lnet_tensor_numel(t) || n * 4 > size)
            abort(); /* a tensor larger than the file could never be filled */
        volatile float sum = 0;
        const float *p = lnet_tensor_cdata(t);
        for (size_t i = 0; i < n; i++)
            sum += p[i];
        (void)sum;
        lnet_tensor_free(t);
    } else {
        /* A refusal leaves no tensor and always says why. */
        if (t != NULL || !lnet_last_error()[0])
            abort();
    }
    close(fd);
    return 0;
}
