/* plugin_direct.c — see plugin_direct.h. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "longnet.h"
#include "plugin_direct.h"

const lnet_plugin *plugin_direct_open(const char *name, void **module)
{
    lnet_context *ctx = NULL;
    ck_assert_msg(lnet_context_create(NULL, &ctx) == LNET_OK, "context: %s", lnet_last_error());
    const char *path = NULL;
    for (int i = 0; i < lnet_context_plugin_count(ctx); i++) {
        lnet_plugin_info info;
        if (lnet_context_plugin(ctx, i, &info) == LNET_OK && info.loaded && info.name &&
            strcmp(info.name, name) == 0)
            path = info.path;
    }
    ck_assert_msg(path != NULL, "the %s plugin is not loaded", name);

    /* The recorded path is a base name in the build tree (no .la/.so). */
    char base[4096], cand[3][4200];
    snprintf(base, sizeof base, "%s", path);
    size_t len = strlen(base);
    if (len > 3 && (strcmp(base + len - 3, ".la") == 0 || strcmp(base + len - 3, ".so") == 0))
        base[len - 3] = '\0';
    const char *slash = strrchr(base, '/');
    const char *file = slash ? slash + 1 : base;
    int dir_len = slash ? (int)(slash - base) : 1;
    const char *dir = slash ? base : ".";
    snprintf(cand[0], sizeof cand[0], "%.*s/.libs/%s.so", dir_len, dir, file);
    snprintf(cand[1], sizeof cand[1], "%s.so", base);
    snprintf(cand[2], sizeof cand[2], "%s", path);
    *module = NULL;
    for (int i = 0; i < 3 && !*module; i++)
        *module = dlopen(cand[i], RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(*module != NULL, "cannot dlopen the %s plugin found at %s", name, path);
    lnet_context_free(ctx);

    lnet_plugin_entry_fn entry;
    *(void **)&entry = dlsym(*module, LNET_PLUGIN_ENTRY_SYMBOL);
    ck_assert_msg(entry != NULL, "no %s in the %s plugin", LNET_PLUGIN_ENTRY_SYMBOL, name);
    const lnet_plugin *table = entry();
    ck_assert(table != NULL);
    ck_assert_uint_eq(table->abi_version, LNET_PLUGIN_ABI_VERSION);
    ck_assert_str_eq(table->name, name);
    return table;
}
