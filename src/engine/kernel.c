/*
 * kernel.c - see kernel.h.
 */
#include <assert.h>
#include <math.h>

#include "gemm.h"
#include "kernel.h"
#include "storage/sample.h"

/* Tile sizes. With OpenBLAS's Haswell kernels (best s/iter over a few runs,
 * one thread): 131,072 x 128, k = 512: 256 rows 0.154-0.158 s, 512 rows
 * 0.151, 1024 rows 0.150; 60,000 x 784, k = 256: 128 rows 0.224-0.228 s,
 * 256 rows 0.216, 512 rows 0.214, 1024 rows 0.219. With the own kernel
 * (gemm.c) 192 to 1024 rows and 256 or 512 centroids were all within the
 * noise of a shared machine (0.083-0.089 s and 0.111-0.143 s); 512 x 512 (1
 * MiB of scores: one L2) stays. */
#define TILE_ROWS 512u
#define TILE_COLS_MAX 512u

/* A tile of rows is also the smallest block the engine streams (blocks are
 * whole tiles), so at a large dim 512 rows would make disk mode's two block
 * buffers gigabytes (4 GiB at dim 2^20), more than the sample memory mode
 * holds. Tiles therefore keep to 8 MiB of float32 (disk mode's block
 * budget, sample.c): 512 rows up to dim 4096, then halving with each
 * doubling of dim, down to 2 rows at dim 2^20 (at least 1 row). It stays
 * a function of (k, dim) only, as determinism needs (kernel.h); below dim
 * 4097 nothing changes. */
#define TILE_BYTES (UINT64_C(8) << 20)

uint32_t dkm__tile_rows(uint32_t k, uint32_t dim) {
  (void)k;
  uint64_t fit = TILE_BYTES / ((uint64_t)DKM__MAX(dim, 1) * sizeof(float));
  uint32_t rows = TILE_ROWS;
  while (rows > 1 && rows > fit)
    rows /= 2;
  return rows;
}

uint32_t dkm__tile_cols(uint32_t k, uint32_t dim) {
  (void)dim;
  /* As few centroid tiles as TILE_COLS_MAX allows, of equal size rounded up
   * to a pair of panels (32), so that k = 513 is not one full tile and one of
   * a single centroid, and every tile starts on a panel pair. */
  uint32_t tiles = (k + TILE_COLS_MAX - 1) / TILE_COLS_MAX;
  uint32_t cols = (k + tiles - 1) / tiles;
  return (cols + 31) & ~31u;
}

void dkm__kernel_init(dkm__kernel *kern, uint32_t k, uint32_t dim, dkm_metric metric,
                      const float *centroids, const float *cnorm, const float *packed,
                      const float *bias) {
  kern->k = k;
  kern->dim = dim;
  kern->tile_rows = dkm__tile_rows(k, dim);
  kern->tile_cols = dkm__tile_cols(k, dim);
  kern->metric = metric;
  kern->centroids = centroids;
  kern->cnorm = cnorm;
  kern->packed = packed;
  kern->bias = bias;
}

void dkm__kernel_bias(dkm_metric metric, const float *cnorm, uint32_t k, float *out) {
  size_t n = dkm__packed_floats(k, 1);
  for (size_t c = 0; c < n; c++)
    out[c] = c >= k ? INFINITY : metric == DKM_METRIC_L2 ? cnorm[c] : 0.0f;
}

size_t dkm__kernel_scratch_floats(const dkm__kernel *kern) {
  /* The scores, each row's running minimum and shift, and a shifted row. */
  return (size_t)kern->tile_rows * kern->tile_cols + 2 * (size_t)kern->tile_rows + kern->dim;
}

int dkm__cosine_scale(const float *x, uint32_t dim, float *tmp, int *shift, float *s, double *inv) {
  *shift = 0;
  *s = 0.0f;
  *inv = 0;
  float n2 = dkm__row_norm2(x, dim);
  if (!(n2 >= 0x1p-100f && n2 <= 0x1p100f)) {
    /* Outside the safe range (or not finite): the norm from the sum of
     * squares in double, which cannot overflow or underflow, gives the
     * shift; then the float norm of the shifted row, as for any other. */
    double n2d = 0;
    for (uint32_t j = 0; j < dim; j++)
      n2d += (double)x[j] * (double)x[j];
    if (!isfinite(n2d))
      return 0;
    if (n2d == 0)
      return 1;
    int e;
    (void)frexp(sqrt(n2d), &e); /* norm = f 2^e, f in [1/2, 1) */
    dkm__shift_row(x, dim, e, tmp);
    n2 = dkm__row_norm2(tmp, dim);
    *shift = e;
  }
  /* From the float squared norm, as for every row: rows inside the range
   * keep the bits they had before shifting existed. */
  *s = (float)(1.0 / sqrt((double)n2));
  *inv = ldexp((double)*s, -*shift);
  return 1;
}

void dkm__shift_row(const float *x, uint32_t dim, int shift, float *out) {
  for (uint32_t j = 0; j < dim; j++)
    out[j] = (float)ldexp((double)x[j], -shift);
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

/*
 * The argmin of a row of values v_c = ||c||^2 - 2 x.c (L2; the row's own
 * ||x||^2 is added at the end) or -x.c (inner product and cosine), which the
 * GEMM stores (dkm__gemm_packed_biased). It must find exactly what a plain
 * scan with a strict < finds: the first index of the minimum. It runs in two
 * steps: the minimum value (vector min instructions; the minimum of finite
 * floats does not depend on the order it is taken in), then the first index
 * whose value equals it (a vector compare that stops at the first match,
 * usually early). Each instruction set has its own version, chosen at run
 * time; all give the same answer.
 */
typedef uint32_t (*argmin_fn)(const float *v, uint32_t n);

static uint32_t argmin_plain(const float *v, uint32_t n) {
  float best = INFINITY;
  uint32_t arg = 0;
  for (uint32_t c = 0; c < n; c++) {
    if (v[c] < best) {
      best = v[c];
      arg = c;
    }
  }
  return arg;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DKM__HAVE_X86_ARGMIN 1

__attribute__((target("avx512f"))) static uint32_t argmin_avx512(const float *v, uint32_t n) {
  __m512 m0 = _mm512_set1_ps(INFINITY), m1 = m0;
  uint32_t c = 0;
  for (; c + 32 <= n; c += 32) {
    m0 = _mm512_min_ps(m0, _mm512_loadu_ps(v + c));
    m1 = _mm512_min_ps(m1, _mm512_loadu_ps(v + c + 16));
  }
  float best = _mm512_reduce_min_ps(_mm512_min_ps(m0, m1));
  for (; c < n; c++)
    best = v[c] < best ? v[c] : best;
  const __m512 target = _mm512_set1_ps(best);
  for (c = 0; c + 16 <= n; c += 16) {
    __mmask16 eq = _mm512_cmp_ps_mask(_mm512_loadu_ps(v + c), target, _CMP_EQ_OQ);
    if (eq != 0)
      return c + (uint32_t)__builtin_ctz((unsigned)eq);
  }
  for (; c < n; c++)
    if (v[c] == best)
      return c;
  return argmin_plain(v, n); /* NaN values only: rows are checked finite */
}

__attribute__((target("avx2"))) static uint32_t argmin_avx2(const float *v, uint32_t n) {
  __m256 m0 = _mm256_set1_ps(INFINITY), m1 = m0;
  uint32_t c = 0;
  for (; c + 16 <= n; c += 16) {
    m0 = _mm256_min_ps(m0, _mm256_loadu_ps(v + c));
    m1 = _mm256_min_ps(m1, _mm256_loadu_ps(v + c + 8));
  }
  float lanes[8];
  _mm256_storeu_ps(lanes, _mm256_min_ps(m0, m1));
  float best = INFINITY;
  for (int l = 0; l < 8; l++)
    best = lanes[l] < best ? lanes[l] : best;
  for (; c < n; c++)
    best = v[c] < best ? v[c] : best;
  const __m256 target = _mm256_set1_ps(best);
  for (c = 0; c + 8 <= n; c += 8) {
    int eq = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(v + c), target, _CMP_EQ_OQ));
    if (eq != 0)
      return c + (uint32_t)__builtin_ctz((unsigned)eq);
  }
  for (; c < n; c++)
    if (v[c] == best)
      return c;
  return argmin_plain(v, n);
}
#endif

static argmin_fn pick_argmin(void) {
#ifdef DKM__HAVE_X86_ARGMIN
  if (__builtin_cpu_supports("avx512f"))
    return argmin_avx512;
  if (__builtin_cpu_supports("avx2"))
    return argmin_avx2;
#endif
  return argmin_plain;
}

float dkm__min_value(const float *v, uint32_t n) {
  return v[pick_argmin()(v, n)];
}

uint32_t dkm__assign_tile(const dkm__kernel *kern, const float *x, uint32_t rows, float *scratch,
                          int32_t *labels, float *dist, double *inv) {
  assert(rows >= 1 && rows <= kern->tile_rows);
  const uint32_t dim = kern->dim, k = kern->k, tc = kern->tile_cols;
  const int cosine = kern->metric == DKM_METRIC_COSINE;
  float *scores = scratch;
  float *best = scratch + (size_t)kern->tile_rows * tc; /* running minimum per row */
  float *shifts = best + kern->tile_rows;    /* cosine: each row's shift (small integers) */
  float *shifted = shifts + kern->tile_rows; /* a shifted row */
  uint32_t bad = UINT32_MAX, n_shifted = 0;
  for (uint32_t r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * dim;
    /* dist holds ||x||^2 (cosine: the shifted row's 1/norm) until the end. */
    if (cosine) {
      int shift;
      double iv;
      if (!dkm__cosine_scale(xr, dim, shifted, &shift, &dist[r], &iv) && bad == UINT32_MAX)
        bad = r;
      shifts[r] = (float)shift;
      n_shifted += shift != 0;
      if (inv != NULL)
        inv[r] = iv;
    } else {
      float n2 = dkm__row_norm2(xr, dim);
      if (!dkm__norm2_ok(n2) && bad == UINT32_MAX)
        bad = r;
      dist[r] = n2;
      if (inv != NULL)
        inv[r] = 1;
    }
    best[r] = INFINITY;
    labels[r] = 0;
  }
  if (bad != UINT32_MAX)
    return bad;

  const float scale = kern->metric == DKM_METRIC_L2 ? 2.0f : 1.0f;
  const argmin_fn argmin = pick_argmin();
  for (uint32_t c0 = 0; c0 < k; c0 += tc) {
    uint32_t kc = DKM__MIN(tc, k - c0);
    uint32_t panels = (kc + DKM__PANEL - 1) / DKM__PANEL, ldo = panels * DKM__PANEL;
    const float *bias = kern->bias + c0;
    if (kern->packed != NULL) {
      dkm__gemm_packed_biased(x, rows, dim, kern->packed + (size_t)c0 * dim, panels, bias, scale,
                              scores, ldo);
    } else {
      dkm__gemm_blas(x, rows, dim, kern->centroids + (size_t)c0 * dim, kc, scores, ldo);
      for (uint32_t r = 0; r < rows; r++)
        for (uint32_t c = 0; c < kc; c++)
          scores[(size_t)r * ldo + c] = bias[c] - scale * scores[(size_t)r * ldo + c];
    }
    /* Cosine rows outside the safe range: their scores again, shifted. */
    for (uint32_t r = 0; n_shifted > 0 && r < rows; r++) {
      if (shifts[r] == 0)
        continue;
      dkm__shift_row(x + (size_t)r * dim, dim, (int)shifts[r], shifted);
      float *out = scores + (size_t)r * ldo;
      if (kern->packed != NULL) {
        dkm__gemm_packed_biased(shifted, 1, dim, kern->packed + (size_t)c0 * dim, panels, bias,
                                scale, out, ldo);
      } else {
        dkm__gemm_blas(shifted, 1, dim, kern->centroids + (size_t)c0 * dim, kc, out, ldo);
        for (uint32_t c = 0; c < kc; c++)
          out[c] = bias[c] - scale * out[c];
      }
    }
    for (uint32_t r = 0; r < rows; r++) {
      const float *row = scores + (size_t)r * ldo;
      uint32_t bi = argmin(row, kc);
      /* A later centroid tile replaces the running best only when strictly
       * better, so the lowest index wins ties across tiles too. */
      if (row[bi] < best[r]) {
        best[r] = row[bi];
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
      break;
    }
    case DKM_METRIC_IP:
      dist[r] = b;
      break;
    case DKM_METRIC_COSINE: {
      /* b = -x.c with c of unit norm (x shifted where needed) and n2 the
       * shifted row's 1/||x||; a zero row has cosine 0 with every centroid
       * (distance 1) and adds nothing to the sums. */
      float d = 1.0f + b * n2;
      dist[r] = d > 0 ? d : 0.0f; /* a cosine rounded above 1 */
      break;
    }
    }
  }
  return UINT32_MAX;
}
