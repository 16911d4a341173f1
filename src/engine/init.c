/*
 * init.c - the initial centroids of a run: k distinct random rows, k-means++
 * (kmeanspp.c), greedy k-means++ (kmeanspp_greedy.c) or the caller's.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "storage/sample.h"
#include "train.h"

/* --- random: k distinct rows ------------------------------------------------ */

typedef struct pick {
  uint64_t row;
  uint32_t slot; /* draw order: which centroid it becomes */
} pick;

static int pick_by_row(const void *a, const void *b) {
  const pick *x = a, *y = b;
  return x->row < y->row ? -1 : x->row > y->row;
}

/* Inserts v into an open-addressing set of capacity cap (a power of two);
 * values are stored plus one so that 0 marks a free slot. Returns 1 when v
 * was new. */
static int set_insert(uint64_t *set, uint64_t cap, uint64_t v) {
  uint64_t h = (v * UINT64_C(0x9E3779B97F4A7C15)) & (cap - 1);
  while (set[h] != 0) {
    if (set[h] == v + 1)
      return 0;
    h = (h + 1) & (cap - 1);
  }
  set[h] = v + 1;
  return 1;
}

/* Floyd's algorithm: k distinct rows of m in k draws and O(k) memory,
 * whatever m. The rows are read in increasing order (friendly to files) and
 * become centroids in draw order. */
static dkm_status init_random(dkm__trainer *t) {
  dkm_ctx *ctx = t->ctx;
  const uint32_t k = t->k, dim = t->dim;
  const uint64_t m = t->m;
  uint64_t cap = 1;
  while (cap < 2 * (uint64_t)k)
    cap <<= 1;
  uint64_t *set = dkm__calloc(ctx, (size_t)cap, sizeof *set);
  pick *picks = dkm__alloc(ctx, (size_t)k * sizeof *picks);
  if (set == NULL || picks == NULL) {
    dkm__free(ctx, set);
    dkm__free(ctx, picks);
    return dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "out of memory choosing %u random rows", k);
  }
  uint32_t n = 0;
  for (uint64_t j = m - k; j < m; j++) {
    uint64_t r = dkm__rng_below(&t->rng, j + 1);
    if (!set_insert(set, cap, r)) {
      r = j;
      set_insert(set, cap, r);
    }
    picks[n].row = r;
    picks[n].slot = n;
    n++;
  }
  assert(n == k);
  qsort(picks, k, sizeof *picks, pick_by_row);
  dkm_status s = DKM_OK;
  for (uint32_t i = 0; i < k && s == DKM_OK; i++)
    s = dkm__engine_read_row(&t->eng, picks[i].row, t->centroids + (size_t)picks[i].slot * dim);
  dkm__free(ctx, set);
  dkm__free(ctx, picks);
  return s;
}

dkm_status dkm__init_centroids(dkm__trainer *t, uint32_t run) {
  const dkm_params *p = t->params;
  const uint32_t k = t->k, dim = t->dim;
  dkm_status s = DKM_OK;
  switch (p->init) {
  case DKM_INIT_RANDOM:
    s = init_random(t);
    break;
  case DKM_INIT_KMEANSPP:
    s = dkm__init_kmeanspp(t, run);
    break;
  case DKM_INIT_GREEDY_KMEANSPP:
    s = dkm__init_greedy_kmeanspp(t, run);
    break;
  case DKM_INIT_GIVEN:
    memcpy(t->centroids, p->init_centroids, (size_t)k * dim * sizeof(float));
    break;
  }
  if (s != DKM_OK)
    return s;
  if (t->metric == DKM_METRIC_COSINE)
    for (uint32_t c = 0; c < k; c++)
      dkm__normalize(t->centroids + (size_t)c * dim, dim);
  t->eng.progress.phase = DKM_PHASE_INIT;
  t->eng.progress.run = run;
  t->eng.progress.done = t->eng.progress.total =
      p->init == DKM_INIT_KMEANSPP || p->init == DKM_INIT_GREEDY_KMEANSPP ? k : 1;
  t->eng.progress.objective = NAN;
  return dkm__engine_report(&t->eng, 1);
}
