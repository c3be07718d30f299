/* devlist.c — device lists: "cpu", "cpu,opencl:0", "cpu=1,opencl:0=3". */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "scheduler.h"

lnet_status lnet_devlist_parse(const lnet_context *ctx, const char *list, lnet_devlist *out)
{
    memset(out, 0, sizeof *out);
    if (!list || !list[0])
        return lnet_fail(LNET_ERR_INVALID, "device list is empty");
    int with_weight = 0;
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char entry[128];
        if (len == 0)
            return lnet_fail(LNET_ERR_INVALID, "device list '%s': entry %d is empty", list,
                             out->n + 1);
        if (len >= sizeof entry)
            return lnet_fail(LNET_ERR_INVALID, "device list '%s': entry '%.*s' is too long",
                             list, (int)len, p);
        if (out->n == LNET_MAX_WORKERS)
            return lnet_fail(LNET_ERR_INVALID, "device list '%s' has more than %d entries", list,
                             LNET_MAX_WORKERS);
        memcpy(entry, p, len);
        entry[len] = '\0';
        lnet_worker_spec *w = &out->items[out->n];
        char *eq = strchr(entry, '=');
        if (eq) {
            *eq = '\0';
            const char *text = eq + 1;
            char *stop = NULL;
            errno = 0;
            double weight = strtod(text, &stop);
            if (!text[0] || *stop || errno == ERANGE || !isfinite(weight) || weight <= 0)
                return lnet_fail(LNET_ERR_INVALID,
                                 "device list '%s': weight '%s' of %s is not a positive number",
                                 list, text, entry);
            w->weight = weight;
            with_weight++;
        }
        lnet_status st = lnet_context_find_device(ctx, entry, &w->device);
        if (st)
            return st;
        out->n++;
        if (!end)
            break;
        p = end + 1;
    }
    if (with_weight && with_weight != out->n)
        return lnet_fail(LNET_ERR_INVALID,
                         "device list '%s': give a weight to every device or to none", list);
    /* One device takes every row whatever its weight: it is never
     * calibrated (that would run the configuration twice more, for
     * nothing, on every new configuration). */
    out->weighted = with_weight > 0 || out->n == 1;
    if (out->n == 1 && !with_weight)
        out->items[0].weight = 1.0;
    return LNET_OK;
}

lnet_status lnet_algorithm_parse(const char *name, lnet_algorithm *out)
{
    static const struct { const char *name; lnet_algorithm a; } names[] = {
        {"auto", LNET_ALGORITHM_AUTO}, {"gather", LNET_ALGORITHM_GATHER}, {"ring", LNET_ALGORITHM_RING}};
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].a;
            return LNET_OK;
        }
    }
    return lnet_fail(LNET_ERR_INVALID, "algorithm '%s' is none of auto, gather, ring",
                     name ? name : "(null)");
}
