#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* test_opencl_backward.c — the OpenCL backend's backward pass
 * (run_segment_backward, lnet_segment_backward_job in longnet-plugin.h),
 * driven through the plugin table on every OpenCL device, with the fused
 * kernel in both forms (fused=rows, fused=tiled) and the gemm kernel:
 *
 *  (a) every golden case: delta = rowsum(dO * O) from the golden O, one job
 *      per level with the golden final O and LSE, dq/dk/dv against the
 *      golden gradients within 1e-4;
 *  (b) randomized cases (D from 1 to 256, causal and not, both offset
 *      modes, H no multiple of the dilation, ragged last segments, scales)
 *      against a naive float64 forward and backward written here;
 *  (c) row windows: query windows times K/V blocks, summed, equal the one
 *      whole job;
 *  (d) bad jobs refused, with messages.
 *
 * Skips (exit 77) only when no OpenCL device exists. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden_cases.h"
#include "longnet-plugin-math.h"
#include "longnet-plugin.h"
#include "longnet.h"
#include "opencl_test.h"
#include "plugin_direct.h"
#include "seeded_rng.h"

#define TOL 1e-4
#define MAX_LEVELS 8

static int n_devices, have_gemm;
static golden_set golden;
static const lnet_plugin *ocl;
static void *ocl_module;

static const struct {
    const char *kernel, *form;
} forms[] = {{"fused", "rows"}, {"fused", "tiled"}, {"gemm", NULL}};

static int n_forms(void)
{
    return have_gemm ? 3 : 2;
}

/* ------------------------------------------------------------- problems */

/* A problem: shape, levels and the backward's inputs (O and LSE final). */
typedef struct prob {
    int64_t B, N, H, D;
    int L;
    int64_t w[MAX_LEVELS], r[MAX_LEVELS];
    int causal, offsets;
    float scale;
    size_t n4, n3;
    float *q, *k, *v, *dout, *out, *lse, *delta;
} prob;

static void prob_alloc(prob *p)
{
    p->n4 = (size_t)(p->B * p->N * p->H * p->D);
    p->n3 = (size_t)(p->B * p->H * p->N);
    float **x[7] = {&p->q, &p->k, &p->v, &p->dout, &p->out, &p->lse, &p->delta};
    for (int i = 0; i < 7; i++) {
        *x[i] = calloc(i < 5 ? p->n4 : p->n3, sizeof(float));
        ck_assert(*x[i] != NULL);
    }
}

static void prob_free(prob *p)
{
    float *x[7] = {p->q, p->k, p->v, p->dout, p->out, p->lse, p->delta};
    for (int i = 0; i < 7; i++)
        free(x[i]);
}

static size_t at4(const prob *p, int64_t b, int64_t n, int64_t h)
{
    return (size_t)(((b * p->N + n) * p->H + h) * p->D);
}

static size_t at3(const prob *p, int64_t b, int64_t h, int64_t n)
{
    return (size_t)((b * p->H + h) * p->N + n);
}

/* delta = rowsum(dO * O), as the core computes it. */
static void make_delta(prob *p)
{
    for (int64_t b = 0; b < p->B; b++)
        for (int64_t n = 0; n < p->N; n++)
            for (int64_t h = 0; h < p->H; h++) {
                double s = 0;
                for (int64_t d = 0; d < p->D; d++)
                    s += (double)p->dout[at4(p, b, n, h) + d] * p->out[at4(p, b, n, h) + d];
                p->delta[at3(p, b, h, n)] = (float)s;
            }
}

/* Whether level l selects `row` for head h. */
static int selects(const prob *p, int l, int64_t h, int64_t row)
{
    const int64_t o = lnet_plugin_head_offset(p->offsets, h, p->H, p->r[l]);
    const int64_t rel = row - row / p->w[l] * p->w[l];
    return rel >= o && (rel - o) % p->r[l] == 0;
}

static double dot(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* The keys of query i at level l (selected, same segment, causal). */
#define FOR_PAIRS(p, l, h, i, j)                                                           \
    for (int64_t i = 0; i < (p)->N; i++)                                                   \
        if (selects(p, l, h, i))                                                           \
            for (int64_t j = i / (p)->w[l] * (p)->w[l];                                    \
                 j < (p)->N && j < (i / (p)->w[l] + 1) * (p)->w[l] && (!(p)->causal || j <= i); \
                 j++)                                                                      \
                if (selects(p, l, h, j))

/* Naive float64 forward: per level (o_l, lse_l), mixed into the final O and
 * LSE by LSE = log sum exp lse_l, O = sum exp(lse_l - LSE) o_l. */
static void naive_forward(prob *p)
{
    const int64_t D = p->D;
    double *lse_l = malloc(sizeof(double) * (size_t)p->N * (size_t)p->L);
    double *o_l = malloc(sizeof(double) * (size_t)(p->N * p->L * D));
    ck_assert(lse_l && o_l);
    for (int64_t b = 0; b < p->B; b++)
        for (int64_t h = 0; h < p->H; h++) {
            for (size_t x = 0; x < (size_t)(p->N * p->L); x++)
                lse_l[x] = -INFINITY;
            for (int l = 0; l < p->L; l++) {
                /* max, then sum of exp and weighted V */
                double *m = calloc((size_t)p->N, sizeof(double));
                ck_assert(m);
                for (int64_t i = 0; i < p->N; i++)
                    m[i] = -INFINITY;
                FOR_PAIRS(p, l, h, i, j)
                {
                    double s = p->scale * dot(p->q + at4(p, b, i, h), p->k + at4(p, b, j, h), D);
                    if (s > m[i])
                        m[i] = s;
                }
                for (int64_t i = 0; i < p->N; i++)
                    for (int64_t d = 0; d < D; d++)
                        o_l[((size_t)i * p->L + l) * D + d] = 0;
                double *den = calloc((size_t)p->N, sizeof(double));
                ck_assert(den);
                FOR_PAIRS(p, l, h, i, j)
                {
                    double e = exp(p->scale * dot(p->q + at4(p, b, i, h), p->k + at4(p, b, j, h), D) -
                                   m[i]);
                    den[i] += e;
                    for (int64_t d = 0; d < D; d++)
                        o_l[((size_t)i * p->L + l) * D + d] += e * p->v[at4(p, b, j, h) + d];
                }
                for (int64_t i = 0; i < p->N; i++)
                    if (den[i] > 0) {
                        lse_l[(size_t)i * p->L + l] = m[i] + log(den[i]);
                        for (int64_t d = 0; d < D; d++)
                            o_l[((size_t)i * p->L + l) * D + d] /= den[i];
                    }
                free(m);
                free(den);
            }
            for (int64_t i = 0; i < p->N; i++) {
                double mx = -INFINITY, sum = 0;
                for (int l = 0; l < p->L; l++)
                    mx = fmax(mx, lse_l[(size_t)i * p->L + l]);
                for (int l = 0; l < p->L; l++)
                    sum += exp(lse_l[(size_t)i * p->L + l] - mx);
                const double LSE = mx + log(sum);
                p->lse[at3(p, b, h, i)] = (float)LSE;
                for (int64_t d = 0; d < D; d++) {
                    double o = 0;
                    for (int l = 0; l < p->L; l++)
                        if (lse_l[(size_t)i * p->L + l] > -INFINITY)
                            o += exp(lse_l[(size_t)i * p->L + l] - LSE) *
                                 o_l[((size_t)i * p->L + l) * D + d];
                    p->out[at4(p, b, i, h) + d] = (float)o;
                }
            }
        }
    free(lse_l);
    free(o_l);
}

/* Naive float64 backward of every level, from the problem's O, LSE and
 * delta, into dq, dk, dv (float64, [B, N, H, D], zeroed here). */
static void naive_backward(const prob *p, double *dq, double *dk, double *dv)
{
    const int64_t D = p->D;
    memset(dq, 0, p->n4 * sizeof(double));
    memset(dk, 0, p->n4 * sizeof(double));
    memset(dv, 0, p->n4 * sizeof(double));
    for (int64_t b = 0; b < p->B; b++)
        for (int64_t h = 0; h < p->H; h++)
            for (int l = 0; l < p->L; l++)
                FOR_PAIRS(p, l, h, i, j)
                {
                    const float *qi = p->q + at4(p, b, i, h), *kj = p->k + at4(p, b, j, h);
                    const float *vj = p->v + at4(p, b, j, h), *doi = p->dout + at4(p, b, i, h);
                    const double P = exp(p->scale * dot(qi, kj, D) - p->lse[at3(p, b, h, i)]);
                    const double dS = P * (dot(doi, vj, D) - p->delta[at3(p, b, h, i)]);
                    for (int64_t d = 0; d < D; d++) {
                        dv[at4(p, b, j, h) + d] += P * doi[d];
                        dq[at4(p, b, i, h) + d] += p->scale * dS * kj[d];
                        dk[at4(p, b, j, h) + d] += p->scale * dS * qi[d];
                    }
                }
}

/* ------------------------------------------------------ the plugin side */

/* Rows [base, base + n) of a [B, N, H*D] (inner = H*D) or [B*H, N]
 * (inner = 1, outer = B*H) tensor, into a new array. */
static float *rows_of(const float *x, int64_t outer, int64_t N, int64_t inner, int64_t base,
                      int64_t n)
{
    float *y = malloc(sizeof(float) * (size_t)(outer * n * inner) + 1);
    ck_assert(y);
    for (int64_t o = 0; o < outer; o++)
        memcpy(y + o * n * inner, x + (o * N + base) * inner, sizeof(float) * (size_t)(n * inner));
    return y;
}

/* dst rows [base, base + n) += src (as rows_of lays it out). */
static void add_rows(double *dst, const float *src, int64_t outer, int64_t N, int64_t inner,
                     int64_t base, int64_t n)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t x = 0; x < n * inner; x++)
            dst[(o * N + base) * inner + x] += src[o * n * inner + x];
}

static void *upload(void *dev, const float *host, size_t n)
{
    void *b = NULL;
    ck_assert_msg(ocl->buffer_alloc(dev, n * sizeof(float), &b) == 0, "buffer_alloc: %s",
                  ocl->last_error());
    ck_assert_msg(ocl->buffer_write(dev, b, 0, host, n * sizeof(float)) == 0,
                  "buffer_write: %s", ocl->last_error());
    return b;
}

/* The job of level l with the buffers b: q, k, v, out, lse, dout, delta,
 * dq, dk, dv; windows left for the caller. */
static lnet_segment_backward_job make_job(const prob *p, int l, const char *kernel,
                                          void *const b[10])
{
    lnet_segment_backward_job job = {.size = sizeof job, .dout = b[5], .delta = b[6],
                                     .dq = b[7], .dk = b[8], .dv = b[9]};
    job.level = (lnet_segment_job){.size = sizeof job.level, .batch = p->B, .rows = p->N,
                                   .heads = p->H, .dim = p->D, .row_begin = 0, .row_end = p->N,
                                   .segment = p->w[l], .dilation = p->r[l],
                                   .offsets = p->offsets, .causal = p->causal,
                                   .scale = p->scale, .kernel = kernel, .q = b[0], .k = b[1],
                                   .v = b[2], .out = b[3], .lse = b[4]};
    return job;
}

/* Every level's backward job over the query window [qb, qb + qn) and K/V
 * window [kb, kb + kn) (qn = 0: no windows, whole buffers), from zeroed
 * gradients; the windows' dq, dk, dv are added into dq, dk, dv. */
static void run_backward(void *dev, const prob *p, const char *kernel, int64_t qb, int64_t qn,
                         int64_t kb, int64_t kn, double *dq, double *dk, double *dv)
{
    const int whole = qn == 0;
    const int64_t qr = whole ? p->N : qn, kr = whole ? p->N : kn;
    const int64_t q0 = whole ? 0 : qb, k0 = whole ? 0 : kb;
    const int64_t HD = p->H * p->D;
    const size_t nq = (size_t)(p->B * qr * HD), nk = (size_t)(p->B * kr * HD);
    const size_t nl = (size_t)(p->B * p->H * qr);
    float *hq = rows_of(p->q, p->B, p->N, HD, q0, qr), *hdo = rows_of(p->dout, p->B, p->N, HD, q0, qr);
    float *ho = rows_of(p->out, p->B, p->N, HD, q0, qr);
    float *hl = rows_of(p->lse, p->B * p->H, p->N, 1, q0, qr);
    float *hd = rows_of(p->delta, p->B * p->H, p->N, 1, q0, qr);
    float *hk = rows_of(p->k, p->B, p->N, HD, k0, kr), *hv = rows_of(p->v, p->B, p->N, HD, k0, kr);
    float *zq = calloc(nq + 1, sizeof(float)), *zk = calloc(nk + 1, sizeof(float));
    ck_assert(zq && zk);
    void *b[10] = {upload(dev, hq, nq), upload(dev, hk, nk), upload(dev, hv, nk),
                   upload(dev, ho, nq), upload(dev, hl, nl), upload(dev, hdo, nq),
                   upload(dev, hd, nl), upload(dev, zq, nq), upload(dev, zk, nk),
                   upload(dev, zk, nk)};
    for (int l = 0; l < p->L; l++) {
        lnet_segment_backward_job job = make_job(p, l, kernel, b);
        if (!whole) {
            job.level.row_begin = qb;
            job.level.row_end = qb + qn;
            job.level.q_base = qb;
            job.level.q_rows = qn;
            job.level.kv_base = kb;
            job.level.kv_rows = kn;
        }
        ck_assert_msg(ocl->run_segment_backward(dev, &job) == 0, "level %d: %s", l,
                      ocl->last_error());
    }
    ck_assert_msg(ocl->synchronize(dev) == 0, "synchronize: %s", ocl->last_error());
    ck_assert(ocl->buffer_read(dev, b[7], 0, zq, nq * sizeof(float)) == 0);
    add_rows(dq, zq, p->B, p->N, HD, q0, qr);
    ck_assert(ocl->buffer_read(dev, b[8], 0, zk, nk * sizeof(float)) == 0);
    add_rows(dk, zk, p->B, p->N, HD, k0, kr);
    ck_assert(ocl->buffer_read(dev, b[9], 0, zk, nk * sizeof(float)) == 0);
    add_rows(dv, zk, p->B, p->N, HD, k0, kr);
    for (int i = 0; i < 10; i++)
        ocl->buffer_free(dev, b[i]);
    float *hs[9] = {hq, hdo, ho, hl, hd, hk, hv, zq, zk};
    for (int i = 0; i < 9; i++)
        free(hs[i]);
}

/* The largest |got - want| / max(1, |want|) (NaN when either is NaN). */
static double max_err(const double *got, const double *want, size_t n)
{
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]) / fmax(1.0, fabs(want[i]));
        if (!(d <= e))
            e = d;
    }
    return e;
}

static void *open_form(int dev_i, int f)
{
    char options[32] = "";
    if (forms[f].form)
        snprintf(options, sizeof options, "fused=%s", forms[f].form);
    void *dev = NULL;
    ck_assert_msg(ocl->open(dev_i, options, &dev) == 0, "open: %s", ocl->last_error());
    return dev;
}

/* Runs p on every form of device dev_i against the float64 gradients. */
static void check_forms(int dev_i, const prob *p, const double *const want[3], const char *what)
{
    double *got[3];
    for (int t = 0; t < 3; t++)
        ck_assert((got[t] = malloc(p->n4 * sizeof(double))) != NULL);
    for (int f = 0; f < n_forms(); f++) {
        void *dev = open_form(dev_i, f);
        for (int t = 0; t < 3; t++)
            memset(got[t], 0, p->n4 * sizeof(double));
        run_backward(dev, p, forms[f].kernel, 0, 0, 0, 0, got[0], got[1], got[2]);
        ocl->close(dev);
        static const char *const names[3] = {"dq", "dk", "dv"};
        for (int t = 0; t < 3; t++) {
            double e = max_err(got[t], want[t], p->n4);
            ck_assert_msg(e <= TOL, "%s, opencl:%d/%s%s%s: %s error %g > %g", what, dev_i,
                          forms[f].kernel, forms[f].form ? " fused=" : "",
                          forms[f].form ? forms[f].form : "", names[t], e, TOL);
        }
        printf("%s, opencl:%d/%s%s%s: dq, dk, dv within %g\n", what, dev_i, forms[f].kernel,
               forms[f].form ? " fused=" : "", forms[f].form ? forms[f].form : "", TOL);
    }
    for (int t = 0; t < 3; t++)
        free(got[t]);
}

static void open_plugin(void)
{
    if (!ocl)
        ocl = plugin_direct_open("opencl", &ocl_module);
    ck_assert_msg(ocl->size >= offsetof(lnet_plugin, run_segment_backward) + sizeof(void *) &&
                      ocl->run_segment_backward != NULL,
                  "the OpenCL plugin has no run_segment_backward");
}

/* ----------------------------------------------------------- (a) golden */

/* "16,32,64" into x; returns the count. */
static int parse_list(const char *s, int64_t *x)
{
    int n = 0;
    while (*s && n < MAX_LEVELS) {
        char *end;
        x[n++] = strtoll(s, &end, 10);
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

static void copy_tensor(float *dst, const lnet_tensor *t, size_t n)
{
    ck_assert_uint_eq(lnet_tensor_numel(t), n);
    memcpy(dst, lnet_tensor_cdata(t), n * sizeof(float));
}

/* _i: device x case. */
START_TEST(golden_cases)
{
    open_plugin();
    const int dev_i = _i / golden.n;
    const golden_case *c = &golden.cases[_i % golden.n];
    prob p = {.B = c->batch, .N = c->rows, .H = c->heads, .D = c->dim, .causal = c->causal,
              .offsets = (int)c->offsets};
    p.L = parse_list(c->segments, p.w);
    ck_assert_int_eq(parse_list(c->dilations, p.r), p.L);
    p.scale = (float)(c->scale == 0 ? 1.0 / sqrt((double)c->dim) : c->scale);
    prob_alloc(&p);
    static const char *const in[6] = {"q", "k", "v", "dout", "out", "lse"};
    float *dst[6] = {p.q, p.k, p.v, p.dout, p.out, p.lse};
    double *want[3];
    char err[512];
    for (int i = 0; i < 6; i++) {
        lnet_tensor *t = NULL;
        ck_assert_msg(golden_tensor(&golden, c, in[i], &t, err, sizeof err) == 0, "%s", err);
        copy_tensor(dst[i], t, i == 5 ? p.n3 : p.n4);
        lnet_tensor_free(t);
    }
    static const char *const grads[3] = {"dq", "dk", "dv"};
    for (int i = 0; i < 3; i++) {
        lnet_tensor *t = NULL;
        ck_assert_msg(golden_tensor(&golden, c, grads[i], &t, err, sizeof err) == 0, "%s", err);
        ck_assert((want[i] = malloc(p.n4 * sizeof(double))) != NULL);
        ck_assert_uint_eq(lnet_tensor_numel(t), p.n4);
        for (size_t x = 0; x < p.n4; x++)
            want[i][x] = lnet_tensor_cdata(t)[x];
        lnet_tensor_free(t);
    }
    make_delta(&p);
    char what[128];
    snprintf(what, sizeof what, "golden %s", c->name);
    check_forms(dev_i, &p, (const double *const *)want, what);
    for (int i = 0; i < 3; i++)
        free(want[i]);
    prob_free(&p);
}
END_TEST

/* ------------------------------------------------------- (b) randomized */

static const int64_t random_dims[] = {1, 3, 8, 16, 33, 64, 100, 256};
#define N_RANDOM ((int)(sizeof random_dims / sizeof random_dims[0]))

/* Case `i` of seed-determined shape and levels: H is 3 or 5 with a
 * dilation of 2 or 4 among the levels (no multiple), segments that leave a
 * ragged last one, causal on odd cases, grouped offsets on every other
 * pair. */
static prob random_prob(int i, int64_t D)
{
    uint64_t s = 0xbacc0000ull + (uint64_t)i;
    prob p = {.B = 1 + i % 2, .N = rng_int(&s, 37, 80), .H = i % 3 == 2 ? 5 : 3, .D = D,
              .causal = i % 2, .offsets = (i / 2) % 2 ? LNET_PLUGIN_OFFSETS_GROUPED
                                                      : LNET_PLUGIN_OFFSETS_INTERLEAVED};
    if (D >= 100) /* keep the naive oracle quick */
        p.N = rng_int(&s, 30, 48);
    p.L = 1 + (int)rng_int(&s, 1, 2);
    static const int64_t dil[3] = {1, 2, 4};
    for (int l = 0; l < p.L; l++) {
        p.r[l] = dil[(l + i) % 3];
        p.w[l] = p.r[l] * rng_int(&s, 3, 12) + rng_int(&s, 0, p.r[l] - 1);
        if (p.w[l] % p.r[l] == 0 && p.N % p.w[l] == 0)
            p.w[l]++;
    }
    p.w[0] = p.w[0] > p.N ? p.N + 3 : p.w[0]; /* one segment past the end, sometimes */
    p.scale = (float)rng_real(&s, 0.05, 0.6);
    prob_alloc(&p);
    for (size_t x = 0; x < p.n4; x++) {
        p.q[x] = (float)rng_real(&s, -1, 1);
        p.k[x] = (float)rng_real(&s, -1, 1);
        p.v[x] = (float)rng_real(&s, -1, 1);
        p.dout[x] = (float)rng_real(&s, -1, 1);
    }
    naive_forward(&p);
    make_delta(&p);
    return p;
}

static void describe(const prob *p, char *buf, size_t len)
{
    int n = snprintf(buf, len, "B%lld N%lld H%lld D%lld %s %s scale %.3f levels",
                     (long long)p->B, (long long)p->N, (long long)p->H, (long long)p->D,
                     p->causal ? "causal" : "non-causal",
                     p->offsets == LNET_PLUGIN_OFFSETS_GROUPED ? "grouped" : "interleaved",
                     (double)p->scale);
    for (int l = 0; l < p->L && n > 0 && (size_t)n < len; l++)
        n += snprintf(buf + n, len - (size_t)n, " %lld:%lld", (long long)p->w[l],
                      (long long)p->r[l]);
}

/* _i: device x case. */
START_TEST(randomized)
{
    open_plugin();
    const int dev_i = _i / N_RANDOM, i = _i % N_RANDOM;
    prob p = random_prob(i, random_dims[i]);
    double *want[3];
    for (int t = 0; t < 3; t++)
        ck_assert((want[t] = malloc(p.n4 * sizeof(double))) != NULL);
    naive_backward(&p, want[0], want[1], want[2]);
    char what[256];
    describe(&p, what, sizeof what);
    check_forms(dev_i, &p, (const double *const *)want, what);
    for (int t = 0; t < 3; t++)
        free(want[t]);
    prob_free(&p);
}
END_TEST

/* -------------------------------------------------------- (c) windows */

/* _i: device x form x causal. Three query windows times three K/V blocks
 * (cut elsewhere, and not at segment ends), summed, against one job. */
START_TEST(windows)
{
    open_plugin();
    const int per_dev = n_forms() * 2;
    const int dev_i = _i / per_dev, f = (_i % per_dev) / 2;
    prob p = random_prob(4 + _i % 2, 16); /* causal follows the case */
    const int64_t qcut[4] = {0, p.N / 3, 2 * p.N / 3 + 1, p.N};
    const int64_t kcut[4] = {0, p.N / 2 - 3, 3 * p.N / 4, p.N};
    double *whole[3], *sum[3];
    for (int t = 0; t < 3; t++) {
        ck_assert((whole[t] = calloc(p.n4, sizeof(double))) != NULL);
        ck_assert((sum[t] = calloc(p.n4, sizeof(double))) != NULL);
    }
    void *dev = open_form(dev_i, f);
    run_backward(dev, &p, forms[f].kernel, 0, 0, 0, 0, whole[0], whole[1], whole[2]);
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            run_backward(dev, &p, forms[f].kernel, qcut[a], qcut[a + 1] - qcut[a], kcut[b],
                         kcut[b + 1] - kcut[b], sum[0], sum[1], sum[2]);
    ocl->close(dev);
    char what[256];
    describe(&p, what, sizeof what);
    static const char *const names[3] = {"dq", "dk", "dv"};
    for (int t = 0; t < 3; t++) {
        double e = max_err(sum[t], whole[t], p.n4);
        ck_assert_msg(e <= TOL, "windows, %s, opencl:%d/%s %s: %s of the windows differs by %g",
                      what, dev_i, forms[f].kernel, forms[f].form ? forms[f].form : "",
                      names[t], e);
    }
    printf("windows, %s, opencl:%d/%s %s: 3 x 3 windows sum to the whole job\n", what, dev_i,
           forms[f].kernel, forms[f].form ? forms[f].form : "");
    for (int t = 0; t < 3; t++) {
        free(whole[t]);
        free(sum[t]);
    }
    prob_free(&p);
}
END_TEST

/* -------------------------------------------------------- (d) bad jobs */

static void expect_refused(void *dev, const lnet_segment_backward_job *job, int status,
                           const char *words)
{
    int st = ocl->run_segment_backward(dev, job);
    ck_assert_msg(st == status, "expected status %d with '%s', got %d (%s)", status, words, st,
                  st ? ocl->last_error() : "accepted");
    ck_assert_msg(strstr(ocl->last_error(), words) != NULL, "message '%s' lacks '%s'",
                  ocl->last_error(), words);
    printf("refused (%d): %s\n", st, ocl->last_error());
}

START_TEST(bad_jobs)
{
    open_plugin();
    void *dev = NULL;
    ck_assert_msg(ocl->open(0, NULL, &dev) == 0, "open: %s", ocl->last_error());
    prob p = {.B = 1, .N = 8, .H = 2, .D = 4, .L = 1, .w = {8}, .r = {2}, .scale = 0.5f};
    prob_alloc(&p);
    void *b[10];
    for (int i = 0; i < 10; i++)
        b[i] = upload(dev, p.q, p.n4); /* every one big enough */
    void *tiny = upload(dev, p.q, 3);
    lnet_segment_backward_job good = make_job(&p, 0, NULL, b);
    ck_assert_msg(ocl->run_segment_backward(dev, &good) == 0, "%s", ocl->last_error());

    const int INV = LNET_PLUGIN_ERR_INVALID, UNS = LNET_PLUGIN_ERR_UNSUPPORTED;
    ck_assert_int_eq(ocl->run_segment_backward(NULL, &good), INV);
    ck_assert(strstr(ocl->last_error(), "device is NULL"));
    expect_refused(dev, NULL, INV, "job is NULL");
    lnet_segment_backward_job j = good;
    j.size = offsetof(lnet_segment_backward_job, dq);
    expect_refused(dev, &j, INV, "job size");
    j = good;
    j.level.dilation = 0;
    expect_refused(dev, &j, INV, "dilation = 0");
    j = good;
    j.level.scale = NAN;
    expect_refused(dev, &j, INV, "scale");
    j = good;
    j.dout = NULL;
    expect_refused(dev, &j, INV, "buffer dout is NULL");
    j = good;
    j.delta = tiny;
    expect_refused(dev, &j, INV, "buffer delta holds");
    j = good;
    j.dq = tiny;
    expect_refused(dev, &j, INV, "buffer dq holds");
    j = good;
    j.dv = tiny;
    expect_refused(dev, &j, INV, "buffer dv holds");
    j = good;
    j.level.q_base = 4;
    j.level.q_rows = 6;
    j.level.kv_base = 0;
    j.level.kv_rows = 8;
    expect_refused(dev, &j, INV, "query window");
    j = good;
    j.level.q_rows = 8;
    j.level.kv_base = 6;
    j.level.kv_rows = 2;
    j.dk = upload(dev, p.q, 1); /* a K/V window's dk must hold its rows */
    expect_refused(dev, &j, INV, "buffer dk holds");
    ocl->buffer_free(dev, j.dk);
    j = good;
    j.level.kernel = "nope";
    expect_refused(dev, &j, UNS, "unknown kernel 'nope'");
    j = good;
    j.level.dtype = LNET_PLUGIN_DTYPE_F16;
    expect_refused(dev, &j, UNS, "float16");
    /* init (unused by the backward) is accepted with any dilation */
    j = good;
    j.level.init = 1;
    ck_assert_msg(ocl->run_segment_backward(dev, &j) == 0, "init = 1: %s", ocl->last_error());

    ck_assert(ocl->synchronize(dev) == 0);
    for (int i = 0; i < 10; i++)
        ocl->buffer_free(dev, b[i]);
    ocl->buffer_free(dev, tiny);
    ocl->close(dev);
    prob_free(&p);
}
END_TEST

/* ------------------------------------------------------------------ main */

static char cache_dir[256];

int main(void)
{
    lnet_context *ctx = NULL;
    int rc = opencl_test_start("longnet-test-backward", "the OpenCL backward pass", cache_dir,
                               sizeof cache_dir, &ctx, &n_devices, &have_gemm);
    if (rc)
        return rc;
    golden_load_required(&golden);

    Suite *s = suite_create("opencl-backward");
    TCase *tc = tcase_create("backward");
    tcase_set_timeout(tc, 1800);
    tcase_add_test(tc, bad_jobs);
    tcase_add_loop_test(tc, golden_cases, 0, n_devices * golden.n);
    tcase_add_loop_test(tc, randomized, 0, n_devices * N_RANDOM);
    tcase_add_loop_test(tc, windows, 0, n_devices * n_forms() * 2);
    suite_add_tcase(s, tc);
    int failed = opencl_run_suite(s);
    golden_free(&golden);
    lnet_context_free(ctx);
    scratch_dir_remove(cache_dir);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
