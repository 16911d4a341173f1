/*
 * test_engine_random.c - many small trainings with random shapes and
 * parameters (every metric, init, storage, sampling, thread count and block
 * size, and awkward data: duplicates, zeros, huge and tiny values). Each must
 * succeed with finite centroids and consistent sizes, and give the same bits
 * when run again with other threads, another block size and the other
 * storage; dkm_assign must label every row in range.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

#ifndef TRIAL_SEED
#define TRIAL_SEED 20261125 /* any seed must pass; this one is the tested one */
#endif

static char *spill_dir;

static int setup(void **state) {
  (void)state;
  spill_dir = dkm_test_mkdtemp("engine-random");
  return spill_dir == NULL;
}

static int teardown(void **state) {
  (void)state;
  dkm_test_rmtree(spill_dir);
  free(spill_dir);
  return 0;
}

static float *make_data(uint64_t *st, uint64_t n, uint32_t dim, int kind) {
  float *x = malloc(sizeof(float) * n * dim);
  switch (kind) {
  case 0: { /* blobs */
    float *b = dkm_test_blobs(n, dim, 1 + (uint32_t)(dkm_test_rand(st) % 20), 1.0,
                              dkm_test_rand(st), NULL);
    memcpy(x, b, sizeof(float) * n * dim);
    free(b);
    break;
  }
  case 1: /* a handful of distinct rows, repeated */
    for (uint64_t r = 0; r < n; r++)
      for (uint32_t j = 0; j < dim; j++)
        x[r * dim + j] = (float)((r % 3) * 7 + j % 5);
    break;
  case 2: /* all zero */
    memset(x, 0, sizeof(float) * n * dim);
    break;
  case 3: /* huge values whose squares still fit float */
    for (uint64_t i = 0; i < n * dim; i++)
      x[i] = (float)(dkm_test_normal(st) * 1e15 / sqrt((double)dim));
    break;
  default: /* tiny values, subnormal squares */
    for (uint64_t i = 0; i < n * dim; i++)
      x[i] = (float)(dkm_test_normal(st) * 1e-20);
    break;
  }
  return x;
}

static void random_trainings_are_sane_and_reproducible(void **state) {
  (void)state;
  uint64_t st = TRIAL_SEED;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  for (int trial = 0; trial < 120; trial++) {
    uint64_t n = 1 + dkm_test_rand(&st) % 2500;
    uint32_t dim = 1 + (uint32_t)(dkm_test_rand(&st) % 40);
    int kind = (int)(dkm_test_rand(&st) % 5);
    float *x = make_data(&st, n, dim, kind);
    dkm_params p;
    dkm_params_init(&p);
    p.k = 1 + (uint32_t)(dkm_test_rand(&st) % (n < 40 ? n : 40));
    p.metric = (dkm_metric)(dkm_test_rand(&st) % 3);
    p.init = (dkm_init)(dkm_test_rand(&st) % 2);
    const uint64_t mppcs[] = {0, 1, 3, 256};
    p.max_points_per_centroid = mppcs[dkm_test_rand(&st) % 4];
    p.storage = dkm_test_rand(&st) % 2 ? DKM_STORAGE_DISK : DKM_STORAGE_MEMORY;
    p.tmp_dir = spill_dir;
    p.n_threads = 1 + (uint32_t)(dkm_test_rand(&st) % 3);
    p.block_rows = dkm_test_rand(&st) % 700;
    p.max_iter = 1 + (uint32_t)(dkm_test_rand(&st) % 5);
    p.tol = dkm_test_rand(&st) % 2 ? 0 : 1e-3;
    p.n_redo = 1 + (uint32_t)(dkm_test_rand(&st) % 2);
    p.seed = dkm_test_rand(&st);
    char what[200];
    snprintf(what, sizeof what,
             "trial %d: n %llu dim %u kind %d k %u metric %d init %d mppc %llu storage %d "
             "threads %u block %llu",
             trial, (unsigned long long)n, dim, kind, p.k, p.metric, p.init,
             (unsigned long long)p.max_points_per_centroid, p.storage, p.n_threads,
             (unsigned long long)p.block_rows);
    dkm_source *src;
    assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, n, dim, &src), DKM_OK);
    dkm_result *r;
    dkm_status s = dkm_train(ctx, &p, src, &r);
    if (s != DKM_OK)
      fail_msg("%s: %s", what, dkm_ctx_errmsg(ctx));
    assert_true(r->n_iter >= 1 && r->n_iter <= p.max_iter);
    uint64_t total = 0;
    for (uint32_t c = 0; c < p.k; c++)
      total += r->cluster_sizes[c];
    if (total != r->sample_rows)
      fail_msg("%s: sizes add up to %llu, not %llu", what, (unsigned long long)total,
               (unsigned long long)r->sample_rows);
    for (uint64_t i = 0; i < (uint64_t)p.k * dim; i++)
      if (!isfinite(r->centroids[i]))
        fail_msg("%s: centroid value %llu is %g", what, (unsigned long long)i, r->centroids[i]);
    assert_true(isfinite(r->objective));

    /* Same bits with other threads, blocks and storage. */
    dkm_params q = p;
    q.n_threads = 4 - p.n_threads;
    q.block_rows = p.block_rows == 0 ? 64 : 0;
    q.storage = p.storage == DKM_STORAGE_DISK ? DKM_STORAGE_MEMORY : DKM_STORAGE_DISK;
    dkm_result *r2;
    assert_int_equal(dkm_train(ctx, &q, src, &r2), DKM_OK);
    if (memcmp(r->centroids, r2->centroids, sizeof(float) * p.k * dim) != 0 ||
        memcmp(&r->objective, &r2->objective, sizeof(double)) != 0 || r->n_iter != r2->n_iter)
      fail_msg("%s: not reproduced with %u threads, blocks of %llu, storage %d", what, q.n_threads,
               (unsigned long long)q.block_rows, q.storage);

    int32_t *labels = malloc(sizeof(int32_t) * n);
    float *dist = malloc(sizeof(float) * n);
    assert_int_equal(dkm_assign(ctx, &p, src, r->centroids, p.k, dim, labels, dist), DKM_OK);
    for (uint64_t i = 0; i < n; i++) {
      assert_true(labels[i] >= 0 && (uint32_t)labels[i] < p.k);
      assert_true(isfinite(dist[i]));
      if (p.metric != DKM_METRIC_IP)
        assert_true(dist[i] >= 0);
    }
    free(labels);
    free(dist);
    dkm_result_free(r);
    dkm_result_free(r2);
    dkm_source_close(src);
    free(x);
    assert_int_equal(dkm_test_count_entries(spill_dir), 0);
  }
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(random_trainings_are_sane_and_reproducible),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
