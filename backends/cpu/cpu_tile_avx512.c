#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cpu_tile_avx512.c — the fast kernel's tile for AVX-512F (16 float lanes,
 * 32 vector registers). Built with its own -mavx512* flags; the driver calls
 * it only after cpu_simd.c has seen the CPU and the OS support it, so the
 * module still loads on CPUs without AVX-512. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

typedef __m512 vf;
#define VW 16
#define MV 2  /* 32 queries per register block */
#define NR 12 /* Q.K^T: 12 keys x 2 vectors = 24 accumulators */
#define DR 8  /* P.V: 8 head dims x 2 vectors = 16 accumulators */
#define TQ 64

static inline vf vf_zero(void) { return _mm512_setzero_ps(); }
static inline vf vf_set1(float x) { return _mm512_set1_ps(x); }
static inline vf vf_load(const float *p) { return _mm512_load_ps(p); }
static inline void vf_store(float *p, vf x) { _mm512_store_ps(p, x); }
static inline vf vf_bcast(const float *p) { return _mm512_set1_ps(*p); }
static inline vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline int vf_any_gt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ) != 0; }

static inline vf vf_mask_below(vf x, int64_t k)
{
    const __mmask16 m = k >= VW ? (__mmask16)0xFFFF : (__mmask16)((1u << k) - 1u);
    return _mm512_mask_mov_ps(x, m, _mm512_set1_ps(-INFINITY));
}

/* 2^x for x <= 0: x = n + f with n an integer and |f| <= 1/2, 2^f from a
 * degree-6 polynomial (Cephes exp2f, relative error ~2e-7), 2^n applied by
 * vscalefps, which also takes n down to -150 into zero. Clamping first maps
 * -inf (masked scores) to -150, whose result is 0. */
static inline vf vf_exp2(vf x)
{
    /* max returns its second operand when either is NaN: x second, so a
     * NaN score stays NaN (and makes the row's sum NaN, which tile_finish
     * sees) instead of being clamped into a probability of 0. */
    x = _mm512_max_ps(_mm512_set1_ps(-150.0f), x);
    const vf n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const vf f = _mm512_sub_ps(x, n);
    vf p = _mm512_set1_ps(1.535336188319500e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.339887440266574e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618437357674640e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550332471162809e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402264791363012e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931472028550421e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

#define TILE_KERNEL cpu_tile_avx512
#define TILE_NAME "avx512"
#include "cpu_tile_template.h"

/* The backward item (cpu_bwd.h) over the same vocabulary. */
#define BWD_KERNEL cpu_bwd_avx512
#include "cpu_bwd_template.h"
