/* grow.c — the one growable-array helper the core's planners share. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <limits.h>
#include <stdlib.h>

#include "internal.h"

lnet_status lnet_grow(void **items, int *cap, int n, size_t elem, int first, const char *what)
{
    if (n < *cap)
        return LNET_OK;
    if (*cap > INT_MAX / 2)
        return lnet_fail(LNET_ERR_OVERFLOW, "more than %d %s", *cap, what);
    int c = *cap ? 2 * *cap : first;
    size_t bytes;
    void *p = lnet_mul_size((size_t)c, elem, &bytes) ? NULL : realloc(*items, bytes);
    if (!p)
        return lnet_fail(LNET_ERR_NOMEM, "out of memory for %d %s", c, what);
    *items = p;
    *cap = c;
    return LNET_OK;
}
