/*
 * test_engine_errors.c - every way dkm_train can fail gives its status and
 * one clear message, leaks nothing and leaves no file behind: bad
 * arguments, too few rows, NaN/infinite/overflowing rows (named by their
 * row in the input), cancellation from the progress callback in every
 * phase, and an allocation failure at every allocation the call makes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

static void expect_msg(dkm_ctx *ctx, const char *word) {
  if (strstr(dkm_ctx_errmsg(ctx), word) == NULL)
    fail_msg("message \"%s\" lacks \"%s\"", dkm_ctx_errmsg(ctx), word);
}

static dkm_status try_train(dkm_ctx *ctx, const dkm_params *p, const float *x, uint64_t n,
                            uint32_t dim) {
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, n, dim, &src), DKM_OK);
  dkm_result *r = (dkm_result *)src; /* must come back NULL on failure */
  dkm_status s = dkm_train(ctx, p, src, &r);
  if (s != DKM_OK)
    assert_null(r);
  dkm_result_free(r);
  dkm_source_close(src);
  return s;
}

static void null_arguments(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  float x[4] = {0, 1, 2, 3};
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, 4, 1, &src), DKM_OK);
  dkm_params p;
  dkm_params_init(&p);
  p.k = 2;
  dkm_result *r;
  assert_int_equal(dkm_train(NULL, &p, src, &r), DKM_ERR_PARAM);
  assert_int_equal(dkm_train(ctx, &p, src, NULL), DKM_ERR_PARAM);
  expect_msg(ctx, "out");
  assert_int_equal(dkm_train(ctx, &p, NULL, &r), DKM_ERR_PARAM);
  expect_msg(ctx, "src");
  assert_int_equal(dkm_train(ctx, NULL, src, &r), DKM_ERR_PARAM);
  expect_msg(ctx, "params");
  dkm_plan plan;
  assert_int_equal(dkm_plan_training(ctx, &p, NULL, &plan), DKM_ERR_PARAM);
  assert_int_equal(dkm_plan_training(ctx, &p, src, NULL), DKM_ERR_PARAM);
  assert_int_equal(dkm_plan_training(ctx, NULL, src, &plan), DKM_ERR_PARAM);
  dkm_result_free(NULL);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

static void k_zero_and_k_above_rows(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  float x[6] = {0, 1, 2, 3, 4, 5};
  dkm_params p;
  dkm_params_init(&p);
  assert_int_equal(try_train(ctx, &p, x, 6, 1), DKM_ERR_PARAM);
  expect_msg(ctx, "k must be at least 1");
  p.k = 7;
  assert_int_equal(try_train(ctx, &p, x, 6, 1), DKM_ERR_TOO_FEW_ROWS);
  expect_msg(ctx, "memory: k is 7 but there are only 6 rows");
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, 6, 1, &src), DKM_OK);
  dkm_plan plan;
  assert_int_equal(dkm_plan_training(ctx, &p, src, &plan), DKM_ERR_TOO_FEW_ROWS);
  dkm_source_close(src);
  p.k = 6;
  assert_int_equal(try_train(ctx, &p, x, 6, 1), DKM_OK);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

static dkm_status no_read(dkm_source *self, dkm_ctx *ctx, uint64_t first, uint64_t count,
                          float *buf, const float **rows) {
  (void)self;
  (void)first;
  (void)count;
  (void)buf;
  (void)rows;
  return dkm_ctx_set_error(ctx, DKM_ERR_INTERNAL, "must not be read");
}

static void no_close(dkm_source *self) {
  (void)self;
}

static void a_source_without_columns_is_rejected(void **state) {
  (void)state;
  static const dkm_source_methods methods = {DKM_SOURCE_METHODS_VERSION, no_read, NULL, no_close};
  dkm_source src;
  memset(&src, 0, sizeof src);
  src.methods = &methods;
  src.rows = 10;
  src.dim = 0;
  src.name = "empty.custom";
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  dkm_params p;
  dkm_params_init(&p);
  p.k = 2;
  dkm_result *r;
  assert_int_equal(dkm_train(ctx, &p, &src, &r), DKM_ERR_PARAM);
  expect_msg(ctx, "empty.custom: dim is 0");
  dkm_plan plan;
  assert_int_equal(dkm_plan_training(ctx, &p, &src, &plan), DKM_ERR_PARAM);
  expect_msg(ctx, "dim is 0");
  int32_t labels[10];
  float c[1] = {0};
  assert_int_equal(dkm_assign(ctx, &p, &src, c, 1, 0, labels, NULL), DKM_ERR_PARAM);
  expect_msg(ctx, "dim is 0");
  src.dim = 1;
  src.rows = 0;
  assert_int_equal(dkm_train(ctx, &p, &src, &r), DKM_ERR_TOO_FEW_ROWS);
  /* Labelling no rows is fine and reads nothing. */
  assert_int_equal(dkm_assign(ctx, &p, &src, c, 1, 1, labels, NULL), DKM_OK);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

static void given_init_without_or_with_bad_centroids(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  float x[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  dkm_params p;
  dkm_params_init(&p);
  p.k = 2;
  p.init = DKM_INIT_GIVEN;
  assert_int_equal(try_train(ctx, &p, x, 4, 2), DKM_ERR_PARAM);
  expect_msg(ctx, "init_centroids");
  const float bad[4] = {0, 1, NAN, 3};
  p.init_centroids = bad;
  assert_int_equal(try_train(ctx, &p, x, 4, 2), DKM_ERR_PARAM);
  expect_msg(ctx, "init_centroids: centroid 1 has a NaN in column 0");
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

/* Rows 0..n-1 of dim 3 with one bad value planted at (row, col). */
static float *rows_with(uint64_t n, uint64_t row, uint32_t col, float value) {
  float *x = malloc(sizeof(float) * n * 3);
  for (uint64_t i = 0; i < n * 3; i++)
    x[i] = (float)(i % 17);
  x[row * 3 + col] = value;
  return x;
}

static void bad_values_name_their_row(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("engine-errors");
  assert_non_null(dir);
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  const uint64_t n = 5000;
  struct {
    float value;
    const char *text;
  } cases[] = {{NAN, "has a NaN in column 2"},
               {INFINITY, "has an infinite value in column 2"},
               {-INFINITY, "has an infinite value in column 2"},
               {3e38f, "has squared norm 9e+76, above 4.25e+37"},
               /* Finite in float, but its distances are not (see sample.h). */
               {1e19f, "has squared norm 1e+38, above 4.25e+37"}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    float *x = rows_with(n, 4321, 2, cases[c].value);
    for (int mode = 0; mode < 4; mode++) {
      /* Every way the row can reach training: in place (memory), gathered
       * into a sample, spilled, and through k-means++ init. */
      dkm_params p;
      dkm_params_init(&p);
      p.k = 4;
      p.tmp_dir = dir;
      p.n_threads = 2;
      p.block_rows = 512;
      if (mode == 1)
        p.storage = DKM_STORAGE_DISK;
      if (mode == 2)
        p.init = c % 2 == 0 ? DKM_INIT_KMEANSPP : DKM_INIT_GREEDY_KMEANSPP;
      if (mode == 3) {
        /* 4996 of 5000 rows: drawn or not, row 4321 is read (and
         * checked) with the rows around it */
        p.max_points_per_centroid = 1249;
        p.storage = DKM_STORAGE_MEMORY;
      } else {
        p.max_points_per_centroid = 0;
      }
      dkm_status s = try_train(ctx, &p, x, n, 3);
      assert_int_equal(s, DKM_ERR_DATA);
      expect_msg(ctx, "memory: row 4321 ");
      expect_msg(ctx, cases[c].text);
      assert_int_equal(dkm_test_count_entries(dir), 0);
    }
    free(x);
  }
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  dkm_test_rmtree(dir);
  free(dir);
}

/* A bad value in a row that is not drawn into the sample is found by the
 * sampling pass, before training, when that pass reads the row: it checks
 * every row it reads, and it reads each 1 MiB block that holds drawn rows
 * whole when they span half of it or more, else from the first to the last
 * drawn row. Other rows (only where the sample holds few rows of a block)
 * are found by labelling (docs/formats.md). */
enum { OUT_N = 4096, OUT_D = 1024, OUT_K = 64, OUT_BLOCK = 256 /* rows of 4 KiB in 1 MiB */ };

/* 1 for the rows the sampling pass reads, given the drawn ones. */
static void rows_the_pass_reads(const int *drawn, int *read) {
  int left = OUT_K;
  for (int first = 0; first < OUT_N && left > 0; first += OUT_BLOCK) {
    int lo = -1, hi = -1;
    for (int i = first; i < first + OUT_BLOCK; i++) {
      if (drawn[i]) {
        lo = lo < 0 ? i : lo;
        hi = i + 1;
        left--;
      }
    }
    if (lo < 0)
      continue;
    if (2 * (hi - lo) >= OUT_BLOCK) {
      lo = first;
      hi = first + OUT_BLOCK;
    }
    for (int i = lo; i < hi; i++)
      read[i] = 1;
  }
}

static void a_bad_row_outside_the_sample_fails_the_sampling_pass(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  /* Row i is (i, 0, ..., 0): with one row per centroid (m = k) every drawn
   * row stays a centroid, which tells which rows were drawn. */
  float *x = calloc((size_t)OUT_N * OUT_D, sizeof(float));
  assert_non_null(x);
  for (int i = 0; i < OUT_N; i++)
    x[(size_t)i * OUT_D] = (float)i;
  dkm_params p;
  dkm_params_init(&p);
  p.k = OUT_K;
  p.max_points_per_centroid = 1;
  p.max_iter = 2;
  p.storage = DKM_STORAGE_MEMORY;
  p.tmp_dir = "/tmp";
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, OUT_N, OUT_D, &src), DKM_OK);
  dkm_result *r = dkm_test_train(ctx, &p, src);
  dkm_source_close(src);
  static int drawn[OUT_N], read[OUT_N];
  for (int c = 0; c < OUT_K; c++) {
    int row = (int)r->centroids[(size_t)c * OUT_D];
    assert_true(row >= 0 && row < OUT_N && r->centroids[(size_t)c * OUT_D] == (float)row);
    drawn[row] = 1;
  }
  dkm_result_free(r);
  rows_the_pass_reads(drawn, read);
  /* The first undrawn row the pass reads and the first it does not (64
   * rows in 16 blocks: both exist for any seed but the rarest). */
  int checked = -1, unchecked = -1;
  for (int i = 0; i < OUT_N; i++) {
    if (!drawn[i] && read[i] && checked < 0)
      checked = i;
    if (!read[i] && unchecked < 0)
      unchecked = i;
  }
  assert_true(checked >= 0);
  for (int storage = 0; storage < 2; storage++) {
    p.storage = storage == 0 ? DKM_STORAGE_MEMORY : DKM_STORAGE_DISK;
    x[(size_t)checked * OUT_D + 3] = NAN;
    assert_int_equal(try_train(ctx, &p, x, OUT_N, OUT_D), DKM_ERR_DATA);
    char want[64];
    snprintf(want, sizeof want, "memory: row %d has a NaN in column 3", checked);
    expect_msg(ctx, want);
    x[(size_t)checked * OUT_D + 3] = 0;
  }
  /* A row the pass does not read: training succeeds, and labelling the
   * rows names it. */
  if (unchecked >= 0) {
    x[(size_t)unchecked * OUT_D + 1] = INFINITY;
    assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, OUT_N, OUT_D, &src), DKM_OK);
    r = dkm_test_train(ctx, &p, src);
    int32_t *labels = malloc(sizeof(int32_t) * OUT_N);
    assert_non_null(labels);
    assert_int_equal(dkm_assign(ctx, &p, src, r->centroids, OUT_K, OUT_D, labels, NULL),
                     DKM_ERR_DATA);
    char want[64];
    snprintf(want, sizeof want, "memory: row %d has an infinite value in column 1", unchecked);
    expect_msg(ctx, want);
    free(labels);
    dkm_result_free(r);
    dkm_source_close(src);
  }
  free(x);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

/* Progress callback that cancels at the chosen phase. */
typedef struct cancel_at {
  dkm_phase phase;
  uint32_t iteration;
  int calls;
  int bad_order; /* a call whose done exceeded total */
} cancel_at;

static int cancel_cb(void *user, const dkm_progress *pr) {
  cancel_at *c = user;
  c->calls++;
  if (pr->done > pr->total)
    c->bad_order = 1;
  return pr->phase == c->phase && (pr->phase != DKM_PHASE_ITERATE || pr->iteration == c->iteration);
}

static void cancel_from_callback_in_every_phase(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("engine-cancel");
  assert_non_null(dir);
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  enum { N = 3000, D = 4 };
  float *x = dkm_test_blobs(N, D, 5, 1.0, 2, NULL);
  const dkm_phase phases[] = {DKM_PHASE_SAMPLE, DKM_PHASE_INIT, DKM_PHASE_ITERATE,
                              DKM_PHASE_ITERATE};
  for (int i = 0; i < 4; i++) {
    for (int disk = 0; disk < 2; disk++) {
      cancel_at c = {phases[i], i == 3 ? 2 : 0, 0, 0};
      dkm_params p;
      dkm_params_init(&p);
      p.k = 5;
      p.max_points_per_centroid = 100; /* a sample phase */
      p.init = DKM_INIT_KMEANSPP;
      p.tol = 0;
      p.storage = disk ? DKM_STORAGE_DISK : DKM_STORAGE_MEMORY;
      p.tmp_dir = dir;
      p.progress = cancel_cb;
      p.progress_user = &c;
      assert_int_equal(try_train(ctx, &p, x, N, D), DKM_ERR_CANCELLED);
      expect_msg(ctx, "cancelled");
      assert_true(c.calls >= 1);
      assert_false(c.bad_order);
      assert_int_equal(dkm_test_count_entries(dir), 0);
    }
  }
  /* A callback that never cancels sees every phase end. */
  cancel_at never = {(dkm_phase)99, 0, 0, 0};
  dkm_params p;
  dkm_params_init(&p);
  p.k = 5;
  p.max_iter = 3;
  p.tol = 0;
  p.progress = cancel_cb;
  p.progress_user = &never;
  assert_int_equal(try_train(ctx, &p, x, N, D), DKM_OK);
  assert_true(never.calls >= 5); /* sample, init, three iterations */
  free(x);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  dkm_test_rmtree(dir);
  free(dir);
}

/* Fails the first, second, ... allocation of one dkm_train call until it
 * succeeds; every failure must be a clean error with nothing leaked. */
static void sweep(dkm_params *p, const float *x, uint64_t n, uint32_t dim, const char *dir) {
  for (long fail = 1;; fail++) {
    dkm_test_alloc a = {0};
    dkm_ctx *ctx = dkm_test_ctx(&a);
    assert_non_null(ctx);
    dkm_source *src;
    assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, n, dim, &src), DKM_OK);
    a.fail_at = a.count + fail;
    dkm_result *r = NULL;
    dkm_status s = dkm_train(ctx, p, src, &r);
    long failures = a.failures;
    if (s == DKM_OK) {
      assert_non_null(r);
      assert_int_equal(failures, 0);
    } else {
      if (s != DKM_ERR_NOMEM)
        fail_msg("allocation %ld failed: %s: %s", fail, dkm_status_name(s), dkm_ctx_errmsg(ctx));
      assert_null(r);
      assert_true(strlen(dkm_ctx_errmsg(ctx)) > 0);
    }
    dkm_result_free(r);
    dkm_source_close(src);
    dkm_ctx_free(ctx);
    if (a.live != 0)
      fail_msg("allocation %ld failed: %ld blocks leaked", fail, a.live);
    if (dir != NULL)
      assert_int_equal(dkm_test_count_entries(dir), 0);
    if (failures == 0) {
      /* The call made fewer than `fail` allocations: all covered. A
       * training call makes dozens; fewer means the sweep is broken. */
      assert_true(fail > 10);
      break;
    }
  }
}

static void allocation_failures_leak_nothing(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("engine-nomem");
  assert_non_null(dir);
  enum { N = 2000, D = 5 };
  float *x = dkm_test_blobs(N, D, 6, 1.0, 12, NULL);
  dkm_params p;
  dkm_params_init(&p);
  p.k = 6;
  p.max_iter = 3;
  p.n_threads = 2;
  p.block_rows = 300;
  p.tmp_dir = dir;
  sweep(&p, x, N, D, dir); /* in place, random init */
  p.max_points_per_centroid = 100;
  p.init = DKM_INIT_KMEANSPP;
  p.n_redo = 2;
  sweep(&p, x, N, D, dir); /* gathered sample, k-means++ */
  p.storage = DKM_STORAGE_DISK;
  p.metric = DKM_METRIC_COSINE;
  sweep(&p, x, N, D, dir); /* spilled sample */
  p.init = DKM_INIT_GREEDY_KMEANSPP;
  sweep(&p, x, N, D, dir); /* greedy k-means++ */
  free(x);
  dkm_test_rmtree(dir);
  free(dir);
}

static void bad_tmp_dir_is_an_io_error(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  float x[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  dkm_params p;
  dkm_params_init(&p);
  p.k = 2;
  p.storage = DKM_STORAGE_DISK;
  p.tmp_dir = "/nonexistent/diskmeans-test";
  assert_int_equal(try_train(ctx, &p, x, 8, 1), DKM_ERR_IO);
  expect_msg(ctx, "/nonexistent/diskmeans-test");
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(null_arguments),
      cmocka_unit_test(k_zero_and_k_above_rows),
      cmocka_unit_test(a_source_without_columns_is_rejected),
      cmocka_unit_test(given_init_without_or_with_bad_centroids),
      cmocka_unit_test(bad_values_name_their_row),
      cmocka_unit_test(a_bad_row_outside_the_sample_fails_the_sampling_pass),
      cmocka_unit_test(cancel_from_callback_in_every_phase),
      cmocka_unit_test(allocation_failures_leak_nothing),
      cmocka_unit_test(bad_tmp_dir_is_an_io_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
