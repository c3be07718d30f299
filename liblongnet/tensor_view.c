/* tensor_view.c — tensors beyond dense float32: element types and strides.
 *
 * The attention calls compute on dense float32 rows, so a view is made
 * dense once where it enters (lnet_tensor_densify: the inputs) and written
 * back once where it leaves (lnet_tensor_scatter: the outputs); nothing
 * between reads a caller's view. Other element types can be described and
 * carried (a device may support them: plugin ABI 2's dtype), but nothing
 * converts them yet.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdlib.h>
#include <string.h>

#include "internal.h"

size_t lnet_dtype_size(lnet_dtype dtype)
{
    switch (dtype) {
    case LNET_DTYPE_F32: return 4;
    case LNET_DTYPE_F16:
    case LNET_DTYPE_BF16: return 2;
    }
    return 0;
}

static const char *dtype_name(lnet_dtype dtype)
{
    switch (dtype) {
    case LNET_DTYPE_F32: return "float32";
    case LNET_DTYPE_F16: return "float16";
    case LNET_DTYPE_BF16: return "bfloat16";
    }
    return "unknown";
}

const char *lnet_dtype_name(lnet_dtype dtype)
{
    return dtype_name(dtype);
}

lnet_status lnet_tensor_wrap_strided(void *data, lnet_dtype dtype, int ndim,
                                     const int64_t *shape, const int64_t *strides,
                                     lnet_tensor **out)
{
    if (!out)
        return lnet_fail(LNET_ERR_INVALID, "tensor output pointer is NULL");
    *out = NULL;
    if (!data || !strides)
        return lnet_fail(LNET_ERR_INVALID, "tensor %s pointer is NULL", !data ? "data" : "strides");
    size_t item = lnet_dtype_size(dtype);
    if (!item)
        return lnet_fail(LNET_ERR_INVALID, "tensor dtype %d is none of float32 (0), float16 (1), "
                         "bfloat16 (2)", (int)dtype);
    size_t numel;
    lnet_status st = lnet_shape_bytes(ndim, shape, &numel, NULL);
    if (st)
        return st;
    /* The largest offset, sum((shape - 1) * stride), must be addressable. */
    size_t last = 0;
    for (int i = 0; i < ndim; i++) {
        size_t term;
        if (strides[i] < 0)
            return lnet_fail(LNET_ERR_INVALID, "tensor stride %lld of axis %d is negative",
                             (long long)strides[i], i);
        if ((uint64_t)strides[i] > SIZE_MAX ||
            lnet_mul_size((size_t)(shape[i] - 1), (size_t)strides[i], &term) ||
            lnet_add_size(last, term, &last))
            return lnet_fail(LNET_ERR_OVERFLOW, "tensor strides reach past the address space "
                             "(axis %d, stride %lld)", i, (long long)strides[i]);
    }
    size_t bytes;
    if (lnet_mul_size(last, item, &bytes) || lnet_add_size(bytes, item, &bytes))
        return lnet_fail(LNET_ERR_OVERFLOW, "tensor strides reach past the address space");
    lnet_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return lnet_fail(LNET_ERR_NOMEM, "out of memory allocating a tensor header");
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    memcpy(t->strides, strides, (size_t)ndim * sizeof *strides);
    t->numel = numel;
    t->dtype = dtype;
    t->base = data;
    /* Dense: each axis of more than one element has the C-order stride,
     * the product of the shapes after it (an axis of one element may have
     * any stride: it is never stepped along). */
    t->dense = 1;
    int64_t want = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        if (shape[i] > 1 && strides[i] != want)
            t->dense = 0;
        want *= shape[i];
    }
    /* Only a dense float32 tensor exposes its elements as float *. */
    t->data = t->dense && dtype == LNET_DTYPE_F32 ? data : NULL;
    *out = t;
    return LNET_OK;
}

lnet_status lnet_tensor_create_dtype(lnet_dtype dtype, int ndim, const int64_t *shape,
                                     lnet_tensor **out)
{
    if (dtype == LNET_DTYPE_F32)
        return lnet_tensor_create(ndim, shape, out);
    if (!out)
        return lnet_fail(LNET_ERR_INVALID, "tensor output pointer is NULL");
    *out = NULL;
    size_t item = lnet_dtype_size(dtype), numel, bytes;
    if (!item)
        return lnet_fail(LNET_ERR_INVALID, "tensor dtype %d is none of float32 (0), float16 (1), "
                         "bfloat16 (2)", (int)dtype);
    lnet_status st = lnet_shape_bytes(ndim, shape, &numel, NULL);
    if (st)
        return st;
    if (lnet_mul_size(numel, item, &bytes))
        return lnet_fail(LNET_ERR_OVERFLOW, "tensor of %zu elements overflows size_t", numel);
    void *mem = calloc(numel, item);
    if (!mem)
        return lnet_fail(LNET_ERR_NOMEM, "out of memory allocating a tensor of %zu bytes", bytes);
    int64_t strides[LNET_MAX_DIMS], s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i];
    }
    st = lnet_tensor_wrap_strided(mem, dtype, ndim, shape, strides, out);
    if (st) {
        free(mem);
        return st;
    }
    (*out)->owns_data = 1;
    return LNET_OK;
}

lnet_dtype lnet_tensor_dtype(const lnet_tensor *t)
{
    return t ? t->dtype : LNET_DTYPE_F32;
}

int64_t lnet_tensor_stride(const lnet_tensor *t, int axis)
{
    return t && axis >= 0 && axis < t->ndim ? t->strides[axis] : 0;
}

int lnet_tensor_is_dense(const lnet_tensor *t)
{
    return t ? t->dense : 0;
}

/* Calls fn(dense index, view offset) for every element, in C order. */
#define FOR_EACH_ELEMENT(t, body)                                                   \
    do {                                                                            \
        int64_t idx_[LNET_MAX_DIMS] = {0};                                          \
        size_t off_ = 0;                                                            \
        for (size_t i_ = 0; i_ < (t)->numel; i_++) {                                \
            {                                                                       \
                const size_t dense_i = i_, view_off = off_;                         \
                body;                                                               \
            }                                                                       \
            for (int a_ = (t)->ndim - 1; a_ >= 0; a_--) {                            \
                off_ += (size_t)(t)->strides[a_];                                   \
                if (++idx_[a_] < (t)->shape[a_])                                    \
                    break;                                                          \
                off_ -= (size_t)(t)->strides[a_] * (size_t)(t)->shape[a_];          \
                idx_[a_] = 0;                                                       \
            }                                                                       \
        }                                                                           \
    } while (0)

lnet_status lnet_tensor_densify(const lnet_tensor *src, lnet_tensor **out, int *owned)
{
    *out = NULL;
    *owned = 0;
    if (src->dtype != LNET_DTYPE_F32)
        return lnet_fail(LNET_ERR_UNSUPPORTED, "a %s tensor cannot be made float32 here (no "
                         "conversion yet)", dtype_name(src->dtype));
    if (src->dense) {
        *out = (lnet_tensor *)src;
        return LNET_OK;
    }
    lnet_tensor *d;
    lnet_status st = lnet_tensor_create(src->ndim, src->shape, &d);
    if (st)
        return st;
    const float *s = src->base;
    FOR_EACH_ELEMENT(src, d->data[dense_i] = s[view_off]);
    *out = d;
    *owned = 1;
    return LNET_OK;
}

void lnet_tensor_scatter(lnet_tensor *dst, const lnet_tensor *dense)
{
    float *t = dst->base;
    FOR_EACH_ELEMENT(dst, t[view_off] = dense->data[dense_i]);
}

/* 1 when no two elements of the view share a place: with the axes sorted
 * by stride, each stride is at least the extent of the axes below it. */
int lnet_tensor_view_unaliased(const lnet_tensor *t)
{
    int order[LNET_MAX_DIMS];
    int n = 0;
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] > 1)
            order[n++] = i;
    for (int i = 1; i < n; i++) /* insertion sort by stride, few axes */
        for (int j = i; j > 0 && t->strides[order[j]] < t->strides[order[j - 1]]; j--) {
            int tmp = order[j];
            order[j] = order[j - 1];
            order[j - 1] = tmp;
        }
    int64_t extent = 1;
    for (int i = 0; i < n; i++) {
        const int a = order[i];
        if (t->strides[a] < extent)
            return 0;
        extent = t->strides[a] * t->shape[a];
    }
    return 1;
}
