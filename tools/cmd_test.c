#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cmd_test.c — `longnet test`: the conformance test of one plugin's
 * device (conform_checks.c), each check in a forked child so that a
 * plugin that crashes, exits or hangs fails that check with the signal or
 * the status named, and the report goes on. The parent never loads a
 * plugin: a driver's threads would not survive a fork. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "conform.h"

void cmd_test_usage(FILE *out)
{
    fputs("Usage: longnet test --device NAME[:I] [OPTIONS]\n"
          "       longnet test --plugin MODULE [--device NAME[:I]] [OPTIONS]\n"
          "\n"
          "The conformance test of a backend plugin: runs the operator's contract\n"
          "against one device and prints a report. Checks: the description; every\n"
          "golden case (when the golden data is found); random configurations\n"
          "(shapes, levels, causal, offsets, scale, ragged ends, D up to 256)\n"
          "against the CPU reference kernel; row windows (when the device claims\n"
          "them); bad jobs and calls refused with messages; two devices of the\n"
          "plugin at once; repeated open and close; the backward (when the plugin\n"
          "has the slot); supports() answers consistent with what runs.\n"
          "Each check runs in its own process: a crash or a hang fails it.\n"
          "\n"
          "  --device NAME[:I]  the device (index 0 by default)\n"
          "  --plugin MODULE    load MODULE first (a .so or .la file); without\n"
          "                     --device, its backend's device 0 is tested\n"
          "  --quick            fewer cases, the default kernel only\n"
          "  --only LIST        only these checks (comma-separated names)\n"
          "  --golden DIR       the golden cases (default $LONGNET_GOLDEN_DIR)\n"
          "  --seed N           the random cases' seed (default 1)\n"
          "  --timeout S        seconds a check may take (default 600; 0 none)\n"
          "\n"
          "Exits 0 when every check passed or was skipped, 1 when one failed.\n", out);
}

enum { OPT_DEVICE, OPT_PLUGIN, OPT_QUICK, OPT_ONLY, OPT_GOLDEN, OPT_SEED, OPT_TIMEOUT };

/* Whether check `name` is in the comma list (NULL: every check). */
static int selected(const char *only, const char *name)
{
    if (!only)
        return 1;
    const size_t n = strlen(name);
    for (const char *p = only; *p;) {
        const char *end = strchr(p, ',');
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

/* Every name of the list is a check's. */
static int only_valid(const char *only)
{
    for (const char *p = only; *p;) {
        const char *end = strchr(p, ',');
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        int known = 0;
        for (const conform_check *c = conform_checks; c->name; c++)
            known |= strlen(c->name) == len && strncmp(p, c->name, len) == 0;
        if (!known) {
            cli_usage_error("--only: '%.*s' is not a check (checks: describe, golden, random, "
                            "windows, bad-jobs, two-devices, open-close, backward)",
                            (int)(len < 64 ? len : 64), p);
            return 0;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return 1;
}

static void child_main(conform_target *t, const conform_check *c, unsigned timeout, int fd)
{
    t->step_fd = fd;
    if (timeout)
        alarm(timeout); /* SIGALRM's default ends the process: the parent says so */
    conform_session s;
    int rc = CONFORM_FAIL;
    if (conform_open(t, &s) == 0) {
        rc = c->run(&s);
        if (s.failures > 12)
            conform_note("... and %d more failure(s)", s.failures - 12);
        conform_close(&s);
    }
    fflush(stdout);
    _exit(rc);
}

/* The last whole line read from fd until it closes: what a crashed check
 * was doing. */
static void drain_steps(int fd, char *last, size_t len)
{
    char buf[4096], line[512];
    size_t used = 0;
    last[0] = '\0';
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                line[used] = '\0';
                snprintf(last, len, "%s", line);
                used = 0;
            } else if (used + 1 < sizeof line) {
                line[used++] = buf[i];
            }
        }
    }
}

/* Runs one check in a child; returns its verdict, printing a line for a
 * child that did not give one. */
static int run_check(conform_target *t, const conform_check *c, unsigned timeout)
{
    printf("%-12s %s\n", c->name, c->summary);
    fflush(stdout);
    fflush(stderr);
    int fds[2];
    if (pipe(fds) != 0) {
        printf("  FAIL  %s: cannot create a pipe: %s\n", c->name, strerror(errno));
        return CONFORM_FAIL;
    }
    pid_t pid = fork();
    if (pid < 0) {
        printf("  FAIL  %s: cannot fork: %s\n", c->name, strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return CONFORM_FAIL;
    }
    if (pid == 0) {
        close(fds[0]);
        child_main(t, c, timeout, fds[1]);
    }
    close(fds[1]);
    char last[512];
    drain_steps(fds[0], last, sizeof last);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    const char *during = last[0] ? last : "(before its first case)";
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        if (sig == SIGALRM)
            printf("  FAIL  %s: timed out after %u s, during: %s\n", c->name, timeout, during);
        else
            printf("  FAIL  %s: CRASHED, killed by signal %d (%s), during: %s\n", c->name, sig,
                   strsignal(sig), during);
        return CONFORM_FAIL;
    }
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == CONFORM_PASS) {
        printf("  ok    %s\n", c->name);
        return CONFORM_PASS;
    }
    if (code == CONFORM_SKIP) {
        printf("  skip  %s\n", c->name);
        return CONFORM_SKIP;
    }
    if (code == CONFORM_FAIL) {
        printf("  FAIL  %s\n", c->name);
        return CONFORM_FAIL;
    }
    printf("  FAIL  %s: CRASHED, the process exited with status %d without a verdict (a "
           "sanitizer's report, or exit() in the plugin?), during: %s\n", c->name, code, during);
    return CONFORM_FAIL;
}

int cmd_test_main(int argc, char **argv)
{
    cli_set_prog("longnet test");
    static const cli_option options[] = {
        {"device", 1, OPT_DEVICE}, {"plugin", 1, OPT_PLUGIN}, {"quick", 0, OPT_QUICK},
        {"only", 1, OPT_ONLY},     {"golden", 1, OPT_GOLDEN}, {"seed", 1, OPT_SEED},
        {"timeout", 1, OPT_TIMEOUT}, {NULL, 0, 0}};
    conform_target t;
    memset(&t, 0, sizeof t);
    t.seed = 1;
    t.step_fd = -1;
    const char *device = NULL, *only = NULL;
    int64_t timeout = 600;
    cli_parser p;
    cli_parser_init(&p, argc, argv, options);
    for (int id; (id = cli_next_option(&p)) != CLI_OPT_END;) {
        switch (id) {
        case CLI_OPT_HELP:
            cmd_test_usage(stdout);
            return CLI_EXIT_OK;
        case OPT_DEVICE: device = p.value; break;
        case OPT_PLUGIN: t.plugin_path = p.value; break;
        case OPT_QUICK: t.quick = 1; break;
        case OPT_ONLY: only = p.value; break;
        case OPT_GOLDEN: t.golden_dir = p.value; break;
        case OPT_SEED:
            if (cli_parse_u64(p.value, &t.seed) != CLI_NUM_OK)
                return cli_usage_error("--seed '%s' is not a non-negative integer", p.value);
            break;
        case OPT_TIMEOUT:
            if (cli_parse_i64(p.value, 0, 86400, &timeout) != CLI_NUM_OK)
                return cli_usage_error("--timeout '%s' is not a number of seconds from 0 to 86400",
                                       p.value);
            break;
        default:
            return CLI_EXIT_USAGE; /* cli_next_option printed why */
        }
    }
    if (!device && !t.plugin_path)
        return cli_usage_error("give the device to test: --device NAME[:I] or --plugin MODULE");
    if (only && !only_valid(only))
        return CLI_EXIT_USAGE;
    if (device) {
        const char *colon = strchr(device, ':');
        const size_t n = colon ? (size_t)(colon - device) : strlen(device);
        int64_t index = 0;
        if (n == 0 || n >= sizeof t.backend ||
            (colon && cli_parse_i64(colon + 1, 0, 1000000, &index) != CLI_NUM_OK))
            return cli_usage_error("--device '%s' is not NAME or NAME:INDEX", device);
        memcpy(t.backend, device, n);
        t.backend[n] = '\0';
        t.index = (int)index;
        snprintf(t.spec, sizeof t.spec, "%s:%d", t.backend, t.index);
    }
    if (!t.golden_dir) {
        const char *g = getenv("LONGNET_GOLDEN_DIR");
        t.golden_dir = g && g[0] ? g : NULL;
    }

    printf("longnet test: %s%s%s%s\n", t.spec[0] ? t.spec : "device 0",
           t.plugin_path ? " of plugin " : "", t.plugin_path ? t.plugin_path : "",
           t.quick ? " (quick)" : "");
    int passed = 0, failed = 0, skipped = 0;
    char failed_names[256] = "";
    for (const conform_check *c = conform_checks; c->name; c++) {
        if (!selected(only, c->name))
            continue;
        const int v = run_check(&t, c, (unsigned)timeout);
        if (v == CONFORM_PASS)
            passed++;
        else if (v == CONFORM_SKIP)
            skipped++;
        else {
            failed++;
            size_t used = strlen(failed_names);
            snprintf(failed_names + used, sizeof failed_names - used, "%s%s", used ? ", " : "",
                     c->name);
        }
    }
    printf("longnet test: %d passed, %d skipped, %d failed%s%s\n", passed, skipped, failed,
           failed ? ": " : "", failed_names);
    return failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
