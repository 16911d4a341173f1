/*
 * bench_util.h - small helpers the benchmark programs share: a monotonic
 * clock, a seeded normal generator, peak RSS, overflow-checked sizes, a .npy
 * writer and the bare cblas_sgemm ceiling. Not part of the library: the
 * benchmarks use only include/diskmeans.h from it.
 */
#ifndef DKM_BENCH_UTIL_H
#define DKM_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Seconds on a monotonic clock. */
double bench_now(void);

/* Strict decimal parsers for the benchmarks' options: 0 on success, -1
 * after printing "PROG: WHAT must be ..." on stderr. */
int bench_parse_u64(const char *prog, const char *text, const char *what, uint64_t *out);
int bench_parse_u32(const char *prog, const char *text, const char *what, uint32_t min,
                    uint32_t max, uint32_t *out);

/* Peak resident set size of this process image, in bytes (VmHWM). */
uint64_t bench_peak_rss_bytes(void);

/* rows * cols * elem as a size_t; returns 0 and leaves *out alone on
 * overflow, 1 on success. */
int bench_array_bytes(uint64_t rows, uint64_t cols, uint64_t elem, size_t *out);

/* Fills out[0..count) with standard normal float32 values drawn from a
 * generator seeded by seed (xoshiro256** + Box-Muller): the same seed gives
 * the same values on every machine. */
void bench_fill_normal(float *out, size_t count, uint64_t seed);

/* Writes a rows x cols float32 matrix as a version 1.0 .npy file. Returns 0
 * on success, -1 (errno set) on failure; a failed write removes the file. */
int bench_write_npy_f32(const char *path, const float *data, uint64_t rows, uint64_t cols);

/* Median of values[0..count) (sorts a copy; count >= 1). */
double bench_median(const double *values, size_t count);

/* The bare BLAS assignment GEMM: T threads, each running single-threaded
 * cblas_sgemm on its contiguous share of the rows, cut into tiles of
 * tile_rows rows (0 = the whole share in one call). The product computed is
 * the one k-means assignment needs: distances' cross term X * C^T, with X
 * row-major n x d and C row-major k x d. */
typedef struct bench_sgemm_config {
  uint64_t rows;      /* n */
  uint32_t dim;       /* d */
  uint32_t k;         /* centroids */
  uint32_t threads;   /* T >= 1 */
  uint64_t tile_rows; /* rows per sgemm call; 0 = one call per thread */
  int transposed;     /* 0: X * C^T (tile x k out); 1: C * X^T (k x tile out) */
} bench_sgemm_config;

/* Runs the configuration reps times on x (n x d) and c (k x d) after one
 * warm-up tile per thread, and stores each repetition's wall time in
 * seconds[0..reps). If bad_tiles is not NULL, one more (untimed) concurrent
 * pass compares every tile's product, bit for bit, with the product of the
 * same call made by a lone thread, and *bad_tiles receives the number that
 * differ: a BLAS that is not safe to call from two threads at once (a serial
 * OpenBLAS built without USE_LOCKING shares its packing buffers) shows up
 * there, and its speed would be no ceiling. Returns 0 on success, -1 if
 * memory or threads are lacking. */
int bench_sgemm_run(const bench_sgemm_config *config, const float *x, const float *c, int reps,
                    double *seconds, uint64_t *bad_tiles);

/* Floating-point operations of one assignment GEMM: 2 * n * k * d. */
double bench_assign_flops(uint64_t rows, uint32_t dim, uint32_t k);

#endif /* DKM_BENCH_UTIL_H */
