/*
 * sample.h - the training sample: how many rows, where they live (memory,
 * a spill file, or the input itself), and drawing them in one sequential
 * pass over the source.
 */
#ifndef DKM_STORAGE_SAMPLE_H
#define DKM_STORAGE_SAMPLE_H

#include <math.h>

#include "internal.h"

/* The decisions, made before anything is read. */
typedef struct dkm__sample_plan {
  uint64_t rows;                   /* rows of the source */
  uint32_t dim;                    /* values per row */
  uint64_t sample_rows;            /* m: rows training uses */
  uint64_t sample_bytes;           /* m * dim * 4 */
  dkm_storage storage;             /* MEMORY or DISK */
  int from_source;                 /* train on the source itself, no copy */
  uint64_t memory_limit;           /* the budget AUTO compared against */
  const char *memory_limit_source; /* where it comes from (static text) */
  uint64_t spill_bytes;            /* written to tmp_dir */
  uint32_t tile_rows;              /* the engine's row tile */
  uint64_t block_rows;             /* rows per streamed block: a multiple of tile_rows */
  uint64_t gather_block_rows;      /* rows per block while drawing the sample */
} dkm__sample_plan;

/* Fills plan for training src with params (already checked). Fails with
 * DKM_ERR_TOO_FEW_ROWS when k > rows and DKM_ERR_PARAM when the sizes
 * overflow. tile_rows comes from the engine (dkm__tile_rows). */
dkm_status dkm__sample_plan_make(dkm_ctx *ctx, const dkm_params *params, const dkm_source *src,
                                 uint32_t tile_rows, dkm__sample_plan *plan);

/* Carries out plan: *train receives the source training reads (src itself
 * when plan->from_source, else a new memory or spill source the caller
 * closes, *owned = 1). Every row the pass reads (the sample's rows and,
 * between the first and last chosen row of each block read, the others) is
 * checked for NaN, infinity and a squared norm that overflows, except when
 * training reads the source directly (the engine checks those rows on its
 * first pass); the error names the first bad row. Reports
 * DKM_PHASE_SAMPLE progress; cancellation is DKM_ERR_CANCELLED. *spilled
 * receives the bytes written to the spill file. */
dkm_status dkm__sample_draw(dkm_ctx *ctx, const dkm_params *params, dkm_source *src,
                            const dkm__sample_plan *plan, dkm_source **train, int *owned,
                            uint64_t *spilled);

/*
 * The largest squared norm a row or a centroid may have for L2 and inner
 * product: T = 2^125 (about 4.25e37, FLT_MAX / 8). Larger rows are refused
 * with a message naming the row; below it every value the engine computes
 * in float is finite. The proof, with u = 2^-24 and g = dim u / (1 - dim u)
 * the bound of the relative error of a float sum or dot product of dim
 * terms (Higham, Accuracy and Stability, 3.1), g <= 1/3 for dim <= 2^22:
 *
 *  - ||x||^2 as computed (n2 <= T) sums non-negative terms, so every
 *    partial sum is <= n2 <= T; the exact norm is <= T / (1 - g) <= 1.5 T.
 *  - A centroid is a mean of rows (convexity: ||c|| <= max ||x||, plus a
 *    rounding of u per coordinate), a given one is checked like a row, and
 *    a split of an empty cluster's donor scales coordinates by (1 +- 2^-10)
 *    at most 64 times (the donor's count halves each time): ||c||^2 <= 1.5
 *    T * 1.14 <= 1.75 T, and its computed norm <= 1.75 T (1 + g) <= 2.35 T.
 *  - Every partial sum of the dot product x.c is at most (1 + g) ||x|| ||c||
 *    <= 4/3 sqrt(1.5 * 1.75) T <= 2.2 T in magnitude; 2 x.c <= 4.4 T.
 *  - The kernel's value ||c||^2 - 2 x.c (or -x.c) is then <= 6.75 T in
 *    magnitude and the distance ||x||^2 + that <= 7.75 T < 8 T = 2^128, the
 *    first power of two above FLT_MAX: finite. k-means++'s distances are
 *    the same sums. The objective is summed in double (2^128 times 2^64
 *    rows is far from double's limit).
 *
 * Cosine rows are normalised and do not need the bound. Rescaling the data
 * instead of refusing it would change every distance and objective the
 * caller sees; a row this large is almost always a bug upstream.
 */
#define DKM__MAX_NORM2 0x1p125f

/* ||x||^2 in float, summed in a fixed order (8 interleaved partial sums) so
 * that it is the same wherever the row sits in memory. The engine computes
 * it for every row it assigns (L2 and inner product), and the checks use
 * it. */
float dkm__row_norm2(const float *x, uint32_t dim);

/* 1 when a row whose dkm__row_norm2 is n2 can be used with L2 or inner
 * product: a squared norm of at most DKM__MAX_NORM2 (NaN fails). */
static inline int dkm__norm2_ok(float n2) {
  return n2 <= DKM__MAX_NORM2;
}

/* 1 when row x can be used with metric: finite values for cosine (which
 * works on directions, over the whole float range: see engine/kernel.h),
 * dkm__norm2_ok otherwise. */
int dkm__row_ok(const float *x, uint32_t dim, dkm_metric metric);

/* Records DKM_ERR_DATA for row `row` of src that failed dkm__row_ok:
 * "NAME: row R has a NaN in column J" (or an infinite value, or "squared
 * norm N, above T, ..."), where NAME and R are the file the row is in and
 * its row there (dkm__source_locate: a part of a concatenation names
 * itself). Returns DKM_ERR_DATA. */
dkm_status dkm__describe_bad_row(dkm_ctx *ctx, const dkm_source *src, uint64_t row, const float *x,
                                 uint32_t dim);

/* Checks k centroids (k * dim floats) as rows are checked (dkm__row_ok for
 * metric); the first bad one fails with status: "NAME: centroid I has a NaN
 * in column J" (or an infinite value, or a squared norm beyond the bound). */
dkm_status dkm__check_centroids(dkm_ctx *ctx, dkm_status status, const char *name, const float *c,
                                uint32_t k, uint32_t dim, dkm_metric metric);

/* "has squared norm N, above T, ...; scale the data" for a vector whose
 * squared norm is above DKM__MAX_NORM2, written into buf (size bytes). */
const char *dkm__norm2_problem(const float *x, uint32_t dim, char *buf, size_t size);

#endif
