/* mpi_collectives.c — the public collectives a program across ranks needs
 * beside the call itself (the bench's timings: a value broadcast from one
 * rank, the slowest rank's time), built over the core's own (ranks.h), so
 * that they are refused by name in a build without MPI like every other. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdlib.h>

#include "internal.h"
#include "ranks.h"

lnet_status lnet_mpi_bcast(lnet_mpi *m, void *buf, size_t bytes, int root)
{
    if (!m || (!buf && bytes))
        return lnet_fail(LNET_ERR_INVALID, "lnet_mpi_bcast: %s is NULL", m ? "buf" : "the ranks");
    if (root < 0 || root >= lnet_mpi_size(m))
        return lnet_fail(LNET_ERR_INVALID, "lnet_mpi_bcast: root %d is not a rank (0 .. %d)",
                         root, lnet_mpi_size(m) - 1);
    return lnet_ranks_bcast(m, buf, bytes, root);
}

lnet_status lnet_mpi_max(lnet_mpi *m, double *value)
{
    if (!m || !value)
        return lnet_fail(LNET_ERR_INVALID, "lnet_mpi_max: %s is NULL", m ? "value" : "the ranks");
    int n = lnet_mpi_size(m);
    double *all = calloc((size_t)(n > 0 ? n : 1), sizeof *all);
    if (!all)
        return lnet_fail(LNET_ERR_NOMEM, "lnet_mpi_max: %d doubles", n);
    lnet_status st = lnet_ranks_allgather_double(m, value, 1, all);
    for (int i = 0; st == LNET_OK && i < n; i++)
        if (!(all[i] <= *value)) /* a NaN wins: a failed rank's time is no time */
            *value = all[i];
    free(all);
    return st;
}
