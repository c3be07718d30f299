/* plugin_loader.h — finding, loading and validating backend plugins with
 * libltdl. Modules are shared process-wide: each file is opened and probed
 * once however many contexts use it, and closed when the last one goes. */
#ifndef LNET_PLUGIN_LOADER_H
#define LNET_PLUGIN_LOADER_H

#include <stddef.h>

#include "longnet-plugin.h"
#include "longnet.h"

typedef struct lnet_module lnet_module; /* one loaded, probed module */

/* What the search found: one record per module file tried. */
typedef struct lnet_plugin_record {
    char *path;
    lnet_module *module;   /* NULL when refused */
    const lnet_plugin *table; /* NULL when refused */
    uint32_t abi_version;  /* as read from the table, 0 if never read */
    int n_devices;
    char reason[512];      /* why it was refused */
} lnet_plugin_record;

typedef struct lnet_plugin_list {
    lnet_plugin_record *items;
    int count;
} lnet_plugin_list;

/* Searches `first_path` (may be NULL), then $LONGNET_PLUGIN_PATH, then, unless
 * no_default_paths, the build tree's backends (when this library runs from
 * its build tree) or the installed plugin directory. Every refused module is
 * reported through `log` as a warning and kept in the list with its reason.
 * Fails only when out of memory. */
lnet_status lnet_plugins_load(lnet_plugin_list *list, const char *first_path,
                              int no_default_paths, lnet_log_fn log, void *log_user);
void lnet_plugins_release(lnet_plugin_list *list);

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
