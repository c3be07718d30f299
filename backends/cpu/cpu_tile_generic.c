#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cpu_tile_generic.c — the fast kernel's tile in portable C: a "vector" is
 * a small struct of floats, operated on lane by lane, which compilers
 * vectorise for whatever the baseline target offers. Used where neither
 * AVX-512 nor AVX2 is available (or when forced, for tests). */
#include <math.h>
#include <stdint.h>

typedef struct {
    float x[8];
} vf;
#define VW 8
#define MV 1
#define NR 4
#define DR 4
#define TQ 32

#define LANES(expr)                                                                                \
    vf r_;                                                                                         \
    for (int i_ = 0; i_ < VW; i_++)                                                                \
        r_.x[i_] = (expr);                                                                         \
    return r_

static inline vf vf_set1(float v) { LANES(v); }
static inline vf vf_zero(void) { LANES(0.0f); }
static inline vf vf_load(const float *p) { LANES(p[i_]); }
static inline void vf_store(float *p, vf a)
{
    for (int i = 0; i < VW; i++)
        p[i] = a.x[i];
}
static inline vf vf_bcast(const float *p) { LANES(*p); }
static inline vf vf_fma(vf a, vf b, vf c) { LANES(a.x[i_] * b.x[i_] + c.x[i_]); }
static inline vf vf_add(vf a, vf b) { LANES(a.x[i_] + b.x[i_]); }
static inline vf vf_sub(vf a, vf b) { LANES(a.x[i_] - b.x[i_]); }
static inline vf vf_mul(vf a, vf b) { LANES(a.x[i_] * b.x[i_]); }
static inline vf vf_max(vf a, vf b) { LANES(a.x[i_] > b.x[i_] ? a.x[i_] : b.x[i_]); }
/* exp2f is exact enough and maps -inf to 0; speed is not this path's job. */
static inline vf vf_exp2(vf a) { LANES(exp2f(a.x[i_])); }
static inline vf vf_mask_below(vf a, int64_t k) { LANES(i_ < k ? -INFINITY : a.x[i_]); }
static inline int vf_any_gt(vf a, vf b)
{
    for (int i = 0; i < VW; i++)
        if (a.x[i] > b.x[i])
            return 1;
    return 0;
}

#define TILE_KERNEL cpu_tile_generic
#define TILE_NAME "generic"
#include "cpu_tile_template.h"

/* The backward item (cpu_bwd.h) over the same vocabulary. */
#define BWD_KERNEL cpu_bwd_generic
#include "cpu_bwd_template.h"
