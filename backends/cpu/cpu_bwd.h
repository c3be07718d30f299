/* cpu_bwd.h — the interface between the fast backward kernel's driver
 * (cpu_backward_fast.c) and its per-ISA tile code (cpu_bwd_template.h,
 * instantiated in cpu_tile_avx512.c, cpu_tile_avx2.c, cpu_tile_generic.c).
 *
 * A work item is a run of one (batch, segment, head): the selected query
 * rows [j_lo, j_hi) against the selected keys [k_lo, k_hi) (indices within
 * the segment's selected rows, causal: key <= query), P recomputed from the
 * final LSE tile by tile (FlashAttention-2's backward, nothing N x N kept).
 * `flags` says which gradients the item owns and writes: the driver gives
 * each row of dq, dk and dv to one item at a time. */
#ifndef LNET_CPU_BWD_H
#define LNET_CPU_BWD_H

#include <stddef.h>
#include <stdint.h>

#include "cpu_tile.h"

#define CPU_BWD_DQ 1   /* the item adds to dq for its query rows */
#define CPU_BWD_DKV 2  /* the item adds to dk and dv for its key rows */

/* What is the same for every item of one job. */
typedef struct cpu_bwd_job {
    int64_t dim;         /* D */
    size_t sel_stride;   /* floats between two selected rows: r * H * D */
    int64_t dilation;    /* lse and delta entries between two selected rows */
    int causal;
    float scale;         /* the job's scale */
    float qscale;        /* scale * log2(e): scores in base 2 */
} cpu_bwd_job;

/* One item. q0, do0, dq0 address the row of selected index j_lo, lse0 and
 * delta0 its entry; k0, v0, dk0, dv0 the row of selected index k_lo. */
typedef struct cpu_bwd_item {
    const float *q0, *do0, *lse0, *delta0;
    const float *k0, *v0;
    float *dq0, *dk0, *dv0;
    int64_t j_lo, j_hi, k_lo, k_hi;
    int flags;           /* CPU_BWD_DQ | CPU_BWD_DKV */
} cpu_bwd_item;

typedef struct cpu_bwd_kernel {
    const char *name;    /* as the forward tile's */
    int tq;              /* rows per query or key tile */
    /* Floats of per-thread scratch (64-byte aligned) for head dim D, or 0
     * when that does not fit in size_t. */
    size_t (*scratch_floats)(int64_t dim);
    void (*run)(const cpu_bwd_job *job, const cpu_bwd_item *item, float *scratch);
} cpu_bwd_kernel;

extern const cpu_bwd_kernel cpu_bwd_generic;
#if defined(__x86_64__) || defined(__i386__)
extern const cpu_bwd_kernel cpu_bwd_avx2;
extern const cpu_bwd_kernel cpu_bwd_avx512;
#endif

#endif /* LNET_CPU_BWD_H */
