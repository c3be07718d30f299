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

/* Trims spaces and tabs from both ends of [*b, *e). Entries and weights
 * take blanks around them as the level lists do ("cpu, opencl:0 = 3"). */
static void trim(const char **b, const char **e)
{
    while (*b < *e && (**b == ' ' || **b == '\t'))
        (*b)++;
    while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

/* A weight: a positive finite decimal number. Subnormal values are fine
 * (weights are relative); one that underflows to 0 or overflows is named
 * as such rather than as "not a number". */
static lnet_status parse_weight(const char *list, const char *entry, const char *text,
                                double *out)
{
    char echo[LNET_ECHO_LEN];
    char *stop = NULL;
    errno = 0;
    double w = text[0] && text[0] != '+' ? strtod(text, &stop) : 0;
    if (!text[0] || !stop || *stop || stop == text || isnan(w) || w < 0 ||
        (text[0] == '-' && w == 0))
        return lnet_fail(LNET_ERR_INVALID,
                         "device list '%s': weight '%s' of %s is not a positive number",
                         lnet_echo(list, echo), text, entry);
    if (isinf(w))
        return lnet_fail(LNET_ERR_INVALID,
                         "device list '%s': weight '%s' of %s is too large (it overflows a double)",
                         lnet_echo(list, echo), text, entry);
    if (w == 0)
        return lnet_fail(LNET_ERR_INVALID,
                         errno == ERANGE
                             ? "device list '%s': weight '%s' of %s is too small (it underflows to 0)"
                             : "device list '%s': weight '%s' of %s is not a positive number",
                         lnet_echo(list, echo), text, entry);
    *out = w;
    return LNET_OK;
}

lnet_status lnet_devlist_parse(const lnet_context *ctx, const char *list, lnet_devlist *out)
{
    memset(out, 0, sizeof *out);
    if (!list || !list[0])
        return lnet_fail(LNET_ERR_INVALID, "device list is empty");
    char echo[LNET_ECHO_LEN];
    int with_weight = 0;
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        const char *b = p, *e = end ? end : p + strlen(p);
        trim(&b, &e);
        size_t len = (size_t)(e - b);
        char entry[128];
        if (len == 0)
            return lnet_fail(LNET_ERR_INVALID, "device list '%s': entry %d is empty",
                             lnet_echo(list, echo), out->n + 1);
        if (len >= sizeof entry)
            return lnet_fail(LNET_ERR_INVALID, "device list '%s': entry '%.40s...' is too long",
                             lnet_echo(list, echo), b);
        if (out->n == LNET_MAX_WORKERS)
            return lnet_fail(LNET_ERR_INVALID, "device list '%s' has more than %d entries",
                             lnet_echo(list, echo), LNET_MAX_WORKERS);
        memcpy(entry, b, len);
        entry[len] = '\0';
        lnet_worker_spec *w = &out->items[out->n];
        char *eq = strchr(entry, '=');
        if (eq) {
            const char *wb = eq + 1, *we = entry + len;
            trim(&wb, &we);
            *(char *)we = '\0';
            const char *sb = entry, *se = eq;
            trim(&sb, &se);
            *(char *)se = '\0';
            lnet_status st = parse_weight(list, entry, wb, &w->weight);
            if (st)
                return st;
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
                         "device list '%s': give a weight to every device or to none",
                         lnet_echo(list, echo));
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
