/* failalloc.c — an LD_PRELOAD allocator shim for fault injection: it fails
 * the k-th allocation made by longnet's own code, so that a test can walk k
 * along a whole run and check every failure path (tests/failalloc.sh).
 *
 * Environment:
 *   FAILALLOC_AT=k        fail the k-th counted allocation (1-based) once,
 *                         with NULL and errno = ENOMEM; 0 or unset: count only
 *   FAILALLOC_REPORT=FILE at exit, write "allocations N injected I leaked L
 *                         BYTES" (the leak figures are longnet's own blocks
 *                         still live at exit), and the first leaks' callers
 *
 * Counted: malloc, calloc, realloc, posix_memalign, aligned_alloc called
 * directly from longnet's code. Which code is which is decided by the
 * caller's object (__builtin_return_address + dladdr): liblongnet, the
 * backend plugins (".../longnet-<name>.so") and the longnet command itself.
 * Allocations by libc, libltdl, OpenCL drivers... are neither counted nor
 * failed: their failure paths are not ours to test.
 *
 * The leak count is our own bookkeeping of the counted blocks (a hash of
 * live pointers), so that every k can be checked for leaks quickly; CI also
 * runs a sample of k under valgrind. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef void *(*malloc_fn)(size_t);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void (*free_fn)(void *);
typedef int (*memalign_fn)(void **, size_t, size_t);
typedef void *(*aligned_fn)(size_t, size_t);

static malloc_fn real_malloc;
static calloc_fn real_calloc;
static realloc_fn real_realloc;
static free_fn real_free;
static memalign_fn real_posix_memalign;
static aligned_fn real_aligned_alloc;

static long fail_at;          /* FAILALLOC_AT */
static long counted;          /* counted allocations so far */
static long injected;         /* failures injected */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static __thread int inside;   /* no counting while in dladdr or our own code */

/* dlsym may allocate before the real calloc is known: serve it from here. */
static char boot[4096];
static size_t boot_used;

static void *boot_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (boot_used + n > sizeof boot)
        return NULL;
    void *p = boot + boot_used;
    boot_used += n;
    return p;
}

static int is_boot(const void *p)
{
    return (const char *)p >= boot && (const char *)p < boot + sizeof boot;
}

static void init(void)
{
    static int initialising;
    if (real_malloc || initialising)
        return;
    initialising = 1;
    real_calloc = (calloc_fn)dlsym(RTLD_NEXT, "calloc");
    real_malloc = (malloc_fn)dlsym(RTLD_NEXT, "malloc");
    real_realloc = (realloc_fn)dlsym(RTLD_NEXT, "realloc");
    real_free = (free_fn)dlsym(RTLD_NEXT, "free");
    real_posix_memalign = (memalign_fn)dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = (aligned_fn)dlsym(RTLD_NEXT, "aligned_alloc");
    const char *at = getenv("FAILALLOC_AT");
    fail_at = at ? strtol(at, NULL, 10) : 0;
    initialising = 0;
}

/* ------------------------------------------------ whose allocation is it */

/* Object base addresses already classified (a few objects only). */
#define MAX_OBJECTS 64
static struct { const void *base; int ours; } objects[MAX_OBJECTS];
static int n_objects;

static int path_is_ours(const char *path)
{
    if (!path)
        return 0;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    return strstr(path, "liblongnet") != NULL || strncmp(base, "longnet-", 8) == 0 ||
           strcmp(base, "longnet") == 0 || strcmp(base, "lt-longnet") == 0;
}

static int caller_is_ours(const void *ret)
{
    Dl_info info;
    if (!ret || !dladdr(ret, &info))
        return 0;
    for (int i = 0; i < n_objects; i++)
        if (objects[i].base == info.dli_fbase)
            return objects[i].ours;
    int ours = path_is_ours(info.dli_fname);
    if (n_objects < MAX_OBJECTS) {
        objects[n_objects].base = info.dli_fbase;
        objects[n_objects].ours = ours;
        n_objects++;
    }
    return ours;
}

/* ------------------------------------------------ live blocks (leak check) */

/* An open-addressing set of live counted blocks, in memory of its own
 * (mmap) so that it never calls the allocator it watches. */
typedef struct live {
    void *p;      /* NULL: empty; TOMB: deleted */
    size_t bytes;
    const void *caller;
} live;
#define TOMB ((void *)1)
static live *table;
static size_t table_cap, table_used;
static long live_blocks;
static size_t live_bytes;

static size_t slot_of(const void *p, size_t cap)
{
    uintptr_t h = (uintptr_t)p;
    h ^= h >> 17;
    h *= 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 20) & (cap - 1);
}

static void table_grow(void)
{
    size_t cap = table_cap ? 2 * table_cap : 1 << 14;
    live *t = mmap(NULL, cap * sizeof *t, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED)
        return; /* leak figures become approximate; nothing breaks */
    for (size_t i = 0; i < table_cap; i++) {
        if (table[i].p && table[i].p != TOMB) {
            size_t s = slot_of(table[i].p, cap);
            while (t[s].p)
                s = (s + 1) & (cap - 1);
            t[s] = table[i];
        }
    }
    if (table)
        munmap(table, table_cap * sizeof *table);
    table = t;
    table_cap = cap;
    table_used = (size_t)live_blocks;
}

static void track(void *p, size_t bytes, const void *caller)
{
    if (!p)
        return;
    if ((table_used + 1) * 2 > table_cap)
        table_grow();
    if (!table)
        return;
    size_t s = slot_of(p, table_cap);
    while (table[s].p && table[s].p != TOMB)
        s = (s + 1) & (table_cap - 1);
    if (!table[s].p)
        table_used++;
    table[s] = (live){p, bytes, caller};
    live_blocks++;
    live_bytes += bytes;
}

static void untrack(void *p)
{
    if (!p || !table)
        return;
    size_t s = slot_of(p, table_cap);
    while (table[s].p) {
        if (table[s].p == p) {
            live_blocks--;
            live_bytes -= table[s].bytes;
            table[s].p = TOMB;
            return;
        }
        s = (s + 1) & (table_cap - 1);
    }
}

/* 1: fail this allocation. Counts it when it is ours. */
static int should_fail(const void *caller, int *ours)
{
    *ours = 0;
    if (inside)
        return 0;
    inside = 1;
    pthread_mutex_lock(&lock);
    if (caller_is_ours(caller)) {
        *ours = 1;
        counted++;
        if (fail_at > 0 && counted == fail_at) {
            injected++;
            pthread_mutex_unlock(&lock);
            inside = 0;
            return 1;
        }
    }
    pthread_mutex_unlock(&lock);
    inside = 0;
    return 0;
}

static void record(void *p, size_t bytes, const void *caller, int ours)
{
    if (!ours || !p)
        return;
    pthread_mutex_lock(&lock);
    track(p, bytes, caller);
    pthread_mutex_unlock(&lock);
}

static void forget(void *p)
{
    if (!p || !table)
        return;
    pthread_mutex_lock(&lock);
    untrack(p);
    pthread_mutex_unlock(&lock);
}

/* ------------------------------------------------------- the interposers */

void *malloc(size_t n)
{
    init();
    if (!real_malloc)
        return boot_alloc(n);
    const void *caller = __builtin_return_address(0);
    int ours;
    if (should_fail(caller, &ours)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = real_malloc(n);
    record(p, n, caller, ours);
    return p;
}

void *calloc(size_t m, size_t n)
{
    init();
    if (!real_calloc) {
        if (n && m > SIZE_MAX / n)
            return NULL;
        return boot_alloc(m * n); /* static memory is zero */
    }
    const void *caller = __builtin_return_address(0);
    int ours;
    if (should_fail(caller, &ours)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = real_calloc(m, n);
    record(p, m * n, caller, ours);
    return p;
}

void *realloc(void *old, size_t n)
{
    init();
    if (is_boot(old)) {
        void *p = malloc(n);
        if (p)
            memcpy(p, old, n < (size_t)(boot + sizeof boot - (char *)old)
                               ? n : (size_t)(boot + sizeof boot - (char *)old));
        return p;
    }
    const void *caller = __builtin_return_address(0);
    int ours;
    if (should_fail(caller, &ours)) {
        errno = ENOMEM;
        return NULL; /* the old block stays valid, as realloc promises */
    }
    void *p = real_realloc(old, n);
    if (p || n == 0)
        forget(old);
    record(p, n, caller, ours);
    return p;
}

void free(void *p)
{
    init();
    if (!p || is_boot(p))
        return;
    forget(p);
    real_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    init();
    const void *caller = __builtin_return_address(0);
    int ours;
    if (should_fail(caller, &ours))
        return ENOMEM;
    int rc = real_posix_memalign(out, align, n);
    if (rc == 0)
        record(*out, n, caller, ours);
    return rc;
}

void *aligned_alloc(size_t align, size_t n)
{
    init();
    const void *caller = __builtin_return_address(0);
    int ours;
    if (should_fail(caller, &ours)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = real_aligned_alloc(align, n);
    record(p, n, caller, ours);
    return p;
}

/* ---------------------------------------------------------------- report */

__attribute__((destructor)) static void report(void)
{
    const char *path = getenv("FAILALLOC_REPORT");
    /* Only a process that ran longnet's code reports: the libtool wrapper
     * script and what it starts inherit LD_PRELOAD too. */
    if (!path || !*path || counted == 0)
        return;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    char line[512];
    inside = 1;
    pthread_mutex_lock(&lock);
    int n = snprintf(line, sizeof line, "allocations %ld injected %ld leaked %ld %zu\n", counted,
                     injected, live_blocks, live_bytes);
    if (write(fd, line, (size_t)n) < 0)
        n = 0;
    int shown = 0;
    for (size_t i = 0; table && i < table_cap && shown < 10; i++) {
        if (!table[i].p || table[i].p == TOMB)
            continue;
        Dl_info info = {0};
        const char *obj = "?", *sym = "?";
        if (dladdr(table[i].caller, &info)) {
            obj = info.dli_fname ? info.dli_fname : "?";
            sym = info.dli_sname ? info.dli_sname : "?";
        }
        n = snprintf(line, sizeof line, "leak %zu bytes from %s (%s+%#lx)\n", table[i].bytes,
                     sym, obj,
                     (unsigned long)((const char *)table[i].caller - (const char *)info.dli_fbase));
        if (write(fd, line, (size_t)n) < 0)
            break;
        shown++;
    }
    pthread_mutex_unlock(&lock);
    close(fd);
}
