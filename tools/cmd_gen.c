#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
/* cmd_gen.c — `longnet gen`: a .npy file of random float32 values, so that
 * the Quick start and the tests can make inputs without Python. The generator
 * is our own (xoshiro256** seeded by splitmix64), not rand(), so that a seed
 * gives the same file on every platform and libc. */
#include <math.h>
#include <string.h>

#include "cli.h"

void cmd_gen_usage(FILE *out)
{
    fputs("Usage: longnet gen --shape D0,D1,... --out FILE.npy [--seed S]\n"
          "                   [--dist normal|uniform]\n"
          "\n"
          "Writes a float32 .npy file of random values, e.g. an attention input\n"
          "of shape B,N,H,D. The same seed always gives the same file.\n"
          "\n"
          "  --shape LIST   1 to 8 positive integers, comma-separated\n"
          "  --out FILE     the .npy file to write (replaced atomically)\n"
          "  --seed S       an unsigned 64-bit integer (default 1)\n"
          "  --dist NAME    normal: mean 0, standard deviation 1 (default);\n"
          "                 uniform: in [-1, 1)\n", out);
}

/* ------------------------------------------------------------ generator */

typedef struct rng {
    uint64_t s[4];
} rng;

/* splitmix64 spreads any seed (0 included) over the 256-bit state; xoshiro
 * must not start from all zeros. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* A double in [0, 1) from the top 53 bits: every value exactly representable. */
static double rng_unit(rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static void fill_uniform(rng *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(2.0 * rng_unit(r) - 1.0);
}

/* Box-Muller, using both values of each pair. u1 is taken in (0, 1] so the
 * logarithm is finite. */
static void fill_normal(rng *r, float *x, size_t n)
{
    const double two_pi = 6.283185307179586476925286766559;
    for (size_t i = 0; i < n; i += 2) {
        double u1 = 1.0 - rng_unit(r);
        double u2 = rng_unit(r);
        double radius = sqrt(-2.0 * log(u1));
        x[i] = (float)(radius * cos(two_pi * u2));
        if (i + 1 < n)
            x[i + 1] = (float)(radius * sin(two_pi * u2));
    }
}

/* -------------------------------------------------------------- command */

enum { OPT_SHAPE = 1, OPT_OUT, OPT_SEED, OPT_DIST };

int cmd_gen_main(int argc, char **argv)
{
    cli_set_prog("longnet gen");
    static const cli_option options[] = {
        { "shape", 1, OPT_SHAPE },
        { "out", 1, OPT_OUT },
        { "seed", 1, OPT_SEED },
        { "dist", 1, OPT_DIST },
        { NULL, 0, 0 }
    };
    const char *shape_arg = NULL, *out_path = NULL, *seed_arg = NULL, *dist = "normal";

    cli_parser p;
    cli_parser_init(&p, argc, argv, options);
    for (int id; (id = cli_next_option(&p)) != CLI_OPT_END;) {
        switch (id) {
        case CLI_OPT_HELP: cmd_gen_usage(stdout); return CLI_EXIT_OK;
        case CLI_OPT_ERROR: return CLI_EXIT_USAGE;
        case OPT_SHAPE: shape_arg = p.value; break;
        case OPT_OUT: out_path = p.value; break;
        case OPT_SEED: seed_arg = p.value; break;
        case OPT_DIST: dist = p.value; break;
        }
    }
    if (!shape_arg)
        return cli_usage_error("missing required option --shape");
    if (!out_path)
        return cli_usage_error("missing required option --out");

    int64_t shape[LNET_MAX_DIMS];
    int ndim = 0;
    char err[512];
    if (cli_parse_i64_list(shape_arg, "--shape", 1, INT64_MAX, shape, LNET_MAX_DIMS,
                           &ndim, err, sizeof err) != 0) {
        cli_error("%s", err);
        return CLI_EXIT_FAIL;
    }

    uint64_t seed = 1;
    if (seed_arg && cli_parse_u64(seed_arg, &seed) != CLI_NUM_OK) {
        cli_error("--seed '%s' is not an unsigned 64-bit integer", seed_arg);
        return CLI_EXIT_FAIL;
    }
    int normal;
    if (strcmp(dist, "normal") == 0)
        normal = 1;
    else if (strcmp(dist, "uniform") == 0)
        normal = 0;
    else {
        cli_error("--dist '%s' is not one of: normal, uniform", dist);
        return CLI_EXIT_FAIL;
    }

    /* The library checks the element count and byte size for overflow. */
    lnet_tensor *t = NULL;
    if (lnet_tensor_create(ndim, shape, &t) != LNET_OK)
        return cli_lib_error(NULL);
    rng r;
    rng_seed(&r, seed);
    if (normal)
        fill_normal(&r, lnet_tensor_data(t), lnet_tensor_numel(t));
    else
        fill_uniform(&r, lnet_tensor_data(t), lnet_tensor_numel(t));

    int rc = CLI_EXIT_OK;
    if (lnet_npy_save(out_path, t) != LNET_OK)
        rc = cli_lib_error(NULL);
    lnet_tensor_free(t);
    return rc;
}
