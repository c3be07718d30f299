/* seeded_rng.h — the tests' random numbers: splitmix64, so that a seed gives
 * the same cases on every platform (rand() does not). Header-only. */
#ifndef LNET_TEST_SEEDED_RNG_H
#define LNET_TEST_SEEDED_RNG_H

#include <stdint.h>

static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static inline int64_t rng_int(uint64_t *s, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

/* Uniform in [lo, hi). */
static inline double rng_real(uint64_t *s, double lo, double hi)
{
    return lo + (hi - lo) * (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

#endif /* LNET_TEST_SEEDED_RNG_H */
