/* devlist.c — device lists: "cpu", "cpu,opencl:0", "cpu=1,opencl:0=3",
 * with device options for a plugin's open() in braces:
 * "opencl:0{tile_q=32,tile_k=16}=3". */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <math.h>
#include <stdio.h>
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

/* Where the entry starting at p ends: the next ',' outside braces (device
 * options hold commas of their own: "opencl:0{tile_q=32,tile_k=16}"). */
static const char *entry_end(const char *p)
{
    int depth = 0;
    for (; *p; p++) {
        if (*p == '{')
            depth++;
        else if (*p == '}' && depth > 0)
            depth--;
        else if (*p == ',' && depth == 0)
            return p;
    }
    return p;
}

/* Splits one entry "SPEC[{OPTIONS}][=WEIGHT]" (blanks trimmed) into its
 * parts: the spec in place (NUL-terminated), options copied into `opt`,
 * *weight_text pointing at the weight or NULL. */
static lnet_status split_entry(const char *list, char *entry, char *opt, size_t opt_len,
                               const char **weight_text)
{
    char echo[LNET_ECHO_LEN];
    *weight_text = NULL;
    opt[0] = '\0';
    char *brace = strchr(entry, '{');
    char *eq = strchr(entry, '=');
    if (brace && (!eq || brace < eq)) {
        char *close = strchr(brace, '}');
        if (!close)
            return lnet_fail(LNET_ERR_INVALID,
                             "device list '%s': entry '%.60s' has no closing '}' after its "
                             "device options", lnet_echo(list, echo), entry);
        size_t n = (size_t)(close - brace - 1);
        if (n >= opt_len)
            return lnet_fail(LNET_ERR_INVALID,
                             "device list '%s': the device options of '%.*s' are longer than %zu "
                             "characters", lnet_echo(list, echo), (int)(brace - entry), entry,
                             opt_len - 1);
        if (memchr(brace + 1, '{', n))
            return lnet_fail(LNET_ERR_INVALID,
                             "device list '%s': entry '%.60s' has a '{' inside its device options",
                             lnet_echo(list, echo), entry);
        memcpy(opt, brace + 1, n);
        opt[n] = '\0';
        const char *after = close + 1;
        while (*after == ' ' || *after == '\t')
            after++;
        if (*after == '=')
            *weight_text = after + 1;
        else if (*after)
            return lnet_fail(LNET_ERR_INVALID,
                             "device list '%s': '%.40s' after the device options of '%.*s' (only "
                             "'=WEIGHT' may follow them)", lnet_echo(list, echo), after,
                             (int)(brace - entry), entry);
        *brace = '\0';
    } else if (eq) {
        *weight_text = eq + 1;
        *eq = '\0';
    }
    /* The spec without blanks before '{' or '='. */
    size_t len = strlen(entry);
    while (len > 0 && (entry[len - 1] == ' ' || entry[len - 1] == '\t'))
        entry[--len] = '\0';
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
        const char *end = entry_end(p);
        const char *b = p, *e = end;
        trim(&b, &e);
        size_t len = (size_t)(e - b);
        char entry[256];
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
        const char *wtext;
        lnet_status st = split_entry(list, entry, w->options, sizeof w->options, &wtext);
        if (st)
            return st;
        if (wtext) {
            char weight[64];
            const char *wb = wtext, *we = wtext + strlen(wtext);
            trim(&wb, &we);
            snprintf(weight, sizeof weight, "%.*s", (int)(we - wb), wb);
            st = parse_weight(list, entry, weight, &w->weight);
            if (st)
                return st;
            with_weight++;
        }
        st = lnet_context_find_device(ctx, entry, &w->device);
        if (st)
            return st;
        out->n++;
        if (!*end)
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
