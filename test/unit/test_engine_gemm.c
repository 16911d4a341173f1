/*
 * test_engine_gemm.c - the engine's own matrix product: right (against a
 * double-precision dot product), the same bits for a row wherever it sits
 * in a tile, the same bits with the AVX2 and the AVX-512 kernels (so a
 * whole training is identical with either), zero scores past k, and the
 * BLAS fallback close to it (and deterministic through a whole training).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gemm.h"
#include "test_support.h"

static float *random_floats(uint64_t *st, size_t n) {
  float *v = malloc(sizeof(float) * (n ? n : 1));
  for (size_t i = 0; i < n; i++)
    v[i] = (float)(dkm_test_normal(st));
  return v;
}

/* Scores of rows x (rows x dim) against k vectors, through the packed
 * kernel; out is rows x ldo. */
static float *scores(const float *x, uint32_t rows, uint32_t dim, const float *v, uint32_t k,
                     uint32_t *ldo) {
  float *packed = malloc(sizeof(float) * dkm__packed_floats(k, dim));
  dkm__pack(v, k, dim, packed);
  uint32_t panels = (k + DKM__PANEL - 1) / DKM__PANEL;
  *ldo = panels * DKM__PANEL;
  float *out = malloc(sizeof(float) * rows * *ldo);
  dkm__gemm_packed(x, rows, dim, packed, panels, out, *ldo);
  free(packed);
  return out;
}

/* Blobs in a memory source, and k-means++ params that run 5 iterations
 * whatever the shift (tol 0): a training to compare kernel to kernel. */
typedef struct training {
  float *data;
  dkm_ctx *ctx;
  dkm_source *src;
  dkm_params p;
} training;

static void training_open(training *t, uint64_t n, uint32_t dim, uint32_t k, uint32_t clusters,
                          double sigma, uint64_t seed) {
  t->data = dkm_test_blobs(n, dim, clusters, sigma, seed, NULL);
  t->ctx = dkm_ctx_create(NULL);
  assert_int_equal(dkm_source_from_memory(t->ctx, t->data, DKM_DTYPE_F32, n, dim, &t->src), DKM_OK);
  dkm_params_init(&t->p);
  t->p.k = k;
  t->p.init = DKM_INIT_KMEANSPP;
  t->p.tol = 0;
  t->p.max_iter = 5;
}

static void training_close(training *t) {
  dkm_source_close(t->src);
  dkm_ctx_free(t->ctx);
  free(t->data);
}

static void products_are_right_for_every_shape(void **state) {
  (void)state;
  if (!dkm__gemm_native())
    skip();
  uint64_t st = 5;
  const uint32_t dims[] = {1, 2, 3, 7, 16, 17, 64, 129, 784};
  for (int avx2 = 0; avx2 < 2; avx2++) {
    dkm__gemm_force(avx2 ? DKM__GEMM_AVX2 : DKM__GEMM_AUTO);
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
      for (uint32_t k = 1; k <= 70; k += 23) {
        for (uint32_t rows = 1; rows <= 30; rows += 7) {
          uint32_t dim = dims[di], ldo;
          float *x = random_floats(&st, (size_t)rows * dim);
          float *v = random_floats(&st, (size_t)k * dim);
          float *s = scores(x, rows, dim, v, k, &ldo);
          for (uint32_t r = 0; r < rows; r++) {
            for (uint32_t c = 0; c < ldo; c++) {
              double want = 0, mag = 0;
              if (c < k)
                for (uint32_t p = 0; p < dim; p++) {
                  want += (double)x[r * dim + p] * v[c * dim + p];
                  mag += fabs((double)x[r * dim + p] * v[c * dim + p]);
                }
              /* Past k the packed vectors are zero. */
              if (fabs(s[r * ldo + c] - want) > 1e-5 * (mag + 1))
                fail_msg("avx2 %d dim %u k %u rows %u: score (%u, %u) is %g, not %g", avx2, dim, k,
                         rows, r, c, s[r * ldo + c], want);
            }
          }
          free(x);
          free(v);
          free(s);
        }
      }
    }
  }
  dkm__gemm_force(DKM__GEMM_AUTO);
}

static void a_row_scores_the_same_wherever_it_sits(void **state) {
  (void)state;
  if (!dkm__gemm_native())
    skip();
  uint64_t st = 6;
  const uint32_t rows = 29, dim = 37, k = 45;
  float *x = random_floats(&st, (size_t)rows * dim);
  float *v = random_floats(&st, (size_t)k * dim);
  uint32_t ldo, ldo1;
  float *all = scores(x, rows, dim, v, k, &ldo);
  /* Each row alone (the 1-row kernel), and the rows from 5 on (other
   * register blocks): the same bits as in the 29-row call. */
  for (uint32_t r = 0; r < rows; r++) {
    float *one = scores(x + r * dim, 1, dim, v, k, &ldo1);
    assert_memory_equal(one, all + r * ldo, sizeof(float) * k);
    free(one);
  }
  float *tail = scores(x + 5 * dim, rows - 5, dim, v, k, &ldo1);
  assert_memory_equal(tail, all + 5 * ldo, sizeof(float) * (rows - 5) * ldo);
  free(tail);
  free(all);
  free(x);
  free(v);
}

static void avx2_and_avx512_give_the_same_bits(void **state) {
  (void)state;
  if (!__builtin_cpu_supports("avx512f") || !dkm__gemm_native())
    skip();
  uint64_t st = 7;
  const uint32_t rows = 100, dim = 130, k = 77;
  float *x = random_floats(&st, (size_t)rows * dim);
  float *v = random_floats(&st, (size_t)k * dim);
  uint32_t ldo;
  float *a = scores(x, rows, dim, v, k, &ldo);
  dkm__gemm_force(DKM__GEMM_AVX2);
  float *b = scores(x, rows, dim, v, k, &ldo);
  dkm__gemm_force(DKM__GEMM_AUTO);
  assert_memory_equal(a, b, sizeof(float) * rows * ldo);
  free(a);
  free(b);
  free(x);
  free(v);

  /* So a whole training is the same with either kernel. */
  enum { N = 6000, D = 24, K = 40 };
  training t;
  training_open(&t, N, D, K, 30, 3.0, 8);
  dkm_ctx *ctx = t.ctx;
  dkm_source *src = t.src;
  dkm_params p = t.p;
  p.n_threads = 2;
  for (int metric = DKM_METRIC_L2; metric <= DKM_METRIC_IP; metric++) {
    p.metric = (dkm_metric)metric;
    dkm_result *r512, *r256;
    assert_int_equal(dkm_train(ctx, &p, src, &r512), DKM_OK);
    dkm__gemm_force(DKM__GEMM_AVX2);
    assert_int_equal(dkm_train(ctx, &p, src, &r256), DKM_OK);
    dkm__gemm_force(DKM__GEMM_AUTO);
    assert_memory_equal(r512->centroids, r256->centroids, sizeof(float) * K * D);
    assert_memory_equal(&r512->objective, &r256->objective, sizeof(double));
    dkm_result_free(r512);
    dkm_result_free(r256);
  }
  training_close(&t);
}

static void blas_fallback_agrees(void **state) {
  (void)state;
  uint64_t st = 8;
  const uint32_t rows = 40, dim = 33, k = 21;
  float *x = random_floats(&st, (size_t)rows * dim);
  float *v = random_floats(&st, (size_t)k * dim);
  float *out = malloc(sizeof(float) * rows * 32);
  dkm__gemm_blas(x, rows, dim, v, k, out, 32);
  for (uint32_t r = 0; r < rows; r++)
    for (uint32_t c = 0; c < k; c++) {
      double want = 0;
      for (uint32_t p = 0; p < dim; p++)
        want += (double)x[r * dim + p] * v[c * dim + p];
      assert_float_equal(out[r * 32 + c], want, 1e-4 * (1 + fabs(want)));
    }
  free(out);
  free(x);
  free(v);
}

static void training_through_the_blas_fallback_is_deterministic(void **state) {
  (void)state;
  enum { N = 9000, D = 20, K = 30 };
  training t;
  training_open(&t, N, D, K, 25, 2.0, 9);
  dkm_ctx *ctx = t.ctx;
  dkm_source *src = t.src;
  dkm_params p = t.p;
  p.max_points_per_centroid = 0;
  dkm_result *native, *blas1, *blas2;
  assert_int_equal(dkm_train(ctx, &p, src, &native), DKM_OK);
  dkm__gemm_force(DKM__GEMM_BLAS);
  assert_false(dkm__gemm_native());
  p.n_threads = 1;
  p.block_rows = 700;
  assert_int_equal(dkm_train(ctx, &p, src, &blas1), DKM_OK);
  p.n_threads = 2;
  p.block_rows = 0;
  assert_int_equal(dkm_train(ctx, &p, src, &blas2), DKM_OK);
  int32_t *labels = malloc(sizeof(int32_t) * N);
  assert_int_equal(dkm_assign(ctx, &p, src, blas1->centroids, K, D, labels, NULL), DKM_OK);
  dkm__gemm_force(DKM__GEMM_AUTO);
  /* The fallback is deterministic too (fixed tiles), and close to the own
   * kernel (rounding differs, so not bitwise). */
  assert_memory_equal(blas1->centroids, blas2->centroids, sizeof(float) * K * D);
  assert_float_equal(blas1->objective, native->objective, 1e-3 * native->objective);
  for (int i = 0; i < N; i++)
    assert_true(labels[i] >= 0 && labels[i] < K);
  free(labels);
  dkm_result_free(native);
  dkm_result_free(blas1);
  dkm_result_free(blas2);
  training_close(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(products_are_right_for_every_shape),
      cmocka_unit_test(a_row_scores_the_same_wherever_it_sits),
      cmocka_unit_test(avx2_and_avx512_give_the_same_bits),
      cmocka_unit_test(blas_fallback_agrees),
      cmocka_unit_test(training_through_the_blas_fallback_is_deterministic),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
