/* internal.h — what the core's files share and nothing outside liblongnet/ sees. */
#ifndef LNET_INTERNAL_H
#define LNET_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "longnet.h"

/* Records a failure for lnet_last_error() and returns `status`, so that an
 * error path is one line: return lnet_fail(LNET_ERR_INVALID, "...", ...). */
lnet_status lnet_fail(lnet_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
lnet_status lnet_vfail(lnet_status status, const char *fmt, va_list ap);

/* Prepends "prefix: " to the current message of this thread (for adding
 * context such as a file name to an error raised deeper down). */
lnet_status lnet_fail_prefix(lnet_status status, const char *prefix);

struct lnet_tensor {
    int ndim;
    int64_t shape[LNET_MAX_DIMS];
    size_t numel;
    float *data;   /* dense float32 tensors: the elements; else NULL */
    int owns_data;
    /* Views (tensor_view.c): any element type and strides. A dense float32
     * tensor has dtype LNET_DTYPE_F32, dense = 1, C-order strides and
     * base == data. */
    lnet_dtype dtype;
    int dense;
    int64_t strides[LNET_MAX_DIMS]; /* in elements */
    void *base;
};

/* Bytes of one element of `dtype` (0 for an unknown one). */
size_t lnet_dtype_size(lnet_dtype dtype);
/* A dense float32 copy of any float32 view (*out is src itself, not a
 * copy, when src is dense already: *owned says which). */
lnet_status lnet_tensor_densify(const lnet_tensor *src, lnet_tensor **out, int *owned);
/* Copies a dense float32 tensor into a view of the same shape. */
void lnet_tensor_scatter(lnet_tensor *dst, const lnet_tensor *dense);
/* 1 when no two elements of the view share a place (an output must not). */
int lnet_tensor_view_unaliased(const lnet_tensor *t);
const char *lnet_dtype_name(lnet_dtype dtype);

/* Overflow-checked size arithmetic: 0 on success, -1 if it would overflow. */
static inline int lnet_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}

static inline int lnet_add_size(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a)
        return -1;
    *out = a + b;
    return 0;
}

/* Makes room for one more element in a growable array (*items of *cap
 * elements of `elem` bytes, n of them used), doubling from `first`;
 * `what` names the elements in the out-of-memory message. */
lnet_status lnet_grow(void **items, int *cap, int n, size_t elem, int first, const char *what);

/* The number of elements of `shape` and its size in bytes as float32, with
 * every product checked; also refuses dimensions < 1. */
lnet_status lnet_shape_bytes(int ndim, const int64_t *shape, size_t *numel, size_t *bytes);

/* A user's text quoted in a message, cut to its first 40 characters with
 * "..." after: a 64-entry list echoed in full would push the reason off
 * the end of the message. `buf` must hold LNET_ECHO_LEN bytes. */
#define LNET_ECHO_LEN 48
const char *lnet_echo(const char *s, char *buf);

/* .npy data is copied byte for byte, which is right only on a little-endian
 * host; both the reader and the writer refuse a big-endian one with this. */
static inline int host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}
lnet_status lnet_npy_refuse_big_endian(const char *path);

/* Text grown by printf-style appends (plan.c), for --explain: on an
 * allocation failure `oom` is set and later appends do nothing. */
typedef struct text_buf {
    char *buf;
    size_t len, cap;
    int oom;
} text_buf;
void lnet_text_put(text_buf *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* npy.c: rows [begin_i, end_i) along `axis` (of `rows`) of a file, the
 * ranges concatenated, each read by seeking to it. */
lnet_status lnet_npy_load_ranges(const char *path, int axis, int64_t rows, int n,
                                 const int64_t *begin, const int64_t *end, lnet_tensor **out);
/* npy_output.c: the whole file's header for `shape` written and the file
 * sized (*data_offset: where the data starts), for ranks to write into;
 * then sealed (flushed, closed: ready to commit). */
lnet_status lnet_npy_output_reserve(lnet_npy_output *o, int ndim, const int64_t *shape,
                                    uint64_t *data_offset);
lnet_status lnet_npy_output_seal(lnet_npy_output *o);
/* Writes `local`'s rows into the float32 file `path` of `shape` (data at
 * data_offset): along `axis`, the ranges [begin_i, end_i), concatenated in
 * `local` in that order; flushed before it returns. */
lnet_status lnet_npy_write_ranges(const char *path, uint64_t data_offset, int ndim,
                                  const int64_t *shape, int axis, int n, const int64_t *begin,
                                  const int64_t *end, const float *local);

#endif /* LNET_INTERNAL_H */
