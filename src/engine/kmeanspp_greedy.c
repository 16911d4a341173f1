/*
 * kmeanspp_greedy.c - greedy k-means++ (DKM_INIT_GREEDY_KMEANSPP), as
 * scikit-learn does it: better starts than plain k-means++ for about 2 + ln k
 * times its arithmetic, and one pass over the sample per centre.
 */
#include <math.h>
#include <string.h>

#include "gemm.h"
#include "storage/sample.h"
#include "train.h"

/*
 * Each step draws L = 2 + floor(ln k) candidates with probability
 * proportional to the squared distance to the nearest centre so far and keeps
 * the one that lowers the potential (sum of those distances) most, as
 * scikit-learn does. Distances are Euclidean on the rows as the metric sees
 * them: as they are for L2 and inner product, normalised for cosine.
 *
 * One step is one pass over the sample: the tile job applies the previous
 * step's winner to each row's nearest distance, computes the distances to
 * the L new candidates with one GEMM, and sums each candidate's potential per
 * tile in row order. Potentials are then added tile by tile in tile order,
 * so the choice does not depend on threads or blocks. The per-tile sums of
 * the winner also let the next draw find its row without a prefix sum over
 * the whole sample.
 */
typedef struct kpp {
  dkm__trainer *t;
  uint32_t lmax;      /* candidates per step at most */
  uint32_t l;         /* candidates this step */
  uint32_t prev_l;    /* candidates of the previous step (0: none yet) */
  uint32_t prev_best; /* the previous step's winner */
  int first_pass;
  float *mind;          /* m: squared distance to the nearest centre */
  float *aux;           /* m: as in kmeanspp.c (dkm__kmeanspp_first_rows) */
  float *cand;          /* m * lmax: distances to this step's candidates */
  double *pot;          /* tiles * lmax: per-tile potentials */
  float *crow;          /* lmax * dim: the candidates (normalised for cosine) */
  float *cpack;         /* the candidates packed for the GEMM kernel (NULL: BLAS) */
  uint32_t ldo;         /* row stride of the scores: lmax rounded up to a panel */
  float *cn;            /* lmax: their squared norms */
  uint64_t *crow_index; /* lmax: their rows */
  float **scores;       /* per worker: tile_rows * ldo scores and a row */
} kpp;

uint64_t dkm__greedy_kmeanspp_bytes(uint64_t m, uint32_t k, uint32_t dim, uint32_t tile_rows) {
  uint64_t l = 2 + (uint64_t)log((double)k);
  uint64_t tiles = (m + tile_rows - 1) / tile_rows;
  uint64_t lp = (l + 31) / 32 * 32; /* packed candidates */
  return m * (2 + l) * sizeof(float) + tiles * l * sizeof(double) +
         (l + lp) * (dim + 1) * sizeof(float) + dim * sizeof(float);
}

static uint64_t kpp_tile(void *user, uint32_t worker, uint64_t first, const float *x,
                         uint32_t count) {
  kpp *kp = user;
  dkm__trainer *t = kp->t;
  const uint32_t dim = t->dim, l = kp->l;
  const int cosine = t->metric == DKM_METRIC_COSINE;
  float *mind = kp->mind + first, *aux = kp->aux + first;
  if (kp->first_pass) {
    uint32_t bad = dkm__kmeanspp_first_rows(
        t->metric, x, count, dim, kp->scores[worker] + (size_t)count * kp->ldo, aux, mind);
    if (bad != UINT32_MAX)
      return first + bad;
  } else if (kp->prev_l > 0) {
    const float *pc = kp->cand + first * kp->lmax + kp->prev_best;
    for (uint32_t r = 0; r < count; r++) {
      float d = pc[(size_t)r * kp->lmax];
      if (d < mind[r])
        mind[r] = d;
    }
  }
  float *s = kp->scores[worker];
  const uint32_t ldo = kp->ldo;
  if (kp->cpack != NULL)
    dkm__gemm_packed(x, count, dim, kp->cpack, (l + DKM__PANEL - 1) / DKM__PANEL, s, ldo);
  else
    dkm__gemm_blas(x, count, dim, kp->crow, l, s, ldo);
  double *pot = kp->pot + (first / t->eng.tile_rows) * kp->lmax;
  for (uint32_t c = 0; c < l; c++)
    pot[c] = 0;
  /* The row stride of cand is always lmax, so a tile only ever touches its
   * own rows' slots, whatever l was in the previous step. */
  float *cand = kp->cand + first * kp->lmax;
  float *shifted = s + (size_t)count * ldo;
  for (uint32_t r = 0; r < count; r++) {
    float a = cosine ? (aux[r] != 0 ? 1.0f : 0.0f) : aux[r];
    float sc = cosine ? fabsf(aux[r]) : 1.0f;
    if (cosine && aux[r] < 0) {
      /* A row outside the safe range (kernel.h) gets its products again,
       * shifted. */
      int shift;
      double inv;
      (void)dkm__cosine_scale(x + (size_t)r * dim, dim, shifted, &shift, &sc, &inv);
      if (kp->cpack != NULL)
        dkm__gemm_packed(shifted, 1, dim, kp->cpack, (l + DKM__PANEL - 1) / DKM__PANEL,
                         s + (size_t)r * ldo, ldo);
      else
        dkm__gemm_blas(shifted, 1, dim, kp->crow, l, s + (size_t)r * ldo, ldo);
    }
    for (uint32_t c = 0; c < l; c++) {
      float d = a + kp->cn[c] - 2.0f * sc * s[(size_t)r * ldo + c];
      d = d > 0 ? d : 0.0f;
      cand[(size_t)r * kp->lmax + c] = d;
      pot[c] += (double)(d < mind[r] ? d : mind[r]);
    }
  }
  return UINT64_MAX;
}

/* Loads the candidates' rows (normalised for cosine) and norms. */
static dkm_status load_candidates(kpp *kp) {
  dkm__trainer *t = kp->t;
  for (uint32_t c = 0; c < kp->l; c++) {
    float *row = kp->crow + (size_t)c * t->dim;
    dkm_status s = dkm__engine_read_row(&t->eng, kp->crow_index[c], row);
    if (s != DKM_OK)
      return s;
    if (t->metric == DKM_METRIC_COSINE)
      dkm__normalize(row, t->dim);
    kp->cn[c] = dkm__row_norm2(row, t->dim);
  }
  if (kp->cpack != NULL)
    dkm__pack(kp->crow, kp->l, t->dim, kp->cpack);
  return DKM_OK;
}

/* Draws a row with probability proportional to its current nearest
 * distance, total being their sum. */
static uint64_t draw_row(kpp *kp, double total) {
  dkm__trainer *t = kp->t;
  const uint64_t m = t->m;
  const uint32_t tr = t->eng.tile_rows;
  if (!(total > 0) || !isfinite(total)) /* every row sits on a centre */
    return dkm__rng_below(&t->rng, m);
  double target = dkm__rng_uniform(&t->rng) * total, acc = 0;
  uint64_t tiles = (m + tr - 1) / tr, tile = tiles - 1;
  for (uint64_t i = 0; i < tiles; i++) {
    double p = kp->pot[i * kp->lmax + kp->prev_best];
    if (acc + p > target) {
      tile = i;
      break;
    }
    acc += p;
  }
  uint64_t lo = tile * tr, hi = DKM__MIN(lo + tr, m), last = UINT64_MAX;
  for (uint64_t r = lo; r < hi; r++) {
    float d = kp->cand[r * kp->lmax + kp->prev_best];
    float v = d < kp->mind[r] ? d : kp->mind[r];
    if (v > 0)
      last = r;
    acc += (double)v;
    if (acc > target && v > 0)
      return r;
  }
  return last != UINT64_MAX ? last : dkm__rng_below(&t->rng, m);
}

dkm_status dkm__init_greedy_kmeanspp(dkm__trainer *t, uint32_t run) {
  dkm_ctx *ctx = t->ctx;
  const uint32_t k = t->k, dim = t->dim, tr = t->eng.tile_rows;
  const uint64_t m = t->m, tiles = (m + tr - 1) / tr;
  kpp kp;
  memset(&kp, 0, sizeof kp);
  kp.t = t;
  kp.lmax = 2 + (uint32_t)log((double)k);
  dkm_status s = DKM_OK;
  size_t bytes;
  if (!dkm__array_bytes(m, kp.lmax, sizeof(float), &bytes))
    return dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "k-means++: %llu rows are too many",
                             (unsigned long long)m);
  kp.cand = dkm__alloc_or_fail(ctx, bytes, "k-means++ distances");
  kp.mind = dkm__alloc_or_fail(ctx, (size_t)m * sizeof(float), "k-means++ distances");
  kp.aux = dkm__alloc_or_fail(ctx, (size_t)m * sizeof(float), "k-means++ norms");
  kp.pot = dkm__alloc_or_fail(ctx, (size_t)tiles * kp.lmax * sizeof(double), "k-means++ sums");
  kp.crow = dkm__alloc_or_fail(ctx, (size_t)kp.lmax * dim * sizeof(float), "k-means++ candidates");
  kp.cn = dkm__alloc_or_fail(ctx, (size_t)kp.lmax * sizeof(float), "k-means++ candidates");
  kp.crow_index = dkm__alloc_or_fail(ctx, (size_t)kp.lmax * sizeof(uint64_t), "k-means++ rows");
  kp.ldo = (kp.lmax + DKM__PANEL - 1) / DKM__PANEL * DKM__PANEL;
  if (dkm__gemm_native()) {
    kp.cpack = dkm__alloc_aligned(ctx, dkm__packed_floats(kp.lmax, dim) * sizeof(float),
                                  "k-means++ candidates");
    if (kp.cpack == NULL)
      s = DKM_ERR_NOMEM;
  }
  if (kp.cand == NULL || kp.mind == NULL || kp.aux == NULL || kp.pot == NULL || kp.crow == NULL ||
      kp.cn == NULL || kp.crow_index == NULL)
    s = dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "out of memory for k-means++");
  if (s == DKM_OK) {
    kp.scores = dkm__engine_worker_buffers(&t->eng, (size_t)tr * kp.ldo + dim, "k-means++ scores");
    if (kp.scores == NULL)
      s = DKM_ERR_NOMEM;
  }

  t->eng.progress.phase = DKM_PHASE_INIT;
  t->eng.progress.run = run;
  t->eng.progress.iteration = 0;
  t->eng.progress.objective = NAN;
  if (s == DKM_OK) {
    /* The first centre, uniformly; one pass for the distances to it. */
    kp.l = 1;
    kp.crow_index[0] = dkm__rng_below(&t->rng, m);
    kp.first_pass = 1;
    s = load_candidates(&kp);
    if (s == DKM_OK)
      s = dkm__engine_pass(&t->eng, kpp_tile, NULL, &kp);
    if (s == DKM_OK)
      s = dkm__engine_read_row(&t->eng, kp.crow_index[0], t->centroids);
    kp.first_pass = 0;
    kp.prev_l = 1;
    kp.prev_best = 0;
  }
  double total = 0;
  for (uint64_t i = 0; s == DKM_OK && i < tiles; i++)
    total += kp.pot[i * kp.lmax];
  for (uint32_t step = 1; s == DKM_OK && step < k; step++) {
    /* Drawing reads the previous step's distances; the pass then overwrites
     * them, so the draws come first. */
    uint32_t l = kp.lmax;
    for (uint32_t c = 0; c < l; c++)
      kp.crow_index[c] = draw_row(&kp, total);
    kp.l = l;
    s = load_candidates(&kp);
    if (s != DKM_OK)
      break;
    /* Each tile applies the previous winner to its rows' nearest distances
     * before overwriting their candidate distances. */
    s = dkm__engine_pass(&t->eng, kpp_tile, NULL, &kp);
    if (s != DKM_OK)
      break;
    uint32_t best = 0;
    double best_pot = INFINITY;
    for (uint32_t c = 0; c < l; c++) {
      double p = 0;
      for (uint64_t i = 0; i < tiles; i++)
        p += kp.pot[i * kp.lmax + c];
      if (p < best_pot) {
        best_pot = p;
        best = c;
      }
    }
    s = dkm__engine_read_row(&t->eng, kp.crow_index[best], t->centroids + (size_t)step * dim);
    kp.prev_l = l;
    kp.prev_best = best;
    total = best_pot;
    if (s == DKM_OK) {
      t->eng.progress.phase = DKM_PHASE_INIT;
      t->eng.progress.done = step + 1;
      t->eng.progress.total = k;
      s = dkm__engine_report(&t->eng, 0);
    }
  }
  dkm__engine_free_worker_buffers(&t->eng, kp.scores);
  dkm__free(ctx, kp.cand);
  dkm__free(ctx, kp.mind);
  dkm__free(ctx, kp.aux);
  dkm__free(ctx, kp.pot);
  dkm__free(ctx, kp.crow);
  dkm__free_aligned(ctx, kp.cpack);
  dkm__free(ctx, kp.cn);
  dkm__free(ctx, kp.crow_index);
  return s;
}
