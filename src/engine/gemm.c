/*
 * gemm.c - see gemm.h.
 *
 * The micro-kernels keep R rows x 32 (or 16) scores in registers and walk
 * the columns once: per column, one load of the panel (16 centroids' values)
 * per 16 scores and one broadcast of each row's value. The loop over panels
 * is outside the loop over row groups so that a pair of panels (32 x dim
 * floats) stays in L1 while the tile's rows come from L2.
 */
#include <cblas.h>
#include <pthread.h>
#include <string.h>

#include "gemm.h"

size_t dkm__packed_floats(uint32_t k, uint32_t dim) {
  size_t kp = ((size_t)k + 31) / 32 * 32;
  return kp * dim;
}

void dkm__pack(const float *v, uint32_t k, uint32_t dim, float *packed) {
  size_t kp = ((size_t)k + 31) / 32 * 32;
  for (size_t q = 0; q < kp / DKM__PANEL; q++) {
    float *panel = packed + q * DKM__PANEL * dim;
    for (uint32_t i = 0; i < DKM__PANEL; i++) {
      size_t c = q * DKM__PANEL + i;
      const float *row = c < k ? v + c * dim : NULL;
      for (uint32_t p = 0; p < dim; p++)
        panel[(size_t)p * DKM__PANEL + i] = row != NULL ? row[p] : 0.0f;
    }
  }
}

static pthread_mutex_t blas_lock = PTHREAD_MUTEX_INITIALIZER;

void dkm__gemm_blas(const float *x, uint32_t rows, uint32_t dim, const float *v, uint32_t n,
                    float *out, uint32_t ldo) {
  pthread_mutex_lock(&blas_lock);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n, (int)dim, 1.0f, x,
              (int)dim, v, (int)dim, 0.0f, out, (int)ldo);
  pthread_mutex_unlock(&blas_lock);
}

/* Where a micro-kernel's scores go: out[i * ldo + j], as they are or, with
 * bias, as bias[j] - scale * score (the assignment's per-centroid value,
 * computed while the scores are still in registers). */
typedef struct store_to {
  float *out;
  uint32_t ldo;
  const float *bias; /* NULL: raw scores */
  float scale;
} store_to;

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_X86_KERNELS 1

/* AVX-512: R rows x P panels (P = 1 or 2) of 16 scores. The accumulation of
 * each score is fma(x[r][p], v[j][p], acc) for p = 0, 1, ..., dim - 1, from
 * zero: the same in every variant. */
#define DEFINE_AVX512_KERNEL(R, P)                                                                 \
  __attribute__((target("avx512f"))) static void k512_##R##x##P(                                   \
      const float *x, uint32_t dim, const float *panel, const store_to *st, uint32_t r0) {         \
    __m512 acc[R][P];                                                                              \
    for (int i = 0; i < R; i++)                                                                    \
      for (int j = 0; j < P; j++)                                                                  \
        acc[i][j] = _mm512_setzero_ps();                                                           \
    const float *b1 = panel + (size_t)DKM__PANEL * dim;                                            \
    for (uint32_t p = 0; p < dim; p++) {                                                           \
      __m512 v0 = _mm512_loadu_ps(panel + (size_t)p * DKM__PANEL);                                 \
      __m512 v1 = P > 1 ? _mm512_loadu_ps(b1 + (size_t)p * DKM__PANEL) : v0;                       \
      for (int i = 0; i < R; i++) {                                                                \
        __m512 xv = _mm512_set1_ps(x[(size_t)i * dim + p]);                                        \
        acc[i][0] = _mm512_fmadd_ps(xv, v0, acc[i][0]);                                            \
        if (P > 1)                                                                                 \
          acc[i][P - 1] = _mm512_fmadd_ps(xv, v1, acc[i][P - 1]);                                  \
      }                                                                                            \
    }                                                                                              \
    const __m512 scale = _mm512_set1_ps(st->scale);                                                \
    for (int j = 0; j < P; j++) {                                                                  \
      const __m512 b = st->bias != NULL ? _mm512_loadu_ps(st->bias + (size_t)j * DKM__PANEL)       \
                                        : _mm512_setzero_ps();                                     \
      for (int i = 0; i < R; i++) {                                                                \
        __m512 v =                                                                                 \
            st->bias != NULL ? _mm512_sub_ps(b, _mm512_mul_ps(scale, acc[i][j])) : acc[i][j];      \
        _mm512_storeu_ps(st->out + (size_t)(r0 + i) * st->ldo + (size_t)j * DKM__PANEL, v);        \
      }                                                                                            \
    }                                                                                              \
  }

DEFINE_AVX512_KERNEL(12, 2)
DEFINE_AVX512_KERNEL(4, 2)
DEFINE_AVX512_KERNEL(1, 2)
DEFINE_AVX512_KERNEL(12, 1)
DEFINE_AVX512_KERNEL(4, 1)
DEFINE_AVX512_KERNEL(1, 1)

__attribute__((target("avx512f"))) static void gemm_avx512(const float *x, uint32_t rows,
                                                           uint32_t dim, const float *packed,
                                                           uint32_t panels, const store_to *st0) {
  for (uint32_t q = 0; q < panels;) {
    const float *panel = packed + (size_t)q * DKM__PANEL * dim;
    store_to st = *st0;
    st.out += (size_t)q * DKM__PANEL;
    if (st.bias != NULL)
      st.bias += (size_t)q * DKM__PANEL;
    const int pair = q + 1 < panels;
    uint32_t r = 0;
    for (; r + 12 <= rows; r += 12) {
      if (pair)
        k512_12x2(x + (size_t)r * dim, dim, panel, &st, r);
      else
        k512_12x1(x + (size_t)r * dim, dim, panel, &st, r);
    }
    for (; r + 4 <= rows; r += 4) {
      if (pair)
        k512_4x2(x + (size_t)r * dim, dim, panel, &st, r);
      else
        k512_4x1(x + (size_t)r * dim, dim, panel, &st, r);
    }
    for (; r < rows; r++) {
      if (pair)
        k512_1x2(x + (size_t)r * dim, dim, panel, &st, r);
      else
        k512_1x1(x + (size_t)r * dim, dim, panel, &st, r);
    }
    q += pair ? 2 : 1;
  }
}

/* AVX2: R rows x one panel of 16 (two registers of 8). */
#define DEFINE_AVX2_KERNEL(R)                                                                      \
  __attribute__((target("avx2,fma"))) static void k256_##R(                                        \
      const float *x, uint32_t dim, const float *panel, const store_to *st, uint32_t r0) {         \
    __m256 acc[R][2];                                                                              \
    for (int i = 0; i < R; i++) {                                                                  \
      acc[i][0] = _mm256_setzero_ps();                                                             \
      acc[i][1] = _mm256_setzero_ps();                                                             \
    }                                                                                              \
    for (uint32_t p = 0; p < dim; p++) {                                                           \
      __m256 v0 = _mm256_loadu_ps(panel + (size_t)p * DKM__PANEL);                                 \
      __m256 v1 = _mm256_loadu_ps(panel + (size_t)p * DKM__PANEL + 8);                             \
      for (int i = 0; i < R; i++) {                                                                \
        __m256 xv = _mm256_set1_ps(x[(size_t)i * dim + p]);                                        \
        acc[i][0] = _mm256_fmadd_ps(xv, v0, acc[i][0]);                                            \
        acc[i][1] = _mm256_fmadd_ps(xv, v1, acc[i][1]);                                            \
      }                                                                                            \
    }                                                                                              \
    const __m256 scale = _mm256_set1_ps(st->scale);                                                \
    for (int j = 0; j < 2; j++) {                                                                  \
      const __m256 b = st->bias != NULL ? _mm256_loadu_ps(st->bias + 8 * j) : _mm256_setzero_ps(); \
      for (int i = 0; i < R; i++) {                                                                \
        __m256 v =                                                                                 \
            st->bias != NULL ? _mm256_sub_ps(b, _mm256_mul_ps(scale, acc[i][j])) : acc[i][j];      \
        _mm256_storeu_ps(st->out + (size_t)(r0 + i) * st->ldo + 8 * j, v);                         \
      }                                                                                            \
    }                                                                                              \
  }

DEFINE_AVX2_KERNEL(6)
DEFINE_AVX2_KERNEL(2)
DEFINE_AVX2_KERNEL(1)

__attribute__((target("avx2,fma"))) static void gemm_avx2(const float *x, uint32_t rows,
                                                          uint32_t dim, const float *packed,
                                                          uint32_t panels, const store_to *st0) {
  for (uint32_t q = 0; q < panels; q++) {
    const float *panel = packed + (size_t)q * DKM__PANEL * dim;
    store_to st = *st0;
    st.out += (size_t)q * DKM__PANEL;
    if (st.bias != NULL)
      st.bias += (size_t)q * DKM__PANEL;
    uint32_t r = 0;
    for (; r + 6 <= rows; r += 6)
      k256_6(x + (size_t)r * dim, dim, panel, &st, r);
    for (; r + 2 <= rows; r += 2)
      k256_2(x + (size_t)r * dim, dim, panel, &st, r);
    for (; r < rows; r++)
      k256_1(x + (size_t)r * dim, dim, panel, &st, r);
  }
}
#endif

typedef void (*gemm_fn)(const float *, uint32_t, uint32_t, const float *, uint32_t,
                        const store_to *);

static int forced = DKM__GEMM_AUTO;

static gemm_fn pick(void) {
  int f = __atomic_load_n(&forced, __ATOMIC_RELAXED);
  if (f == DKM__GEMM_BLAS)
    return NULL;
#ifdef HAVE_X86_KERNELS
  if (f != DKM__GEMM_AVX2 && __builtin_cpu_supports("avx512f"))
    return gemm_avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return gemm_avx2;
#endif
  return NULL;
}

int dkm__gemm_native(void) {
  return pick() != NULL;
}

void dkm__gemm_force(int which) {
  __atomic_store_n(&forced, which, __ATOMIC_RELAXED);
}

void dkm__gemm_packed(const float *x, uint32_t rows, uint32_t dim, const float *packed,
                      uint32_t panels, float *out, uint32_t ldo) {
  gemm_fn f = pick();
  store_to st = {out, ldo, NULL, 0};
  if (f != NULL)
    f(x, rows, dim, packed, panels, &st);
}

void dkm__gemm_packed_biased(const float *x, uint32_t rows, uint32_t dim, const float *packed,
                             uint32_t panels, const float *bias, float scale, float *out,
                             uint32_t ldo) {
  gemm_fn f = pick();
  store_to st = {out, ldo, bias, scale};
  if (f != NULL)
    f(x, rows, dim, packed, panels, &st);
}
