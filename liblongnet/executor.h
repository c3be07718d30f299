/* executor.h — what the executor's files share (sched_run.c: plans and
 * threads, failover; worker_chunk.c: a worker's own buffers and the packed
 * form of transfers; worker_run.c: one worker's steps on its device).
 *
 * The rule they keep: a worker computes only on its own chunk (scattered
 * into it from the caller's tensors before it starts) and on what the
 * transport delivers to it. Only sched_run.c's scatter and gather and the
 * host side of failover transfers touch the caller's tensors. */
#ifndef LNET_EXECUTOR_H
#define LNET_EXECUTOR_H

#include "scheduler.h"
#include "transport.h"

/* The rows of the sequence the caller's tensors hold: ranges,
 * concatenated in this order along the row axis (a rank's share of a call
 * across ranks, part.c); NULL in host_tensors: every row (one process). */
#define LNET_MAX_HOST_RANGES (2 * LNET_MAX_WORKERS)
typedef struct host_rows {
    int n;
    int64_t begin[LNET_MAX_HOST_RANGES], end[LNET_MAX_HOST_RANGES];
    int64_t total;
} host_rows;

typedef struct host_tensors {
    const host_rows *rows; /* NULL: [B, N, H, D] (Q, O: [B, Nq, H, D]) */
    const float *q, *k, *v;
    float *out, *lse; /* lse: [B, H, Nq], always present; backward: the saved forward's */
    /* Backward only (NULL in the forward). */
    const float *dout;
    float *dq, *dk, *dv;
} host_tensors;

/* Host memory of `n` floats. With `poison` (the isolation check) it is a
 * private allocation filled with NaN, with NaN guard zones before and after,
 * so that a read of anything not written (not sent) shows in the answer. */
typedef struct lnet_hbuf {
    float *p;
    void *base;
} lnet_hbuf;

lnet_status lnet_hbuf_alloc(lnet_hbuf *b, size_t n, int poison, const char *what);
void lnet_hbuf_free(lnet_hbuf *b);

/* A worker's own rows: K and V of rows [begin, end) as [B, n, H, D]; Q
 * and O of its query rows [q_begin, q_end) as [B, nq, H, D], LSE as
 * [B, H, nq] (the caller's Q row i is position q_first + i). A tensor
 * whose rows are one contiguous run of the caller's (B = 1, or every row)
 * is the caller's memory itself, not a copy, except in poison mode. */
typedef struct lnet_chunk {
    int64_t begin, end;
    int64_t q_begin, q_end;
    float *t[LNET_TENSOR_COUNT];     /* indexed by lnet_tensor_name; NULL: not in this pass */
    lnet_hbuf mem[LNET_TENSOR_COUNT]; /* mem[i].p NULL: t[i] is the caller's */
} lnet_chunk;

lnet_status lnet_chunk_scatter(lnet_chunk *c, const lnet_graph *g, const host_tensors *t,
                               const lnet_worker *w, int poison);
/* Writes the chunk's outputs into the caller's tensors (O and LSE; in
 * the backward dQ, dK, dV) — nothing for those that are the caller's
 * memory already. */
void lnet_chunk_gather(const lnet_chunk *c, const lnet_graph *g, const host_tensors *t);
void lnet_chunk_free(lnet_chunk *c);

/* Floats in the packed form of transfer x. */
size_t lnet_transfer_floats(const lnet_graph *g, const lnet_transfer *x);
/* Packs transfer x from `src`, a [B, n, H, D] buffer whose first row is the
 * absolute row `base` (n rows). */
void lnet_transfer_pack(const lnet_graph *g, const lnet_transfer *x, const float *src,
                        int64_t base, int64_t n, float *dst);
/* The packed form of x inside `src` itself, or NULL when it needs packing
 * (a block of rows is contiguous when B = 1 or it is all of src's rows). */
const float *lnet_transfer_in_place(const lnet_graph *g, const lnet_transfer *x,
                                    const float *src, int64_t base, int64_t n);
/* Which of the transfer's selected rows of head h lie in it: indices j of
 * rows first_h + j*r, [*j_lo, *j_hi), and where head h's rows start in
 * the packed form (in rows of D floats, per batch: B * offset). */
void lnet_transfer_head(const lnet_graph *g, const lnet_transfer *x, int64_t h, int64_t *j_lo,
                        int64_t *j_hi, int64_t *head_rows_before);

/* Head h of a gathered segment as a compact problem: its selected rows
 * first + j*r, j < M (causal: only up to the worker's last query), the
 * worker's own queries j in [jq_lo, jq_hi) and own keys j in [jk_lo,
 * jk_hi). 0 when the worker has no query of that head in the segment. */
typedef struct gather_head {
    int64_t first, M, jq_lo, jq_hi, jk_lo, jk_hi;
} gather_head;
int lnet_gather_head(const lnet_graph *g, const lnet_worker *w, const lnet_step *s, int64_t h,
                     gather_head *out);

/* Head h's rows of a SPARSE transfer x between its packed form ([H][B]
 * [rows][D], `packed` the whole transfer) and a compact [B, M, D] problem
 * whose row j is the segment's selected row j: packed -> compact when
 * `to_compact`, else compact -> packed. */
void lnet_transfer_head_copy(const lnet_graph *g, const lnet_transfer *x, int64_t h, float *packed,
                             float *compact, int64_t M, int to_compact);

/* One plan being run. */
typedef struct exec_run {
    lnet_context *ctx;
    const lnet_plan *plan;
    const char *kernel;
    lnet_transport *tp;
    int me;              /* this process's rank: it runs the workers of that rank */
    int poison;
    lnet_chunk *chunks;  /* per worker */
    lnet_hbuf **sent;    /* backward: per worker, per transfer, the dK/dV it sent back */
    int *peer_failed;    /* per worker: it failed waiting on a transfer its sender gave up */
} exec_run;

/* The plan of `specs` (every rank's workers, rank-tagged) run across the
 * ranks of mpi: this rank's workers on its rows `t` (t->rows set); the
 * outcome agreed by every rank (sched_run.c). */
lnet_status lnet_sched_run_ranks(lnet_context *ctx, lnet_mpi *mpi, const lnet_graph *g,
                                 const lnet_worker_spec *specs, int n, lnet_algorithm algorithm,
                                 const char *kernel, const host_tensors *t);

/* Worker `self`'s steps on its device (worker_run.c; the backward's in
 * worker_backward.c). */
lnet_status lnet_worker_run(const exec_run *r, int self);
lnet_status lnet_worker_run_backward(const exec_run *r, int self);

/* Device buffers over host memory, shared by the forward and backward
 * workers (worker_run.c). */
typedef struct dbuf {
    void *buf;
    int wrapped;
    size_t bytes;
} dbuf;
void lnet_dbuf_free(lnet_device *dev, dbuf *b);
lnet_status lnet_dbuf_put(lnet_device *dev, const void *host, size_t bytes, dbuf *b, int upload);
lnet_status lnet_dbuf_read(lnet_device *dev, dbuf *b, void *dst);
lnet_status lnet_device_sync(lnet_device *dev);
/* A transfer received (borrowed, or copied into `keep` in poison mode). */
typedef struct received {
    int n, cap;
    lnet_hbuf *mem;
} received;
lnet_status lnet_receive(const exec_run *r, received *keep, int id, const float **data);
void lnet_received_free(received *keep);
/* Copies rows j in [j_lo, j_hi) of head h from a [B, n, H, D] source
 * (row j is absolute row first + j*r, source row 0 absolute `base`) into
 * a compact [B, M, D] problem — or back, with `back`, adding. */
void lnet_take_rows(const lnet_graph *g, float *compact, int64_t M, float *src, int64_t base,
                    int64_t n, int64_t h, int64_t first, int64_t r, int64_t j_lo, int64_t j_hi,
                    int back);

#endif /* LNET_EXECUTOR_H */
