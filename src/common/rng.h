/*
 * rng.h - the library's random numbers: xoshiro256** (Blackman and Vigna,
 * 2018) seeded through splitmix64. Small, fast, well studied, and the same
 * sequence on every platform, which the determinism contract needs (rand()
 * and random() differ between C libraries).
 */
#ifndef DKM_COMMON_RNG_H
#define DKM_COMMON_RNG_H

#include <stdint.h>

typedef struct dkm__rng {
  uint64_t s[4];
} dkm__rng;

/* Independent streams from one seed: the sample uses one stream, each run
 * of n_redo another, so that adding runs does not change the sample. */
#define DKM__RNG_STREAM_SAMPLE UINT64_C(0)
#define DKM__RNG_STREAM_RUN(r) (UINT64_C(1) + (uint64_t)(r))

/* Seeds rng for (seed, stream). Any pair gives a non-zero state. */
void dkm__rng_seed(dkm__rng *rng, uint64_t seed, uint64_t stream);

/* The next 64 random bits. */
uint64_t dkm__rng_next(dkm__rng *rng);

/* A uniform double in [0, 1) from the top 53 bits. */
double dkm__rng_uniform(dkm__rng *rng);

/* A uniform integer in [0, n), n >= 1, without modulo bias. */
uint64_t dkm__rng_below(dkm__rng *rng, uint64_t n);

#endif
