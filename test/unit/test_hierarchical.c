/*
 * test_hierarchical.c - hierarchical training (strategy hierarchical):
 * coarse centroids, routing into groups, proportional quotas, the groups'
 * trainings and the refinement passes. Its results are bitwise identical
 * whatever the thread count, block size and storage; the quotas sum to k;
 * the result's fields say what ran; degenerate data (duplicates, fewer
 * distinct rows than k, k close to the rows, tiny k) trains cleanly;
 * balancing evens the partitions; every phase can be cancelled and every
 * allocation can fail without a leak or a file left behind; the plan
 * prices at least the memory training uses.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/train.h"
#include "test_support.h"

enum { N = 20000, D = 16 };

static float *blobs; /* N x D, 30 blobs */

static int setup(void **state) {
  (void)state;
  blobs = dkm_test_blobs(N, D, 30, 2.0, 77, NULL);
  return blobs == NULL;
}

static int teardown(void **state) {
  (void)state;
  free(blobs);
  return 0;
}

static void expect_msg(dkm_ctx *ctx, const char *word) {
  if (strstr(dkm_ctx_errmsg(ctx), word) == NULL)
    fail_msg("message \"%s\" lacks \"%s\"", dkm_ctx_errmsg(ctx), word);
}

/* Hierarchical training of k centroids, few iterations (the tests need the
 * steps, not convergence). */
static void hier_params(dkm_params *p, uint32_t k) {
  dkm_params_init(p);
  p->k = k;
  p->strategy = DKM_STRATEGY_HIERARCHICAL;
  p->max_iter = 8;
  p->max_points_per_centroid = 0;
}

static uint32_t round_sqrt(uint32_t k) {
  uint32_t r = (uint32_t)lround(sqrt((double)k));
  return r < 1 ? 1 : r;
}

/* Every statistics entry is set: repairs and moves at most k each per
 * pass (the groups' entry sums all their passes, and these tests run at
 * most 100), an imbalance of at least 1 (the sizes sum to the sample), a
 * time, a finite objective. */
static void check_iters(const dkm_result *r) {
  for (uint32_t i = 0; i < r->n_iter; i++) {
    const dkm_iter_stats *st = &r->iters[i];
    const uint32_t most = i == 0 && r->strategy == DKM_STRATEGY_HIERARCHICAL ? 100 * r->k : r->k;
    if (st->repaired > most || st->rebalanced > most || !(st->imbalance >= 1 - 1e-9) ||
        !isfinite(st->imbalance) || !(st->seconds >= 0) || !isfinite(st->seconds) ||
        !isfinite(st->objective))
      fail_msg("iteration %u of %u: repaired %u rebalanced %u imbalance %g seconds %g objective %g",
               i, r->n_iter, st->repaired, st->rebalanced, st->imbalance, st->seconds,
               st->objective);
  }
}

static uint64_t sum_sizes(const dkm_result *r) {
  uint64_t s = 0;
  for (uint32_t c = 0; c < r->k; c++)
    s += r->cluster_sizes[c];
  return s;
}

/* What holds for every hierarchical result over `rows` sample rows: the
 * sizes partition them, the balance is theirs, one statistics entry for
 * the groups and one per refinement pass, every entry set. */
static void check_result(const dkm_result *r, uint64_t rows) {
  assert_int_equal(r->strategy, DKM_STRATEGY_HIERARCHICAL);
  assert_int_equal(r->sample_rows, rows);
  assert_int_equal(sum_sizes(r), rows);
  assert_int_equal(r->n_iter, 1 + r->refine_passes);
  assert_true(r->levels >= 2);
  dkm_balance b;
  dkm_balance_of(r->cluster_sizes, r->k, &b);
  assert_memory_equal(&b, &r->balance, sizeof b);
  check_iters(r);
}

static uint32_t empty_clusters(const dkm_result *r) {
  uint32_t e = 0;
  for (uint32_t c = 0; c < r->k; c++)
    e += r->cluster_sizes[c] == 0;
  return e;
}

/* 1 when some centroid is row x bit for bit. */
static int has_centroid(const dkm_result *r, const float *x) {
  for (uint32_t c = 0; c < r->k; c++)
    if (memcmp(r->centroids + (size_t)c * r->dim, x, sizeof(float) * r->dim) == 0)
      return 1;
  return 0;
}

/* --- 1. determinism ------------------------------------------------------------ */

/* Each combination of metric, balance and subsampling is trained as the
 * reference (one thread, blocks of 300 rows, memory) and three of the
 * variants below, in turn, so that every variant meets every metric. */
static void identical_across_threads_blocks_and_storage(void **state) {
  (void)state;
  enum { ROWS = 8000 };
  char *dir = dkm_test_mkdtemp("hier-determinism");
  assert_non_null(dir);
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  const struct {
    uint32_t threads;
    uint64_t block_rows;
    dkm_storage storage;
  } variants[] = {
      {2, 0, DKM_STORAGE_MEMORY}, {3, 97, DKM_STORAGE_MEMORY}, {1, 0, DKM_STORAGE_DISK},
      {2, 1, DKM_STORAGE_DISK},   {3, 513, DKM_STORAGE_DISK},
  };
  const size_t n_variants = sizeof variants / sizeof variants[0];
  size_t next = 0;
  for (int metric = DKM_METRIC_L2; metric <= DKM_METRIC_IP; metric++) {
    for (int balance = 0; balance < 2; balance++) {
      for (int sub = 0; sub < 2; sub++) {
        dkm_params p;
        hier_params(&p, 100);
        p.metric = (dkm_metric)metric;
        p.balance = balance;
        p.tol = 0;
        p.refine = 2;
        /* 5000 of the rows; the coarse training subsamples 500 of them. */
        p.max_points_per_centroid = sub ? 50 : 0;
        p.n_threads = 1;
        p.block_rows = 300;
        p.storage = DKM_STORAGE_MEMORY;
        p.tmp_dir = dir;
        dkm_result *ref = dkm_test_train_rows(ctx, &p, blobs, ROWS, D);
        check_result(ref, sub ? 5000 : ROWS);
        assert_int_equal(ref->refine_passes, 2);
        for (int i = 0; i < 3; i++) {
          size_t v = next++ % n_variants;
          p.n_threads = variants[v].threads;
          p.block_rows = variants[v].block_rows;
          p.storage = variants[v].storage;
          dkm_result *r = dkm_test_train_rows(ctx, &p, blobs, ROWS, D);
          assert_int_equal(r->storage, p.storage);
          /* On disk at least the grouped sample is spilled. */
          if (p.storage == DKM_STORAGE_DISK)
            assert_true(r->spill_bytes >= r->sample_rows * D * sizeof(float));
          else
            assert_int_equal(r->spill_bytes, 0);
          check_result(r, ref->sample_rows);
          char what[160];
          snprintf(what, sizeof what, "%s balance %d sub %d: %u threads, blocks of %llu, %s",
                   dkm_metric_name(p.metric), balance, sub, p.n_threads,
                   (unsigned long long)p.block_rows, dkm_storage_name(p.storage));
          dkm_test_assert_same_result(ref, r, what);
          assert_int_equal(r->coarse_k, ref->coarse_k);
          assert_int_equal(r->refine_passes, ref->refine_passes);
          dkm_result_free(r);
          assert_int_equal(dkm_test_count_entries(dir), 0);
        }
        dkm_result_free(ref);
      }
    }
  }
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  dkm_test_rmtree(dir);
  free(dir);
}

/* --- 2. quotas ------------------------------------------------------------------ */

static int by_size_then_quota(const void *a, const void *b) {
  const uint64_t *x = a, *y = b;
  if (x[0] != y[0])
    return x[0] < y[0] ? -1 : 1;
  return x[1] < y[1] ? -1 : x[1] > y[1];
}

/* Checks dkm__quotas(k, sizes) against its contract. */
static void check_quotas(uint32_t k, const uint64_t *sizes, uint32_t n) {
  uint32_t *q = malloc(sizeof(uint32_t) * (n ? n : 1));
  assert_non_null(q);
  dkm__quotas(k, sizes, n, q);
  uint64_t m = 0, total = 0;
  int forced = 0; /* some group with rows has a share below 1 */
  for (uint32_t g = 0; g < n; g++)
    m += sizes[g];
  for (uint32_t g = 0; g < n; g++) {
    double ideal = (double)k * (double)sizes[g] / (double)m;
    forced |= sizes[g] > 0 && ideal < 1;
    total += q[g];
    if (sizes[g] == 0) {
      assert_int_equal(q[g], 0);
      continue;
    }
    if (q[g] < 1 || q[g] > sizes[g])
      fail_msg("k %u: group %u of %llu rows has quota %u", k, g, (unsigned long long)sizes[g],
               q[g]);
    /* Never more than the share rounded up (the floor of 1 aside). */
    if (q[g] > 1 && (double)q[g] > ceil(ideal))
      fail_msg("k %u: group %u: quota %u above its share %.3f", k, g, q[g], ideal);
  }
  assert_int_equal(total, k);
  if (k == m)
    for (uint32_t g = 0; g < n; g++)
      assert_int_equal(q[g], sizes[g]);
  if (!forced) {
    /* Largest remainder: each quota is its share rounded down or up. */
    for (uint32_t g = 0; g < n; g++) {
      double ideal = (double)k * (double)sizes[g] / (double)m;
      if (fabs((double)q[g] - ideal) >= 1)
        fail_msg("k %u: group %u: quota %u for a share of %.3f", k, g, q[g], ideal);
    }
  }
  /* A larger group never gets a smaller quota: in (size, quota) order,
   * the largest quota of a size is at most the smallest of the next. */
  uint64_t *pairs = malloc(sizeof(uint64_t) * 2 * (n ? n : 1));
  assert_non_null(pairs);
  for (uint32_t g = 0; g < n; g++) {
    pairs[2 * g] = sizes[g];
    pairs[2 * g + 1] = q[g];
  }
  qsort(pairs, n, 2 * sizeof(uint64_t), by_size_then_quota);
  for (uint32_t i = 0; i + 1 < n; i++)
    if (pairs[2 * i] < pairs[2 * i + 2] && pairs[2 * i + 1] > pairs[2 * i + 3])
      fail_msg("k %u: a group of %llu rows has quota %llu, one of %llu rows %llu", k,
               (unsigned long long)pairs[2 * i], (unsigned long long)pairs[2 * i + 1],
               (unsigned long long)pairs[2 * i + 2], (unsigned long long)pairs[2 * i + 3]);
  free(pairs);
  free(q);
}

static void quotas_sum_to_k_and_follow_the_sizes(void **state) {
  (void)state;
  uint64_t sizes[300];
  /* Random sizes, some groups empty, k anywhere from 1 to every row. */
  uint64_t rng = 5;
  for (int trial = 0; trial < 400; trial++) {
    uint32_t n = 1 + (uint32_t)(dkm_test_rand(&rng) % 300);
    uint64_t m = 0;
    uint32_t filled = 0;
    for (uint32_t g = 0; g < n; g++) {
      uint64_t r = dkm_test_rand(&rng);
      sizes[g] = r % 7 == 0 ? 0 : 1 + (r >> 8) % (trial % 2 ? 50 : 5000);
      m += sizes[g];
      filled += sizes[g] > 0;
    }
    if (m == 0) {
      sizes[0] = 1;
      m = 1;
      filled = 1;
    }
    /* At least one cluster per group with rows (hierarchical training has
     * about sqrt(k) groups), at most every row. */
    uint32_t k = filled + (uint32_t)(dkm_test_rand(&rng) % (m - filled + 1));
    check_quotas(k, sizes, n);
    check_quotas(filled, sizes, n);
    check_quotas((uint32_t)m, sizes, n); /* k == m: every row its own cluster */
  }
  /* One giant group beside many groups of one row. */
  for (uint32_t n = 2; n <= 300; n += 37) {
    for (uint32_t g = 0; g < n; g++)
      sizes[g] = 1;
    sizes[n / 2] = 1000000;
    uint64_t m = 1000000 + n - 1;
    const uint32_t ks[] = {n, n + 1, 2 * n, 1000, 999999, (uint32_t)m};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
      check_quotas(ks[i], sizes, n);
    uint32_t q[300];
    dkm__quotas(n, sizes, n, q);
    for (uint32_t g = 0; g < n; g++) /* one each: the giant cannot take more */
      assert_int_equal(q[g], 1);
  }
  /* Every group of one row and k == m: one each; equal groups share evenly. */
  for (uint32_t g = 0; g < 300; g++)
    sizes[g] = 1;
  check_quotas(300, sizes, 300);
  for (uint32_t g = 0; g < 300; g++)
    sizes[g] = 1000;
  uint32_t q[300];
  dkm__quotas(65536, sizes, 256, q);
  for (uint32_t g = 0; g < 256; g++)
    assert_int_equal(q[g], 256);
  dkm__quotas(1000, sizes, 300, q);
  for (uint32_t g = 0; g < 300; g++) /* 1000 / 300 = 3.33: 3 or 4 */
    assert_true(q[g] == 3 || q[g] == 4);
  /* Empty groups around non-empty ones. */
  const uint64_t holes[] = {0, 5, 0, 0, 7, 0, 1};
  for (uint32_t k = 3; k <= 13; k++)
    check_quotas(k, holes, 7);
}

/* --- 3. the result's fields -------------------------------------------------------- */

static void result_says_what_ran(void **state) {
  (void)state;
  enum { ROWS = 10000 };
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  const uint32_t k = 300;
  dkm_params p;
  hier_params(&p, k);
  p.refine = 3;
  p.max_iter = 10;
  p.n_threads = 2;
  dkm_result *h = dkm_test_train_rows(ctx, &p, blobs, ROWS, D);
  assert_int_equal(h->strategy, DKM_STRATEGY_HIERARCHICAL);
  assert_int_equal(h->k, k);
  assert_int_equal(h->dim, D);
  assert_int_equal(h->coarse_k, round_sqrt(k));
  assert_int_equal(h->coarse_k, 17);
  assert_true(h->levels >= 2);
  assert_true(h->refine_passes >= 1 && h->refine_passes <= p.refine);
  assert_int_equal(h->n_iter, 1 + h->refine_passes);
  assert_int_equal(h->rows, ROWS);
  assert_int_equal(h->sample_rows, ROWS);
  check_result(h, ROWS);
  assert_int_equal(h->distinct_rows, 0);
  /* The last refinement pass is the result's objective. */
  assert_memory_equal(&h->iters[h->n_iter - 1].objective, &h->objective, sizeof(double));
  for (uint32_t i = 0; i < h->n_iter; i++)
    assert_true(h->iters[i].objective > 0);
  /* Refinement passes only improve on the groups' centroids: each pass's
   * labels are at least as good as the previous ones restricted to the
   * same candidates, and its update lowers the objective further. */
  for (uint32_t i = 1; i < h->n_iter; i++)
    assert_true(h->iters[i].objective <= h->iters[i - 1].objective * (1 + 1e-6));
  /* The objective is that of the last pass's labels, before its update:
   * the centroids returned (the means of those labels), each row on its
   * nearest one over all k, can only do better. */
  double naive = dkm_test_objective(blobs, ROWS, D, h->centroids, k, NULL);
  if (!(naive <= h->objective * (1 + 1e-5)))
    fail_msg("naive objective %.6g above the reported %.6g", naive, h->objective);
  assert_true(naive >= 0.9 * h->objective);
  assert_true(h->coarse_seconds >= 0 && h->route_seconds >= 0 && h->groups_seconds >= 0 &&
              h->refine_seconds >= 0);

  /* Close to flat training on the same rows. */
  p.strategy = DKM_STRATEGY_FLAT;
  dkm_result *f = dkm_test_train_rows(ctx, &p, blobs, ROWS, D);
  assert_int_equal(f->strategy, DKM_STRATEGY_FLAT);
  assert_int_equal(f->coarse_k, 0);
  assert_int_equal(f->levels, 0);
  assert_int_equal(f->refine_passes, 0);
  double flat = dkm_test_objective(blobs, ROWS, D, f->centroids, k, NULL);
  print_message("objective: hierarchical / flat = %.4f\n", naive / flat);
  if (naive > 1.05 * flat)
    fail_msg("hierarchical objective %.6g is more than 5%% above flat's %.6g", naive, flat);
  dkm_result_free(f);
  dkm_result_free(h);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

/* --- 4. degenerate data ---------------------------------------------------------- */

/* 50 distinct rows, each repeated 40 times, k = 80: each on its own
 * centroid, 30 clusters empty, at every level. */
static void fewer_distinct_rows_than_k(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("hier-distinct");
  assert_non_null(dir);
  enum { DISTINCT = 50, COPIES = 40, ROWS = DISTINCT * COPIES, K = 80 };
  float *x = malloc(sizeof(float) * ROWS * D);
  assert_non_null(x);
  for (int i = 0; i < ROWS; i++) /* rows of blobs, interleaved */
    memcpy(x + (size_t)i * D, blobs + (size_t)(i % DISTINCT) * D, sizeof(float) * D);
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  dkm_result *first = NULL;
  for (int disk = 0; disk < 2; disk++) {
    dkm_params p;
    hier_params(&p, K);
    p.max_iter = 25;
    p.storage = disk ? DKM_STORAGE_DISK : DKM_STORAGE_MEMORY;
    p.n_threads = disk ? 2 : 1;
    p.tmp_dir = dir;
    dkm_result *r = dkm_test_train_rows(ctx, &p, x, ROWS, D);
    assert_int_equal(r->distinct_rows, DISTINCT);
    assert_int_equal(empty_clusters(r), K - DISTINCT);
    assert_int_equal(r->balance.empty, K - DISTINCT);
    for (uint32_t c = 0; c < K; c++)
      if (r->cluster_sizes[c] != 0)
        assert_int_equal(r->cluster_sizes[c], COPIES);
    for (int d = 0; d < DISTINCT; d++)
      if (!has_centroid(r, x + (size_t)d * D))
        fail_msg("distinct row %d has no centroid of its own", d);
    check_result(r, ROWS);
    if (first == NULL)
      first = r;
    else {
      dkm_test_assert_same_result(first, r, "memory vs disk");
      dkm_result_free(r);
    }
    assert_int_equal(dkm_test_count_entries(dir), 0);
  }
  dkm_result_free(first);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  free(x);
  dkm_test_rmtree(dir);
  free(dir);
}

/* Many copies of each of 1000 rows, k = 200: no cluster is left empty. */
static void heavy_duplicates(void **state) {
  (void)state;
  float *x = malloc(sizeof(float) * N * D);
  assert_non_null(x);
  uint64_t rng = 3;
  for (int i = 0; i < N; i++) {
    uint64_t src = dkm_test_rand(&rng) % 1000;
    memcpy(x + (size_t)i * D, blobs + src * D, sizeof(float) * D);
  }
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  dkm_params p;
  hier_params(&p, 200);
  p.n_threads = 1;
  dkm_result *r1 = dkm_test_train_rows(ctx, &p, x, N, D);
  assert_int_equal(r1->distinct_rows, 0);
  assert_int_equal(r1->balance.empty, 0);
  check_result(r1, N);
  p.n_threads = 2;
  p.block_rows = 33;
  dkm_result *r2 = dkm_test_train_rows(ctx, &p, x, N, D);
  dkm_test_assert_same_result(r1, r2, "duplicates: 1 vs 2 threads");
  dkm_result_free(r1);
  dkm_result_free(r2);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  free(x);
}

/* k = rows: every row its own centroid; k = rows - 1: no cluster empty. */
static void k_close_to_the_rows(void **state) {
  (void)state;
  enum { ROWS = 400 };
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  for (uint32_t k = ROWS - 2; k <= ROWS; k++) {
    for (int metric = DKM_METRIC_L2; metric <= DKM_METRIC_COSINE; metric++) {
      dkm_params p;
      hier_params(&p, k);
      p.metric = (dkm_metric)metric;
      p.max_iter = 20;
      dkm_result *r = dkm_test_train_rows(ctx, &p, blobs, ROWS, D);
      assert_int_equal(r->coarse_k, round_sqrt(k));
      check_result(r, ROWS);
      if (r->balance.empty != 0)
        fail_msg("k %u %s: %u clusters empty of %u distinct rows", k, dkm_metric_name(p.metric),
                 r->balance.empty, ROWS);
      assert_int_equal(r->distinct_rows, 0);
      assert_true(r->balance.largest <= ROWS - k + 1);
      if (k == ROWS && metric == DKM_METRIC_L2)
        for (int i = 0; i < ROWS; i++)
          if (!has_centroid(r, blobs + (size_t)i * D))
            fail_msg("k = rows: row %d has no centroid of its own", i);
      dkm_result_free(r);
    }
  }
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

/* Groups of copies of one row beside one group of many distinct rows:
 * the quota the copies cannot use goes to rows that can use it, so no
 * cluster stays empty while the sample has more distinct rows than k. */
static void a_group_with_fewer_distinct_rows_than_its_quota(void **state) {
  (void)state;
  enum { POINTS = 9, COPIES = 1000, SPREAD = 2000, ROWS = POINTS * COPIES + SPREAD, K = 100 };
  float *x = malloc(sizeof(float) * ROWS * D);
  assert_non_null(x);
  uint64_t rng = 11;
  /* Nine far-apart points, each repeated; then 2000 distinct rows around
   * the origin. Interleaved so every group fills as the rows come. */
  float points[POINTS][D];
  for (int q = 0; q < POINTS; q++)
    for (int j = 0; j < D; j++)
      points[q][j] = (float)(1000.0 * (j == q ? 1 : 0) + 100.0 * (q + 1));
  int spread = 0, copies[POINTS] = {0};
  for (int i = 0; i < ROWS; i++) {
    float *row = x + (size_t)i * D;
    int q = (int)(dkm_test_rand(&rng) % (POINTS + 2));
    if (q < POINTS && copies[q] < COPIES) {
      memcpy(row, points[q], sizeof(float) * D);
      copies[q]++;
    } else if (spread < SPREAD) {
      for (int j = 0; j < D; j++)
        row[j] = (float)dkm_test_normal(&rng);
      spread++;
    } else {
      i--; /* that kind is full: draw again */
    }
  }
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  for (uint64_t seed = 1; seed <= 4; seed++) {
    dkm_params p;
    hier_params(&p, K);
    p.seed = seed;
    p.max_iter = 20;
    dkm_result *r = dkm_test_train_rows(ctx, &p, x, ROWS, D);
    assert_int_equal(r->coarse_k, 10);
    check_result(r, ROWS);
    if (r->balance.empty != 0 || r->distinct_rows != 0)
      fail_msg("seed %llu: %u clusters empty, distinct_rows %u, with %d distinct rows for k %d",
               (unsigned long long)seed, r->balance.empty, r->distinct_rows, POINTS + SPREAD, K);
    /* Each point keeps a centroid of its own. */
    for (int q = 0; q < POINTS; q++)
      assert_true(has_centroid(r, points[q]));
    dkm_result_free(r);
  }
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  free(x);
}

/* k = 1, 2, 3 (coarse_k 1, 1, 2); k = 1 is flat training's one centroid,
 * the mean of the rows, bit for bit. */
static void tiny_k(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  for (uint32_t k = 1; k <= 3; k++) {
    dkm_params p;
    hier_params(&p, k);
    dkm_result *h = dkm_test_train_rows(ctx, &p, blobs, N, D);
    assert_int_equal(h->strategy, DKM_STRATEGY_HIERARCHICAL);
    assert_int_equal(h->coarse_k, round_sqrt(k));
    assert_int_equal(h->coarse_k, k == 3 ? 2 : 1);
    check_result(h, N);
    assert_int_equal(h->balance.empty, 0);
    assert_int_equal(h->n_iter, 1 + h->refine_passes);
    if (k == 1) {
      p.strategy = DKM_STRATEGY_FLAT;
      dkm_result *f = dkm_test_train_rows(ctx, &p, blobs, N, D);
      assert_memory_equal(h->centroids, f->centroids, sizeof(float) * D);
      assert_memory_equal(&h->objective, &f->objective, sizeof(double));
      dkm_result_free(f);
    }
    dkm_result_free(h);
  }
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

/* refine = 0 keeps the groups' centroids: one statistics entry, the
 * groups' objectives summed. */
static void no_refinement(void **state) {
  (void)state;
  enum { ROWS = 10000 };
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  dkm_params p;
  hier_params(&p, 200);
  p.refine = 0;
  dkm_result *r = dkm_test_train_rows(ctx, &p, blobs, ROWS, D);
  assert_int_equal(r->refine_passes, 0);
  assert_int_equal(r->n_iter, 1);
  assert_memory_equal(&r->iters[0].objective, &r->objective, sizeof(double));
  check_result(r, ROWS);
  double naive = dkm_test_objective(blobs, ROWS, D, r->centroids, 200, NULL);
  assert_true(naive <= r->objective * (1 + 1e-5));
  /* Refinement from there only lowers it. */
  p.refine = 2;
  dkm_result *refined = dkm_test_train_rows(ctx, &p, blobs, ROWS, D);
  assert_memory_equal(&refined->iters[0].objective, &r->objective, sizeof(double));
  assert_true(refined->objective <= r->objective);
  dkm_result_free(refined);
  dkm_result_free(r);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

/* A group trained hierarchically in turn refines nothing of its own: the
 * refinement of the whole run passes over its rows anyway, with candidates
 * from every group. Its progress shows: no refinement report from inside
 * a group, while reports from one level down (its coarse level) show that
 * it nested. */
typedef struct nest_watch {
  int nested;        /* reports from one level down */
  int group_refines; /* refinement reports from inside a group */
} nest_watch;

static int watch_nesting(void *user, const dkm_progress *pr) {
  nest_watch *w = user;
  w->nested += pr->level >= 1;
  w->group_refines += pr->phase == DKM_PHASE_REFINE && pr->part != DKM_PART_WHOLE;
  return 0;
}

static void nested_groups_leave_refinement_to_the_top(void **state) {
  (void)state;
  enum { TIGHT = 12000, SPREAD = 8000, DIM = 4 };
  /* A tight blob among spread rows: its group's share of k = 8192 is above
   * 4096, so that group is trained hierarchically in turn. */
  float *x = malloc(sizeof(float) * (TIGHT + SPREAD) * DIM);
  assert_non_null(x);
  uint64_t rng = 5;
  for (int r = 0; r < TIGHT + SPREAD; r++)
    for (int j = 0; j < DIM; j++)
      x[r * DIM + j] = r % 5 < 3 ? (float)(0.01 * dkm_test_normal(&rng))
                                 : (float)(2000 * dkm_test_uniform(&rng) - 1000);
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  dkm_params p;
  hier_params(&p, 8192);
  p.max_iter = 3;
  p.refine = 2;
  nest_watch w = {0, 0};
  p.progress = watch_nesting;
  p.progress_user = &w;
  dkm_result *r = dkm_test_train_rows(ctx, &p, x, TIGHT + SPREAD, DIM);
  assert_true(r->levels >= 3);
  assert_true(w.nested > 0);
  assert_int_equal(w.group_refines, 0);
  assert_int_equal(r->refine_passes, 2);
  dkm_result_free(r);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  free(x);
}

/* --- 5. balance ------------------------------------------------------------------- */

/* Clusters of Zipf-like sizes (the i-th about 1 / (i + 1) of the rows)
 * and spreads from 0.3 to 3. */
static float *zipf_blobs(uint64_t rows, uint32_t clusters, uint64_t seed) {
  uint64_t rng = seed;
  float *centres = malloc(sizeof(float) * clusters * D);
  double *cum = malloc(sizeof(double) * clusters);
  float *x = malloc(sizeof(float) * rows * D);
  assert_true(centres != NULL && cum != NULL && x != NULL);
  double total = 0;
  for (uint32_t c = 0; c < clusters; c++) {
    total += 1.0 / (c + 1);
    cum[c] = total;
    for (uint32_t j = 0; j < D; j++)
      centres[c * D + j] = (float)(40.0 * dkm_test_uniform(&rng));
  }
  for (uint64_t r = 0; r < rows; r++) {
    double u = dkm_test_uniform(&rng) * total;
    uint32_t c = 0;
    while (c + 1 < clusters && cum[c] < u)
      c++;
    double sigma = 0.3 + 2.7 * (double)((c * 7) % clusters) / clusters;
    for (uint32_t j = 0; j < D; j++)
      x[r * D + j] = centres[c * D + j] + (float)(sigma * dkm_test_normal(&rng));
  }
  free(centres);
  free(cum);
  return x;
}

static void balance_evens_the_partitions(void **state) {
  (void)state;
  float *x = zipf_blobs(N, 40, 21);
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  dkm_params p;
  hier_params(&p, 200);
  p.max_iter = 10;
  p.refine = 3;
  p.tol = 0;
  dkm_result *plain = dkm_test_train_rows(ctx, &p, x, N, D);
  p.balance = 1;
  dkm_result *bal = dkm_test_train_rows(ctx, &p, x, N, D);
  double obj_plain = dkm_test_objective(x, N, D, plain->centroids, 200, NULL);
  double obj_bal = dkm_test_objective(x, N, D, bal->centroids, 200, NULL);
  print_message("plain: cv %.3f largest/mean %.2f obj %.6g; balanced: cv %.3f largest/mean %.2f "
                "obj %.6g\n",
                plain->balance.cv, plain->balance.largest_over_mean, obj_plain, bal->balance.cv,
                bal->balance.largest_over_mean, obj_bal);
  assert_true(bal->balance.cv <= 0.7 * plain->balance.cv);
  assert_true(bal->balance.largest_over_mean <= 3);
  assert_true(bal->balance.largest_over_mean < plain->balance.largest_over_mean);
  assert_int_equal(bal->balance.empty, 0);
  assert_true(obj_bal <= 1.10 * obj_plain);
  /* Without balance nothing is moved; with it, the groups' trainings moved
   * some centroids (their first entry counts every iteration's moves). */
  for (uint32_t i = 0; i < plain->n_iter; i++)
    assert_int_equal(plain->iters[i].rebalanced, 0);
  assert_true(bal->iters[0].rebalanced > 0);
  dkm_result_free(plain);
  dkm_result_free(bal);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  free(x);
}

/* --- 6. progress and cancellation ----------------------------------------------- */

enum { MAX_SEEN = 16 };

typedef struct watcher {
  /* Cancel at the first report of (part, phase); part -1: never. */
  int part;
  dkm_phase phase;
  uint32_t coarse_k, refine;
  int calls;
  int bad; /* a report out of its bounds */
  char why[160];
  int n_seen; /* distinct (part, phase) pairs, in the order first seen */
  int seen[MAX_SEEN][2];
  uint32_t last_group;
} watcher;

static int watch(void *user, const dkm_progress *pr) {
  watcher *w = user;
  w->calls++;
  int known = 0;
  for (int i = 0; i < w->n_seen; i++)
    known |= w->seen[i][0] == (int)pr->part && w->seen[i][1] == (int)pr->phase;
  if (!known && w->n_seen < MAX_SEEN) {
    w->seen[w->n_seen][0] = (int)pr->part;
    w->seen[w->n_seen++][1] = (int)pr->phase;
  }
  const char *why = NULL;
  if (pr->done > pr->total)
    why = "done above total";
  else if (pr->level != 0)
    why = "level above 0 for groups trained flat";
  else if (pr->part == DKM_PART_GROUP &&
           (pr->n_groups != w->coarse_k || pr->group >= pr->n_groups || pr->group < w->last_group))
    why = "group report out of bounds or order";
  else if (pr->part != DKM_PART_GROUP && (pr->group != 0 || pr->n_groups != 0))
    why = "a group number outside a group";
  else if (pr->phase == DKM_PHASE_REFINE &&
           (pr->part != DKM_PART_WHOLE || pr->iteration >= w->refine || pr->max_iter != w->refine))
    why = "refinement report out of bounds";
  else if ((pr->phase == DKM_PHASE_ROUTE || pr->phase == DKM_PHASE_REFINE) &&
           pr->part != DKM_PART_WHOLE)
    why = "route or refine outside the whole run";
  else if (pr->phase == DKM_PHASE_ITERATE && pr->part == DKM_PART_WHOLE)
    why = "a Lloyd iteration of the whole run (refinement reports REFINE)";
  if (why != NULL && !w->bad) {
    w->bad = 1;
    snprintf(w->why, sizeof w->why, "%s: part %d phase %d group %u/%u level %u it %u", why,
             (int)pr->part, (int)pr->phase, pr->group, pr->n_groups, pr->level, pr->iteration);
  }
  if (pr->part == DKM_PART_GROUP)
    w->last_group = pr->group;
  return (int)pr->part == w->part && pr->phase == w->phase;
}

static void cancel_in_every_phase(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("hier-cancel");
  assert_non_null(dir);
  enum { ROWS = 4000, K = 64 };
  for (int disk = 0; disk < 2; disk++) {
    dkm_params p;
    hier_params(&p, K);
    p.max_points_per_centroid = 40; /* a sample (2560 rows), and the coarse one's (320) */
    p.init = DKM_INIT_KMEANSPP;
    p.tol = 0;
    p.max_iter = 3;
    p.refine = 2;
    p.storage = disk ? DKM_STORAGE_DISK : DKM_STORAGE_MEMORY;
    p.tmp_dir = dir;
    p.n_threads = 2;
    p.progress = watch;
    /* A run that cancels nothing sees every phase. */
    watcher all;
    memset(&all, 0, sizeof all);
    all.part = -1;
    all.coarse_k = round_sqrt(K);
    all.refine = p.refine;
    p.progress_user = &all;
    dkm_test_alloc a = {0};
    dkm_ctx *ctx = dkm_test_ctx(&a);
    dkm_result *r = dkm_test_train_rows(ctx, &p, blobs, ROWS, D);
    dkm_result_free(r);
    if (all.bad)
      fail_msg("%s", all.why);
    assert_int_equal(all.last_group, all.coarse_k - 1);
    const int want[][2] = {
        {DKM_PART_WHOLE, DKM_PHASE_SAMPLE},  {DKM_PART_COARSE, DKM_PHASE_SAMPLE},
        {DKM_PART_COARSE, DKM_PHASE_INIT},   {DKM_PART_COARSE, DKM_PHASE_ITERATE},
        {DKM_PART_WHOLE, DKM_PHASE_ROUTE},   {DKM_PART_GROUP, DKM_PHASE_INIT},
        {DKM_PART_GROUP, DKM_PHASE_ITERATE}, {DKM_PART_WHOLE, DKM_PHASE_REFINE},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
      int found = 0;
      for (int s = 0; s < all.n_seen; s++)
        found |= all.seen[s][0] == want[i][0] && all.seen[s][1] == want[i][1];
      if (!found)
        fail_msg("%s: no report of part %d phase %d", disk ? "disk" : "memory", want[i][0],
                 want[i][1]);
    }
    /* Then cancel at each one. */
    for (int s = 0; s < all.n_seen; s++) {
      watcher w;
      memset(&w, 0, sizeof w);
      w.part = all.seen[s][0];
      w.phase = (dkm_phase)all.seen[s][1];
      w.coarse_k = all.coarse_k;
      w.refine = p.refine;
      p.progress_user = &w;
      dkm_source *src;
      assert_int_equal(dkm_source_from_memory(ctx, blobs, DKM_DTYPE_F32, ROWS, D, &src), DKM_OK);
      dkm_result *out = (dkm_result *)src;
      dkm_status st = dkm_train(ctx, &p, src, &out);
      dkm_source_close(src);
      if (st != DKM_ERR_CANCELLED)
        fail_msg("%s: cancel at part %d phase %d: %s", disk ? "disk" : "memory", w.part,
                 (int)w.phase, dkm_status_name(st));
      assert_null(out);
      expect_msg(ctx, "cancelled");
      if (w.bad)
        fail_msg("%s", w.why);
      assert_int_equal(dkm_test_count_entries(dir), 0);
    }
    dkm_ctx_free(ctx);
    assert_int_equal(a.live, 0);
  }
  dkm_test_rmtree(dir);
  free(dir);
}

/* --- 7. allocation failures ---------------------------------------------------- */

/* Fails the first, second, ... allocation of one hierarchical training
 * until it succeeds; every failure must be DKM_ERR_NOMEM with a message,
 * nothing leaked and no file left. */
static void sweep(const dkm_params *p, const float *x, uint64_t n, const char *dir) {
  long allocations = 0;
  for (long fail = 1;; fail++) {
    dkm_test_alloc a = {0};
    dkm_ctx *ctx = dkm_test_ctx(&a);
    assert_non_null(ctx);
    dkm_source *src;
    assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, n, D, &src), DKM_OK);
    long before = a.count;
    a.fail_at = before + fail;
    dkm_result *r = NULL;
    dkm_status s = dkm_train(ctx, p, src, &r);
    long failures = a.failures;
    allocations = a.count - before;
    if (s == DKM_OK) {
      assert_non_null(r);
      assert_int_equal(r->strategy, DKM_STRATEGY_HIERARCHICAL);
      if (failures != 0)
        fail_msg("allocation %ld failed and training succeeded", fail);
    } else {
      if (s != DKM_ERR_NOMEM)
        fail_msg("allocation %ld failed: %s: %s", fail, dkm_status_name(s), dkm_ctx_errmsg(ctx));
      assert_null(r);
      if (strlen(dkm_ctx_errmsg(ctx)) == 0)
        fail_msg("allocation %ld failed without a message", fail);
    }
    dkm_result_free(r);
    dkm_source_close(src);
    dkm_ctx_free(ctx);
    if (a.live != 0)
      fail_msg("allocation %ld failed: %ld blocks leaked", fail, a.live);
    if (dir != NULL && dkm_test_count_entries(dir) != 0)
      fail_msg("allocation %ld failed: a file is left in %s", fail, dir);
    if (failures == 0)
      break;
  }
  /* Several trainings in one: far more allocations than one flat run. */
  assert_true(allocations > 100);
  print_message("%ld allocations\n", allocations);
}

static void allocation_failures_leak_nothing(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("hier-nomem");
  assert_non_null(dir);
  enum { ROWS = 600 };
  dkm_params p;
  hier_params(&p, 12); /* 3 groups */
  p.max_iter = 2;
  p.refine = 2;
  p.tol = 0;
  p.n_threads = 2;
  p.block_rows = 200;
  p.tmp_dir = dir;
  p.storage = DKM_STORAGE_MEMORY;
  sweep(&p, blobs, ROWS, dir); /* in place */
  p.max_points_per_centroid = 40;
  p.init = DKM_INIT_KMEANSPP;
  p.balance = 1;
  p.n_threads = 1;
  sweep(&p, blobs, ROWS, dir); /* a sample, k-means++, balancing */
  p.storage = DKM_STORAGE_DISK;
  p.metric = DKM_METRIC_COSINE;
  sweep(&p, blobs, ROWS, dir); /* spilled sample and groups */
  p.max_points_per_centroid = 0;
  p.balance = 0;
  p.init = DKM_INIT_RANDOM;
  sweep(&p, blobs, ROWS, dir); /* the whole input spilled */
  dkm_test_rmtree(dir);
  free(dir);
}

/* --- 8. the plan --------------------------------------------------------------- */

static void plan_prices_hierarchical_training(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("hier-plan");
  assert_non_null(dir);
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, blobs, DKM_DTYPE_F32, N, D, &src), DKM_OK);
  const struct {
    dkm_storage storage;
    uint64_t mppc;
    dkm_init init;
    uint32_t threads;
  } cases[] = {
      {DKM_STORAGE_MEMORY, 0, DKM_INIT_KMEANSPP, 2},
      {DKM_STORAGE_MEMORY, 50, DKM_INIT_RANDOM, 1},
      {DKM_STORAGE_DISK, 0, DKM_INIT_KMEANSPP, 2},
      {DKM_STORAGE_DISK, 50, DKM_INIT_RANDOM, 3},
      {DKM_STORAGE_DISK, 0, DKM_INIT_GREEDY_KMEANSPP, 2},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    dkm_params p;
    hier_params(&p, 400);
    p.storage = cases[c].storage;
    p.max_points_per_centroid = cases[c].mppc;
    p.init = cases[c].init;
    p.n_threads = cases[c].threads;
    p.max_iter = 4;
    p.tmp_dir = dir;
    dkm_plan plan;
    assert_int_equal(dkm_plan_training(ctx, &p, src, &plan), DKM_OK);
    assert_int_equal(plan.strategy, DKM_STRATEGY_HIERARCHICAL);
    assert_int_equal(plan.coarse_k, 20);
    assert_true(plan.flops > 0);
    assert_true(plan.flops < plan.flat_flops / 4);
    a.peak_bytes = a.bytes;
    long long before = a.bytes;
    dkm_result *r = dkm_test_train(ctx, &p, src);
    double peak = (double)(a.peak_bytes - before);
    assert_int_equal(plan.storage, r->storage);
    assert_int_equal(plan.sample_rows, r->sample_rows);
    assert_int_equal(plan.spill_bytes, r->spill_bytes);
    double planned =
        (double)(p.storage == DKM_STORAGE_DISK ? plan.disk_mode_bytes : plan.memory_mode_bytes);
    print_message("case %zu: peak %.0f planned %.0f (%.2f)\n", c, peak, planned, planned / peak);
    if (peak > planned)
      fail_msg("case %zu: training allocated %.0f bytes at its peak, planned %.0f", c, peak,
               planned);
    if (planned > 4 * peak)
      fail_msg("case %zu: planned %.0f bytes, more than 4 x the %.0f allocated", c, planned, peak);
    dkm_result_free(r);
    assert_int_equal(dkm_test_count_entries(dir), 0);
  }
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  dkm_test_rmtree(dir);
  free(dir);
}

/* --- 9. given centroids ---------------------------------------------------------- */

static void given_centroids_need_flat_training(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  dkm_params p;
  hier_params(&p, 10);
  p.init = DKM_INIT_GIVEN;
  p.init_centroids = blobs;
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, blobs, DKM_DTYPE_F32, N, D, &src), DKM_OK);
  dkm_result *r = (dkm_result *)src;
  assert_int_equal(dkm_train(ctx, &p, src, &r), DKM_ERR_PARAM);
  assert_null(r);
  expect_msg(ctx, "init is given");
  expect_msg(ctx, "strategy flat");
  dkm_plan plan;
  assert_int_equal(dkm_plan_training(ctx, &p, src, &plan), DKM_ERR_PARAM);
  expect_msg(ctx, "init is given");
  dkm_source_close(src);

  /* AUTO at a k that would be hierarchical: flat with given centroids,
   * hierarchical without. */
  enum { ROWS = DKM_HIERARCHICAL_MIN_K, DIM = 2 };
  float *x = malloc(sizeof(float) * ROWS * DIM);
  assert_non_null(x);
  uint64_t rng = 9;
  for (int i = 0; i < ROWS * DIM; i++)
    x[i] = (float)dkm_test_normal(&rng);
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, ROWS, DIM, &src), DKM_OK);
  dkm_params_init(&p);
  p.k = DKM_HIERARCHICAL_MIN_K;
  p.max_iter = 1;
  assert_int_equal(dkm_plan_training(ctx, &p, src, &plan), DKM_OK);
  assert_int_equal(plan.strategy, DKM_STRATEGY_HIERARCHICAL);
  assert_int_equal(plan.coarse_k, 64);
  p.init = DKM_INIT_GIVEN;
  p.init_centroids = x;
  assert_int_equal(dkm_plan_training(ctx, &p, src, &plan), DKM_OK);
  assert_int_equal(plan.strategy, DKM_STRATEGY_FLAT);
  assert_int_equal(plan.coarse_k, 0);
  r = dkm_test_train(ctx, &p, src);
  assert_int_equal(r->strategy, DKM_STRATEGY_FLAT);
  assert_int_equal(r->coarse_k, 0);
  dkm_result_free(r);
  dkm_source_close(src);
  free(x);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(identical_across_threads_blocks_and_storage),
      cmocka_unit_test(quotas_sum_to_k_and_follow_the_sizes),
      cmocka_unit_test(result_says_what_ran),
      cmocka_unit_test(fewer_distinct_rows_than_k),
      cmocka_unit_test(heavy_duplicates),
      cmocka_unit_test(k_close_to_the_rows),
      cmocka_unit_test(a_group_with_fewer_distinct_rows_than_its_quota),
      cmocka_unit_test(tiny_k),
      cmocka_unit_test(no_refinement),
      cmocka_unit_test(nested_groups_leave_refinement_to_the_top),
      cmocka_unit_test(balance_evens_the_partitions),
      cmocka_unit_test(cancel_in_every_phase),
      cmocka_unit_test(allocation_failures_leak_nothing),
      cmocka_unit_test(plan_prices_hierarchical_training),
      cmocka_unit_test(given_centroids_need_flat_training),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
