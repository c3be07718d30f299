#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_machine.c — the description of the machine a result was measured
 * on: host CPU, cores, memory, OS, compiler, BLAS, longnet's version, and the
 * plugins and devices (with their drivers) as a fresh process sees them.
 *
 * The plugins are loaded in a forked child, never in the bench's own process
 * (see bench_child.c); the child writes one tab-separated line per plugin,
 * device and warning.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* Tabs and line breaks would break the child's line format. */
static void put_field(int fd, const char *s)
{
    char buf[BENCH_TEXT_LEN];
    snprintf(buf, sizeof buf, "%s", s ? s : "");
    for (char *p = buf; *p; p++)
        if (*p == '\t' || *p == '\n' || *p == '\r')
            *p = ' ';
    bench_write_all(fd, "\t", 1);
    bench_write_all(fd, buf, strlen(buf));
}

static void log_to_pipe(lnet_log_level level, const char *message, void *user)
{
    if (level < LNET_LOG_WARNING)
        return;
    int fd = *(int *)user;
    bench_write_all(fd, "W", 1);
    put_field(fd, message);
    bench_write_all(fd, "\n", 1);
}

static int enumerate_child(void *arg, int fd)
{
    (void)arg;
    lnet_context_options co = { .size = sizeof co, .log = log_to_pipe, .log_user = &fd };
    lnet_context *ctx = NULL;
    if (lnet_context_create(&co, &ctx) != LNET_OK) {
        bench_write_all(fd, "E", 1);
        put_field(fd, lnet_last_error());
        bench_write_all(fd, "\n", 1);
        return 0;
    }
    char num[64];
    for (int i = 0; i < lnet_context_plugin_count(ctx); i++) {
        lnet_plugin_info p;
        if (lnet_context_plugin(ctx, i, &p) != LNET_OK)
            continue;
        bench_write_all(fd, "P", 1);
        put_field(fd, p.path);
        put_field(fd, p.name);
        put_field(fd, p.description);
        snprintf(num, sizeof num, "%u", (unsigned)p.abi_version);
        put_field(fd, num);
        put_field(fd, p.loaded ? "1" : "0");
        put_field(fd, p.reason);
        bench_write_all(fd, "\n", 1);
    }
    for (int i = 0; i < lnet_context_device_count(ctx); i++) {
        lnet_device_info d;
        if (lnet_context_device(ctx, i, &d) != LNET_OK)
            continue;
        bench_write_all(fd, "D", 1);
        put_field(fd, d.backend);
        snprintf(num, sizeof num, "%d", d.index);
        put_field(fd, num);
        put_field(fd, d.name);
        put_field(fd, d.kind);
        snprintf(num, sizeof num, "%llu", (unsigned long long)d.memory_bytes);
        put_field(fd, num);
        snprintf(num, sizeof num, "%d", d.compute_units);
        put_field(fd, num);
        put_field(fd, d.kernels);
        bench_write_all(fd, "\n", 1);
    }
    lnet_context_free(ctx);
    return 0;
}

/* Splits a line in place at tabs into at most max fields. */
static int split_tabs(char *line, char **f, int max)
{
    int n = 0;
    for (char *p = line; n < max;) {
        f[n++] = p;
        char *tab = strchr(p, '\t');
        if (!tab)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    return n;
}

static void parse_enumeration(bench_machine *m, char *text)
{
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *f[8];
        int n = split_tabs(line, f, 8);
        if (f[0][0] == 'P' && n == 7 && m->nplugins < BENCH_MAX_LIST) {
            bench_plugin *p = &m->plugins[m->nplugins++];
            snprintf(p->path, sizeof p->path, "%s", f[1]);
            snprintf(p->name, sizeof p->name, "%s", f[2]);
            snprintf(p->description, sizeof p->description, "%s", f[3]);
            p->abi = (unsigned)strtoul(f[4], NULL, 10);
            p->loaded = f[5][0] == '1';
            snprintf(p->reason, sizeof p->reason, "%s", f[6]);
        } else if (f[0][0] == 'D' && n == 8 && m->ndevices < BENCH_MAX_LIST) {
            bench_device *d = &m->devices[m->ndevices++];
            snprintf(d->backend, sizeof d->backend, "%s", f[1]);
            d->index = atoi(f[2]);
            snprintf(d->spec, sizeof d->spec, "%.100s:%d", f[1], d->index);
            memcpy(d->run_spec, d->spec, sizeof d->run_spec);
            snprintf(d->name, sizeof d->name, "%s", f[3]);
            snprintf(d->kind, sizeof d->kind, "%s", f[4]);
            d->memory_bytes = strtoull(f[5], NULL, 10);
            d->compute_units = atoi(f[6]);
            snprintf(d->kernels, sizeof d->kernels, "%s", f[7]);
        } else if ((f[0][0] == 'W' || f[0][0] == 'E') && n == 2) {
            size_t used = strlen(m->warnings);
            snprintf(m->warnings + used, sizeof m->warnings - used, "%s%s",
                     used ? "; " : "", f[1]);
        }
    }
}

static void read_cpu_model(char *buf, size_t len)
{
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *colon = strchr(line, ':');
            if (colon) {
                colon += 1 + (colon[1] == ' ');
                colon[strcspn(colon, "\n")] = '\0';
                snprintf(buf, len, "%s", colon);
            }
            break;
        }
    }
    fclose(f);
}

static double load_average(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

static int idle_child(void *arg, int fd)
{
    (void)arg;
    (void)fd;
    return 0;
}

int bench_machine_describe(bench_machine *m)
{
    memset(m, 0, sizeof *m);
    read_cpu_model(m->cpu_model, sizeof m->cpu_model);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    m->cores = cores > 0 ? (int)cores : 0;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    m->memory_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(m->os, sizeof m->os, "%s %s %s", u.sysname, u.release, u.machine);
    snprintf(m->longnet_version, sizeof m->longnet_version, "%s", lnet_version());
#ifdef __VERSION__
    snprintf(m->compiler, sizeof m->compiler, "%s", __VERSION__);
#endif
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(m->date, sizeof m->date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    m->load_start = load_average();

    char *data;
    size_t len;
    char err[BENCH_TEXT_LEN];
    /* What a child costs before it does anything: the floor under every
     * cell's peak memory. */
    if (bench_child_run(idle_child, NULL, &data, &len, &m->baseline_rss_bytes, err,
                        sizeof err) == 0)
        free(data);
    if (bench_child_run(enumerate_child, NULL, &data, &len, NULL, err, sizeof err) != 0) {
        free(data);
        fprintf(stderr, "%s: listing the devices failed: %s\n", BENCH_PROG, err);
        return -1;
    }
    parse_enumeration(m, data);
    free(data);
    return 0;
}

void bench_machine_finish(bench_machine *m)
{
    m->load_end = load_average();
}

/* 1 if `name` is an entry of the comma-separated `list`. */
static int has_kernel(const char *list, const char *name, size_t n)
{
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p = p[len] ? p + len + 1 : p + len;
    }
    return 0;
}

int bench_machine_add_groups(bench_machine *m, const char *devices, char *err, size_t len)
{
    for (const char *p = devices ? devices : ""; *p;) {
        size_t n = strcspn(p, ",");
        char group[BENCH_NAME_LEN];
        snprintf(group, sizeof group, "%.*s", (int)n, p);
        p = p[n] ? p + n + 1 : p + n;
        if (!strchr(group, '+') || m->ndevices >= BENCH_MAX_LIST)
            continue;
        bench_device g;
        memset(&g, 0, sizeof g);
        snprintf(g.spec, sizeof g.spec, "%s", group);
        snprintf(g.backend, sizeof g.backend, "group");
        snprintf(g.kind, sizeof g.kind, "group");
        int members = 0;
        for (char *save = NULL, *tok = strtok_r(group, "+", &save); tok;
             tok = strtok_r(NULL, "+", &save)) {
            int d = bench_machine_find(m, tok, err, len);
            if (d < 0)
                return -1;
            const bench_device *md = &m->devices[d];
            size_t used = strlen(g.run_spec);
            snprintf(g.run_spec + used, sizeof g.run_spec - used, "%s%s", used ? "," : "",
                     md->spec);
            used = strlen(g.name);
            snprintf(g.name + used, sizeof g.name - used, "%s%s", used ? " + " : "split over ",
                     md->spec);
            g.memory_bytes += md->memory_bytes;
            g.compute_units += md->compute_units;
            if (members++ == 0) {
                snprintf(g.kernels, sizeof g.kernels, "%s", md->kernels);
            } else {
                /* Only the kernels every member has. */
                char keep[BENCH_TEXT_LEN] = "";
                for (const char *k = g.kernels; *k;) {
                    size_t kl = strcspn(k, ",");
                    if (has_kernel(md->kernels, k, kl)) {
                        size_t u = strlen(keep);
                        snprintf(keep + u, sizeof keep - u, "%s%.*s", u ? "," : "", (int)kl, k);
                    }
                    k = k[kl] ? k + kl + 1 : k + kl;
                }
                snprintf(g.kernels, sizeof g.kernels, "%s", keep);
            }
        }
        if (members < 2) {
            snprintf(err, len, "--device group '%s' needs two devices or more", g.spec);
            return -1;
        }
        m->devices[m->ndevices++] = g;
    }
    return 0;
}

int bench_machine_find(const bench_machine *m, const char *spec, char *err, size_t len)
{
    for (int i = 0; strchr(spec, '+') && i < m->ndevices; i++)
        if (strcmp(m->devices[i].spec, spec) == 0)
            return i; /* a group added by bench_machine_add_groups */
    /* The syntax of `longnet run --device`: BACKEND or BACKEND:INDEX. */
    char backend[BENCH_NAME_LEN];
    const char *colon = strchr(spec, ':');
    long index = 0;
    if (colon) {
        char *end;
        if (colon[1] < '0' || colon[1] > '9' ||
            (index = strtol(colon + 1, &end, 10), *end != '\0') || index > 1000000) {
            snprintf(err, len, "--device '%s': the index after ':' must be a number", spec);
            return -1;
        }
    }
    snprintf(backend, sizeof backend, "%.*s", colon ? (int)(colon - spec) : (int)strlen(spec),
             spec);
    int seen_backend = 0;
    for (int i = 0; i < m->ndevices; i++) {
        if (strcmp(m->devices[i].backend, backend) != 0)
            continue;
        seen_backend = 1;
        if (m->devices[i].index == index)
            return i;
    }
    size_t used = (size_t)snprintf(err, len, "unknown device '%s': %s (available:", spec,
                                   seen_backend ? "no such index" : "no backend of that name is loaded");
    for (int i = 0; i < m->ndevices && used < len; i++)
        used += (size_t)snprintf(err + used, len - used, " %s", m->devices[i].spec);
    if (used < len)
        snprintf(err + used, len - used, ")");
    return -1;
}
