/*
 * hier.c - hierarchical training, composed of the one exact engine:
 *
 *   1. the sample, drawn as flat training draws it (sample.c);
 *   2. coarse centroids: a flat training of about sqrt(k) centroids on the
 *      sample (which subsamples it to max_points_per_centroid each);
 *   3. routing: one pass of the engine labels every sample row with its
 *      nearest coarse centroid and appends it to that group (groups.c: in
 *      memory or a nameless spill, bounded memory either way);
 *   4. quotas proportional to the group sizes, summing to k exactly;
 *   5. each group trained into its quota of fine centroids by a flat
 *      training (or a hierarchical one again where the quota is large);
 *   6. refinement: flat training's Lloyd loop over every row with the fine
 *      centroids as given initial centroids, where a hook labels each row
 *      against the fine centroids of its DKM_REFINE_CANDIDATES nearest
 *      coarse groups only.
 *
 * Every step is a function of the rows and the seed, and every distance is
 * the kernel's (the same bits on any tile and thread), so the result is the
 * same for any thread count, block size and storage.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "gemm.h"
#include "storage/groups.h"
#include "storage/sample.h"
#include "storage/spill.h"
#include "train.h"

/* --- sizes ------------------------------------------------------------------ */

/* A group whose quota is above SKEWED_FACTOR times the mean quota (and at
 * least SKEWED_MIN_QUOTA) is trained hierarchically in turn. */
#define SKEWED_FACTOR 4u
#define SKEWED_MIN_QUOTA 64u

/* Coarse centroids for k fine ones: round(sqrt(k)), so that a group's
 * quota is about as large as the number of groups (the arithmetic of the
 * routing and of the groups' training balance). */
static uint32_t coarse_k_for(uint32_t k) {
  uint32_t kc = (uint32_t)floor(sqrt((double)k) + 0.5);
  return DKM__MAX(kc, 1u);
}

void dkm__quotas_weighted(uint32_t k, const double *weights, const uint64_t *sizes, uint32_t n,
                          uint32_t *out) {
  uint64_t m = 0;
  double total = 0;
  for (uint32_t g = 0; g < n; g++) {
    m += sizes[g];
    total += sizes[g] > 0 && weights != NULL ? weights[g] : 0;
  }
  assert(m >= k);
  /* No weights, or all 0 (every group one repeated row): by size. */
  const int by_size = !(total > 0);
  if (by_size)
    total = (double)m;
  /* Largest remainder: the floor of each share (at least 1 for a group
   * with rows, at most its rows), then units by largest remainder where
   * short (or taken back by smallest remainder where over). Ties: lower
   * group first. */
  uint64_t sum = 0;
  for (uint32_t g = 0; g < n; g++) {
    double w = sizes[g] == 0 ? 0 : by_size ? (double)sizes[g] : weights[g];
    double ideal = (double)k * w / total;
    uint64_t q = (uint64_t)floor(ideal);
    if (sizes[g] > 0 && q == 0)
      q = 1;
    q = DKM__MIN(q, sizes[g]);
    out[g] = (uint32_t)q;
    sum += q;
  }
  uint32_t floor_q = 1; /* the least a group with rows keeps when taking back */
  while (sum != k) {
    uint32_t pick = UINT32_MAX;
    double best = 0;
    for (uint32_t g = 0; g < n; g++) {
      double w = sizes[g] == 0 ? 0 : by_size ? (double)sizes[g] : weights[g];
      double rem = (double)k * w / total - (double)out[g];
      if (sum < k ? out[g] < sizes[g] && (pick == UINT32_MAX || rem > best)
                  : out[g] > floor_q && (pick == UINT32_MAX || rem < best)) {
        pick = g;
        best = rem;
      }
    }
    if (pick == UINT32_MAX && sum > k && floor_q == 1) {
      /* More groups with rows than k: some get none after all. */
      floor_q = 0;
      continue;
    }
    assert(pick != UINT32_MAX);
    if (sum < k) {
      out[pick]++;
      sum++;
    } else {
      out[pick]--;
      sum--;
    }
  }
}

void dkm__quotas(uint32_t k, const uint64_t *sizes, uint32_t n, uint32_t *out) {
  dkm__quotas_weighted(k, NULL, sizes, n, out);
}

/* A seed for part `part` (0 coarse, 1 + g group g) of a run seeded with
 * seed: its own stream of the library's generator, far from the streams a
 * training uses itself. */
static uint64_t part_seed(uint64_t seed, uint64_t part) {
  dkm__rng r;
  dkm__rng_seed(&r, seed, UINT64_C(1) << 62 | part);
  return dkm__rng_next(&r);
}

/* The sample plan of hierarchical training: flat training's, except that
 * in memory the grouped copy of the sample sits beside the sample while it
 * is routed, so AUTO compares twice the sample with the budget (once when
 * training reads the input in place). */
static dkm_status sample_plan(dkm_ctx *ctx, const dkm_params *params, const dkm_source *src,
                              dkm__sample_plan *sp) {
  const uint32_t tr = dkm__tile_rows(params->k, src->dim);
  dkm_status s = dkm__sample_plan_make(ctx, params, src, tr, sp);
  if (s != DKM_OK || params->storage != DKM_STORAGE_AUTO || sp->storage != DKM_STORAGE_MEMORY)
    return s;
  uint64_t need = sp->from_source ? sp->sample_bytes : 2 * sp->sample_bytes;
  if (sp->memory_limit == 0 || need <= sp->memory_limit)
    return DKM_OK;
  dkm_params disk = *params;
  disk.storage = DKM_STORAGE_DISK;
  s = dkm__sample_plan_make(ctx, &disk, src, tr, sp);
  return s;
}

/* --- progress --------------------------------------------------------------- */

/* Passes a nested training's reports on, saying which part they are about.
 * A report that is already about a part (from a group trained
 * hierarchically in turn) goes on one level deeper. */
typedef struct relay {
  const dkm_params *outer;
  dkm_part part;
  uint32_t group, n_groups;
  int refine; /* the refinement's Lloyd loop: ITERATE is REFINE, INIT is not shown */
} relay;

static int relay_report(void *user, const dkm_progress *p) {
  const relay *r = user;
  dkm_progress q = *p;
  if (r->refine) {
    if (p->phase == DKM_PHASE_INIT)
      return 0;
    if (p->phase == DKM_PHASE_ITERATE)
      q.phase = DKM_PHASE_REFINE;
  } else if (p->part != DKM_PART_WHOLE || p->level != 0) {
    q.level = p->level + 1;
  } else {
    q.part = r->part;
    q.group = r->group;
    q.n_groups = r->n_groups;
  }
  return r->outer->progress(r->outer->progress_user, &q);
}

static void relay_to(dkm_params *inner, relay *r, const dkm_params *outer, dkm_part part,
                     uint32_t group, uint32_t n_groups, int refine) {
  r->outer = outer;
  r->part = part;
  r->group = group;
  r->n_groups = n_groups;
  r->refine = refine;
  if (outer->progress != NULL) {
    inner->progress = relay_report;
    inner->progress_user = r;
  }
}

/* --- routing ------------------------------------------------------------------ */

typedef struct router {
  dkm__engine eng;
  dkm__kernel kern;
  float **scratch;
  int32_t *labels; /* block_rows */
  float *dist;
  dkm__groups *groups;
  double *cost; /* per group: the sum of its rows' distances to its coarse centroid */
} router;

static uint64_t route_tile(void *user, uint32_t worker, uint64_t first, const float *x,
                           uint32_t count) {
  router *r = user;
  uint64_t off = first - r->eng.block_first;
  uint32_t bad = dkm__assign_tile(&r->kern, x, count, r->scratch[worker], r->labels + off,
                                  r->dist + off, NULL);
  return bad == UINT32_MAX ? UINT64_MAX : first + bad;
}

/* In row order, on the calling thread: the groups see the rows in sample
 * order. */
static dkm_status route_block(void *user, uint64_t first, const float *x, uint64_t count) {
  router *r = user;
  (void)first;
  for (uint64_t i = 0; i < count; i++) {
    dkm_status s =
        dkm__groups_add(r->eng.ctx, r->groups, (uint32_t)r->labels[i], x + (size_t)i * r->eng.dim);
    if (s != DKM_OK)
      return s;
    r->cost[r->labels[i]] += (double)r->dist[i];
  }
  return DKM_OK;
}

/* Routes every row of sample into groups by the kc coarse centroids, and
 * sums each group's distances into cost (kc, zeroed here). */
static dkm_status route(dkm_ctx *ctx, const dkm_params *params, dkm_source *sample,
                        uint64_t block_rows, const float *coarse, uint32_t kc, dkm__groups *groups,
                        double *cost) {
  const uint32_t dim = sample->dim;
  router r;
  memset(&r, 0, sizeof r);
  r.groups = groups;
  r.cost = cost;
  memset(cost, 0, (size_t)kc * sizeof *cost);
  const uint32_t tr = dkm__tile_rows(kc, dim);
  uint64_t b = DKM__MAX(block_rows / tr, 1) * tr;
  float *cnorm = dkm__alloc_or_fail(ctx, (size_t)kc * sizeof(float), "the coarse norms");
  float *bias =
      dkm__alloc_aligned(ctx, dkm__packed_floats(kc, 1) * sizeof(float), "the coarse terms");
  float *packed = NULL;
  dkm_status s = cnorm != NULL && bias != NULL ? DKM_OK : DKM_ERR_NOMEM;
  if (s == DKM_OK && dkm__gemm_native()) {
    packed = dkm__alloc_aligned(ctx, dkm__packed_floats(kc, dim) * sizeof(float),
                                "the packed coarse centroids");
    if (packed == NULL)
      s = DKM_ERR_NOMEM;
  }
  r.labels = dkm__alloc_or_fail(ctx, (size_t)b * sizeof(int32_t), "the block's labels");
  r.dist = dkm__alloc_or_fail(ctx, (size_t)b * sizeof(float), "the block's distances");
  if (r.labels == NULL || r.dist == NULL)
    s = DKM_ERR_NOMEM;
  int opened = 0;
  if (s == DKM_OK) {
    dkm__centroid_norms(coarse, kc, dim, cnorm);
    dkm__kernel_bias(params->metric, cnorm, kc, bias);
    if (packed != NULL)
      dkm__pack(coarse, kc, dim, packed);
    dkm__kernel_init(&r.kern, kc, dim, params->metric, coarse, cnorm, packed, bias);
    s = dkm__engine_open(&r.eng, ctx, params, sample, tr, b);
    opened = s == DKM_OK;
  }
  if (s == DKM_OK) {
    r.scratch =
        dkm__engine_worker_buffers(&r.eng, dkm__kernel_scratch_floats(&r.kern), "the tile scratch");
    if (r.scratch == NULL)
      s = DKM_ERR_NOMEM;
  }
  if (s == DKM_OK) {
    r.eng.progress.phase = DKM_PHASE_ROUTE;
    r.eng.progress.max_iter = 1;
    s = dkm__engine_pass(&r.eng, route_tile, route_block, &r);
    if (s == DKM_OK) {
      r.eng.progress.done = r.eng.progress.total = sample->rows;
      s = dkm__engine_report(&r.eng, 1);
    }
  }
  if (opened) {
    dkm__engine_free_worker_buffers(&r.eng, r.scratch);
    dkm__engine_close(&r.eng);
  }
  dkm__free(ctx, r.labels);
  dkm__free(ctx, r.dist);
  dkm__free(ctx, cnorm);
  dkm__free_aligned(ctx, bias);
  dkm__free_aligned(ctx, packed);
  return s;
}

/* --- refinement: each row against its nearest groups' fine centroids ------ */

typedef struct group_kernel {
  dkm__kernel kern;
  float *packed, *bias, *cnorm;
} group_kernel;

typedef struct refine_scratch {
  float *scores;    /* tile_rows * kc_pad: the rows' coarse scores */
  uint32_t *cand;   /* tile_rows * p: each row's groups, nearest first */
  uint64_t *pairs;  /* tile_rows * p: (group, row) to visit group by group */
  float *best;      /* tile_rows */
  float *gathered;  /* gather_rows * dim */
  int32_t *glabels; /* gather_rows */
  float *gdist;     /* gather_rows */
  float *kscratch;  /* the largest group kernel's scratch */
  float *shifted;   /* dim: a cosine row brought into range */
  uint32_t *rows;   /* gather_rows: tile rows of the gathered ones */
} refine_scratch;

typedef struct refiner {
  dkm_ctx *ctx;
  uint32_t k, dim, kc, p;
  dkm_metric metric;
  const uint32_t *first; /* kc + 1: each group's fine centroids */
  /* The coarse centroids, packed for scoring (or row-major for BLAS). */
  const float *coarse;
  float *cpacked, *cbias, *cnorm;
  uint32_t kc_pad;
  group_kernel *gk; /* kc */
  uint32_t tile_rows, gather_rows;
  uint32_t n_scratch;
  refine_scratch *ws; /* per worker */
} refiner;

/* The coarse scores of rows (the kernel's values: bias - 2 x.c for L2,
 * -x.c otherwise; a row's order of groups is theirs), cosine rows outside
 * the safe range scored shifted, as the kernel does. */
static void coarse_scores(refiner *f, refine_scratch *w, const float *x, uint32_t rows) {
  const float scale = f->metric == DKM_METRIC_L2 ? 2.0f : 1.0f;
  const uint32_t panels = f->kc_pad / DKM__PANEL;
  if (f->cpacked != NULL) {
    dkm__gemm_packed_biased(x, rows, f->dim, f->cpacked, panels, f->cbias, scale, w->scores,
                            f->kc_pad);
  } else {
    dkm__gemm_blas(x, rows, f->dim, f->coarse, f->kc, w->scores, f->kc_pad);
    for (uint32_t r = 0; r < rows; r++)
      for (uint32_t c = 0; c < f->kc; c++)
        w->scores[(size_t)r * f->kc_pad + c] =
            f->cbias[c] - scale * w->scores[(size_t)r * f->kc_pad + c];
  }
  if (f->metric != DKM_METRIC_COSINE)
    return;
  for (uint32_t r = 0; r < rows; r++) {
    int shift;
    float s;
    double iv;
    const float *xr = x + (size_t)r * f->dim;
    dkm__cosine_scale(xr, f->dim, w->shifted, &shift, &s, &iv);
    if (shift == 0)
      continue;
    dkm__shift_row(xr, f->dim, shift, w->shifted);
    float *out = w->scores + (size_t)r * f->kc_pad;
    if (f->cpacked != NULL) {
      dkm__gemm_packed_biased(w->shifted, 1, f->dim, f->cpacked, panels, f->cbias, scale, out,
                              f->kc_pad);
    } else {
      dkm__gemm_blas(w->shifted, 1, f->dim, f->coarse, f->kc, out, f->kc_pad);
      for (uint32_t c = 0; c < f->kc; c++)
        out[c] = f->cbias[c] - scale * out[c];
    }
  }
}

static int by_group_then_row(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Labels one gathered run of rows of group g and keeps, per row, the
 * nearest centroid so far (ties: the lower global index). */
static void label_run(refiner *f, refine_scratch *w, uint32_t g, const float *x, uint32_t n,
                      int32_t *labels, float *dist) {
  const group_kernel *gk = &f->gk[g];
  dkm__assign_tile(&gk->kern, x, n, w->kscratch, w->glabels, w->gdist, NULL);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t r = w->rows[i];
    int32_t label = (int32_t)(f->first[g] + (uint32_t)w->glabels[i]);
    if (w->gdist[i] < w->best[r] || (w->gdist[i] == w->best[r] && label < labels[r])) {
      w->best[r] = w->gdist[i];
      labels[r] = label;
      dist[r] = w->gdist[i];
    }
  }
}

static uint32_t refine_label(void *user, uint32_t worker, const float *x, uint32_t count,
                             int32_t *labels, float *dist, double *inv) {
  refiner *f = user;
  refine_scratch *w = &f->ws[worker];
  const uint32_t dim = f->dim, p = f->p;
  /* The rows' checks (and cosine weights) first, as the kernel makes them:
   * a bad row fails the tile before anything is labelled. */
  for (uint32_t r = 0; r < count; r++) {
    const float *xr = x + (size_t)r * dim;
    if (f->metric == DKM_METRIC_COSINE) {
      int shift;
      float s;
      if (!dkm__cosine_scale(xr, dim, w->shifted, &shift, &s, &inv[r]))
        return r;
    } else {
      if (!dkm__norm2_ok(dkm__row_norm2(xr, dim)))
        return r;
      inv[r] = 1;
    }
  }
  coarse_scores(f, w, x, count);
  /* Each row's p nearest groups (ties: lower group first), as (group, row)
   * pairs. */
  uint32_t np = 0;
  for (uint32_t r = 0; r < count; r++) {
    const float *sc = w->scores + (size_t)r * f->kc_pad;
    uint32_t *cand = w->cand + (size_t)r * p;
    float top[DKM_REFINE_CANDIDATES];
    uint32_t have = 0;
    for (uint32_t c = 0; c < f->kc; c++) {
      if (f->first[c + 1] == f->first[c]) /* a group without centroids */
        continue;
      float v = sc[c];
      if (have == p && !(v < top[p - 1]))
        continue;
      uint32_t at = have < p ? have++ : p - 1;
      while (at > 0 && v < top[at - 1]) {
        top[at] = top[at - 1];
        cand[at] = cand[at - 1];
        at--;
      }
      top[at] = v;
      cand[at] = c;
    }
    for (uint32_t j = 0; j < have; j++)
      w->pairs[np++] = (uint64_t)cand[j] << 32 | r;
    w->best[r] = INFINITY;
    labels[r] = INT32_MAX;
  }
  qsort(w->pairs, np, sizeof *w->pairs, by_group_then_row);
  /* Group by group, runs of at most the group kernel's tile; rows that sit
   * next to each other in the tile are used in place. */
  for (uint32_t i = 0; i < np;) {
    uint32_t g = (uint32_t)(w->pairs[i] >> 32);
    uint32_t cap = DKM__MIN(f->gk[g].kern.tile_rows, f->gather_rows);
    uint32_t j = i, n = 0, contiguous = 1;
    while (j < np && (uint32_t)(w->pairs[j] >> 32) == g && n < cap) {
      uint32_t r = (uint32_t)w->pairs[j];
      if (n > 0 && r != w->rows[n - 1] + 1)
        contiguous = 0;
      w->rows[n++] = r;
      j++;
    }
    const float *run = x + (size_t)w->rows[0] * dim;
    if (!contiguous) {
      for (uint32_t q = 0; q < n; q++)
        memcpy(w->gathered + (size_t)q * dim, x + (size_t)w->rows[q] * dim, dim * sizeof(float));
      run = w->gathered;
    }
    label_run(f, w, g, run, n, labels, dist);
    i = j;
  }
  return UINT32_MAX;
}

/* The fine centroids changed: each group's kernel follows. */
static void refine_centroids_changed(void *user, const float *centroids) {
  refiner *f = user;
  for (uint32_t g = 0; g < f->kc; g++) {
    uint32_t lo = f->first[g], n = f->first[g + 1] - lo;
    if (n == 0)
      continue;
    group_kernel *gk = &f->gk[g];
    const float *c = centroids + (size_t)lo * f->dim;
    dkm__centroid_norms(c, n, f->dim, gk->cnorm);
    dkm__kernel_bias(f->metric, gk->cnorm, n, gk->bias);
    if (gk->packed != NULL)
      dkm__pack(c, n, f->dim, gk->packed);
    dkm__kernel_init(&gk->kern, n, f->dim, f->metric, c, gk->cnorm, gk->packed, gk->bias);
  }
}

static void refiner_free(refiner *f) {
  dkm_ctx *ctx = f->ctx;
  for (uint32_t g = 0; f->gk != NULL && g < f->kc; g++) {
    dkm__free_aligned(ctx, f->gk[g].packed);
    dkm__free_aligned(ctx, f->gk[g].bias);
    dkm__free(ctx, f->gk[g].cnorm);
  }
  dkm__free(ctx, f->gk);
  for (uint32_t w = 0; f->ws != NULL && w < f->n_scratch; w++) {
    refine_scratch *s = &f->ws[w];
    dkm__free_aligned(ctx, s->scores);
    dkm__free(ctx, s->cand);
    dkm__free(ctx, s->pairs);
    dkm__free(ctx, s->best);
    dkm__free_aligned(ctx, s->gathered);
    dkm__free(ctx, s->glabels);
    dkm__free(ctx, s->gdist);
    dkm__free_aligned(ctx, s->kscratch);
    dkm__free(ctx, s->shifted);
    dkm__free(ctx, s->rows);
  }
  dkm__free(ctx, f->ws);
  dkm__free(ctx, f->cnorm);
  dkm__free_aligned(ctx, f->cbias);
  dkm__free_aligned(ctx, f->cpacked);
}

static dkm_status refiner_open(refiner *f, dkm_ctx *ctx, const dkm_params *params, uint32_t dim,
                               const float *coarse, uint32_t kc, const uint32_t *first) {
  memset(f, 0, sizeof *f);
  f->ctx = ctx;
  f->k = params->k;
  f->dim = dim;
  f->kc = kc;
  f->p = DKM__MIN(DKM_REFINE_CANDIDATES, kc);
  f->metric = params->metric;
  f->first = first;
  f->coarse = coarse;
  f->kc_pad = (uint32_t)dkm__packed_floats(kc, 1);
  f->tile_rows = dkm__tile_rows(params->k, dim);
  const int native = dkm__gemm_native();
  f->cnorm = dkm__alloc_or_fail(ctx, (size_t)kc * sizeof(float), "the coarse norms");
  f->cbias = dkm__alloc_aligned(ctx, (size_t)f->kc_pad * sizeof(float), "the coarse terms");
  if (f->cnorm == NULL || f->cbias == NULL)
    return DKM_ERR_NOMEM;
  if (native) {
    f->cpacked = dkm__alloc_aligned(ctx, dkm__packed_floats(kc, dim) * sizeof(float),
                                    "the packed coarse centroids");
    if (f->cpacked == NULL)
      return DKM_ERR_NOMEM;
  }
  dkm__centroid_norms(coarse, kc, dim, f->cnorm);
  dkm__kernel_bias(f->metric, f->cnorm, kc, f->cbias);
  if (f->cpacked != NULL)
    dkm__pack(coarse, kc, dim, f->cpacked);
  f->gk = dkm__calloc(ctx, kc, sizeof *f->gk);
  if (f->gk == NULL)
    return dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "out of memory allocating the group kernels");
  size_t kscratch = 1;
  uint32_t gather = 1;
  for (uint32_t g = 0; g < kc; g++) {
    uint32_t n = first[g + 1] - first[g];
    if (n == 0)
      continue;
    group_kernel *gk = &f->gk[g];
    gk->cnorm = dkm__alloc_or_fail(ctx, (size_t)n * sizeof(float), "a group's norms");
    gk->bias = dkm__alloc_aligned(ctx, dkm__packed_floats(n, 1) * sizeof(float), "a group's terms");
    if (gk->cnorm == NULL || gk->bias == NULL)
      return DKM_ERR_NOMEM;
    if (native) {
      gk->packed = dkm__alloc_aligned(ctx, dkm__packed_floats(n, dim) * sizeof(float),
                                      "a group's packed centroids");
      if (gk->packed == NULL)
        return DKM_ERR_NOMEM;
    }
    /* Sizes only, for the scratch: the centroids come with the first
     * centroids_changed. */
    dkm__kernel_init(&gk->kern, n, dim, f->metric, coarse, gk->cnorm, gk->packed, gk->bias);
    kscratch = DKM__MAX(kscratch, dkm__kernel_scratch_floats(&gk->kern));
    gather = DKM__MAX(gather, gk->kern.tile_rows);
  }
  f->gather_rows = DKM__MIN(gather, f->tile_rows);
  /* One scratch per worker the engine may start. */
  f->n_scratch = params->n_threads != 0 ? params->n_threads : dkm__cpu_count();
  f->ws = dkm__calloc(ctx, f->n_scratch, sizeof *f->ws);
  if (f->ws == NULL)
    return dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "out of memory allocating the refinement scratch");
  const size_t tr = f->tile_rows, gr = f->gather_rows;
  for (uint32_t w = 0; w < f->n_scratch; w++) {
    refine_scratch *s = &f->ws[w];
    s->scores = dkm__alloc_aligned(ctx, tr * f->kc_pad * sizeof(float), "the coarse scores");
    s->cand = dkm__alloc_or_fail(ctx, tr * f->p * sizeof(uint32_t), "the candidate groups");
    s->pairs = dkm__alloc_or_fail(ctx, tr * f->p * sizeof(uint64_t), "the candidate groups");
    s->best = dkm__alloc_or_fail(ctx, tr * sizeof(float), "the refinement scratch");
    s->gathered = dkm__alloc_aligned(ctx, gr * dim * sizeof(float), "the gathered rows");
    s->glabels = dkm__alloc_or_fail(ctx, gr * sizeof(int32_t), "the refinement scratch");
    s->gdist = dkm__alloc_or_fail(ctx, gr * sizeof(float), "the refinement scratch");
    s->kscratch = dkm__alloc_aligned(ctx, kscratch * sizeof(float), "the tile scratch");
    s->shifted = dkm__alloc_or_fail(ctx, (size_t)dim * sizeof(float), "the refinement scratch");
    s->rows = dkm__alloc_or_fail(ctx, gr * sizeof(uint32_t), "the refinement scratch");
    if (s->scores == NULL || s->cand == NULL || s->pairs == NULL || s->best == NULL ||
        s->gathered == NULL || s->glabels == NULL || s->gdist == NULL || s->kscratch == NULL ||
        s->shifted == NULL || s->rows == NULL)
      return DKM_ERR_NOMEM;
  }
  return DKM_OK;
}

/* --- the driver ------------------------------------------------------------------ */

typedef struct hier_run {
  dkm_ctx *ctx;
  const dkm_params *params;
  dkm_result *res;
  uint32_t k, dim, kc;
  float *coarse;      /* kc * dim */
  uint32_t *quota;    /* kc */
  uint32_t *first;    /* kc + 1: fine centroids of each group */
  uint64_t *gsizes;   /* kc: rows of each group, 0 once its distinct rows are known */
  double *gcost;      /* kc: each group's distances to its coarse centroid, summed */
  uint32_t *distinct; /* kc: a group's distinct rows where fewer than its quota, else 0 */
  float *fine;        /* k * dim, group after group */
  uint64_t *sizes;    /* k: each fine cluster's rows in its group's last pass */
  dkm__groups *groups;
  uint32_t levels;
  dkm__ckpt *ck; /* NULL: no checkpoint */
} hier_run;

/* --- checkpoints --------------------------------------------------------------------- */

/* The driver's state in a checkpoint (section DKM__CKPT_HIER):
 *
 *   u32 stage, kc, k, dim; u64 spill bytes so far; the coarse centroids
 *   stage GROUPS: u32 next group, carry, used, found, levels, repairs,
 *     moves, 0; f64 objective; quotas, first (kc + 1), group sizes (u64),
 *     distinct rows (u32 each, kc); fine centroids and sizes of the used
 *     clusters
 *   stage DONE: u32 levels, distinct rows, repairs, moves; f64 objective,
 *     imbalance; first (kc + 1); all fine centroids and sizes
 *
 * The sample and the routing are not saved: both are functions of the
 * input and the seed (and of the coarse centroids), redrawn on resume. A
 * group is saved once trained, so a kill loses at most the group under
 * way; the refinement saves its own Lloyd loop section beside this one. */
enum { STAGE_COARSE = 1, STAGE_GROUPS = 2, STAGE_DONE = 3 };

typedef struct group_progress {
  uint32_t next, carry, used;
  int found;
  double objective;
} group_progress;

static dkm_status save_hier(hier_run *h, uint32_t stage, const group_progress *gp) {
  dkm__ckpt *ck = h->ck;
  const uint32_t kc = h->kc, k = h->k, dim = h->dim;
  const dkm_iter_stats *st0 = &h->res->iters[0];
  dkm__ckpt_buf *b = dkm__ckpt_section(ck, DKM__CKPT_HIER);
  uint32_t head[4] = {stage, kc, k, dim};
  dkm__ckpt_put(ck, b, head, sizeof head);
  dkm__ckpt_put_u64(ck, b, h->res->spill_bytes);
  dkm__ckpt_put(ck, b, h->coarse, (size_t)kc * dim * sizeof(float));
  if (stage == STAGE_GROUPS) {
    uint32_t g[8] = {gp->next,  gp->carry,     gp->used,        (uint32_t)gp->found,
                     h->levels, st0->repaired, st0->rebalanced, 0};
    dkm__ckpt_put(ck, b, g, sizeof g);
    dkm__ckpt_put_f64(ck, b, gp->objective);
    dkm__ckpt_put(ck, b, h->quota, (size_t)kc * sizeof(uint32_t));
    dkm__ckpt_put(ck, b, h->first, ((size_t)kc + 1) * sizeof(uint32_t));
    dkm__ckpt_put(ck, b, h->gsizes, (size_t)kc * sizeof(uint64_t));
    dkm__ckpt_put(ck, b, h->distinct, (size_t)kc * sizeof(uint32_t));
    dkm__ckpt_put(ck, b, h->fine, (size_t)gp->used * dim * sizeof(float));
    dkm__ckpt_put(ck, b, h->sizes, (size_t)gp->used * sizeof(uint64_t));
  } else if (stage == STAGE_DONE) {
    uint32_t d[4] = {h->res->levels, h->res->distinct_rows, st0->repaired, st0->rebalanced};
    dkm__ckpt_put(ck, b, d, sizeof d);
    dkm__ckpt_put_f64(ck, b, st0->objective);
    dkm__ckpt_put_f64(ck, b, st0->imbalance);
    dkm__ckpt_put(ck, b, h->first, ((size_t)kc + 1) * sizeof(uint32_t));
    dkm__ckpt_put(ck, b, h->fine, (size_t)k * dim * sizeof(float));
    dkm__ckpt_put(ck, b, h->sizes, (size_t)k * sizeof(uint64_t));
  }
  return dkm__ckpt_save(ck);
}

/* Reads the head of a saved driver state: its stage (0 when there is
 * none), the spill bytes and the coarse centroids. */
static dkm_status load_hier_head(hier_run *h, dkm__ckpt_reader *r, uint32_t *stage,
                                 uint64_t *spill) {
  *stage = 0;
  size_t len;
  const uint8_t *data = h->ck != NULL ? dkm__ckpt_loaded(h->ck, DKM__CKPT_HIER, &len) : NULL;
  if (data == NULL)
    return DKM_OK;
  dkm__ckpt_forget(h->ck, DKM__CKPT_HIER);
  r->p = data;
  r->left = len;
  r->bad = 0;
  uint32_t head[4];
  dkm__ckpt_get(r, head, sizeof head);
  *spill = dkm__ckpt_get_u64(r);
  if (r->bad || head[0] < STAGE_COARSE || head[0] > STAGE_DONE || head[1] != h->kc ||
      head[2] != h->k || head[3] != h->dim)
    return dkm__ckpt_malformed(h->ck, "hierarchical stages'");
  dkm__ckpt_get(r, h->coarse, (size_t)h->kc * h->dim * sizeof(float));
  *stage = head[0];
  if (r->bad)
    return dkm__ckpt_malformed(h->ck, "hierarchical stages'");
  return dkm__ckpt_check_centroids(h->ck, h->coarse, h->kc, h->dim, h->params->metric);
}

static dkm_status load_hier_groups(hier_run *h, dkm__ckpt_reader *r, group_progress *gp) {
  const uint32_t kc = h->kc, dim = h->dim;
  dkm_iter_stats *st0 = &h->res->iters[0];
  uint32_t v[8];
  dkm__ckpt_get(r, v, sizeof v);
  gp->next = v[0];
  gp->carry = v[1];
  gp->used = v[2];
  gp->found = v[3] != 0;
  h->levels = v[4];
  st0->repaired = v[5];
  st0->rebalanced = v[6];
  gp->objective = dkm__ckpt_get_f64(r);
  if (r->bad || gp->next == 0 || gp->next > kc || gp->used > h->k)
    return dkm__ckpt_malformed(h->ck, "hierarchical stages'");
  dkm__ckpt_get(r, h->quota, (size_t)kc * sizeof(uint32_t));
  dkm__ckpt_get(r, h->first, ((size_t)kc + 1) * sizeof(uint32_t));
  dkm__ckpt_get(r, h->gsizes, (size_t)kc * sizeof(uint64_t));
  dkm__ckpt_get(r, h->distinct, (size_t)kc * sizeof(uint32_t));
  dkm__ckpt_get(r, h->fine, (size_t)gp->used * dim * sizeof(float));
  dkm__ckpt_get(r, h->sizes, (size_t)gp->used * sizeof(uint64_t));
  /* What the next groups index with must fit the groups as routed again
   * (h->groups): quotas and distinct rows within each group's rows, the
   * groups trained so far within the centroids used. */
  uint64_t quotas = 0; /* of the groups still to train */
  for (uint32_t g = 0; g < kc && !r->bad; g++) {
    uint64_t n = dkm__groups_rows(h->groups, g);
    quotas += g >= gp->next ? h->quota[g] : 0;
    if (h->quota[g] > n || h->distinct[g] > n || (h->gsizes[g] != 0 && h->gsizes[g] != n) ||
        (g < gp->next && h->first[g] > gp->used) ||
        (g > 0 && g < gp->next && h->first[g] < h->first[g - 1]))
      r->bad = 1;
  }
  /* used + carry + the quotas to come stays what the round started with,
   * at most k: the groups to come write within the k fine centroids. */
  if (quotas + gp->carry + gp->used > h->k)
    r->bad = 1;
  if (r->bad || r->left != 0)
    return dkm__ckpt_malformed(h->ck, "hierarchical stages'");
  return dkm__ckpt_check_centroids(h->ck, h->fine, gp->used, dim, h->params->metric);
}

static dkm_status load_hier_done(hier_run *h, dkm__ckpt_reader *r) {
  const uint32_t kc = h->kc, k = h->k, dim = h->dim;
  dkm_iter_stats *st0 = &h->res->iters[0];
  uint32_t d[4];
  dkm__ckpt_get(r, d, sizeof d);
  h->levels = d[0];
  h->res->distinct_rows = d[1];
  st0->repaired = d[2];
  st0->rebalanced = d[3];
  st0->objective = dkm__ckpt_get_f64(r);
  st0->imbalance = dkm__ckpt_get_f64(r);
  dkm__ckpt_get(r, h->first, ((size_t)kc + 1) * sizeof(uint32_t));
  dkm__ckpt_get(r, h->fine, (size_t)k * dim * sizeof(float));
  dkm__ckpt_get(r, h->sizes, (size_t)k * sizeof(uint64_t));
  /* The refinement's ranges of centroids: from 0 up to k. */
  for (uint32_t g = 0; g < kc && !r->bad; g++)
    if (h->first[g] > h->first[g + 1])
      r->bad = 1;
  if (r->bad || r->left != 0 || h->first[0] != 0 || h->first[kc] != k)
    return dkm__ckpt_malformed(h->ck, "hierarchical stages'");
  return dkm__ckpt_check_centroids(h->ck, h->fine, k, dim, h->params->metric);
}

/* Trains group g into its quota, possibly with more from earlier groups
 * that could not use all of theirs (*carry), and keeps its centroids at
 * the end of the ones so far (*used). A group found to hold fewer distinct
 * rows than that gets them recorded (and *found set). */
static dkm_status train_group(hier_run *h, const dkm__sample_plan *sp, uint32_t g, uint32_t *carry,
                              uint32_t *used, double *objective, int *found) {
  const dkm_params *p = h->params;
  uint64_t n = dkm__groups_rows(h->groups, g);
  /* A group whose distinct rows are known takes exactly that many. */
  uint32_t extra = h->distinct[g] != 0 ? 0 : (uint32_t)DKM__MIN((uint64_t)*carry, n - h->quota[g]);
  uint32_t q = h->quota[g] + extra;
  *carry -= extra;
  h->first[g] = *used;
  if (q == 0)
    return DKM_OK;
  dkm_source *src = NULL;
  dkm_status s = dkm__groups_open(h->ctx, h->groups, g, &src);
  if (s != DKM_OK)
    return s;
  dkm_params gp = *p;
  gp.k = q;
  gp.max_points_per_centroid = 0; /* the group is the sample already */
  gp.seed = part_seed(p->seed, 1 + (uint64_t)g);
  gp.storage = sp->storage;
  gp.block_rows = p->block_rows;
  relay rl;
  relay_to(&gp, &rl, p, DKM_PART_GROUP, g, h->kc, 0);
  dkm_result *r = NULL;
  /* Hierarchical again where the quota is large, or where it is far above
   * the mean: a tight, dense region (one component of a Zipf-sized
   * mixture can hold a quarter of the rows) is one coarse group, whose
   * flat training would cost its rows times its quota, several times the
   * groups' even share. */
  uint32_t mean_quota = (h->k + h->kc - 1) / h->kc;
  int large =
      q >= DKM_HIERARCHICAL_MIN_K || (q >= SKEWED_MIN_QUOTA && q > SKEWED_FACTOR * mean_quota);
  if (large && q > coarse_k_for(q)) {
    gp.strategy = DKM_STRATEGY_HIERARCHICAL;
    /* No refinement of its own: where this level refines, its passes
     * cover the group's rows anyway, with candidates from every group (on
     * the 2.1 M x 256 Zipf set at k = 8192, four levels deep: 7.6% less
     * CPU time, objective 1.0002x); where it does not, neither should the
     * group. */
    gp.refine = 0;
    s = dkm__train_hierarchical(h->ctx, &gp, src, NULL, &r);
  } else {
    gp.strategy = DKM_STRATEGY_FLAT;
    s = dkm__train_flat(h->ctx, &gp, src, NULL, NULL, &r);
  }
  dkm_source_close(src);
  if (s != DKM_OK)
    return s;
  h->levels = DKM__MAX(h->levels, r->strategy == DKM_STRATEGY_HIERARCHICAL ? 1 + r->levels : 2);
  /* A group with fewer distinct rows than its quota leaves clusters empty:
   * keep only the others, and give what is left to the next groups. */
  uint32_t kept = 0;
  for (uint32_t c = 0; c < q; c++) {
    if (r->cluster_sizes[c] == 0 && r->distinct_rows != 0)
      continue;
    memcpy(h->fine + (size_t)(*used + kept) * h->dim, r->centroids + (size_t)c * h->dim,
           (size_t)h->dim * sizeof(float));
    h->sizes[*used + kept] = r->cluster_sizes[c];
    kept++;
  }
  if (kept < q && h->distinct[g] == 0) {
    h->distinct[g] = kept;
    h->gsizes[g] = 0;
    *found = 1;
  }
  *carry += q - kept;
  *used += kept;
  *objective += r->objective;
  /* The result's first entry takes the groups together: their last
   * passes' objectives, and the repairs and moves of all their passes (a
   * last pass moves nothing). */
  for (uint32_t i = 0; i < r->n_iter; i++) {
    h->res->iters[0].repaired += r->iters[i].repaired;
    h->res->iters[0].rebalanced += r->iters[i].rebalanced;
  }
  h->res->init_seconds += r->init_seconds;
  h->res->spill_bytes += r->spill_bytes;
  dkm_result_free(r);
  return DKM_OK;
}

static dkm_status run(hier_run *h, dkm_source *src, double start) {
  const dkm_params *p = h->params;
  dkm_ctx *ctx = h->ctx;
  dkm_result *res = h->res;
  const uint32_t k = h->k, dim = h->dim;
  dkm__sample_plan sp;
  dkm_status s = sample_plan(ctx, p, src, &sp);
  if (s != DKM_OK)
    return s;
  dkm__result_set_plan(res, &sp, DKM_STRATEGY_HIERARCHICAL);
  h->kc = coarse_k_for(k);
  res->coarse_k = h->kc;
  const uint32_t kc = h->kc;
  h->coarse = dkm__alloc_aligned(ctx, (size_t)kc * dim * sizeof(float), "the coarse centroids");
  h->quota = dkm__alloc_or_fail(ctx, (size_t)kc * sizeof(uint32_t), "the quotas");
  h->first = dkm__alloc_or_fail(ctx, ((size_t)kc + 1) * sizeof(uint32_t), "the groups' ranges");
  h->gsizes = dkm__alloc_or_fail(ctx, (size_t)kc * sizeof(uint64_t), "the group sizes");
  h->gcost = dkm__alloc_or_fail(ctx, (size_t)kc * sizeof(double), "the group costs");
  h->distinct = dkm__calloc(ctx, kc, sizeof(uint32_t));
  if (h->distinct == NULL)
    dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "out of memory allocating the groups' distinct rows");
  h->fine = dkm__alloc_aligned(ctx, (size_t)k * dim * sizeof(float), "the fine centroids");
  h->sizes = dkm__alloc_or_fail(ctx, (size_t)k * sizeof(uint64_t), "the cluster sizes");
  if (h->coarse == NULL || h->quota == NULL || h->first == NULL || h->gsizes == NULL ||
      h->gcost == NULL || h->distinct == NULL || h->fine == NULL || h->sizes == NULL)
    return DKM_ERR_NOMEM;

  /* 1. The sample. */
  dkm_source *sample = NULL;
  int owned = 0;
  uint64_t spilled = 0;
  double t0 = dkm__now();
  s = dkm__sample_draw(ctx, p, src, &sp, &sample, &owned, &spilled);
  res->sample_seconds = dkm__now() - t0;
  res->spill_bytes += spilled;
  /* A checkpoint checks the sample's rows, and may say where to go on. */
  if (s == DKM_OK && h->ck != NULL)
    s = dkm__ckpt_sample(h->ck, sample);
  dkm__ckpt_reader saved = {NULL, 0, 0};
  uint32_t stage = 0;
  uint64_t saved_spill = 0;
  if (s == DKM_OK)
    s = load_hier_head(h, &saved, &stage, &saved_spill);
  if (s != DKM_OK) {
    if (owned)
      dkm_source_close(sample);
    return s;
  }
  if (stage != 0)
    res->spill_bytes = saved_spill;

  /* 2. Coarse centroids, from the sample. */
  t0 = dkm__now();
  dkm_params cp = *p;
  cp.k = kc;
  cp.strategy = DKM_STRATEGY_FLAT;
  cp.seed = part_seed(p->seed, 0);
  cp.storage = sp.storage;
  /* Plain k-means, even with balance: the coarse level decides which
   * rows a group's centroids can see, and splitting a dense region between
   * groups to even their sizes cost objective and recall (measured in
   * docs/design.md, "Large k"). */
  cp.balance = 0;
  relay rl;
  relay_to(&cp, &rl, p, DKM_PART_COARSE, 0, 0, 0);
  dkm_result *cr = NULL;
  if (stage == 0) {
    s = dkm__train_flat(ctx, &cp, sample, NULL, NULL, &cr);
    if (s == DKM_OK) {
      memcpy(h->coarse, cr->centroids, (size_t)kc * dim * sizeof(float));
      res->init_seconds += cr->init_seconds;
      res->spill_bytes += cr->spill_bytes;
      dkm_result_free(cr);
      if (h->ck != NULL)
        s = save_hier(h, STAGE_COARSE, NULL);
    }
  }
  res->coarse_seconds = dkm__now() - t0;

  /* 3. Routing. */
  t0 = dkm__now();
  if (s == DKM_OK)
    s = dkm__groups_create(ctx, sp.storage, p->tmp_dir, src->name, sp.sample_rows, dim, kc,
                           &h->groups);
  if (s == DKM_OK)
    s = route(ctx, p, sample, sp.block_rows, h->coarse, kc, h->groups, h->gcost);
  if (owned)
    dkm_source_close(sample);
  if (s == DKM_OK)
    s = dkm__groups_finish(ctx, h->groups);
  if (s == DKM_OK && sp.storage == DKM_STORAGE_DISK)
    res->spill_bytes += sp.sample_bytes;
  if (stage > STAGE_COARSE) /* saved after the routing: its count has it */
    res->spill_bytes = saved_spill;
  res->route_seconds = dkm__now() - t0;
  if (s != DKM_OK)
    return s;

  /* 4. Quotas, 5. the groups. */
  t0 = dkm__now();
  for (uint32_t g = 0; g < kc; g++)
    h->gsizes[g] = dkm__groups_rows(h->groups, g);
  /* Balanced partitions: quotas by size, so that every group's clusters
   * average the same size (as cuVS and Lance do). Otherwise by the
   * geometric mean of the size and the cost (the group's distances to its
   * coarse centroid): by size alone, a group of spread rows gets as few
   * centroids as a tight one of the same size, where flat training would
   * give it more; by cost alone (what asymptotic quantisation theory gives
   * for a smooth density), a group that holds a few distant clumps gets
   * too many. Their geometric mean was the best or close to it on every
   * data set measured (docs/design.md, "Quotas").
   * Inner-product distances are no costs (they are negative): by size. */
  const int by_size = p->balance || p->metric == DKM_METRIC_IP;
  for (uint32_t g = 0; g < kc; g++)
    h->gcost[g] = h->gcost[g] > 0 ? sqrt(h->gcost[g] * (double)h->gsizes[g]) : 0;
  /* Quota that a group with fewer distinct rows than its quota cannot use
   * goes to the groups after it. Where that leaves some unused while other
   * groups might have used it, every group is trained again: the ones whose
   * distinct rows are known get exactly that many centroids, the others
   * share the rest. Only data with many copies of few rows pays
   * for this; each round learns about one group more at least. */
  group_progress gp = {0, 0, 0, 0, 0};
  int resumed = 0;
  if (stage == STAGE_GROUPS) {
    s = load_hier_groups(h, &saved, &gp);
    resumed = 1;
  } else if (stage == STAGE_DONE) {
    s = load_hier_done(h, &saved);
  }
  if (s != DKM_OK)
    return s;
  for (; stage != STAGE_DONE;) {
    if (!resumed) {
      uint64_t m_left = 0;
      uint32_t k_left = k;
      for (uint32_t g = 0; g < kc; g++) {
        m_left += h->gsizes[g];
        k_left -= h->distinct[g];
      }
      uint32_t k_share = (uint32_t)DKM__MIN((uint64_t)k_left, m_left);
      memset(h->quota, 0, (size_t)kc * sizeof(uint32_t));
      if (k_share > 0)
        dkm__quotas_weighted(k_share, by_size ? NULL : h->gcost, h->gsizes, kc, h->quota);
      for (uint32_t g = 0; g < kc; g++)
        if (h->distinct[g] != 0)
          h->quota[g] = h->distinct[g];
      gp.next = gp.carry = gp.used = 0;
      gp.objective = 0;
      gp.found = 0;
      h->levels = 2;
      memset(&res->iters[0], 0, sizeof res->iters[0]);
    }
    resumed = 0;
    for (; gp.next < kc && s == DKM_OK; gp.next++) {
      s = train_group(h, &sp, gp.next, &gp.carry, &gp.used, &gp.objective, &gp.found);
      if (s == DKM_OK && h->ck != NULL) {
        group_progress after = gp;
        after.next++;
        s = save_hier(h, STAGE_GROUPS, &after);
      }
    }
    if (s != DKM_OK)
      return s;
    if (gp.used == k || !gp.found)
      break;
    /* Again only if the other groups have rows left for more centroids. */
    uint64_t open = 0, known = 0;
    for (uint32_t g = 0; g < kc; g++) {
      open += h->gsizes[g];
      known += h->distinct[g];
    }
    if (open <= gp.used - known)
      break;
  }
  if (stage != STAGE_DONE) {
    const uint32_t used = gp.used;
    h->first[kc] = used;
    /* Quota that no group could use: clusters left empty (the sample has
     * fewer distinct rows than k), at the end of the last group with
     * centroids, on a copy of its last centroid. */
    if (used < k) {
      uint32_t last = kc;
      while (last > 0 && h->first[last - 1] == used)
        last--;
      for (uint32_t c = used; c < k; c++) {
        memcpy(h->fine + (size_t)c * dim, h->fine + (size_t)(used - 1) * dim, dim * sizeof(float));
        h->sizes[c] = 0;
      }
      for (uint32_t g = last; g <= kc; g++)
        h->first[g] = k;
      res->distinct_rows = used;
    }
    res->levels = h->levels;
    dkm_iter_stats *st0 = &res->iters[0];
    st0->objective = gp.objective;
    double sq = 0;
    for (uint32_t c = 0; c < k; c++)
      sq += (double)h->sizes[c] * (double)h->sizes[c];
    st0->imbalance = (double)k * sq / ((double)sp.sample_rows * (double)sp.sample_rows);
    if (h->ck != NULL && (s = save_hier(h, STAGE_DONE, NULL)) != DKM_OK)
      return s;
  }
  res->groups_seconds = dkm__now() - t0;
  res->levels = h->levels;
  dkm_iter_stats *st0 = &res->iters[0];
  st0->seconds = res->groups_seconds;
  res->n_iter = 1;
  res->objective = st0->objective;

  /* 6. Refinement: the Lloyd loop over all rows, group after group. */
  t0 = dkm__now();
  if (p->refine > 0) {
    dkm_source *all = NULL;
    refiner f;
    s = refiner_open(&f, ctx, p, dim, h->coarse, kc, h->first);
    if (s == DKM_OK)
      s = dkm__groups_open(ctx, h->groups, DKM__ALL_GROUPS, &all);
    dkm_result *rr = NULL;
    if (s == DKM_OK) {
      dkm_params rp = *p;
      rp.init = DKM_INIT_GIVEN;
      rp.init_centroids = h->fine;
      rp.max_iter = p->refine;
      rp.max_points_per_centroid = 0;
      rp.n_redo = 1;
      rp.storage = sp.storage;
      relay rr_relay;
      relay_to(&rp, &rr_relay, p, DKM_PART_WHOLE, 0, 0, 1);
      dkm__train_hooks hooks;
      memset(&hooks, 0, sizeof hooks);
      hooks.label_tile = refine_label;
      hooks.centroids_changed = refine_centroids_changed;
      hooks.user = &f;
      hooks.group_first = h->first;
      hooks.n_groups = kc;
      s = dkm__train_flat(ctx, &rp, all, &hooks, h->ck, &rr);
    }
    dkm_source_close(all);
    refiner_free(&f);
    if (s != DKM_OK)
      return s;
    memcpy(h->fine, rr->centroids, (size_t)k * dim * sizeof(float));
    memcpy(h->sizes, rr->cluster_sizes, (size_t)k * sizeof(uint64_t));
    memcpy(res->iters + 1, rr->iters, (size_t)rr->n_iter * sizeof(dkm_iter_stats));
    res->n_iter = 1 + rr->n_iter;
    res->refine_passes = rr->n_iter;
    res->objective = rr->objective;
    dkm_result_free(rr);
  }
  res->refine_seconds = dkm__now() - t0;
  memcpy(res->centroids, h->fine, (size_t)k * dim * sizeof(float));
  memcpy(res->cluster_sizes, h->sizes, (size_t)k * sizeof(uint64_t));
  dkm_balance_of(res->cluster_sizes, k, &res->balance);
  res->train_seconds = dkm__now() - start;
  return DKM_OK;
}

dkm_status dkm__train_hierarchical(dkm_ctx *ctx, const dkm_params *params, dkm_source *src,
                                   dkm__ckpt *ck, dkm_result **out) {
  double start = dkm__now();
  *out = NULL;
  if (params->init == DKM_INIT_GIVEN)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM,
                             "init is given, but hierarchical training chooses its own initial "
                             "centroids per group; use strategy flat to start from given ones");
  hier_run h;
  memset(&h, 0, sizeof h);
  h.ctx = ctx;
  h.params = params;
  h.k = params->k;
  h.dim = src->dim;
  h.ck = ck;
  h.res = dkm__result_alloc(ctx, params->k, src->dim, 1 + params->refine);
  if (h.res == NULL)
    return DKM_ERR_NOMEM;
  dkm_status s = run(&h, src, start);
  dkm__free_aligned(ctx, h.coarse);
  dkm__free(ctx, h.quota);
  dkm__free(ctx, h.first);
  dkm__free(ctx, h.gsizes);
  dkm__free(ctx, h.gcost);
  dkm__free(ctx, h.distinct);
  dkm__free_aligned(ctx, h.fine);
  dkm__free(ctx, h.sizes);
  dkm__groups_free(h.groups);
  if (s != DKM_OK) {
    dkm_result_free(h.res);
    return s;
  }
  *out = h.res;
  return DKM_OK;
}

/* --- the plan ------------------------------------------------------------------- */

/* Peak bytes of hierarchical training with the sample in storage (MEMORY
 * or DISK), and the bytes it spills. */
static dkm_status plan_mode(dkm_ctx *ctx, const dkm_params *params, const dkm_source *src,
                            dkm_storage storage, uint64_t *peak, uint64_t *spill) {
  dkm_params p = *params;
  p.storage = storage;
  dkm__sample_plan sp;
  dkm_status s = dkm__sample_plan_make(ctx, &p, src, dkm__tile_rows(p.k, src->dim), &sp);
  if (s != DKM_OK)
    return s;
  const uint32_t k = p.k, dim = src->dim, kc = coarse_k_for(k);
  const uint32_t w = p.n_threads != 0 ? p.n_threads : dkm__cpu_count();
  const int memory = storage == DKM_STORAGE_MEMORY;
  const uint64_t m = sp.sample_rows, sample = sp.sample_bytes;
  /* Kept from the groups to the end: the fine centroids and sizes, the
   * coarse centroids and the groups' bookkeeping. */
  uint64_t kept = (uint64_t)k * (dim * sizeof(float) + sizeof(uint64_t)) +
                  (uint64_t)kc * (dim * sizeof(float) + 3 * sizeof(uint32_t) + sizeof(uint64_t));
  kept += (uint64_t)k * (dim * sizeof(float) + sizeof(uint64_t)); /* the result's, from the start */
  uint64_t grouped = (memory ? sample : 0) + dkm__groups_overhead_bytes(m, dim, kc);
  uint64_t drawn = memory && !sp.from_source ? sample : 0; /* the sample until routed */
  uint64_t gather = sp.gather_block_rows * (dim * sizeof(float) + sizeof(uint32_t));
  /* Routing streams the sample through the engine's blocks. */
  uint64_t route_bytes = drawn + grouped + 2 * sp.block_rows * dim * sizeof(float) +
                         sp.block_rows * (sizeof(int32_t) + sizeof(float));
  /* ... and labels them with the coarse kernel: its packed centroids and a
   * scratch per worker. */
  const uint64_t rtr = dkm__tile_rows(kc, dim);
  route_bytes += (dkm__packed_floats(kc, dim) +
                  (uint64_t)w * (rtr * dkm__tile_cols(kc, dim) + 2 * rtr + dim)) *
                 sizeof(float);
  /* The refinement: a trainer over all k centroids reading the groups,
   * plus the groups' kernels and the per-worker scores of the coarse
   * centroids. A group's training needs less (a trainer of its quota). */
  dkm_source all = *src;
  all.rows = m;
  all.flags = memory ? DKM_SOURCE_RESIDENT : 0;
  all.format = memory ? DKM_FORMAT_MEMORY : DKM_FORMAT_SPILL;
  dkm_params rp = p;
  rp.init = DKM_INIT_GIVEN;
  rp.max_points_per_centroid = 0;
  dkm__sample_plan rsp;
  if ((s = dkm__sample_plan_make(ctx, &rp, &all, sp.tile_rows, &rsp)) != DKM_OK)
    return s;
  uint64_t kernels = (dkm__packed_floats(k, dim) + (uint64_t)32 * kc * dim) * sizeof(float);
  uint64_t scores = (uint64_t)w * sp.tile_rows *
                    (dkm__packed_floats(kc, 1) * sizeof(float) + DKM_REFINE_CANDIDATES * 12 +
                     dim * sizeof(float));
  uint64_t refine_bytes =
      (memory ? sample : 0) + grouped + dkm__trainer_bytes(&rsp, &rp, w, memory) + kernels + scores;
  /* A group's k-means++ keeps 8 bytes per row of the group. */
  if (p.init == DKM_INIT_KMEANSPP || p.init == DKM_INIT_GREEDY_KMEANSPP)
    refine_bytes = DKM__MAX(refine_bytes, (memory ? sample : 0) + grouped +
                                              dkm__trainer_bytes(&rsp, &p, w, memory));
  uint64_t draw_bytes = drawn + gather;
  if (!memory && !sp.from_source)
    draw_bytes += dkm__spill_buffer_bytes(m, dim);
  *peak = kept + DKM__MAX(draw_bytes, DKM__MAX(route_bytes, refine_bytes));
  /* On disk: the sample's spill (unless read in place), the grouped copy,
   * and the coarse training's subsample when it is drawn. */
  uint64_t mc = p.max_points_per_centroid != 0 ? DKM__MIN(m, p.max_points_per_centroid * kc) : m;
  *spill =
      memory ? 0 : (sp.from_source ? 0 : sample) + sample + (mc < m ? mc * dim * sizeof(float) : 0);
  return DKM_OK;
}

dkm_status dkm__plan_hierarchical(dkm_ctx *ctx, const dkm_params *params, const dkm_source *src,
                                  dkm_plan *out) {
  if (params->init == DKM_INIT_GIVEN)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM,
                             "init is given, but hierarchical training chooses its own initial "
                             "centroids per group; use strategy flat to start from given ones");
  dkm__sample_plan sp;
  dkm_status s = sample_plan(ctx, params, src, &sp);
  if (s != DKM_OK)
    return s;
  const uint32_t k = params->k, dim = src->dim, kc = coarse_k_for(k);
  out->strategy = DKM_STRATEGY_HIERARCHICAL;
  out->coarse_k = kc;
  out->storage = sp.storage;
  out->from_source = sp.from_source;
  uint64_t mem_spill = 0, disk_spill = 0;
  if ((s = plan_mode(ctx, params, src, DKM_STORAGE_MEMORY, &out->memory_mode_bytes, &mem_spill)) !=
          DKM_OK ||
      (s = plan_mode(ctx, params, src, DKM_STORAGE_DISK, &out->disk_mode_bytes, &disk_spill)) !=
          DKM_OK)
    return s;
  out->spill_bytes = sp.storage == DKM_STORAGE_DISK ? disk_spill : mem_spill;
  /* The arithmetic, for groups of even sizes: the coarse training on its
   * subsample, the routing, each group's training (its rows against its
   * quota), and the refinement passes (each row against the coarse
   * centroids and its candidate groups' fine ones). */
  const double m = (double)sp.sample_rows, d = dim;
  uint64_t mc = params->max_points_per_centroid != 0
                    ? DKM__MIN(sp.sample_rows, params->max_points_per_centroid * kc)
                    : sp.sample_rows;
  dkm_params cp = *params;
  cp.k = kc;
  double coarse = dkm__flat_flops(&cp, mc, dim);
  double routing = 2.0 * m * kc * d;
  dkm_params gp = *params;
  gp.k = (k + kc - 1) / kc;
  double groups = dkm__flat_flops(&gp, sp.sample_rows, dim);
  double per_row = kc + (double)DKM__MIN(DKM_REFINE_CANDIDATES, kc) * k / kc;
  double refine = 2.0 * m * per_row * d * params->refine;
  out->flops = coarse + routing + groups + refine;
  return DKM_OK;
}
