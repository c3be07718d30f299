/* plugin_loader.h — finding, loading and validating backend plugins with
 * libltdl. Modules are shared process-wide: each file is opened and probed
 * once however many contexts use it, and closed when the last one goes. */
#ifndef LNET_PLUGIN_LOADER_H
#define LNET_PLUGIN_LOADER_H

#include <stddef.h>

#include "longnet-plugin.h"
#include "longnet.h"

typedef struct lnet_module lnet_module; /* one loaded, probed module */

/* What the search found: one record per module file tried. A module is
 * opened and its table checked when it is found, but probed (which may load
 * a whole runtime: an OpenCL platform's ICD drivers) only when one of its
 * devices is asked for: lnet_plugins_probe_backend. */
typedef struct lnet_plugin_record {
    char *path;
    lnet_module *module;   /* NULL when refused before probing */
    const lnet_plugin *table; /* set once probed and serving; NULL otherwise */
    uint32_t abi_version;  /* as read from the table, 0 if never read */
    int standby;           /* 1: opened, table checked, its backend not probed yet */
    int probed;            /* 1 once its probe ran (table says how it went) */
    int n_devices;         /* after the probe */
    char reason[512];      /* why it was refused */
    char choice[512];      /* serving: which rivals of its name it was kept over, and why */
} lnet_plugin_record;

typedef struct lnet_plugin_list {
    lnet_plugin_record *items;
    int count;
} lnet_plugin_list;

/* Searches `first_path` (may be NULL), then $LONGNET_PLUGIN_PATH, then, unless
 * no_default_paths, the build tree's backends (when this library runs from
 * its build tree) or the installed plugin directory, opening each module
 * and checking its table (no probe). Every refused module is reported
 * through `log` as a warning and kept in the list with its reason. Fails
 * only when out of memory. */
lnet_status lnet_plugins_load(lnet_plugin_list *list, const char *first_path,
                              int no_default_paths, lnet_log_fn log, void *log_user);
void lnet_plugins_release(lnet_plugin_list *list);

/* The backend name of a record that serves or stands by; NULL if refused. */
const char *lnet_plugin_record_name(const lnet_plugin_record *rec);

/* Probes the backend `name` (name_len characters): its modules standing by,
 * highest score() first (search order among equal scores), until one's
 * probe succeeds; that one serves (table set) and every other one of the
 * name is refused, its reason saying whose score won. A module's probe
 * runs once for as long as it stays open, and every list holding it gets
 * that result. Each refusal is a warning through `log`, as is a probe's
 * probe_warning. Takes the registry lock. */
void lnet_plugins_probe_backend(lnet_plugin_list *list, const char *name, size_t name_len,
                                lnet_log_fn log, void *log_user);

/* The registry's lock, for the calls the SDK promises a plugin are made
 * from one thread at a time (probe, describe, open, close: longnet-plugin.h,
 * Threading) when contexts are created, used and freed by several threads. */
void lnet_plugins_lock(void);
void lnet_plugins_unlock(void);

/* Checks a plugin table returned by an entry point before any slot is
 * called: ABI version, size, required slots, name. 0 if acceptable, else -1
 * with the reason in `why`. */
int lnet_plugin_table_check(const lnet_plugin *table, char *why, size_t why_len);

#endif /* LNET_PLUGIN_LOADER_H */
