#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* test_cpu_backward.c — the CPU backend's run_segment_backward, called on
 * the plugin table directly (plugin_direct.h), for both kernels, every SIMD
 * path this machine runs and 1, 2 and 3 threads:
 *
 *  (a) every golden case: delta = rowsum(dout * out) here, dq, dk, dv
 *      zeroed, one backward job per level with the golden out and lse,
 *      dq, dk, dv within 1e-4 of the golden ones;
 *  (b) randomized problems against a naive double-precision forward and
 *      backward written here (RANDOM_TOL, relative to the largest entry of
 *      each gradient, see below);
 *  (c) row windows: a level split into query windows and K/V blocks,
 *      accumulated, equals the whole job;
 *  (d) bad jobs refused with a message naming what is wrong.
 */
#include <check.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden_cases.h"
#include "longnet-plugin.h"
#include "plugin_direct.h"
#include "seeded_rng.h"

#define GOLDEN_TOL 1e-4
/* Float inputs (q, k, v, dout, out, lse rounded to float), float scores
 * and float sums of up to a few hundred terms: each gradient entry is a sum
 * of n products whose float error is ~n * 6e-8 of the sum of their sizes,
 * and an exp of a score off by ~|score| * 6e-8. With n <= 256 keys that is
 * ~2e-5 of the largest entries; 1e-4 of the tensor's largest |entry| (or of
 * 1, if smaller) leaves room, while a wrong mask, offset, scale or missed
 * row is off by a whole term (>= 1e-2 of the largest entry here). */
#define RANDOM_TOL 1e-4
#define WINDOW_TOL 2e-5
#define N_RANDOM 24
#define N_WINDOWS 12
#define MAX_LEVELS 8

static const char *const simd_paths[] = {"avx512", "avx2", "generic"};
#define N_SIMD 3

static golden_set golden;
static void *cpu_module;
static const lnet_plugin *cpu;

static void open_cpu_plugin(void)
{
    if (!cpu)
        cpu = plugin_direct_open("cpu", &cpu_module);
}

/* ------------------------------------------------------------ runners */

/* A kernel on one opened device: "reference" once, "fast" on each SIMD
 * path this CPU runs, with `threads` threads. */
typedef struct runner {
    const char *kernel;
    char label[128];
    void *dev;
} runner;

static int open_runners(runner *rs, int threads)
{
    open_cpu_plugin();
    int n = 0;
    for (int p = -1; p < N_SIMD; p++) {
        char options[96];
        snprintf(options, sizeof options, "simd=%s,threads=%d", p < 0 ? "generic" : simd_paths[p],
                 threads);
        void *dev = NULL;
        int rc = cpu->open(0, options, &dev);
        if (rc == LNET_PLUGIN_ERR_UNSUPPORTED) {
            static int noted[N_SIMD];
            if (p >= 0 && !noted[p]++)
                printf("note: SIMD path %s skipped: %s\n", simd_paths[p], cpu->last_error());
            continue; /* a path this CPU cannot run */
        }
        ck_assert_msg(rc == 0, "open(%s): %d: %s", options, rc, cpu->last_error());
        rs[n].kernel = p < 0 ? "reference" : "fast";
        rs[n].dev = dev;
        snprintf(rs[n].label, sizeof rs[n].label, "%s/%s", rs[n].kernel, options);
        n++;
    }
    return n;
}

static void close_runners(runner *rs, int n)
{
    for (int i = 0; i < n; i++)
        cpu->close(rs[i].dev);
}

/* ------------------------------------------------------------ problems */

/* A problem: whole tensors, the final (out, lse) of the forward over all
 * levels and delta = rowsum(dout * out). */
typedef struct prob {
    int64_t B, N, H, D;
    int nl;
    int64_t w[MAX_LEVELS], r[MAX_LEVELS];
    int causal, offsets;
    float scale;
    float *q, *k, *v, *dout, *out, *lse, *delta;
    char label[200];
} prob;

static size_t numel4(const prob *p) { return (size_t)(p->B * p->N * p->H * p->D); }
static size_t numel3(const prob *p) { return (size_t)(p->B * p->H * p->N); }

static float *falloc(size_t n)
{
    float *x = calloc(n ? n : 1, sizeof(float));
    ck_assert(x != NULL);
    return x;
}

static void compute_delta(prob *p)
{
    p->delta = falloc(numel3(p));
    for (int64_t b = 0; b < p->B; b++)
        for (int64_t n = 0; n < p->N; n++)
            for (int64_t h = 0; h < p->H; h++) {
                const size_t at = (size_t)(((b * p->N + n) * p->H + h) * p->D);
                double s = 0.0;
                for (int64_t d = 0; d < p->D; d++)
                    s += (double)p->dout[at + d] * (double)p->out[at + d];
                p->delta[(b * p->H + h) * p->N + n] = (float)s;
            }
}

static void free_prob(prob *p)
{
    free(p->q);
    free(p->k);
    free(p->v);
    free(p->dout);
    free(p->out);
    free(p->lse);
    free(p->delta);
}

/* The rows a job's buffers hold; q_rows = 0: whole tensors. */
typedef struct wspec {
    int64_t q_base, q_rows, kv_base, kv_rows;
} wspec;

/* Rows [base, base + n) of a [B, N, H, D] tensor (inner = H * D) or of a
 * [B, H, N] one (outer = B * H, inner = 1), copied out (back = 0) or
 * back in (back = 1). */
static void rows_copy(float *full, float *part, int64_t outer, int64_t N, int64_t inner,
                      int64_t base, int64_t n, int back)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < n * inner; i++) {
            float *f = full + (size_t)(o * N * inner + base * inner + i);
            float *x = part + (size_t)(o * n * inner + i);
            if (back)
                *f = *x;
            else
                *x = *f;
        }
}

static void *wrap(void *dev, float *x, size_t n)
{
    void *buf = NULL;
    ck_assert_msg(cpu->buffer_wrap_host(dev, x, (n ? n : 1) * sizeof(float), &buf) == 0, "%s",
                  cpu->last_error());
    return buf;
}

/* One backward job of level l over rows [rb, re) with window ws (copies
 * of the rows it holds): the job's dq, dk, dv hold what the whole ones
 * hold (the kernel must add to them) and are copied back. */
static void run_level(const runner *rn, const prob *p, int l, int64_t rb, int64_t re,
                      const wspec *ws, float *dq, float *dk, float *dv)
{
    const int win = ws && ws->q_rows > 0;
    const int64_t qb = win ? ws->q_base : 0, qn = win ? ws->q_rows : p->N;
    const int64_t kb = win ? ws->kv_base : 0, kn = win ? ws->kv_rows : p->N;
    const int64_t HD = p->H * p->D;
    float *t[9];
    float *src[9] = {p->q, p->dout, dq, p->k, p->v, dk, dv, p->lse, p->delta};
    for (int i = 0; i < 9; i++) {
        const int kv = i >= 3 && i < 7, l3 = i >= 7;
        const int64_t rows = kv ? kn : qn, base = kv ? kb : qb;
        t[i] = falloc((size_t)(p->B * (l3 ? p->H : HD) * rows));
        rows_copy(src[i], t[i], l3 ? p->B * p->H : p->B, p->N, l3 ? 1 : HD, base, rows, 0);
    }
    void *b[9];
    for (int i = 0; i < 9; i++) {
        const int kv = i >= 3 && i < 7, l3 = i >= 7;
        b[i] = wrap(rn->dev, t[i], (size_t)(p->B * (l3 ? p->H : HD) * (kv ? kn : qn)));
    }
    lnet_segment_backward_job job = {
        .size = sizeof job,
        .level = {.size = sizeof job.level, .batch = p->B, .rows = p->N, .heads = p->H,
                  .dim = p->D, .row_begin = rb, .row_end = re, .segment = p->w[l],
                  .dilation = p->r[l], .offsets = p->offsets, .causal = p->causal,
                  .scale = p->scale, .kernel = rn->kernel, .q = b[0], .k = b[3], .v = b[4],
                  .out = NULL, .lse = b[7], .q_base = qb, .q_rows = win ? qn : 0,
                  .kv_base = kb, .kv_rows = win ? kn : 0, .dtype = LNET_PLUGIN_DTYPE_F32},
        .dout = b[1], .delta = b[8], .dq = b[2], .dk = b[5], .dv = b[6],
    };
    int rc = cpu->run_segment_backward(rn->dev, &job);
    ck_assert_msg(rc == 0, "%s, %s, level %d: %d: %s", p->label, rn->label, l, rc,
                  cpu->last_error());
    rows_copy(dq, t[2], p->B, p->N, HD, qb, qn, 1);
    rows_copy(dk, t[5], p->B, p->N, HD, kb, kn, 1);
    rows_copy(dv, t[6], p->B, p->N, HD, kb, kn, 1);
    for (int i = 0; i < 9; i++) {
        cpu->buffer_free(rn->dev, b[i]);
        free(t[i]);
    }
}

/* Every level over every row, whole tensors: dq, dk, dv from zero. */
static void run_all_levels(const runner *rn, const prob *p, float *dq, float *dk, float *dv)
{
    const size_t n = numel4(p);
    memset(dq, 0, n * sizeof(float));
    memset(dk, 0, n * sizeof(float));
    memset(dv, 0, n * sizeof(float));
    for (int l = 0; l < p->nl; l++)
        run_level(rn, p, l, 0, p->N, NULL, dq, dk, dv);
}

static double max_abs(const float *x, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)x[i]) > m)
            m = fabs((double)x[i]);
    return m;
}

/* max |x - ref| (NaN counts as infinite). */
static double max_err(const float *x, const float *ref, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double e = fabs((double)x[i] - (double)ref[i]);
        if (!(e <= m))
            m = isnan(e) ? INFINITY : e;
    }
    return m;
}

/* ------------------------------------------------------------ (a) golden */

static int parse_list(const char *text, int64_t *out)
{
    int n = 0;
    const char *s = text;
    while (*s && n < MAX_LEVELS) {
        char *end;
        out[n++] = strtoll(s, &end, 10);
        s = *end == ',' ? end + 1 : end;
        if (end == s && *end)
            break;
    }
    return n;
}

static float *tensor_copy(const golden_case *c, const char *file)
{
    lnet_tensor *t = NULL;
    char err[512];
    ck_assert_msg(golden_tensor(&golden, c, file, &t, err, sizeof err) == 0, "%s", err);
    const size_t n = lnet_tensor_numel(t);
    float *x = falloc(n);
    memcpy(x, lnet_tensor_data(t), n * sizeof(float));
    lnet_tensor_free(t);
    return x;
}

START_TEST(golden_every_kernel)
{
    const golden_case *c = &golden.cases[_i];
    prob p = {.B = c->batch, .N = c->rows, .H = c->heads, .D = c->dim, .causal = c->causal,
              .offsets = c->offsets == LNET_OFFSETS_GROUPED ? LNET_PLUGIN_OFFSETS_GROUPED
                                                           : LNET_PLUGIN_OFFSETS_INTERLEAVED};
    p.scale = c->scale == 0.0 ? (float)(1.0 / sqrt((double)c->dim)) : (float)c->scale;
    p.nl = parse_list(c->segments, p.w);
    ck_assert_msg(parse_list(c->dilations, p.r) == p.nl && p.nl < MAX_LEVELS, "%s: levels",
                  c->name);
    snprintf(p.label, sizeof p.label, "golden %s", c->name);
    p.q = tensor_copy(c, "q");
    p.k = tensor_copy(c, "k");
    p.v = tensor_copy(c, "v");
    p.dout = tensor_copy(c, "dout");
    p.out = tensor_copy(c, "out");
    p.lse = tensor_copy(c, "lse");
    compute_delta(&p);
    float *want[3] = {tensor_copy(c, "dq"), tensor_copy(c, "dk"), tensor_copy(c, "dv")};
    const size_t n = numel4(&p);
    float *got[3] = {falloc(n), falloc(n), falloc(n)};
    static const char *const names[3] = {"dq", "dk", "dv"};
    for (int threads = 1; threads <= 3; threads++) {
        runner rs[1 + N_SIMD];
        const int nr = open_runners(rs, threads);
        for (int i = threads == 1 ? 0 : 1; i < nr; i++) { /* the reference once */
            run_all_levels(&rs[i], &p, got[0], got[1], got[2]);
            for (int g = 0; g < 3; g++) {
                const double e = max_err(got[g], want[g], n);
                ck_assert_msg(e <= GOLDEN_TOL, "%s, %s: max |%s err| %g > %g", p.label,
                              rs[i].label, names[g], e, GOLDEN_TOL);
            }
        }
        close_runners(rs, nr);
    }
    for (int g = 0; g < 3; g++) {
        free(want[g]);
        free(got[g]);
    }
    free_prob(&p);
}
END_TEST

/* ------------------------------------------------------- (b) naive oracle */

/* Level l's selection of row n for head h: its segment's first row, or -1. */
static int64_t sel_first(const prob *p, int l, int64_t h, int64_t n)
{
    const int64_t w = p->w[l], r = p->r[l];
    const int64_t rc = (p->H + r - 1) / r;
    const int64_t o = p->offsets == LNET_PLUGIN_OFFSETS_GROUPED ? h / rc : h % r;
    const int64_t start = n / w * w;
    if (n - start < o || (n - start - o) % r)
        return -1;
    return start + o;
}

/* The keys query n attends at level l: rows first, first + r, ... < end
 * (causal: <= n). */
static int64_t keys_end(const prob *p, int l, int64_t n)
{
    const int64_t start = n / p->w[l] * p->w[l];
    const int64_t end = start + p->w[l] < p->N ? start + p->w[l] : p->N;
    return p->causal ? n + 1 : end;
}

static double dotd(const float *a, const float *b, int64_t D)
{
    double s = 0.0;
    for (int64_t d = 0; d < D; d++)
        s += (double)a[d] * (double)b[d];
    return s;
}

/* The forward in double: O and LSE over all levels (DESIGN §1). */
static void naive_forward(prob *p, double *O, double *L)
{
    const int64_t N = p->N, H = p->H, D = p->D;
    const size_t n4 = numel4(p), n3 = numel3(p);
    for (size_t i = 0; i < n4; i++)
        O[i] = 0.0;
    for (size_t i = 0; i < n3; i++)
        L[i] = -INFINITY;
    double *o = calloc((size_t)D, sizeof *o);
    for (int64_t b = 0; b < p->B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t n = 0; n < N; n++)
                for (int l = 0; l < p->nl; l++) {
                    const int64_t f = sel_first(p, l, h, n);
                    if (f < 0)
                        continue;
                    const float *qv = p->q + ((b * N + n) * H + h) * D;
                    double m = -INFINITY, s = 0.0;
                    for (int64_t j = f; j < keys_end(p, l, n); j += p->r[l]) {
                        const double sc = p->scale * dotd(qv, p->k + ((b * N + j) * H + h) * D, D);
                        m = sc > m ? sc : m;
                    }
                    for (int64_t d = 0; d < D; d++)
                        o[d] = 0.0;
                    for (int64_t j = f; j < keys_end(p, l, n); j += p->r[l]) {
                        const size_t at = (size_t)(((b * N + j) * H + h) * D);
                        const double e = exp(p->scale * dotd(qv, p->k + at, D) - m);
                        s += e;
                        for (int64_t d = 0; d < D; d++)
                            o[d] += e * (double)p->v[at + d];
                    }
                    const double li = m + log(s);
                    double *Lr = &L[(b * H + h) * N + n], *Or = &O[((b * N + n) * H + h) * D];
                    const double mm = *Lr > li ? *Lr : li;
                    const double a = *Lr == -INFINITY ? 0.0 : exp(*Lr - mm), c = exp(li - mm);
                    for (int64_t d = 0; d < D; d++)
                        Or[d] = (a * Or[d] + c * o[d] / s) / (a + c);
                    *Lr = mm + log(a + c);
                }
    free(o);
}

/* The backward in double from the double O and LSE: dq, dk, dv. */
static void naive_backward(const prob *p, const double *O, const double *L, double *dq,
                           double *dk, double *dv)
{
    const int64_t N = p->N, H = p->H, D = p->D;
    for (size_t i = 0; i < numel4(p); i++)
        dq[i] = dk[i] = dv[i] = 0.0;
    for (int64_t b = 0; b < p->B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t n = 0; n < N; n++) {
                const size_t qa = (size_t)(((b * N + n) * H + h) * D);
                double delta = 0.0;
                for (int64_t d = 0; d < D; d++)
                    delta += (double)p->dout[qa + d] * O[qa + d];
                const double lse = L[(b * H + h) * N + n];
                for (int l = 0; l < p->nl; l++) {
                    const int64_t f = sel_first(p, l, h, n);
                    if (f < 0)
                        continue;
                    for (int64_t j = f; j < keys_end(p, l, n); j += p->r[l]) {
                        const size_t ka = (size_t)(((b * N + j) * H + h) * D);
                        const double pr = exp(p->scale * dotd(p->q + qa, p->k + ka, D) - lse);
                        const double ds = pr * (dotd(p->dout + qa, p->v + ka, D) - delta);
                        for (int64_t d = 0; d < D; d++) {
                            dv[ka + d] += pr * p->dout[qa + d];
                            dq[qa + d] += p->scale * ds * p->k[ka + d];
                            dk[ka + d] += p->scale * ds * p->q[qa + d];
                        }
                    }
                }
            }
}

static void make_random(uint64_t seed, prob *p)
{
    uint64_t s = seed * 7919 + 11;
    memset(p, 0, sizeof *p);
    static const int64_t dims[] = {1, 3, 8, 16, 33, 64, 100, 256};
    p->D = dims[rng_int(&s, 0, 7)];
    /* Keep B N H D near 2^16 so that every path runs quickly. */
    const int64_t budget = (int64_t)1 << 16;
    p->H = rng_int(&s, 1, 5);
    p->B = rng_int(&s, 1, 2);
    int64_t nmax = budget / (p->B * p->H * p->D);
    if (nmax > 256)
        nmax = 256;
    if (nmax < 2)
        nmax = 2;
    p->N = rng_int(&s, 1, nmax);
    if (seed % 8 == 7) {
        /* Long segments: more query rows than the fast kernel packs at a
         * time (16 tiles: 1024 rows on AVX2 and AVX-512, 512 generic) and
         * more key rows (32 tiles: 2048, 1024 generic), so that an item
         * runs in query chunks and key blocks (seed 15 on one thread:
         * whole runs as items; 7 and 23 on more: the tiled passes). */
        p->B = 1;
        p->H = rng_int(&s, 2, 3);
        p->D = rng_int(&s, 0, 1) ? 8 : 17;
        p->N = rng_int(&s, 2100, 2400);
    }
    p->nl = (int)rng_int(&s, 1, 3);
    for (int l = 0; l < p->nl; l++) {
        /* A long case's first level is one segment over the whole
         * sequence at r = 1: every row selected, the most keys. */
        const int kind = l == 0 && seed % 8 == 7 ? 0 : (int)rng_int(&s, 0, 3);
        p->w[l] = kind == 0 ? p->N + rng_int(&s, 0, 40) : rng_int(&s, 1, p->N + 3);
        p->r[l] = l == 0 ? 1 : rng_int(&s, 1, p->w[l] < 5 ? p->w[l] : 5);
    }
    p->causal = (int)rng_int(&s, 0, 1);
    p->offsets = (int)rng_int(&s, 0, 1);
    p->scale = (float)rng_real(&s, 0.05, 1.0);
    const size_t n = numel4(p);
    float **t[4] = {&p->q, &p->k, &p->v, &p->dout};
    for (int i = 0; i < 4; i++) {
        *t[i] = falloc(n);
        for (size_t e = 0; e < n; e++)
            (*t[i])[e] = (float)rng_real(&s, -1.5, 1.5);
    }
    double *O = malloc(n * sizeof *O), *L = malloc(numel3(p) * sizeof *L);
    ck_assert(O && L);
    naive_forward(p, O, L);
    p->out = falloc(n);
    p->lse = falloc(numel3(p));
    for (size_t i = 0; i < n; i++)
        p->out[i] = (float)O[i];
    for (size_t i = 0; i < numel3(p); i++)
        p->lse[i] = (float)L[i];
    free(O);
    free(L);
    compute_delta(p);
    int used = snprintf(p->label, sizeof p->label,
                        "seed %llu: B%lld N%lld H%lld D%lld %s %s levels",
                        (unsigned long long)seed, (long long)p->B, (long long)p->N, (long long)p->H,
                        (long long)p->D, p->causal ? "causal" : "full",
                        p->offsets ? "grouped" : "interleaved");
    for (int l = 0; l < p->nl && used > 0 && (size_t)used < sizeof p->label; l++)
        used += snprintf(p->label + used, sizeof p->label - (size_t)used, " %lld/%lld",
                         (long long)p->w[l], (long long)p->r[l]);
}

START_TEST(random_vs_naive)
{
    prob p;
    make_random((uint64_t)_i, &p);
    const size_t n = numel4(&p);
    double *O = malloc(n * sizeof *O), *L = malloc(numel3(&p) * sizeof *L);
    double *ref[3] = {malloc(n * sizeof(double)), malloc(n * sizeof(double)),
                      malloc(n * sizeof(double))};
    ck_assert(O && L && ref[0] && ref[1] && ref[2]);
    naive_forward(&p, O, L);
    naive_backward(&p, O, L, ref[0], ref[1], ref[2]);
    float *want[3], *got[3];
    double scale[3];
    for (int g = 0; g < 3; g++) {
        want[g] = falloc(n);
        got[g] = falloc(n);
        for (size_t i = 0; i < n; i++)
            want[g][i] = (float)ref[g][i];
        scale[g] = max_abs(want[g], n) > 1.0 ? max_abs(want[g], n) : 1.0;
    }
    static const char *const names[3] = {"dq", "dk", "dv"};
    runner rs[1 + N_SIMD];
    const int nr = open_runners(rs, 1 + _i % 3);
    for (int i = 0; i < nr; i++) {
        run_all_levels(&rs[i], &p, got[0], got[1], got[2]);
        for (int g = 0; g < 3; g++) {
            const double e = max_err(got[g], want[g], n);
            ck_assert_msg(e <= RANDOM_TOL * scale[g], "%s, %s: max |%s err| %g > %g * %g",
                          p.label, rs[i].label, names[g], e, RANDOM_TOL, scale[g]);
        }
    }
    close_runners(rs, nr);
    for (int g = 0; g < 3; g++) {
        free(ref[g]);
        free(want[g]);
        free(got[g]);
    }
    free(O);
    free(L);
    free_prob(&p);
}
END_TEST

/* ------------------------------------------------------------ (c) windows */

/* One level, cut into query windows (each a little wider than its row
 * range) and K/V blocks: the sum of the pieces equals the whole job. */
START_TEST(windows_sum_to_whole)
{
    prob p;
    make_random(1000 + (uint64_t)_i, &p);
    uint64_t s = 99 + (uint64_t)_i;
    const size_t n = numel4(&p);
    const int l = p.nl - 1;
    runner rs[1 + N_SIMD];
    const int nr = open_runners(rs, 1 + _i % 3);
    float *whole[3] = {falloc(n), falloc(n), falloc(n)};
    float *part[3] = {falloc(n), falloc(n), falloc(n)};
    static const char *const names[3] = {"dq", "dk", "dv"};
    for (int i = 0; i < nr; i++) {
        for (int g = 0; g < 3; g++) {
            memset(whole[g], 0, n * sizeof(float));
            memset(part[g], 0, n * sizeof(float));
        }
        run_level(&rs[i], &p, l, 0, p.N, NULL, whole[0], whole[1], whole[2]);
        /* At most 8 x 8 pieces. */
        const int64_t min_step = (p.N + 7) / 8;
        const int64_t qstep = rng_int(&s, min_step, p.N), kstep = rng_int(&s, min_step, p.N);
        for (int64_t q0 = 0; q0 < p.N; q0 += qstep) {
            const int64_t q1 = q0 + qstep < p.N ? q0 + qstep : p.N;
            const int64_t ext = rng_int(&s, 0, 2);
            const int64_t lo = q0 - ext < 0 ? 0 : q0 - ext;
            const int64_t hi = q1 + ext < p.N ? q1 + ext : p.N;
            for (int64_t k0 = 0; k0 < p.N; k0 += kstep) {
                const int64_t k1 = k0 + kstep < p.N ? k0 + kstep : p.N;
                const wspec ws = {lo, hi - lo, k0, k1 - k0};
                run_level(&rs[i], &p, l, q0, q1, &ws, part[0], part[1], part[2]);
            }
        }
        for (int g = 0; g < 3; g++) {
            const double e = max_err(part[g], whole[g], n);
            const double sc = max_abs(whole[g], n) > 1.0 ? max_abs(whole[g], n) : 1.0;
            ck_assert_msg(e <= WINDOW_TOL * sc,
                          "%s, %s, level %d in %lld-row query windows and %lld-row K/V blocks: "
                          "max |%s - whole job| %g",
                          p.label, rs[i].label, l, (long long)qstep, (long long)kstep, names[g], e);
        }
    }
    close_runners(rs, nr);
    for (int g = 0; g < 3; g++) {
        free(whole[g]);
        free(part[g]);
    }
    free_prob(&p);
}
END_TEST

/* ------------------------------------------------------------ (d) refusals */

START_TEST(bad_jobs_refused)
{
    open_cpu_plugin();
    ck_assert_msg(cpu->run_segment_backward != NULL, "the cpu table has no backward slot");
    void *dev = NULL;
    ck_assert_msg(cpu->open(0, "threads=2", &dev) == 0, "open: %s", cpu->last_error());
    /* B 1, N 8, H 1, D 2 */
    static float x[9][16], l3[2][8];
    void *b[11];
    for (int i = 0; i < 9; i++)
        b[i] = wrap(dev, x[i], 16);
    b[9] = wrap(dev, l3[0], 8);
    b[10] = wrap(dev, l3[1], 8);
    void *small = wrap(dev, x[8], 15);
    static const char *const kernels[] = {"fast", "reference"};
    for (int kn = 0; kn < 2; kn++) {
        const lnet_segment_backward_job good = {
            .size = sizeof good,
            .level = {.size = sizeof good.level, .batch = 1, .rows = 8, .heads = 1, .dim = 2,
                      .row_begin = 0, .row_end = 8, .segment = 4, .dilation = 2, .causal = 1,
                      .init = 1, /* unused by the backward: not refused */
                      .scale = 0.5f, .kernel = kernels[kn], .q = b[0], .k = b[1], .v = b[2],
                      .out = NULL, .lse = b[9]},
            .dout = b[3], .delta = b[10], .dq = b[4], .dk = b[5], .dv = b[6],
        };
        lnet_segment_backward_job job = good;
        ck_assert_msg(cpu->run_segment_backward(dev, &job) == 0, "%s: good job: %s",
                      kernels[kn], cpu->last_error());
#define REFUSE(mutate, status, n1, n2)                                                             \
    do {                                                                                           \
        job = good;                                                                                \
        mutate;                                                                                    \
        const int rc_ = cpu->run_segment_backward(dev, &job);                                      \
        const char *m_ = cpu->last_error();                                                        \
        ck_assert_msg(rc_ == (status) && strstr(m_, n1) && strstr(m_, n2) &&                       \
                          strstr(m_, "cpu run_segment_backward: "),                                \
                      "%s: %s: rc %d, message '%s' (should name '%s', '%s')", kernels[kn],         \
                      #mutate, rc_, m_, n1, n2);                                                   \
    } while (0)
        REFUSE(job.level.q = NULL, LNET_PLUGIN_ERR_INVALID, "buffer q", "NULL");
        REFUSE(job.level.lse = NULL, LNET_PLUGIN_ERR_INVALID, "buffer lse", "NULL");
        REFUSE(job.dout = NULL, LNET_PLUGIN_ERR_INVALID, "buffer dout", "NULL");
        REFUSE(job.delta = NULL, LNET_PLUGIN_ERR_INVALID, "buffer delta", "NULL");
        REFUSE(job.dq = NULL, LNET_PLUGIN_ERR_INVALID, "buffer dq", "NULL");
        REFUSE(job.dk = NULL, LNET_PLUGIN_ERR_INVALID, "buffer dk", "NULL");
        REFUSE(job.dv = NULL, LNET_PLUGIN_ERR_INVALID, "buffer dv", "NULL");
        REFUSE(job.dv = small, LNET_PLUGIN_ERR_INVALID, "buffer dv", "60 bytes");
        REFUSE(job.size = offsetof(lnet_segment_backward_job, dv), LNET_PLUGIN_ERR_INVALID,
               "job size", "smaller");
        REFUSE(job.level.dtype = LNET_PLUGIN_DTYPE_F16, LNET_PLUGIN_ERR_UNSUPPORTED, "float16",
               "float32 only");
        REFUSE(job.level.kernel = "nope", LNET_PLUGIN_ERR_UNSUPPORTED, "nope", "reference");
        REFUSE(job.level.dilation = 5, LNET_PLUGIN_ERR_INVALID, "dilation = 5", "segment = 4");
        REFUSE((job.level.q_base = 2, job.level.q_rows = 8), LNET_PLUGIN_ERR_INVALID,
               "query window", "8 rows from row 2");
        REFUSE((job.level.q_rows = 4, job.level.kv_rows = 4, job.level.kv_base = 6),
               LNET_PLUGIN_ERR_INVALID, "key/value window", "from row 6");
        REFUSE((job.level.q_rows = 4, job.level.kv_rows = 4), LNET_PLUGIN_ERR_INVALID,
               "rows [0, 8)", "query window [0, 4)");
#undef REFUSE
    }
    ck_assert(cpu->run_segment_backward(dev, NULL) == LNET_PLUGIN_ERR_INVALID &&
              strstr(cpu->last_error(), "job is NULL"));
    for (int i = 0; i < 11; i++)
        cpu->buffer_free(dev, b[i]);
    cpu->buffer_free(dev, small);
    cpu->close(dev);
}
END_TEST

int main(void)
{
    golden_load_required(&golden);
    Suite *s = suite_create("cpu_backward");
    TCase *tc = tcase_create("backward");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, golden_every_kernel, 0, golden.n);
    tcase_add_loop_test(tc, random_vs_naive, 0, N_RANDOM);
    tcase_add_loop_test(tc, windows_sum_to_whole, 0, N_WINDOWS);
    tcase_add_test(tc, bad_jobs_refused);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    golden_free(&golden);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
