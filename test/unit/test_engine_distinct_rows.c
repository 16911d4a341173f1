/*
 * test_engine_distinct_rows.c - a sample with fewer distinct rows than k:
 * every initialisation ends with every row on its own centroid, repairs
 * never split a cluster of copies of one row (so they never make the
 * clustering worse, and never loop), the result says how many distinct
 * rows there are, and all of it is the same in memory and on disk, with
 * any thread count and block size.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

enum { P = 5, COPIES = 80, N = P * COPIES, D = 3, K = 10 };

/* 80 copies of each of 5 points, shuffled. */
static float *five_points(float *points) {
  uint64_t rng = 7;
  for (int i = 0; i < P * D; i++)
    points[i] = (float)(10 * dkm_test_normal(&rng));
  float *x = malloc(sizeof(float) * N * D);
  int order[N];
  for (int i = 0; i < N; i++)
    order[i] = i % P;
  for (int i = N - 1; i > 0; i--) {
    int j = (int)(dkm_test_rand(&rng) % (uint64_t)(i + 1)), t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  for (int i = 0; i < N; i++)
    memcpy(x + i * D, points + order[i] * D, sizeof(float) * D);
  return x;
}

/* The result puts each point on its own centroid (bit for bit for L2; the
 * direction for cosine), 80 rows each, leaves 5 clusters empty, says so,
 * and its final objective is no worse than any iteration's. */
static void check_exact(const dkm_result *r, const float *points, dkm_metric metric) {
  int used = 0;
  for (int c = 0; c < K; c++) {
    if (r->cluster_sizes[c] == 0)
      continue;
    used++;
    assert_int_equal(r->cluster_sizes[c], COPIES);
    const float *cen = r->centroids + c * D;
    int found = 0;
    for (int q = 0; q < P && !found; q++) {
      const float *pt = points + q * D;
      if (metric == DKM_METRIC_L2) {
        found = memcmp(cen, pt, sizeof(float) * D) == 0;
      } else {
        double dot = 0, n2 = 0;
        for (int j = 0; j < D; j++) {
          dot += (double)cen[j] * pt[j];
          n2 += (double)pt[j] * pt[j];
        }
        found = dot / sqrt(n2) > 1 - 1e-6;
      }
    }
    assert_true(found);
  }
  assert_int_equal(used, P);
  for (uint32_t i = 0; i < r->n_iter; i++)
    assert_true(r->objective <= r->iters[i].objective);
  assert_int_equal(r->iters[r->n_iter - 1].repaired, 0);
  /* "Every row on its centroid": only the kernel's rounding is left, a
   * few units in the last place of ||x||^2 per row (1 for cosine). */
  double scale = 0;
  for (int i = 0; i < P * D; i++)
    scale += metric == DKM_METRIC_L2 ? COPIES * (double)points[i] * points[i] : (double)N / D;
  assert_true(r->objective <= 1e-6 * scale);
  assert_int_equal(r->distinct_rows, P);
}

static void fewer_distinct_rows_than_k_end_on_the_rows(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("distinct-rows");
  assert_non_null(dir);
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  float points[P * D];
  float *x = five_points(points);
  /* Given centroids: two copies of each point, the worst start. */
  float given[K * D];
  for (int c = 0; c < K; c++)
    memcpy(given + c * D, points + (c % P) * D, sizeof(float) * D);
  const dkm_init inits[4] = {DKM_INIT_RANDOM, DKM_INIT_KMEANSPP, DKM_INIT_GREEDY_KMEANSPP,
                             DKM_INIT_GIVEN};
  const dkm_metric metrics[2] = {DKM_METRIC_L2, DKM_METRIC_COSINE};
  for (int m = 0; m < 2; m++) {
    for (int i = 0; i < 4; i++) {
      for (uint64_t seed = 1; seed <= 3; seed++) {
        dkm_params p;
        dkm_params_init(&p);
        p.k = K;
        p.metric = metrics[m];
        p.init = inits[i];
        p.init_centroids = given;
        p.seed = seed;
        p.max_iter = 25;
        p.tmp_dir = dir;
        p.storage = DKM_STORAGE_MEMORY;
        p.n_threads = 1;
        dkm_result *ref = dkm_test_train_rows(ctx, &p, x, N, D);
        check_exact(ref, points, metrics[m]);
        /* Disk, two threads, small blocks, and several runs. */
        for (int v = 0; v < 3; v++) {
          dkm_params q = p;
          q.storage = v == 0 ? DKM_STORAGE_DISK : DKM_STORAGE_MEMORY;
          q.n_threads = 2;
          q.block_rows = v == 2 ? 0 : 512;
          dkm_result *r = dkm_test_train_rows(ctx, &q, x, N, D);
          dkm_test_assert_same_result(ref, r, "fewer distinct rows: storage, threads, blocks");
          dkm_result_free(r);
        }
        dkm_result_free(ref);
        p.n_redo = 3;
        dkm_result *redo = dkm_test_train_rows(ctx, &p, x, N, D);
        check_exact(redo, points, metrics[m]);
        dkm_result_free(redo);
        assert_int_equal(dkm_test_count_entries(dir), 0);
      }
    }
  }
  free(x);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  dkm_test_rmtree(dir);
  free(dir);
}

/* With k distinct rows or more the count stays unknown (0), even when
 * clusters are repaired. */
static void distinct_rows_is_zero_when_not_below_k(void **state) {
  (void)state;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  float points[P * D];
  float *x = five_points(points);
  dkm_params p;
  dkm_params_init(&p);
  p.k = P;
  p.init = DKM_INIT_RANDOM;
  dkm_result *r = dkm_test_train_rows(ctx, &p, x, N, D);
  assert_int_equal(r->distinct_rows, 0);
  dkm_result_free(r);
  float *y = dkm_test_blobs(2000, 4, 3, 1.0, 5, NULL);
  p.k = 40;
  p.max_iter = 10;
  r = dkm_test_train_rows(ctx, &p, y, 2000, 4);
  assert_int_equal(r->distinct_rows, 0);
  dkm_result_free(r);
  free(y);
  free(x);
  dkm_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fewer_distinct_rows_than_k_end_on_the_rows),
      cmocka_unit_test(distinct_rows_is_zero_when_not_below_k),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
