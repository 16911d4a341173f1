/*
 * train.h - the state of one dkm_train() call, shared by the Lloyd
 * iterations (train.c) and the initialisations (init.c).
 */
#ifndef DKM_ENGINE_TRAIN_H
#define DKM_ENGINE_TRAIN_H

#include "common/rng.h"
#include "engine.h"
#include "kernel.h"
#include "storage/checkpoint.h"
#include "storage/sample.h"

/*
 * What a caller composing training out of this engine (hierarchical
 * training, hier.c) may change in it. Everything else -- the passes, the
 * sums in row order, the update, the repairs, the statistics -- stays the
 * one Lloyd loop.
 */
typedef struct dkm__train_hooks {
  /* Labels a tile instead of the kernel over all k centroids: like
   * dkm__assign_tile (inv never NULL), returning the first bad row or
   * UINT32_MAX. worker is below the engine's worker count, at most
   * params.n_threads (or dkm__cpu_count() for 0). NULL: the kernel. */
  uint32_t (*label_tile)(void *user, uint32_t worker, const float *x, uint32_t count,
                         int32_t *labels, float *dist, double *inv);
  /* Called whenever the centroids have changed (after the initialisation
   * and every update), before the next pass labels with them. */
  void (*centroids_changed)(void *user, const float *centroids);
  void *user;
  /* Clusters in n_groups ranges [group_first[g], group_first[g + 1]):
   * repairs and balancing moves take donors from the range of the cluster
   * they move (a row only meets its groups' centroids). NULL: one range. */
  const uint32_t *group_first;
  uint32_t n_groups;
} dkm__train_hooks;

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
  dkm__rng rng;                  /* the current run's */
  const dkm__train_hooks *hooks; /* never NULL: no hooks is all zeros */
  uint64_t *order;               /* 4 k: (size, index) pairs for balancing moves */
} dkm__trainer;

/* dkm_train() with hooks (NULL: none); params are checked by the caller,
 * and strategy is ignored: this is one flat run. With ck (else NULL) it
 * checks the sample's CRC, resumes from the checkpoint's Lloyd loop section
 * if it has one, and saves that section after the initialisation and every
 * iteration of each run (params.checkpoint itself is not looked at). */
dkm_status dkm__train_flat(dkm_ctx *ctx, const dkm_params *params, dkm_source *src,
                           const dkm__train_hooks *hooks, dkm__ckpt *ck, dkm_result **out);

/* Hierarchical training (hier.c): params checked, strategy resolved; ck as
 * for dkm__train_flat (its stages and refinement passes). */
dkm_status dkm__train_hierarchical(dkm_ctx *ctx, const dkm_params *params, dkm_source *src,
                                   dkm__ckpt *ck, dkm_result **out);

/* The strategy params ask for, with AUTO resolved. */
dkm_strategy dkm__strategy_for(const dkm_params *params);

/* Copies what the sample plan decided (rows, sample rows, storage, in
 * place) into a result, with the strategy used. */
void dkm__result_set_plan(dkm_result *res, const dkm__sample_plan *sp, dkm_strategy strategy);

/* Allocates an empty result owned by ctx (k centroids of dim, n_iter
 * statistics) that dkm_result_free() frees; NULL on failure (recorded). */
dkm_result *dkm__result_alloc(dkm_ctx *ctx, uint32_t k, uint32_t dim, uint32_t n_iter);

/* Bytes a trainer allocates beyond the sample, for the plan. */
uint64_t dkm__trainer_bytes(const dkm__sample_plan *sp, const dkm_params *params,
                            uint32_t n_workers, int resident);

/* The arithmetic of flat training (2 flops per multiply-add of the
 * assignment products) on m rows of dim. */
double dkm__flat_flops(const dkm_params *params, uint64_t m, uint32_t dim);

/* dkm_plan_training() for hierarchical training (hier.c). */
dkm_status dkm__plan_hierarchical(dkm_ctx *ctx, const dkm_params *params, const dkm_source *src,
                                  dkm_plan *out);

/* Quotas for n groups of sizes (summing to m >= k): out[g] proportional to
 * sizes[g] by largest remainder, at least 1 where sizes[g] > 0 (while k allows), at most
 * sizes[g], summing to k exactly. */
void dkm__quotas(uint32_t k, const uint64_t *sizes, uint32_t n, uint32_t *out);

/* The same, proportional to weights[g] (>= 0) instead of the sizes
 * (weights NULL, or all 0: the sizes); sizes still bound each quota. */
void dkm__quotas_weighted(uint32_t k, const double *weights, const uint64_t *sizes, uint32_t n,
                          uint32_t *out);

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
