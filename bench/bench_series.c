#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_series.c — which series a sweep runs: the devices of --device, the
 * kernels of --kernel each device has (by default all but the CPU
 * reference), crossed with the configurations and masks; each series gets
 * the shape (H, D) of its configuration and its device-and-kernel number,
 * which owns a share of the budget. */
#include <stdlib.h>
#include <string.h>

#include "bench_series.h"
#include "cli_util.h"

/* 1 if `name` is an entry of the comma-separated `list`. */
static int in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p = p[len] ? p + len + 1 : NULL;
    }
    return 0;
}

/* The kernels to run on a device, into names[]; the default set is every
 * kernel but the CPU reference, which is the error check's baseline and far
 * slower than anything worth timing. */
static int device_kernels(const bench_device *d, const char *want,
                          char names[][BENCH_NAME_LEN], int max)
{
    int n = 0;
    for (const char *p = d->kernels; *p && n < max;) {
        size_t len = strcspn(p, ",");
        char k[BENCH_NAME_LEN];
        snprintf(k, sizeof k, "%.*s", (int)len, p);
        int take;
        if (!want)
            take = !((strcmp(d->backend, "cpu") == 0 || strcmp(d->backend, "group") == 0) &&
                     strcmp(k, "reference") == 0);
        else
            take = strcmp(want, "all") == 0 || in_list(want, k);
        if (take && *k)
            snprintf(names[n++], BENCH_NAME_LEN, "%s", k);
        p = p[len] ? p + len + 1 : p + len;
    }
    if (n == 0 && !want && *d->kernels) { /* only a reference: time it */
        size_t len = strcspn(d->kernels, ",");
        snprintf(names[n++], BENCH_NAME_LEN, "%.*s", (int)len, d->kernels);
    }
    return n;
}

/* The devices selected by --device, as indexes; -1 after an error. */
static int selected_devices(const bench_options *o, const bench_machine *m, int *idx)
{
    int n = 0;
    if (!o->devices) {
        for (int i = 0; i < m->ndevices; i++)
            idx[n++] = i;
        return n;
    }
    for (const char *p = o->devices; *p;) {
        size_t len = strcspn(p, ",");
        char spec[BENCH_NAME_LEN], err[BENCH_TEXT_LEN];
        snprintf(spec, sizeof spec, "%.*s", (int)len, p);
        int d = bench_machine_find(m, spec, err, sizeof err);
        if (d < 0) {
            cli_error("%s", err);
            return -1;
        }
        int dup = 0;
        for (int i = 0; i < n; i++)
            dup |= idx[i] == d;
        if (!dup && n < BENCH_MAX_LIST)
            idx[n++] = d;
        p = p[len] ? p + len + 1 : p + len;
    }
    return n;
}

static void config_shape(bench_config_kind kind, const char *sweep, const bench_options *o,
                         int64_t *heads, int64_t *dim)
{
    /* paper H 12, figure5 and scaling H 1, all D 64; dense takes the shape
     * of what it is compared with: H 12 in the matrix, H 1 in the plots. */
    int one_head = kind == BENCH_CFG_FIGURE5 || kind == BENCH_CFG_SCALING ||
                   (kind == BENCH_CFG_DENSE && strcmp(sweep, "matrix") != 0);
    *heads = o->heads ? o->heads : one_head ? 1 : 12;
    *dim = o->dim ? o->dim : 64;
}

/* Builds the series; -1 after printing an error. */
int bench_build_series(const char *sweep, const bench_config_kind *configs, int nconfigs,
                        const bench_options *o, const bench_machine *m, series **out)
{
    int dev[BENCH_MAX_LIST];
    int nd = selected_devices(o, m, dev);
    if (nd < 0)
        return -1;
    if (nd == 0) {
        cli_error("no device to run on (see 'longnet info')");
        return -1;
    }
    if (o->kernels && strcmp(o->kernels, "all") != 0) {
        /* A kernel no selected device has is a typo worth stopping for. */
        for (const char *p = o->kernels; *p;) {
            size_t len = strcspn(p, ",");
            char k[BENCH_NAME_LEN];
            snprintf(k, sizeof k, "%.*s", (int)len, p);
            int found = 0;
            for (int i = 0; i < nd; i++)
                found |= in_list(m->devices[dev[i]].kernels, k);
            if (!found) {
                char have[BENCH_TEXT_LEN * 2] = "";
                for (int i = 0; i < nd; i++) {
                    size_t used = strlen(have);
                    snprintf(have + used, sizeof have - used, "%s%s: %s", i ? "; " : "",
                             m->devices[dev[i]].spec, m->devices[dev[i]].kernels);
                }
                cli_error("--kernel '%s' is not a kernel of any selected device (%s)", k, have);
                return -1;
            }
            p = p[len] ? p + len + 1 : p + len;
        }
    }
    /* The matrix and Figure 5 run every --pass; scaling is forward only. */
    static const int forward_only[1] = { 0 };
    const int matrix = strcmp(sweep, "scaling") != 0 && o->npasses > 0;
    const int *passes = matrix ? o->passes : forward_only;
    const int npasses = matrix ? o->npasses : 1;
    int cap = nd * 16 * nconfigs * o->ncausal * npasses, n = 0;
    series *s = calloc((size_t)cap, sizeof *s);
    if (!s) {
        cli_error("out of memory");
        return -1;
    }
    for (int i = 0; i < nd; i++) {
        char names[16][BENCH_NAME_LEN];
        int nk = device_kernels(&m->devices[dev[i]], o->kernels, names, 16);
        for (int k = 0; k < nk; k++)
            for (int c = 0; c < nconfigs; c++)
                for (int cm = 0; cm < o->ncausal * npasses; cm++) {
                    series *x = &s[n++];
                    x->backward = passes[cm % npasses];
                    x->device = dev[i];
                    /* Figure 5's "tokens per device": --mpi splits each
                     * sequence over the ranks too (N / ranks / members). */
                    x->members = bench_device_members(&m->devices[dev[i]]) * bench_mpi_ranks();
                    snprintf(x->kernel, sizeof x->kernel, "%s", names[k]);
                    x->config = configs[c];
                    x->causal = o->causal_modes[cm / npasses];
                    config_shape(configs[c], sweep, o, &x->heads, &x->dim);
                }
    }
    /* Number the distinct device-and-kernel pairs. */
    for (int i = 0; i < n; i++) {
        s[i].dk = -1;
        for (int j = 0; j < i && s[i].dk < 0; j++)
            if (s[j].device == s[i].device && strcmp(s[j].kernel, s[i].kernel) == 0)
                s[i].dk = s[j].dk;
        if (s[i].dk < 0) {
            int top = -1;
            for (int j = 0; j < i; j++)
                top = s[j].dk > top ? s[j].dk : top;
            s[i].dk = top + 1;
        }
    }
    *out = s;
    return n;
}

int bench_count_dk(const bench_options *o, const bench_machine *m)
{
    series *s = NULL;
    bench_config_kind any = BENCH_CFG_DENSE;
    int n = bench_build_series("figure5", &any, 1, o, m, &s), ndk = 0;
    for (int i = 0; i < n; i++)
        ndk = s[i].dk + 1 > ndk ? s[i].dk + 1 : ndk;
    free(s);
    return ndk;
}

int bench_device_members(const bench_device *d)
{
    int n = 1;
    for (const char *p = d->run_spec; *p; p++)
        n += *p == ',';
    return n;
}

int bench_check_selection(const bench_options *o, const bench_machine *m)
{
    series *s = NULL;
    bench_config_kind any = BENCH_CFG_DENSE;
    int n = bench_build_series("matrix", &any, 1, o, m, &s);
    free(s);
    return n < 0 ? -1 : 0;
}
