#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* ocl_cache.c — the on-disk cache of program binaries.
 *
 * One file per key, <dir>/opencl-<64 hex digits of the key>.bin:
 *
 *   offset  size  field
 *        0     8  magic "LNETCLB\0"
 *        8     4  format version (OCL_CACHE_VERSION), little endian
 *       12     4  zero
 *       16    32  the key (SHA-256 of sources, options, device, driver)
 *       48     8  payload length, little endian
 *       56    32  SHA-256 of the payload
 *       88     -  payload: the CL_PROGRAM_BINARIES of the device
 *
 * The key inside the file guards against a file copied or renamed under
 * another key; the length and checksum against truncation and corruption.
 * Any mismatch reads as "no entry": the caller builds afresh and stores a
 * new file, which replaces the bad one atomically (temporary file, rename).
 * Nothing here fails loudly: a cache that cannot be read or written only
 * costs a build. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ocl_backend.h"
#include "ocl_sha256.h"

#define OCL_CACHE_VERSION 1u
#define OCL_CACHE_HEADER 88
/* No binary is this large; a length field past it is corruption. */
#define OCL_CACHE_MAX_PAYLOAD ((uint64_t)1 << 30)

static const unsigned char ocl_cache_magic[8] = {'L', 'N', 'E', 'T', 'C', 'L', 'B', 0};

/* mkdir -p with mode 0700 for the parts it creates. */
static int ocl_mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0700);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -1;
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return -1;
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

int ocl_cache_dir(char *buf, size_t len)
{
    const char *dir = getenv("LONGNET_CACHE_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int n;
    if (dir && dir[0])
        n = snprintf(buf, len, "%s", dir);
    else if (xdg && xdg[0] == '/') /* the XDG spec: a relative value is ignored */
        n = snprintf(buf, len, "%s/longnet", xdg);
    else if (home && home[0])
        n = snprintf(buf, len, "%s/.cache/longnet", home);
    else
        return -1;
    if (n < 0 || (size_t)n >= len)
        return -1;
    return ocl_mkdirs(buf);
}

static int ocl_cache_path(const unsigned char key[32], char *buf, size_t len)
{
    char dir[4096];
    if (ocl_cache_dir(dir, sizeof dir))
        return -1;
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    int n = snprintf(buf, len, "%s/opencl-%s.bin", dir, hex);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int read_all(int fd, unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = read(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_all(int fd, const unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int ocl_cache_load(const unsigned char key[32], unsigned char **data, size_t *len)
{
    char path[4200];
    if (ocl_cache_path(key, path, sizeof path))
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    unsigned char h[OCL_CACHE_HEADER];
    unsigned char *payload = NULL;
    struct stat st;
    int ok = fstat(fd, &st) == 0 && read_all(fd, h, sizeof h) == 0 &&
             memcmp(h, ocl_cache_magic, 8) == 0 && get_le(h + 8, 4) == OCL_CACHE_VERSION &&
             memcmp(h + 16, key, 32) == 0;
    uint64_t n = ok ? get_le(h + 48, 8) : 0;
    /* The file must be exactly header + payload: no truncation, no tail. */
    ok = ok && n > 0 && n <= OCL_CACHE_MAX_PAYLOAD &&
         (uint64_t)st.st_size == OCL_CACHE_HEADER + n;
    if (ok) {
        payload = malloc((size_t)n);
        ok = payload && read_all(fd, payload, (size_t)n) == 0;
    }
    if (ok) {
        unsigned char sum[32];
        ocl_sha256(payload, (size_t)n, sum);
        ok = memcmp(sum, h + 56, 32) == 0;
    }
    close(fd);
    if (!ok) {
        free(payload);
        return -1;
    }
    *data = payload;
    *len = (size_t)n;
    return 0;
}

void ocl_cache_store(const unsigned char key[32], const unsigned char *data, size_t len)
{
    char path[4200], tmp[4300];
    if (len == 0 || (uint64_t)len > OCL_CACHE_MAX_PAYLOAD || ocl_cache_path(key, path, sizeof path))
        return;
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return;
    int fd = mkstemp(tmp); /* mode 0600 */
    if (fd < 0)
        return;
    unsigned char h[OCL_CACHE_HEADER];
    memset(h, 0, sizeof h);
    memcpy(h, ocl_cache_magic, 8);
    put_le(h + 8, OCL_CACHE_VERSION, 4);
    memcpy(h + 16, key, 32);
    put_le(h + 48, (uint64_t)len, 8);
    ocl_sha256(data, len, h + 56);
    int ok = write_all(fd, h, sizeof h) == 0 && write_all(fd, data, len) == 0;
    /* Flushed before the rename, so that a crash never leaves a renamed but
     * empty file (the checksum would catch it, but the entry would be lost). */
    ok = ok && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0)
        unlink(tmp);
}
