/* cli_util.h — what the programs of this project share (the `longnet`
 * command and `longnet-bench`), through the non-installed convenience
 * library common/libcliutil.la: exit codes, one-line errors, strict number
 * parsing, comma lists, the option parser, device-list entries, file
 * identity. Neither program includes the other's files.
 *
 * Only the public API (longnet.h) is used here: the programs are the first
 * users of the library and must not lean on anything a user could not.
 */
#ifndef LNET_CLI_UTIL_H
#define LNET_CLI_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "longnet.h"

/* Exit codes: 2 when the command line itself could not be understood (an
 * unknown command or option, a missing value or required option), 1 when it
 * was understood but the work failed (a bad value, a file, the library). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAIL = 1,
    CLI_EXIT_USAGE = 2
};

#define CLI_HINT "see 'longnet --help'"

/* -------------------------------------------------------------- errors */

/* The prefix of every message, "longnet" or "longnet run"; set once by the
 * command being run so that helpers need not be told who is calling. */
void cli_set_prog(const char *prog);
const char *cli_prog(void);
/* The hint that ends a usage error, CLI_HINT unless another program sharing
 * these helpers (longnet-bench) names its own help. */
void cli_set_hint(const char *hint);

/* "PROG: message" on stderr as exactly one line: newlines inside the message
 * (a library message may quote a file's bytes) are turned into spaces, so a
 * script reading stderr line by line sees one error per line. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_verror(const char *fmt, va_list ap);
/* "PROG: warning: message", one line. */
void cli_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A command-line error: the message, then "; see 'longnet --help'" on the
 * same line. Returns CLI_EXIT_USAGE so callers can `return cli_usage_error()`. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "PROG: <what>: <lnet_last_error()>" (or without "what: " when NULL).
 * Returns CLI_EXIT_FAIL. */
int cli_lib_error(const char *what);

/* ------------------------------------------------------------- numbers */

typedef enum cli_num_status {
    CLI_NUM_OK = 0,
    CLI_NUM_SYNTAX = -1,  /* not a number, trailing characters, empty */
    CLI_NUM_SMALL = -2,   /* a number below min (or overflowing downwards) */
    CLI_NUM_LARGE = -3,   /* a number above max (or overflowing upwards) */
    CLI_NUM_NONFINITE = -4 /* nan, inf, or a double that overflows/underflows */
} cli_num_status;

/* Strict decimal integers: optional '-' then digits only, no spaces, no '+',
 * the whole string consumed, overflow detected. */
cli_num_status cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
cli_num_status cli_parse_u64(const char *s, uint64_t *out);
/* A finite double, the whole string consumed (no "nan", "inf", spaces). */
cli_num_status cli_parse_double(const char *s, double *out);

/* Splits a comma-separated list of integers in [min, max] into out[0..max_n).
 * On failure writes one line describing the bad entry (quoted) into err and
 * returns -1; `what` names the list in that message ("--shape"). */
int cli_parse_i64_list(const char *s, const char *what, int64_t min, int64_t max,
                       int64_t *out, int max_n, int *n, char *err, size_t errlen);

const char *cli_tensor_shape_str(const lnet_tensor *t, char *buf, size_t len);

/* ------------------------------------------------------------- options */

/* A small long-option parser, written here rather than using getopt_long so
 * that every diagnostic is ours (one line, naming the option, with the hint)
 * and so that both "--opt value" and "--opt=value" behave the same on every
 * libc. Options are long only, plus -h for --help. */
typedef struct cli_option {
    const char *name;  /* without the dashes: "segments" */
    int has_value;     /* 1: takes a value, 0: a flag */
    int id;            /* returned by cli_next_option */
} cli_option;

typedef struct cli_parser {
    int argc;
    char **argv;
    int next;                  /* index of the next argv entry */
    const cli_option *options; /* terminated by an entry with name NULL */
    const char *value;         /* the current option's value, or NULL */
    const char *arg;           /* the current option as written ("--q") */
} cli_parser;

#define CLI_OPT_HELP (-100)  /* id returned for --help / -h */
#define CLI_OPT_END (-1)     /* no more options */
#define CLI_OPT_ERROR (-2)   /* a usage error was already printed */

/* argv[0] is the command's name and is skipped. */
void cli_parser_init(cli_parser *p, int argc, char **argv, const cli_option *options);
/* The next option's id, CLI_OPT_HELP, CLI_OPT_END, or CLI_OPT_ERROR after
 * printing a one-line usage error (unknown option, missing value, a value
 * given to a flag, an empty value, a stray argument). */
int cli_next_option(cli_parser *p);

/* The entry of a device list ("cpu, opencl:0{tile_q=32}=3") that starts
 * at `p`: its spec without options, weight and surrounding blanks, into
 * spec (an empty entry gives ""). Returns where the next entry starts, or
 * NULL when this was the last. */
const char *cli_next_device_spec(const char *p, char *spec, size_t len);

/* ---------------------------------------------------------------- files */

/* 1 if `a` and `b` name the same file: the same string; both exist and are
 * the same inode (so "./q.npy" and "q.npy" are caught too); or neither exists
 * and they are the same name in the same directory. */
int cli_same_file(const char *a, const char *b);

#endif /* LNET_CLI_UTIL_H */
