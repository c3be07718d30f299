/* transport_mpi.c — longnet across the ranks of an MPI job (Open MPI): the
 * communicator handle (lnet_mpi), the collectives ranks.h names, and the
 * transport of transport.h between ranks. The only core file that
 * includes mpi.h.
 *
 * A transfer between two workers of this rank goes through an in-process
 * transport, as in one process; one between ranks is an MPI_Isend posted
 * by its sender and an MPI_Irecv posted by its receiver, the transfer's
 * index in the plan (the same plan on every rank) as the tag. Errors are
 * returned (MPI_ERRORS_RETURN), never fatal. A sender that gives a
 * transfer up sends an empty message under its tag: real transfers always
 * carry rows, so the receiver knows it will never come and fails instead
 * of waiting. Every wait is bounded (LONGNET_MPI_TIMEOUT seconds, 600 by
 * default), so that a rank that stopped without a word cannot hang the
 * others for ever.
 *
 * MPI calls are serialised by one mutex (MPI_THREAD_SERIALIZED is enough)
 * and waits poll with MPI_Test, so a worker waiting on one transfer never
 * holds up another worker's send. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "ranks.h"
#include "scheduler.h"
#include "transport.h"

struct lnet_mpi {
    MPI_Comm comm;
    int rank, size;
    int finalize; /* lnet_mpi_init initialised MPI: lnet_mpi_free finalises it */
    int tag_ub;
    double timeout; /* seconds */
};

static lnet_status mpi_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static lnet_status mpi_fail(int rc, const char *fmt, ...)
{
    char what[256], msg[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "MPI error %d", rc);
    msg[len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING] = '\0';
    return lnet_fail(LNET_ERR_DEVICE, "%s failed: %s", what, msg);
}

int lnet_mpi_built(void)
{
    return 1;
}

/* LONGNET_MPI_TIMEOUT: how long a rank waits on another (seconds). */
static lnet_status read_timeout(double *out)
{
    const char *e = getenv("LONGNET_MPI_TIMEOUT");
    *out = 600;
    if (!e || !*e)
        return LNET_OK;
    char *end;
    errno = 0;
    double v = strtod(e, &end);
    if (*end || errno || !(v > 0) || v > 1e9)
        return lnet_fail(LNET_ERR_INVALID, "LONGNET_MPI_TIMEOUT '%.40s' is not a number of "
                         "seconds between 0 and 1e9", e);
    *out = v;
    return LNET_OK;
}

static lnet_status wrap(MPI_Comm comm, int finalize, lnet_mpi **out)
{
    lnet_mpi *m = calloc(1, sizeof *m);
    if (!m)
        return lnet_fail(LNET_ERR_NOMEM, "out of memory for an MPI handle");
    lnet_status st = read_timeout(&m->timeout);
    int rc = MPI_SUCCESS, flag = 0;
    void *ub = NULL;
    if (!st && (rc = MPI_Comm_dup(comm, &m->comm)) != MPI_SUCCESS)
        st = mpi_fail(rc, "MPI_Comm_dup");
    if (st) {
        free(m);
        return st;
    }
    /* Errors come back as codes: longnet reports them and every rank
     * ends on its own terms, never aborted from inside a call. */
    MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(m->comm, &m->rank);
    MPI_Comm_size(m->comm, &m->size);
    MPI_Comm_get_attr(m->comm, MPI_TAG_UB, &ub, &flag);
    m->tag_ub = flag && ub ? *(int *)ub : 32767;
    m->finalize = finalize;
    *out = m;
    return LNET_OK;
}

lnet_status lnet_mpi_init(int *argc, char ***argv, lnet_mpi **out)
{
    if (!out)
        return lnet_fail(LNET_ERR_INVALID, "lnet_mpi_init: output pointer is NULL");
    *out = NULL;
    int inited = 0, provided = 0, rc;
    MPI_Initialized(&inited);
    if (!inited) {
        if ((rc = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided)) != MPI_SUCCESS)
            return lnet_fail(LNET_ERR_DEVICE, "MPI_Init_thread failed (error %d)", rc);
    } else {
        MPI_Query_thread(&provided);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (provided < MPI_THREAD_SERIALIZED) {
        if (!inited)
            MPI_Finalize();
        return lnet_fail(LNET_ERR_UNSUPPORTED, "MPI gives thread level %d; longnet's workers "
                         "need MPI_THREAD_SERIALIZED (%d) or more", provided, MPI_THREAD_SERIALIZED);
    }
    lnet_status st = wrap(MPI_COMM_WORLD, !inited, out);
    if (st && !inited)
        MPI_Finalize();
    return st;
}

lnet_status lnet_mpi_from_comm(const void *comm, lnet_mpi **out)
{
    if (!comm || !out)
        return lnet_fail(LNET_ERR_INVALID, "lnet_mpi_from_comm: %s is NULL", !comm ? "comm" : "out");
    *out = NULL;
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    if (!inited)
        return lnet_fail(LNET_ERR_INVALID, "lnet_mpi_from_comm: MPI is not initialised");
    MPI_Query_thread(&provided);
    if (provided < MPI_THREAD_SERIALIZED)
        return lnet_fail(LNET_ERR_UNSUPPORTED, "MPI was initialised with thread level %d; "
                         "longnet's workers need MPI_THREAD_SERIALIZED or more", provided);
    return wrap(*(const MPI_Comm *)comm, 0, out);
}

int lnet_mpi_rank(const lnet_mpi *m)
{
    return m ? m->rank : 0;
}

int lnet_mpi_size(const lnet_mpi *m)
{
    return m ? m->size : 1;
}

void lnet_mpi_free(lnet_mpi *m)
{
    if (!m)
        return;
    MPI_Comm_free(&m->comm);
    if (m->finalize)
        MPI_Finalize();
    free(m);
}

/* ---------------------------------------------------------- collectives */

lnet_status lnet_ranks_allgather_int(lnet_mpi *m, const int *mine, int n, int *all)
{
    int rc = MPI_Allgather(mine, n, MPI_INT, all, n, MPI_INT, m->comm);
    return rc == MPI_SUCCESS ? LNET_OK : mpi_fail(rc, "MPI_Allgather");
}

lnet_status lnet_ranks_allgather_double(lnet_mpi *m, const double *mine, int n, double *all)
{
    int rc = MPI_Allgather(mine, n, MPI_DOUBLE, all, n, MPI_DOUBLE, m->comm);
    return rc == MPI_SUCCESS ? LNET_OK : mpi_fail(rc, "MPI_Allgather");
}

lnet_status lnet_ranks_bcast(lnet_mpi *m, void *buf, size_t bytes, int root)
{
    if (bytes > INT_MAX)
        return lnet_fail(LNET_ERR_OVERFLOW, "a broadcast of %zu bytes is too long for MPI", bytes);
    int rc = MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, m->comm);
    return rc == MPI_SUCCESS ? LNET_OK : mpi_fail(rc, "MPI_Bcast from rank %d", root);
}

#define AGREE_MESSAGE 1024

lnet_status lnet_ranks_agree(lnet_mpi *m, lnet_status mine, int secondary, const char *what)
{
    char msg[AGREE_MESSAGE];
    snprintf(msg, sizeof msg, "%s", mine ? lnet_last_error() : "");
    int me[2] = {(int)mine, secondary}, *all = malloc(2 * (size_t)m->size * sizeof *all);
    if (!all)
        return lnet_fail(LNET_ERR_NOMEM, "out of memory agreeing over %d ranks", m->size);
    lnet_status st = lnet_ranks_allgather_int(m, me, 2, all);
    int first = -1;
    for (int pass = 0; !st && pass < 2 && first < 0; pass++)
        for (int r = 0; r < m->size && first < 0; r++)
            if (all[2 * r] != LNET_OK && (pass == 1 || !all[2 * r + 1]))
                first = r;
    lnet_status status = first >= 0 ? (lnet_status)all[2 * first] : LNET_OK;
    free(all);
    if (st)
        return st;
    if (first < 0)
        return LNET_OK;
    if ((st = lnet_ranks_bcast(m, msg, sizeof msg, first)))
        return st;
    msg[sizeof msg - 1] = '\0';
    return lnet_fail(status, "rank %d of %d failed (%s): %s", first, m->size, what, msg);
}

lnet_status lnet_mpi_agree(lnet_mpi *m, lnet_status mine, const char *what)
{
    if (!m)
        return lnet_fail(LNET_ERR_INVALID, "lnet_mpi_agree: the MPI handle is NULL");
    return lnet_ranks_agree(m, mine, 0, what ? what : "a step");
}

/* ------------------------------------------------------------ transport */

struct lnet_request {
    int id;
    int receive;
    int remote;
    lnet_request *inner; /* the in-process transport's request */
    void *data;          /* a remote receive: where its bytes land */
};

typedef struct mpi_transport {
    lnet_transport base;
    lnet_transport *local; /* transfers between this rank's own workers */
    lnet_mpi *m;
    const lnet_plan *p;
    pthread_mutex_t lock;
    MPI_Request *sreq, *rreq; /* per transfer */
    char *sent, *recv_posted, *recv_done;
    int *count;               /* floats a completed receive got */
    void **lent;              /* receive buffers this transport provided */
} mpi_transport;

static mpi_transport *mt(lnet_transport *t)
{
    return (mpi_transport *)t;
}

static int rank_of(const mpi_transport *t, int worker)
{
    return t->p->w[worker].rank;
}

/* The transfer crosses ranks (else it stays in this process). */
static int remote(const mpi_transport *t, int id)
{
    const lnet_transfer *x = &t->p->x[id];
    return rank_of(t, x->src) != rank_of(t, x->dst);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void pause_briefly(long spins)
{
    if (spins < 64) {
        sched_yield();
        return;
    }
    struct timespec ts = {0, spins < 1024 ? 20000 : 200000};
    nanosleep(&ts, NULL);
}

static lnet_status count_of(size_t bytes, int id, int *count)
{
    if (bytes % sizeof(float) || bytes / sizeof(float) > INT_MAX)
        return lnet_fail(LNET_ERR_OVERFLOW, "transfer %d: %zu bytes do not fit one MPI message "
                         "of floats", id, bytes);
    *count = (int)(bytes / sizeof(float));
    return LNET_OK;
}

static lnet_status new_request(int id, int receive, int is_remote, lnet_request **req)
{
    *req = calloc(1, sizeof **req);
    if (!*req)
        return lnet_fail(LNET_ERR_NOMEM, "transport: out of memory for a request of transfer %d", id);
    (*req)->id = id;
    (*req)->receive = receive;
    (*req)->remote = is_remote;
    return LNET_OK;
}

/* A transfer between ranks: its size as an MPI count, and a request. */
static lnet_status remote_request(int id, size_t bytes, int receive, int *count, lnet_request **req)
{
    lnet_status st = count_of(bytes, id, count);
    return st ? st : new_request(id, receive, 1, req);
}

/* A transfer within this rank: the in-process transport's request
 * `inner` (posted with status st) wrapped. */
static lnet_status local_request(mpi_transport *t, lnet_status st, lnet_request *inner, int id,
                                 int receive, lnet_request **req)
{
    if (st)
        return st;
    if ((st = new_request(id, receive, 0, req)))
        t->local->ops->release(t->local, inner);
    else
        (*req)->inner = inner;
    return st;
}

static lnet_status check_id(const mpi_transport *t, int id, const char *what)
{
    if (id < 0 || id >= t->p->n_x)
        return lnet_fail(LNET_ERR_INVALID, "transport: %s of transfer %d; the plan has %d", what,
                         id, t->p->n_x);
    if (id > t->m->tag_ub)
        return lnet_fail(LNET_ERR_UNSUPPORTED, "transfer %d: the plan has more transfers than "
                         "this MPI's largest tag (%d)", id, t->m->tag_ub);
    return LNET_OK;
}

static lnet_status mpi_isend(lnet_transport *tp, int id, int src, int dst, const void *data,
                             size_t bytes, lnet_request **req)
{
    mpi_transport *t = mt(tp);
    *req = NULL;
    lnet_status st = check_id(t, id, "send");
    if (st)
        return st;
    if (!remote(t, id)) {
        lnet_request *inner = NULL;
        st = t->local->ops->isend(t->local, id, src, dst, data, bytes, &inner);
        return local_request(t, st, inner, id, 0, req);
    }
    int count = 0;
    if ((st = remote_request(id, bytes, 0, &count, req)))
        return st;
    const int to = rank_of(t, t->p->x[id].dst);
    pthread_mutex_lock(&t->lock);
    int rc = MPI_SUCCESS;
    if (t->sent[id])
        st = lnet_fail(LNET_ERR_INVALID, "transport: transfer %d sent twice", id);
    else if ((rc = MPI_Isend(data, count, MPI_FLOAT, to, id, t->m->comm, &t->sreq[id])) != MPI_SUCCESS)
        st = mpi_fail(rc, "MPI_Isend of transfer %d to rank %d", id, to);
    else
        t->sent[id] = 1;
    pthread_mutex_unlock(&t->lock);
    if (st) {
        free(*req);
        *req = NULL;
    }
    return st;
}

static lnet_status mpi_irecv(lnet_transport *tp, int id, int src, int dst, void *data, size_t bytes,
                             lnet_request **req)
{
    mpi_transport *t = mt(tp);
    *req = NULL;
    lnet_status st = check_id(t, id, "receive");
    if (st)
        return st;
    if (!remote(t, id)) {
        lnet_request *inner = NULL;
        st = t->local->ops->irecv(t->local, id, src, dst, data, bytes, &inner);
        return local_request(t, st, inner, id, 1, req);
    }
    int count = 0;
    if ((st = remote_request(id, bytes, 1, &count, req)))
        return st;
    const int from = rank_of(t, t->p->x[id].src);
    pthread_mutex_lock(&t->lock);
    if (t->recv_posted[id]) {
        st = lnet_fail(LNET_ERR_INVALID, "transport: transfer %d received twice", id);
    } else {
        if (!data && !(data = t->lent[id] = malloc(bytes ? bytes : 1)))
            st = lnet_fail(LNET_ERR_NOMEM, "out of memory receiving transfer %d (%zu bytes)", id, bytes);
        int rc = MPI_SUCCESS;
        if (!st && (rc = MPI_Irecv(data, count, MPI_FLOAT, from, id, t->m->comm, &t->rreq[id])) != MPI_SUCCESS)
            st = mpi_fail(rc, "MPI_Irecv of transfer %d from rank %d", id, from);
        if (!st)
            t->recv_posted[id] = 1;
    }
    pthread_mutex_unlock(&t->lock);
    if (st) {
        free(*req);
        *req = NULL;
    } else {
        (*req)->data = data;
    }
    return st;
}

/* Tests one MPI request under the lock: 1 done, 0 pending, <0 an error
 * (status set in *st). */
static int test_one(mpi_transport *t, MPI_Request *r, int *count, lnet_status *st, int id, int recv)
{
    int flag = 0;
    MPI_Status status;
    int rc = MPI_Test(r, &flag, &status);
    if (rc != MPI_SUCCESS) {
        *st = mpi_fail(rc, "MPI_Test of transfer %d (%s rank %d)", id, recv ? "from" : "to",
                       rank_of(t, recv ? t->p->x[id].src : t->p->x[id].dst));
        return -1;
    }
    if (flag && count)
        MPI_Get_count(&status, MPI_FLOAT, count);
    return flag;
}

/* Waits for transfer id's receive (recv) or send, polling; bounded. */
static lnet_status wait_remote(mpi_transport *t, int id, int recv)
{
    const double deadline = now_s() + t->m->timeout;
    const lnet_transfer *x = &t->p->x[id];
    for (long spins = 0;; spins++) {
        lnet_status st = LNET_OK;
        pthread_mutex_lock(&t->lock);
        int done;
        if (recv && t->recv_done[id])
            done = 1;
        else if (recv)
            done = test_one(t, &t->rreq[id], &t->count[id], &st, id, 1);
        else
            done = test_one(t, &t->sreq[id], NULL, &st, id, 0);
        if (recv && done > 0)
            t->recv_done[id] = 1;
        pthread_mutex_unlock(&t->lock);
        if (done < 0)
            return st;
        if (done)
            break;
        if (now_s() > deadline)
            return lnet_fail(LNET_ERR_DEVICE, "transfer %d %s rank %d did not come within %g s "
                             "(LONGNET_MPI_TIMEOUT): that rank stopped or hangs", id,
                             recv ? "from" : "to", rank_of(t, recv ? x->src : x->dst), t->m->timeout);
        pause_briefly(spins);
    }
    if (recv && t->count[id] == 0)
        return lnet_fail(LNET_ERR_DEVICE, "transfer %d was never sent: rank %d gave it up (it "
                         "failed)", id, rank_of(t, x->src));
    return LNET_OK;
}

static lnet_status mpi_wait(lnet_transport *tp, lnet_request *req, const void **data)
{
    mpi_transport *t = mt(tp);
    if (!req->remote)
        return t->local->ops->wait(t->local, req->inner, data);
    lnet_status st = wait_remote(t, req->id, req->receive);
    if (!st && data && req->receive)
        *data = req->data;
    return st;
}

/* With the lock held: the empty message that says transfer id will never come. */
static void give_up(mpi_transport *t, int id)
{
    if (t->sent[id])
        return;
    const int to = rank_of(t, t->p->x[id].dst);
    if (MPI_Isend(NULL, 0, MPI_FLOAT, to, id, t->m->comm, &t->sreq[id]) == MPI_SUCCESS)
        t->sent[id] = 1;
}

static void mpi_abandon(lnet_transport *tp, int id, const char *why)
{
    mpi_transport *t = mt(tp);
    if (id < 0 || id >= t->p->n_x)
        return;
    if (!remote(t, id)) {
        t->local->ops->abandon(t->local, id, why);
        return;
    }
    pthread_mutex_lock(&t->lock);
    give_up(t, id);
    pthread_mutex_unlock(&t->lock);
}

static void mpi_release(lnet_transport *tp, lnet_request *req)
{
    mpi_transport *t = mt(tp);
    if (!req)
        return;
    if (!req->remote)
        t->local->ops->release(t->local, req->inner);
    free(req); /* a remote request stays the transport's until finish */
}

static void mpi_progress(lnet_transport *tp)
{
    mpi_transport *t = mt(tp);
    pthread_mutex_lock(&t->lock);
    for (int id = 0; id < t->p->n_x; id++) {
        lnet_status st;
        if (t->sent[id] && t->sreq[id] != MPI_REQUEST_NULL)
            (void)test_one(t, &t->sreq[id], NULL, &st, id, 0);
    }
    pthread_mutex_unlock(&t->lock);
}

static lnet_status mpi_finish(lnet_transport *tp)
{
    mpi_transport *t = mt(tp);
    const int me = t->m->rank;
    lnet_status st = LNET_OK;
    for (int id = 0; id < t->p->n_x && !st; id++) {
        const lnet_transfer *x = &t->p->x[id];
        if (!remote(t, id))
            continue;
        pthread_mutex_lock(&t->lock);
        if (rank_of(t, x->src) == me) {
            give_up(t, id); /* nothing if it was sent */
        } else if (rank_of(t, x->dst) == me && !t->recv_posted[id]) {
            /* Never received (this rank failed first): taken and dropped,
             * so that its sender's send completes. */
            const size_t bytes = x->bytes;
            int count = 0, rc;
            if (!(st = count_of(bytes, id, &count)) && !(t->lent[id] = malloc(bytes ? bytes : 1)))
                st = lnet_fail(LNET_ERR_NOMEM, "out of memory draining transfer %d", id);
            if (!st && (rc = MPI_Irecv(t->lent[id], count, MPI_FLOAT, rank_of(t, x->src), id,
                                       t->m->comm, &t->rreq[id])) != MPI_SUCCESS)
                st = mpi_fail(rc, "MPI_Irecv of transfer %d from rank %d", id, rank_of(t, x->src));
            if (!st)
                t->recv_posted[id] = 1;
        }
        pthread_mutex_unlock(&t->lock);
    }
    for (int id = 0; id < t->p->n_x && !st; id++) {
        if (!remote(t, id))
            continue;
        const int src = rank_of(t, t->p->x[id].src);
        if (src == me)
            st = wait_remote(t, id, 0);
        else if (rank_of(t, t->p->x[id].dst) == me) {
            st = wait_remote(t, id, 1);
            if (st && t->count[id] == 0 && t->recv_done[id])
                st = LNET_OK; /* given up: its sender says why */
        }
    }
    return st;
}

static void mpi_destroy(lnet_transport *tp)
{
    mpi_transport *t = mt(tp);
    if (!t)
        return;
    int pending = 0;
    for (int id = 0; t->sreq && id < t->p->n_x; id++)
        pending |= t->sreq[id] != MPI_REQUEST_NULL || t->rreq[id] != MPI_REQUEST_NULL;
    /* A request still pending (finish timed out) may yet write into its
     * buffer: those are kept (leaked) rather than freed under MPI. */
    for (int id = 0; t->lent && !pending && id < t->p->n_x; id++)
        free(t->lent[id]);
    if (t->local)
        t->local->ops->destroy(t->local);
    pthread_mutex_destroy(&t->lock);
    free(t->sreq);
    free(t->rreq);
    free(t->sent);
    free(t->recv_posted);
    free(t->recv_done);
    free(t->count);
    if (!pending)
        free(t->lent);
    free(t);
}

static const lnet_transport_ops mpi_ops = {
    sizeof(lnet_transport_ops), "mpi", mpi_isend, mpi_irecv, mpi_wait, mpi_abandon, mpi_release,
    mpi_destroy, mpi_progress, mpi_finish,
};

lnet_status lnet_transport_mpi_create(lnet_mpi *mpi, const lnet_plan *p, lnet_transport **out)
{
    *out = NULL;
    mpi_transport *t = calloc(1, sizeof *t);
    if (!t)
        return lnet_fail(LNET_ERR_NOMEM, "out of memory for the MPI transport");
    const size_t n = (size_t)p->n_x + 1;
    t->m = mpi;
    t->p = p;
    t->sreq = malloc(n * sizeof *t->sreq);
    t->rreq = malloc(n * sizeof *t->rreq);
    t->sent = calloc(n, 1);
    t->recv_posted = calloc(n, 1);
    t->recv_done = calloc(n, 1);
    t->count = calloc(n, sizeof *t->count);
    t->lent = calloc(n, sizeof *t->lent);
    lnet_status st = LNET_OK;
    int locked = 0;
    if (!t->sreq || !t->rreq || !t->sent || !t->recv_posted || !t->recv_done || !t->count || !t->lent)
        st = lnet_fail(LNET_ERR_NOMEM, "out of memory for %d transfers", p->n_x);
    for (size_t i = 0; !st && i < n; i++)
        t->sreq[i] = t->rreq[i] = MPI_REQUEST_NULL;
    if (!st && !(locked = pthread_mutex_init(&t->lock, NULL) == 0))
        st = lnet_fail(LNET_ERR_NOMEM, "transport: cannot create a mutex");
    if (!st)
        st = lnet_transport_local_create(p->n_x, -1, &t->local);
    if (st) {
        if (locked)
            pthread_mutex_destroy(&t->lock);
        free(t->sreq);
        free(t->rreq);
        free(t->sent);
        free(t->recv_posted);
        free(t->recv_done);
        free(t->count);
        free(t->lent);
        free(t);
        return st;
    }
    t->base.ops = &mpi_ops;
    *out = &t->base;
    return LNET_OK;
}
