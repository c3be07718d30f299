/* golden.c — the golden oracle cases (tests/golden, DESIGN §1): reading
 * cases.tsv, loading a case's .npy files, and running a case forward on a
 * device; see golden.h. Shared by the test suite and `longnet test`. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* ------------------------------------------------------------ cases.tsv */

enum { COL_NAME, COL_B, COL_N, COL_H, COL_D, COL_SEG, COL_DIL, COL_CAUSAL, COL_OFFSETS,
       COL_SCALE, N_COLS };
static const char *const col_names[N_COLS] = {"name", "B", "N", "H", "D", "segments",
                                              "dilations", "causal", "offsets", "scale"};

#define MAX_FIELDS 32

/* Splits line in place at tabs; returns the number of fields. */
static int split_tabs(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == max)
            return max + 1; /* too many: the caller reports it */
        fields[n++] = p;
        char *tab = strchr(p, '\t');
        if (!tab)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    return n;
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

static int parse_int(const char *s, int64_t min, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min)
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* One data line into c; `where` is "file:line" for messages. */
static int parse_case(char **f, const int *col, golden_case *c, const char *where, char *err,
                      size_t errlen)
{
    memset(c, 0, sizeof *c);
    const char *name = f[col[COL_NAME]];
    /* The name is a folder name: nothing that could leave the directory. */
    if (!name[0] || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
        strlen(name) >= sizeof c->name)
        return fail(err, errlen, "%s: case name '%s' is not a plain folder name", where, name);
    snprintf(c->name, sizeof c->name, "%s", name);

    int64_t *dims[4] = {&c->batch, &c->rows, &c->heads, &c->dim};
    for (int i = 0; i < 4; i++) {
        const char *s = f[col[COL_B + i]];
        if (parse_int(s, 1, dims[i]))
            return fail(err, errlen, "%s: case %s: %s = '%s' is not an integer >= 1", where,
                        name, col_names[COL_B + i], s);
    }
    const char *seg = f[col[COL_SEG]], *dil = f[col[COL_DIL]];
    if (strlen(seg) >= sizeof c->segments || strlen(dil) >= sizeof c->dilations)
        return fail(err, errlen, "%s: case %s: the level lists are too long", where, name);
    snprintf(c->segments, sizeof c->segments, "%s", seg);
    snprintf(c->dilations, sizeof c->dilations, "%s", dil);

    int64_t causal;
    if (parse_int(f[col[COL_CAUSAL]], 0, &causal) || causal > 1)
        return fail(err, errlen, "%s: case %s: causal = '%s' is not 0 or 1", where, name,
                    f[col[COL_CAUSAL]]);
    c->causal = (int)causal;

    if (lnet_offsets_parse(f[col[COL_OFFSETS]], &c->offsets) != LNET_OK)
        return fail(err, errlen, "%s: case %s: offsets = '%s': %s", where, name,
                    f[col[COL_OFFSETS]], lnet_last_error());

    const char *s = f[col[COL_SCALE]];
    char *end;
    errno = 0;
    c->scale = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(c->scale) || c->scale <= 0)
        return fail(err, errlen, "%s: case %s: scale = '%s' is not a positive number", where,
                    name, s);
    return 0;
}

int golden_load(const char *dir, golden_set *set, char *err, size_t errlen)
{
    memset(set, 0, sizeof *set);
    size_t len = strlen(dir) + sizeof "/cases.tsv";
    char *path = malloc(len);
    set->dir = malloc(strlen(dir) + 1);
    if (!path || !set->dir) {
        free(path);
        golden_free(set);
        return fail(err, errlen, "out of memory");
    }
    strcpy(set->dir, dir);
    snprintf(path, len, "%s/cases.tsv", dir);

    FILE *fp = fopen(path, "r");
    if (!fp) {
        fail(err, errlen, "cannot open %s: %s", path, strerror(errno));
        free(path);
        golden_free(set);
        return -1;
    }

    char line[4096], where[4200];
    char *f[MAX_FIELDS + 1];
    int col[N_COLS], n_header = 0, lineno = 0, cap = 0, rc = 0;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        if (!strchr(line, '\n') && !feof(fp)) {
            rc = fail(err, errlen, "%s: line longer than %zu characters", where, sizeof line - 2);
            break;
        }
        chomp(line);
        if (!line[0] || line[0] == '#')
            continue;
        int nf = split_tabs(line, f, MAX_FIELDS);
        if (nf > MAX_FIELDS) {
            rc = fail(err, errlen, "%s: more than %d columns", where, MAX_FIELDS);
            break;
        }
        if (!n_header) {
            /* The header names the columns, so their order may change. */
            for (int c = 0; c < N_COLS; c++) {
                col[c] = -1;
                for (int i = 0; i < nf; i++)
                    if (strcmp(f[i], col_names[c]) == 0)
                        col[c] = i;
                if (col[c] < 0) {
                    rc = fail(err, errlen, "%s: the header has no column '%s'", where,
                              col_names[c]);
                    break;
                }
            }
            if (rc)
                break;
            n_header = nf;
            continue;
        }
        if (nf != n_header) {
            rc = fail(err, errlen, "%s: %d columns, but the header has %d", where, nf, n_header);
            break;
        }
        if (set->n == cap) {
            int ncap = cap ? 2 * cap : 16;
            golden_case *nc = realloc(set->cases, (size_t)ncap * sizeof *nc);
            if (!nc) {
                rc = fail(err, errlen, "out of memory reading %s", path);
                break;
            }
            set->cases = nc;
            cap = ncap;
        }
        if ((rc = parse_case(f, col, &set->cases[set->n], where, err, errlen)) != 0)
            break;
        set->n++;
    }
    if (!rc && ferror(fp))
        rc = fail(err, errlen, "error reading %s", path);
    if (!rc && !n_header)
        rc = fail(err, errlen, "%s has no header line", path);
    fclose(fp);
    free(path);
    if (rc)
        golden_free(set);
    return rc;
}

void golden_free(golden_set *set)
{
    free(set->dir);
    free(set->cases);
    memset(set, 0, sizeof *set);
}

/* ------------------------------------------------------------ one case */

int golden_config(const golden_case *c, lnet_config **cfg, char *err, size_t errlen)
{
    lnet_config *g = NULL;
    if (lnet_config_create(&g) != LNET_OK ||
        lnet_config_parse_levels(g, c->segments, c->dilations) != LNET_OK ||
        lnet_config_set_causal(g, c->causal) != LNET_OK ||
        lnet_config_set_offsets(g, c->offsets) != LNET_OK ||
        lnet_config_set_scale(g, c->scale) != LNET_OK) {
        fail(err, errlen, "case %s: configuration: %s", c->name, lnet_last_error());
        lnet_config_free(g);
        return -1;
    }
    *cfg = g;
    return 0;
}

int golden_tensor(const golden_set *set, const golden_case *c, const char *file,
                  lnet_tensor **out, char *err, size_t errlen)
{
    *out = NULL;
    size_t len = strlen(set->dir) + strlen(c->name) + strlen(file) + sizeof "//.npy";
    char *path = malloc(len);
    if (!path)
        return fail(err, errlen, "out of memory");
    snprintf(path, len, "%s/%s/%s.npy", set->dir, c->name, file);
    lnet_tensor *t = NULL;
    if (lnet_npy_load(path, &t) != LNET_OK) {
        fail(err, errlen, "case %s: %s", c->name, lnet_last_error());
        free(path);
        return -1;
    }

    int is_lse = strcmp(file, "lse") == 0;
    int64_t want[4] = {c->batch, c->rows, c->heads, c->dim};
    if (is_lse) {
        want[1] = c->heads;
        want[2] = c->rows;
    }
    int ndim = is_lse ? 3 : 4;
    int ok = lnet_tensor_ndim(t) == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = lnet_tensor_dim(t, i) == want[i];
    if (!ok) {
        char got[128] = "", need[128] = "";
        for (int i = 0; i < lnet_tensor_ndim(t); i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "",
                     (long long)lnet_tensor_dim(t, i));
        for (int i = 0; i < ndim; i++)
            snprintf(need + strlen(need), sizeof need - strlen(need), "%s%lld", i ? ", " : "",
                     (long long)want[i]);
        fail(err, errlen, "case %s: %s has shape [%s] but the case needs [%s]", c->name, path,
             got, need);
        lnet_tensor_free(t);
        free(path);
        return -1;
    }
    free(path);
    *out = t;
    return 0;
}

/* max |a - b|; NaN anywhere counts as an infinite error. */
static double max_abs_diff(const lnet_tensor *a, const lnet_tensor *b)
{
    const float *x = lnet_tensor_cdata(a), *y = lnet_tensor_cdata(b);
    size_t n = lnet_tensor_numel(a);
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)x[i] - (double)y[i]);
        if (!(d <= m))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

int golden_run_case(lnet_context *ctx, const golden_set *set, const golden_case *c,
                    const char *device, const char *kernel, golden_result *res, char *err,
                    size_t errlen)
{
    enum { Q, K, V, OUT, LSE, N_IN };
    static const char *const files[N_IN] = {"q", "k", "v", "out", "lse"};
    lnet_tensor *in[N_IN] = {NULL}, *out = NULL, *lse = NULL;
    lnet_config *cfg = NULL;
    int rc = -1;

    res->out_err = res->lse_err = INFINITY;
    for (int i = 0; i < N_IN; i++)
        if (golden_tensor(set, c, files[i], &in[i], err, errlen))
            goto done;
    if (golden_config(c, &cfg, err, errlen))
        goto done;
    int64_t out_shape[4] = {c->batch, c->rows, c->heads, c->dim};
    int64_t lse_shape[3] = {c->batch, c->heads, c->rows};
    if (lnet_tensor_create(4, out_shape, &out) != LNET_OK ||
        lnet_tensor_create(3, lse_shape, &lse) != LNET_OK) {
        fail(err, errlen, "case %s: %s", c->name, lnet_last_error());
        goto done;
    }
    /* NaN in the outputs: a row the backend forgets to write fails loudly
     * instead of passing as the zero it was created with. */
    for (size_t i = 0; i < lnet_tensor_numel(out); i++)
        lnet_tensor_data(out)[i] = NAN;
    for (size_t i = 0; i < lnet_tensor_numel(lse); i++)
        lnet_tensor_data(lse)[i] = NAN;

    lnet_run_options opts = {.size = sizeof opts, .device = device, .kernel = kernel};
    lnet_status st = lnet_attention_forward(ctx, cfg, in[Q], in[K], in[V], out, lse, &opts);
    if (st != LNET_OK) {
        fail(err, errlen, "case %s on %s, kernel %s: %s: %s", c->name, device ? device : "cpu",
             kernel ? kernel : "(default)", lnet_status_name(st), lnet_last_error());
        goto done;
    }
    res->out_err = max_abs_diff(out, in[OUT]);
    res->lse_err = max_abs_diff(lse, in[LSE]);
    rc = 0;
done:
    for (int i = 0; i < N_IN; i++)
        lnet_tensor_free(in[i]);
    lnet_tensor_free(out);
    lnet_tensor_free(lse);
    lnet_config_free(cfg);
    return rc;
}
