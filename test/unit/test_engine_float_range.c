/*
 * test_engine_float_range.c - right answers at the edges of the float range:
 * rows and centroids whose squared norm is above the bound every distance
 * fits under (DKM__MAX_NORM2) are refused, in training and assignment,
 * from memory and from a file; rows at the bound give right labels and
 * finite distances on every GEMM path; and training is exactly scale
 * invariant up to it. Cosine works on directions over the whole float
 * range, subnormals included: rows scaled by any power of two give the same
 * labels, distances and centroids, bit for bit.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gemm.h"
#include "test_support.h"

static void expect_msg(dkm_ctx *ctx, const char *word) {
  if (strstr(dkm_ctx_errmsg(ctx), word) == NULL)
    fail_msg("message \"%s\" lacks \"%s\"", dkm_ctx_errmsg(ctx), word);
}

/* Writes n x dim rows as an .fvecs file in dir; returns its path. */
static char *write_fvecs(const char *dir, const char *name, const float *x, uint64_t n,
                         uint32_t dim) {
  size_t len = strlen(dir) + strlen(name) + 2;
  char *path = malloc(len);
  snprintf(path, len, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  for (uint64_t i = 0; i < n; i++) {
    int32_t d = (int32_t)dim;
    assert_int_equal(fwrite(&d, sizeof d, 1, f), 1);
    assert_int_equal(fwrite(x + i * dim, sizeof(float), dim, f), dim);
  }
  assert_int_equal(fclose(f), 0);
  return path;
}

/* Opens rows from memory (file == 0) or from an .fvecs file in dir. */
static dkm_source *open_rows(dkm_ctx *ctx, const char *dir, int file, const float *x, uint64_t n,
                             uint32_t dim) {
  dkm_source *src = NULL;
  if (!file) {
    assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, n, dim, &src), DKM_OK);
  } else {
    char *path = write_fvecs(dir, "x.fvecs", x, n, dim);
    assert_int_equal(dkm_source_open_file(ctx, path, NULL, &src), DKM_OK);
    free(path);
  }
  return src;
}

/* The reproducer of the overflow: ||row 0||^2 = 2.56e38 passed the old
 * finite check, and ||c||^2 - 2 x.c overflowed to -inf: label 0, distance
 * 0, where the truth is label 1. Such rows and centroids are refused now,
 * for L2 and inner product, whatever the source. */
static void assign_refuses_rows_and_centroids_above_the_bound(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("float-range-assign");
  assert_non_null(dir);
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  const float big_c[2] = {1.4e19f, 1.6e19f}, small_c[2] = {1, 2};
  const float rows[3] = {1.6e19f, 1.45e19f, 1};
  int32_t labels[3];
  float dist[3];
  for (int file = 0; file < 2; file++) {
    for (int metric = DKM_METRIC_L2; metric <= DKM_METRIC_IP; metric += 2) {
      dkm_params p;
      dkm_params_init(&p);
      p.metric = (dkm_metric)metric;
      p.n_threads = 2;
      dkm_source *src = open_rows(ctx, dir, file, rows, 3, 1);
      assert_int_equal(dkm_assign(ctx, &p, src, big_c, 2, 1, labels, dist), DKM_ERR_DATA);
      expect_msg(ctx, "centroids: centroid 0 has squared norm 1.96e+38, above 4.25e+37");
      expect_msg(ctx, "scale the data");
      assert_int_equal(dkm_assign(ctx, &p, src, small_c, 2, 1, labels, dist), DKM_ERR_DATA);
      expect_msg(ctx, "row 0 has squared norm 2.56e+38, above 4.25e+37");
      expect_msg(ctx, file ? "x.fvecs: row 0" : "memory: row 0");
      dkm_source_close(src);
    }
  }
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  dkm_test_rmtree(dir);
  free(dir);
}

/* Training refuses given centroids above the bound (every metric but
 * cosine, which normalises them). */
static void train_refuses_given_centroids_above_the_bound(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  const float rows[4] = {0, 1, 2, 3};
  const float given[2] = {1, 1e19f};
  for (int metric = DKM_METRIC_L2; metric <= DKM_METRIC_IP; metric++) {
    dkm_params p;
    dkm_params_init(&p);
    p.k = 2;
    p.metric = (dkm_metric)metric;
    p.init = DKM_INIT_GIVEN;
    p.init_centroids = given;
    dkm_source *src;
    assert_int_equal(dkm_source_from_memory(ctx, rows, DKM_DTYPE_F32, 4, 1, &src), DKM_OK);
    dkm_result *r = NULL;
    dkm_status s = dkm_train(ctx, &p, src, &r);
    if (metric == DKM_METRIC_COSINE) {
      assert_int_equal(s, DKM_OK);
      dkm_result_free(r);
    } else {
      assert_int_equal(s, DKM_ERR_PARAM);
      assert_null(r);
      expect_msg(ctx, "init_centroids: centroid 1 has squared norm 1e+38, above 4.25e+37");
    }
    dkm_source_close(src);
  }
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

/* Rows whose squared norm is just under the bound, against centroids at
 * the opposite end (the largest distance there is, 4 T): every GEMM path
 * gives the naive labels and finite distances close to the exact ones. */
static void rows_at_the_bound_give_right_labels_and_finite_distances(void **state) {
  (void)state;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  enum { N = 300, D = 5, K = 40 };
  float *x = dkm_test_blobs(N, D, 8, 1.0, 7, NULL);
  float *c = dkm_test_blobs(K, D, 8, 1.0, 8, NULL);
  /* Scale rows and centroids so that the largest squared norm, row 0's, is
   * 0.99 T. */
  for (int j = 0; j < D; j++)
    x[j] *= 1000;
  double top = 0;
  for (int i = 0; i < N + K; i++) {
    const float *v = i < N ? x + i * D : c + (i - N) * D;
    double n2 = 0;
    for (int j = 0; j < D; j++)
      n2 += (double)v[j] * v[j];
    top = n2 > top ? n2 : top;
  }
  double s = sqrt(0.99 * 0x1p125 / top);
  for (int i = 0; i < N * D; i++)
    x[i] = (float)(x[i] * s);
  for (int i = 0; i < K * D; i++)
    c[i] = (float)(c[i] * s);
  for (int j = 0; j < D; j++) /* centroid 0 opposite row 0 */
    c[j] = -x[j];
  int32_t *naive = malloc(sizeof(int32_t) * N), labels[N];
  float dist[N];
  dkm_test_objective(x, N, D, c, K, naive);
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, N, D, &src), DKM_OK);
  for (int path = 0; path < 3; path++) {
    dkm__gemm_force(path == 0 ? DKM__GEMM_AUTO : path == 1 ? DKM__GEMM_AVX2 : DKM__GEMM_BLAS);
    for (int metric = DKM_METRIC_L2; metric <= DKM_METRIC_IP; metric += 2) {
      dkm_params p;
      dkm_params_init(&p);
      p.metric = (dkm_metric)metric;
      assert_int_equal(dkm_assign(ctx, &p, src, c, K, D, labels, dist), DKM_OK);
      for (int i = 0; i < N; i++) {
        assert_true(isfinite(dist[i]));
        if (metric == DKM_METRIC_IP)
          continue;
        double d2 = 0, dn = 0;
        for (int j = 0; j < D; j++) {
          double u = (double)x[i * D + j] - c[labels[i] * D + j];
          double v = (double)x[i * D + j] - c[naive[i] * D + j];
          d2 += u * u;
          dn += v * v;
        }
        assert_true(fabs(d2 - dn) <= 1e-4 * dn); /* the nearest, or a near tie */
        assert_true(fabs(dist[i] - d2) <= 1e-4 * 0x1p125);
      }
    }
  }
  dkm__gemm_force(DKM__GEMM_AUTO);
  /* The largest distance is there and finite: row 0 to centroid 0. */
  float far[K * D];
  for (int i = 0; i < K * D; i++)
    far[i] = c[i % D];
  dkm_params p;
  dkm_params_init(&p);
  assert_int_equal(dkm_assign(ctx, &p, src, far, 1, D, labels, dist), DKM_OK);
  assert_true(isfinite(dist[0]) && dist[0] > 3.9f * 0x1p125f);
  dkm_source_close(src);
  free(naive);
  free(x);
  free(c);
  dkm_ctx_free(ctx);
}

/* Training on rows scaled by a power of two up to the bound gives the
 * centroids scaled by it, bit for bit, and the objective times its square:
 * nothing overflows on the way, in memory or on disk, with every init. */
static void training_is_scale_invariant_up_to_the_bound(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("float-range-train");
  assert_non_null(dir);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  enum { N = 3000, D = 6, K = 12 };
  float *x = dkm_test_blobs(N, D, 10, 1.0, 11, NULL);
  double top = 0;
  for (int i = 0; i < N; i++) {
    double n2 = 0;
    for (int j = 0; j < D; j++)
      n2 += (double)x[i * D + j] * x[i * D + j];
    top = n2 > top ? n2 : top;
  }
  int e = 0;
  while (top * ldexp(1.0, 2 * (e + 1)) <= 0.5 * 0x1p125)
    e++;
  assert_true(e > 50);
  float *y = malloc(sizeof(float) * N * D);
  for (int i = 0; i < N * D; i++)
    y[i] = ldexpf(x[i], e);
  const dkm_init inits[3] = {DKM_INIT_RANDOM, DKM_INIT_KMEANSPP, DKM_INIT_GREEDY_KMEANSPP};
  for (int init = 0; init < 3; init++) {
    for (int disk = 0; disk < 2; disk++) {
      dkm_params p;
      dkm_params_init(&p);
      p.k = K;
      p.init = inits[init];
      p.max_iter = 8;
      p.tol = 0;
      p.n_threads = 2;
      p.tmp_dir = dir;
      p.storage = disk ? DKM_STORAGE_DISK : DKM_STORAGE_MEMORY;
      dkm_result *a = dkm_test_train_rows(ctx, &p, x, N, D);
      dkm_result *b = dkm_test_train_rows(ctx, &p, y, N, D);
      for (int i = 0; i < K * D; i++)
        assert_true(ldexpf(a->centroids[i], e) == b->centroids[i]);
      assert_memory_equal(a->cluster_sizes, b->cluster_sizes, sizeof(uint64_t) * K);
      assert_true(isfinite(b->objective) && b->objective > 0);
      assert_true(ldexp(a->objective, 2 * e) == b->objective);
      dkm_result_free(a);
      dkm_result_free(b);
    }
  }
  free(x);
  free(y);
  dkm_ctx_free(ctx);
  dkm_test_rmtree(dir);
  free(dir);
}

/* Rows with small integer values (|v| <= 8), so that every power of two
 * from 2^-140 (subnormals: 8 * 2^-140 needs 12 bits below 2^-126) to 2^124
 * scales them exactly. */
static float *integer_rows(uint64_t n, uint32_t dim, uint64_t seed) {
  float *x = dkm_test_blobs(n, dim, 9, 0.6, seed, NULL);
  float top = 0;
  for (uint64_t i = 0; i < n * dim; i++)
    top = fabsf(x[i]) > top ? fabsf(x[i]) : top;
  for (uint64_t i = 0; i < n * dim; i++)
    x[i] = roundf(x[i] * 8.0f / top);
  return x;
}

static const int cosine_shifts[] = {-76, -100, -140, 100, 124};

static void cosine_assign_is_the_same_at_every_scale(void **state) {
  (void)state;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  enum { N = 1500, D = 7, K = 37 };
  float *x = integer_rows(N, D, 21), *c = integer_rows(K, D, 22);
  float *y = malloc(sizeof(float) * N * D);
  int32_t *l0 = malloc(sizeof(int32_t) * N), *l1 = malloc(sizeof(int32_t) * N);
  float *d0 = malloc(sizeof(float) * N), *d1 = malloc(sizeof(float) * N);
  dkm_params p;
  dkm_params_init(&p);
  p.metric = DKM_METRIC_COSINE;
  p.n_threads = 2;
  for (int path = 0; path < 3; path++) {
    dkm__gemm_force(path == 0 ? DKM__GEMM_AUTO : path == 1 ? DKM__GEMM_AVX2 : DKM__GEMM_BLAS);
    dkm_source *src;
    assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, N, D, &src), DKM_OK);
    assert_int_equal(dkm_assign(ctx, &p, src, c, K, D, l0, d0), DKM_OK);
    dkm_source_close(src);
    for (size_t s = 0; s < sizeof cosine_shifts / sizeof cosine_shifts[0]; s++) {
      for (int i = 0; i < N * D; i++)
        y[i] = ldexpf(x[i], cosine_shifts[s]);
      assert_int_equal(dkm_source_from_memory(ctx, y, DKM_DTYPE_F32, N, D, &src), DKM_OK);
      assert_int_equal(dkm_assign(ctx, &p, src, c, K, D, l1, d1), DKM_OK);
      assert_memory_equal(l0, l1, sizeof(int32_t) * N);
      assert_memory_equal(d0, d1, sizeof(float) * N);
      dkm_source_close(src);
    }
  }
  dkm__gemm_force(DKM__GEMM_AUTO);
  /* The examples: tiny, subnormal and huge rows along (1, 1) sit on the
   * centroid (1, 1); along (-1, 1) on (1, -1)'s opposite, distance 2. */
  const float rows[12] = {1e-23f, 1e-23f, 1e-30f, 1e-30f, 1e-45f, 1e-45f,
                          1e30f,  1e30f,  3e38f,  3e38f,  -3e38f, 3e38f};
  const float cen[4] = {1, 1, 1, -1};
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, rows, DKM_DTYPE_F32, 6, 2, &src), DKM_OK);
  int32_t lab[6];
  float dist[6];
  assert_int_equal(dkm_assign(ctx, &p, src, cen, 2, 2, lab, dist), DKM_OK);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(lab[i], 0);
    assert_true(dist[i] < 1e-6f);
  }
  assert_int_equal(lab[5], 0); /* cosine 0 with both: the lower index */
  assert_true(fabsf(dist[5] - 1.0f) < 1e-6f);
  dkm_source_close(src);
  free(x);
  free(c);
  free(y);
  free(l0);
  free(l1);
  free(d0);
  free(d1);
  dkm_ctx_free(ctx);
}

static void cosine_training_is_the_same_at_every_scale(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("float-range-cosine");
  assert_non_null(dir);
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  enum { N = 2000, D = 5, K = 9 };
  float *x = integer_rows(N, D, 31);
  float *y = malloc(sizeof(float) * N * D);
  const dkm_init inits[3] = {DKM_INIT_RANDOM, DKM_INIT_KMEANSPP, DKM_INIT_GREEDY_KMEANSPP};
  for (int init = 0; init < 3; init++) {
    dkm_params p;
    dkm_params_init(&p);
    p.k = K;
    p.metric = DKM_METRIC_COSINE;
    p.init = inits[init];
    p.max_iter = 6;
    p.tol = 0;
    p.n_threads = 2;
    p.tmp_dir = dir;
    dkm_result *ref = dkm_test_train_rows(ctx, &p, x, N, D);
    for (size_t s = 0; s < sizeof cosine_shifts / sizeof cosine_shifts[0]; s++) {
      for (int i = 0; i < N * D; i++)
        y[i] = ldexpf(x[i], cosine_shifts[s]);
      for (int disk = 0; disk < 2; disk++) {
        dkm_params q = p;
        q.storage = disk ? DKM_STORAGE_DISK : DKM_STORAGE_MEMORY;
        dkm_result *r = dkm_test_train_rows(ctx, &q, y, N, D);
        dkm_test_assert_same_result(ref, r, "cosine rows scaled by a power of two");
        dkm_result_free(r);
      }
    }
    dkm_result_free(ref);
  }
  free(x);
  free(y);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  dkm_test_rmtree(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(assign_refuses_rows_and_centroids_above_the_bound),
      cmocka_unit_test(train_refuses_given_centroids_above_the_bound),
      cmocka_unit_test(rows_at_the_bound_give_right_labels_and_finite_distances),
      cmocka_unit_test(training_is_scale_invariant_up_to_the_bound),
      cmocka_unit_test(cosine_assign_is_the_same_at_every_scale),
      cmocka_unit_test(cosine_training_is_the_same_at_every_scale),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
