/* cli.h — what the files of the `longnet` command share: the commands, the
 * memory check, the outputs committed together; and, through cli_util.h
 * (common/, shared with longnet-bench), errors, numbers, lists, options.
 *
 * Only the public API (longnet.h) is used here: the command is the first user
 * of the library and must not lean on anything a user could not.
 */
#ifndef LNET_CLI_H
#define LNET_CLI_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli_util.h"
#include "longnet.h"

/* ------------------------------------------------------------ commands */

/* Each command gets argv with argv[0] being the command's name and returns an
 * exit code; its usage text goes to `out`. */
typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*main)(int argc, char **argv);
    void (*usage)(FILE *out);
} cli_command;

int cmd_info_main(int argc, char **argv);
void cmd_info_usage(FILE *out);
int cmd_run_main(int argc, char **argv);
void cmd_run_usage(FILE *out);
int cmd_gen_main(int argc, char **argv);
void cmd_gen_usage(FILE *out);

/* --------------------------------------------------------------- memory */

/* Bytes this process may still allocate: the least of MemAvailable, the
 * memory cgroup's limit less its usage, and RLIMIT_AS less the address
 * space in use (UINT64_MAX when nothing is known). *source names the bound
 * that decided it. */
uint64_t cli_memory_available(const char **source);
/* "7.0 GiB" into buf; returns buf. */
const char *cli_bytes_str(uint64_t bytes, char *buf, size_t len);

/* -------------------------------------------------------------- outputs */

#define CLI_MAX_OUTPUTS 8

/* Handlers for SIGINT, SIGTERM and SIGHUP that remove the temporaries of
 * cli_outputs_save and end the process by that signal; SIGXFSZ ignored (a
 * file-size limit becomes a write error). Call at the start of a command
 * and again after plugins load (their runtimes may install handlers of
 * their own). Signals inherited as ignored stay ignored. */
void cli_signals_install(void);

/* Writes tensors[i] to paths[i] for every i, all or nothing: each file is
 * complete before any is renamed over its target, and on any failure none
 * is and every temporary is removed (one error line printed). Returns an
 * exit code. */
int cli_outputs_save(int n, const char *const paths[], const lnet_tensor *const tensors[]);

#endif /* LNET_CLI_H */
