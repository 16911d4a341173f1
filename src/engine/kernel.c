/*
 * kernel.c - see kernel.h.
 */
#include <assert.h>
#include <cblas.h>
#include <math.h>

#include "kernel.h"
#include "storage/sample.h"

/* Lanes of the argmin: the scores of a row are scanned as LANES interleaved
 * running minima (which the compiler turns into vector compares and blends),
 * then the lanes are merged taking the lowest index among equal minima. That
 * is exactly the first minimum a plain scan would find. */
#define LANES 16

uint32_t dkm__tile_rows(uint32_t k, uint32_t dim) {
  (void)k;
  /* A tile of rows should stay in L2 next to the scores: about 128 KiB of
   * rows, at least 64 and at most 512 rows, a multiple of 16 (the GEMM's
   * row unroll). */
  uint64_t rows = (UINT64_C(128) << 10) / ((uint64_t)dim * sizeof(float));
  rows = DKM__MAX(rows, 64);
  rows = DKM__MIN(rows, 512);
  return (uint32_t)(rows & ~UINT64_C(15));
}

uint32_t dkm__tile_cols(uint32_t k, uint32_t dim) {
  (void)dim;
  /* Scores of a tile (rows x cols floats) should fit L2 with the tile. */
  return DKM__MIN(k, 1024u);
}

void dkm__kernel_init(dkm__kernel *kern, uint32_t k, uint32_t dim, dkm_metric metric,
                      const float *centroids, const float *cnorm) {
  kern->k = k;
  kern->dim = dim;
  kern->tile_rows = dkm__tile_rows(k, dim);
  kern->tile_cols = dkm__tile_cols(k, dim);
  kern->metric = metric;
  kern->centroids = centroids;
  kern->cnorm = cnorm;
}

size_t dkm__kernel_scratch_floats(const dkm__kernel *kern) {
  return (size_t)kern->tile_rows * kern->tile_cols + kern->tile_rows;
}

void dkm__centroid_norms(const float *centroids, uint32_t k, uint32_t dim, float *out) {
  for (uint32_t c = 0; c < k; c++)
    out[c] = dkm__row_norm2(centroids + (size_t)c * dim, dim);
}

void dkm__normalize(float *x, uint32_t dim) {
  double n2 = 0;
  for (uint32_t j = 0; j < dim; j++)
    n2 += (double)x[j] * (double)x[j];
  if (n2 == 0)
    return;
  double inv = 1.0 / sqrt(n2);
  for (uint32_t j = 0; j < dim; j++)
    x[j] = (float)((double)x[j] * inv);
}

/* First minimum of bias[c] - 2 s[c] (L2) or of -s[c] (bias NULL: inner
 * product and cosine) over c in [0, n): value in *best, index in *arg. */
static void argmin_scores(const float *s, const float *bias, uint32_t n, float *best,
                          uint32_t *arg) {
  float m[LANES];
  uint32_t id[LANES];
  for (int l = 0; l < LANES; l++) {
    m[l] = INFINITY;
    id[l] = UINT32_MAX;
  }
  uint32_t c = 0;
  if (bias != NULL) {
    for (; c + LANES <= n; c += LANES) {
      for (int l = 0; l < LANES; l++) {
        float v = bias[c + l] - 2.0f * s[c + l];
        uint32_t i = c + (uint32_t)l;
        id[l] = v < m[l] ? i : id[l];
        m[l] = v < m[l] ? v : m[l];
      }
    }
  } else {
    for (; c + LANES <= n; c += LANES) {
      for (int l = 0; l < LANES; l++) {
        float v = -s[c + l];
        uint32_t i = c + (uint32_t)l;
        id[l] = v < m[l] ? i : id[l];
        m[l] = v < m[l] ? v : m[l];
      }
    }
  }
  float bv = INFINITY;
  uint32_t bi = UINT32_MAX;
  for (int l = 0; l < LANES; l++) {
    if (m[l] < bv || (m[l] == bv && id[l] < bi)) {
      bv = m[l];
      bi = id[l];
    }
  }
  for (; c < n; c++) {
    float v = bias != NULL ? bias[c] - 2.0f * s[c] : -s[c];
    if (v < bv) {
      bv = v;
      bi = c;
    }
  }
  *best = bv;
  *arg = bi;
}

uint32_t dkm__assign_tile(const dkm__kernel *kern, const float *x, uint32_t rows, float *scratch,
                          int32_t *labels, float *dist, float *inv) {
  assert(rows >= 1 && rows <= kern->tile_rows);
  const uint32_t dim = kern->dim, k = kern->k, tc = kern->tile_cols;
  float *scores = scratch;
  float *best = scratch + (size_t)kern->tile_rows * tc; /* running minimum per row */
  uint32_t bad = UINT32_MAX;
  for (uint32_t r = 0; r < rows; r++) {
    float n2 = dkm__row_norm2(x + (size_t)r * dim, dim);
    if (!isfinite(n2) && bad == UINT32_MAX)
      bad = r;
    /* dist holds ||x||^2 until the end. */
    dist[r] = n2;
    best[r] = INFINITY;
    labels[r] = 0;
  }
  if (bad != UINT32_MAX)
    return bad;

  const float *bias = kern->metric == DKM_METRIC_L2 ? kern->cnorm : NULL;
  for (uint32_t c0 = 0; c0 < k; c0 += tc) {
    uint32_t kc = DKM__MIN(tc, k - c0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)kc, (int)dim, 1.0f, x,
                (int)dim, kern->centroids + (size_t)c0 * dim, (int)dim, 0.0f, scores, (int)kc);
    for (uint32_t r = 0; r < rows; r++) {
      float bv;
      uint32_t bi;
      argmin_scores(scores + (size_t)r * kc, bias != NULL ? bias + c0 : NULL, kc, &bv, &bi);
      /* A later centroid tile replaces the running best only when strictly
       * better, so the lowest index wins ties across tiles too. */
      if (bv < best[r]) {
        best[r] = bv;
        labels[r] = (int32_t)(c0 + bi);
      }
    }
  }

  for (uint32_t r = 0; r < rows; r++) {
    float n2 = dist[r], b = best[r];
    switch (kern->metric) {
    case DKM_METRIC_L2: {
      float d = n2 + b;
      dist[r] = d > 0 ? d : 0.0f; /* cancellation can leave a tiny negative */
      if (inv != NULL)
        inv[r] = 1.0f;
      break;
    }
    case DKM_METRIC_IP:
      dist[r] = b;
      if (inv != NULL)
        inv[r] = 1.0f;
      break;
    case DKM_METRIC_COSINE: {
      /* b = -x.c with c of unit norm; a zero row has cosine 0 with every
       * centroid (distance 1) and adds nothing to the sums. */
      float s = n2 > 0 ? (float)(1.0 / sqrt((double)n2)) : 0.0f;
      dist[r] = 1.0f + b * s;
      if (inv != NULL)
        inv[r] = s;
      break;
    }
    }
  }
  return UINT32_MAX;
}
