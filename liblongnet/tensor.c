/* tensor.c — dense float32 host tensors. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

lnet_status lnet_shape_bytes(int ndim, const int64_t *shape, size_t *numel, size_t *bytes)
{
    char buf[256];
    if (ndim < 1 || ndim > LNET_MAX_DIMS)
        return lnet_fail(LNET_ERR_INVALID, "tensor rank %d is outside 1..%d", ndim,
                         LNET_MAX_DIMS);
    if (!shape)
        return lnet_fail(LNET_ERR_INVALID, "tensor shape is NULL");
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1)
            return lnet_fail(LNET_ERR_INVALID, "tensor shape %s has dimension %d = %lld (must be >= 1)",
                             lnet_shape_str(ndim, shape, buf, sizeof buf), i,
                             (long long)shape[i]);
        if ((uint64_t)shape[i] > SIZE_MAX || lnet_mul_size(n, (size_t)shape[i], &n))
            return lnet_fail(LNET_ERR_OVERFLOW, "tensor shape %s has more elements than fit in memory",
                             lnet_shape_str(ndim, shape, buf, sizeof buf));
    }
    size_t b;
    if (lnet_mul_size(n, sizeof(float), &b))
        return lnet_fail(LNET_ERR_OVERFLOW, "tensor shape %s has more bytes than fit in memory",
                         lnet_shape_str(ndim, shape, buf, sizeof buf));
    if (numel)
        *numel = n;
    if (bytes)
        *bytes = b;
    return LNET_OK;
}

const char *lnet_shape_str(int ndim, const int64_t *shape, char *buf, size_t len)
{
    size_t used = 0;
    if (len == 0)
        return buf;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? ", " : "",
                                 (long long)shape[i]);
    if (used < len)
        snprintf(buf + used, len - used, "]");
    return buf;
}

static lnet_status tensor_new(float *data, int ndim, const int64_t *shape, lnet_tensor **out)
{
    size_t numel, bytes;
    if (!out)
        return lnet_fail(LNET_ERR_INVALID, "tensor output pointer is NULL");
    *out = NULL;
    lnet_status st = lnet_shape_bytes(ndim, shape, &numel, &bytes);
    if (st)
        return st;
    lnet_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return lnet_fail(LNET_ERR_NOMEM, "out of memory allocating a tensor header");
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->numel = numel;
    t->dtype = LNET_DTYPE_F32;
    t->dense = 1;
    /* C order; the products fit: numel did. */
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t->strides[i] = stride;
        stride *= shape[i];
    }
    if (data) {
        t->data = data;
        t->owns_data = 0;
    } else {
        t->data = calloc(numel, sizeof(float));
        if (!t->data) {
            free(t);
            return lnet_fail(LNET_ERR_NOMEM, "out of memory allocating a tensor of %zu bytes", bytes);
        }
        t->owns_data = 1;
    }
    t->base = t->data;
    *out = t;
    return LNET_OK;
}

lnet_status lnet_tensor_create(int ndim, const int64_t *shape, lnet_tensor **out)
{
    return tensor_new(NULL, ndim, shape, out);
}

lnet_status lnet_tensor_wrap(float *data, int ndim, const int64_t *shape, lnet_tensor **out)
{
    if (!data) {
        if (out)
            *out = NULL;
        return lnet_fail(LNET_ERR_INVALID, "tensor data pointer is NULL");
    }
    return tensor_new(data, ndim, shape, out);
}

void lnet_tensor_free(lnet_tensor *t)
{
    if (!t)
        return;
    if (t->owns_data)
        free(t->base);
    free(t);
}

int lnet_tensor_ndim(const lnet_tensor *t) { return t ? t->ndim : 0; }

int64_t lnet_tensor_dim(const lnet_tensor *t, int axis)
{
    if (!t || axis < 0 || axis >= t->ndim)
        return 0;
    return t->shape[axis];
}

size_t lnet_tensor_numel(const lnet_tensor *t) { return t ? t->numel : 0; }
float *lnet_tensor_data(lnet_tensor *t) { return t ? t->data : NULL; }
const float *lnet_tensor_cdata(const lnet_tensor *t) { return t ? t->data : NULL; }
