/* part_files.c — a call across ranks and its .npy files: each rank reads
 * only its rows of an input (seeking to them), and the ranks write their
 * rows of each output into one temporary at their offsets, which rank 0
 * renames over the target only once every rank has written all of them
 * (npy_output.c's temporaries, so the file is byte for byte the one
 * process's, and a failure anywhere leaves every existing output as it
 * was). */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "part.h"
#include "ranks.h"

lnet_status lnet_part_load(const lnet_part *p, const char *path, lnet_tensor **out)
{
    if (!out)
        return lnet_fail(LNET_ERR_INVALID, "lnet_part_load: output pointer is NULL");
    *out = NULL;
    if (!p || !path)
        return lnet_fail(LNET_ERR_INVALID, "lnet_part_load: %s is NULL", !p ? "the part" : "path");
    lnet_npy_info info = {.size = sizeof info};
    lnet_status st = lnet_npy_inspect(path, &info);
    if (st)
        return st;
    /* [B, N, H, D] rows, or a log-sum-exp's [B, H, N]. */
    const int axis = info.ndim == 3 ? 2 : 1;
    return lnet_npy_load_ranges(path, axis, p->g.rows, p->rows.n, p->rows.begin, p->rows.end, out);
}

/* A temporary's name, as long as a path may be. */
#define TEMP_NAME 4096

/* The whole output's shape and its row axis, from this rank's tensor. */
static lnet_status full_shape(const lnet_part *p, const char *path, const lnet_tensor *t,
                              int64_t *shape, int *axis)
{
    if (!t || !lnet_tensor_cdata(t))
        return lnet_fail(LNET_ERR_INVALID, "%s: the tensor is %s", path,
                         t ? "not dense float32" : "NULL");
    const int nd = lnet_tensor_ndim(t);
    *axis = nd == 4 ? 1 : 2; /* [B, N, H, D], or a log-sum-exp [B, H, N] */
    if ((nd != 4 && nd != 3) || lnet_tensor_dim(t, *axis) != p->rows.total)
        return lnet_fail(LNET_ERR_INVALID, "%s: a tensor of %d dimensions with %lld rows is not "
                         "this rank's %lld rows of [B, N, H, D] or [B, H, N]", path, nd,
                         (long long)lnet_tensor_dim(t, *axis), (long long)p->rows.total);
    for (int d = 0; d < nd; d++)
        shape[d] = lnet_tensor_dim(t, d);
    shape[*axis] = p->g.rows;
    return LNET_OK;
}

lnet_status lnet_part_save(lnet_part *p, int n, const char *const paths[],
                           const lnet_tensor *const local[])
{
    if (!p || n < 1 || n > 16 || !paths || !local)
        return lnet_fail(LNET_ERR_INVALID, "lnet_part_save: %s", !p ? "the part is NULL"
                         : n < 1 || n > 16 ? "1 to 16 outputs" : "paths or tensors are NULL");
    lnet_npy_output *o[16] = {NULL};
    int64_t shape[16][4];
    int axis[16];
    uint64_t offset[16] = {0};
    char *names = calloc((size_t)n, TEMP_NAME);
    lnet_status st = names ? LNET_OK : lnet_fail(LNET_ERR_NOMEM, "out of memory for %d names", n);
    for (int i = 0; i < n && !st; i++)
        st = full_shape(p, paths[i], local[i], shape[i], &axis[i]);
    /* Rank 0 makes the temporaries, header written and sized. */
    for (int i = 0; i < n && !st && p->me == 0; i++) {
        if (!(st = lnet_npy_output_create(paths[i], &o[i])) &&
            !(st = lnet_npy_output_reserve(o[i], lnet_tensor_ndim(local[i]), shape[i], &offset[i])))
            snprintf(names + (size_t)i * TEMP_NAME, TEMP_NAME, "%s", lnet_npy_output_temp_path(o[i]));
    }
    st = lnet_ranks_agree(p->mpi, st, 0, "creating the outputs");
    if (!st)
        st = lnet_ranks_bcast(p->mpi, names, (size_t)n * TEMP_NAME, 0);
    if (!st)
        st = lnet_ranks_bcast(p->mpi, offset, sizeof offset, 0);
    /* Every rank its rows, at their offsets. */
    lnet_status mine = st;
    for (int i = 0; i < n && !mine; i++)
        mine = lnet_npy_write_ranges(names + (size_t)i * TEMP_NAME, offset[i],
                                     lnet_tensor_ndim(local[i]), shape[i], axis[i], p->rows.n,
                                     p->rows.begin, p->rows.end, lnet_tensor_cdata(local[i]));
    if (!st)
        st = lnet_ranks_agree(p->mpi, mine, 0, "writing its rows of the outputs");
    /* Every rank has written all: rank 0 renames them together. */
    mine = st;
    for (int i = 0; i < n && !mine && p->me == 0; i++)
        mine = lnet_npy_output_seal(o[i]);
    for (int i = 0; i < n && !mine && p->me == 0; i++)
        mine = lnet_npy_output_commit(o[i]);
    if (!st)
        st = lnet_ranks_agree(p->mpi, mine, 0, "renaming the outputs");
    for (int i = 0; i < n; i++)
        lnet_npy_output_free(o[i]); /* an uncommitted temporary is removed */
    free(names);
    return st;
}
