/* transport.h — how the executor moves rows between workers (DESIGN §2):
 * non-blocking send and receive of one transfer of the plan (a row set of
 * one tensor, named by its index in the plan's list), with completion. The
 * executor never copies another worker's rows itself; it asks the transport.
 * transport_local.c is the in-process implementation; an MPI one (issue 14)
 * implements the same table over MPI_Isend/MPI_Irecv, the transfer index as
 * the tag, without a change to the executor.
 *
 * Rules, as MPI's: a send's data stays valid and unchanged until the
 * transport is destroyed or the request released; each transfer is sent
 * once and received once; any thread may post or wait on its own requests
 * at any time. */
#ifndef LNET_TRANSPORT_H
#define LNET_TRANSPORT_H

#include <stddef.h>

#include "longnet.h"

typedef struct lnet_transport lnet_transport;
typedef struct lnet_request lnet_request;

typedef struct lnet_transport_ops {
    size_t size;       /* sizeof(lnet_transport_ops): the table grows only at the end */
    const char *name;  /* "in-process", "mpi" */
    /* Starts sending transfer `id` (endpoint src to dst): `bytes` at `data`. */
    lnet_status (*isend)(lnet_transport *t, int id, int src, int dst, const void *data,
                         size_t bytes, lnet_request **req);
    /* Starts receiving transfer `id` into `data` (`bytes` long). data NULL:
     * the transport lends memory that holds the bytes once the request
     * completes, valid until the transport is destroyed (in one process:
     * the sender's own memory, so nothing is copied). */
    lnet_status (*irecv)(lnet_transport *t, int id, int src, int dst, void *data, size_t bytes,
                         lnet_request **req);
    /* Waits for a request: a receive's bytes have arrived (*data, when not
     * NULL, points at them), a send's have been taken. A receive whose
     * sender gave up (abandon) fails with a message naming the transfer. */
    lnet_status (*wait)(lnet_transport *t, lnet_request *req, const void **data);
    /* The sender of transfer `id` will never send it (it failed first):
     * its receiver's wait fails instead of waiting for ever. */
    void (*abandon)(lnet_transport *t, int id, const char *why);
    /* Frees a request; one still pending is withdrawn. */
    void (*release)(lnet_transport *t, lnet_request *req);
    void (*destroy)(lnet_transport *t);
    /* Across processes only (NULL in one): */
    /* Moves pending messages along while this process's workers compute
     * (MPI progresses only inside its calls); called between waits. */
    void (*progress)(lnet_transport *t);
    /* After this process's workers have ended: every transfer it owes and
     * never sent is abandoned (its receiver fails instead of waiting),
     * every transfer sent to it and never received is received and
     * dropped, and every send completes; so that no process waits for
     * ever on another. Bounded by the transport's timeout. */
    lnet_status (*finish)(lnet_transport *t);
} lnet_transport_ops;

struct lnet_transport {
    const lnet_transport_ops *ops;
};

/* The in-process transport for a plan of `n_transfers` transfers. A test
 * hook: drop >= 0 names a transfer whose receive completes without its
 * bytes being copied (what a missing transfer looks like to the receiver;
 * the isolation test shows that it is caught). */
lnet_status lnet_transport_local_create(int n_transfers, int drop, lnet_transport **out);

/* The transport across the ranks of `mpi` for plan p (transport_mpi.c, the
 * one core file that includes mpi.h): a transfer between two workers of
 * this rank goes through an in-process transport, one between ranks is an
 * MPI_Isend / MPI_Irecv with the transfer's index as its tag. */
struct lnet_plan;
lnet_status lnet_transport_mpi_create(lnet_mpi *mpi, const struct lnet_plan *p, lnet_transport **out);

#endif /* LNET_TRANSPORT_H */
