#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* longnet.c — the `longnet` command's entry point: global options (--help,
 * --version), `help CMD`, and dispatch to the command files. */
#include <string.h>

#include "cli.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

static const cli_command commands[] = {
    { "info", "list the plugins found and the devices they offer",
      cmd_info_main, cmd_info_usage },
    { "run", "run dilated attention on Q, K, V .npy files",
      cmd_run_main, cmd_run_usage },
    { "grad", "the gradients dQ, dK, dV of dilated attention for dO",
      cmd_grad_main, cmd_grad_usage },
    { "plan", "what a run of N tokens over R ranks needs: memory, bytes, FLOPs, time",
      cmd_plan_main, cmd_plan_usage },
    { "gen", "write a .npy file of random float32 values",
      cmd_gen_main, cmd_gen_usage },
    { "test", "the conformance test of a backend plugin's device",
      cmd_test_main, cmd_test_usage },
    { NULL, NULL, NULL, NULL }
};

static const cli_command *find_command(const char *name)
{
    for (const cli_command *c = commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

/* The full help: every command's usage, so that one page describes the
 * whole tool (the hint in every usage error points here). */
static void usage(FILE *out)
{
    fputs("Usage: longnet COMMAND [OPTIONS]\n"
          "       longnet --help | --version | help [COMMAND]\n"
          "\n"
          "LongNet dilated attention on any device, through backend plugins.\n"
          "\n"
          "Commands:\n", out);
    for (const cli_command *c = commands; c->name; c++)
        fprintf(out, "  %-6s %s\n", c->name, c->summary);
    fputs("\n"
          "Options take their value as '--opt VALUE' or '--opt=VALUE'.\n"
          "Exit status: 0 success, 1 the work failed, 2 a bad command line.\n"
          "Plugins are searched in LONGNET_PLUGIN_PATH (':'-separated), then in\n"
          "the installed plugin directory.\n", out);
    for (const cli_command *c = commands; c->name; c++) {
        fputs("\n", out);
        c->usage(out);
    }
}

static void version(void)
{
    printf("longnet %s (liblongnet %s)\n", PACKAGE_VERSION, lnet_version());
}

static int help_command(int argc, char **argv)
{
    if (argc < 2) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (argc > 2)
        return cli_usage_error("'help' takes one command name, got '%s' too", argv[2]);
    const cli_command *c = find_command(argv[1]);
    if (!c)
        return cli_usage_error("unknown command '%s'", argv[1]);
    c->usage(stdout);
    return CLI_EXIT_OK;
}

/* Output written to a full disk or a closed pipe must not look like
 * success, so the exit code accounts for stdout's fate. */
static int finish(int rc)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("cannot write to standard output");
        if (rc == CLI_EXIT_OK)
            rc = CLI_EXIT_FAIL;
    }
    return rc;
}

int main(int argc, char **argv)
{
    cli_set_prog("longnet");
    if (argc < 2)
        return cli_usage_error("no command given");

    const char *first = argv[1];
    if (strcmp(first, "--help") == 0 || strcmp(first, "-h") == 0) {
        usage(stdout);
        return finish(CLI_EXIT_OK);
    }
    if (strcmp(first, "--version") == 0) {
        version();
        return finish(CLI_EXIT_OK);
    }
    if (strcmp(first, "help") == 0)
        return finish(help_command(argc - 1, argv + 1));
    if (first[0] == '-')
        return cli_usage_error("unknown option '%s'", first);

    const cli_command *c = find_command(first);
    if (!c)
        return cli_usage_error("unknown command '%s'", first);
    return finish(c->main(argc - 1, argv + 1));
}
