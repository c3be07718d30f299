/* sched_run.c — running a plan (DESIGN §2): the caller's rows scattered
 * into each worker's own chunk, every worker's sends posted on the
 * transport, one host thread per worker with rows, the chunks' outputs
 * gathered into the caller's tensors; a failed device's chunk re-planned
 * onto the others (failover), its rows from outside the new plan sent from
 * the caller's tensors. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "executor.h"
#include "internal.h"
#include "ranks.h"

void lnet_job_base(lnet_segment_job *j, const lnet_graph *g, const lnet_graph_node *n,
                   const char *kernel)
{
    memset(j, 0, sizeof *j);
    j->size = sizeof *j;
    j->batch = g->batch;
    j->rows = g->rows;
    j->heads = g->heads;
    j->dim = g->dim;
    j->segment = n->segment;
    j->dilation = n->dilation;
    j->offsets = g->offsets;
    j->causal = g->causal;
    j->scale = g->scale;
    j->kernel = kernel;
    j->dtype = (int)g->dtype; /* lnet_dtype and LNET_PLUGIN_DTYPE_* are the same numbers */
}

typedef struct worker_thread {
    const exec_run *run;
    int index;
    lnet_status status;
    int peer_failed; /* it failed only because a sender of its did */
    char error[1024];
    int finished;    /* set (atomically) when its steps are done */
} worker_thread;

static void *worker_main(void *arg)
{
    worker_thread *t = arg;
    t->status = t->run->plan->g->backward ? lnet_worker_run_backward(t->run, t->index)
                                          : lnet_worker_run(t->run, t->index);
    if (t->status)
        snprintf(t->error, sizeof t->error, "%s", lnet_last_error());
    __atomic_store_n(&t->finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

static const char *device_name(const lnet_context *ctx, int device, char *buf, size_t len);

/* Across ranks the calling thread runs no worker: it keeps the
 * transport's messages moving (MPI progresses only inside its calls)
 * until this rank's workers are done. Its pause grows from 0.2 ms to
 * 5 ms: a worker that waits on a transfer tests it itself, so this loop
 * only completes sends behind the workers' backs, and waking every
 * 0.2 ms took a core's share from them (2 ranks on 2 cores at N = 4M:
 * 14.8-15.7 s against 13.8-14.0 s with the 5 ms cap, and twice the
 * system time). */
static void progress_until_done(const exec_run *r, worker_thread *threads, const int *started)
{
    long pause_ns = 200000;
    for (;;) {
        int running = 0;
        for (int i = 0; i < r->plan->n; i++)
            running |= started[i] && !__atomic_load_n(&threads[i].finished, __ATOMIC_ACQUIRE);
        if (!running)
            return;
        r->tp->ops->progress(r->tp);
        struct timespec ts = {0, pause_ns};
        nanosleep(&ts, NULL);
        pause_ns = pause_ns < 2500000 ? 2 * pause_ns : 5000000;
    }
}

static void log_warning(lnet_context *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_warning(lnet_context *ctx, const char *fmt, ...)
{
    if (!ctx->log)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctx->log(LNET_LOG_WARNING, msg, ctx->log_user);
}

/* The isolation check (a test mode, LONGNET_ISOLATION_CHECK=1): every
 * buffer a worker gets is private and NaN wherever nothing was scattered
 * or sent into it, with NaN guard zones around; LONGNET_ISOLATION_DROP=i
 * makes transfer i arrive empty, to show that the check catches it. */
static void isolation_mode(int *poison, int *drop)
{
    const char *e = getenv("LONGNET_ISOLATION_CHECK");
    *poison = e && strcmp(e, "1") == 0;
    const char *d = getenv("LONGNET_ISOLATION_DROP");
    char *end;
    long v = d && *d ? strtol(d, &end, 10) : -1;
    *drop = *poison && d && *d && !*end && v >= 0 && v < 1000000 ? (int)v : -1;
}

/* The sends of every transfer, posted before any worker starts: a send
 * needs only its sender's inputs (its scattered chunk, or the caller's
 * tensors for the host's), so no worker can wait on one that a thread not
 * yet started would have posted. A send that cannot be packed fails the
 * call (host memory, not a device, is short) before any worker starts. */
typedef struct sends {
    lnet_request **req;
    lnet_hbuf *mem;
} sends;

static lnet_status post_sends(const exec_run *r, const host_tensors *t, sends *out)
{
    const lnet_plan *p = r->plan;
    const lnet_graph *g = p->g;
    out->req = calloc((size_t)p->n_x + 1, sizeof *out->req);
    out->mem = calloc((size_t)p->n_x + 1, sizeof *out->mem);
    if (!out->req || !out->mem)
        return lnet_fail(LNET_ERR_NOMEM, "out of memory posting %d transfers", p->n_x);
    for (int i = 0; i < p->n_x; i++) {
        const lnet_transfer *x = &p->x[i];
        if (x->tensor != LNET_TENSOR_K && x->tensor != LNET_TENSOR_V)
            continue; /* backward's dK, dV: sent by their worker once computed */
        if (x->src != LNET_ENDPOINT_HOST && p->w[x->src].rank != r->me)
            continue; /* another rank's to send */
        const int k = x->tensor == LNET_TENSOR_K;
        const float *src;
        int64_t base, n;
        if (x->src == LNET_ENDPOINT_HOST) {
            src = k ? t->k : t->v;
            base = 0;
            n = g->rows;
        } else {
            const lnet_chunk *c = &r->chunks[x->src];
            src = c->t[k ? LNET_TENSOR_K : LNET_TENSOR_V];
            base = c->begin;
            n = c->end - c->begin;
        }
        const size_t floats = lnet_transfer_floats(g, x);
        const float *data = r->poison ? NULL : lnet_transfer_in_place(g, x, src, base, n);
        lnet_status st = LNET_OK;
        if (!data && !(st = lnet_hbuf_alloc(&out->mem[i], floats, r->poison, "a transfer's rows"))) {
            lnet_transfer_pack(g, x, src, base, n, out->mem[i].p);
            data = out->mem[i].p;
        }
        if (!st)
            st = r->tp->ops->isend(r->tp, i, x->src, x->dst, data, floats * sizeof(float), &out->req[i]);
        if (st)
            return st; /* the host is out of memory: no device is at fault, the call fails */
    }
    return LNET_OK;
}

static void sends_free(const exec_run *r, sends *s)
{
    for (int i = 0; s->req && i < r->plan->n_x; i++)
        if (s->req[i])
            r->tp->ops->release(r->tp, s->req[i]);
    for (int i = 0; s->mem && i < r->plan->n_x; i++)
        lnet_hbuf_free(&s->mem[i]);
    free(s->req);
    free(s->mem);
}

/* Runs a plan: chunks scattered, sends posted, one thread per worker with
 * rows (the calling thread takes the first), outputs of the workers that
 * succeeded gathered. threads[i].status says which failed. Across ranks
 * (mpi not NULL) only this rank's workers run, on its own rows. */
static lnet_status run_plan(lnet_context *ctx, lnet_mpi *mpi, const lnet_plan *p, const char *kernel,
                            const host_tensors *t, worker_thread *threads)
{
    exec_run r = {ctx, p, kernel, NULL, lnet_mpi_rank(mpi), 0, NULL, NULL, NULL};
    const int bwd = p->g->backward;
    int drop;
    isolation_mode(&r.poison, &drop);
    sends s = {0};
    lnet_status st = mpi ? lnet_transport_mpi_create(mpi, p, &r.tp)
                         : lnet_transport_local_create(p->n_x, drop, &r.tp);
    if (!st && (!(r.chunks = calloc((size_t)p->n, sizeof *r.chunks)) ||
                !(r.peer_failed = calloc((size_t)p->n, sizeof *r.peer_failed))))
        st = lnet_fail(LNET_ERR_NOMEM, "out of memory for %d chunks", p->n);
    if (!st && bwd && !(r.sent = calloc((size_t)p->n, sizeof *r.sent)))
        st = lnet_fail(LNET_ERR_NOMEM, "out of memory for %d workers", p->n);
    for (int i = 0; bwd && i < p->n && !st; i++)
        if (p->w[i].rank == r.me && !(r.sent[i] = calloc((size_t)p->n_x + 1, sizeof **r.sent)))
            st = lnet_fail(LNET_ERR_NOMEM, "out of memory for %d transfers", p->n_x);
    for (int i = 0; i < p->n && !st; i++)
        if (p->w[i].rank == r.me)
            st = lnet_chunk_scatter(&r.chunks[i], p->g, t, &p->w[i], r.poison);
    if (!st)
        st = post_sends(&r, t, &s);
    for (int i = 0; i < p->n; i++)
        threads[i] = (worker_thread){&r, i, LNET_OK, 0, "", 0};
    if (!st) {
        pthread_t tid[LNET_MAX_WORKERS];
        int started[LNET_MAX_WORKERS] = {0}, first = -1;
        for (int i = 0; i < p->n; i++) {
            /* No rows, or (forward) K/V rows only: its sends are posted.
             * Backward: a worker of K/V rows only still adds what the
             * others send back for them. */
            if (bwd ? p->w[i].begin == p->w[i].end : p->w[i].q_begin == p->w[i].q_end)
                continue;
            if (p->w[i].rank != r.me)
                continue;
            if (first < 0 && !mpi) {
                first = i;
                continue;
            }
            if (pthread_create(&tid[i], NULL, worker_main, &threads[i]) == 0)
                started[i] = 1;
            else
                worker_main(&threads[i]); /* no thread to be had: run it here */
        }
        if (first >= 0)
            worker_main(&threads[first]);
        if (mpi)
            progress_until_done(&r, threads, started);
        for (int i = 0; i < p->n; i++)
            if (started[i])
                pthread_join(tid[i], NULL);
    }
    /* Across ranks: what this rank owes is given up, what it was sent is
     * taken, so that no other rank waits on it for ever. */
    int leak = 0;
    if (r.tp && r.tp->ops->finish) {
        lnet_status fs = r.tp->ops->finish(r.tp);
        leak = fs != LNET_OK; /* a send may still read its data */
        if (!st)
            st = fs;
    }
    for (int i = 0; !st && i < p->n; i++) {
        if (p->w[i].rank == r.me && threads[i].status == LNET_OK && p->w[i].begin < p->w[i].end)
            lnet_chunk_gather(&r.chunks[i], p->g, t);
        threads[i].peer_failed = r.peer_failed[i];
    }
    if (r.tp && !leak)
        sends_free(&r, &s);
    for (int i = 0; r.chunks && i < p->n; i++)
        lnet_chunk_free(&r.chunks[i]);
    for (int i = 0; r.sent && i < p->n; i++) {
        for (int x = 0; r.sent[i] && x < p->n_x && !leak; x++)
            lnet_hbuf_free(&r.sent[i][x]);
        free(r.sent[i]);
    }
    free(r.sent);
    free(r.chunks);
    free(r.peer_failed);
    if (r.tp)
        r.tp->ops->destroy(r.tp);
    return st;
}

lnet_status lnet_sched_run_ranks(lnet_context *ctx, lnet_mpi *mpi, const lnet_graph *g,
                                 const lnet_worker_spec *specs, int n, lnet_algorithm algorithm,
                                 const char *kernel, const host_tensors *t)
{
    lnet_plan p = {0};
    lnet_status st = g->dtype != LNET_DTYPE_F32
                         ? lnet_fail(LNET_ERR_UNSUPPORTED, "the scheduler moves float32 rows only")
                         : lnet_plan_build(&p, ctx, g, algorithm, specs, n, 0, g->rows);
    worker_thread *runs = NULL;
    int secondary = 0;
    if (!st && !(runs = calloc((size_t)n, sizeof *runs)))
        st = lnet_fail(LNET_ERR_NOMEM, "out of memory starting %d workers", n);
    if (!st)
        st = run_plan(ctx, mpi, &p, kernel, t, runs);
    /* No failover across ranks: a failed worker fails the call on every
     * rank, naming the first that failed first-hand. */
    for (int pass = 0; !st && runs && pass < 2; pass++)
        for (int i = 0; i < n && !st; i++)
            if (runs[i].status != LNET_OK && (pass == 1 || !runs[i].peer_failed)) {
                char name[64];
                secondary = runs[i].peer_failed;
                st = p.w[i].device >= 0
                         ? lnet_fail(runs[i].status, "worker w%d (%s): %s", i,
                                     device_name(ctx, p.w[i].device, name, sizeof name), runs[i].error)
                         : lnet_fail(runs[i].status, "%s", runs[i].error);
            }
    free(runs);
    lnet_plan_free(&p);
    return lnet_ranks_agree(mpi, st, secondary, g->backward ? "the backward" : "the forward");
}

static const char *device_name(const lnet_context *ctx, int device, char *buf, size_t len)
{
    const lnet_device *d = lnet_context_dev(ctx, device);
    snprintf(buf, len, "%s:%d", d->plugin->name, d->backend_index);
    return buf;
}

/* Runs rows [lo, hi) on the workers of `specs`; a failed worker's chunk is
 * re-planned onto the survivors (recursively, while any survive). */
static lnet_status run_rows(lnet_context *ctx, const lnet_graph *g, const lnet_worker_spec *specs,
                            int n, lnet_algorithm algorithm, const char *kernel,
                            const host_tensors *t, int64_t lo, int64_t hi)
{
    lnet_plan p;
    lnet_status st = lnet_plan_build(&p, ctx, g, algorithm, specs, n, lo, hi);
    if (st)
        return st;
    worker_thread *runs = calloc((size_t)n, sizeof *runs);
    if (!runs) {
        lnet_plan_free(&p);
        return lnet_fail(LNET_ERR_NOMEM, "out of memory starting %d devices", n);
    }
    /* Every listed device gets rows, or the caller hears why not. */
    for (int i = 0; i < n && n > 1; i++) {
        if (p.w[i].begin != p.w[i].end)
            continue;
        char name[64];
        log_warning(ctx, "device %s gets no rows: rows [%lld, %lld) make only %lld block(s) of %lld "
                    "(the smallest segment length), too few for its weight %.3g",
                    device_name(ctx, p.w[i].device, name, sizeof name), (long long)lo,
                    (long long)hi, (long long)lnet_plugin_ceil_div(hi - lo, p.align), (long long)p.align,
                    p.w[i].weight);
    }
    st = run_plan(ctx, NULL, &p, kernel, t, runs);
    int failed = 0;
    for (int i = 0; i < n && !st; i++)
        failed += runs[i].status != LNET_OK;
    if (st || failed == 0 || n == 1) {
        if (!st && failed)
            st = lnet_fail(runs[0].status, "%s", runs[0].error);
        goto out;
    }
    /* Failover: the survivors take over each failed chunk. */
    lnet_worker_spec alive[LNET_MAX_WORKERS];
    int n_alive = 0;
    for (int i = 0; i < n; i++) {
        int bad = 0;
        for (int j = 0; j < n; j++)
            bad |= runs[j].status != LNET_OK && !runs[j].peer_failed &&
                   p.w[j].device == specs[i].device;
        if (!bad)
            alive[n_alive++] = specs[i];
    }
    if (g->backward) {
        /* A chunk's dK, dV hold contributions of every other chunk's
         * queries, and those sent to a failed worker are lost with it: the
         * survivors run the whole pass again, still exact. */
        int bad = 0;
        while (runs[bad].status == LNET_OK || (runs[bad].peer_failed && bad + 1 < n))
            bad++; /* the first device at fault, for the message */
        char name[64];
        device_name(ctx, p.w[bad].device, name, sizeof name);
        if (n_alive == 0)
            st = lnet_fail(runs[bad].status, "%s failed and no device is left to take its rows: %s",
                           name, runs[bad].error);
        else {
            log_warning(ctx, "device %s failed (%s); the backward pass of rows [%lld, %lld) runs "
                        "again on the %d other device(s)", name, runs[bad].error, (long long)lo,
                        (long long)hi, n_alive);
            st = run_rows(ctx, g, alive, n_alive, algorithm, kernel, t, lo, hi);
        }
        goto out;
    }
    for (int i = 0; i < n && !st; i++) {
        if (runs[i].status == LNET_OK)
            continue;
        char name[64];
        device_name(ctx, p.w[i].device, name, sizeof name);
        if (n_alive == 0) {
            st = lnet_fail(runs[i].status, "%s failed and no device is left to take its rows: %s",
                           name, runs[i].error);
            break;
        }
        log_warning(ctx, "device %s failed (%s); its rows [%lld, %lld) are re-planned onto the %d other device(s)",
                    name, runs[i].error, (long long)p.w[i].begin, (long long)p.w[i].end, n_alive);
        st = run_rows(ctx, g, alive, n_alive, algorithm, kernel, t, p.w[i].begin, p.w[i].end);
    }
out:
    free(runs);
    lnet_plan_free(&p);
    return st;
}

lnet_status lnet_sched_forward(lnet_context *ctx, const lnet_graph *g, const lnet_devlist *list,
                               lnet_algorithm algorithm, const char *kernel, const float *q,
                               const float *k, const float *v, float *out, float *lse)
{
    if (g->dtype != LNET_DTYPE_F32)
        return lnet_fail(LNET_ERR_UNSUPPORTED, "the scheduler moves float32 rows only; %s "
                         "tensors are not converted yet", lnet_dtype_name(g->dtype));
    host_tensors t = {NULL, q, k, v, out, lse, NULL, NULL, NULL, NULL};
    return run_rows(ctx, g, list->items, list->n, algorithm, kernel, &t, 0, g->rows);
}

lnet_status lnet_sched_backward(lnet_context *ctx, const lnet_graph *g, const lnet_devlist *list,
                                lnet_algorithm algorithm, const char *kernel, const float *q,
                                const float *k, const float *v, const float *out, const float *lse,
                                const float *dout, float *dq, float *dk, float *dv)
{
    if (g->dtype != LNET_DTYPE_F32)
        return lnet_fail(LNET_ERR_UNSUPPORTED, "the scheduler moves float32 rows only; %s "
                         "tensors are not converted yet", lnet_dtype_name(g->dtype));
    /* O and LSE are only read in the backward. */
    host_tensors t = {NULL, q, k, v, (float *)out, (float *)lse, dout, dq, dk, dv};
    return run_rows(ctx, g, list->items, list->n, algorithm, kernel, &t, 0, g->rows);
}
