/*
 * test_assign.c - dkm_assign labels every row with its nearest centroid
 * (lowest index on ties) as a naive search would, gives the right distances
 * for every metric, agrees exactly with training's own assignment, reads
 * sources the way the source interface promises (in row order, never from
 * two threads at once), and rejects bad input clearly.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

enum { N = 7000, D = 24, K = 33 };

static void labels_and_distances_match_naive_search(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  float *x = dkm_test_blobs(N, D, 20, 4.0, 31, NULL);
  float *c = dkm_test_blobs(K, D, 20, 4.0, 32, NULL);
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, N, D, &src), DKM_OK);
  int32_t *labels = malloc(sizeof(int32_t) * N), *naive = malloc(sizeof(int32_t) * N);
  float *dist = malloc(sizeof(float) * N);
  dkm_params p;
  dkm_params_init(&p);
  p.n_threads = 2;
  assert_int_equal(dkm_assign(ctx, &p, src, c, K, D, labels, dist), DKM_OK);
  double total = dkm_test_objective(x, N, D, c, K, naive);
  double sum = 0;
  int differ = 0;
  for (int i = 0; i < N; i++) {
    sum += dist[i];
    if (labels[i] != naive[i]) {
      /* Only a near tie may go either way in float. */
      double dl = 0, dn = 0;
      for (int j = 0; j < D; j++) {
        double u = x[i * D + j] - c[labels[i] * D + j], v = x[i * D + j] - c[naive[i] * D + j];
        dl += u * u;
        dn += v * v;
      }
      assert_true(fabs(dl - dn) <= 1e-4 * dn);
      differ++;
    }
  }
  assert_true(differ < N / 1000);
  assert_float_equal(sum, total, 1e-4 * total);
  /* Each distance is the squared distance to its own centroid. */
  for (int i = 0; i < N; i += 97) {
    double d2 = 0;
    for (int j = 0; j < D; j++) {
      double u = x[i * D + j] - c[labels[i] * D + j];
      d2 += u * u;
    }
    assert_float_equal(dist[i], d2, 1e-3 * (1 + d2));
  }
  /* distances may be NULL. */
  int32_t *again = malloc(sizeof(int32_t) * N);
  assert_int_equal(dkm_assign(ctx, &p, src, c, K, D, again, NULL), DKM_OK);
  assert_memory_equal(again, labels, sizeof(int32_t) * N);
  free(again);
  free(labels);
  free(naive);
  free(dist);
  free(x);
  free(c);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

static void cosine_and_ip_distances(void **state) {
  (void)state;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  const float x[6] = {3, 4, 0, 0, -1, 0};
  const float c[4] = {2, 0, 0, 5}; /* not unit: assign normalises for cosine */
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, 3, 2, &src), DKM_OK);
  int32_t l[3];
  float d[3];
  dkm_params p;
  dkm_params_init(&p);
  p.metric = DKM_METRIC_COSINE;
  assert_int_equal(dkm_assign(ctx, &p, src, c, 2, 2, l, d), DKM_OK);
  assert_int_equal(l[0], 1); /* cos 0.8 with (0, 1), 0.6 with (1, 0) */
  assert_float_equal(d[0], 0.2, 1e-6);
  assert_int_equal(l[1], 0); /* the zero row: cosine 0 everywhere, lowest index */
  assert_float_equal(d[1], 1.0, 1e-6);
  assert_float_equal(d[2], 1.0, 1e-6); /* orthogonal to (0, 1), opposite to (1, 0) */
  assert_int_equal(l[2], 1);
  p.metric = DKM_METRIC_IP;
  assert_int_equal(dkm_assign(ctx, &p, src, c, 2, 2, l, d), DKM_OK);
  assert_int_equal(l[0], 1);
  assert_true(d[0] == -20.0f);
  assert_int_equal(l[2], 1); /* 0 beats -2 */
  assert_true(d[2] == 0.0f);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
}

static void ties_go_to_the_lowest_index(void **state) {
  (void)state;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  enum { KK = 1100 }; /* more than one centroid tile */
  float *c = calloc(KK, sizeof(float) * 2);
  for (int i = 0; i < KK; i++) {
    c[2 * i] = 5;
    c[2 * i + 1] = (float)(i % 7);
  }
  /* Every centroid (5, 3) ties: indices 3, 10, 17, ... */
  const float x[4] = {5, 3, 5, 100};
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, 2, 2, &src), DKM_OK);
  int32_t l[2];
  for (int metric = DKM_METRIC_L2; metric <= DKM_METRIC_IP; metric++) {
    dkm_params p;
    dkm_params_init(&p);
    p.metric = (dkm_metric)metric;
    assert_int_equal(dkm_assign(ctx, &p, src, c, KK, 2, l, NULL), DKM_OK);
    if (metric == DKM_METRIC_L2) {
      assert_int_equal(l[0], 3);
      assert_int_equal(l[1], 6);
    } else {
      assert_int_equal(l[1], 6); /* largest dot product / cosine: (5, 6) */
    }
  }
  free(c);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
}

static void same_labels_as_training_for_the_same_centroids(void **state) {
  (void)state;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  float *x = dkm_test_blobs(N, D, 25, 3.0, 41, NULL);
  float *c = dkm_test_blobs(K, D, 25, 3.0, 42, NULL);
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, N, D, &src), DKM_OK);
  int32_t *labels = malloc(sizeof(int32_t) * N);
  for (int metric = DKM_METRIC_L2; metric <= DKM_METRIC_IP; metric++) {
    /* One iteration from given centroids: the training's only assignment
     * pass used exactly these centroids. */
    dkm_params p;
    dkm_params_init(&p);
    p.k = K;
    p.metric = (dkm_metric)metric;
    p.init = DKM_INIT_GIVEN;
    p.init_centroids = c;
    p.max_iter = 1;
    p.max_points_per_centroid = 0;
    dkm_result *r;
    assert_int_equal(dkm_train(ctx, &p, src, &r), DKM_OK);
    p.block_rows = 777;
    assert_int_equal(dkm_assign(ctx, &p, src, c, K, D, labels, NULL), DKM_OK);
    uint64_t sizes[K] = {0};
    for (int i = 0; i < N; i++)
      sizes[labels[i]]++;
    assert_memory_equal(sizes, r->cluster_sizes, sizeof sizes);
    dkm_result_free(r);
  }
  free(labels);
  free(x);
  free(c);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
}

/* A source that checks the interface's promises: reads in increasing row
 * order (it says SEQUENTIAL), never two calls at once; it converts into the
 * caller's buffer like a file would, and can fail at a chosen row. */
typedef struct strict_source {
  dkm_source base;
  const float *data;
  uint64_t next;  /* rows before this were read: the next read starts here or later */
  int busy;       /* a call is in progress */
  int violations; /* reads out of order or overlapping */
  uint64_t fail_row;
} strict_source;

static dkm_status strict_read(dkm_source *self, dkm_ctx *ctx, uint64_t first, uint64_t count,
                              float *buf, const float **rows) {
  strict_source *s = (strict_source *)self;
  if (__atomic_exchange_n(&s->busy, 1, __ATOMIC_SEQ_CST))
    s->violations++;
  if (first < s->next)
    s->violations++;
  s->next = first + count;
  dkm_status st = DKM_OK;
  if (s->fail_row >= first && s->fail_row < first + count)
    st = dkm_ctx_set_error(ctx, DKM_ERR_IO, "strict: cannot read row %llu",
                           (unsigned long long)s->fail_row);
  else
    memcpy(buf, s->data + first * self->dim, sizeof(float) * count * self->dim);
  *rows = buf;
  __atomic_store_n(&s->busy, 0, __ATOMIC_SEQ_CST);
  return st;
}

static void strict_close(dkm_source *self) {
  (void)self;
}

static const dkm_source_methods strict_methods = {DKM_SOURCE_METHODS_VERSION, strict_read, NULL,
                                                  strict_close};

static void strict_init(strict_source *s, const float *data, uint64_t rows, uint32_t dim,
                        dkm_ctx *ctx) {
  memset(s, 0, sizeof *s);
  s->base.methods = &strict_methods;
  s->base.rows = rows;
  s->base.dim = dim;
  s->base.flags = DKM_SOURCE_SEQUENTIAL;
  s->base.dtype = DKM_DTYPE_F32;
  s->base.format = DKM_FORMAT_RAW;
  s->base.name = "strict.raw";
  s->base.ctx = ctx;
  s->data = data;
  s->fail_row = UINT64_MAX;
}

static void sequential_sources_are_read_in_order_by_one_thread(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("assign-strict");
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  float *x = dkm_test_blobs(N, D, 25, 3.0, 51, NULL);
  strict_source s;
  int32_t *la = malloc(sizeof(int32_t) * N), *lb = malloc(sizeof(int32_t) * N);
  dkm_params p;
  dkm_params_init(&p);
  p.k = K;
  p.n_threads = 2;
  p.block_rows = 1000;
  p.tmp_dir = dir;
  dkm_result *ref = NULL;
  for (int mode = 0; mode < 3; mode++) {
    /* Whole input into memory, subsample into memory, whole input spilled
     * (a sequential file cannot be trained on in place). */
    p.storage = mode == 2 ? DKM_STORAGE_DISK : DKM_STORAGE_MEMORY;
    p.max_points_per_centroid = mode == 1 ? 100 : 0;
    strict_init(&s, x, N, D, ctx);
    dkm_result *r;
    assert_int_equal(dkm_train(ctx, &p, &s.base, &r), DKM_OK);
    assert_int_equal(s.violations, 0);
    assert_int_equal(r->from_source, 0);
    if (mode == 0)
      ref = r;
    else if (mode == 2) {
      assert_memory_equal(r->centroids, ref->centroids, sizeof(float) * K * D);
      dkm_result_free(r);
    } else
      dkm_result_free(r);
  }
  strict_init(&s, x, N, D, ctx);
  assert_int_equal(dkm_assign(ctx, &p, &s.base, ref->centroids, K, D, la, NULL), DKM_OK);
  assert_int_equal(s.violations, 0);
  dkm_source *mem;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, N, D, &mem), DKM_OK);
  assert_int_equal(dkm_assign(ctx, &p, mem, ref->centroids, K, D, lb, NULL), DKM_OK);
  assert_memory_equal(la, lb, sizeof(int32_t) * N);
  /* A read error is returned as the source recorded it. */
  strict_init(&s, x, N, D, ctx);
  s.fail_row = 4567;
  assert_int_equal(dkm_assign(ctx, &p, &s.base, ref->centroids, K, D, la, NULL), DKM_ERR_IO);
  assert_string_equal(dkm_ctx_errmsg(ctx), "strict: cannot read row 4567");
  strict_init(&s, x, N, D, ctx);
  s.fail_row = 4567;
  dkm_result *r = (dkm_result *)&s;
  assert_int_equal(dkm_train(ctx, &p, &s.base, &r), DKM_ERR_IO);
  assert_null(r);
  assert_int_equal(dkm_test_count_entries(dir), 0);
  dkm_source_close(mem);
  dkm_result_free(ref);
  free(la);
  free(lb);
  free(x);
  dkm_ctx_free(ctx);
  dkm_test_rmtree(dir);
  free(dir);
}

static int count_progress(void *user, const dkm_progress *pr) {
  int *calls = user;
  assert_int_equal(pr->phase, DKM_PHASE_ASSIGN);
  assert_true(pr->done <= pr->total);
  (*calls)++;
  return *calls >= 1000; /* never reached unless the rate limit is broken */
}

static int cancel_assign(void *user, const dkm_progress *pr) {
  (void)user;
  (void)pr;
  return 1;
}

static void bad_input_is_rejected(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  float x[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  float c[6] = {0, 1, 2, 3, 4, 5};
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, 4, 3, &src), DKM_OK);
  int32_t l[4];
  dkm_params p;
  dkm_params_init(&p);
  assert_int_equal(dkm_assign(ctx, &p, src, c, 3, 2, l, NULL), DKM_ERR_MISMATCH);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "rows have 3 values but the centroids have 2"));
  assert_int_equal(dkm_assign(ctx, &p, src, c, 0, 3, l, NULL), DKM_ERR_PARAM);
  assert_int_equal(dkm_assign(ctx, NULL, src, c, 2, 3, l, NULL), DKM_ERR_PARAM);
  assert_int_equal(dkm_assign(ctx, &p, NULL, c, 2, 3, l, NULL), DKM_ERR_PARAM);
  assert_int_equal(dkm_assign(ctx, &p, src, NULL, 2, 3, l, NULL), DKM_ERR_PARAM);
  assert_int_equal(dkm_assign(ctx, &p, src, c, 2, 3, NULL, NULL), DKM_ERR_PARAM);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "labels"));
  assert_int_equal(dkm_assign(NULL, &p, src, c, 2, 3, l, NULL), DKM_ERR_PARAM);
  p.metric = (dkm_metric)5;
  assert_int_equal(dkm_assign(ctx, &p, src, c, 2, 3, l, NULL), DKM_ERR_PARAM);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "metric"));
  dkm_params_init(&p);
  p.n_threads = 1u << 30;
  assert_int_equal(dkm_assign(ctx, &p, src, c, 2, 3, l, NULL), DKM_ERR_PARAM);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "n_threads"));
  dkm_params_init(&p);
  x[7] = NAN;
  assert_int_equal(dkm_assign(ctx, &p, src, c, 2, 3, l, NULL), DKM_ERR_DATA);
  assert_string_equal(dkm_ctx_errmsg(ctx), "memory: row 2 has a NaN in column 1");
  x[7] = 7;
  c[4] = INFINITY;
  assert_int_equal(dkm_assign(ctx, &p, src, c, 2, 3, l, NULL), DKM_ERR_DATA);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "centroid 1 has an infinite value in column 1"));
  c[4] = 4;
  int calls = 0;
  p.progress = count_progress;
  p.progress_user = &calls;
  assert_int_equal(dkm_assign(ctx, &p, src, c, 2, 3, l, NULL), DKM_OK);
  assert_true(calls >= 1);
  assert_int_equal(dkm_ctx_status(ctx), DKM_OK);
  p.progress = cancel_assign;
  assert_int_equal(dkm_assign(ctx, &p, src, c, 2, 3, l, NULL), DKM_ERR_CANCELLED);
  /* Allocation failures, each in turn. */
  p.progress = NULL;
  p.n_threads = 2;
  p.metric = DKM_METRIC_COSINE;
  for (long fail = 1;; fail++) {
    a.failures = 0;
    a.fail_at = a.count + fail;
    dkm_status s = dkm_assign(ctx, &p, src, c, 2, 3, l, NULL);
    long live = a.live;
    if (a.failures == 0) {
      assert_int_equal(s, DKM_OK);
      assert_true(fail > 3);
      break;
    }
    assert_int_equal(s, DKM_ERR_NOMEM);
    assert_int_equal(live, 2); /* the context and the source */
  }
  a.fail_at = 0;
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(labels_and_distances_match_naive_search),
      cmocka_unit_test(cosine_and_ip_distances),
      cmocka_unit_test(ties_go_to_the_lowest_index),
      cmocka_unit_test(same_labels_as_training_for_the_same_centroids),
      cmocka_unit_test(sequential_sources_are_read_in_order_by_one_thread),
      cmocka_unit_test(bad_input_is_rejected),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
