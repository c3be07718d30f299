#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_child.c — run a piece of work in a forked child and collect what it
 * writes and its peak memory.
 *
 * Every cell runs in its own child so that cells do not pollute each other:
 * the peak resident memory (ru_maxrss from wait4) is the cell's own, and a
 * device left in a bad state, a thread pool, a driver's threads or a crash
 * die with the child. The parent never loads a plugin itself (forking a
 * process that runs a driver's threads is unsafe), so it stays small and
 * its few pages are all a child inherits.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/* The child running now, so that an interrupted bench takes it down too
 * instead of leaving it running on the machine. */
static volatile pid_t current_child;
static volatile sig_atomic_t interrupted;
/* The budget a child may use (0: none), and whether the last one overran. */
static double timeout_s;
static int timed_out;

void bench_child_timeout(double seconds)
{
    timeout_s = seconds > 0 ? seconds : 0;
}

int bench_child_timed_out(void)
{
    return timed_out;
}

static void on_signal(int sig)
{
    interrupted = sig;
    if (current_child > 0)
        kill(current_child, SIGKILL);
}

void bench_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

int bench_interrupted(void)
{
    return interrupted;
}

int bench_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int bench_child_run(int (*fn)(void *arg, int fd), void *arg, char **data, size_t *len,
                    uint64_t *maxrss_bytes, char *err, size_t errlen)
{
    int fds[2];
    *data = NULL;
    *len = 0;
    if (maxrss_bytes)
        *maxrss_bytes = 0;
    if (pipe(fds) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL); /* or the child would write the parent's buffered output too */
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        close(fds[0]);
        int rc = fn(arg, fds[1]);
        close(fds[1]);
        fflush(NULL);
        _exit(rc & 0xff);
    }
    current_child = pid;
    if (interrupted)
        kill(pid, SIGKILL);
    close(fds[1]);

    size_t cap = 4096, used = 0;
    char *buf = malloc(cap + 1);
    double deadline = timeout_s > 0 ? bench_now() + timeout_s : 0;
    timed_out = 0;
    for (;;) {
        /* A child past its budget is cut off: a cell whose first run cannot
         * be predicted (a device never seen, a kernel that compiles for a
         * minute) must not overrun the bench. */
        if (deadline > 0 && !timed_out) {
            double left = deadline - bench_now();
            struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
            int ready = left > 0 ? poll(&pfd, 1, (int)(left * 1e3) + 1) : 0;
            if (ready < 0 && errno == EINTR)
                continue;
            if (ready == 0) {
                timed_out = 1;
                kill(pid, SIGKILL);
            }
        }
        if (buf && used == cap) {
            char *bigger = realloc(buf, 2 * cap + 1);
            if (!bigger) {
                free(buf);
                buf = NULL;
            } else {
                buf = bigger;
                cap *= 2;
            }
        }
        char sink[4096];
        ssize_t n = buf ? read(fds[0], buf + used, cap - used) : read(fds[0], sink, sizeof sink);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (buf)
            used += (size_t)n;
    }
    close(fds[0]);

    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            snprintf(err, errlen, "wait4: %s", strerror(errno));
            free(buf);
            return -1;
        }
    }
    current_child = 0;
    if (maxrss_bytes)
        *maxrss_bytes = (uint64_t)ru.ru_maxrss * 1024u; /* Linux: KiB */
    if (buf)
        buf[used] = '\0';
    *data = buf;
    *len = used;
    if (!buf) {
        snprintf(err, errlen, "out of memory reading the child's answer");
        return -1;
    }
    if (timed_out) {
        snprintf(err, errlen, "cut off after %.0f s: the budget left for it", timeout_s);
        return -1;
    }
    if (WIFSIGNALED(status)) {
        snprintf(err, errlen, "the child process was killed by signal %d (%s)",
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(err, errlen, "the child process exited with status %d",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return -1;
    }
    return 0;
}
