/*
 * test_engine_basic.c - Lloyd k-means gives the answers one can work out by
 * hand, keeps its invariants (the objective never rises, converged centroids
 * are the means of their members), survives degenerate data, and uses the
 * initialisation it is asked for.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

typedef struct fixture {
  dkm_test_alloc alloc;
  dkm_ctx *ctx;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  f->ctx = dkm_test_ctx(&f->alloc);
  *state = f;
  return f->ctx == NULL;
}

static int teardown(void **state) {
  fixture *f = *state;
  dkm_ctx_free(f->ctx);
  int leaked = f->alloc.live != 0;
  free(f);
  return leaked;
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return x < y ? -1 : x > y;
}

static void two_clusters_on_a_line_by_hand(void **state) {
  fixture *f = *state;
  const float x[4] = {0, 1, 10, 11};
  for (int init = DKM_INIT_RANDOM; init <= DKM_INIT_KMEANSPP; init++) {
    dkm_params p;
    dkm_params_init(&p);
    p.k = 2;
    p.init = (dkm_init)init;
    /* Every pair of distinct starting rows ends at {0.5, 10.5}; try several
     * seeds so that some start with both centres in one pair. */
    for (uint64_t seed = 1; seed <= 8; seed++) {
      p.seed = seed;
      dkm_result *r = dkm_test_train_rows(f->ctx, &p, x, 4, 1);
      float c[2] = {r->centroids[0], r->centroids[1]};
      qsort(c, 2, sizeof c[0], cmp_float);
      assert_true(c[0] == 0.5f);
      assert_true(c[1] == 10.5f);
      assert_true(r->objective == 1.0);
      assert_int_equal(r->cluster_sizes[0], 2);
      assert_int_equal(r->cluster_sizes[1], 2);
      assert_int_equal(r->rows, 4);
      assert_int_equal(r->sample_rows, 4);
      assert_int_equal(r->k, 2);
      assert_int_equal(r->dim, 1);
      assert_int_equal(r->storage, DKM_STORAGE_MEMORY);
      assert_int_equal(r->from_source, 1);
      assert_int_equal(r->spill_bytes, 0);
      dkm_result_free(r);
    }
  }
}

static void one_cluster_is_the_mean(void **state) {
  fixture *f = *state;
  enum { N = 1000, D = 7 };
  float *x = dkm_test_blobs(N, D, 3, 2.0, 11, NULL);
  double mean[D] = {0};
  for (int r = 0; r < N; r++)
    for (int j = 0; j < D; j++)
      mean[j] += x[r * D + j];
  dkm_params p;
  dkm_params_init(&p);
  p.k = 1;
  p.max_points_per_centroid = 0; /* every row, not a sample of 256 */
  dkm_result *r = dkm_test_train_rows(f->ctx, &p, x, N, D);
  for (int j = 0; j < D; j++)
    assert_float_equal(r->centroids[j], mean[j] / N, 1e-4 * (1 + fabs(mean[j] / N)));
  assert_int_equal(r->cluster_sizes[0], N);
  assert_true(r->iters[0].imbalance == 1.0);
  dkm_result_free(r);
  free(x);
}

static void k_equal_n_gives_the_points(void **state) {
  fixture *f = *state;
  enum { N = 37, D = 3 };
  /* Distinct integer points: every distance is exact in float. */
  float *x = malloc(sizeof(float) * N * D);
  for (int i = 0; i < N; i++) {
    x[i * D] = (float)i;
    x[i * D + 1] = (float)((i * 5) % N);
    x[i * D + 2] = (float)((i * 11) % N);
  }
  dkm_params p;
  dkm_params_init(&p);
  p.k = N;
  dkm_result *r = dkm_test_train_rows(f->ctx, &p, x, N, D);
  float *got = malloc(sizeof(float) * N * D), *want = malloc(sizeof(float) * N * D);
  memcpy(got, r->centroids, sizeof(float) * N * D);
  memcpy(want, x, sizeof(float) * N * D);
  /* Sort rows by their first value to compare as sets. */
  for (int a = 0; a < N; a++)
    for (int b = a + 1; b < N; b++) {
      float *arrs[2] = {got, want};
      for (int i = 0; i < 2; i++) {
        float *m = arrs[i];
        if (m[b * D] < m[a * D] || (m[b * D] == m[a * D] && m[b * D + 1] < m[a * D + 1]))
          for (int j = 0; j < D; j++) {
            float t = m[a * D + j];
            m[a * D + j] = m[b * D + j];
            m[b * D + j] = t;
          }
      }
    }
  assert_memory_equal(got, want, sizeof(float) * N * D);
  assert_true(r->objective == 0);
  for (int c = 0; c < N; c++)
    assert_int_equal(r->cluster_sizes[c], 1);
  dkm_result_free(r);
  free(got);
  free(want);
  free(x);
}

static void objective_never_increases(void **state) {
  fixture *f = *state;
  enum { N = 5000, D = 8 };
  float *x = dkm_test_blobs(N, D, 20, 30.0, 3, NULL); /* overlapping blobs: many iterations */
  for (int metric = DKM_METRIC_L2; metric <= DKM_METRIC_COSINE; metric++) {
    dkm_params p;
    dkm_params_init(&p);
    p.k = 16;
    p.tol = 0;
    p.max_iter = 30;
    p.metric = (dkm_metric)metric;
    dkm_result *r = dkm_test_train_rows(f->ctx, &p, x, N, D);
    assert_int_equal(r->n_iter, 30);
    for (uint32_t t = 0; t < r->n_iter; t++)
      assert_int_equal(r->iters[t].repaired, 0);
    for (uint32_t t = 1; t < r->n_iter; t++)
      if (!(r->iters[t].objective <= r->iters[t - 1].objective * (1 + 1e-6)))
        fail_msg("metric %d: objective rose from %.9g to %.9g at iteration %u", metric,
                 r->iters[t - 1].objective, r->iters[t].objective, t);
    assert_true(r->iters[r->n_iter - 1].objective < r->iters[0].objective);
    assert_true(r->objective == r->iters[r->n_iter - 1].objective);
    dkm_result_free(r);
  }
  free(x);
}

static void converged_centroids_are_member_means(void **state) {
  fixture *f = *state;
  enum { N = 4000, D = 6, K = 10 };
  float *x = dkm_test_blobs(N, D, K, 1.0, 21, NULL);
  dkm_params p;
  dkm_params_init(&p);
  p.k = K;
  p.tol = 0;
  p.max_iter = 100;
  p.init = DKM_INIT_KMEANSPP;
  p.max_points_per_centroid = 0;
  dkm_result *r = dkm_test_train_rows(f->ctx, &p, x, N, D);
  /* Well separated blobs converge long before 100 iterations: once labels
   * stop changing, each centroid is the mean of the rows assigned to it. */
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(f->ctx, x, DKM_DTYPE_F32, N, D, &src), DKM_OK);
  int32_t *labels = malloc(sizeof(int32_t) * N);
  assert_int_equal(dkm_assign(f->ctx, &p, src, r->centroids, K, D, labels, NULL), DKM_OK);
  double sums[K][D];
  uint64_t counts[K];
  memset(sums, 0, sizeof sums);
  memset(counts, 0, sizeof counts);
  for (int i = 0; i < N; i++) {
    counts[labels[i]]++;
    for (int j = 0; j < D; j++)
      sums[labels[i]][j] += x[i * D + j];
  }
  for (int c = 0; c < K; c++) {
    assert_true(counts[c] > 0);
    assert_int_equal(counts[c], r->cluster_sizes[c]);
    for (int j = 0; j < D; j++)
      assert_float_equal(r->centroids[c * D + j], sums[c][j] / counts[c],
                         1e-5 * (1 + fabs(sums[c][j] / counts[c])));
  }
  /* The objective of the last pass is the naive one for these centroids. */
  double naive = dkm_test_objective(x, N, D, r->centroids, K, NULL);
  assert_float_equal(r->objective, naive, 1e-4 * naive);
  free(labels);
  dkm_source_close(src);
  dkm_result_free(r);
  free(x);
}

static void duplicate_and_constant_rows_repair_without_nan(void **state) {
  fixture *f = *state;
  enum { N = 300, D = 4 };
  float *x = malloc(sizeof(float) * N * D);
  /* Only three distinct rows, k = 8: five clusters must stay empty, and
   * clusters of copies of one row are never split. */
  for (int i = 0; i < N; i++)
    for (int j = 0; j < D; j++)
      x[i * D + j] = (float)(i % 3) * 2.0f + (float)j;
  for (int metric = DKM_METRIC_L2; metric <= DKM_METRIC_IP; metric++) {
    dkm_params p;
    dkm_params_init(&p);
    p.k = 8;
    p.tol = 0;
    p.max_iter = 10;
    p.metric = (dkm_metric)metric;
    p.init = DKM_INIT_RANDOM;
    dkm_result *r = dkm_test_train_rows(f->ctx, &p, x, N, D);
    assert_int_equal(r->n_iter, 10);
    uint32_t repaired = 0;
    for (uint32_t t = 0; t < r->n_iter; t++)
      repaired += r->iters[t].repaired;
    assert_true(repaired > 0 || r->distinct_rows == 3);
    if (metric == DKM_METRIC_L2) {
      assert_int_equal(r->distinct_rows, 3);
      assert_int_equal(r->iters[r->n_iter - 1].repaired, 0);
    }
    for (int i = 0; i < 8 * D; i++)
      assert_true(isfinite(r->centroids[i]));
    assert_true(isfinite(r->objective));
    dkm_result_free(r);
  }
  /* All rows equal (and all zero): objective 0, stops at once. */
  memset(x, 0, sizeof(float) * N * D);
  dkm_params p;
  dkm_params_init(&p);
  p.k = 5;
  p.max_iter = 50;
  p.init = DKM_INIT_RANDOM;
  dkm_result *r = dkm_test_train_rows(f->ctx, &p, x, N, D);
  assert_true(r->objective == 0);
  assert_int_equal(r->n_iter, 2);            /* |0 - 0| <= tol * 0 at the second */
  assert_int_equal(r->iters[0].repaired, 0); /* one row: nothing to split */
  assert_int_equal(r->distinct_rows, 1);
  for (int i = 0; i < 5 * D; i++)
    assert_true(r->centroids[i] == 0);
  dkm_result_free(r);
  free(x);
}

static void thousands_of_empty_clusters_are_all_repaired(void **state) {
  fixture *f = *state;
  enum { N = 30000, D = 3, K = 3000 };
  float *x = malloc(sizeof(float) * N * D);
  float *given = malloc(sizeof(float) * K * D);
  /* Ten groups of different rows, and every centroid starting on row 0:
   * the first pass leaves K - 1 clusters empty, all repaired from one
   * donor halved again and again. */
  for (int i = 0; i < N; i++)
    for (int j = 0; j < D; j++)
      x[i * D + j] = (float)(i % 10) + 0.25f * (float)j + 1e-4f * (float)(i / 10 % 100);
  for (int c = 0; c < K; c++)
    memcpy(given + c * D, x, sizeof(float) * D);
  dkm_params p;
  dkm_params_init(&p);
  p.k = K;
  p.tol = 0;
  p.max_iter = 3;
  p.max_points_per_centroid = 0;
  p.n_threads = 2;
  p.init = DKM_INIT_GIVEN;
  p.init_centroids = given;
  dkm_result *r = dkm_test_train_rows(f->ctx, &p, x, N, D);
  assert_int_equal(r->iters[0].repaired, K - 1);
  uint64_t total = 0;
  for (int c = 0; c < K; c++)
    total += r->cluster_sizes[c];
  assert_int_equal(total, N);
  for (int i = 0; i < K * D; i++)
    assert_true(isfinite(r->centroids[i]));
  dkm_result_free(r);
  /* Ten distinct rows only: the clusters of copies are never split, and
   * the other clusters stay empty after the first repairs. */
  for (int i = 0; i < N; i++)
    for (int j = 0; j < D; j++)
      x[i * D + j] = (float)(i % 10) + 0.25f * (float)j;
  for (int c = 0; c < K; c++)
    memcpy(given + c * D, x, sizeof(float) * D);
  p.max_iter = 30;
  r = dkm_test_train_rows(f->ctx, &p, x, N, D);
  assert_int_equal(r->distinct_rows, 10);
  assert_int_equal(r->iters[r->n_iter - 1].repaired, 0);
  total = 0;
  for (int c = 0; c < K; c++)
    total += r->cluster_sizes[c];
  assert_int_equal(total, N);
  dkm_result_free(r);
  free(given);
  free(x);
}

static void kmeanspp_starts_lower_than_random(void **state) {
  fixture *f = *state;
  enum { N = 20000, D = 16, K = 40 };
  float *x = dkm_test_blobs(N, D, K, 0.5, 8, NULL);
  double sum_random = 0, sum_pp = 0;
  for (uint64_t seed = 1; seed <= 3; seed++) {
    dkm_params p;
    dkm_params_init(&p);
    p.k = K;
    p.max_iter = 1;
    p.seed = seed;
    p.init = DKM_INIT_RANDOM;
    dkm_result *r = dkm_test_train_rows(f->ctx, &p, x, N, D);
    sum_random += r->iters[0].objective;
    dkm_result_free(r);
    p.init = DKM_INIT_KMEANSPP;
    r = dkm_test_train_rows(f->ctx, &p, x, N, D);
    sum_pp += r->iters[0].objective;
    dkm_result_free(r);
  }
  if (!(sum_pp < 0.5 * sum_random))
    fail_msg("k-means++ %g vs random %g", sum_pp, sum_random);
  free(x);
}

static void given_init_is_used(void **state) {
  fixture *f = *state;
  const float x[6] = {0, 1, 2, 10, 11, 12};
  /* Starting from {0, 1} Lloyd moves to {0.5, 8.75}... and on to the
   * optimum; with one iteration the result is the update of the given
   * centroids: {0} gets {0}, {1} gets the rest. */
  const float init[2] = {0, 1};
  dkm_params p;
  dkm_params_init(&p);
  p.k = 2;
  p.max_iter = 1;
  p.init = DKM_INIT_GIVEN;
  p.init_centroids = init;
  dkm_result *r = dkm_test_train_rows(f->ctx, &p, x, 6, 1);
  assert_true(r->centroids[0] == 0.0f);
  assert_true(r->centroids[1] == 36.0f / 5.0f);
  assert_int_equal(r->cluster_sizes[0], 1);
  assert_int_equal(r->cluster_sizes[1], 5);
  /* The first objective is that of the given centroids: 0 + 0+1+81+100+121. */
  assert_true(r->iters[0].objective == 303.0);
  dkm_result_free(r);
}

static void cosine_centroids_have_unit_norm(void **state) {
  fixture *f = *state;
  enum { N = 3000, D = 12, K = 9 };
  float *x = dkm_test_blobs(N, D, K, 3.0, 4, NULL);
  /* A zero row must not produce NaN either. */
  memset(x, 0, sizeof(float) * D);
  dkm_params p;
  dkm_params_init(&p);
  p.k = K;
  p.metric = DKM_METRIC_COSINE;
  for (int init = DKM_INIT_RANDOM; init <= DKM_INIT_KMEANSPP; init++) {
    p.init = (dkm_init)init;
    dkm_result *r = dkm_test_train_rows(f->ctx, &p, x, N, D);
    for (int c = 0; c < K; c++) {
      double n2 = 0;
      for (int j = 0; j < D; j++)
        n2 += (double)r->centroids[c * D + j] * r->centroids[c * D + j];
      assert_float_equal(n2, 1.0, 1e-5);
    }
    /* Cosine distances are in [0, 2]. */
    assert_true(r->objective >= 0 && r->objective <= 2.0 * N);
    dkm_result_free(r);
  }
  free(x);
}

static void inner_product_prefers_large_dot_products(void **state) {
  fixture *f = *state;
  const float x[8] = {1, 0, 2, 0, 0, 1, 0, 3};
  const float c[4] = {1, 0, 0, 1};
  dkm_params p;
  dkm_params_init(&p);
  p.metric = DKM_METRIC_IP;
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(f->ctx, x, DKM_DTYPE_F32, 4, 2, &src), DKM_OK);
  int32_t labels[4];
  float dist[4];
  assert_int_equal(dkm_assign(f->ctx, &p, src, c, 2, 2, labels, dist), DKM_OK);
  assert_int_equal(labels[0], 0);
  assert_int_equal(labels[1], 0);
  assert_int_equal(labels[2], 1);
  assert_int_equal(labels[3], 1);
  assert_true(dist[1] == -2.0f && dist[3] == -3.0f);
  dkm_source_close(src);
}

static void best_of_several_runs_is_kept(void **state) {
  fixture *f = *state;
  enum { N = 3000, D = 4, K = 12 };
  float *x = dkm_test_blobs(N, D, K, 0.3, 17, NULL);
  dkm_params p;
  dkm_params_init(&p);
  p.k = K;
  /* Run 0 of n_redo = 4 is the n_redo = 1 run, so four runs can only do
   * better, and keep run 0's result when it wins. */
  p.n_redo = 1;
  dkm_result *one = dkm_test_train_rows(f->ctx, &p, x, N, D);
  p.n_redo = 4;
  dkm_result *four = dkm_test_train_rows(f->ctx, &p, x, N, D);
  assert_true(four->objective <= one->objective);
  assert_true(four->best_run < 4);
  if (four->best_run == 0)
    assert_memory_equal(four->centroids, one->centroids, sizeof(float) * K * D);
  assert_true(four->objective == four->iters[four->n_iter - 1].objective);
  dkm_result_free(one);
  dkm_result_free(four);
  free(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(two_clusters_on_a_line_by_hand, setup, teardown),
      cmocka_unit_test_setup_teardown(one_cluster_is_the_mean, setup, teardown),
      cmocka_unit_test_setup_teardown(k_equal_n_gives_the_points, setup, teardown),
      cmocka_unit_test_setup_teardown(objective_never_increases, setup, teardown),
      cmocka_unit_test_setup_teardown(converged_centroids_are_member_means, setup, teardown),
      cmocka_unit_test_setup_teardown(duplicate_and_constant_rows_repair_without_nan, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(thousands_of_empty_clusters_are_all_repaired, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(kmeanspp_starts_lower_than_random, setup, teardown),
      cmocka_unit_test_setup_teardown(given_init_is_used, setup, teardown),
      cmocka_unit_test_setup_teardown(cosine_centroids_have_unit_norm, setup, teardown),
      cmocka_unit_test_setup_teardown(inner_product_prefers_large_dot_products, setup, teardown),
      cmocka_unit_test_setup_teardown(best_of_several_runs_is_kept, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
