/*
 * kernel.h - the assignment of one tile of rows to its nearest centroids:
 * one GEMM of the tile against each centroid tile (gemm.c's own kernel, or
 * cblas_sgemm where that cannot run), then the argmin while the values are
 * still in cache.
 *
 * Determinism rests here: the tile sizes are functions of (k, dim) only, the
 * engine always cuts rows at multiples of dkm__tile_rows() from the start of
 * the data, and within a tile every row's result depends only on that row,
 * its position in the tile and the centroids (with the own kernel, not even
 * on its position; a BLAS may round a row differently in another place).
 */
#ifndef DKM_ENGINE_KERNEL_H
#define DKM_ENGINE_KERNEL_H

#include "internal.h"

/* Rows per tile and centroids per centroid tile. */
uint32_t dkm__tile_rows(uint32_t k, uint32_t dim);
uint32_t dkm__tile_cols(uint32_t k, uint32_t dim);

typedef struct dkm__kernel {
  uint32_t k, dim;
  uint32_t tile_rows, tile_cols;
  dkm_metric metric;
  const float *centroids; /* k * dim; unit norm (or zero) for cosine */
  const float *cnorm;     /* k: ||c||^2 (used by L2 only) */
  const float *packed;    /* the centroids packed by dkm__pack, or NULL where
                             the own GEMM kernel does not run (BLAS fallback) */
  const float *bias;      /* dkm__kernel_bias's array */
} dkm__kernel;

void dkm__kernel_init(dkm__kernel *kern, uint32_t k, uint32_t dim, dkm_metric metric,
                      const float *centroids, const float *cnorm, const float *packed,
                      const float *bias);

/* The per-centroid term of the assignment's values (bias - 2 x.c for L2,
 * bias - x.c otherwise), padded for the packed panels
 * (dkm__packed_floats(k, 1) floats): ||c||^2 for L2, 0 for the others, +inf
 * for the padding. */
void dkm__kernel_bias(dkm_metric metric, const float *cnorm, uint32_t k, float *out);

/*
 * Cosine over the whole float range. A row's direction is defined for every
 * finite row but the zero row, subnormals included, yet in float its
 * squared norm overflows from about 1.8e19 per value and underflows below
 * about 1e-23, and its products with unit centroids lose precision or
 * overflow likewise. So a row whose float squared norm is outside
 * [2^-100, 2^100] (norm outside [2^-50, 2^50]) is multiplied by a power of
 * two 2^-shift that brings its norm to [1/2, 1) before its products and its
 * norm; the shift comes from the sum of squares in double, which neither
 * overflows nor underflows for any finite float row. Multiplying by a power
 * of two is exact (but for bits below 2^-149 of a huge row, which cannot
 * matter), so a row and the row times any power of two give the same
 * labels, distances and centroids. Rows inside the range have shift 0, keep
 * the bits they always had, and cost no copy.
 *
 * dkm__cosine_scale gives a row's shift (tmp, dim floats, then holds the
 * shifted row when the shift is not 0), s = 1 / ||x 2^-shift|| (0 for a
 * zero row) as a float between 2^-50 and 2^50 that the products of the
 * shifted row are multiplied by, and inv = s 2^-shift = 1 / ||x|| in double
 * (0 for a zero row), the row's weight in the centroid sums. It returns 0
 * when the row has a NaN or an infinite value (the only rows cosine
 * refuses).
 */
int dkm__cosine_scale(const float *x, uint32_t dim, float *tmp, int *shift, float *s, double *inv);

/* out = x 2^-shift (dim values). */
void dkm__shift_row(const float *x, uint32_t dim, int shift, float *out);

/* Floats of scratch one worker needs for dkm__assign_tile. */
size_t dkm__kernel_scratch_floats(const dkm__kernel *kern);

/* ||c||^2 of every centroid (k floats). */
void dkm__centroid_norms(const float *centroids, uint32_t k, uint32_t dim, float *out);

/* Scales a row to unit norm (norm computed in double); a zero row stays
 * zero. Used for cosine centroids. */
void dkm__normalize(float *x, uint32_t dim);

/* The smallest of v[0..n), n >= 1, finite values (the argmin's vector
 * code). */
float dkm__min_value(const float *v, uint32_t n);

/* Labels rows (<= tile_rows) of x. labels/dist receive the nearest centroid
 * and its distance. inv (may be NULL) receives, for cosine, 1/||x|| (0 for a
 * zero row; see dkm__cosine_scale) and for the other metrics 1. Returns the index within the tile
 * of the first row that fails dkm__row_ok (a NaN, an infinity, or for L2
 * and inner product a squared norm above DKM__MAX_NORM2), or UINT32_MAX when
 * every row is fine (the caller names the bad row with
 * dkm__describe_bad_row). */
uint32_t dkm__assign_tile(const dkm__kernel *kern, const float *x, uint32_t rows, float *scratch,
                          int32_t *labels, float *dist, double *inv);

#endif
