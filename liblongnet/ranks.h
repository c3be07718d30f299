/* ranks.h — what the core asks of the ranks of an MPI job, without mpi.h:
 * the few collectives a call across ranks needs (the weights agreed, a
 * failure made known to every rank, a file's temporary name passed on).
 * Implemented in transport_mpi.c, the only core file that includes mpi.h;
 * mpi_none.c refuses every call when longnet is built without MPI. */
#ifndef LNET_RANKS_H
#define LNET_RANKS_H

#include <stddef.h>

#include "longnet.h"

/* Every rank's `n` ints: all[r * n + i] is rank r's mine[i]. */
lnet_status lnet_ranks_allgather_int(lnet_mpi *m, const int *mine, int n, int *all);
/* Every rank's `n` doubles (the same n on every rank). */
lnet_status lnet_ranks_allgather_double(lnet_mpi *m, const double *mine, int n, double *all);
/* `bytes` at buf from rank `root` to every rank. */
lnet_status lnet_ranks_bcast(lnet_mpi *m, void *buf, size_t bytes, int root);
/* The agreement after a step every rank runs: OK on every rank when every
 * rank's `mine` is OK; otherwise, on every rank, the status of the first
 * rank that failed first-hand (secondary: it failed only because another
 * did, as a receiver whose sender gave up), with a message naming that
 * rank, `what` it was doing, and its own message. */
lnet_status lnet_ranks_agree(lnet_mpi *m, lnet_status mine, int secondary, const char *what);

#endif /* LNET_RANKS_H */
