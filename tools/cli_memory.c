#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cli_memory.c — how much memory a command may still use, so that a run
 * too large for the machine is refused with the numbers before minutes of
 * reading, instead of ending in the OOM killer (exit 137, no message, and a
 * machine-wide OOM event).
 *
 * Three bounds, the least wins: the kernel's estimate of what can be had
 * without swapping (MemAvailable), the memory cgroup's limit less its usage
 * (v2, and v1 where mounted; every ancestor, since any may be the tight
 * one), and RLIMIT_AS less the address space the process already has.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"

/* The first unsigned number in `path` (or "max": UINT64_MAX); 0 on success. */
static int read_u64_file(const char *path, uint64_t *out)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char buf[64];
    int ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    if (!ok)
        return -1;
    if (strncmp(buf, "max", 3) == 0) {
        *out = UINT64_MAX;
        return 0;
    }
    char *end;
    unsigned long long v = strtoull(buf, &end, 10);
    if (end == buf)
        return -1;
    *out = v;
    return 0;
}

static void take(uint64_t value, const char *source, uint64_t *best, const char **why)
{
    if (value < *best) {
        *best = value;
        *why = source;
    }
}

static void meminfo_bound(uint64_t *best, const char **why)
{
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            take((uint64_t)kb * 1024, "MemAvailable in /proc/meminfo", best, why);
            break;
        }
    }
    fclose(f);
}

/* The cgroup of this process for `controller` ("" for v2's unified line,
 * "memory" for v1), as a path below the hierarchy's root; 0 on success. */
static int cgroup_path(const char *controller, char *out, size_t len)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return -1;
    char line[4096];
    int found = -1;
    while (found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        const char *ctrls = c1 + 1;
        int match = controller[0] ? strstr(ctrls, controller) != NULL : ctrls[0] == '\0';
        if (match && (size_t)snprintf(out, len, "%s", c2 + 1) < len)
            found = 0;
    }
    fclose(f);
    return found;
}

/* limit - usage for the cgroup at `dir` and each of its ancestors under
 * `root`. */
static void cgroup_bound(const char *root, const char *rel, const char *limit_file,
                         const char *usage_file, const char *source, uint64_t *best,
                         const char **why)
{
    char path[4096], file[4200];
    if ((size_t)snprintf(path, sizeof path, "%s%s", root, rel) >= sizeof path)
        return;
    size_t root_len = strlen(root);
    for (;;) {
        uint64_t limit, usage;
        snprintf(file, sizeof file, "%s/%s", path, limit_file);
        if (read_u64_file(file, &limit) == 0 && limit != UINT64_MAX &&
            limit < ((uint64_t)1 << 62)) { /* v1 writes "no limit" as a huge number */
            snprintf(file, sizeof file, "%s/%s", path, usage_file);
            if (read_u64_file(file, &usage) != 0)
                usage = 0;
            take(limit > usage ? limit - usage : 0, source, best, why);
        }
        char *slash = strrchr(path, '/');
        if (!slash || (size_t)(slash - path) < root_len)
            break;
        *slash = '\0';
    }
}

static void rlimit_bound(uint64_t *best, const char **why)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return;
    uint64_t used = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f) {
        unsigned long long pages;
        if (fscanf(f, "%llu", &pages) == 1)
            used = (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
    uint64_t lim = (uint64_t)rl.rlim_cur;
    take(lim > used ? lim - used : 0, "RLIMIT_AS (ulimit -v) less the address space in use",
         best, why);
}

uint64_t cli_memory_available(const char **source)
{
    uint64_t best = UINT64_MAX;
    const char *why = "no limit known";
    char rel[4096];
    meminfo_bound(&best, &why);
    if (cgroup_path("", rel, sizeof rel) == 0)
        cgroup_bound("/sys/fs/cgroup", strcmp(rel, "/") == 0 ? "" : rel, "memory.max",
                     "memory.current", "the memory cgroup's limit less its usage", &best, &why);
    if (cgroup_path("memory", rel, sizeof rel) == 0)
        cgroup_bound("/sys/fs/cgroup/memory", strcmp(rel, "/") == 0 ? "" : rel,
                     "memory.limit_in_bytes", "memory.usage_in_bytes",
                     "the memory cgroup's limit less its usage", &best, &why);
    rlimit_bound(&best, &why);
    if (source)
        *source = why;
    return best;
}

const char *cli_bytes_str(uint64_t bytes, char *buf, size_t len)
{
    static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 6) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%" PRIu64 " B", bytes);
    else
        snprintf(buf, len, "%.1f %s", v, unit[u]);
    return buf;
}
