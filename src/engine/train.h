/*
 * train.h - the state of one dkm_train() call, shared by the Lloyd
 * iterations (train.c) and the initialisations (init.c).
 */
#ifndef DKM_ENGINE_TRAIN_H
#define DKM_ENGINE_TRAIN_H

#include "common/rng.h"
#include "engine.h"
#include "kernel.h"

typedef struct dkm__trainer {
  dkm_ctx *ctx;
  const dkm_params *params;
  dkm__engine eng; /* passes over the sample */
  uint32_t k, dim;
  uint64_t m; /* sample rows */
  dkm_metric metric;
  dkm__kernel kern;
  float *centroids; /* k * dim, the current ones */
  float *cnorm;     /* k */
  float *packed;    /* the centroids packed for the GEMM kernel (NULL: BLAS) */
  float *bias;      /* dkm__kernel_bias of the current centroids */
  float **scratch;  /* per worker */
  size_t scratch_floats;
  int32_t *labels; /* block_rows: labels of the current block */
  float *dist;     /* block_rows */
  double *inv;     /* block_rows: 1/||x|| for cosine, else 1 */
  double *sums;    /* k * dim */
  uint64_t *counts;
  uint64_t *fenwick; /* k + 1: donor weights for repairs */
  float *first_row;  /* k * dim: each cluster's first row in the pass */
  uint8_t *mixed;    /* k: 1 when the cluster holds two different rows */
  uint32_t distinct; /* distinct rows of the sample when a repair found them, else 0 */
  double objective;
  /* The update follows the labelling tile by tile, in tile order (see
   * train.c): ready[i] is set once tile i of the block is labelled; next is
   * the first tile not yet added; busy says a worker is adding. */
  uint32_t *ready; /* block_rows / tile_rows */
  uint32_t next;
  int busy;
  dkm__rng rng; /* the current run's */
} dkm__trainer;

/* Fills t->centroids (normalised for cosine) for the run whose RNG is
 * t->rng. */
dkm_status dkm__init_centroids(dkm__trainer *t, uint32_t run);

/* The k-means++ initialisations (kmeanspp.c, kmeanspp_greedy.c): fill
 * t->centroids for the run whose RNG is t->rng. */
dkm_status dkm__init_kmeanspp(dkm__trainer *t, uint32_t run);
dkm_status dkm__init_greedy_kmeanspp(dkm__trainer *t, uint32_t run);

/* Their first pass over a tile: each row's aux value (||x||^2; for cosine
 * dkm__cosine_scale's s, 0 for a zero row, negated for a row that needs a
 * shift) and an infinite distance; tmp is scratch for a row. Returns the
 * index of the first row that fails dkm__row_ok, or UINT32_MAX. */
uint32_t dkm__kmeanspp_first_rows(dkm_metric metric, const float *x, uint32_t count, uint32_t dim,
                                  float *tmp, float *aux, float *mind);

/* Scratch bytes they need beyond the trainer (for the plan). */
uint64_t dkm__kmeanspp_bytes(uint64_t m, uint32_t k, uint32_t dim, uint32_t tile_rows,
                             uint32_t n_workers);
uint64_t dkm__greedy_kmeanspp_bytes(uint64_t m, uint32_t k, uint32_t dim, uint32_t tile_rows);

#endif
