#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* test_opencl_cache.c — the OpenCL program cache trusts only what the
 * caller alone can write (backends/opencl/ocl_cache.c): a cached binary is
 * native code run in the caller's process.
 *
 * The planted entry is the real attack: the entry of the D = 16 program,
 * header and SHA-256 intact, carrying the binary of another program (the
 * D = 12 one, a "modified kernel"). First, in a trusted directory with a
 * trusted entry, it is shown to be taken (the results go wrong); then, for
 * an entry of mode 0644, an entry owned by another user (as root, chown to
 * nobody), an entry that is a symbolic link, a directory of mode 0777 or
 * 0770 and a directory owned by another user, the same planted binary is
 * not taken: the results are right, the planted file is left as it was,
 * and nothing is written into an untrusted directory. The first refusal
 * leaves its reason in the plugin's last-error message (once per process).
 *
 * Skips (exit 77) only when no OpenCL device exists. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../backends/opencl-common/ocl_sha256.h"
#include "longnet-plugin.h"
#include "longnet.h"
#include "opencl_test.h"
#include "plugin_direct.h"
#include "seeded_rng.h"

#define TOL 1e-4

static char root[256];
static const lnet_plugin *ocl;
static void *ocl_module;

/* ------------------------------------------------------------ running */

/* max |opencl:0 - cpu reference| of a problem of head dimension D, each
 * run in a fresh context (so the program comes from the cache or a build,
 * never from a device's memory). */
static double run_error(int64_t D)
{
    const int64_t B = 1, N = 40, H = 2;
    const size_t n4 = (size_t)(B * N * H * D), n3 = (size_t)(B * H * N);
    float *in[3], *out[2], *lse[2];
    uint64_t s = 31 + (uint64_t)D;
    for (int i = 0; i < 3; i++) {
        in[i] = malloc(n4 * sizeof(float));
        ck_assert(in[i]);
        for (size_t j = 0; j < n4; j++)
            in[i][j] = (float)rng_real(&s, -1, 1);
    }
    static const char *const dev[2] = {"cpu", "opencl:0"}, *const kern[2] = {"reference", "fused"};
    for (int r = 0; r < 2; r++) {
        out[r] = malloc(n4 * sizeof(float));
        lse[r] = malloc(n3 * sizeof(float));
        ck_assert(out[r] && lse[r]);
        lnet_context *cx = NULL;
        lnet_config *cfg = NULL;
        ck_assert_msg(lnet_context_create(NULL, &cx) == LNET_OK, "%s", lnet_last_error());
        ck_assert(lnet_config_create(&cfg) == LNET_OK);
        ck_assert(lnet_config_parse_levels(cfg, "16,40", "1,2") == LNET_OK);
        int64_t s4[4] = {B, N, H, D}, s3[3] = {B, H, N};
        lnet_tensor *t[5];
        float *data[5] = {in[0], in[1], in[2], out[r], lse[r]};
        for (int i = 0; i < 5; i++)
            ck_assert(lnet_tensor_wrap(data[i], i < 4 ? 4 : 3, i < 4 ? s4 : s3, &t[i]) == LNET_OK);
        lnet_run_options o = {.size = sizeof o, .device = dev[r], .kernel = kern[r]};
        ck_assert_msg(lnet_attention_forward(cx, cfg, t[0], t[1], t[2], t[3], t[4], &o) ==
                          LNET_OK,
                      "%s: %s", dev[r], lnet_last_error());
        for (int i = 0; i < 5; i++)
            lnet_tensor_free(t[i]);
        lnet_config_free(cfg);
        lnet_context_free(cx);
    }
    double m = 0;
    for (size_t i = 0; i < n4; i++) {
        double d = fabs((double)out[0][i] - (double)out[1][i]);
        if (!(d <= m))
            m = isnan(d) ? INFINITY : d;
    }
    for (size_t i = 0; i < n3; i++) {
        double d = fabs((double)lse[0][i] - (double)lse[1][i]);
        if (!(d <= m))
            m = isnan(d) ? INFINITY : d;
    }
    for (int i = 0; i < 3; i++)
        free(in[i]);
    for (int r = 0; r < 2; r++) {
        free(out[r]);
        free(lse[r]);
    }
    return m;
}

/* ------------------------------------------------------------- files */

/* The names of the entries in `dir`, as one string "a\nb\n" (sorted). */
static void list_dir(const char *dir, char *buf, size_t len)
{
    char names[16][128];
    int n = 0;
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    struct dirent *e;
    while ((e = readdir(d)) && n < 16)
        if (e->d_name[0] != '.')
            snprintf(names[n++], sizeof names[0], "%.120s", e->d_name);
    closedir(d);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(names[j], names[i]) < 0) {
                char t[128];
                memcpy(t, names[i], sizeof t);
                memcpy(names[i], names[j], sizeof t);
                memcpy(names[j], t, sizeof t);
            }
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        strncat(buf, names[i], len - strlen(buf) - 1);
        strncat(buf, "\n", len - strlen(buf) - 1);
    }
}

/* The entry `dir` gained since `before` (exactly one). */
static void new_entry(const char *dir, const char *before, char *name, size_t len)
{
    char now[4096];
    list_dir(dir, now, sizeof now);
    int found = 0;
    for (char *p = now, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
        *nl = '\0';
        char line[140];
        snprintf(line, sizeof line, "%.120s\n", p);
        if (!strstr(before, line)) {
            snprintf(name, len, "%.120s", p);
            found++;
        }
    }
    ck_assert_msg(found == 1, "%d new cache entries in %s; expected 1", found, dir);
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    ck_assert(buf && fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void write_file(const char *path, const unsigned char *data, size_t len, mode_t mode)
{
    unlink(path);
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f && fwrite(data, 1, len, f) == len, "cannot write %s", path);
    ck_assert(fclose(f) == 0);
    ck_assert(chmod(path, mode) == 0);
}

static unsigned char *planted; /* the D = 16 header around the D = 12 binary */
static size_t planted_len;
static unsigned char *good16; /* the genuine D = 16 entry */
static size_t good16_len;
static char name16[128];

/* The planted file is still there, as it was planted. */
static void check_untouched(const char *path)
{
    struct stat st;
    ck_assert_msg(lstat(path, &st) == 0 && S_ISREG(st.st_mode), "%s is gone", path);
    size_t len;
    unsigned char *now = read_file(path, &len);
    ck_assert_msg(len == planted_len && memcmp(now, planted, len) == 0,
                  "%s was rewritten: an untrusted entry is left as it is", path);
    free(now);
}

/* -------------------------------------------------------------- test */

START_TEST(planted_entries)
{
    ocl = plugin_direct_open("opencl", &ocl_module);
    char dir[512], path[1024], other[1024], before[4096];
    snprintf(dir, sizeof dir, "%s/cache", root);
    ck_assert(setenv("LONGNET_CACHE_DIR", dir, 1) == 0);

    /* The two genuine entries, D = 12 and D = 16, in a trusted directory
     * (created by the plugin, mode 0700). */
    ck_assert(mkdir(dir, 0700) == 0);
    list_dir(dir, before, sizeof before);
    ck_assert_msg(run_error(12) <= TOL, "D = 12 before any planting");
    char name12[128];
    new_entry(dir, before, name12, sizeof name12);
    list_dir(dir, before, sizeof before);
    ck_assert_msg(run_error(16) <= TOL, "D = 16 before any planting");
    new_entry(dir, before, name16, sizeof name16);
    snprintf(path, sizeof path, "%s/%s", dir, name16);
    good16 = read_file(path, &good16_len);
    snprintf(other, sizeof other, "%s/%s", dir, name12);
    size_t len12;
    unsigned char *e12 = read_file(other, &len12);
    ck_assert(len12 > 88 && good16_len > 88);

    /* The planted entry: D = 16's header (key), D = 12's payload, length
     * and checksum made to match — valid by every check of the format. */
    planted_len = len12;
    planted = malloc(planted_len);
    ck_assert(planted);
    memcpy(planted, good16, 88);
    memcpy(planted + 88, e12 + 88, len12 - 88);
    uint64_t n = len12 - 88;
    for (int i = 0; i < 8; i++)
        planted[48 + i] = (unsigned char)(n >> (8 * i));
    ocl_sha256(planted + 88, (size_t)n, planted + 56);
    free(e12);

    /* Trusted (the caller's own file, 0600, in the caller's 0700
     * directory): it is taken, and the results go wrong. This is what the
     * checks below keep from happening. */
    write_file(path, planted, planted_len, 0600);
    double err = run_error(16);
    ck_assert_msg(!(err <= TOL),
                  "a planted entry in a trusted place was not taken (max error %g): the test "
                  "would prove nothing",
                  err);
    printf("trusted planted entry taken: max error %g\n", err);

    /* 1. The entry has mode 0644. The first refusal says why. */
    void *dev = NULL;
    ck_assert(ocl->open(0, "bogus=1", &dev) != 0); /* some other message first */
    write_file(path, planted, planted_len, 0644);
    ck_assert_msg(run_error(16) <= TOL, "an entry of mode 0644 was taken");
    check_untouched(path);
    const char *msg = ocl->last_error();
    ck_assert_msg(strstr(msg, "program cache not used") && strstr(msg, "0644"),
                  "the refusal was not said: last error '%s'", msg);
    printf("said once: %s\n", msg);
    /* Once per process: the next refusal does not say it again. */
    ck_assert(ocl->open(0, "bogus=2", &dev) != 0);
    ck_assert_msg(run_error(16) <= TOL, "an entry of mode 0644 was taken (second run)");
    ck_assert_msg(strstr(ocl->last_error(), "bogus=2") != NULL,
                  "the refusal was said twice: '%s'", ocl->last_error());

    /* 2. The entry is owned by another user (needs root to arrange). */
    struct passwd *nobody = getpwnam("nobody");
    const int as_root = geteuid() == 0 && nobody != NULL;
    if (as_root) {
        write_file(path, planted, planted_len, 0600);
        ck_assert(chown(path, nobody->pw_uid, nobody->pw_gid) == 0);
        ck_assert_msg(run_error(16) <= TOL, "an entry owned by uid %lu was taken",
                      (unsigned long)nobody->pw_uid);
        check_untouched(path);
    } else {
        printf("not root: the entry owned by another user is not checked\n");
    }

    /* 3. The entry is a symbolic link to the planted file (the caller's,
     * 0600: only the link is wrong). */
    snprintf(other, sizeof other, "%s/planted.bin", root);
    write_file(other, planted, planted_len, 0600);
    unlink(path);
    ck_assert(symlink(other, path) == 0);
    ck_assert_msg(run_error(16) <= TOL, "an entry that is a symbolic link was taken");
    struct stat st;
    ck_assert_msg(lstat(path, &st) == 0 && S_ISLNK(st.st_mode), "the link was replaced");
    check_untouched(other);
    unlink(path);

    /* 4. Directories writable by others or by the group, or owned by
     * another user: the planted entry (0600, the caller's) is not taken,
     * and nothing is written there. */
    static const struct {
        mode_t mode;
        int other_owner;
        const char *what;
    } dirs[] = {{0777, 0, "mode 0777"}, {0770, 0, "mode 0770"}, {0700, 1, "another owner"}};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (dirs[i].other_owner && !as_root) {
            printf("not root: the directory owned by another user is not checked\n");
            continue;
        }
        write_file(path, planted, planted_len, 0600);
        ck_assert(chmod(dir, dirs[i].mode) == 0);
        if (dirs[i].other_owner)
            ck_assert(chown(dir, nobody->pw_uid, nobody->pw_gid) == 0);
        list_dir(dir, before, sizeof before);
        ck_assert_msg(run_error(16) <= TOL, "a directory of %s was used", dirs[i].what);
        check_untouched(path);
        char now[4096];
        list_dir(dir, now, sizeof now);
        ck_assert_msg(strcmp(now, before) == 0, "a directory of %s was written to",
                      dirs[i].what);
        /* A new head dimension: not stored there either. */
        ck_assert_msg(run_error(8) <= TOL, "D = 8 in a directory of %s", dirs[i].what);
        list_dir(dir, now, sizeof now);
        ck_assert_msg(strcmp(now, before) == 0, "a directory of %s was written to",
                      dirs[i].what);
        if (dirs[i].other_owner)
            ck_assert(chown(dir, geteuid(), getegid()) == 0);
        ck_assert(chmod(dir, 0700) == 0);
    }

    /* Trusted again, with the genuine entry: used, left as it is. */
    write_file(path, good16, good16_len, 0600);
    ck_assert_msg(run_error(16) <= TOL, "the genuine entry");
    size_t len;
    unsigned char *now = read_file(path, &len);
    ck_assert(len == good16_len && memcmp(now, good16, len) == 0);
    free(now);
    /* Entries the plugin writes have mode 0600 whatever the umask. */
    mode_t old_mask = umask(0277);
    list_dir(dir, before, sizeof before);
    ck_assert_msg(run_error(4) <= TOL, "D = 4");
    umask(old_mask);
    char name4[128];
    new_entry(dir, before, name4, sizeof name4);
    snprintf(other, sizeof other, "%s/%s", dir, name4);
    ck_assert(stat(other, &st) == 0);
    ck_assert_msg((st.st_mode & 07777) == 0600, "a new entry has mode %04o",
                  (unsigned)(st.st_mode & 07777));
}
END_TEST

/* -------------------------------------------------------------- main */

int main(void)
{
    if (scratch_dir_make("longnet-test-cache", root, sizeof root))
        return 1;
    /* Until the test sets its own: nothing lands in the user's cache. */
    char first[512];
    snprintf(first, sizeof first, "%s/first", root);
    setenv("LONGNET_CACHE_DIR", first, 1);
    /* Kept for the whole run: it holds the module and its devices. */
    lnet_context *ctx = NULL;
    int index;
    if (lnet_context_create(NULL, &ctx) != LNET_OK ||
        lnet_context_find_device(ctx, "opencl:0", &index) != LNET_OK) {
        printf("SKIP: no OpenCL device: %s\n", lnet_last_error());
        lnet_context_free(ctx);
        scratch_dir_remove(root);
        return 77;
    }

    Suite *s = suite_create("opencl-cache");
    TCase *tc = tcase_create("cache");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, planted_entries);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    /* One process: an OpenCL runtime does not survive fork(); the "once
     * per process" check needs it too. */
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    lnet_context_free(ctx);
    free(planted);
    free(good16);
    scratch_dir_remove(root);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
