/* test_plugins.c — the plugin loader: fixture plugins that must be refused
 * (wrong ABI, no entry symbol, failing probe), each with a warning naming
 * the reason, while the CPU backend still loads; search order; duplicates;
 * contexts sharing modules; files that are no modules (FIFOs, devices,
 * directories, empty or garbage files), each refused with its own reason;
 * modules others could have written (mode, owner, directory) skipped. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "longnet-plugin.h"
#include "longnet.h"

typedef struct warnings {
    int count;
    char text[16][1024];
} warnings;

static void collect(lnet_log_level level, const char *msg, void *user)
{
    warnings *w = user;
    if (level == LNET_LOG_WARNING && w->count < 16)
        snprintf(w->text[w->count++], sizeof w->text[0], "%s", msg);
}

static int warned(const warnings *w, const char *a, const char *b)
{
    for (int i = 0; i < w->count; i++)
        if (strstr(w->text[i], a) && strstr(w->text[i], b))
            return 1;
    return 0;
}

/* The record for the module whose path contains `needle`, or -1. */
static int find_plugin(const lnet_context *ctx, const char *needle, lnet_plugin_info *info)
{
    for (int i = 0; i < lnet_context_plugin_count(ctx); i++) {
        ck_assert_int_eq(lnet_context_plugin(ctx, i, info), LNET_OK);
        if (strstr(info->path, needle))
            return i;
    }
    return -1;
}

static lnet_context *create(const char *path, int no_defaults, warnings *w)
{
    lnet_context_options o = {.size = sizeof o, .log = collect, .log_user = w,
                              .plugin_path = path, .no_default_paths = no_defaults};
    lnet_context *ctx = NULL;
    ck_assert_msg(lnet_context_create(&o, &ctx) == LNET_OK, "%s", lnet_last_error());
    return ctx;
}

START_TEST(fixtures_refused_cpu_loads)
{
    warnings w = {0};
    lnet_context *ctx = create(FIXTURE_DIR, 0, &w);
    lnet_plugin_info info;

    ck_assert_int_ge(find_plugin(ctx, "longnet-fixture-badabi", &info), 0);
    ck_assert_int_eq(info.loaded, 0);
    ck_assert_uint_eq(info.abi_version, 999);
    ck_assert_ptr_nonnull(strstr(info.reason, "ABI version 999"));
    ck_assert(warned(&w, "longnet-fixture-badabi", "ABI version 999"));
    ck_assert(warned(&w, "longnet-fixture-badabi", "the plugin is newer: update longnet"));

    /* ABI 1 tables carry no struct sizes: the one break, said plainly. */
    ck_assert_int_ge(find_plugin(ctx, "longnet-fixture-abi1", &info), 0);
    ck_assert_int_eq(info.loaded, 0);
    ck_assert_uint_eq(info.abi_version, 1);
    ck_assert(warned(&w, "longnet-fixture-abi1", "plugin ABI version 1 is no longer loaded"));
    ck_assert(warned(&w, "longnet-fixture-abi1", "rebuild the plugin"));

    ck_assert_int_ge(find_plugin(ctx, "longnet-fixture-noentry", &info), 0);
    ck_assert_int_eq(info.loaded, 0);
    ck_assert_ptr_nonnull(strstr(info.reason, "no entry symbol 'lnet_plugin_entry'"));
    ck_assert(warned(&w, "longnet-fixture-noentry", "no entry symbol"));

    ck_assert_int_ge(find_plugin(ctx, "longnet-fixture-failprobe", &info), 0);
    ck_assert_int_eq(info.loaded, 0);
    ck_assert_ptr_nonnull(strstr(info.reason, "probe failed: fixture: no device answers"));
    ck_assert(warned(&w, "longnet-fixture-failprobe", "probe failed"));

    /* A later module of the name whose probe succeeds serves instead. */
    ck_assert_int_ge(find_plugin(ctx, "longnet-fixture-zfallback", &info), 0);
    ck_assert_msg(info.loaded, "fallback refused: %s", info.reason);
    ck_assert_str_eq(info.name, "fixture_failprobe");
    ck_assert_int_eq(info.devices, 0);

    /* The build tree's CPU backend is found without installing. */
    ck_assert_int_ge(find_plugin(ctx, "longnet-cpu", &info), 0);
    ck_assert_int_eq(info.loaded, 1);
    ck_assert_str_eq(info.name, "cpu");
    ck_assert_uint_eq(info.abi_version, LNET_PLUGIN_ABI_VERSION);
    ck_assert_int_ge(info.devices, 1);
    ck_assert_str_eq(info.reason, "");

    int idx = -1;
    ck_assert_int_eq(lnet_context_find_device(ctx, "cpu", &idx), LNET_OK);
    lnet_device_info dev;
    ck_assert_int_eq(lnet_context_device(ctx, idx, &dev), LNET_OK);
    ck_assert_str_eq(dev.backend, "cpu");
    ck_assert_int_eq(dev.index, 0);
    ck_assert_str_eq(dev.kind, "cpu");
    ck_assert_int_ge(dev.compute_units, 1);
    ck_assert_ptr_nonnull(strstr(dev.kernels, "reference"));
    ck_assert_int_eq(lnet_context_find_device(ctx, "cpu:0", &idx), LNET_OK);
    lnet_context_free(ctx);
}
END_TEST

START_TEST(env_path_searched)
{
    warnings w = {0};
    setenv("LONGNET_PLUGIN_PATH", FIXTURE_DIR "/longnet-fixture-badabi.la:/nonexistent/dir", 1);
    lnet_context *ctx = create(NULL, 1, &w);
    unsetenv("LONGNET_PLUGIN_PATH");
    lnet_plugin_info info;
    ck_assert_int_eq(lnet_context_plugin_count(ctx), 1);
    ck_assert_int_ge(find_plugin(ctx, "badabi", &info), 0);
    ck_assert_int_eq(info.loaded, 0);
    ck_assert(warned(&w, "/nonexistent/dir", "does not exist"));
    ck_assert_int_eq(lnet_context_device_count(ctx), 0);
    int idx;
    ck_assert_int_eq(lnet_context_find_device(ctx, "cpu", &idx), LNET_ERR_DEVICE);
    ck_assert_ptr_nonnull(strstr(lnet_last_error(), "unknown device 'cpu'"));
    lnet_context_free(ctx);
}
END_TEST

START_TEST(first_found_wins)
{
    /* The CPU backend given explicitly and found again in the build tree:
     * the second is refused as a duplicate, the first serves. */
    warnings w = {0};
    lnet_context *ctx = create(CPU_PLUGIN_DIR, 0, &w);
    int loaded = 0, refused = 0;
    for (int i = 0; i < lnet_context_plugin_count(ctx); i++) {
        lnet_plugin_info info;
        lnet_context_plugin(ctx, i, &info);
        if (!strstr(info.path, "longnet-cpu"))
            continue;
        if (info.loaded)
            loaded++;
        else {
            refused++;
            ck_assert_ptr_nonnull(strstr(info.reason, "already loaded"));
        }
    }
    ck_assert_int_eq(loaded, 1);
    ck_assert_int_eq(refused, 1);
    int cpu_devices = 0;
    for (int i = 0; i < lnet_context_device_count(ctx); i++) {
        lnet_device_info dev;
        ck_assert_int_eq(lnet_context_device(ctx, i, &dev), LNET_OK);
        cpu_devices += strcmp(dev.backend, "cpu") == 0;
    }
    ck_assert_int_eq(cpu_devices, 1);
    lnet_context_free(ctx);
}
END_TEST

START_TEST(device_specs)
{
    warnings w = {0};
    lnet_context *ctx = create(NULL, 0, &w);
    int idx;
    ck_assert_int_eq(lnet_context_find_device(ctx, "cpu:7", &idx), LNET_ERR_DEVICE);
    ck_assert_ptr_nonnull(strstr(lnet_last_error(), "'cpu:7' does not exist"));
    ck_assert_int_eq(lnet_context_find_device(ctx, "cpu:x", &idx), LNET_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lnet_last_error(), "'x'"));
    ck_assert_int_eq(lnet_context_find_device(ctx, "cpu:-1", &idx), LNET_ERR_INVALID);
    ck_assert_int_eq(lnet_context_find_device(ctx, "tpu", &idx), LNET_ERR_DEVICE);
    ck_assert_ptr_nonnull(strstr(lnet_last_error(), "'tpu'"));
    ck_assert_ptr_nonnull(strstr(lnet_last_error(), "cpu:0"));
    ck_assert_int_eq(lnet_context_find_device(ctx, "", &idx), LNET_ERR_INVALID);
    lnet_device_info dev;
    ck_assert_int_eq(lnet_context_device(ctx, 99, &dev), LNET_ERR_INVALID);
    lnet_plugin_info info;
    ck_assert_int_eq(lnet_context_plugin(ctx, -1, &info), LNET_ERR_INVALID);
    lnet_context_free(ctx);
}
END_TEST

START_TEST(contexts_share_modules)
{
    warnings w = {0};
    lnet_context *a = create(NULL, 0, &w);
    lnet_context *b = create(NULL, 0, &w);
    ck_assert_int_eq(lnet_context_device_count(a), lnet_context_device_count(b));
    lnet_context_free(a);
    /* b still works after a released its reference to the module. */
    int idx;
    ck_assert_int_eq(lnet_context_find_device(b, "cpu", &idx), LNET_OK);
    lnet_device_info dev;
    ck_assert_int_eq(lnet_context_device(b, idx, &dev), LNET_OK);
    ck_assert_str_eq(dev.backend, "cpu");
    lnet_context_free(b);
    ck_assert_int_eq(w.count, 0);
}
END_TEST

/* A fresh directory of its own (0700, the caller's), for files the loader
 * must meet: mkdtemp under /tmp. */
static void make_dir(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/longnet-plugins-XXXXXX");
    ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
}

static void path_in(char *buf, size_t len, const char *dir, const char *name)
{
    ck_assert((size_t)snprintf(buf, len, "%s/%s", dir, name) < len);
}

/* Issue 10, 10b: a FIFO named like a module hung every command (opening a
 * FIFO blocks until a writer comes). Found in a directory, given as a path
 * entry, as a .so or as a .la: refused, named, and nothing waits. */
START_TEST(fifo_refused)
{
    char dir[64], so[128], la[128];
    make_dir(dir, sizeof dir);
    path_in(so, sizeof so, dir, "longnet-fifo.so");
    path_in(la, sizeof la, dir, "longnet-fifola.la");
    ck_assert_int_eq(mkfifo(so, 0600), 0);
    ck_assert_int_eq(mkfifo(la, 0600), 0);
    alarm(20); /* a hang is a failure, not a stuck suite */

    warnings w = {0};
    lnet_context *ctx = create(dir, 1, &w);
    lnet_plugin_info info;
    ck_assert_int_ge(find_plugin(ctx, "longnet-fifo", &info), 0);
    ck_assert_int_eq(info.loaded, 0);
    ck_assert_msg(strstr(info.reason, "a FIFO") && strstr(info.reason, so), "%s", info.reason);
    ck_assert_int_ge(find_plugin(ctx, "longnet-fifola", &info), 0);
    ck_assert_msg(strstr(info.reason, "a FIFO") && strstr(info.reason, la), "%s", info.reason);
    ck_assert(warned(&w, "longnet-fifo.so", "a FIFO"));
    ck_assert(warned(&w, "longnet-fifola.la", "a FIFO"));
    ck_assert_int_eq(lnet_context_device_count(ctx), 0);
    lnet_context_free(ctx);

    /* The FIFO itself as an entry of the path. */
    memset(&w, 0, sizeof w);
    ctx = create(so, 1, &w);
    ck_assert_int_eq(lnet_context_plugin_count(ctx), 1);
    ck_assert(warned(&w, "longnet-fifo.so", "a FIFO"));
    lnet_context_free(ctx);
    alarm(0);
    unlink(so);
    unlink(la);
    rmdir(dir);
}
END_TEST

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* Issue 10, 12: files that are no modules were all refused as "file not
 * found" (libltdl's word for anything it cannot use); each now gets its
 * real reason, naming the file. And a path entry longer than PATH_MAX was
 * dropped without a word. */
START_TEST(refusals_say_why)
{
    char dir[64], f[8][160];
    make_dir(dir, sizeof dir);
    const char *names[] = {"longnet-empty.so", "longnet-garbage.so", "longnet-null.so",
                           "longnet-dir.so", "longnet-shortelf.so", "longnet-junk.la"};
    for (int i = 0; i < 6; i++)
        path_in(f[i], sizeof f[i], dir, names[i]);
    write_file(f[0], "", 0);
    write_file(f[1], "this is not a module\n", 21);
    ck_assert_int_eq(symlink("/dev/null", f[2]), 0);
    ck_assert_int_eq(mkdir(f[3], 0700), 0);
    write_file(f[4], "\177ELF\002\001\001", 7); /* an ELF header cut short */
    write_file(f[5], "# not libtool's\nname='x'\n", 25);

    static const struct { const char *name, *why; } want[] = {
        {"longnet-empty", "is empty (0 bytes)"},
        {"longnet-garbage", "does not start with an ELF header"},
        {"longnet-null", "a character device (through a symbolic link)"},
        {"longnet-dir", "is a directory"},
        {"longnet-shortelf", "cannot open module"},
        {"longnet-junk", "names no shared object"},
    };
    warnings w = {0};
    lnet_context *ctx = create(dir, 1, &w);
    for (int i = 0; i < 6; i++) {
        lnet_plugin_info info;
        ck_assert_msg(find_plugin(ctx, want[i].name, &info) >= 0, "%s not listed", want[i].name);
        ck_assert_int_eq(info.loaded, 0);
        ck_assert_msg(strstr(info.reason, want[i].why) && strstr(info.reason, f[i]) &&
                          !strstr(info.reason, "file not found"),
                      "%s: reason '%s' (should say '%s' and name %s)", want[i].name, info.reason,
                      want[i].why, f[i]);
        ck_assert(warned(&w, names[i], want[i].why));
    }
    /* The truncated ELF is told in the dynamic linker's words. */
    lnet_plugin_info info;
    find_plugin(ctx, "longnet-shortelf", &info);
    ck_assert_msg(strstr(info.reason, "short") || strstr(info.reason, "ELF") ||
                      strstr(info.reason, "invalid"),
                  "shortelf: '%s'", info.reason);
    lnet_context_free(ctx);

    /* A path entry longer than PATH_MAX, between two ordinary ones. */
    size_t n = PATH_MAX + 100;
    char *list = malloc(n + 64);
    ck_assert_ptr_nonnull(list);
    int at = snprintf(list, n + 64, "/nonexistent/a:");
    memset(list + at, 'x', n);
    snprintf(list + at + n, 64, ":/nonexistent/b");
    memset(&w, 0, sizeof w);
    ctx = create(list, 1, &w);
    ck_assert(warned(&w, "longer than PATH_MAX", "xxxx"));
    ck_assert(warned(&w, "/nonexistent/a", "does not exist"));
    ck_assert(warned(&w, "/nonexistent/b", "does not exist"));
    lnet_context_free(ctx);
    free(list);

    for (int i = 0; i < 6; i++)
        i == 3 ? rmdir(f[i]) : unlink(f[i]);
    rmdir(dir);
}
END_TEST

static void copy_file(const char *from, const char *to, mode_t mode)
{
    FILE *in = fopen(from, "rb");
    ck_assert_msg(in != NULL, "%s: %s", from, strerror(errno));
    FILE *out = fopen(to, "wb");
    ck_assert_msg(out != NULL, "%s: %s", to, strerror(errno));
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
    ck_assert_int_eq(chmod(to, mode), 0);
}

/* Loads `path` alone; returns whether the CPU backend came up from it,
 * and leaves the record's reason (if refused) in `reason`. */
static int loads(const char *path, char *reason, size_t len, warnings *w)
{
    memset(w, 0, sizeof *w);
    lnet_context *ctx = create(path, 1, w);
    lnet_plugin_info info;
    int i = find_plugin(ctx, "longnet-", &info);
    ck_assert_int_ge(i, 0);
    snprintf(reason, len, "%s", info.reason);
    int ok = info.loaded;
    lnet_context_free(ctx);
    return ok;
}

/* Issue 10, 11: a module anyone could write (0666, or owned by nobody, or in
 * a 0777 directory) had its constructor run as root. Such modules and
 * directories are skipped with the reason; the same module, root's (or
 * the caller's) and 0644 in a 0700 directory, loads. */
START_TEST(untrusted_modules_skipped)
{
    char dir[64], mod[128], reason[512];
    make_dir(dir, sizeof dir);
    path_in(mod, sizeof mod, dir, "longnet-cpu.so");
    copy_file(CPU_PLUGIN_DIR "/.libs/longnet-cpu.so", mod, 0644);
    warnings w;

    ck_assert_msg(loads(dir, reason, sizeof reason, &w), "the control does not load: %s", reason);

    /* Writable by others, or by the group: found in a directory or named. */
    static const mode_t modes[] = {0666, 0646, 0664};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(chmod(mod, modes[i]), 0);
        const char *entries[2] = {dir, mod};
        for (int e = 0; e < 2; e++) {
            ck_assert_msg(!loads(entries[e], reason, sizeof reason, &w),
                          "mode %04o loaded (entry %s)", (unsigned)modes[i], entries[e]);
            ck_assert_msg(strstr(reason, mod) && strstr(reason, "writable by"), "%s", reason);
            ck_assert(warned(&w, mod, "writable by"));
        }
    }
    ck_assert_int_eq(chmod(mod, 0644), 0);

    /* In a directory others may write, sticky (as /tmp) or not. */
    static const mode_t dir_modes[] = {0777, 01777, 0770};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(chmod(dir, dir_modes[i]), 0);
        ck_assert_msg(!loads(dir, reason, sizeof reason, &w), "directory mode %04o loaded",
                      (unsigned)dir_modes[i]);
        ck_assert_msg(strstr(reason, "directory") && strstr(reason, dir) &&
                          strstr(reason, "writable by"),
                      "%s", reason);
    }
    ck_assert_int_eq(chmod(dir, 0700), 0);

    /* A link in a trusted directory to a module in an untrusted one. */
    char other[64], target[128], link[128];
    make_dir(other, sizeof other);
    path_in(target, sizeof target, other, "module.so");
    path_in(link, sizeof link, dir, "longnet-link.so");
    copy_file(mod, target, 0644);
    ck_assert_int_eq(chmod(other, 0777), 0);
    ck_assert_int_eq(symlink(target, link), 0);
    ck_assert_msg(!loads(link, reason, sizeof reason, &w), "link into a 0777 directory loaded");
    ck_assert_msg(strstr(reason, other) && strstr(reason, "writable by"), "%s", reason);
    unlink(link);
    unlink(target);
    rmdir(other);

    /* Owned by someone else (nobody): root can hand a file over. */
    if (geteuid() == 0) {
        ck_assert_int_eq(chown(mod, 65534, 65534), 0);
        ck_assert_msg(!loads(dir, reason, sizeof reason, &w), "nobody's module loaded");
        ck_assert_msg(strstr(reason, mod) && strstr(reason, "owned by uid 65534"), "%s", reason);
        ck_assert_int_eq(chown(mod, 0, 0), 0);
        ck_assert_int_eq(chown(dir, 65534, 65534), 0);
        ck_assert_msg(!loads(dir, reason, sizeof reason, &w), "module in nobody's directory loaded");
        ck_assert_msg(strstr(reason, dir) && strstr(reason, "owned by uid 65534"), "%s", reason);
        ck_assert_int_eq(chown(dir, 0, 0), 0);
    } else {
        printf("note: not root: the other-owner check is skipped\n");
    }
    ck_assert_msg(loads(dir, reason, sizeof reason, &w), "the control does not load: %s", reason);
    unlink(mod);
    rmdir(dir);
}
END_TEST

START_TEST(bad_options)
{
    lnet_context_options o = {0};
    lnet_context *ctx = NULL;
    ck_assert_int_eq(lnet_context_create(&o, &ctx), LNET_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lnet_last_error(), "size"));
    ck_assert_int_eq(lnet_context_create(NULL, NULL), LNET_ERR_INVALID);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("plugins");
    TCase *tc = tcase_create("loader");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, fixtures_refused_cpu_loads);
    tcase_add_test(tc, env_path_searched);
    tcase_add_test(tc, first_found_wins);
    tcase_add_test(tc, device_specs);
    tcase_add_test(tc, contexts_share_modules);
    tcase_add_test(tc, bad_options);
    tcase_add_test(tc, fifo_refused);
    tcase_add_test(tc, refusals_say_why);
    tcase_add_test(tc, untrusted_modules_skipped);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
