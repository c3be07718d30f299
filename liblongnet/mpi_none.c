/* mpi_none.c — longnet built without MPI (configure found none, or
 * --without-mpi): every call across ranks is refused by name, so that a
 * program written for MPI builds and says why it cannot run. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include "internal.h"
#include "ranks.h"
#include "transport.h"

static lnet_status no_mpi(const char *what)
{
    return lnet_fail(LNET_ERR_UNSUPPORTED, "%s: this longnet was built without MPI (configure "
                     "found no mpicc or ompi-c; install openmpi-bin libopenmpi-dev and "
                     "configure again)", what);
}

int lnet_mpi_built(void)
{
    return 0;
}

lnet_status lnet_mpi_init(int *argc, char ***argv, lnet_mpi **out)
{
    (void)argc;
    (void)argv;
    if (out)
        *out = NULL;
    return no_mpi("lnet_mpi_init");
}

lnet_status lnet_mpi_from_comm(const void *comm, lnet_mpi **out)
{
    (void)comm;
    if (out)
        *out = NULL;
    return no_mpi("lnet_mpi_from_comm");
}

int lnet_mpi_rank(const lnet_mpi *m)
{
    (void)m;
    return 0;
}

int lnet_mpi_size(const lnet_mpi *m)
{
    (void)m;
    return 1;
}

void lnet_mpi_free(lnet_mpi *m)
{
    (void)m;
}

lnet_status lnet_mpi_agree(lnet_mpi *m, lnet_status mine, const char *what)
{
    (void)m;
    (void)mine;
    (void)what;
    return no_mpi("lnet_mpi_agree");
}

lnet_status lnet_ranks_allgather_int(lnet_mpi *m, const int *mine, int n, int *all)
{
    (void)m, (void)mine, (void)n, (void)all;
    return no_mpi("an all-gather");
}

lnet_status lnet_ranks_allgather_double(lnet_mpi *m, const double *mine, int n, double *all)
{
    (void)m, (void)mine, (void)n, (void)all;
    return no_mpi("an all-gather");
}

lnet_status lnet_ranks_bcast(lnet_mpi *m, void *buf, size_t bytes, int root)
{
    (void)m, (void)buf, (void)bytes, (void)root;
    return no_mpi("a broadcast");
}

lnet_status lnet_ranks_agree(lnet_mpi *m, lnet_status mine, int secondary, const char *what)
{
    (void)m, (void)mine, (void)secondary, (void)what;
    return no_mpi("an agreement");
}

lnet_status lnet_transport_mpi_create(lnet_mpi *mpi, const struct lnet_plan *p, lnet_transport **out)
{
    (void)mpi, (void)p;
    *out = NULL;
    return no_mpi("the MPI transport");
}
