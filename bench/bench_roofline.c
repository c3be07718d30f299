#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_roofline.c — the practical roofline every CPU figure is compared
 * with: OpenBLAS SGEMM, C = A.B with n = 2048, all cores, the best of 5 runs
 * after a warm-up, for OpenBLAS's own core type and for each core type the
 * CPU can run, each in its own process and checked on sampled entries
 * (sgemm_roofline.c); the fastest correct one is kept. Measured at the start
 * and the used core again at the end (bench_roofline_again keeps the
 * better run).
 *
 * Attention does the same multiply-adds as GEMM (Q.K^T and P.V) plus a
 * softmax, so a well-tuned kernel's GFLOP/s is naturally read as a fraction
 * of the machine's GEMM rate. Without OpenBLAS (configure did not find it)
 * this file still builds and says why there is no roofline.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#ifdef BENCH_HAVE_OPENBLAS

#define SGEMM_N 2048
#define SGEMM_RUNS 5

/* The used core's figures into the fields the tables read. */
static void summarise(bench_roofline *rl)
{
    const sgemm_core *x = sgemm_roofline_used(&rl->sg);
    rl->available = x != NULL;
    rl->n = rl->sg.n;
    if (!x) {
        char tried[BENCH_TEXT_LEN];
        snprintf(rl->note, sizeof rl->note, "SGEMM failed or wrong on every core type: %.400s",
                 sgemm_roofline_tried(&rl->sg, tried, sizeof tried));
        return;
    }
    rl->threads = x->threads;
    rl->best_ms = x->best_ms;
    rl->median_ms = x->median_ms;
    rl->best_gflops = x->best_gflops;
    /* The roofline is the best rate: on a shared machine a median taken
     * while others run would make every fraction look too good. */
    rl->gflops = x->best_gflops;
    snprintf(rl->note, sizeof rl->note, "%s", x->config);
}

void bench_roofline_measure(bench_roofline *rl, int quiet)
{
    memset(rl, 0, sizeof *rl);
    if (!quiet)
        fprintf(stderr, "%s: measuring OpenBLAS SGEMM (n = %d, all cores) for each core type "
                "this CPU can run...\n", BENCH_PROG, SGEMM_N);
    sgemm_roofline_measure(&rl->sg, SGEMM_N, SGEMM_RUNS);
    summarise(rl);
}

void bench_roofline_again(bench_roofline *rl, int quiet)
{
    if (!rl->available)
        return;
    if (!quiet)
        fprintf(stderr, "%s: measuring OpenBLAS SGEMM again (%s)...\n", BENCH_PROG,
                rl->sg.cores[rl->sg.used].corename);
    sgemm_roofline_remeasure(&rl->sg);
    summarise(rl);
}

#else /* !BENCH_HAVE_OPENBLAS */

void bench_roofline_again(bench_roofline *rl, int quiet)
{
    (void)rl;
    (void)quiet;
}

void bench_roofline_measure(bench_roofline *rl, int quiet)
{
    (void)quiet;
    memset(rl, 0, sizeof *rl);
    rl->sg.used = -1;
    snprintf(rl->note, sizeof rl->note,
             "built without OpenBLAS (configure did not find it): no SGEMM roofline");
}

#endif

const char *bench_roofline_core(const bench_roofline *rl)
{
    return rl->available ? rl->sg.cores[rl->sg.used].corename : "";
}
