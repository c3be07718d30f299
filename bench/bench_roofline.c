#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* bench_roofline.c — the practical roofline every CPU figure is compared
 * with: OpenBLAS SGEMM, C = A.B with n = 2048, all cores, the best of 5 runs
 * after a warm-up, in a forked child; measured at the start and again at
 * the end of a bench run (bench_roofline_better keeps the better).
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
#include <cblas.h>

#define SGEMM_N 2048
#define SGEMM_RUNS 5

/* Declared by OpenBLAS's cblas.h in recent versions; repeated for older ones. */
char *openblas_get_config(void);
int openblas_get_num_threads(void);

typedef struct sgemm_answer {
    int ok, threads, n;
    double ms[SGEMM_RUNS];
    char config[BENCH_TEXT_LEN];
} sgemm_answer;

static int sgemm_child(void *arg, int fd)
{
    (void)arg;
    sgemm_answer a;
    memset(&a, 0, sizeof a);
    size_t n = SGEMM_N;
    float *A = malloc(n * n * sizeof *A), *B = malloc(n * n * sizeof *B),
          *C = malloc(n * n * sizeof *C);
    if (A && B && C) {
        for (size_t i = 0; i < n * n; i++) {
            A[i] = (float)((i * 7) % 13) * 0.1f - 0.6f;
            B[i] = (float)((i * 5) % 11) * 0.1f - 0.5f;
            C[i] = 0;
        }
        for (int r = -1; r < SGEMM_RUNS; r++) { /* r = -1: warm-up */
            double t0 = bench_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n,
                        1.0f, A, (int)n, B, (int)n, 0.0f, C, (int)n);
            if (r >= 0)
                a.ms[a.n++] = (bench_now() - t0) * 1e3;
        }
        a.ok = 1;
        a.threads = openblas_get_num_threads();
        snprintf(a.config, sizeof a.config, "%s", openblas_get_config());
    }
    free(A);
    free(B);
    free(C);
    bench_write_all(fd, &a, sizeof a);
    return 0;
}

void bench_roofline_measure(bench_roofline *rl, int quiet)
{
    memset(rl, 0, sizeof *rl);
    if (!quiet)
        fprintf(stderr, "%s: measuring OpenBLAS SGEMM (n = %d, all cores)...\n", BENCH_PROG,
                SGEMM_N);
    char *data;
    size_t len;
    char err[BENCH_TEXT_LEN];
    int rc = bench_child_run(sgemm_child, NULL, &data, &len, NULL, err, sizeof err);
    sgemm_answer a;
    if (rc != 0 || len != sizeof a) {
        snprintf(rl->note, sizeof rl->note, "SGEMM failed: %.400s",
                 rc ? err : "no answer from the child");
        free(data);
        return;
    }
    memcpy(&a, data, sizeof a);
    free(data);
    if (!a.ok) {
        snprintf(rl->note, sizeof rl->note, "SGEMM failed: out of memory");
        return;
    }
    double flops = 2.0 * SGEMM_N * (double)SGEMM_N * SGEMM_N;
    rl->available = 1;
    rl->n = SGEMM_N;
    rl->threads = a.threads;
    rl->best_ms = bench_min(a.ms, a.n);
    rl->median_ms = bench_median(a.ms, a.n);
    rl->best_gflops = flops / (rl->best_ms * 1e-3) * 1e-9;
    /* The roofline is the best rate: on a shared machine a median taken
     * while others run would make every fraction look too good. */
    rl->gflops = rl->best_gflops;
    snprintf(rl->note, sizeof rl->note, "%s", a.config);
}

void bench_roofline_better(bench_roofline *rl, const bench_roofline *again)
{
    if (again->available && (!rl->available || again->gflops > rl->gflops))
        *rl = *again;
}

#else /* !BENCH_HAVE_OPENBLAS */

void bench_roofline_better(bench_roofline *rl, const bench_roofline *again)
{
    (void)rl;
    (void)again;
}


void bench_roofline_measure(bench_roofline *rl, int quiet)
{
    (void)quiet;
    memset(rl, 0, sizeof *rl);
    snprintf(rl->note, sizeof rl->note,
             "built without OpenBLAS (configure did not find it): no SGEMM roofline");
}

#endif
