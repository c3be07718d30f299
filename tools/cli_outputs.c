#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cli_outputs.c — a command's output files, committed together, and the
 * signals that must not leave their temporaries behind.
 *
 * All or nothing: every output is first written completely (regular files
 * into temporaries beside their targets, then streams such as /dev/null or
 * a pipe, which cannot be taken back); only when all of that worked are the
 * temporaries renamed over their targets. Any failure removes every
 * temporary and renames none.
 *
 * SIGINT, SIGTERM and SIGHUP during the writes remove the temporaries and
 * end the process by the same signal (so its parent sees 128 + signal).
 * The handler only calls async-signal-safe functions (unlink, sigaction,
 * sigprocmask, raise, _exit) on names registered while those signals were
 * blocked.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const int handled[] = { SIGINT, SIGTERM, SIGHUP };
#define N_HANDLED (int)(sizeof handled / sizeof handled[0])

/* The temporaries that exist now; read by the handler. */
static const char *volatile temps[CLI_MAX_OUTPUTS];
/* 1 for a signal the process inherited as ignored (nohup): keep ignoring. */
static int inherited_ignore[N_HANDLED];
static int signals_ready;

static void on_signal(int sig)
{
    for (int i = 0; i < CLI_MAX_OUTPUTS; i++)
        if (temps[i])
            unlink(temps[i]);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    _exit(128 + sig); /* not reached unless the signal is blocked elsewhere */
}

void cli_signals_install(void)
{
    if (!signals_ready) {
        for (int i = 0; i < N_HANDLED; i++) {
            struct sigaction old;
            inherited_ignore[i] = sigaction(handled[i], NULL, &old) == 0 &&
                                  old.sa_handler == SIG_IGN;
        }
        /* A file-size limit (ulimit -f) must be a write error we report
         * and clean up after, not a signal that kills us mid-write. */
        signal(SIGXFSZ, SIG_IGN);
        signals_ready = 1;
    }
    /* Installed again after plugins load: an OpenCL runtime (LLVM inside
     * PoCL) installs handlers of its own that would swallow these. */
    for (int i = 0; i < N_HANDLED; i++) {
        if (inherited_ignore[i])
            continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        for (int j = 0; j < N_HANDLED; j++)
            sigaddset(&sa.sa_mask, handled[j]);
        sigaction(handled[i], &sa, NULL);
    }
}

static void block_signals(sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < N_HANDLED; i++)
        sigaddset(&set, handled[i]);
    sigprocmask(SIG_BLOCK, &set, old);
}

/* A test hook: LONGNET_TEST_RAISE=SIGNAL raises that signal once every
 * temporary exists and the first output is written, the moment a real
 * signal is most likely to leave files behind. */
static void test_raise_hook(void)
{
    const char *s = getenv("LONGNET_TEST_RAISE");
    if (!s)
        return;
    for (int i = 0; i < N_HANDLED; i++) {
        const char *name = handled[i] == SIGINT ? "SIGINT" : handled[i] == SIGTERM ? "SIGTERM" : "SIGHUP";
        if (strcmp(s, name) == 0)
            raise(handled[i]);
    }
}

int cli_outputs_save(int n, const char *const paths[], const lnet_tensor *const tensors[])
{
    lnet_npy_output *o[CLI_MAX_OUTPUTS] = { NULL };
    int rc = CLI_EXIT_FAIL;
    if (n < 0 || n > CLI_MAX_OUTPUTS) {
        cli_error("internal error: %d outputs (at most %d)", n, CLI_MAX_OUTPUTS);
        return CLI_EXIT_FAIL;
    }
    /* Every output is created first, so that an impossible one (a
     * directory, a FIFO with no reader) fails before any data moves. */
    for (int i = 0; i < n; i++) {
        sigset_t old;
        block_signals(&old);
        lnet_status st = lnet_npy_output_create(paths[i], &o[i]);
        if (st == LNET_OK)
            temps[i] = lnet_npy_output_temp_path(o[i]);
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (st != LNET_OK) {
            cli_lib_error(NULL);
            goto done;
        }
    }
    /* Files before streams: what went into a pipe cannot be taken back,
     * so it goes out only when every file is complete. */
    int first = 1;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            if (lnet_npy_output_is_stream(o[i]) != pass)
                continue;
            if (lnet_npy_output_write(o[i], tensors[i]) != LNET_OK) {
                cli_lib_error(NULL);
                goto done;
            }
            if (first)
                test_raise_hook();
            first = 0;
        }
    for (int i = 0; i < n; i++) {
        sigset_t old;
        block_signals(&old);
        lnet_status st = lnet_npy_output_commit(o[i]);
        if (st == LNET_OK)
            temps[i] = NULL; /* renamed: the name is the user's file now */
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (st != LNET_OK) {
            /* Only a rename can fail here, and that within the target's
             * own directory; the outputs renamed before stay renamed. */
            cli_lib_error(NULL);
            goto done;
        }
    }
    rc = CLI_EXIT_OK;
done:
    for (int i = 0; i < n; i++) {
        sigset_t old;
        block_signals(&old);
        temps[i] = NULL;
        lnet_npy_output_free(o[i]); /* removes an uncommitted temporary */
        sigprocmask(SIG_SETMASK, &old, NULL);
    }
    return rc;
}
