/* npy.c — reading and writing NumPy .npy files (float32 in memory).
 *
 * The format (numpy.lib.format): the magic "\x93NUMPY", a major and minor
 * version byte, a little-endian header length (u16 for 1.0, u32 for 2.0 and
 * 3.0), then an ASCII (UTF-8 for 3.0) Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and a '\n', then the raw array bytes.
 *
 * Files come from outside, so every number in them is distrusted: the header
 * length is bounded, the shape's element and byte counts are overflow-checked
 * and compared with the real file size before anything is allocated, so a
 * lying header can neither crash us nor make us allocate a huge buffer.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "internal.h"

/* Data is copied between the file and memory byte for byte, which is right
 * only when float and double are IEEE binary32/binary64 (checked here) and
 * the host is little-endian (checked at run time, lnet_npy_refuse_big_endian). */
_Static_assert(sizeof(float) == 4 && FLT_MANT_DIG == 24, "float must be IEEE binary32");
_Static_assert(sizeof(double) == 8 && DBL_MANT_DIG == 53, "double must be IEEE binary64");

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* numpy itself writes headers of a few hundred bytes; anything beyond this is
 * a corrupt or hostile file, and the bound keeps us from allocating for it. */
#define NPY_MAX_HEADER_LEN (1u << 20)

/* Large reads and writes are split: Linux transfers at most ~2 GiB per call,
 * and counts above SSIZE_MAX are implementation-defined. */
#define NPY_IO_CHUNK ((size_t)1 << 30)


/* Reads until `n` bytes, end of file or an error; EINTR and short reads are
 * retried. Returns 0 and the count in *got, or -1 with errno set. */
static int read_full(int fd, void *buf, size_t n, size_t *got)
{
    unsigned char *p = buf;
    size_t done = 0;
    while (done < n) {
        size_t want = n - done < NPY_IO_CHUNK ? n - done : NPY_IO_CHUNK;
        ssize_t r = read(fd, p + done, want);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            *got = done;
            return -1;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

/* --------------------------------------------------------- header parsing */

/* A recursive-descent parser for the small subset of Python literal syntax
 * that .npy headers use: one dict with string keys whose values are a
 * string, True/False, or a tuple of integers. Keys may come in any order,
 * strings may use either quote, and whitespace and a trailing comma are
 * allowed wherever Python allows them. */
typedef struct npy_header {
    const char *path;
    const char *s; /* the header text, not NUL-terminated for the parser */
    size_t n;
    size_t i;
    /* results */
    size_t itemsize; /* 4: '<f4', 8: '<f8' */
    int ndim;
    int64_t shape[LNET_MAX_DIMS];
} npy_header;

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }

static int is_ident(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int peek(const npy_header *h) { return h->i < h->n ? (unsigned char)h->s[h->i] : -1; }

static void skip_ws(npy_header *h)
{
    while (h->i < h->n && is_space((unsigned char)h->s[h->i]))
        h->i++;
}

static lnet_status syntax_error(const npy_header *h, const char *expected)
{
    if (h->i >= h->n)
        return lnet_fail(LNET_ERR_FORMAT,
                         "%s: malformed header: expected %s, found the end of the header",
                         h->path, expected);
    int c = (unsigned char)h->s[h->i];
    if (c >= 0x20 && c < 0x7f)
        return lnet_fail(LNET_ERR_FORMAT,
                         "%s: malformed header: expected %s at byte %zu, found '%c'", h->path,
                         expected, h->i, c);
    return lnet_fail(LNET_ERR_FORMAT,
                     "%s: malformed header: expected %s at byte %zu, found byte 0x%02x",
                     h->path, expected, h->i, (unsigned)c);
}

/* A quoted string; on success *str / *len is its raw content (escapes are
 * skipped over but not decoded: no value we accept contains one). */
static lnet_status parse_string(npy_header *h, const char *what, const char **str, size_t *len)
{
    int q = peek(h);
    if (q != '\'' && q != '"')
        return syntax_error(h, what);
    size_t start = ++h->i;
    while (h->i < h->n && (unsigned char)h->s[h->i] != q) {
        if (h->s[h->i] == '\n')
            break; /* a quoted Python string does not span lines */
        if (h->s[h->i] == '\\' && h->i + 1 < h->n)
            h->i++; /* the escaped character cannot close the string */
        h->i++;
    }
    if (h->i >= h->n || (unsigned char)h->s[h->i] != q)
        return syntax_error(h, "a closing quote");
    *str = h->s + start;
    *len = h->i - start;
    h->i++;
    return LNET_OK;
}

static int slice_is(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

/* Copies a string from the file into `buf` for a message, replacing what is
 * not printable ASCII and shortening it, so a hostile file cannot put
 * control characters or a flood of text into the error message. */
static const char *printable(const char *s, size_t len, char *buf, size_t size)
{
    size_t keep = len < size - 4 ? len : size - 4;
    size_t k;
    for (k = 0; k < keep; k++) {
        unsigned char c = (unsigned char)s[k];
        buf[k] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (keep < len) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k] = '\0';
    return buf;
}

static lnet_status parse_descr(npy_header *h)
{
    const char *s;
    size_t len;
    char shown[40];
    if (peek(h) == '[')
        return lnet_fail(LNET_ERR_FORMAT,
                         "%s: dtype is a structured (record) type, which is not supported "
                         "(need little-endian float32 '<f4' or float64 '<f8')",
                         h->path);
    lnet_status st = parse_string(h, "a dtype string for 'descr'", &s, &len);
    if (st)
        return st;
    if (slice_is(s, len, "<f4")) {
        h->itemsize = 4;
        return LNET_OK;
    }
    if (slice_is(s, len, "<f8")) {
        h->itemsize = 8;
        return LNET_OK;
    }
    return lnet_fail(LNET_ERR_FORMAT,
                     "%s: dtype '%s' is not supported (need little-endian float32 '<f4' or "
                     "float64 '<f8')",
                     h->path, printable(s, len, shown, sizeof shown));
}

static lnet_status parse_fortran_order(npy_header *h)
{
    static const char *const words[2] = {"False", "True"};
    for (int v = 0; v < 2; v++) {
        size_t len = strlen(words[v]);
        if (h->n - h->i >= len && memcmp(h->s + h->i, words[v], len) == 0 &&
            (h->i + len == h->n || !is_ident((unsigned char)h->s[h->i + len]))) {
            h->i += len;
            if (v)
                return lnet_fail(LNET_ERR_FORMAT,
                                 "%s: fortran_order arrays are not supported "
                                 "(save a C-ordered array, e.g. np.ascontiguousarray)",
                                 h->path);
            return LNET_OK;
        }
    }
    return syntax_error(h, "True or False for 'fortran_order'");
}

/* One integer of the shape tuple: optional sign, decimal digits, and the 'L'
 * suffix that Python 2 numpy wrote for longs. Magnitudes beyond INT64_MAX
 * are refused here, before any arithmetic. */
static lnet_status parse_dim(npy_header *h, int64_t *out)
{
    int neg = 0;
    if (peek(h) == '+' || peek(h) == '-') {
        neg = peek(h) == '-';
        h->i++;
        skip_ws(h); /* Python accepts "- 3" as a unary minus */
    }
    if (!is_digit(peek(h)))
        return syntax_error(h, "an integer in 'shape'");
    size_t start = h->i;
    uint64_t v = 0;
    int too_big = 0;
    while (is_digit(peek(h))) {
        unsigned d = (unsigned)(peek(h) - '0');
        if (v > (UINT64_MAX - d) / 10)
            too_big = 1;
        else
            v = v * 10 + d;
        h->i++;
    }
    if (too_big || v > (uint64_t)INT64_MAX) {
        char shown[40];
        return lnet_fail(LNET_ERR_OVERFLOW,
                         "%s: shape dimension %s%s is too large (more than %lld)", h->path,
                         neg ? "-" : "",
                         printable(h->s + start, h->i - start, shown, sizeof shown),
                         (long long)INT64_MAX);
    }
    if (peek(h) == 'L' || peek(h) == 'l')
        h->i++;
    if (is_ident(peek(h)))
        return syntax_error(h, "',' or ')' after an integer in 'shape'");
    *out = neg ? -(int64_t)v : (int64_t)v;
    return LNET_OK;
}

static lnet_status parse_shape(npy_header *h)
{
    char buf[256];
    int commas = 0;
    if (peek(h) != '(')
        return syntax_error(h, "a tuple '(...)' for 'shape'");
    h->i++;
    h->ndim = 0;
    for (;;) {
        skip_ws(h);
        if (peek(h) == ')')
            break;
        if (h->ndim == LNET_MAX_DIMS)
            return lnet_fail(LNET_ERR_FORMAT,
                             "%s: shape has more than %d dimensions, which is not supported",
                             h->path, LNET_MAX_DIMS);
        lnet_status st = parse_dim(h, &h->shape[h->ndim]);
        if (st)
            return st;
        h->ndim++;
        skip_ws(h);
        if (peek(h) == ',') {
            h->i++;
            commas++;
            continue;
        }
        if (peek(h) != ')')
            return syntax_error(h, "',' or ')' in 'shape'");
    }
    h->i++;
    /* In Python "(3)" is the integer 3, not a tuple; numpy would refuse it. */
    if (h->ndim == 1 && commas == 0)
        return lnet_fail(LNET_ERR_FORMAT,
                         "%s: malformed header: shape (%lld) is not a tuple (a 1-D shape is "
                         "written (%lld,))",
                         h->path, (long long)h->shape[0], (long long)h->shape[0]);
    if (h->ndim == 0)
        return lnet_fail(LNET_ERR_FORMAT,
                         "%s: scalar shape () is not supported (need 1 to %d dimensions)",
                         h->path, LNET_MAX_DIMS);
    for (int d = 0; d < h->ndim; d++)
        if (h->shape[d] < 0)
            return lnet_fail(LNET_ERR_FORMAT, "%s: shape %s has a negative dimension",
                             h->path, lnet_shape_str(h->ndim, h->shape, buf, sizeof buf));
    for (int d = 0; d < h->ndim; d++)
        if (h->shape[d] == 0)
            return lnet_fail(LNET_ERR_FORMAT,
                             "%s: shape %s has a zero dimension (empty arrays are not "
                             "supported)",
                             h->path, lnet_shape_str(h->ndim, h->shape, buf, sizeof buf));
    return LNET_OK;
}

static lnet_status parse_header(npy_header *h)
{
    enum { KEY_DESCR, KEY_FORTRAN, KEY_SHAPE, NKEYS };
    static const char *const names[NKEYS] = {"descr", "fortran_order", "shape"};
    int seen[NKEYS] = {0, 0, 0};
    lnet_status st;

    skip_ws(h);
    if (peek(h) != '{')
        return syntax_error(h, "'{' opening the header dictionary");
    h->i++;
    for (;;) {
        skip_ws(h);
        if (peek(h) == '}')
            break; /* also after a trailing comma */
        const char *key;
        size_t keylen;
        if ((st = parse_string(h, "a quoted key or '}'", &key, &keylen)))
            return st;
        int k;
        for (k = 0; k < NKEYS; k++)
            if (slice_is(key, keylen, names[k]))
                break;
        if (k == NKEYS) {
            char shown[40];
            return lnet_fail(LNET_ERR_FORMAT,
                             "%s: malformed header: unexpected key '%s' (a .npy header has "
                             "exactly 'descr', 'fortran_order' and 'shape')",
                             h->path, printable(key, keylen, shown, sizeof shown));
        }
        if (seen[k])
            return lnet_fail(LNET_ERR_FORMAT, "%s: malformed header: key '%s' appears twice",
                             h->path, names[k]);
        seen[k] = 1;
        skip_ws(h);
        if (peek(h) != ':')
            return syntax_error(h, "':' after a key");
        h->i++;
        skip_ws(h);
        switch (k) {
        case KEY_DESCR: st = parse_descr(h); break;
        case KEY_FORTRAN: st = parse_fortran_order(h); break;
        default: st = parse_shape(h); break;
        }
        if (st)
            return st;
        skip_ws(h);
        if (peek(h) == ',') {
            h->i++;
            continue;
        }
        if (peek(h) != '}')
            return syntax_error(h, "',' or '}' after a value");
    }
    h->i++;
    skip_ws(h);
    if (h->i != h->n)
        return syntax_error(h, "nothing after the header dictionary");
    for (int k = 0; k < NKEYS; k++)
        if (!seen[k])
            return lnet_fail(LNET_ERR_FORMAT, "%s: malformed header: no '%s' key", h->path,
                             names[k]);
    return LNET_OK;
}

/* ------------------------------------------------------------------ load */

/* The message for a float64 value beyond float32's range: the file, the
 * element's index (flat and per dimension) and the value. */
static lnet_status out_of_range(const char *path, const lnet_tensor *t, size_t flat, double d)
{
    char where[LNET_MAX_DIMS * 24 + 4];
    size_t used = 0, rest = flat;
    int64_t idx[LNET_MAX_DIMS];
    for (int i = t->ndim - 1; i >= 0; i--) {
        idx[i] = (int64_t)(rest % (size_t)t->shape[i]);
        rest /= (size_t)t->shape[i];
    }
    where[used++] = '[';
    for (int i = 0; i < t->ndim; i++)
        used += (size_t)snprintf(where + used, sizeof where - used, "%s%lld", i ? ", " : "",
                                 (long long)idx[i]);
    snprintf(where + used, sizeof where - used, "]");
    return lnet_fail(LNET_ERR_FORMAT,
                     "%s: float64 value %.9g at index %s (element %zu) is beyond float32's "
                     "range (|x| <= %.9g); longnet computes in float32", path, d, where, flat,
                     (double)FLT_MAX);
}

/* Reads `count` values at the descriptor's offset into dst: float32
 * directly, float64 through a small buffer, converting each value
 * (rounding to nearest; a finite magnitude beyond float32's range is
 * refused, named by its index in `file`, dst[0] being element `flat0`). */
static lnet_status read_values(int fd, const char *path, size_t itemsize, float *dst, size_t count_all,
                               const lnet_tensor *file, size_t flat0)
{
    size_t got;
    if (itemsize == 4) {
        size_t bytes = count_all * sizeof(float);
        if (read_full(fd, dst, bytes, &got))
            return lnet_fail(LNET_ERR_IO, "%s: read failed: %s", path, strerror(errno));
        if (got < bytes)
            return lnet_fail(LNET_ERR_FORMAT,
                             "%s: data is truncated: the file shrank while being read", path);
        return LNET_OK;
    }
    unsigned char buf[8192];
    size_t done = 0;
    while (done < count_all) {
        size_t count = count_all - done;
        if (count > sizeof buf / sizeof(double))
            count = sizeof buf / sizeof(double);
        if (read_full(fd, buf, count * sizeof(double), &got))
            return lnet_fail(LNET_ERR_IO, "%s: read failed: %s", path, strerror(errno));
        if (got < count * sizeof(double))
            return lnet_fail(LNET_ERR_FORMAT,
                             "%s: data is truncated: the file shrank while being read", path);
        for (size_t k = 0; k < count; k++) {
            double d;
            memcpy(&d, buf + k * sizeof(double), sizeof d);
            float f = (float)d;
            /* A finite value that float32 cannot hold would become an
             * infinity and then NaN rows, with nothing to say why. NaN and
             * infinities stay what they are: the file says so itself. */
            if (isinf(f) && isfinite(d))
                return out_of_range(path, file, flat0 + done + k, d);
            dst[done + k] = f;
        }
        done += count;
    }
    return LNET_OK;
}

static lnet_status read_data(int fd, const char *path, size_t itemsize, lnet_tensor *t)
{
    return read_values(fd, path, itemsize, t->data, t->numel, t, 0);
}

/* Reads and checks the preamble and header from `fd` (at offset 0), and
 * checks the data's size against the file's: on success the descriptor is
 * at the first data byte and h holds the dtype and shape. */
static lnet_status read_header(int fd, const char *path, npy_header *hout)
{
    struct stat sb;
    unsigned char pre[12];
    size_t got;
    char buf[256];

    if (fstat(fd, &sb))
        return lnet_fail(LNET_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    /* The size checks below need a real file size. */
    if (!S_ISREG(sb.st_mode))
        return lnet_fail(LNET_ERR_IO, "%s: not a regular file (%s); an input must be a .npy file",
                         path, S_ISFIFO(sb.st_mode)  ? "a FIFO"
                               : S_ISDIR(sb.st_mode) ? "a directory"
                               : S_ISCHR(sb.st_mode) ? "a character device"
                               : S_ISSOCK(sb.st_mode) ? "a socket"
                               : "a block device or other special file");

    if (read_full(fd, pre, 8, &got))
        return lnet_fail(LNET_ERR_IO, "%s: read failed: %s", path, strerror(errno));
    if (got == 0)
        return lnet_fail(LNET_ERR_FORMAT, "%s: not a .npy file (bad magic: the file is empty)",
                         path);
    if (got < sizeof npy_magic || memcmp(pre, npy_magic, sizeof npy_magic) != 0)
        return lnet_fail(LNET_ERR_FORMAT, "%s: not a .npy file (bad magic)", path);
    if (got < 8)
        return lnet_fail(LNET_ERR_FORMAT, "%s: truncated header (no version)", path);
    int major = pre[6], minor = pre[7];
    size_t lenbytes;
    if (major == 1 && minor == 0)
        lenbytes = 2;
    else if ((major == 2 || major == 3) && minor == 0)
        lenbytes = 4;
    else
        return lnet_fail(LNET_ERR_FORMAT,
                         "%s: .npy format version %d.%d is not supported (need 1.0, 2.0 or 3.0)",
                         path, major, minor);
    if (read_full(fd, pre + 8, lenbytes, &got))
        return lnet_fail(LNET_ERR_IO, "%s: read failed: %s", path, strerror(errno));
    if (got < lenbytes)
        return lnet_fail(LNET_ERR_FORMAT, "%s: truncated header (no header length)", path);
    uint32_t hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8;
    if (lenbytes == 4)
        hlen |= (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
    if (hlen > NPY_MAX_HEADER_LEN)
        return lnet_fail(LNET_ERR_FORMAT, "%s: header length %lu is too large (limit %u)",
                         path, (unsigned long)hlen, NPY_MAX_HEADER_LEN);
    uint64_t data_off = 8 + lenbytes + (uint64_t)hlen;
    if ((uint64_t)sb.st_size < data_off)
        return lnet_fail(LNET_ERR_FORMAT,
                         "%s: truncated header (header length %lu, file has %lld bytes)", path,
                         (unsigned long)hlen, (long long)sb.st_size);

    char *text = malloc((size_t)hlen + 1);
    if (!text)
        return lnet_fail(LNET_ERR_NOMEM, "%s: out of memory reading the header", path);
    if (read_full(fd, text, hlen, &got)) {
        int e = errno;
        free(text);
        return lnet_fail(LNET_ERR_IO, "%s: read failed: %s", path, strerror(e));
    }
    if (got < hlen) {
        free(text);
        return lnet_fail(LNET_ERR_FORMAT, "%s: truncated header", path);
    }
    text[hlen] = '\0';
    npy_header h = {.path = path, .s = text, .n = hlen};
    lnet_status st = parse_header(&h);
    free(text);
    if (st)
        return st;

    /* Sizes: elements, bytes in the file, checked for overflow, then the
     * bytes compared with what the file really holds: only then allocate. */
    lnet_shape_str(h.ndim, h.shape, buf, sizeof buf);
    size_t numel = 1, need;
    for (int d = 0; d < h.ndim; d++)
        if ((uint64_t)h.shape[d] > SIZE_MAX || lnet_mul_size(numel, (size_t)h.shape[d], &numel))
            return lnet_fail(LNET_ERR_OVERFLOW,
                             "%s: shape %s is too large (its element count overflows size_t)",
                             path, buf);
    if (lnet_mul_size(numel, h.itemsize, &need))
        return lnet_fail(LNET_ERR_OVERFLOW,
                         "%s: shape %s is too large (its byte count overflows size_t)", path,
                         buf);
    uint64_t avail = (uint64_t)sb.st_size - data_off;
    if (avail < (uint64_t)need)
        return lnet_fail(LNET_ERR_FORMAT,
                         "%s: data is truncated: shape %s needs %zu bytes, file has %llu", path,
                         buf, need, (unsigned long long)avail);
    if (avail > (uint64_t)need)
        return lnet_fail(LNET_ERR_FORMAT, "%s: %llu bytes of trailing data after the array",
                         path, (unsigned long long)(avail - need));

    *hout = h;
    hout->s = NULL;
    return LNET_OK;
}

static lnet_status load_fd(int fd, const char *path, lnet_tensor **out)
{
    npy_header h;
    lnet_status st = read_header(fd, path, &h);
    if (st)
        return st;
    lnet_tensor *t;
    if ((st = lnet_tensor_create(h.ndim, h.shape, &t)))
        return lnet_fail_prefix(st, path);
    if ((st = read_data(fd, path, h.itemsize, t))) {
        lnet_tensor_free(t);
        return st;
    }
    *out = t;
    return LNET_OK;
}

/* Opens an input without blocking, so that a FIFO with no writer is refused
 * (by the regular-file check of read_header) instead of hanging in open();
 * reads block again afterwards. */
static int open_input(const char *path)
{
    /* O_CLOEXEC: a plugin or another thread may fork/exec meanwhile. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return -1;
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    return fd;
}

/* Opens an input and reads its header: *fd at the first data byte, or -1
 * when it could not be opened (the status says why). */
static lnet_status open_header(const char *path, int *fd, npy_header *h)
{
    *fd = -1;
    if (!host_is_little_endian())
        return lnet_npy_refuse_big_endian(path);
    if ((*fd = open_input(path)) < 0)
        return lnet_fail(LNET_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return read_header(*fd, path, h);
}

lnet_status lnet_npy_inspect(const char *path, lnet_npy_info *info)
{
    if (!info)
        return lnet_fail(LNET_ERR_INVALID, "lnet_npy_inspect: info pointer is NULL");
    if (!path)
        return lnet_fail(LNET_ERR_INVALID, "lnet_npy_inspect: path is NULL");
    if (info->size < sizeof *info)
        return lnet_fail(LNET_ERR_INVALID, "lnet_npy_inspect: info.size %zu is too small (need %zu)",
                         info->size, sizeof *info);
    int fd;
    npy_header h;
    lnet_status st = open_header(path, &fd, &h);
    if (fd >= 0)
        close(fd);
    if (st)
        return st;
    info->ndim = h.ndim;
    memset(info->shape, 0, sizeof info->shape);
    memcpy(info->shape, h.shape, (size_t)h.ndim * sizeof h.shape[0]);
    info->itemsize = h.itemsize;
    info->numel = 1;
    for (int d = 0; d < h.ndim; d++)
        info->numel *= (size_t)h.shape[d]; /* checked by read_header */
    return LNET_OK;
}

lnet_status lnet_npy_load(const char *path, lnet_tensor **out)
{
    if (!out)
        return lnet_fail(LNET_ERR_INVALID, "lnet_npy_load: output pointer is NULL");
    *out = NULL;
    if (!path)
        return lnet_fail(LNET_ERR_INVALID, "lnet_npy_load: path is NULL");
    if (!host_is_little_endian())
        return lnet_npy_refuse_big_endian(path);
    int fd = open_input(path);
    if (fd < 0)
        return lnet_fail(LNET_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    lnet_status st = load_fd(fd, path, out);
    close(fd); /* nothing useful to report for a read-only descriptor */
    return st;
}

lnet_status lnet_npy_load_ranges(const char *path, int axis, int64_t rows, int n,
                                 const int64_t *begin, const int64_t *end, lnet_tensor **out)
{
    *out = NULL;
    int fd;
    npy_header h;
    lnet_status st = open_header(path, &fd, &h);
    if (fd < 0)
        return st;
    off_t data = st ? 0 : lseek(fd, 0, SEEK_CUR);
    char s[256];
    if (!st && (h.ndim <= axis || h.shape[axis] != rows))
        st = lnet_fail(LNET_ERR_INVALID, "%s has shape %s; its rows (axis %d) must be %lld", path,
                       lnet_shape_str(h.ndim, h.shape, s, sizeof s), axis, (long long)rows);
    if (!st && data < 0)
        st = lnet_fail(LNET_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
    /* The file's shape, for messages naming an element; the rows kept. */
    lnet_tensor file = {0};
    int64_t shape[LNET_MAX_DIMS];
    size_t inner = 1, outer = 1, kept = 0;
    if (!st) {
        file.ndim = h.ndim;
        memcpy(file.shape, h.shape, sizeof file.shape);
        memcpy(shape, h.shape, sizeof shape);
        for (int d = 0; d < axis; d++)
            outer *= (size_t)h.shape[d];
        for (int d = axis + 1; d < h.ndim; d++)
            inner *= (size_t)h.shape[d];
        for (int i = 0; i < n; i++)
            kept += (size_t)(end[i] - begin[i]);
        shape[axis] = (int64_t)kept;
    }
    lnet_tensor *t = NULL;
    if (!st && (st = lnet_tensor_create(h.ndim, shape, &t)))
        st = lnet_fail_prefix(st, path);
    float *dst = t ? t->data : NULL;
    for (size_t b = 0; !st && b < outer; b++)
        for (int i = 0; !st && i < n; i++) {
            const size_t flat = (b * (size_t)rows + (size_t)begin[i]) * inner;
            const size_t count = (size_t)(end[i] - begin[i]) * inner;
            if (lseek(fd, data + (off_t)(flat * h.itemsize), SEEK_SET) < 0)
                st = lnet_fail(LNET_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
            else
                st = read_values(fd, path, h.itemsize, dst, count, &file, flat);
            dst += count;
        }
    close(fd);
    if (st) {
        lnet_tensor_free(t);
        return st;
    }
    *out = t;
    return LNET_OK;
}

lnet_status lnet_npy_refuse_big_endian(const char *path)
{
    return lnet_fail(LNET_ERR_UNSUPPORTED,
                     "%s: .npy float data is little-endian and this host is big-endian, "
                     "which liblongnet does not support",
                     path);
}
