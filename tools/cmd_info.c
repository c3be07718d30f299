#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cmd_info.c — `longnet info`: what the library found on this machine, the
 * plugins (loaded or refused, and why) and the devices they offer. It is the
 * first thing to run when a device is missing, so it reports refused plugins
 * rather than failing on them. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cmd_info_usage(FILE *out)
{
    fputs("Usage: longnet info\n"
          "\n"
          "Lists every plugin found (module path, backend name, plugin ABI\n"
          "version, loaded or the reason it was refused, devices it added) and\n"
          "every device (its spec for --device such as cpu:0, name, kind,\n"
          "memory, compute units, kernels; the first kernel is the default).\n"
          "Warnings from loading plugins are also written to standard error.\n"
          "Exits 0 even when some plugins were refused.\n", out);
}

/* Warnings raised while the context loads plugins, kept so they can be
 * printed once the context exists (and counted in the report). */
typedef struct warnings {
    char **items;
    int count;
    int cap;
    int lost; /* ones that could not be stored (out of memory) */
} warnings;

static void collect_warning(lnet_log_level level, const char *message, void *user)
{
    warnings *w = user;
    if (level < LNET_LOG_WARNING || !message)
        return;
    if (w->count == w->cap) {
        int cap = w->cap ? 2 * w->cap : 8;
        char **items = realloc(w->items, (size_t)cap * sizeof *items);
        if (!items) {
            w->lost++;
            return;
        }
        w->items = items;
        w->cap = cap;
    }
    char *copy = malloc(strlen(message) + 1);
    if (!copy) {
        w->lost++;
        return;
    }
    strcpy(copy, message);
    w->items[w->count++] = copy;
}

static void warnings_free(warnings *w)
{
    for (int i = 0; i < w->count; i++)
        free(w->items[i]);
    free(w->items);
}

static void print_memory(uint64_t bytes)
{
    const double gib = 1024.0 * 1024.0 * 1024.0, mib = 1024.0 * 1024.0;
    if (bytes == 0)
        printf("unknown");
    else if ((double)bytes >= gib)
        printf("%.1f GiB", (double)bytes / gib);
    else
        printf("%.1f MiB", (double)bytes / mib);
}

static void print_plugins(const lnet_context *ctx)
{
    int n = lnet_context_plugin_count(ctx);
    printf("Plugins (%d):\n", n);
    if (n == 0)
        printf("  none found\n");
    for (int i = 0; i < n; i++) {
        lnet_plugin_info p;
        if (lnet_context_plugin(ctx, i, &p) != LNET_OK) {
            printf("  #%d: %s\n", i, lnet_last_error());
            continue;
        }
        printf("  %s\n", p.path ? p.path : "(unknown path)");
        printf("    name: %s", p.name ? p.name : "-");
        if (p.abi_version)
            printf(", ABI %u", (unsigned)p.abi_version);
        else
            printf(", ABI unknown");
        if (p.loaded)
            printf(", loaded, %d device%s\n", p.devices, p.devices == 1 ? "" : "s");
        else
            printf(", refused: %s\n", p.reason && *p.reason ? p.reason : "(no reason given)");
        if (p.loaded && p.description && *p.description)
            printf("    %s\n", p.description);
        const char *choice = lnet_context_plugin_choice(ctx, i);
        if (p.loaded && choice[0])
            printf("    %s\n", choice);
    }
}

static void print_devices(const lnet_context *ctx)
{
    int n = lnet_context_device_count(ctx);
    printf("Devices (%d):\n", n);
    if (n == 0)
        printf("  none\n");
    for (int i = 0; i < n; i++) {
        lnet_device_info d;
        if (lnet_context_device(ctx, i, &d) != LNET_OK) {
            printf("  #%d: %s\n", i, lnet_last_error());
            continue;
        }
        printf("  %s:%d  %s\n", d.backend ? d.backend : "?", d.index,
               d.name && *d.name ? d.name : "(unnamed)");
        printf("    kind: %s, memory: ", d.kind ? d.kind : "other");
        print_memory(d.memory_bytes);
        printf(", compute units: %d\n", d.compute_units);
        printf("    kernels: %s\n", d.kernels && *d.kernels ? d.kernels : "(none)");
    }
}

int cmd_info_main(int argc, char **argv)
{
    cli_set_prog("longnet info");
    static const cli_option options[] = { { NULL, 0, 0 } };
    cli_parser p;
    cli_parser_init(&p, argc, argv, options);
    for (int id; (id = cli_next_option(&p)) != CLI_OPT_END;) {
        if (id == CLI_OPT_HELP) {
            cmd_info_usage(stdout);
            return CLI_EXIT_OK;
        }
        return CLI_EXIT_USAGE; /* cli_next_option printed why */
    }

    warnings w = { 0 };
    lnet_context_options copts = { .size = sizeof copts, .log = collect_warning,
                                   .log_user = &w };
    lnet_context *ctx = NULL;
    if (lnet_context_create(&copts, &ctx) != LNET_OK) {
        for (int i = 0; i < w.count; i++)
            cli_warning("%s", w.items[i]);
        warnings_free(&w);
        return cli_lib_error("cannot create a context");
    }
    /* info lists every device, so every backend is probed now, before the
     * warnings (a failed probe among them) are printed. */
    (void)lnet_context_device_count(ctx);
    for (int i = 0; i < w.count; i++)
        cli_warning("%s", w.items[i]);
    if (w.lost)
        cli_warning("%d more warning(s) lost (out of memory)", w.lost);

    printf("longnet %s\n", lnet_version());
    print_plugins(ctx);
    print_devices(ctx);
    if (w.count + w.lost > 0)
        printf("Warnings: %d (on standard error)\n", w.count + w.lost);

    lnet_context_free(ctx);
    warnings_free(&w);
    return CLI_EXIT_OK;
}
