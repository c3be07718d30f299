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

/* JSON pieces shared by bench_output.c and bench_roofline_output.c: `first`
 * says whether a comma is due before the key. */
void bench_json_string(FILE *f, const char *s);
void bench_json_key(FILE *f, const char *indent, const char *key, int *first);
void bench_json_kv_str(FILE *f, const char *indent, const char *key, const char *v,
                       int *first);
void bench_json_kv_num(FILE *f, const char *indent, const char *key, double v, int *first);

/* The roofline in each output: the header lines, the CSV's '#' lines, the
 * JSON "roofline" object (bench_roofline_output.c). */
void bench_roofline_print(FILE *out, const bench_roofline *rl);
void bench_roofline_csv(FILE *f, const bench_roofline *rl);
void bench_roofline_json(FILE *f, const bench_roofline *rl);

#endif /* LNET_BENCH_FIELDS_H */
