#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* plan_measure.c — `longnet plan --measure`: one rank's throughput on
 * this configuration, from a short real forward (and backward) on this
 * machine's devices.
 *
 * A length M much shorter than N serves: the plan converts the measured
 * time into a FLOP rate (FLOPs of M / seconds) and charges each rank its
 * own FLOPs at that rate. Once M reaches the largest segment the cost per
 * token no longer depends on the length; a configuration whose longest
 * segments exceed M is measured with them cut at M (a valid call), and the
 * rate carries over as long as the short segments dominate the work, as
 * in LongNet's configurations — the report says when this is so.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cli.h"
#include "cli_plan.h"

#define MEASURE_MAX_TOKENS 131072
#define MEASURE_MAX_ELEMS (16 * 1024 * 1024) /* of one tensor: 64 MiB */
#define MEASURE_RUNS 3                      /* timed, after one untimed */

/* The default M: the most whole largest segments within both limits, at
 * least one largest segment if that fits, never more than N. */
static int64_t default_tokens(const cli_plan *p)
{
    int64_t per_row, cap = 0;
    if (!__builtin_mul_overflow(p->batch, p->heads, &per_row) &&
        !__builtin_mul_overflow(per_row, p->dim, &per_row))
        cap = MEASURE_MAX_ELEMS / per_row;
    if (cap > MEASURE_MAX_TOKENS)
        cap = MEASURE_MAX_TOKENS;
    if (cap < 2048)
        cap = 2048;
    int64_t top = 0;
    for (int i = 0; i < p->levels; i++)
        if (p->w[i] > top)
            top = p->w[i];
    int64_t m = top <= cap ? cap / top * top : cap;
    if (m > p->tokens)
        m = p->tokens;
    return m;
}

static void fill(lnet_tensor *t, uint32_t seed)
{
    float *x = lnet_tensor_data(t);
    size_t n = lnet_tensor_numel(t);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 8388608.0f - 1.0f;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One forward (and backward) of the tensors; seconds into *s. */
static int run_once(lnet_context *ctx, const cli_plan *p, lnet_tensor *const t[9],
                    const lnet_run_options *ro, double *s)
{
    double t0 = cli_now_ms();
    if (lnet_attention_forward(ctx, p->cfg, t[0], t[1], t[2], t[3], t[4], ro) != LNET_OK ||
        (p->backward && lnet_attention_backward(ctx, p->cfg, t[0], t[1], t[2], t[3], t[4], t[5],
                                                t[6], t[7], t[8], ro) != LNET_OK))
        return cli_lib_error("--measure");
    *s = (cli_now_ms() - t0) / 1e3;
    return -1;
}

/* New output tensors (O, LSE and, for the backward, dQ, dK, dV) in place
 * of the last run's, over pages mapped afresh (malloc could hand back
 * resident ones); inputs stay. */
typedef struct {
    void *addr[9];
    size_t len[9];
} fresh_maps;

static void unmap_outputs(fresh_maps *f, lnet_tensor *t[9], int i)
{
    lnet_tensor_free(t[i]);
    t[i] = NULL;
    if (f->addr[i])
        munmap(f->addr[i], f->len[i]);
    f->addr[i] = NULL;
}

static int fresh_outputs(const cli_plan *p, const int64_t shape[4], const int64_t lse_shape[3],
                         lnet_tensor *t[9], fresh_maps *f)
{
    static const int outputs[] = { 3, 4, 6, 7, 8 };
    for (int j = 0; j < (p->backward ? 5 : 2); j++) {
        const int i = outputs[j];
        size_t numel = lnet_tensor_numel(t[i]); /* of the same shape: fits */
        unmap_outputs(f, t, i);
        void *a = mmap(NULL, numel * sizeof(float), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (a == MAP_FAILED) {
            cli_error("--measure: mapping %zu bytes for an output: %s", numel * sizeof(float),
                      strerror(errno));
            return CLI_EXIT_FAIL;
        }
        f->addr[i] = a;
        f->len[i] = numel * sizeof(float);
        if ((i == 4 ? lnet_tensor_wrap(a, 3, lse_shape, &t[i])
                    : lnet_tensor_wrap(a, 4, shape, &t[i])) != LNET_OK)
            return cli_lib_error("--measure");
    }
    return -1;
}

int cli_plan_measure(cli_plan *p, const char *device, const char *kernel)
{
    char list[sizeof p->measured_on];
    if (!device) {
        list[0] = '\0';
        for (int64_t i = 0; i < p->devices_per_rank; i++)
            strcat(list, i ? ",cpu" : "cpu"); /* D <= 64: fits */
        device = list;
    }
    snprintf(p->measured_on, sizeof p->measured_on, "%s", device);
    const int64_t m = p->measure_tokens ? p->measure_tokens : default_tokens(p);
    if (m > p->tokens) {
        cli_error("--measure-tokens %lld is more than --tokens %lld", (long long)m,
                  (long long)p->tokens);
        return CLI_EXIT_FAIL;
    }
    p->measured_tokens = m;
    const int64_t shape[4] = { p->batch, m, p->heads, p->dim };
    const int64_t lse_shape[3] = { p->batch, p->heads, m };
    lnet_context *ctx = NULL;
    lnet_tensor *t[9] = { NULL }; /* Q K V O LSE dO dQ dK dV */
    fresh_maps maps = { { NULL }, { 0 } };
    int rc = -1;
    if (lnet_context_create(NULL, &ctx) != LNET_OK)
        rc = cli_lib_error(NULL);
    for (int i = 0; i < (p->backward ? 9 : 5) && rc < 0; i++)
        if ((i == 4 ? lnet_tensor_create(3, lse_shape, &t[i])
                    : lnet_tensor_create(4, shape, &t[i])) != LNET_OK)
            rc = cli_lib_error("--measure");
    if (rc < 0) {
        fill(t[0], 1);
        fill(t[1], 2);
        fill(t[2], 3);
        if (p->backward)
            fill(t[5], 4);
        lnet_run_options ro = { .size = sizeof ro, .device = device, .kernel = kernel,
                                .algorithm = p->algorithm };
        double s[MEASURE_RUNS + 1];
        /* The first run loads the plugin, calibrates a device list and
         * warms the caches: not counted. Each timed run writes fresh
         * outputs, as a real run does: the kernel's first touch of them
         * (a page fault and a cleared page per 4 KiB, about 8 % of a
         * 2M-row forward here) is part of the cost per row. */
        for (int i = 0; i <= MEASURE_RUNS && rc < 0; i++) {
            if (i > 0)
                rc = fresh_outputs(p, shape, lse_shape, t, &maps);
            if (rc < 0)
                rc = run_once(ctx, p, t, &ro, &s[i]);
        }
        if (rc < 0) {
            qsort(s + 1, MEASURE_RUNS, sizeof *s, cmp_double);
            p->measured_s = s[1 + MEASURE_RUNS / 2];
            p->measured_flops = cli_plan_flops(p, m, 0, m);
        }
    }
    for (int i = 0; i < 9; i++)
        unmap_outputs(&maps, t, i);
    lnet_context_free(ctx);
    return rc;
}
