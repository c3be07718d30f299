/* cpu_tile.h — the interface between the fast kernel's driver (cpu_fast.c)
 * and its per-ISA tile kernels (cpu_tile_avx512.c, cpu_tile_avx2.c,
 * cpu_tile_generic.c, all instances of cpu_tile_template.h).
 *
 * A tile is one work item: up to `tq` selected query rows of one (batch,
 * head, segment) against every selected key row of that segment they may
 * see, with the result folded into the running (out, lse). The driver only
 * computes where things are; the tile kernel does all the arithmetic. */
#ifndef LNET_CPU_TILE_H
#define LNET_CPU_TILE_H

#include <stddef.h>
#include <stdint.h>

/* What is the same for every tile of one job. */
typedef struct cpu_tile_job {
    int64_t dim;        /* D */
    size_t sel_stride;  /* floats between two selected rows: r * H * D */
    int64_t dilation;   /* r: lse entries between two selected rows */
    int causal;
    int init;           /* 1: overwrite out and lse instead of folding */
    float qscale;       /* scale * log2(e): scores come out in base 2 */
    float scale;        /* the job's own scale, for rows redone exactly */
} cpu_tile_job;

/* One work item, in "selected indices": j is the segment's j-th selected
 * row. Consecutive selected rows are sel_stride floats apart in q, k, v and
 * out, and `dilation` entries apart in lse. The pointers address only rows
 * the tile reads or writes, because with row windows (lnet_segment_job) the
 * buffers hold part of the sequence and the rest of a segment has no
 * address: q0, out0 and lse0 are the row of selected index jq0 + w0 (the
 * first query written), k0 and v0 that of selected index k_lo. */
typedef struct cpu_tile {
    const float *q0, *k0, *v0;
    float *out0, *lse0;
    size_t kv_stride;   /* floats between two selected rows in k0 and v0: the
                         * job's sel_stride, or D where the driver packed the
                         * segment's keys contiguous (cpu_fast.c) */
    int64_t k_lo, k_hi; /* keys the tile may score: [k_lo, k_hi), k_lo < k_hi */
    int64_t jq0;        /* first query of the tile: a multiple of tq */
    int64_t nq;         /* queries computed: jq0 .. jq0 + nq - 1, nq <= tq */
    int64_t w0, w1;     /* of those, the ones read and written back: [w0, w1)
                         * relative to jq0; under causal masking each of
                         * them has at least key k_lo */
} cpu_tile;

typedef struct cpu_tile_kernel {
    const char *name;   /* "avx512", "avx2", "generic" */
    int tq;             /* queries per tile, also keys per key tile */
    int align;          /* bytes the scratch must be aligned to */
    /* Floats of per-thread scratch a tile of head dim D needs, or 0 when
     * that does not fit in size_t. */
    size_t (*scratch_floats)(int64_t dim);
    void (*run)(const cpu_tile_job *job, const cpu_tile *tile, float *scratch);
} cpu_tile_kernel;

/* The reference kernel's arithmetic for one query row (cpu_reference.c),
 * which the reference kernel itself runs for every row. A tile redoes with
 * it the rows whose float arithmetic met a NaN or an infinity, so that
 * non-finite inputs give what the reference gives, element by element
 * (DESIGN §1, Non-finite inputs). cpu_exact_branch: the branch of one query
 * over nk keys whose rows are `stride` floats apart; acc holds D doubles,
 * scores nk doubles or is NULL; returns lse_i, sets *l. cpu_exact_fold:
 * writes it into, or folds it into, the row's (out, lse). */
double cpu_exact_branch(const float *q, const float *k, const float *v, size_t stride,
                        int64_t nk, int64_t D, double scale, double *scores, double *acc,
                        double *l);
void cpu_exact_fold(float *orow, float *lrow, const double *acc, double l, double lse_i,
                    int64_t D, int init);

/* For the per-ISA templates: `run`, which calls body(D, job, item,
 * scratch) through a copy of its own for D = 64 and D = 128, where the
 * constant D lets the compiler turn every offset into an immediate, and a
 * general copy for other head dims. */
#define CPU_DIM_SPECIALISED(run, body, job_t, item_t)                                              \
    static void run##_d64(const job_t *job, const item_t *it, float *scratch)                      \
    {                                                                                              \
        body(64, job, it, scratch);                                                                \
    }                                                                                              \
    static void run##_d128(const job_t *job, const item_t *it, float *scratch)                     \
    {                                                                                              \
        body(128, job, it, scratch);                                                               \
    }                                                                                              \
    static void run##_any(const job_t *job, const item_t *it, float *scratch)                      \
    {                                                                                              \
        body(job->dim, job, it, scratch);                                                          \
    }                                                                                              \
    static void run(const job_t *job, const item_t *it, float *scratch)                            \
    {                                                                                              \
        if (job->dim == 64)                                                                        \
            run##_d64(job, it, scratch);                                                           \
        else if (job->dim == 128)                                                                  \
            run##_d128(job, it, scratch);                                                          \
        else                                                                                       \
            run##_any(job, it, scratch);                                                           \
    }

extern const cpu_tile_kernel cpu_tile_generic;
#if defined(__x86_64__) || defined(__i386__)
extern const cpu_tile_kernel cpu_tile_avx2;
extern const cpu_tile_kernel cpu_tile_avx512;
#endif

#endif /* LNET_CPU_TILE_H */
