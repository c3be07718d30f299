/* npy_close.c — a helper of the shell tests (tests/cli_vendor.sh), not a
 * test itself: `npy_close A.npy B.npy TOL` exits 0 when the two files have
 * the same shape and every |a - b| <= TOL * (1 + |b|), else 1, printing
 * the largest scaled difference. Runs of one operator on other devices
 * agree to rounding, not to the bit, so cmp cannot compare them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "longnet.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: npy_close A.npy B.npy TOL\n");
        return 2;
    }
    const double tol = strtod(argv[3], NULL);
    lnet_tensor *a = NULL, *b = NULL;
    if (lnet_npy_load(argv[1], &a) != LNET_OK || lnet_npy_load(argv[2], &b) != LNET_OK) {
        fprintf(stderr, "npy_close: %s\n", lnet_last_error());
        lnet_tensor_free(a);
        return 1;
    }
    int same = lnet_tensor_ndim(a) == lnet_tensor_ndim(b);
    for (int i = 0; same && i < lnet_tensor_ndim(a); i++)
        same = lnet_tensor_dim(a, i) == lnet_tensor_dim(b, i);
    double worst = same ? 0.0 : INFINITY;
    const float *x = lnet_tensor_cdata(a), *y = lnet_tensor_cdata(b);
    for (size_t i = 0; same && i < lnet_tensor_numel(a); i++) {
        const double d = fabs((double)x[i] - (double)y[i]) / (1.0 + fabs((double)y[i]));
        if (!(d <= worst))
            worst = isnan(d) ? INFINITY : d;
    }
    printf("npy_close %s %s: %s, largest scaled difference %.3g (tol %.3g)\n", argv[1], argv[2],
           same ? "same shape" : "different shapes", worst, tol);
    lnet_tensor_free(a);
    lnet_tensor_free(b);
    return worst <= tol ? 0 : 1;
}
