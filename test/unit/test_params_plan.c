/*
 * test_params_plan.c - dkm_plan_training says, before anything runs, what
 * training will do (sample size, storage, training in place, spill size)
 * and what it costs; training then does exactly that.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

enum { N = 10000, D = 32 };

static void plan_and_train_agree(dkm_ctx *ctx, const dkm_params *p, dkm_source *src,
                                 dkm_plan *plan) {
  assert_int_equal(dkm_plan_training(ctx, p, src, plan), DKM_OK);
  dkm_result *r;
  dkm_status s = dkm_train(ctx, p, src, &r);
  if (s != DKM_OK)
    fail_msg("%s", dkm_ctx_errmsg(ctx));
  assert_int_equal(plan->rows, src->rows);
  assert_int_equal(plan->dim, src->dim);
  assert_int_equal(plan->sample_rows, r->sample_rows);
  assert_int_equal(plan->sample_bytes, r->sample_rows * src->dim * sizeof(float));
  assert_int_equal(plan->storage, r->storage);
  assert_int_equal(plan->from_source, r->from_source);
  assert_int_equal(plan->spill_bytes, r->spill_bytes);
  dkm_result_free(r);
}

static void sample_storage_and_sizes(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("plan");
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  float *x = dkm_test_blobs(N, D, 10, 1.0, 1, NULL);
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, N, D, &src), DKM_OK);
  dkm_params p;
  dkm_params_init(&p);
  p.k = 10;
  p.max_iter = 2;
  p.n_threads = 2;
  p.tmp_dir = dir;
  /* Random rows keep no state per row, so the bounds below are the
   * blocks' and the sample's alone (k-means++'s 8 bytes per row are
   * test_disk_train's). */
  p.init = DKM_INIT_RANDOM;
  dkm_plan plan;

  /* Default: 256 * k rows, in memory (far below half of RAM). */
  plan_and_train_agree(ctx, &p, src, &plan);
  assert_int_equal(plan.sample_rows, 2560);
  assert_int_equal(plan.sample_bytes, 2560 * D * 4);
  assert_int_equal(plan.storage, DKM_STORAGE_MEMORY);
  assert_int_equal(plan.from_source, 0);
  assert_int_equal(plan.spill_bytes, 0);
  assert_true(plan.memory_limit > 0);
  /* Memory mode holds the sample, centroids, sums; disk mode only blocks. */
  uint64_t work = (uint64_t)10 * D * (3 * 4 + 8);
  assert_true(plan.memory_mode_bytes >= plan.sample_bytes + work);
  assert_true(plan.disk_mode_bytes >= work);
  assert_true(plan.memory_mode_bytes < 4 * plan.sample_bytes + (8u << 20));

  /* A budget below the sample: auto spills it. */
  p.memory_limit = plan.sample_bytes - 1;
  plan_and_train_agree(ctx, &p, src, &plan);
  assert_int_equal(plan.storage, DKM_STORAGE_DISK);
  assert_int_equal(plan.spill_bytes, plan.sample_bytes);
  assert_int_equal(plan.memory_limit, p.memory_limit);
  p.memory_limit = plan.sample_bytes;
  plan_and_train_agree(ctx, &p, src, &plan);
  assert_int_equal(plan.storage, DKM_STORAGE_MEMORY);

  /* Every row, float32 in memory: trained in place, no copy at all. */
  p.memory_limit = 0;
  p.max_points_per_centroid = 0;
  plan_and_train_agree(ctx, &p, src, &plan);
  assert_int_equal(plan.sample_rows, N);
  assert_int_equal(plan.from_source, 1);
  assert_true(plan.memory_mode_bytes < plan.sample_bytes);
  /* ... unless disk is asked for: an array in memory is spilled. */
  p.storage = DKM_STORAGE_DISK;
  plan_and_train_agree(ctx, &p, src, &plan);
  assert_int_equal(plan.from_source, 0);
  assert_int_equal(plan.spill_bytes, (uint64_t)N * D * 4);
  /* max_points_per_centroid * k above the rows: every row. */
  p.storage = DKM_STORAGE_AUTO;
  p.max_points_per_centroid = 5000;
  plan_and_train_agree(ctx, &p, src, &plan);
  assert_int_equal(plan.sample_rows, N);
  /* k-means++ needs per-row distances: the plan counts them. */
  uint64_t before = plan.disk_mode_bytes;
  p.init = DKM_INIT_KMEANSPP;
  plan_and_train_agree(ctx, &p, src, &plan);
  assert_true(plan.disk_mode_bytes >= before + (uint64_t)N * 4 * 2);
  /* The greedy one keeps 2 + ln k candidates' distances per row as well. */
  p.init = DKM_INIT_GREEDY_KMEANSPP;
  plan_and_train_agree(ctx, &p, src, &plan);
  assert_true(plan.disk_mode_bytes >= before + (uint64_t)N * 4 * 4);

  dkm_source_close(src);
  free(x);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  assert_int_equal(dkm_test_count_entries(dir), 0);
  dkm_test_rmtree(dir);
  free(dir);
}

static void a_random_access_file_is_trained_in_place_on_disk(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("plan-file");
  char path[4096];
  snprintf(path, sizeof path, "%s/rows.f32", dir);
  float *x = dkm_test_blobs(N, D, 10, 1.0, 2, NULL);
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(x, sizeof(float) * D, N, fp), N);
  fclose(fp);
  char *spill_dir = dkm_test_mkdtemp("plan-spill");
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_file_options o;
  dkm_file_options_init(&o);
  o.format = DKM_FORMAT_RAW;
  o.raw_dim = D;
  dkm_source *file;
  if (dkm_source_open_file(ctx, path, &o, &file) != DKM_OK) {
    dkm_ctx_free(ctx);
    skip(); /* the raw format is another layer's; nothing to plan without it */
  }
  dkm_params p;
  dkm_params_init(&p);
  p.k = 10;
  p.max_iter = 3;
  p.tol = 0;
  p.init = DKM_INIT_RANDOM; /* no per-row state: the blocks alone */
  p.max_points_per_centroid = 0;
  p.tmp_dir = spill_dir;
  p.storage = DKM_STORAGE_DISK;
  p.block_rows = 1024;
  p.n_threads = 2;
  dkm_plan plan;
  plan_and_train_agree(ctx, &p, file, &plan);
  assert_int_equal(plan.from_source, 1);
  assert_int_equal(plan.spill_bytes, 0);
  assert_true(plan.disk_mode_bytes < plan.sample_bytes);
  /* In memory the file is read into the sample; same centroids. */
  dkm_result *disk, *mem;
  assert_int_equal(dkm_train(ctx, &p, file, &disk), DKM_OK);
  p.storage = DKM_STORAGE_MEMORY;
  plan_and_train_agree(ctx, &p, file, &plan);
  assert_int_equal(plan.from_source, 0);
  assert_int_equal(dkm_train(ctx, &p, file, &mem), DKM_OK);
  assert_memory_equal(disk->centroids, mem->centroids, sizeof(float) * 10 * D);
  dkm_result_free(disk);
  dkm_result_free(mem);
  dkm_source_close(file);
  dkm_ctx_free(ctx);
  free(x);
  assert_int_equal(dkm_test_count_entries(spill_dir), 0);
  dkm_test_rmtree(dir);
  dkm_test_rmtree(spill_dir);
  free(dir);
  free(spill_dir);
}

/* What each mode would cost does not depend on which one auto picks: disk
 * mode is priced with its own blocks (8 MiB) even when memory (with larger
 * blocks) is chosen, and the other way round. */
static void each_mode_priced_as_if_chosen(void **state) {
  (void)state;
  enum { ROWS = 100000 }; /* more rows than one 8 MiB block of D floats */
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  float *x = calloc((size_t)ROWS * D, sizeof(float)); /* planning reads no row */
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, ROWS, D, &src), DKM_OK);
  dkm_params p;
  dkm_params_init(&p);
  p.k = 10;
  p.max_points_per_centroid = 0;
  dkm_plan chosen[3];
  const dkm_storage storages[3] = {DKM_STORAGE_AUTO, DKM_STORAGE_MEMORY, DKM_STORAGE_DISK};
  for (int i = 0; i < 3; i++) {
    p.storage = storages[i];
    assert_int_equal(dkm_plan_training(ctx, &p, src, &chosen[i]), DKM_OK);
  }
  assert_int_equal(chosen[0].storage, DKM_STORAGE_MEMORY);
  for (int i = 1; i < 3; i++) {
    assert_int_equal(chosen[i].memory_mode_bytes, chosen[0].memory_mode_bytes);
    assert_int_equal(chosen[i].disk_mode_bytes, chosen[0].disk_mode_bytes);
  }
  dkm_source_close(src);
  free(x);
  dkm_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sample_storage_and_sizes),
      cmocka_unit_test(each_mode_priced_as_if_chosen),
      cmocka_unit_test(a_random_access_file_is_trained_in_place_on_disk),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
