#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cli_util.c — helpers the longnet command and longnet-bench share, so that the
 * files hold only what is particular to them: one-line errors, strict number
 * parsing, comma lists, the option parser, file identity. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_util.h"

/* -------------------------------------------------------------- errors */

static const char *prog_name = "longnet";
static const char *usage_hint = CLI_HINT;

void cli_set_prog(const char *prog)
{
    prog_name = prog;
}

void cli_set_hint(const char *hint)
{
    usage_hint = hint;
}

const char *cli_prog(void)
{
    return prog_name;
}

/* Writes `msg` with every line break turned into a space, so that one error
 * is always one line whatever the library put into its message. */
static void put_one_line(const char *msg)
{
    for (const char *c = msg; *c; c++)
        fputc((*c == '\n' || *c == '\r') ? ' ' : *c, stderr);
}

static void vmessage(const char *kind, const char *fmt, va_list ap, const char *tail)
{
    char buf[4096];
    vsnprintf(buf, sizeof buf, fmt, ap);
    fprintf(stderr, "%s: %s", prog_name, kind);
    put_one_line(buf);
    if (tail)
        fputs(tail, stderr);
    fputc('\n', stderr);
    fflush(stderr);
}

void cli_verror(const char *fmt, va_list ap)
{
    vmessage("", fmt, ap, NULL);
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage("", fmt, ap, NULL);
    va_end(ap);
}

void cli_warning(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage("warning: ", fmt, ap, NULL);
    va_end(ap);
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tail[256];
    snprintf(tail, sizeof tail, "; %s", usage_hint);
    vmessage("", fmt, ap, tail);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

int cli_lib_error(const char *what)
{
    const char *msg = lnet_last_error();
    if (!msg || !*msg)
        msg = "unknown error";
    if (what)
        cli_error("%s: %s", what, msg);
    else
        cli_error("%s", msg);
    return CLI_EXIT_FAIL;
}

/* ------------------------------------------------------------- numbers */

/* strtoll/strtod accept leading spaces and a '+'; a user who typed " 4" or
 * "+4" into a list most likely made a mistake we should name, not guess. */
static int starts_cleanly(const char *s)
{
    return s && *s && !isspace((unsigned char)*s) && *s != '+';
}

cli_num_status cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!starts_cleanly(s))
        return CLI_NUM_SYNTAX;
    const char *digits = (*s == '-') ? s + 1 : s;
    if (!isdigit((unsigned char)*digits))
        return CLI_NUM_SYNTAX;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return CLI_NUM_SYNTAX;
    if ((errno == ERANGE && v < 0) || v < min)
        return CLI_NUM_SMALL;
    if (errno == ERANGE || v > max)
        return CLI_NUM_LARGE;
    *out = (int64_t)v;
    return CLI_NUM_OK;
}

cli_num_status cli_parse_u64(const char *s, uint64_t *out)
{
    /* strtoull silently negates "-1" into a huge value; refuse any sign. */
    if (!starts_cleanly(s) || !isdigit((unsigned char)*s))
        return CLI_NUM_SYNTAX;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0')
        return CLI_NUM_SYNTAX;
    if (errno == ERANGE)
        return CLI_NUM_LARGE;
    *out = (uint64_t)v;
    return CLI_NUM_OK;
}

cli_num_status cli_parse_double(const char *s, double *out)
{
    if (!starts_cleanly(s))
        return CLI_NUM_SYNTAX;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0')
        return CLI_NUM_SYNTAX;
    /* strtod parses "nan" and "inf" as numbers; they are not usable values.
     * ERANGE also flags underflow to a denormal/zero, which is equally
     * unusable as a scale. */
    if (!isfinite(v) || errno == ERANGE)
        return CLI_NUM_NONFINITE;
    *out = v;
    return CLI_NUM_OK;
}

int cli_parse_i64_list(const char *s, const char *what, int64_t min, int64_t max,
                       int64_t *out, int max_n, int *n, char *err, size_t errlen)
{
    if (!s || !*s) {
        snprintf(err, errlen, "%s is empty", what);
        return -1;
    }
    int count = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[64];
        if (len == 0) {
            snprintf(err, errlen, "%s '%s': entry %d is empty", what, s, count + 1);
            return -1;
        }
        if (len >= sizeof item) {
            snprintf(err, errlen, "%s '%s': entry %d '%.*s...' is too long", what, s,
                     count + 1, 20, p);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (count == max_n) {
            snprintf(err, errlen, "%s '%s' has more than %d entries", what, s, max_n);
            return -1;
        }
        int64_t v;
        switch (cli_parse_i64(item, min, max, &v)) {
        case CLI_NUM_OK:
            break;
        case CLI_NUM_SMALL:
            snprintf(err, errlen, "%s '%s': entry '%s' is less than %lld", what, s, item,
                     (long long)min);
            return -1;
        case CLI_NUM_LARGE:
            snprintf(err, errlen, "%s '%s': entry '%s' is larger than %lld", what, s,
                     item, (long long)max);
            return -1;
        default:
            snprintf(err, errlen, "%s '%s': entry '%s' is not an integer", what, s, item);
            return -1;
        }
        out[count++] = v;
        if (!comma)
            break;
        p = comma + 1;
    }
    *n = count;
    return 0;
}

const char *cli_tensor_shape_str(const lnet_tensor *t, char *buf, size_t len)
{
    int64_t shape[LNET_MAX_DIMS];
    int ndim = lnet_tensor_ndim(t);
    if (ndim < 0 || ndim > LNET_MAX_DIMS)
        ndim = 0;
    for (int i = 0; i < ndim; i++)
        shape[i] = lnet_tensor_dim(t, i);
    return lnet_shape_str(ndim, shape, buf, len);
}

/* ------------------------------------------------------------- options */

void cli_parser_init(cli_parser *p, int argc, char **argv, const cli_option *options)
{
    p->argc = argc;
    p->argv = argv;
    p->next = 1;
    p->options = options;
    p->value = NULL;
    p->arg = NULL;
}

int cli_next_option(cli_parser *p)
{
    p->value = NULL;
    p->arg = NULL;
    if (p->next >= p->argc)
        return CLI_OPT_END;
    const char *a = p->argv[p->next++];
    p->arg = a;

    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
        return CLI_OPT_HELP;
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
        /* No command takes positional arguments; a stray word is most often
         * a value whose option was mistyped, so say which word. */
        if (a[0] == '-' && a[1] != '\0')
            return cli_usage_error("unknown option '%s'", a), CLI_OPT_ERROR;
        return cli_usage_error("unexpected argument '%s'", a), CLI_OPT_ERROR;
    }

    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
    const cli_option *opt = NULL;
    for (const cli_option *o = p->options; o->name; o++) {
        if (strlen(o->name) == name_len && strncmp(o->name, name, name_len) == 0) {
            opt = o;
            break;
        }
    }
    if (!opt)
        return cli_usage_error("unknown option '--%.*s'", (int)name_len, name),
               CLI_OPT_ERROR;

    if (!opt->has_value) {
        if (eq)
            return cli_usage_error("option '--%s' takes no value (got '%s')", opt->name,
                                   eq + 1),
                   CLI_OPT_ERROR;
        return opt->id;
    }
    if (eq) {
        p->value = eq + 1;
    } else {
        if (p->next >= p->argc)
            return cli_usage_error("option '--%s' needs a value", opt->name),
                   CLI_OPT_ERROR;
        p->value = p->argv[p->next++];
    }
    /* An empty value is never meaningful here (no option takes an empty
     * string), and catching it now gives a clearer message than whatever
     * would later fail on it, e.g. `--out "$UNSET_VAR"`. */
    if (p->value[0] == '\0')
        return cli_usage_error("option '--%s' has an empty value", opt->name),
               CLI_OPT_ERROR;
    return opt->id;
}

const char *cli_next_device_spec(const char *p, char *spec, size_t len)
{
    /* The entry ends at a ',' outside braces: device options have their
     * own commas ("opencl:0{tile_q=32,tile_k=16}"). */
    const char *comma = NULL;
    for (int depth = 0, i = 0; p[i] && !comma; i++) {
        if (p[i] == '{')
            depth++;
        else if (p[i] == '}' && depth > 0)
            depth--;
        else if (p[i] == ',' && depth == 0)
            comma = p + i;
    }
    const char *end = comma ? comma : p + strlen(p);
    const char *b = p, *e = end;
    /* The spec is what comes before the options or the weight. */
    for (const char *c = p; c < end; c++)
        if (*c == '{' || *c == '=') {
            e = c;
            break;
        }
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    size_t n = (size_t)(e - b) < len ? (size_t)(e - b) : len - 1;
    memcpy(spec, b, n);
    spec[n] = '\0';
    return comma ? comma + 1 : NULL;
}

/* ---------------------------------------------------------------- files */

/* The directory part of `path` ("." when none) and where its last component
 * starts. */
static void split_path(const char *path, char *dir, size_t len, const char **base)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, len, ".");
        *base = path;
    } else {
        /* "/x" lives in "/", not in "". */
        int n = slash == path ? 1 : (int)(slash - path);
        snprintf(dir, len, "%.*s", n, path);
        *base = slash + 1;
    }
}

/* The name `path` leads to through symbolic links (a dangling link leads
 * to the file it would create), into buf; `path` itself when it is no
 * link or the chain cannot be followed. */
static const char *final_name(const char *path, char *buf, size_t len)
{
    char cur[4096], link[4096];
    snprintf(cur, sizeof cur, "%s", path);
    for (int hops = 0; hops < 40; hops++) {
        struct stat sb;
        if (lstat(cur, &sb) != 0 || !S_ISLNK(sb.st_mode))
            break;
        ssize_t n = readlink(cur, link, sizeof link - 1);
        if (n < 0)
            break;
        link[n] = '\0';
        if (link[0] == '/') {
            snprintf(cur, sizeof cur, "%s", link);
        } else {
            /* Relative to the directory holding the link. */
            char dir[4096];
            const char *base;
            split_path(cur, dir, sizeof dir, &base);
            size_t dl = strlen(dir), ll = strlen(link);
            if (dl + 1 + ll >= sizeof cur)
                break; /* too long to follow: compared as given */
            memcpy(cur, dir, dl);
            cur[dl] = '/';
            memcpy(cur + dl + 1, link, ll + 1);
        }
    }
    snprintf(buf, len, "%s", cur);
    return buf;
}

int cli_same_file(const char *a0, const char *b0)
{
    /* Through symbolic links first: an output and a link to it (even a
     * dangling one, whose target neither run has made yet) are one file. */
    char fa[4096], fb[4096];
    const char *a = final_name(a0, fa, sizeof fa), *b = final_name(b0, fb, sizeof fb);
    if (strcmp(a, b) == 0)
        return 1;
    struct stat sa, sb;
    int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
    if (ea && eb)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    if (ea || eb)
        return 0;
    /* Neither exists yet (two outputs): the same name in the same directory,
     * however spelled ("o.npy" and "./o.npy"), is the same file to be. */
    char da[4096], db[4096];
    const char *ba, *bb;
    split_path(a, da, sizeof da, &ba);
    split_path(b, db, sizeof db, &bb);
    if (strcmp(ba, bb) != 0 || stat(da, &sa) != 0 || stat(db, &sb) != 0)
        return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}
