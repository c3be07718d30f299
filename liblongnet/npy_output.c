/* npy_output.c — writing .npy files so that a failure never leaves a
 * partial file and never damages what the path names.
 *
 * An output goes through three steps (longnet.h): create, write, commit.
 * What "replace" means depends on what the path names:
 *   - nothing, or a regular file: a temporary beside it is written, flushed,
 *     and renamed over it at commit (atomic; the old file's mode and, where
 *     the caller may, owner are kept);
 *   - a symbolic link: the link is followed to its final target, and that
 *     target is replaced as above (the temporary is made beside the target,
 *     so the rename stays within one directory and the link stays a link);
 *   - a character device or a FIFO (/dev/null, /dev/stdout on a terminal or
 *     a pipe, a named pipe): written through; renaming a file over it would
 *     destroy the device node (as root, /dev/null itself);
 *   - anything else (a directory, a socket, a block device): refused.
 * Splitting the steps lets a command write several outputs and rename them
 * only when every one is complete, and lets it know each temporary's name
 * (to remove it from a signal handler) before a long write begins.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "internal.h"

/* Large writes are split: Linux transfers at most ~2 GiB per call. */
#define NPY_IO_CHUNK ((size_t)1 << 30)
/* numpy aligns the data to 64 bytes so it can be memory-mapped. */
#define NPY_ALIGN 64
/* Symbolic links followed before giving up, as the kernel's own limit. */
#define NPY_MAX_LINKS 40

struct lnet_npy_output {
    char *path;   /* as the caller gave it, for messages */
    char *target; /* the file a commit replaces (links resolved) */
    char *tmp;    /* the temporary beside target; NULL for a stream */
    int fd;       /* open until written */
    int stream;   /* 1: character device or FIFO, written through */
    int written;  /* 1: the whole file is written (and flushed) */
    int committed;
};

static int write_full(int fd, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    size_t done = 0;
    while (done < n) {
        size_t want = n - done < NPY_IO_CHUNK ? n - done : NPY_IO_CHUNK;
        ssize_t w = write(fd, p + done, want);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) {
            /* No progress and no error: retrying could spin forever. */
            errno = ENOSPC;
            return -1;
        }
        done += (size_t)w;
    }
    return 0;
}

/* The process umask, to give a new file the mode open(..., 0666) would.
 * umask() cannot be read without setting it, and setting it briefly would
 * race with other threads creating files, so read it from /proc (Linux
 * >= 4.7) and otherwise assume the common 022. */
static mode_t current_umask(void)
{
    mode_t mask = 022;
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return mask;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "Umask:", 6) == 0) {
            char *end;
            unsigned long v = strtoul(line + 6, &end, 8);
            if (end != line + 6 && v <= 0777)
                mask = (mode_t)v;
            break;
        }
    }
    fclose(f);
    return mask;
}

/* The directory part of `path` (".", "/" or a prefix), newly allocated. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* fsync the directory holding `path` so that the rename itself survives a
 * crash. Best effort: the new file is already in place, and some file
 * systems refuse fsync on directories. */
static void sync_parent_dir(const char *path)
{
    char *dir = dir_of(path);
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return;
    (void)fsync(fd);
    close(fd);
}

/* Follows symbolic links from `path` to the name of the final target (which
 * need not exist: a dangling link names the file to create). Sets *magic
 * when a link on the way is one of /proc's (/dev/stdout is
 * /proc/self/fd/1): those name open files, not paths one may rename over.
 * Returns the target, newly allocated, or NULL with errno set. */
static char *resolve_links(const char *path, int *magic)
{
    char *cur = strdup(path);
    *magic = 0;
    for (int hops = 0; cur; hops++) {
        struct stat sb;
        if (lstat(cur, &sb) != 0 || !S_ISLNK(sb.st_mode))
            return cur; /* the end of the chain (missing files included) */
        if (hops == NPY_MAX_LINKS) {
            free(cur);
            errno = ELOOP;
            return NULL;
        }
        if (strncmp(cur, "/proc/", 6) == 0) {
            /* Its text ("pipe:[1234]") is no path: stop here, and let the
             * caller open the name, which the kernel follows itself. */
            *magic = 1;
            return cur;
        }
        char link[PATH_MAX];
        ssize_t n = readlink(cur, link, sizeof link - 1);
        if (n < 0) {
            free(cur);
            return NULL;
        }
        link[n] = '\0';
        char *next;
        if (link[0] == '/') {
            next = strdup(link);
        } else {
            /* A relative link is relative to the directory holding it. */
            char *dir = dir_of(cur);
            size_t len = dir ? strlen(dir) + 1 + (size_t)n + 1 : 0;
            next = dir ? malloc(len) : NULL;
            if (next)
                snprintf(next, len, "%s/%s", dir, link);
            free(dir);
        }
        free(cur);
        cur = next;
    }
    errno = ENOMEM;
    return NULL;
}

static const char *kind_of(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISBLK(mode))
        return "a block device";
    return "not a regular file";
}

/* N when `link` is /proc/self/fd/N: one of this process's descriptors,
 * else -1. */
static int own_fd(const char *link)
{
    static const char prefix[] = "/proc/self/fd/";
    if (!link || strncmp(link, prefix, sizeof prefix - 1) != 0)
        return -1;
    char *end;
    long n = strtol(link + sizeof prefix - 1, &end, 10);
    return end != link + sizeof prefix - 1 && *end == '\0' && n >= 0 && n < INT_MAX ? (int)n : -1;
}

/* Opens a character device or FIFO (or a file behind /dev/stdout) for
 * writing through. One of our own descriptors is duplicated rather than
 * reopened, so that a shell's `>>` (append) and offsets hold. A FIFO is
 * opened without blocking: with no reader, open() would wait forever. */
static lnet_status open_stream(lnet_npy_output *o, const char *name, const struct stat *sb)
{
    int self = own_fd(o->target);
    int fd = self >= 0 ? fcntl(self, F_DUPFD_CLOEXEC, 3)
                       : open(name, O_WRONLY | O_NOCTTY | O_CLOEXEC |
                                        (S_ISFIFO(sb->st_mode) ? O_NONBLOCK : 0));
    if (fd < 0) {
        if (errno == ENXIO && S_ISFIFO(sb->st_mode))
            return lnet_fail(LNET_ERR_IO,
                             "%s: is a FIFO with no reader (start the reader first)", o->path);
        return lnet_fail(LNET_ERR_IO, "%s: cannot open for writing: %s", o->path,
                         strerror(errno));
    }
    /* Blocking writes from here on: a reader that is slow is no error. */
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0 && (flags & O_NONBLOCK))
        (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    o->fd = fd;
    o->stream = 1;
    return LNET_OK;
}

/* Creates the temporary beside o->target with the mode (and owner) the
 * replaced file had, or the mode a plain create would give. */
static lnet_status open_temporary(lnet_npy_output *o, const struct stat *old)
{
    static const char suffix[] = ".tmp.XXXXXX";
    size_t len;
    if (lnet_add_size(strlen(o->target), sizeof suffix, &len))
        return lnet_fail(LNET_ERR_OVERFLOW, "%s: path is too long", o->path);
    o->tmp = malloc(len);
    if (!o->tmp)
        return lnet_fail(LNET_ERR_NOMEM, "%s: out of memory", o->path);
    snprintf(o->tmp, len, "%s%s", o->target, suffix);
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        free(o->tmp);
        o->tmp = NULL;
        return lnet_fail(LNET_ERR_IO, "%s: cannot create a temporary file beside it: %s",
                         o->path, strerror(errno));
    }
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC); /* best effort; mkostemp is not portable */
    o->fd = fd;
    mode_t mode = 0666 & ~current_umask();
    if (old) {
        /* The owner first: chown clears set-id bits, chmod then restores
         * them. Only root (or the owner, for the group) may give a file
         * away; otherwise the new file is the caller's, as any rewrite
         * by that caller would be. */
        if (old->st_uid != geteuid() || old->st_gid != getegid())
            if (fchown(fd, old->st_uid, old->st_gid) != 0)
                (void)fchown(fd, (uid_t)-1, old->st_gid);
        mode = old->st_mode & 07777;
    }
    if (fchmod(fd, mode))
        return lnet_fail(LNET_ERR_IO, "%s: cannot set the mode of %s: %s", o->path, o->tmp,
                         strerror(errno));
    return LNET_OK;
}

lnet_status lnet_npy_output_create(const char *path, lnet_npy_output **out)
{
    if (!out)
        return lnet_fail(LNET_ERR_INVALID, "lnet_npy_output_create: output pointer is NULL");
    *out = NULL;
    if (!path || !*path)
        return lnet_fail(LNET_ERR_INVALID, "lnet_npy_output_create: path is NULL or empty");
    if (!host_is_little_endian())
        return lnet_npy_refuse_big_endian(path);
    lnet_npy_output *o = calloc(1, sizeof *o);
    if (!o || !(o->path = strdup(path))) {
        free(o);
        return lnet_fail(LNET_ERR_NOMEM, "%s: out of memory", path);
    }
    o->fd = -1;
    lnet_status st;
    int magic;
    o->target = resolve_links(path, &magic);
    if (!o->target) {
        st = lnet_fail(LNET_ERR_IO, "%s: cannot follow the symbolic link: %s", path,
                       strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (stat(magic ? path : o->target, &sb) == 0) {
        if (S_ISCHR(sb.st_mode) || S_ISFIFO(sb.st_mode)) {
            st = open_stream(o, path, &sb);
        } else if (magic) {
            /* /dev/stdout redirected to a file: write to that open file,
             * as a shell redirection expects, rather than renaming over a
             * name the shell's descriptor no longer follows. */
            st = S_ISREG(sb.st_mode) ? open_stream(o, path, &sb)
                                     : lnet_fail(LNET_ERR_IO, "%s: is %s", path,
                                                 kind_of(sb.st_mode));
        } else if (S_ISREG(sb.st_mode)) {
            st = open_temporary(o, &sb);
        } else {
            st = lnet_fail(LNET_ERR_IO, "%s: is %s; an output must be a regular file, a "
                           "character device or a FIFO", path, kind_of(sb.st_mode));
        }
    } else if (errno == ENOENT) {
        st = open_temporary(o, NULL);
    } else {
        st = lnet_fail(LNET_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (st)
        goto fail;
    *out = o;
    return LNET_OK;
fail:
    lnet_npy_output_free(o);
    return st;
}

const char *lnet_npy_output_temp_path(const lnet_npy_output *o)
{
    return o ? o->tmp : NULL;
}

int lnet_npy_output_is_stream(const lnet_npy_output *o)
{
    return o ? o->stream : 0;
}

/* Builds the version 1.0 preamble and header exactly as numpy does, padded
 * so that the data starts at a multiple of 64 bytes. Returns its length. */
static size_t build_header(int ndim, const int64_t *dims, char *buf, size_t size)
{
    char shape[LNET_MAX_DIMS * 24 + 8];
    size_t used = 0;
    shape[used++] = '(';
    for (int d = 0; d < ndim; d++)
        used += (size_t)snprintf(shape + used, sizeof shape - used, "%s%lld", d ? ", " : "",
                                 (long long)dims[d]);
    /* Python writes a 1-tuple as "(n,)". */
    used += (size_t)snprintf(shape + used, sizeof shape - used, "%s)", ndim == 1 ? "," : "");

    size_t prefix = 10;
    int body = snprintf(buf + prefix, size - prefix,
                        "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
    size_t total = prefix + (size_t)body + 1; /* + '\n' */
    size_t pad = (NPY_ALIGN - total % NPY_ALIGN) % NPY_ALIGN;
    size_t hlen = (size_t)body + pad + 1;
    static const char magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
    memcpy(buf, magic, sizeof magic);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (char)(hlen & 0xff);
    buf[9] = (char)(hlen >> 8);
    memset(buf + prefix + (size_t)body, ' ', pad);
    buf[prefix + hlen - 1] = '\n';
    return prefix + hlen;
}

lnet_status lnet_npy_output_write(lnet_npy_output *o, const lnet_tensor *t)
{
    if (!o)
        return lnet_fail(LNET_ERR_INVALID, "lnet_npy_output_write: output is NULL");
    if (!t || !t->data)
        return lnet_fail(LNET_ERR_INVALID, "%s: lnet_npy_output_write: tensor is %s", o->path,
                         t ? "not dense float32 (a view or another dtype: copy it first)" : "NULL");
    if (o->fd < 0 || o->written)
        return lnet_fail(LNET_ERR_INVALID, "%s: lnet_npy_output_write: already written",
                         o->path);
    char header[512]; /* 8 dims of 20 digits and 63 bytes of padding fit */
    size_t header_len = build_header(t->ndim, t->shape, header, sizeof header);
    size_t bytes;
    lnet_status st = lnet_shape_bytes(t->ndim, t->shape, NULL, &bytes);
    if (st)
        return lnet_fail_prefix(st, o->path);
    const char *what;
    if (write_full(o->fd, header, header_len) || write_full(o->fd, t->data, bytes)) {
        what = "write failed";
        goto fail;
    }
    /* A device or pipe has nothing to flush to disk (fsync says EINVAL). */
    if (!o->stream && fsync(o->fd)) {
        what = "fsync failed";
        goto fail;
    }
    /* close() can report a deferred write error (e.g. on NFS), so check it;
     * the descriptor is gone either way. */
    int rc = close(o->fd);
    o->fd = -1;
    if (rc) {
        what = "close failed";
        goto fail;
    }
    o->written = 1;
    return LNET_OK;
fail:;
    int e = errno;
    return lnet_fail(LNET_ERR_IO, "%s: %s: %s", o->path, what, strerror(e));
}

lnet_status lnet_npy_output_commit(lnet_npy_output *o)
{
    if (!o)
        return lnet_fail(LNET_ERR_INVALID, "lnet_npy_output_commit: output is NULL");
    if (!o->written)
        return lnet_fail(LNET_ERR_INVALID, "%s: lnet_npy_output_commit: nothing written",
                         o->path);
    if (o->committed || o->stream) {
        o->committed = 1;
        return LNET_OK;
    }
    if (rename(o->tmp, o->target))
        return lnet_fail(LNET_ERR_IO, "%s: cannot rename the temporary file over it: %s",
                         o->path, strerror(errno));
    o->committed = 1;
    sync_parent_dir(o->target);
    return LNET_OK;
}

void lnet_npy_output_free(lnet_npy_output *o)
{
    if (!o)
        return;
    if (o->fd >= 0)
        close(o->fd);
    if (o->tmp && !o->committed)
        unlink(o->tmp);
    free(o->tmp);
    free(o->target);
    free(o->path);
    free(o);
}

lnet_status lnet_npy_output_reserve(lnet_npy_output *o, int ndim, const int64_t *shape,
                                    uint64_t *data_offset)
{
    if (o->fd < 0 || o->written || o->stream)
        return lnet_fail(LNET_ERR_INVALID, "%s: %s", o->path, o->stream
                         ? "a character device or FIFO cannot be written by several ranks at "
                           "their offsets; give a file"
                         : "already written");
    char header[512];
    size_t header_len = build_header(ndim, shape, header, sizeof header), bytes;
    lnet_status st = lnet_shape_bytes(ndim, shape, NULL, &bytes);
    if (st)
        return lnet_fail_prefix(st, o->path);
    if (write_full(o->fd, header, header_len) ||
        ftruncate(o->fd, (off_t)(header_len + bytes)) != 0) {
        int e = errno;
        return lnet_fail(LNET_ERR_IO, "%s: cannot write or size the temporary: %s", o->path, strerror(e));
    }
    *data_offset = header_len;
    return LNET_OK;
}

lnet_status lnet_npy_output_seal(lnet_npy_output *o)
{
    if (o->fd < 0 || o->written)
        return lnet_fail(LNET_ERR_INVALID, "%s: sealed twice", o->path);
    const char *what = fsync(o->fd) ? "fsync failed" : NULL;
    int e = errno;
    if (close(o->fd) && !what) {
        what = "close failed";
        e = errno;
    }
    o->fd = -1;
    if (what)
        return lnet_fail(LNET_ERR_IO, "%s: %s: %s", o->path, what, strerror(e));
    o->written = 1;
    return LNET_OK;
}

lnet_status lnet_npy_write_ranges(const char *path, uint64_t data_offset, int ndim,
                                  const int64_t *shape, int axis, int n, const int64_t *begin,
                                  const int64_t *end, const float *local)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return lnet_fail(LNET_ERR_IO, "%s: cannot open the temporary for its rows: %s", path,
                         strerror(errno));
    size_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= (size_t)shape[d];
    for (int d = axis + 1; d < ndim; d++)
        inner *= (size_t)shape[d];
    const size_t rows = (size_t)shape[axis];
    const char *what = NULL;
    for (size_t o = 0; o < outer && !what; o++)
        for (int i = 0; i < n && !what; i++) {
            const size_t count = (size_t)(end[i] - begin[i]) * inner * sizeof(float);
            const size_t at = (o * rows + (size_t)begin[i]) * inner * sizeof(float);
            const char *src = (const char *)local;
            for (size_t done = 0; done < count && !what;) {
                ssize_t k = pwrite(fd, src + done, count - done, (off_t)(data_offset + at + done));
                if (k < 0 && errno == EINTR)
                    continue;
                if (k <= 0)
                    what = "write failed";
                else
                    done += (size_t)k;
            }
            local += count / sizeof(float);
        }
    int e = errno;
    if (!what && fsync(fd)) {
        what = "fsync failed";
        e = errno;
    }
    if (close(fd) && !what) {
        what = "close failed";
        e = errno;
    }
    return what ? lnet_fail(LNET_ERR_IO, "%s: %s: %s", path, what, strerror(e)) : LNET_OK;
}

lnet_status lnet_npy_save(const char *path, const lnet_tensor *t)
{
    if (!path)
        return lnet_fail(LNET_ERR_INVALID, "lnet_npy_save: path is NULL");
    if (!t || !t->data)
        return lnet_fail(LNET_ERR_INVALID, "%s: lnet_npy_save: tensor is %s", path,
                         t ? "not dense float32 (a view or another dtype: copy it first)" : "NULL");
    lnet_npy_output *o;
    lnet_status st = lnet_npy_output_create(path, &o);
    if (st)
        return st;
    if (!(st = lnet_npy_output_write(o, t)))
        st = lnet_npy_output_commit(o);
    lnet_npy_output_free(o);
    return st;
}
