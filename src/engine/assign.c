/*
 * assign.c - dkm_assign(): the nearest centroid of every row of a source,
 * with the same kernel and tiles as training, so that it gives exactly the
 * labels training's last assignment pass gave for the same rows.
 */
#include <math.h>
#include <string.h>

#include "engine.h"
#include "gemm.h"
#include "kernel.h"
#include "storage/sample.h"

/* Rows per block when none is given: about 8 MiB of float32. */
#define AUTO_BLOCK_BYTES (UINT64_C(8) << 20)

typedef struct assigner {
  dkm__engine eng;
  dkm__kernel kern;
  float **scratch;
  int32_t *labels;
  float *distances;
} assigner;

static uint64_t assign_tile(void *user, uint32_t worker, uint64_t first, const float *x,
                            uint32_t count) {
  assigner *a = user;
  /* Without a distances array the kernel still needs somewhere to put
   * them: the worker's scratch has room for a tile's worth after what the
   * kernel itself uses. */
  float *dist = a->distances != NULL ? a->distances + first
                                     : a->scratch[worker] + dkm__kernel_scratch_floats(&a->kern);
  uint32_t bad =
      dkm__assign_tile(&a->kern, x, count, a->scratch[worker], a->labels + first, dist, NULL);
  return bad == UINT32_MAX ? UINT64_MAX : first + bad;
}

dkm_status dkm_assign(dkm_ctx *ctx, const dkm_params *params, dkm_source *src,
                      const float *centroids, uint32_t k, uint32_t dim, int32_t *labels,
                      float *distances) {
  if (ctx == NULL)
    return DKM_ERR_PARAM;
  dkm_ctx_clear_error(ctx);
  if (params == NULL || src == NULL || centroids == NULL || labels == NULL)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "assign: %s is NULL",
                             params == NULL      ? "params"
                             : src == NULL       ? "src"
                             : centroids == NULL ? "centroids"
                                                 : "labels");
  if ((unsigned)params->metric > DKM_METRIC_IP)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "metric is %d; it must be l2, cosine or ip",
                             (int)params->metric);
  /* The other fields are checked as training checks them; k is the
   * argument here, so give the check one that passes. */
  dkm_params p = *params;
  p.k = 1;
  p.init = DKM_INIT_RANDOM;
  dkm_status s = dkm_params_check(ctx, &p);
  if (s != DKM_OK)
    return s;
  if (k == 0 || k > (uint32_t)DKM_MAX_K)
    return dkm_ctx_set_error(
        ctx, DKM_ERR_PARAM, "assign: k is %u; it must be 1 to %d (labels are int32)", k, DKM_MAX_K);
  if (dim != src->dim)
    return dkm_ctx_set_error(ctx, DKM_ERR_MISMATCH,
                             "%s: rows have %u values but the centroids have %u", src->name,
                             src->dim, dim);
  if (dim == 0)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "%s: dim is 0", src->name);
  size_t cbytes;
  if (!dkm__array_bytes(k, dim, sizeof(float), &cbytes))
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "assign: %u centroids of %u values overflow", k,
                             dim);
  /* The centroids are held to the rows' check (sample.h). */
  if ((s = dkm__check_centroids(ctx, DKM_ERR_DATA, "centroids", centroids, k, dim,
                                params->metric)) != DKM_OK)
    return s;
  if (src->rows == 0) /* a custom source may be empty: nothing to label */
    return DKM_OK;

  const uint32_t tr = dkm__tile_rows(k, dim);
  uint64_t b = params->block_rows != 0 ? params->block_rows
                                       : AUTO_BLOCK_BYTES / ((uint64_t)dim * sizeof(float));
  b = DKM__MIN(DKM__MAX(b, 1), src->rows);
  b = (b + tr - 1) / tr * tr;

  assigner a;
  memset(&a, 0, sizeof a);
  a.labels = labels;
  a.distances = distances;
  float *cnorm = dkm__alloc_or_fail(ctx, (size_t)k * sizeof(float), "the centroid norms");
  float *copy = NULL;
  if (cnorm == NULL)
    return DKM_ERR_NOMEM;
  const float *use = centroids;
  if (params->metric == DKM_METRIC_COSINE) {
    /* Cosine needs unit centroids. Those dkm_train returns already are, and
     * normalising them again could move their last bits (and change labels
     * of near ties), so only centroids clearly off unit norm are scaled. */
    copy = dkm__alloc_aligned(ctx, cbytes, "the normalised centroids");
    if (copy == NULL) {
      dkm__free(ctx, cnorm);
      return DKM_ERR_NOMEM;
    }
    memcpy(copy, centroids, cbytes);
    for (uint32_t c = 0; c < k; c++) {
      float *row = copy + (size_t)c * dim;
      double n2 = 0;
      for (uint32_t j = 0; j < dim; j++)
        n2 += (double)row[j] * row[j];
      if (n2 != 0 && fabs(n2 - 1.0) > 1e-5)
        dkm__normalize(row, dim);
    }
    use = copy;
  }
  dkm__centroid_norms(use, k, dim, cnorm);
  float *packed = NULL;
  float *bias =
      dkm__alloc_aligned(ctx, dkm__packed_floats(k, 1) * sizeof(float), "the centroid terms");
  if (bias != NULL && dkm__gemm_native())
    packed =
        dkm__alloc_aligned(ctx, dkm__packed_floats(k, dim) * sizeof(float), "the packed centroids");
  if (bias == NULL || (packed == NULL && dkm__gemm_native())) {
    dkm__free(ctx, cnorm);
    dkm__free_aligned(ctx, copy);
    dkm__free_aligned(ctx, bias);
    return DKM_ERR_NOMEM;
  }
  dkm__kernel_bias(params->metric, cnorm, k, bias);
  if (packed != NULL)
    dkm__pack(use, k, dim, packed);
  dkm__kernel_init(&a.kern, k, dim, params->metric, use, cnorm, packed, bias);

  s = dkm__engine_open(&a.eng, ctx, params, src, tr, b);
  if (s == DKM_OK) {
    a.scratch = dkm__calloc(ctx, a.eng.n_workers, sizeof(float *));
    if (a.scratch == NULL)
      s = dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "out of memory allocating the tile scratch");
    /* Room for the scores, and after them for distances nobody asked for. */
    size_t floats = dkm__kernel_scratch_floats(&a.kern) + tr;
    for (uint32_t w = 0; s == DKM_OK && w < a.eng.n_workers; w++) {
      a.scratch[w] = dkm__alloc_aligned(ctx, floats * sizeof(float), "a worker's tile scratch");
      if (a.scratch[w] == NULL)
        s = DKM_ERR_NOMEM;
    }
  }
  if (s == DKM_OK) {
    a.eng.progress.phase = DKM_PHASE_ASSIGN;
    s = dkm__engine_pass(&a.eng, assign_tile, NULL, &a);
  }
  if (s == DKM_OK) {
    a.eng.progress.done = a.eng.progress.total = src->rows;
    s = dkm__engine_report(&a.eng, 1);
  }
  if (a.scratch != NULL)
    for (uint32_t w = 0; w < a.eng.n_workers; w++)
      dkm__free_aligned(ctx, a.scratch[w]);
  dkm__free(ctx, a.scratch);
  dkm__engine_close(&a.eng);
  dkm__free(ctx, cnorm);
  dkm__free_aligned(ctx, copy);
  dkm__free_aligned(ctx, packed);
  dkm__free_aligned(ctx, bias);
  return s;
}
