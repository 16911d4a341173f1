/*
 * internal.h - what every part of the library shares: allocation through the
 * context, error recording, overflow-checked sizes. Nothing here is public;
 * names start with dkm__ (two underscores) so they never clash with the API.
 */
#ifndef DKM_COMMON_INTERNAL_H
#define DKM_COMMON_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diskmeans.h"

/* Allocation goes through the context so that callers (and the tests, which
 * inject failures) control it. dkm__alloc returns NULL on failure without
 * recording an error; dkm__alloc_or_fail records DKM_ERR_NOMEM naming what. */
void *dkm__alloc(dkm_ctx *ctx, size_t size);
void *dkm__calloc(dkm_ctx *ctx, size_t count, size_t size);
void dkm__free(dkm_ctx *ctx, void *ptr);
void *dkm__alloc_or_fail(dkm_ctx *ctx, size_t size, const char *what);

/* Memory aligned to 64 bytes (a cache line, and an AVX-512 register), for
 * blocks and tiles. Freed with dkm__free_aligned. */
void *dkm__alloc_aligned(dkm_ctx *ctx, size_t size, const char *what);
void dkm__free_aligned(dkm_ctx *ctx, void *ptr);

/* Records an error (first one wins) and returns status; vprintf flavour. */
dkm_status dkm__verror(dkm_ctx *ctx, dkm_status status, const char *fmt, va_list ap);
#define dkm__error dkm_ctx_set_error

/* a * b without overflow: returns false (and leaves *out alone) if the
 * product does not fit. */
static inline bool dkm__mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r))
    return false;
  *out = r;
  return true;
}

/* rows * dim * elem as a size_t, or false on overflow. */
static inline bool dkm__array_bytes(uint64_t rows, uint64_t dim, uint64_t elem, size_t *out) {
  uint64_t n, b;
  if (!dkm__mul_u64(rows, dim, &n) || !dkm__mul_u64(n, elem, &b) || b > (uint64_t)SIZE_MAX)
    return false;
  *out = (size_t)b;
  return true;
}

/* Seconds on a monotonic clock. */
double dkm__now(void);

/* Online cores, at least 1. */
uint32_t dkm__cpu_count(void);

/* Physical memory in bytes (0 if unknown). */
uint64_t dkm__physical_memory(void);

#define DKM__MIN(a, b) ((a) < (b) ? (a) : (b))
#define DKM__MAX(a, b) ((a) > (b) ? (a) : (b))

#endif /* DKM_COMMON_INTERNAL_H */
