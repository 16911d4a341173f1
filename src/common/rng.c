/*
 * rng.c - see rng.h.
 */
#include <assert.h>

#include "rng.h"

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

void dkm__rng_seed(dkm__rng *rng, uint64_t seed, uint64_t stream) {
  /* Mixing the stream through an odd multiplier before splitmix64 keeps
   * (seed, stream) pairs apart; splitmix64 never yields four zero words. */
  uint64_t x = seed ^ (UINT64_C(0xD1B54A32D192ED03) * (stream + 1));
  for (int i = 0; i < 4; i++)
    rng->s[i] = splitmix64(&x);
}

uint64_t dkm__rng_next(dkm__rng *rng) {
  uint64_t *s = rng->s;
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

double dkm__rng_uniform(dkm__rng *rng) {
  return (double)(dkm__rng_next(rng) >> 11) * 0x1.0p-53;
}

uint64_t dkm__rng_below(dkm__rng *rng, uint64_t n) {
  assert(n >= 1);
  /* Rejection: draws that fall in the incomplete last copy of [0, n) are
   * thrown away, so every value is equally likely. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = dkm__rng_next(rng);
  } while (x >= limit);
  return x % n;
}
