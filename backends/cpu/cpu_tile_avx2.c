#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cpu_tile_avx2.c — the fast kernel's tile for AVX2 + FMA (8 float lanes,
 * 16 vector registers). Built with its own -mavx2 -mfma flags and called
 * only after cpu_simd.c has seen the CPU support them. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

typedef __m256 vf;
#define VW 8
#define MV 2 /* 16 queries per register block */
#define NR 6 /* Q.K^T: 6 keys x 2 vectors = 12 accumulators (+2 Q, 1 K) */
#define DR 6 /* P.V: 6 head dims x 2 vectors = 12 accumulators */
#define TQ 64

static inline vf vf_zero(void) { return _mm256_setzero_ps(); }
static inline vf vf_set1(float x) { return _mm256_set1_ps(x); }
static inline vf vf_load(const float *p) { return _mm256_load_ps(p); }
static inline void vf_store(float *p, vf x) { _mm256_store_ps(p, x); }
static inline vf vf_bcast(const float *p) { return _mm256_broadcast_ss(p); }
static inline vf vf_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline int vf_any_gt(vf a, vf b)
{
    return _mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_GT_OQ)) != 0;
}

static inline vf vf_mask_below(vf x, int64_t k)
{
    const vf lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
    const vf kk = _mm256_set1_ps(k >= VW ? (float)VW : (float)k);
    return _mm256_blendv_ps(x, _mm256_set1_ps(-INFINITY), _mm256_cmp_ps(lane, kk, _CMP_LT_OQ));
}

/* 2^x for x <= 0: x = n + f, 2^f from the degree-6 Cephes polynomial
 * (relative error ~2e-7), 2^n built in the exponent field. Clamping to
 * -127 first maps -inf and anything below to exponent field 0, i.e. 0. */
static inline vf vf_exp2(vf x)
{
    /* max returns its second operand when either is NaN: x second, so a
     * NaN score stays NaN (and makes the row's sum NaN, which tile_finish
     * sees) instead of being clamped into a probability of 0. */
    x = _mm256_max_ps(_mm256_set1_ps(-127.0f), x);
    const vf n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const vf f = _mm256_sub_ps(x, n);
    vf p = _mm256_set1_ps(1.535336188319500e-4f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.339887440266574e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.618437357674640e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.550332471162809e-2f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.402264791363012e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.931472028550421e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n),
                                                         _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

#define TILE_KERNEL cpu_tile_avx2
#define TILE_NAME "avx2"
#include "cpu_tile_template.h"

/* The backward item (cpu_bwd.h) over the same vocabulary. */
#define BWD_KERNEL cpu_bwd_avx2
#include "cpu_bwd_template.h"
