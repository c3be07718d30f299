/* sgemm_roofline.h — the OpenBLAS SGEMM roofline that longnet-bench,
 * cpu_kernel_bench and opencl_kernel_bench compare CPU figures with
 * (sgemm_roofline.c).
 *
 * OpenBLAS built with DYNAMIC_ARCH picks its kernels (its "core type") from
 * the CPU when it is loaded. On a CPU it does not know it falls back to old
 * kernels (Prescott: SSE3), and SGEMM runs 4-5x below the machine, which
 * makes every fraction of it look too good. So the roofline is measured in
 * child processes, each a fresh exec of the program with OPENBLAS_CORETYPE
 * set to one core type the CPU can run (or unset: OpenBLAS's own choice),
 * each product checked against a naive one on sampled entries; the fastest
 * correct one is the roofline.
 *
 * A program calls sgemm_child_main() first thing in main(), so that its
 * re-executed copy runs the measurement instead of the program.
 */
#ifndef LNET_SGEMM_ROOFLINE_H
#define LNET_SGEMM_ROOFLINE_H

#include <stddef.h>

#define SGEMM_MAX_CORES 8
#define SGEMM_CHILD_ARG "--sgemm-roofline-child"
/* Test hook: a comma list of core types to measure instead of the ones the
 * CPU can run (e.g. Prescott, to reproduce a slow roofline); OpenBLAS's own
 * choice is then only named, not measured. */
#define SGEMM_CORES_ENV "LONGNET_BENCH_SGEMM_CORES"

typedef struct sgemm_core {
    char requested[32];  /* OPENBLAS_CORETYPE given to the child; "" = unset */
    char corename[64];   /* openblas_get_corename() in the child: what ran */
    int measured;        /* the child answered with timings */
    int correct;         /* every sampled entry matched the naive product */
    int threads;
    double best_ms, median_ms, best_gflops, median_gflops;
    double max_rel_err;  /* worst |c - naive| / sum|a||b| over the samples */
    char config[256];    /* openblas_get_config() */
    char error[256];     /* why it was not measured, or why it is wrong */
} sgemm_core;

typedef struct sgemm_roofline {
    int n, runs, samples;
    int inherited_set;      /* OPENBLAS_CORETYPE was in our environment */
    char inherited[64];     /* its value (ignored: every child sets its own) */
    char hook[128];         /* SGEMM_CORES_ENV, "" when not set */
    char own_choice[64];    /* the core OpenBLAS picks by itself */
    sgemm_core cores[SGEMM_MAX_CORES]; /* [0]: OpenBLAS's own choice */
    int ncores;
    int used;               /* index of the roofline in cores[], -1: none */
} sgemm_roofline;

/* In a program's main(): returns -1 unless argv is the re-executed child,
 * whose exit status it then returns (the answer went to stdout). */
int sgemm_child_main(int argc, char **argv);

/* Measures every candidate (n x n x n, one warm-up then `runs` timed runs,
 * all cores) and picks the fastest correct one. Prints nothing. */
void sgemm_roofline_measure(sgemm_roofline *r, int n, int runs);
/* Measures the used core once more and keeps its better run: on a shared
 * machine a rate taken while another process ran would inflate fractions. */
void sgemm_roofline_remeasure(sgemm_roofline *r);
/* The core used, or NULL when none was measured correct. */
const sgemm_core *sgemm_roofline_used(const sgemm_roofline *r);
/* "Haswell 151.2 ok, Zen 148.0 ok, SkylakeX failed (...)" into buf. */
const char *sgemm_roofline_tried(const sgemm_roofline *r, char *buf, size_t len);

/* A fraction of SGEMM above this is not believed: attention does SGEMM's
 * multiply-adds plus a softmax, so it cannot run faster than a good SGEMM. */
#define SGEMM_SUSPECT_FRACTION 1.0
/* The reason a fraction is suspect, or NULL when it is not. */
const char *sgemm_suspect_reason(double fraction);

#endif /* LNET_SGEMM_ROOFLINE_H */
