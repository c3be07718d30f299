/* config.c — the dilated-attention configuration and its rules (DESIGN §1). */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct lnet_config {
    int levels;
    int64_t segment[LNET_MAX_LEVELS];
    int64_t dilation[LNET_MAX_LEVELS];
    int causal;
    double scale; /* 0: 1/sqrt(D) */
    lnet_offsets offsets;
};

lnet_status lnet_config_create(lnet_config **out)
{
    if (!out)
        return lnet_fail(LNET_ERR_INVALID, "configuration output pointer is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out)
        return lnet_fail(LNET_ERR_NOMEM, "out of memory allocating a configuration");
    return LNET_OK;
}

void lnet_config_free(lnet_config *cfg)
{
    free(cfg);
}

static lnet_status check_level(int level, int64_t segment, int64_t dilation)
{
    if (segment < 1)
        return lnet_fail(LNET_ERR_INVALID, "segment length %lld at level %d must be >= 1",
                         (long long)segment, level);
    if (dilation < 1)
        return lnet_fail(LNET_ERR_INVALID, "dilation %lld at level %d must be >= 1",
                         (long long)dilation, level);
    if (dilation > segment)
        return lnet_fail(LNET_ERR_INVALID,
                         "dilation %lld at level %d is larger than its segment length %lld",
                         (long long)dilation, level, (long long)segment);
    return LNET_OK;
}

lnet_status lnet_config_add_level(lnet_config *cfg, int64_t segment, int64_t dilation)
{
    if (!cfg)
        return lnet_fail(LNET_ERR_INVALID, "configuration is NULL");
    if (cfg->levels >= LNET_MAX_LEVELS)
        return lnet_fail(LNET_ERR_INVALID, "too many levels: at most %d", LNET_MAX_LEVELS);
    lnet_status st = check_level(cfg->levels, segment, dilation);
    if (st)
        return st;
    cfg->segment[cfg->levels] = segment;
    cfg->dilation[cfg->levels] = dilation;
    cfg->levels++;
    return LNET_OK;
}

/* Parses a comma-separated list of positive decimal integers, strictly: no
 * empty entries, no trailing garbage, no overflow. `what` names the list in
 * messages ("segment", "dilation"). */
static lnet_status parse_list(const char *what, const char *text, int64_t *values, int *count)
{
    if (!text)
        return lnet_fail(LNET_ERR_INVALID, "%s list is missing", what);
    int n = 0;
    const char *p = text;
    char echo[LNET_ECHO_LEN];
    const char *quoted = lnet_echo(text, echo);
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *start = p;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *last = end;
        while (last > start && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        if (last == start)
            return lnet_fail(LNET_ERR_INVALID, "%s list '%s': entry %d is empty", what, quoted,
                             n + 1);
        if (n >= LNET_MAX_LEVELS)
            return lnet_fail(LNET_ERR_INVALID, "%s list '%s' has more than %d entries", what,
                             quoted, LNET_MAX_LEVELS);
        int len = (int)(last - start);
        for (const char *c = start; c < last; c++) {
            if (!isdigit((unsigned char)*c) && !(c == start && (*c == '-' || *c == '+')))
                return lnet_fail(LNET_ERR_INVALID, "%s list '%s': '%.*s' is not an integer",
                                 what, quoted, len, start);
        }
        errno = 0;
        char *stop = NULL;
        long long v = strtoll(start, &stop, 10);
        if (stop != last)
            return lnet_fail(LNET_ERR_INVALID, "%s list '%s': '%.*s' is not an integer", what,
                             quoted, len, start);
        if (errno == ERANGE)
            return lnet_fail(LNET_ERR_INVALID, "%s list '%s': '%.*s' is out of range", what,
                             quoted, len, start);
        values[n++] = (int64_t)v;
        if (*end == '\0')
            break;
        p = end + 1;
    }
    *count = n;
    return LNET_OK;
}

lnet_status lnet_config_parse_levels(lnet_config *cfg, const char *segments,
                                     const char *dilations)
{
    int64_t w[LNET_MAX_LEVELS], r[LNET_MAX_LEVELS];
    int nw = 0, nr = 0;
    if (!cfg)
        return lnet_fail(LNET_ERR_INVALID, "configuration is NULL");
    lnet_status st = parse_list("segment", segments, w, &nw);
    if (st)
        return st;
    st = parse_list("dilation", dilations, r, &nr);
    if (st)
        return st;
    char e1[LNET_ECHO_LEN], e2[LNET_ECHO_LEN];
    if (nw != nr)
        return lnet_fail(LNET_ERR_INVALID,
                         "%d segment lengths ('%s') but %d dilations ('%s'): one each per level",
                         nw, lnet_echo(segments, e1), nr, lnet_echo(dilations, e2));
    for (int i = 0; i < nw; i++) {
        st = check_level(i, w[i], r[i]);
        if (st)
            return st;
    }
    cfg->levels = nw;
    memcpy(cfg->segment, w, (size_t)nw * sizeof *w);
    memcpy(cfg->dilation, r, (size_t)nw * sizeof *r);
    return LNET_OK;
}

lnet_status lnet_config_set_causal(lnet_config *cfg, int causal)
{
    if (!cfg)
        return lnet_fail(LNET_ERR_INVALID, "configuration is NULL");
    if (causal != 0 && causal != 1)
        return lnet_fail(LNET_ERR_INVALID, "causal must be 0 or 1, not %d", causal);
    cfg->causal = causal;
    return LNET_OK;
}

lnet_status lnet_config_set_scale(lnet_config *cfg, double scale)
{
    if (!cfg)
        return lnet_fail(LNET_ERR_INVALID, "configuration is NULL");
    if (!isfinite(scale) || scale < 0 || (scale > 0 && (float)scale == 0.0f) ||
        !isfinite((float)scale))
        return lnet_fail(LNET_ERR_INVALID,
                         "scale %g must be a positive finite float32 (or 0 for 1/sqrt(D))",
                         scale);
    cfg->scale = scale;
    return LNET_OK;
}

lnet_status lnet_config_set_offsets(lnet_config *cfg, lnet_offsets mode)
{
    if (!cfg)
        return lnet_fail(LNET_ERR_INVALID, "configuration is NULL");
    if (mode != LNET_OFFSETS_INTERLEAVED && mode != LNET_OFFSETS_GROUPED)
        return lnet_fail(LNET_ERR_INVALID, "head offset mode %d is neither interleaved (0) nor grouped (1)",
                         (int)mode);
    cfg->offsets = mode;
    return LNET_OK;
}

lnet_status lnet_offsets_parse(const char *name, lnet_offsets *out)
{
    if (name && strcmp(name, "interleaved") == 0)
        *out = LNET_OFFSETS_INTERLEAVED;
    else if (name && strcmp(name, "grouped") == 0)
        *out = LNET_OFFSETS_GROUPED;
    else
        return lnet_fail(LNET_ERR_INVALID,
                         "head offset mode '%s' is neither 'interleaved' nor 'grouped'",
                         name ? name : "(null)");
    return LNET_OK;
}

int lnet_config_levels(const lnet_config *cfg) { return cfg ? cfg->levels : 0; }

int64_t lnet_config_segment(const lnet_config *cfg, int level)
{
    return cfg && level >= 0 && level < cfg->levels ? cfg->segment[level] : 0;
}

int64_t lnet_config_dilation(const lnet_config *cfg, int level)
{
    return cfg && level >= 0 && level < cfg->levels ? cfg->dilation[level] : 0;
}

int lnet_config_causal(const lnet_config *cfg) { return cfg ? cfg->causal : 0; }
double lnet_config_scale(const lnet_config *cfg) { return cfg ? cfg->scale : 0; }
lnet_offsets lnet_config_offsets(const lnet_config *cfg)
{
    return cfg ? cfg->offsets : LNET_OFFSETS_INTERLEAVED;
}

lnet_status lnet_config_validate(const lnet_config *cfg, int64_t head_dim)
{
    if (!cfg)
        return lnet_fail(LNET_ERR_INVALID, "configuration is NULL");
    if (cfg->levels == 0)
        return lnet_fail(LNET_ERR_INVALID, "the configuration has no levels");
    int dense_level = 0;
    for (int i = 0; i < cfg->levels; i++) {
        lnet_status st = check_level(i, cfg->segment[i], cfg->dilation[i]);
        if (st)
            return st;
        dense_level |= cfg->dilation[i] == 1;
    }
    if (!dense_level)
        return lnet_fail(LNET_ERR_INVALID,
                         "no level has dilation 1: some rows of every head would never be "
                         "attended (add a level with dilation 1)");
    if (head_dim < 0)
        return lnet_fail(LNET_ERR_INVALID, "head dimension %lld must be >= 1",
                         (long long)head_dim);
    return LNET_OK;
}
