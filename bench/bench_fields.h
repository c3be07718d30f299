/* bench_fields.h — a cell as named fields (bench_fields.c). */
#ifndef LNET_BENCH_FIELDS_H
#define LNET_BENCH_FIELDS_H

#include "bench.h"

#define BENCH_MAX_FIELDS 40

typedef struct bench_field {
    const char *name;
    int numeric;                 /* a number (or empty: unknown) */
    char value[BENCH_TEXT_LEN];
} bench_field;

/* Fills f[0..n) and returns n. */
int bench_cell_fields(const bench_cell *c, const bench_machine *m, const bench_roofline *rl,
                      bench_field *f);

#endif /* LNET_BENCH_FIELDS_H */
