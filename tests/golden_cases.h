/* golden_cases.h — the golden cases for the tests of every backend: the
 * reader and runner of common/golden.h, and the tests' own helpers (the
 * required set, every case on one device), so that the CPU, OpenCL and
 * FPGA tests share one harness. */
#ifndef LNET_TEST_GOLDEN_CASES_H
#define LNET_TEST_GOLDEN_CASES_H

#include "golden.h"

/* The exit status that makes the automake test driver report SKIP. */
#define GOLDEN_SKIP 77

/* For a test's main(): loads the cases of $LONGNET_GOLDEN_DIR, or prints why
 * it cannot (unset, no cases.tsv, unreadable, no case) and exits 1. The
 * cases ship in tests/golden, so their absence is a failure, not a skip. */
void golden_load_required(golden_set *set);

/* Runs every case of $LONGNET_GOLDEN_DIR on `device` with `kernel`, printing
 * one line per case. Returns 0 when every error is <= tol, 1 on a failure,
 * GOLDEN_SKIP when the golden directory or the device is not there. For a
 * backend test whose device may be absent: `return golden_run_all(...)`. */
int golden_run_all(const char *device, const char *kernel, double tol);

#endif /* LNET_TEST_GOLDEN_CASES_H */
