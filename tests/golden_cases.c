#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* golden_cases.c — the tests' side of the golden cases (common/golden.c
 * reads and runs them): loading the required set and running every case.
 * Test code: it may print and exit (golden_load_required). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden_cases.h"

void golden_load_required(golden_set *set)
{
    const char *dir = getenv("LONGNET_GOLDEN_DIR");
    if (!dir || !dir[0]) {
        printf("FAIL: LONGNET_GOLDEN_DIR is not set (the cases ship in tests/golden; "
               "configure finds them, or set it to the folder holding cases.tsv)\n");
        exit(1);
    }
    size_t len = strlen(dir) + sizeof "/cases.tsv";
    char *path = malloc(len);
    if (!path) {
        printf("FAIL: out of memory\n");
        exit(1);
    }
    snprintf(path, len, "%s/cases.tsv", dir);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        /* They ship with the project: a test without them would check
         * less without saying so, so this is a failure, not a skip. */
        printf("FAIL: no golden cases: cannot open %s: %s\n", path, strerror(errno));
        free(path);
        exit(1);
    }
    fclose(fp);
    free(path);

    char err[4400];
    if (golden_load(dir, set, err, sizeof err)) {
        printf("FAIL: %s\n", err);
        exit(1);
    }
    if (set->n == 0) {
        printf("FAIL: %s/cases.tsv lists no case\n", dir);
        golden_free(set);
        exit(1);
    }
}

int golden_run_all(const char *device, const char *kernel, double tol)
{
    golden_set set;
    golden_load_required(&set);

    lnet_context *ctx = NULL;
    if (lnet_context_create(NULL, &ctx) != LNET_OK) {
        printf("FAIL: lnet_context_create: %s\n", lnet_last_error());
        golden_free(&set);
        return 1;
    }
    int index;
    if (lnet_context_find_device(ctx, device ? device : "cpu", &index) != LNET_OK) {
        printf("SKIP: device %s is not available: %s\n", device ? device : "cpu",
               lnet_last_error());
        lnet_context_free(ctx);
        golden_free(&set);
        return GOLDEN_SKIP;
    }

    int failed = 0;
    for (int i = 0; i < set.n; i++) {
        const golden_case *c = &set.cases[i];
        golden_result r;
        char err[4400];
        if (golden_run_case(ctx, &set, c, device, kernel, &r, err, sizeof err)) {
            printf("FAIL %-16s %s\n", c->name, err);
            failed = 1;
            continue;
        }
        int ok = r.out_err <= tol && r.lse_err <= tol;
        printf("%s %-16s %s/%s: max |out err| %.3g, max |lse err| %.3g (tol %.3g)\n",
               ok ? "ok  " : "FAIL", c->name, device ? device : "cpu",
               kernel ? kernel : "default", r.out_err, r.lse_err, tol);
        if (!ok)
            failed = 1;
    }
    fflush(stdout);
    lnet_context_free(ctx);
    golden_free(&set);
    return failed;
}
