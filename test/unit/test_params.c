/*
 * test_params.c - the defaults, and one clear DKM_ERR_PARAM naming the field
 * for every bad value.
 */
#include <math.h>
#include <string.h>

#include "test_support.h"

static void defaults_are_documented(void **state) {
  (void)state;
  dkm_params p;
  memset(&p, 0xff, sizeof p);
  dkm_params_init(&p);
  assert_int_equal(p.k, 0);
  assert_int_equal(p.max_iter, 25);
  assert_true(p.tol == 1e-4);
  assert_int_equal(p.n_redo, 1);
  assert_true(p.seed == DKM_DEFAULT_SEED);
  assert_int_equal(p.init, DKM_INIT_KMEANSPP);
  assert_null(p.init_centroids);
  assert_int_equal(p.metric, DKM_METRIC_L2);
  assert_int_equal(p.max_points_per_centroid, 256);
  assert_int_equal(p.n_threads, 0);
  assert_int_equal(p.block_rows, 0);
  assert_int_equal(p.storage, DKM_STORAGE_AUTO);
  assert_int_equal(p.memory_limit, 0);
  assert_null(p.tmp_dir);
  assert_null(p.progress);
  dkm_params_init(NULL); /* harmless */
}

/* Checks that p fails with DKM_ERR_PARAM and a message containing word. */
static void expect_bad(dkm_ctx *ctx, const dkm_params *p, const char *word) {
  assert_int_equal(dkm_params_check(ctx, p), DKM_ERR_PARAM);
  assert_int_equal(dkm_ctx_status(ctx), DKM_ERR_PARAM);
  if (strstr(dkm_ctx_errmsg(ctx), word) == NULL)
    fail_msg("message \"%s\" does not name \"%s\"", dkm_ctx_errmsg(ctx), word);
}

static void every_bad_field_is_named(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  dkm_params p;
  dkm_params_init(&p);
  expect_bad(ctx, &p, "k must be at least 1");
  p.k = 4;
  assert_int_equal(dkm_params_check(ctx, &p), DKM_OK);
  assert_string_equal(dkm_ctx_errmsg(ctx), "");

  dkm_params q = p;
  q.k = DKM_MAX_K; /* the largest k is fine, one more is not */
  assert_int_equal(dkm_params_check(ctx, &q), DKM_OK);
  q.k = 0x80000000u;
  expect_bad(ctx, &q, "k is 2147483648; it must be at most 2147483647 (labels are int32)");
  q.k = UINT32_MAX;
  expect_bad(ctx, &q, "k is 4294967295; it must be at most 2147483647 (labels are int32)");
  q = p;
  q.max_iter = 0;
  expect_bad(ctx, &q, "max_iter");
  q = p;
  q.tol = -1;
  expect_bad(ctx, &q, "tol");
  q.tol = NAN;
  expect_bad(ctx, &q, "tol");
  q.tol = INFINITY;
  expect_bad(ctx, &q, "tol");
  q = p;
  q.n_redo = 0;
  expect_bad(ctx, &q, "n_redo");
  q = p;
  q.init = (dkm_init)7;
  expect_bad(ctx, &q, "init");
  q = p;
  q.init = DKM_INIT_GIVEN;
  expect_bad(ctx, &q, "init_centroids");
  q = p;
  q.metric = (dkm_metric)-1;
  expect_bad(ctx, &q, "metric");
  q = p;
  q.n_threads = 100000;
  expect_bad(ctx, &q, "n_threads");
  q = p;
  q.storage = (dkm_storage)3;
  expect_bad(ctx, &q, "storage");
  q = p;
  q.tmp_dir = "";
  expect_bad(ctx, &q, "tmp_dir");
  assert_int_equal(dkm_params_check(ctx, NULL), DKM_ERR_PARAM);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "params"));
  /* A good check clears the previous error. */
  assert_int_equal(dkm_params_check(ctx, &p), DKM_OK);
  assert_int_equal(dkm_ctx_status(ctx), DKM_OK);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

static void train_rejects_bad_params_before_reading(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  float x[8] = {0};
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, 4, 2, &src), DKM_OK);
  dkm_params p;
  dkm_params_init(&p);
  p.k = 2;
  p.metric = (dkm_metric)9;
  dkm_result *r = (dkm_result *)&p; /* must be reset to NULL */
  assert_int_equal(dkm_train(ctx, &p, src, &r), DKM_ERR_PARAM);
  assert_null(r);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "metric"));
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(defaults_are_documented),
      cmocka_unit_test(every_bad_field_is_named),
      cmocka_unit_test(train_rejects_bad_params_before_reading),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
