/* transport_local.c — the in-process transport: one mailbox per transfer.
 * A send posts its data; a receive matched with it copies the bytes into
 * the receiver's buffer (or, when the receiver lets the transport provide
 * the memory, hands it the sender's bytes themselves: within one process
 * that is the same data without a copy). Whichever of the two comes second
 * completes both. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "transport.h"

typedef struct mailbox {
    const void *sent;      /* the sender's bytes, once posted */
    size_t sent_bytes;
    int posted, abandoned, received;
    void *into;            /* the receiver's buffer; NULL: lend `sent` */
    size_t into_bytes;
    int recv_posted;
    char why[160];
} mailbox;

struct lnet_request {
    int id;
    int receive;
};

typedef struct local_transport {
    lnet_transport base;
    pthread_mutex_t lock;
    pthread_cond_t moved;
    int n, drop;
    mailbox *box;
} local_transport;

static local_transport *local(lnet_transport *t)
{
    return (local_transport *)t;
}

/* With the lock held: both sides posted, the bytes move. */
static void deliver(local_transport *l, int id)
{
    mailbox *m = &l->box[id];
    if (!m->posted || !m->recv_posted || m->received)
        return;
    if (m->into && id != l->drop)
        memcpy(m->into, m->sent, m->sent_bytes);
    m->received = 1;
    pthread_cond_broadcast(&l->moved);
}

static lnet_status check_id(local_transport *l, int id, const char *what)
{
    if (id < 0 || id >= l->n)
        return lnet_fail(LNET_ERR_INVALID, "transport: %s of transfer %d; the plan has %d", what,
                         id, l->n);
    return LNET_OK;
}

static lnet_status new_request(int id, int receive, lnet_request **req)
{
    *req = malloc(sizeof **req);
    if (!*req)
        return lnet_fail(LNET_ERR_NOMEM, "transport: out of memory for a request of transfer %d", id);
    (*req)->id = id;
    (*req)->receive = receive;
    return LNET_OK;
}

static lnet_status local_isend(lnet_transport *t, int id, int src, int dst, const void *data,
                               size_t bytes, lnet_request **req)
{
    local_transport *l = local(t);
    (void)src;
    (void)dst;
    lnet_status st = check_id(l, id, "send");
    if (!st)
        st = new_request(id, 0, req);
    if (st)
        return st;
    pthread_mutex_lock(&l->lock);
    mailbox *m = &l->box[id];
    if (m->posted) {
        pthread_mutex_unlock(&l->lock);
        free(*req);
        *req = NULL;
        return lnet_fail(LNET_ERR_INVALID, "transport: transfer %d sent twice", id);
    }
    if (m->recv_posted && m->into && m->into_bytes != bytes) {
        pthread_mutex_unlock(&l->lock);
        free(*req);
        *req = NULL;
        return lnet_fail(LNET_ERR_INVALID, "transport: transfer %d sends %zu bytes; its receiver "
                         "expects %zu", id, bytes, m->into_bytes);
    }
    m->sent = data;
    m->sent_bytes = bytes;
    m->posted = 1;
    deliver(l, id);
    pthread_mutex_unlock(&l->lock);
    return LNET_OK;
}

static lnet_status local_irecv(lnet_transport *t, int id, int src, int dst, void *data,
                               size_t bytes, lnet_request **req)
{
    local_transport *l = local(t);
    (void)src;
    (void)dst;
    lnet_status st = check_id(l, id, "receive");
    if (!st)
        st = new_request(id, 1, req);
    if (st)
        return st;
    pthread_mutex_lock(&l->lock);
    mailbox *m = &l->box[id];
    if (m->recv_posted || (m->posted && m->sent_bytes != bytes)) {
        size_t sent = m->sent_bytes;
        int twice = m->recv_posted;
        pthread_mutex_unlock(&l->lock);
        free(*req);
        *req = NULL;
        return twice ? lnet_fail(LNET_ERR_INVALID, "transport: transfer %d received twice", id)
                     : lnet_fail(LNET_ERR_INVALID, "transport: transfer %d expects %zu bytes; its "
                                 "sender sent %zu", id, bytes, sent);
    }
    m->into = data;
    m->into_bytes = bytes;
    m->recv_posted = 1;
    deliver(l, id);
    pthread_mutex_unlock(&l->lock);
    return LNET_OK;
}

static lnet_status local_wait(lnet_transport *t, lnet_request *req, const void **data)
{
    local_transport *l = local(t);
    pthread_mutex_lock(&l->lock);
    mailbox *m = &l->box[req->id];
    /* A send completes when its receiver has the bytes; the executor never
     * waits on a send whose receiver may not come (it releases those). */
    while (!m->received && !m->abandoned)
        pthread_cond_wait(&l->moved, &l->lock);
    lnet_status st = LNET_OK;
    if (!m->received)
        st = lnet_fail(LNET_ERR_DEVICE, "transfer %d was never sent: %s", req->id, m->why);
    else if (data && req->receive)
        *data = m->into ? m->into : m->sent;
    pthread_mutex_unlock(&l->lock);
    return st;
}

static void local_abandon(lnet_transport *t, int id, const char *why)
{
    local_transport *l = local(t);
    if (id < 0 || id >= l->n)
        return;
    pthread_mutex_lock(&l->lock);
    l->box[id].abandoned = 1;
    snprintf(l->box[id].why, sizeof l->box[id].why, "%s", why);
    pthread_cond_broadcast(&l->moved);
    pthread_mutex_unlock(&l->lock);
}

static void local_release(lnet_transport *t, lnet_request *req)
{
    (void)t;
    free(req); /* a mailbox lives as long as the transport: nothing to withdraw */
}

static void local_destroy(lnet_transport *t)
{
    local_transport *l = local(t);
    if (!l)
        return;
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->moved);
    free(l->box);
    free(l);
}

static const lnet_transport_ops local_ops = {
    sizeof(lnet_transport_ops), "in-process", local_isend, local_irecv, local_wait,
    local_abandon, local_release, local_destroy, NULL, NULL,
};

lnet_status lnet_transport_local_create(int n_transfers, int drop, lnet_transport **out)
{
    *out = NULL;
    local_transport *l = calloc(1, sizeof *l);
    mailbox *box = calloc(n_transfers > 0 ? (size_t)n_transfers : 1, sizeof *box);
    if (!l || !box) {
        free(l);
        free(box);
        return lnet_fail(LNET_ERR_NOMEM, "out of memory for %d transfers", n_transfers);
    }
    if (pthread_mutex_init(&l->lock, NULL) != 0) {
        free(l);
        free(box);
        return lnet_fail(LNET_ERR_NOMEM, "transport: cannot create a mutex");
    }
    if (pthread_cond_init(&l->moved, NULL) != 0) {
        pthread_mutex_destroy(&l->lock);
        free(l);
        free(box);
        return lnet_fail(LNET_ERR_NOMEM, "transport: cannot create a condition variable");
    }
    l->base.ops = &local_ops;
    l->n = n_transfers;
    l->drop = drop;
    l->box = box;
    *out = &l->base;
    return LNET_OK;
}
