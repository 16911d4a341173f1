/*
 * test_engine_determinism.c - the determinism contract: for the same rows,
 * parameters and seed, the centroids, statistics and sizes are bitwise
 * identical whatever the thread count, the block size and the storage
 * (memory or spilled to disk); and dkm_assign's labels and distances too.
 * The data spans many tiles and blocks, with and without subsampling, for
 * every metric and every random initialisation, with empty-cluster repairs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

enum { N = 20000, D = 16 };

static float *data_blobs;           /* 30 blobs */
static float *data_dupes;           /* 40 distinct rows repeated: k = 60 leaves 20 empty */
static float given_copies[100 * D]; /* 100 copies of row 0: every start repairs */

static int setup(void **state) {
  (void)state;
  data_blobs = dkm_test_blobs(N, D, 30, 2.0, 99, NULL);
  data_dupes = malloc(sizeof(float) * N * D);
  for (int i = 0; i < N; i++)
    memcpy(data_dupes + (size_t)i * D, data_blobs + (size_t)(i % 40) * D, sizeof(float) * D);
  for (int c = 0; c < 100; c++)
    memcpy(given_copies + c * D, data_blobs, sizeof(float) * D);
  return data_blobs == NULL || data_dupes == NULL;
}

static int teardown(void **state) {
  (void)state;
  free(data_blobs);
  free(data_dupes);
  return 0;
}

/* Trains over the N x D rows x (every comparison below must then match bit
 * for bit, timings aside). */
static dkm_result *train(dkm_ctx *ctx, const dkm_params *p, const float *x) {
  return dkm_test_train_rows(ctx, p, x, N, D);
}

/* expect_repairs: 1, the run repairs empty clusters; 2, it either repairs
 * them or finds that the rows are 40 distinct ones (data_dupes). */
static void check_threads_and_blocks(const float *x, uint32_t k, dkm_metric metric, dkm_init init,
                                     uint64_t mppc, int expect_repairs) {
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  dkm_params p;
  dkm_params_init(&p);
  p.k = k;
  p.metric = metric;
  p.init = init;
  p.init_centroids = given_copies;
  p.max_points_per_centroid = mppc;
  p.max_iter = 8;
  p.tol = 0;
  p.n_threads = 1;
  p.block_rows = 256;
  dkm_result *ref = train(ctx, &p, x);
  if (expect_repairs) {
    uint32_t repaired = 0;
    for (uint32_t t = 0; t < ref->n_iter; t++)
      repaired += ref->iters[t].repaired;
    if (expect_repairs == 2 && ref->distinct_rows != 0)
      assert_int_equal(ref->distinct_rows, 40);
    else
      assert_true(repaired > 0);
  }
  const uint32_t threads[] = {2, 3, 1, 2};
  const uint64_t blocks[] = {4096, 256, 0, 1};
  for (int i = 0; i < 4; i++) {
    p.n_threads = threads[i];
    p.block_rows = blocks[i];
    dkm_result *r = train(ctx, &p, x);
    char what[128];
    snprintf(what, sizeof what, "metric %d init %d mppc %llu: %u threads, blocks of %llu",
             (int)metric, (int)init, (unsigned long long)mppc, threads[i],
             (unsigned long long)blocks[i]);
    dkm_test_assert_same_result(ref, r, what);
    dkm_result_free(r);
  }
  dkm_result_free(ref);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

static void l2_identical_across_threads_and_blocks(void **state) {
  (void)state;
  check_threads_and_blocks(data_blobs, 50, DKM_METRIC_L2, DKM_INIT_RANDOM, 0, 0);
  check_threads_and_blocks(data_blobs, 50, DKM_METRIC_L2, DKM_INIT_KMEANSPP, 100, 0);
  check_threads_and_blocks(data_blobs, 50, DKM_METRIC_L2, DKM_INIT_GREEDY_KMEANSPP, 0, 0);
  check_threads_and_blocks(data_dupes, 60, DKM_METRIC_L2, DKM_INIT_RANDOM, 0, 2);
  /* k-means++ runs out of rows off the centres after 40 draws. */
  check_threads_and_blocks(data_dupes, 60, DKM_METRIC_L2, DKM_INIT_KMEANSPP, 0, 2);
  /* Repairs of clusters of different rows, split again and again. */
  check_threads_and_blocks(data_blobs, 100, DKM_METRIC_L2, DKM_INIT_GIVEN, 0, 1);
  check_threads_and_blocks(data_dupes, 60, DKM_METRIC_L2, DKM_INIT_GIVEN, 0, 2);
}

static void cosine_identical_across_threads_and_blocks(void **state) {
  (void)state;
  check_threads_and_blocks(data_blobs, 50, DKM_METRIC_COSINE, DKM_INIT_RANDOM, 100, 0);
  check_threads_and_blocks(data_blobs, 50, DKM_METRIC_COSINE, DKM_INIT_KMEANSPP, 0, 0);
  check_threads_and_blocks(data_dupes, 60, DKM_METRIC_COSINE, DKM_INIT_RANDOM, 0, 2);
  check_threads_and_blocks(data_blobs, 100, DKM_METRIC_COSINE, DKM_INIT_GIVEN, 0, 1);
}

static void ip_identical_across_threads_and_blocks(void **state) {
  (void)state;
  check_threads_and_blocks(data_blobs, 50, DKM_METRIC_IP, DKM_INIT_RANDOM, 0, 0);
  check_threads_and_blocks(data_blobs, 50, DKM_METRIC_IP, DKM_INIT_KMEANSPP, 100, 0);
}

static void large_k_uses_several_centroid_tiles(void **state) {
  (void)state;
  /* k above the centroid tile (512) exercises the running minimum across
   * centroid tiles. */
  check_threads_and_blocks(data_blobs, 1500, DKM_METRIC_L2, DKM_INIT_RANDOM, 0, 0);
  /* k-means++ then applies its pending centres in several batches: when
   * they reach the cap (256) and when proposals are rejected. */
  check_threads_and_blocks(data_blobs, 1500, DKM_METRIC_COSINE, DKM_INIT_KMEANSPP, 0, 0);
}

static void memory_and_disk_storage_identical(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("engine-storage");
  assert_non_null(dir);
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  for (int metric = DKM_METRIC_L2; metric <= DKM_METRIC_IP; metric++) {
    for (int sub = 0; sub < 2; sub++) {
      dkm_params p;
      dkm_params_init(&p);
      p.k = 60;
      p.metric = (dkm_metric)metric;
      p.max_points_per_centroid = sub ? 150 : 0;
      p.tol = 0;
      p.max_iter = 6;
      p.tmp_dir = dir;
      p.storage = DKM_STORAGE_MEMORY;
      dkm_result *mem = train(ctx, &p, data_dupes);
      assert_int_equal(mem->storage, DKM_STORAGE_MEMORY);
      assert_int_equal(mem->spill_bytes, 0);
      p.storage = DKM_STORAGE_DISK;
      p.n_threads = 2;
      p.block_rows = 1000;
      dkm_result *disk = train(ctx, &p, data_dupes);
      assert_int_equal(disk->storage, DKM_STORAGE_DISK);
      /* An in-memory array is spilled when disk is asked for. */
      assert_int_equal(disk->from_source, 0);
      assert_int_equal(disk->spill_bytes, (uint64_t)disk->sample_rows * D * sizeof(float));
      assert_int_equal(disk->sample_rows, sub ? 150 * 60 : N);
      dkm_test_assert_same_result(mem, disk, "memory vs disk");
      dkm_result_free(mem);
      dkm_result_free(disk);
      assert_int_equal(dkm_test_count_entries(dir), 0);
    }
  }
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  dkm_test_rmtree(dir);
  free(dir);
}

static void assign_identical_across_threads_and_blocks(void **state) {
  (void)state;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, data_blobs, DKM_DTYPE_F32, N, D, &src), DKM_OK);
  const uint32_t k = 70;
  int32_t *l1 = malloc(sizeof(int32_t) * N), *l2 = malloc(sizeof(int32_t) * N);
  float *d1 = malloc(sizeof(float) * N), *d2 = malloc(sizeof(float) * N);
  for (int metric = DKM_METRIC_L2; metric <= DKM_METRIC_IP; metric++) {
    dkm_params p;
    dkm_params_init(&p);
    p.metric = (dkm_metric)metric;
    p.n_threads = 1;
    p.block_rows = 300;
    /* The centroids: some rows of the data. */
    assert_int_equal(dkm_assign(ctx, &p, src, data_blobs + 1000 * D, k, D, l1, d1), DKM_OK);
    p.n_threads = 2;
    p.block_rows = 0;
    assert_int_equal(dkm_assign(ctx, &p, src, data_blobs + 1000 * D, k, D, l2, d2), DKM_OK);
    assert_memory_equal(l1, l2, sizeof(int32_t) * N);
    assert_memory_equal(d1, d2, sizeof(float) * N);
  }
  free(l1);
  free(l2);
  free(d1);
  free(d2);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(l2_identical_across_threads_and_blocks),
      cmocka_unit_test(cosine_identical_across_threads_and_blocks),
      cmocka_unit_test(ip_identical_across_threads_and_blocks),
      cmocka_unit_test(large_k_uses_several_centroid_tiles),
      cmocka_unit_test(memory_and_disk_storage_identical),
      cmocka_unit_test(assign_identical_across_threads_and_blocks),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
