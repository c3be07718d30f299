/* plugin_loader.c — the plugin registry on libltdl (DESIGN §2, Plugins). */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ltdl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "plugin_loader.h"

#ifndef LNET_PLUGIN_DIR
#define LNET_PLUGIN_DIR ""
#endif
#ifndef LNET_BUILD_DIR
#define LNET_BUILD_DIR ""
#endif

/* A module file opened through libltdl, shared by every context. */
struct lnet_module {
    char *path;              /* canonical path of the file asked for */
    lt_dlhandle handle;
    const lnet_plugin *table; /* &copy */
    /* The plugin's table, its optional slots past the plugin's own size left
     * NULL: a module built before a slot was added never has it read. */
    lnet_plugin copy;
    int probe_state;   /* 0 not probed yet, 1 probed, -1 its probe failed */
    int n_devices;
    char probe_error[480]; /* why the probe failed */
    char warning[256]; /* the probe's probe_warning, "" for none */
    int score;         /* the table's score(), 0 without the slot */
    int refs;
    lnet_module *next;
};

/* Whether the table's own size covers the whole of an optional slot: a size
 * that ends inside a pointer must not leave half of one to be called. */
#define LNET_TABLE_HAS(t, slot) \
    ((t)->size >= offsetof(lnet_plugin, slot) + sizeof((t)->slot))

/* libltdl is not thread-safe, and a module must be probed once: one lock
 * guards libltdl, the module list and every probe/shutdown call. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static lnet_module *modules;
static int ltdl_users;
static int ltdl_ready; /* lt_dlinit done, until the last context goes */

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void lnet_plugins_lock(void)
{
    pthread_mutex_lock(&registry_lock);
}

void lnet_plugins_unlock(void)
{
    pthread_mutex_unlock(&registry_lock);
}

int lnet_plugin_table_check(const lnet_plugin *t, char *why, size_t len)
{
    if (!t) {
        snprintf(why, len, "entry point returned no plugin table");
        return -1;
    }
    if (t->abi_version == 1) {
        /* The one break: ABI 1 structs carry no size, so nothing about
         * them can be read safely by an ABI 2 core. */
        snprintf(why, len, "plugin ABI version 1 is no longer loaded (this longnet loads ABI %u "
                 "to %u; ABI 2 added sizes to every struct): rebuild the plugin against "
                 "longnet-plugin.h of ABI %u", LNET_PLUGIN_ABI_MIN, LNET_PLUGIN_ABI_VERSION,
                 LNET_PLUGIN_ABI_VERSION);
        return -1;
    }
    if (t->abi_version < LNET_PLUGIN_ABI_MIN || t->abi_version > LNET_PLUGIN_ABI_VERSION) {
        snprintf(why, len, "plugin ABI version %u, but this longnet loads ABI %u to %u%s",
                 t->abi_version, LNET_PLUGIN_ABI_MIN, LNET_PLUGIN_ABI_VERSION,
                 t->abi_version > LNET_PLUGIN_ABI_VERSION ? " (the plugin is newer: update longnet)"
                                                          : "");
        return -1;
    }
    if (t->size < LNET_PLUGIN_REQUIRED_SIZE) {
        snprintf(why, len, "plugin table is %u bytes, ABI %u needs at least %zu", t->size,
                 LNET_PLUGIN_ABI_VERSION, (size_t)LNET_PLUGIN_REQUIRED_SIZE);
        return -1;
    }
    if (!t->name || !t->name[0] || strlen(t->name) > 32) {
        snprintf(why, len, "plugin name is missing or longer than 32 characters");
        return -1;
    }
    for (const char *c = t->name; *c; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) {
            snprintf(why, len, "plugin name '%.32s' has a character other than [a-z0-9_]", t->name);
            return -1;
        }
    }
    /* Every slot but buffer_wrap_host is required. */
    struct { const char *name; const void *fn; } slots[] = {
        {"probe", (const void *)t->probe},
        {"shutdown", (const void *)t->shutdown},
        {"describe", (const void *)t->describe},
        {"open", (const void *)t->open},
        {"close", (const void *)t->close},
        {"buffer_alloc", (const void *)t->buffer_alloc},
        {"buffer_free", (const void *)t->buffer_free},
        {"buffer_write", (const void *)t->buffer_write},
        {"buffer_read", (const void *)t->buffer_read},
        {"run_segment", (const void *)t->run_segment},
        {"synchronize", (const void *)t->synchronize},
        {"last_error", (const void *)t->last_error},
    };
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++) {
        if (!slots[i].fn) {
            snprintf(why, len, "plugin '%s' leaves the required slot '%s' empty", t->name,
                     slots[i].name);
            return -1;
        }
    }
    return 0;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

/* What kind of file a mode is, for messages. */
static const char *file_kind(mode_t mode)
{
    return S_ISDIR(mode)    ? "a directory"
           : S_ISFIFO(mode) ? "a FIFO"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISSOCK(mode) ? "a socket"
                            : "not a regular file";
}

/* Whether a module file, or a directory holding one, may be trusted to run
 * code in this process: owned by root or by this process's effective user,
 * and writable by no one else (group and others; a sticky world-writable
 * directory such as /tmp still lets anyone put a file in it). Otherwise
 * anyone who can write it chooses what runs, as whoever runs longnet (a
 * 0666 module in a 0777 directory had its constructor run as root). 0 if
 * trusted, else -1 with the reason. */
static int check_owner(const char *what, const char *path, const struct stat *st, char *why,
                       size_t len)
{
    const uid_t me = geteuid();
    if (st->st_uid != 0 && st->st_uid != me) {
        snprintf(why, len, "%s %s is owned by uid %lu, neither root nor this user (uid %lu)", what,
                 path, (unsigned long)st->st_uid, (unsigned long)me);
        return -1;
    }
    if (st->st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(why, len, "%s %s is writable by %s (mode %04lo)", what, path,
                 (st->st_mode & S_IWGRP) && (st->st_mode & S_IWOTH) ? "group and others"
                 : (st->st_mode & S_IWGRP)                          ? "its group"
                                                                    : "others",
                 (unsigned long)(st->st_mode & 07777));
        return -1;
    }
    return 0;
}

/* check_owner for the directory that holds `file` (the name as given; for
 * a symbolic link also the directory of what it leads to). */
static int check_dir_of(const char *file, char *why, size_t len)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    struct stat st;
    if (stat(dir, &st) != 0) {
        snprintf(why, len, "directory %.200s of %.200s: %s", dir, file, strerror(errno));
        return -1;
    }
    return check_owner("directory", dir, &st, why, len);
}

/* Checks one file before anything opens it: opening a FIFO blocks until a
 * writer comes (every command hung on one named longnet-x.so), and a
 * device or a directory is never a module. Symbolic links are followed
 * (an installed module may be one), and what they lead to is checked. 0 if
 * the file may be opened, else -1 with the reason, naming the file. */
static int check_file(const char *file, char *why, size_t len)
{
    struct stat lst, st;
    if (lstat(file, &lst) != 0) {
        snprintf(why, len, "%s: %s", file, strerror(errno));
        return -1;
    }
    if (stat(file, &st) != 0) {
        snprintf(why, len, "%s is a symbolic link to nothing that exists (%s)", file,
                 strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, len, "%s is %s%s, not a module file", file, file_kind(st.st_mode),
                 S_ISLNK(lst.st_mode) ? " (through a symbolic link)" : "");
        return -1;
    }
    if (check_owner("module", file, &st, why, len) || check_dir_of(file, why, len))
        return -1;
    if (S_ISLNK(lst.st_mode)) {
        char real[PATH_MAX];
        if (!realpath(file, real)) {
            snprintf(why, len, "%s: %s", file, strerror(errno));
            return -1;
        }
        if (check_dir_of(real, why, len))
            return -1;
    }
    /* libltdl says "file not found" for every file it cannot use; these
     * are the common ones, told as what they are. */
    if (st.st_size == 0) {
        snprintf(why, len, "%s is empty (0 bytes), not a module", file);
        return -1;
    }
    if (!ends_with(file, ".la")) {
        unsigned char magic[4] = {0};
        int fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            snprintf(why, len, "%s: %s", file, strerror(errno));
            return -1;
        }
        ssize_t got = read(fd, magic, sizeof magic);
        close(fd);
        if (got != (ssize_t)sizeof magic || memcmp(magic, "\177ELF", 4) != 0) {
            snprintf(why, len, "%s is not a shared object (it does not start with an ELF header)",
                     file);
            return -1;
        }
    }
    return 0;
}

/* Why the shared object `so` does not open, in the dynamic linker's words
 * (a missing library, a wrong architecture, a truncated file), which
 * libltdl's own message ("file not found") hides. Only called once libltdl
 * has failed on the file; should dlopen succeed after all, the module is
 * closed again and libltdl's message is kept. */
static void dlopen_reason(const char *so, const char *lt_msg, char *why, size_t len)
{
    dlerror();
    void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    const char *e = h ? NULL : dlerror();
    if (h)
        dlclose(h);
    snprintf(why, len, "cannot open module %.300s: %s", so,
             e && e[0] ? e : lt_msg ? lt_msg : "unknown error");
}

/* The shared object a libtool archive (.la) names, where libltdl would
 * look for it (installed: libdir; uninstalled: .libs beside the .la; then
 * beside the .la): the first that exists, so that it is checked like the
 * .la itself. 0 with the path in `so`, else -1 with the reason. */
static int la_target(const char *la, char *so, size_t so_len, char *why, size_t len)
{
    /* The .la was checked to be a regular file; O_NONBLOCK all the same,
     * in case it was swapped for a FIFO since. */
    int fd = open(la, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!f) {
        snprintf(why, len, "%s: %s", la, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char line[PATH_MAX + 32], dlname[PATH_MAX] = "", libdir[PATH_MAX] = "";
    int installed = 0;
    while (fgets(line, sizeof line, f)) {
        char *v = NULL, *dst = NULL;
        if (strncmp(line, "dlname='", 8) == 0)
            v = line + 8, dst = dlname;
        else if (strncmp(line, "libdir='", 8) == 0)
            v = line + 8, dst = libdir;
        else if (strncmp(line, "installed=yes", 13) == 0)
            installed = 1;
        if (!dst)
            continue;
        char *q = strchr(v, '\'');
        if (q && (size_t)(q - v) < PATH_MAX) {
            memcpy(dst, v, (size_t)(q - v));
            dst[q - v] = '\0';
        }
    }
    fclose(f);
    if (!dlname[0]) {
        snprintf(why, len, "%s names no shared object (no dlname): not a libtool module", la);
        return -1;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", la);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    char cand[3][PATH_MAX];
    int n = 0;
    if (installed && libdir[0] &&
        (size_t)snprintf(cand[n], sizeof cand[n], "%s/%s", libdir, dlname) < sizeof cand[n])
        n++;
    if (!installed &&
        (size_t)snprintf(cand[n], sizeof cand[n], "%s/.libs/%s", dir, dlname) < sizeof cand[n])
        n++;
    if ((size_t)snprintf(cand[n], sizeof cand[n], "%s/%s", dir, dlname) < sizeof cand[n])
        n++;
    struct stat st;
    for (int i = 0; i < n; i++) {
        const size_t n_i = strlen(cand[i]);
        if (n_i < so_len && lstat(cand[i], &st) == 0) {
            memcpy(so, cand[i], n_i + 1);
            return 0;
        }
    }
    snprintf(why, len, "%s names the shared object '%s', which is not there%s%s", la, dlname,
             n ? ": " : "", n ? cand[n - 1] : "");
    return -1;
}

/* The file lt_dlopen is given for a search result `path` (lt_dlopenext's
 * order: the name itself when it ends in .la or .so, else NAME.la, else
 * NAME.so), checked, and, for a .la, the shared object it names checked
 * too. 0 with the file in `file` (and the shared object in `so`), else -1
 * with the reason in rec. */
static int module_file(const char *path, char *file, char *so, lnet_plugin_record *rec)
{
    const size_t len = sizeof rec->reason;
    struct stat st;
    if (ends_with(path, ".la") || ends_with(path, ".so")) {
        if (strlen(path) >= PATH_MAX) {
            snprintf(rec->reason, len, "the path is longer than PATH_MAX (%d)", PATH_MAX);
            return -1;
        }
        snprintf(file, PATH_MAX, "%s", path);
    } else if ((size_t)snprintf(file, PATH_MAX, "%s.la", path) >= PATH_MAX) {
        snprintf(rec->reason, len, "the path is longer than PATH_MAX (%d)", PATH_MAX);
        return -1;
    } else if (lstat(file, &st) != 0) {
        if ((size_t)snprintf(file, PATH_MAX, "%s.so", path) >= PATH_MAX) {
            snprintf(rec->reason, len, "the path is longer than PATH_MAX (%d)", PATH_MAX);
            return -1;
        }
    }
    if (check_file(file, rec->reason, len))
        return -1;
    snprintf(so, PATH_MAX, "%s", file);
    if (ends_with(file, ".la") &&
        (la_target(file, so, PATH_MAX, rec->reason, len) || check_file(so, rec->reason, len)))
        return -1;
    return 0;
}

/* Opens, validates and probes one module file, or finds it already open.
 * Called with registry_lock held. */
static lnet_module *module_acquire(const char *path, lnet_plugin_record *rec)
{
    char file[PATH_MAX], so[PATH_MAX], canon[PATH_MAX];
    if (module_file(path, file, so, rec))
        return NULL;
    const char *key = realpath(file, canon) ? canon : file;
    for (lnet_module *m = modules; m; m = m->next) {
        if (strcmp(m->path, key) == 0) {
            m->refs++;
            return m;
        }
    }
    lt_dlhandle h = lt_dlopen(file);
    if (!h) {
        dlopen_reason(so, lt_dlerror(), rec->reason, sizeof rec->reason);
        return NULL;
    }
    lnet_plugin_entry_fn entry;
    *(void **)&entry = lt_dlsym(h, LNET_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        snprintf(rec->reason, sizeof rec->reason, "no entry symbol '%s' in the module",
                 LNET_PLUGIN_ENTRY_SYMBOL);
        lt_dlclose(h);
        return NULL;
    }
    const lnet_plugin *t = entry();
    if (t)
        rec->abi_version = t->abi_version;
    if (lnet_plugin_table_check(t, rec->reason, sizeof rec->reason)) {
        lt_dlclose(h);
        return NULL;
    }
    lnet_module *m = calloc(1, sizeof *m);
    char *p = dup_str(key);
    if (!m || !p) {
        free(m);
        free(p);
        lt_dlclose(h);
        snprintf(rec->reason, sizeof rec->reason, "out of memory");
        return NULL;
    }
    m->path = p;
    m->handle = h;
    memset(&m->copy, 0, sizeof m->copy);
    memcpy(&m->copy, t, t->size < sizeof m->copy ? t->size : sizeof m->copy);
    if (!LNET_TABLE_HAS(t, buffer_write_async))
        m->copy.buffer_write_async = NULL;
    if (!LNET_TABLE_HAS(t, probe_warning))
        m->copy.probe_warning = NULL;
    if (!LNET_TABLE_HAS(t, supports))
        m->copy.supports = NULL;
    if (!LNET_TABLE_HAS(t, run_segment_backward))
        m->copy.run_segment_backward = NULL;
    if (!LNET_TABLE_HAS(t, get_proc_address))
        m->copy.get_proc_address = NULL;
    if (!LNET_TABLE_HAS(t, take_warning))
        m->copy.take_warning = NULL;
    if (!LNET_TABLE_HAS(t, score))
        m->copy.score = NULL;
    m->score = m->copy.score ? m->copy.score() : 0;
    m->table = &m->copy;
    m->refs = 1;
    m->next = modules;
    modules = m;
    return m;
}

/* Called with registry_lock held. */
static void module_release(lnet_module *m)
{
    if (!m || --m->refs > 0)
        return;
    for (lnet_module **pp = &modules; *pp; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    }
    if (m->probe_state > 0)
        m->table->shutdown(); /* a module never probed has nothing to shut down */
    /* Unloading is safe here: modules are counted across contexts, and a
     * thread runs module code only through a context that holds it, so
     * with the count at zero no thread can be inside (test_concurrency
     * frees and creates contexts from 8 threads at once). */
    lt_dlclose(m->handle);
    free(m->path);
    free(m);
}

typedef struct search {
    lnet_plugin_list *list;
    int capacity;
    lnet_log_fn log;
    void *log_user;
    int oom;
} search;

static void log_warning(lnet_log_fn log, void *user, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_warning(lnet_log_fn log, void *user, const char *fmt, ...)
{
    if (!log)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log(LNET_LOG_WARNING, msg, user);
}

#define warn(s, ...) log_warning((s)->log, (s)->log_user, __VA_ARGS__)

/* The module's probe, once while it is open. Called with registry_lock held. */
static void module_probe(lnet_module *m)
{
    int n = 0;
    if (m->table->probe(&n) != 0 || n < 0) {
        const char *e = m->table->last_error();
        snprintf(m->probe_error, sizeof m->probe_error, "probe failed: %.400s",
                 e && e[0] ? e : "no message");
        m->probe_state = -1;
        return;
    }
    m->n_devices = n;
    m->probe_state = 1;
    if (m->table->probe_warning) {
        const char *w = m->table->probe_warning();
        if (w && w[0])
            snprintf(m->warning, sizeof m->warning, "%s", w);
    }
}

const char *lnet_plugin_record_name(const lnet_plugin_record *rec)
{
    return rec->table ? rec->table->name : rec->standby ? rec->module->table->name : NULL;
}

/* Refuses a standby record of a backend that `winner` serves, saying why
 * the winner was kept (its higher score, or found first at an equal one),
 * in the refused record's reason and in the winner's choice. */
static void refuse_rival(lnet_plugin_record *rec, lnet_plugin_record *winner, lnet_log_fn log,
                         void *log_user)
{
    const char *nm = winner->table->name;
    const int ws = winner->module->score, rs = rec->module->score;
    rec->standby = 0;
    rec->probed = 1;
    if (ws > rs)
        snprintf(rec->reason, sizeof rec->reason,
                 "backend '%s' is served by %s, whose score %d is higher than this one's %d", nm,
                 winner->path, ws, rs);
    else
        snprintf(rec->reason, sizeof rec->reason,
                 "backend '%s' is already loaded from %s (found first; both score %d)", nm,
                 winner->path, ws);
    size_t used = strlen(winner->choice);
    if (used + 1 < sizeof winner->choice)
        snprintf(winner->choice + used, sizeof winner->choice - used, "%skept over %s (%s %d %s %d)",
                 used ? "; " : "", rec->path, ws > rs ? "score" : "found first, score", ws,
                 ws > rs ? ">" : "=", rs);
    log_warning(log, log_user, "plugin %s refused: %s", rec->path, rec->reason);
}

void lnet_plugins_probe_backend(lnet_plugin_list *list, const char *name, size_t name_len,
                                lnet_log_fn log, void *log_user)
{
    pthread_mutex_lock(&registry_lock);
    lnet_plugin_record *winner = NULL;
    for (;;) {
        /* The next candidate: the standby record of the name with the
         * highest score, the first found among equals (ggml's rule). */
        lnet_plugin_record *best = NULL;
        for (int i = 0; i < list->count; i++) {
            lnet_plugin_record *rec = &list->items[i];
            const char *nm = lnet_plugin_record_name(rec);
            if (!nm || strlen(nm) != name_len || strncmp(nm, name, name_len) != 0)
                continue;
            if (!rec->standby) {
                if (rec->table)
                    winner = rec; /* probed before, and it serves */
                continue;
            }
            if (!best || rec->module->score > best->module->score)
                best = rec;
        }
        if (!best)
            break;
        if (winner) {
            /* The rest of the name, in search order. */
            for (int i = 0; i < list->count; i++) {
                lnet_plugin_record *rec = &list->items[i];
                const char *nm = lnet_plugin_record_name(rec);
                if (rec->standby && nm && strlen(nm) == name_len &&
                    strncmp(nm, name, name_len) == 0)
                    refuse_rival(rec, winner, log, log_user);
            }
            break;
        }
        best->standby = 0;
        best->probed = 1;
        lnet_module *m = best->module;
        if (m->probe_state == 0)
            module_probe(m);
        if (m->probe_state < 0) {
            /* Refused; its module stays referenced until the list is
             * released, and another module of the name may serve instead. */
            snprintf(best->reason, sizeof best->reason, "%s", m->probe_error);
            log_warning(log, log_user, "plugin %s refused: %s", best->path, best->reason);
            continue;
        }
        best->table = m->table;
        best->n_devices = m->n_devices;
        winner = best;
        /* Every context that gets the plugin hears it, not only the one
         * whose probe happened to run it. */
        if (m->warning[0])
            log_warning(log, log_user, "plugin %s: %s", best->path, m->warning);
    }
    pthread_mutex_unlock(&registry_lock);
}

static void try_module(search *s, const char *path)
{
    lnet_plugin_list *l = s->list;
    if (l->count == s->capacity) {
        int cap = s->capacity ? 2 * s->capacity : 8;
        lnet_plugin_record *items = realloc(l->items, (size_t)cap * sizeof *items);
        if (!items) {
            s->oom = 1;
            return;
        }
        l->items = items;
        s->capacity = cap;
    }
    lnet_plugin_record *rec = &l->items[l->count];
    memset(rec, 0, sizeof *rec);
    rec->path = dup_str(path);
    if (!rec->path) {
        s->oom = 1;
        return;
    }
    l->count++;
    lnet_module *m = module_acquire(path, rec);
    if (m) {
        /* The same file found twice is refused at once. */
        for (int i = 0; i + 1 < l->count; i++) {
            const lnet_plugin_record *o = &l->items[i];
            if (o->module == m) {
                snprintf(rec->reason, sizeof rec->reason, "backend '%s' is already loaded from %s",
                         m->table->name, o->path);
                module_release(m);
                m = NULL;
                break;
            }
        }
    }
    if (m) {
        /* The module of a backend name with the highest score whose probe
         * succeeds wins (the first found among equal scores), which is
         * known only once the name is probed
         * (lnet_plugins_probe_backend): until then every module of the
         * name stands by. */
        rec->module = m;
        rec->standby = 1;
        rec->abi_version = m->table->abi_version;
    } else {
        warn(s, "plugin %s refused: %s", path, rec->reason);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Module files in a directory are those named longnet-*.la or longnet-*.so;
 * each base name is opened once through lt_dlopenext, which prefers the .la. */
static void scan_dir(search *s, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        size_t len = strlen(name);
        if (strncmp(name, "longnet-", 8) != 0 || len < 11)
            continue;
        size_t base = len;
        if (strcmp(name + len - 3, ".la") == 0 || strcmp(name + len - 3, ".so") == 0)
            base = len - 3;
        else
            continue;
        int seen = 0;
        for (size_t i = 0; i < n; i++)
            if (strlen(names[i]) == base && strncmp(names[i], name, base) == 0)
                seen = 1;
        if (seen)
            continue;
        if (n == cap) {
            size_t c = cap ? 2 * cap : 8;
            char **nn = realloc(names, c * sizeof *nn);
            if (!nn) {
                s->oom = 1;
                break;
            }
            names = nn;
            cap = c;
        }
        names[n] = malloc(base + 1);
        if (!names[n]) {
            s->oom = 1;
            break;
        }
        memcpy(names[n], name, base);
        names[n][base] = '\0';
        n++;
    }
    closedir(d);
    if (n > 0) /* names is NULL for a directory with no module: qsort must not see it */
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && !s->oom; i++) {
        char path[PATH_MAX];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, names[i]) < sizeof path)
            try_module(s, path);
        else
            warn(s, "plugin %s/%s skipped: the path is longer than PATH_MAX (%d)", dir, names[i],
                 PATH_MAX);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* One entry of a search path: a directory to scan, or a module file. */
static void search_entry(search *s, const char *entry)
{
    struct stat st;
    if (!entry[0])
        return;
    if (stat(entry, &st) != 0) {
        warn(s, "plugin path entry %s does not exist", entry);
        return;
    }
    if (S_ISDIR(st.st_mode))
        scan_dir(s, entry);
    else
        try_module(s, entry);
}

static void search_path_list(search *s, const char *list)
{
    if (!list)
        return;
    const char *p = list;
    while (*p && !s->oom) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char entry[PATH_MAX];
        if (len < sizeof entry) {
            memcpy(entry, p, len);
            entry[len] = '\0';
            search_entry(s, entry);
        } else {
            /* No file can have that name: say so rather than search less
             * than was asked without a word. */
            warn(s, "plugin path entry '%.64s...' (%zu characters) skipped: longer than PATH_MAX (%d)",
                 p, len, PATH_MAX);
        }
        if (!end)
            break;
        p = end + 1;
    }
}

/* True when this library is the one in its build tree's liblongnet/.libs,
 * i.e. it runs uninstalled: then the build tree's backends are the ones to
 * load. An installed copy never looks into the build tree. */
static int running_from_build_tree(void)
{
#ifdef HAVE_DLADDR
    Dl_info info;
    char libs[PATH_MAX], self[PATH_MAX], dir[PATH_MAX];
    if (!LNET_BUILD_DIR[0] || !dladdr((void *)&lnet_plugins_load, &info) || !info.dli_fname)
        return 0;
    snprintf(dir, sizeof dir, "%s/liblongnet/.libs", LNET_BUILD_DIR);
    if (!realpath(dir, libs) || !realpath(info.dli_fname, self))
        return 0;
    size_t n = strlen(libs);
    return strncmp(self, libs, n) == 0 && self[n] == '/';
#else
    return 0;
#endif
}

static void search_build_tree(search *s)
{
    char backends[PATH_MAX];
    snprintf(backends, sizeof backends, "%s/backends", LNET_BUILD_DIR);
    DIR *d = opendir(backends);
    if (!d)
        return;
    char *subs[64];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 64) {
        if (e->d_name[0] == '.')
            continue;
        subs[n] = dup_str(e->d_name);
        if (subs[n])
            n++;
    }
    closedir(d);
    qsort(subs, n, sizeof *subs, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char dir[PATH_MAX];
        struct stat st;
        if ((size_t)snprintf(dir, sizeof dir, "%s/%s", backends, subs[i]) < sizeof dir &&
            stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && !s->oom)
            scan_dir(s, dir);
        free(subs[i]);
    }
}

lnet_status lnet_plugins_load(lnet_plugin_list *list, const char *first_path,
                              int no_default_paths, lnet_log_fn log, void *log_user)
{
    search s = {list, 0, log, log_user, 0};
    list->items = NULL;
    list->count = 0;
    pthread_mutex_lock(&registry_lock);
    if (!ltdl_ready && lt_dlinit() != 0) {
        const char *e = lt_dlerror();
        pthread_mutex_unlock(&registry_lock);
        return lnet_fail(LNET_ERR_PLUGIN, "libltdl failed to initialise: %s",
                         e ? e : "unknown error");
    }
    ltdl_ready = 1;
    ltdl_users++;
    search_path_list(&s, first_path);
    search_path_list(&s, getenv("LONGNET_PLUGIN_PATH"));
    if (!no_default_paths) {
        if (running_from_build_tree())
            search_build_tree(&s);
        else
            search_entry(&s, LNET_PLUGIN_DIR);
    }
    pthread_mutex_unlock(&registry_lock);
    if (s.oom) {
        lnet_plugins_release(list);
        return lnet_fail(LNET_ERR_NOMEM, "out of memory while loading plugins");
    }
    return LNET_OK;
}

void lnet_plugins_release(lnet_plugin_list *list)
{
    if (!list)
        return;
    pthread_mutex_lock(&registry_lock);
    for (int i = 0; i < list->count; i++) {
        module_release(list->items[i].module);
        free(list->items[i].path);
    }
    if (ltdl_users > 0 && --ltdl_users == 0 && !modules) {
        lt_dlexit();
        ltdl_ready = 0;
    }
    pthread_mutex_unlock(&registry_lock);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}
