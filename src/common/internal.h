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

/* The cores this process may use, at least 1: the fewest of the online
 * cores, its CPU affinity mask and its cgroups' CPU quotas (rounded up). */
uint32_t dkm__cpu_count(void);

/* Physical memory in bytes (0 if unknown). */
uint64_t dkm__physical_memory(void);

/* The memory this process may use: the smaller of the physical memory and
 * its cgroups' limits (0 if neither is known). *from receives a static text
 * naming where the figure comes from ("physical RAM", "cgroup memory.max",
 * "cgroup memory.high", "cgroup v1 memory.limit_in_bytes", "unknown"). */
uint64_t dkm__usable_memory(const char **from);

/* The lowest limits of the cgroups the process is in, from its own up to
 * each hierarchy's root. */
typedef struct dkm__cgroup_limits {
  uint64_t memory;         /* bytes; 0: no limit found */
  const char *memory_file; /* static text naming the file that set it */
  uint32_t cpus;           /* a CPU quota in whole cores, rounded up; 0: none */
} dkm__cgroup_limits;

/* Reads the limits of the cgroups of the calling process through the files
 * under root ("" for the real /proc and /sys; tests pass a fake tree):
 * root/proc/self/cgroup, root/proc/self/mountinfo and the cgroup files under
 * root/<mount point>. Missing, unreadable or garbled files count as no
 * limit; it never fails. */
void dkm__cgroup_read(const char *root, dkm__cgroup_limits *out);

/* A file with no name from the start, open for reading and writing in dir:
 * O_TMPFILE where the file system has it, else a unique name unlinked at
 * once, so that only the open descriptor keeps it alive and nothing is left
 * behind whatever happens to the process. Returns the descriptor, or -1 with
 * *err set to the errno value (ENOMEM when the name could not be
 * allocated); records nothing on ctx. */
int dkm__open_nameless(dkm_ctx *ctx, const char *dir, int *err);

#define DKM__MIN(a, b) ((a) < (b) ? (a) : (b))
#define DKM__MAX(a, b) ((a) > (b) ? (a) : (b))

#endif /* DKM_COMMON_INTERNAL_H */
