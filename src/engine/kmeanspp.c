/*
 * kmeanspp.c - k-means++ (Arthur and Vassilvitskii, 2007): the first centre
 * is a row drawn uniformly, each next one a row drawn with probability
 * proportional to its squared distance to the nearest centre so far.
 *
 * Done literally, each of the k draws is followed by a pass over the whole
 * sample to lower the rows' distances: k passes, bound by memory (or disk)
 * bandwidth, and no work for the GEMM kernel. Here the distances are
 * brought up to date in batches, and the draws stay exact by rejection:
 *
 *  - mind[x] is row x's squared distance to the centres applied so far. The
 *    centres chosen since ("pending") can only lower it, so it is an upper
 *    bound of the distance D(x) the draw must be proportional to.
 *  - A row is proposed with probability mind[x] / sum(mind) and accepted
 *    with probability D(x) / mind[x], D(x) taking the pending centres into
 *    account (a one-row product). Proposal times acceptance is proportional
 *    to D(x): exactly the k-means++ draw, however stale mind is.
 *  - When proposals start being rejected about as often as accepted, or
 *    the pending centres reach a cap, one pass applies them all with the
 *    GEMM kernel. In all the passes do about one Lloyd iteration of
 *    arithmetic, in a handful of passes rather than k.
 *
 * What a draw depends on - the distances, their sums per tile in row order,
 * the points where batches end (counts of draws) - is the same whatever the
 * threads, the block size and the storage, and so are the centres.
 *
 * Distances are Euclidean on the rows as the metric sees them: as they are
 * for L2 and inner product, normalised for cosine.
 */
#include <math.h>
#include <string.h>

#include "gemm.h"
#include "storage/sample.h"
#include "train.h"

/* Pending centres per GEMM call in a pass: the scores of a tile against
 * them (tile_rows x 256 floats) stay in L2. */
#define KPP_CHUNK 256u
/* Tiles per group of the two-level sums a draw walks through. */
#define KPP_GROUP 64u
/* A pass is due once the rejections since the last one reach the pending
 * centres' count, and at least this many. */
#define KPP_MIN_REJECTS 16u

typedef struct kpp {
  dkm__trainer *t;
  uint32_t cap;     /* pending centres at most */
  uint32_t applied; /* centres whose distances are in mind */
  uint32_t pending; /* centres chosen after those: t->centroids[applied..] */
  int first_pass;
  float *mind;    /* m: squared distance to the nearest applied centre */
  float *aux;     /* m: ||x||^2 (L2, IP), or for cosine dkm__cosine_scale's s
                     (0 for a zero row), negated for a shifted row */
  double *tsum;   /* tiles: sum of mind over the tile, in row order */
  double *gsum;   /* groups of KPP_GROUP tiles: sum of tsum, in order */
  double total;   /* sum of gsum, in order */
  float *pnorm;   /* cap: the pending centres' squared norms */
  float *ppack;   /* cap x dim: the pending centres packed (NULL: BLAS fallback) */
  float *row;     /* dim: a proposed row */
  float *score;   /* KPP_CHUNK + dim: its scores, and room for a shifted row */
  float **scores; /* per worker: tile_rows * KPP_CHUNK + dim, the same */
} kpp;

static uint32_t pending_cap(uint32_t k) {
  /* At most about 8 passes come from the cap; more pending centres cost
   * nothing but the one-row products of the proposals. */
  uint64_t cap = DKM__MAX((uint64_t)k / 8, 256);
  cap = DKM__MIN(cap, (uint64_t)k);
  return (uint32_t)((cap + 31) / 32 * 32);
}

uint64_t dkm__kmeanspp_bytes(uint64_t m, uint32_t k, uint32_t dim, uint32_t tile_rows,
                             uint32_t n_workers) {
  uint64_t tiles = (m + tile_rows - 1) / tile_rows, groups = (tiles + KPP_GROUP - 1) / KPP_GROUP;
  uint64_t cap = pending_cap(k);
  return m * 2 * sizeof(float) + (tiles + groups) * sizeof(double) +
         cap * (dim + 1) * sizeof(float) + (2 * (uint64_t)dim + KPP_CHUNK) * sizeof(float) +
         (uint64_t)n_workers * ((uint64_t)tile_rows * KPP_CHUNK + dim) * sizeof(float);
}

/* Squared distances of rows x[0..count) (aux their aux values) to pending
 * centres [c0, c0 + n), n <= KPP_CHUNK, lowering best[r]; s is scratch for
 * count * KPP_CHUNK scores and a row (dim values). The one-row proposal
 * check and the passes call this alike. */
static void lower_by_chunk(const kpp *kp, const float *x, const float *aux, uint32_t count,
                           uint32_t c0, uint32_t n, float *s, float *best) {
  const dkm__trainer *t = kp->t;
  const uint32_t dim = t->dim, panels = (n + DKM__PANEL - 1) / DKM__PANEL;
  const int cosine = t->metric == DKM_METRIC_COSINE;
  if (kp->ppack != NULL && !cosine) {
    /* ||c||^2 - 2 x.c made in the kernel's registers, then a vector min:
     * the distance is ||x||^2 plus the smallest (float addition is
     * monotonic, so adding after the min gives the min of the sums). This
     * keeps the pass at the product's speed for small dim. */
    dkm__gemm_packed_biased(x, count, dim, kp->ppack + (size_t)c0 * dim, panels, kp->pnorm + c0,
                            2.0f, s, KPP_CHUNK);
    for (uint32_t r = 0; r < count; r++) {
      float d = aux[r] + dkm__min_value(s + (size_t)r * KPP_CHUNK, n);
      d = d > 0 ? d : 0.0f;
      best[r] = d < best[r] ? d : best[r];
    }
    return;
  }
  if (kp->ppack != NULL)
    dkm__gemm_packed(x, count, dim, kp->ppack + (size_t)c0 * dim, panels, s, KPP_CHUNK);
  else
    dkm__gemm_blas(x, count, dim, t->centroids + (size_t)(kp->applied + c0) * dim, n, s, KPP_CHUNK);
  const float *cn = kp->pnorm + c0;
  float *shifted = s + (size_t)count * KPP_CHUNK;
  for (uint32_t r = 0; r < count; r++) {
    float a = cosine ? (aux[r] != 0 ? 1.0f : 0.0f) : aux[r];
    float sc = cosine ? fabsf(aux[r]) : 1.0f;
    float *sr = s + (size_t)r * KPP_CHUNK;
    if (cosine && aux[r] < 0) {
      /* A row outside the safe range (kernel.h) gets its products again,
       * shifted. */
      int shift;
      double inv;
      (void)dkm__cosine_scale(x + (size_t)r * dim, dim, shifted, &shift, &sc, &inv);
      if (kp->ppack != NULL)
        dkm__gemm_packed(shifted, 1, dim, kp->ppack + (size_t)c0 * dim, panels, sr, KPP_CHUNK);
      else
        dkm__gemm_blas(shifted, 1, dim, t->centroids + (size_t)(kp->applied + c0) * dim, n, sr,
                       KPP_CHUNK);
    }
    float b = best[r];
    for (uint32_t c = 0; c < n; c++) {
      float d = a + cn[c] - 2.0f * sc * sr[c];
      d = d > 0 ? d : 0.0f;
      b = d < b ? d : b;
    }
    best[r] = b;
  }
}

uint32_t dkm__kmeanspp_first_rows(dkm_metric metric, const float *x, uint32_t count, uint32_t dim,
                                  float *tmp, float *aux, float *mind) {
  for (uint32_t r = 0; r < count; r++) {
    const float *xr = x + (size_t)r * dim;
    if (metric == DKM_METRIC_COSINE) {
      int shift;
      double inv;
      if (!dkm__cosine_scale(xr, dim, tmp, &shift, &aux[r], &inv))
        return r;
      if (shift != 0) /* marks the row for a shifted product */
        aux[r] = -aux[r];
    } else {
      float n2 = dkm__row_norm2(xr, dim);
      if (!dkm__norm2_ok(n2))
        return r;
      aux[r] = n2;
    }
    mind[r] = INFINITY;
  }
  return UINT32_MAX;
}

/* The pass's tile job: applies the pending centres to the tile's rows and
 * sums their distances in row order. */
static uint64_t apply_tile(void *user, uint32_t worker, uint64_t first, const float *x,
                           uint32_t count) {
  kpp *kp = user;
  const dkm__trainer *t = kp->t;
  const uint32_t dim = t->dim;
  float *mind = kp->mind + first, *aux = kp->aux + first;
  if (kp->first_pass) {
    uint32_t bad = dkm__kmeanspp_first_rows(
        t->metric, x, count, dim, kp->scores[worker] + (size_t)count * KPP_CHUNK, aux, mind);
    if (bad != UINT32_MAX)
      return first + bad;
  }
  for (uint32_t c0 = 0; c0 < kp->pending; c0 += KPP_CHUNK)
    lower_by_chunk(kp, x, aux, count, c0, DKM__MIN(KPP_CHUNK, kp->pending - c0), kp->scores[worker],
                   mind);
  double sum = 0;
  for (uint32_t r = 0; r < count; r++)
    sum += (double)mind[r];
  kp->tsum[first / t->eng.tile_rows] = sum;
  return UINT64_MAX;
}

/* Applies the pending centres to every row (one pass) and sums again. */
static dkm_status apply_pending(kpp *kp) {
  dkm__trainer *t = kp->t;
  const uint64_t tiles = (t->m + t->eng.tile_rows - 1) / t->eng.tile_rows;
  const uint64_t groups = (tiles + KPP_GROUP - 1) / KPP_GROUP;
  dkm_status s = dkm__engine_pass(&t->eng, apply_tile, NULL, kp);
  if (s != DKM_OK)
    return s;
  kp->first_pass = 0;
  kp->applied += kp->pending;
  kp->pending = 0;
  kp->total = 0;
  for (uint64_t g = 0; g < groups; g++) {
    double sum = 0;
    for (uint64_t i = g * KPP_GROUP; i < DKM__MIN((g + 1) * KPP_GROUP, tiles); i++)
      sum += kp->tsum[i];
    kp->gsum[g] = sum;
    kp->total += sum;
  }
  return DKM_OK;
}

/* The first index of p[0..n) at which acc + the prefix sum passes target,
 * adding the entries before it to *acc; or, when rounding lets none pass,
 * the last positive entry. Some entry is positive. */
static uint64_t walk(const double *p, uint64_t n, double target, double *acc) {
  uint64_t last = 0;
  for (uint64_t i = 0; i < n; i++) {
    if (p[i] > 0) {
      if (*acc + p[i] > target)
        return i;
      last = i;
    }
    *acc += p[i];
  }
  *acc -= p[last];
  return last;
}

/* Proposes a row with probability proportional to mind (sum(mind) > 0). */
static uint64_t propose(kpp *kp) {
  dkm__trainer *t = kp->t;
  const uint32_t tr = t->eng.tile_rows;
  const uint64_t tiles = (t->m + tr - 1) / tr, groups = (tiles + KPP_GROUP - 1) / KPP_GROUP;
  double target = dkm__rng_uniform(&t->rng) * kp->total, acc = 0;
  uint64_t g = walk(kp->gsum, groups, target, &acc);
  uint64_t t0 = g * KPP_GROUP;
  uint64_t tile = t0 + walk(kp->tsum + t0, DKM__MIN(KPP_GROUP, tiles - t0), target, &acc);
  uint64_t lo = tile * tr, hi = DKM__MIN(lo + tr, t->m), last = lo;
  for (uint64_t r = lo; r < hi; r++) {
    float v = kp->mind[r];
    if (v > 0) {
      acc += (double)v;
      if (acc > target)
        return r;
      last = r;
    }
  }
  return last;
}

/* Makes row (its values in kp->row) the next pending centre. */
static void add_pending(kpp *kp, uint32_t index) {
  dkm__trainer *t = kp->t;
  const uint32_t dim = t->dim;
  float *c = t->centroids + (size_t)index * dim;
  memcpy(c, kp->row, (size_t)dim * sizeof(float));
  if (t->metric == DKM_METRIC_COSINE)
    dkm__normalize(c, dim);
  uint32_t j = kp->pending++;
  kp->pnorm[j] = dkm__row_norm2(c, dim);
  if (kp->ppack != NULL) {
    /* Column j of panel j / 16 (dkm__pack's layout). */
    float *panel = kp->ppack + (size_t)(j / DKM__PANEL) * DKM__PANEL * dim;
    for (uint32_t p = 0; p < dim; p++)
      panel[(size_t)p * DKM__PANEL + j % DKM__PANEL] = c[p];
  }
}

/* Accepts the proposed row x (in kp->row) with probability D(x) / mind[x]. */
static int accept(kpp *kp, uint64_t x) {
  dkm__trainer *t = kp->t;
  float bound = kp->mind[x], d = bound;
  for (uint32_t c0 = 0; c0 < kp->pending && d > 0; c0 += KPP_CHUNK)
    lower_by_chunk(kp, kp->row, kp->aux + x, 1, c0, DKM__MIN(KPP_CHUNK, kp->pending - c0),
                   kp->score, &d);
  return dkm__rng_uniform(&t->rng) * (double)bound < (double)d;
}

static dkm_status choose(kpp *kp, uint32_t run) {
  dkm__trainer *t = kp->t;
  const uint32_t k = t->k;
  uint32_t rejects = 0;
  /* The first centre, uniformly; the first pass applies it. */
  dkm_status s = dkm__engine_read_row(&t->eng, dkm__rng_below(&t->rng, t->m), kp->row);
  if (s != DKM_OK)
    return s;
  add_pending(kp, 0);
  if (k == 1)
    return DKM_OK;
  kp->first_pass = 1;
  if ((s = apply_pending(kp)) != DKM_OK)
    return s;
  for (uint32_t chosen = 1; chosen < k;) {
    if (kp->pending == kp->cap || (rejects >= KPP_MIN_REJECTS && rejects >= kp->pending)) {
      if ((s = apply_pending(kp)) != DKM_OK)
        return s;
      rejects = 0;
    }
    /* With every row on a centre (duplicates), any row will do. */
    int degenerate = !(kp->total > 0) || !isfinite(kp->total);
    uint64_t x = degenerate ? dkm__rng_below(&t->rng, t->m) : propose(kp);
    if ((s = dkm__engine_read_row(&t->eng, x, kp->row)) != DKM_OK)
      return s;
    if (!degenerate && kp->pending > 0 && !accept(kp, x)) {
      rejects++;
      continue;
    }
    add_pending(kp, chosen++);
    t->eng.progress.phase = DKM_PHASE_INIT;
    t->eng.progress.run = run;
    t->eng.progress.iteration = 0;
    t->eng.progress.done = chosen;
    t->eng.progress.total = k;
    if ((s = dkm__engine_report(&t->eng, 0)) != DKM_OK)
      return s;
  }
  return DKM_OK;
}

dkm_status dkm__init_kmeanspp(dkm__trainer *t, uint32_t run) {
  dkm_ctx *ctx = t->ctx;
  const uint32_t dim = t->dim, tr = t->eng.tile_rows;
  const uint64_t m = t->m, tiles = (m + tr - 1) / tr, groups = (tiles + KPP_GROUP - 1) / KPP_GROUP;
  kpp kp;
  memset(&kp, 0, sizeof kp);
  kp.t = t;
  kp.cap = pending_cap(t->k);
  t->eng.progress.phase = DKM_PHASE_INIT;
  t->eng.progress.run = run;
  t->eng.progress.iteration = 0;
  t->eng.progress.objective = NAN;
  dkm_status s = DKM_OK;
  size_t bytes;
  if (!dkm__array_bytes(m, 1, sizeof(float), &bytes))
    return dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "k-means++: %llu rows are too many",
                             (unsigned long long)m);
  kp.mind = dkm__alloc_or_fail(ctx, bytes, "k-means++ distances");
  kp.aux = dkm__alloc_or_fail(ctx, bytes, "k-means++ norms");
  kp.tsum = dkm__alloc_or_fail(ctx, (size_t)tiles * sizeof(double), "k-means++ sums");
  kp.gsum = dkm__alloc_or_fail(ctx, (size_t)groups * sizeof(double), "k-means++ sums");
  /* Zeroed: the kernel reads whole panels of norms, past the pending ones. */
  kp.pnorm = dkm__calloc(ctx, kp.cap, sizeof(float));
  kp.row = dkm__alloc_or_fail(ctx, (size_t)dim * sizeof(float), "k-means++ row");
  kp.score = dkm__alloc_or_fail(ctx, (KPP_CHUNK + (size_t)dim) * sizeof(float), "k-means++ scores");
  if (kp.mind == NULL || kp.aux == NULL || kp.tsum == NULL || kp.gsum == NULL || kp.pnorm == NULL ||
      kp.row == NULL || kp.score == NULL)
    s = dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "out of memory for k-means++");
  if (s == DKM_OK && dkm__gemm_native()) {
    size_t floats = dkm__packed_floats(kp.cap, dim);
    kp.ppack = dkm__alloc_aligned(ctx, floats * sizeof(float), "k-means++ centres");
    if (kp.ppack == NULL)
      s = DKM_ERR_NOMEM;
    else /* the kernel reads whole panels: no stale garbage past the pending */
      memset(kp.ppack, 0, floats * sizeof(float));
  }
  if (s == DKM_OK) {
    kp.scores =
        dkm__engine_worker_buffers(&t->eng, (size_t)tr * KPP_CHUNK + dim, "k-means++ scores");
    if (kp.scores == NULL)
      s = DKM_ERR_NOMEM;
  }
  if (s == DKM_OK)
    s = choose(&kp, run);
  dkm__engine_free_worker_buffers(&t->eng, kp.scores);
  dkm__free(ctx, kp.mind);
  dkm__free(ctx, kp.aux);
  dkm__free(ctx, kp.tsum);
  dkm__free(ctx, kp.gsum);
  dkm__free(ctx, kp.pnorm);
  dkm__free(ctx, kp.row);
  dkm__free(ctx, kp.score);
  dkm__free_aligned(ctx, kp.ppack);
  return s;
}
