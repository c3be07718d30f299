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
 * costs a build.
 *
 * Trust: a cached binary is native code that runs in the caller's process,
 * so whoever can write the directory or an entry can run code as the
 * caller (a world-writable LONGNET_CACHE_DIR let another user hand root a
 * modified kernel, header and checksum made to match). The directory is
 * used only when it is owned by the caller (geteuid) and not writable by
 * group or others; an entry only when it is a regular file owned by the
 * caller with mode 0600, opened with O_NOFOLLOW and checked with fstat on
 * the opened descriptor (no window between check and use); everything
 * after the check goes through the directory's descriptor, so a directory
 * swapped after it was checked is never used. Otherwise the program is
 * built from source and nothing is read or written; the reason is left
 * once per process in the plugin's last-error message (the plugin ABI has
 * no log slot). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ocl_common.h"
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

/* Why the cache was not used, said once per process: the first reason
 * waits in ocl_cache_warning until the core takes it (take_warning, ABI 2)
 * and logs it naming the device; it also stays in the calling thread's
 * last-error message. */
static atomic_flag ocl_cache_noticed = ATOMIC_FLAG_INIT;
static char ocl_cache_warning[1200];
static atomic_int ocl_cache_warning_ready;

const char *ocl_take_warning(void)
{
    static _Thread_local char taken[sizeof ocl_cache_warning];
    if (!atomic_exchange(&ocl_cache_warning_ready, 0))
        return NULL;
    snprintf(taken, sizeof taken, "%s", ocl_cache_warning);
    return taken;
}

static void ocl_cache_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ocl_cache_notice(const char *fmt, ...)
{
    if (atomic_flag_test_and_set(&ocl_cache_noticed))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ocl_fail(LNET_PLUGIN_OK, "%s: warning: program cache not used, programs are built "
                             "from source: %s", ocl_module_name, msg);
    snprintf(ocl_cache_warning, sizeof ocl_cache_warning,
             "program cache not used, programs are built from source: %s", msg);
    atomic_store(&ocl_cache_warning_ready, 1);
}

/* The cache directory, opened and checked (see the top of the file): its
 * descriptor, or -1 when there is none or it is not trusted. */
static int ocl_cache_open_dir(void)
{
    char dir[4096];
    if (ocl_cache_dir(dir, sizeof dir))
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    const uid_t me = geteuid();
    if (st.st_uid != me) {
        ocl_cache_notice("the directory %.300s is owned by uid %lu, not by this process's user "
                         "(uid %lu)",
                         dir, (unsigned long)st.st_uid, (unsigned long)me);
        close(fd);
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        ocl_cache_notice("the directory %.300s is writable by %s (mode %03o); it must be "
                         "writable by its owner only",
                         dir, (st.st_mode & S_IWOTH) ? "others" : "its group",
                         (unsigned)(st.st_mode & 0777));
        close(fd);
        return -1;
    }
    return fd;
}

/* "opencl-<64 hex digits>.bin", the entry's name in the directory. */
static void ocl_cache_name(const unsigned char key[32], char name[80])
{
    memcpy(name, "opencl-", 7);
    for (int i = 0; i < 32; i++)
        snprintf(name + 7 + 2 * i, 3, "%02x", key[i]);
    memcpy(name + 7 + 64, ".bin", 5);
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
    int dfd = ocl_cache_open_dir();
    if (dfd < 0)
        return -2;
    char name[80];
    ocl_cache_name(key, name);
    /* O_NOFOLLOW: a symbolic link is refused (ELOOP), not followed to a
     * file someone else chose; O_NONBLOCK: a FIFO in its place cannot
     * block the open (and is refused below, not being a regular file). */
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    int open_errno = errno;
    close(dfd);
    if (fd < 0) {
        if (open_errno == ELOOP) {
            ocl_cache_notice("the entry %s is a symbolic link", name);
            return -2;
        }
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    const char *why = !S_ISREG(st.st_mode)        ? "is not a regular file"
                      : st.st_uid != geteuid()      ? "is owned by another user"
                      : (st.st_mode & 07777) != 0600 ? "does not have mode 0600"
                                                     : NULL;
    if (why) {
        ocl_cache_notice("the entry %s %s (uid %lu, mode %04o; this process's uid %lu)", name,
                         why, (unsigned long)st.st_uid, (unsigned)(st.st_mode & 07777),
                         (unsigned long)geteuid());
        close(fd);
        return -2;
    }
    unsigned char h[OCL_CACHE_HEADER];
    unsigned char *payload = NULL;
    int ok = read_all(fd, h, sizeof h) == 0 &&
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
    if (len == 0 || (uint64_t)len > OCL_CACHE_MAX_PAYLOAD)
        return;
    int dfd = ocl_cache_open_dir();
    if (dfd < 0)
        return;
    char name[80], tmp[160];
    ocl_cache_name(key, name);
    /* A fresh temporary name (O_EXCL: never an existing file or link),
     * created 0600 and set to 0600 whatever the umask, as load requires. */
    static atomic_uint counter;
    int fd = -1;
    for (int tries = 0; tries < 16 && fd < 0; tries++) {
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", name, (long)getpid(),
                 atomic_fetch_add(&counter, 1u));
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0 || fchmod(fd, 0600) != 0) {
        if (fd >= 0) {
            close(fd);
            unlinkat(dfd, tmp, 0);
        }
        close(dfd);
        return;
    }
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
    if (!ok || renameat(dfd, tmp, dfd, name) != 0)
        unlinkat(dfd, tmp, 0);
    close(dfd);
}
