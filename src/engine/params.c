/*
 * params.c - default parameters and their validation.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

/* More threads than this is a mistake (a negative number cast to unsigned,
 * usually), not a machine. */
#define DKM__MAX_THREADS 4096u

/* Refinement passes are full passes over the sample; more than this is a
 * typo, not a plan. */
#define DKM__MAX_REFINE 1000u

void dkm_params_init(dkm_params *params) {
  if (params == NULL)
    return;
  memset(params, 0, sizeof *params);
  params->k = 0;
  params->max_iter = 25;
  params->tol = 1e-4;
  params->n_redo = 1;
  params->seed = DKM_DEFAULT_SEED;
  params->init = DKM_INIT_KMEANSPP;
  params->init_centroids = NULL;
  params->metric = DKM_METRIC_L2;
  params->max_points_per_centroid = 256;
  params->n_threads = 0;
  params->block_rows = 0;
  params->storage = DKM_STORAGE_AUTO;
  params->memory_limit = 0;
  params->tmp_dir = NULL;
  params->progress = NULL;
  params->progress_user = NULL;
  params->strategy = DKM_STRATEGY_AUTO;
  params->refine = 2;
  params->balance = 0;
}

dkm_status dkm_params_check(dkm_ctx *ctx, const dkm_params *params) {
  dkm_ctx_clear_error(ctx);
  if (params == NULL)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "params is NULL");
  if (params->k == 0)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "k must be at least 1");
  if (params->k > (uint32_t)DKM_MAX_K)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM,
                             "k is %u; it must be at most %d (labels are int32)", params->k,
                             DKM_MAX_K);
  if (params->max_iter == 0)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "max_iter must be at least 1");
  if (!(params->tol >= 0) || isinf(params->tol))
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "tol is %g; it must be a finite number >= 0",
                             params->tol);
  if (params->n_redo == 0)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "n_redo must be at least 1");
  if ((unsigned)params->init > DKM_INIT_GREEDY_KMEANSPP)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM,
                             "init is %d; it must be random, kmeans++, greedy-kmeans++ or given",
                             (int)params->init);
  if (params->init == DKM_INIT_GIVEN && params->init_centroids == NULL)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM,
                             "init is given but init_centroids is NULL (k * dim floats needed)");
  if ((unsigned)params->metric > DKM_METRIC_IP)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "metric is %d; it must be l2, cosine or ip",
                             (int)params->metric);
  if (params->n_threads > DKM__MAX_THREADS)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "n_threads is %u; it must be at most %u",
                             params->n_threads, DKM__MAX_THREADS);
  if ((unsigned)params->storage > DKM_STORAGE_DISK)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "storage is %d; it must be auto, memory or disk",
                             (int)params->storage);
  if ((unsigned)params->strategy > DKM_STRATEGY_HIERARCHICAL)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM,
                             "strategy is %d; it must be auto, flat or hierarchical",
                             (int)params->strategy);
  if (params->refine > DKM__MAX_REFINE)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "refine is %u; it must be at most %u",
                             params->refine, DKM__MAX_REFINE);
  if (params->resume && params->checkpoint == NULL)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "resume is set but checkpoint is NULL");
  if (params->checkpoint != NULL && params->checkpoint[0] == '\0')
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "checkpoint is empty (use NULL for none)");
  if (params->tmp_dir != NULL && params->tmp_dir[0] == '\0')
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "tmp_dir is empty (use NULL for /tmp)");
  return DKM_OK;
}
