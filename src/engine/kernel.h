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
 * zero row) and for the other metrics 1. Returns the index within the tile
 * of the first row that fails dkm__norm2_ok (a NaN, an infinity, or for L2
 * and inner product a squared norm above DKM__MAX_NORM2), or UINT32_MAX when every row is fine (the caller names
 * the bad row with dkm__describe_bad_row). */
uint32_t dkm__assign_tile(const dkm__kernel *kern, const float *x, uint32_t rows, float *scratch,
                          int32_t *labels, float *dist, float *inv);

#endif
