/*
 * test_checkpoint.c - params.checkpoint and params.resume: a run stopped at
 * any progress report (flat and hierarchical, every phase, n_redo runs)
 * and resumed gives the very result of a run never stopped, with other
 * thread counts, block sizes and storage too; every parameter that changes
 * results is checked on resume and named; a damaged, truncated or foreign
 * file is refused; a torn temporary file is ignored; every allocation of a
 * checkpointed or resumed run can fail without a leak.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test_support.h"

enum { N = 4000, D = 8 };

static float *rows; /* N x D */
static char *dir;
static char path[1024];

static int setup(void **state) {
  (void)state;
  rows = dkm_test_blobs(N, D, 20, 2.0, 5, NULL);
  dir = dkm_test_mkdtemp("checkpoint");
  if (rows == NULL || dir == NULL)
    return 1;
  snprintf(path, sizeof path, "%s/run.ckpt", dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  free(rows);
  dkm_test_rmtree(dir);
  free(dir);
  return 0;
}

static void flat_params(dkm_params *p) {
  dkm_params_init(p);
  p->k = 40;
  p->max_iter = 6;
  p->tol = 0;
  p->n_threads = 2;
  p->max_points_per_centroid = 100;
  p->strategy = DKM_STRATEGY_FLAT;
}

static void hier_params(dkm_params *p) {
  dkm_params_init(p);
  p->k = 64;
  p->max_iter = 3;
  p->tol = 0;
  p->n_threads = 2;
  p->max_points_per_centroid = 0;
  p->strategy = DKM_STRATEGY_HIERARCHICAL;
  p->refine = 3;
}

/* Cancels at the n-th progress report. */
typedef struct stopper {
  long reports, stop_at;
} stopper;

static int stop_at(void *user, const dkm_progress *pr) {
  (void)pr;
  stopper *s = user;
  return ++s->reports == s->stop_at;
}

static int stop_at_second_iteration(void *user, const dkm_progress *pr) {
  (void)user;
  return pr->phase == DKM_PHASE_ITERATE && pr->iteration == 1 && pr->done == pr->total;
}

/* dkm_train on the blobs; returns the status and sets *out. */
static dkm_status train(dkm_ctx *ctx, const dkm_params *p, dkm_result **out) {
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, rows, DKM_DTYPE_F32, N, D, &src), DKM_OK);
  dkm_status s = dkm_train(ctx, p, src, out);
  dkm_source_close(src);
  return s;
}

static void same(const dkm_result *a, const dkm_result *b, const char *what) {
  dkm_test_assert_same_result(a, b, what);
  for (uint32_t t = 0; t < a->n_iter; t++)
    assert_int_equal(a->iters[t].rebalanced, b->iters[t].rebalanced);
  assert_int_equal(a->strategy, b->strategy);
  assert_int_equal(a->levels, b->levels);
  assert_int_equal(a->refine_passes, b->refine_passes);
  assert_int_equal(a->coarse_k, b->coarse_k);
  assert_int_equal(a->balance.largest, b->balance.largest);
}

static int file_exists(const char *f) {
  struct stat st;
  return stat(f, &st) == 0;
}

/* Stops a checkpointed run at every progress report in turn, then resumes
 * it with `again` (other threads, block size or storage): the result is
 * the uninterrupted run's each time. Returns the number of reports. */
static long stop_everywhere_and_resume(const dkm_params *base, const dkm_params *again,
                                       const char *what) {
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  dkm_params p = *base;
  stopper count = {0, 0};
  p.progress = stop_at;
  p.progress_user = &count;
  dkm_result *ref = NULL;
  assert_int_equal(train(ctx, &p, &ref), DKM_OK);
  long total = count.reports;
  assert_true(total > 5);
  /* Every report up to 24 of them, else 24 spread over all (the sanitizer
   * builds are slow), so that every phase is hit. */
  long step = total <= 24 ? 1 : total / 24;
  long resumed = 0;
  for (long n = 1; n <= total; n += step) {
    remove(path);
    dkm_params q = *base;
    stopper st = {0, n};
    q.checkpoint = path;
    q.progress = stop_at;
    q.progress_user = &st;
    dkm_result *r = NULL;
    dkm_status s = train(ctx, &q, &r);
    if (s == DKM_OK) { /* fewer reports this time (they are throttled in time) */
      dkm_result_free(r);
      continue;
    }
    if (s != DKM_ERR_CANCELLED)
      fail_msg("%s: stopping at report %ld of %ld: %s", what, n, total, dkm_ctx_errmsg(ctx));
    assert_null(r);
    if (!file_exists(path))
      continue; /* stopped before the first save: nothing to resume */
    dkm_params w = *again;
    w.checkpoint = path;
    w.resume = 1;
    s = train(ctx, &w, &r);
    if (s != DKM_OK)
      fail_msg("%s: resuming after report %ld: %s", what, n, dkm_ctx_errmsg(ctx));
    char label[128];
    snprintf(label, sizeof label, "%s, stopped at report %ld of %ld", what, n, total);
    same(ref, r, label);
    dkm_result_free(r);
    resumed++;
  }
  /* The reports before the first save (the sample's, the initialisation's)
   * leave nothing to resume; how many there are depends on the machine's
   * speed (reports are throttled in time), but the last iteration's come
   * after it. */
  assert_true(resumed >= 1);
  dkm_result_free(ref);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  remove(path);
  return total;
}

static void flat_run_stopped_anywhere_resumes_to_the_same_bytes(void **state) {
  (void)state;
  dkm_params p;
  flat_params(&p);
  stop_everywhere_and_resume(&p, &p, "flat");
  p.balance = 1;
  p.init = DKM_INIT_GREEDY_KMEANSPP;
  stop_everywhere_and_resume(&p, &p, "flat, balanced, greedy k-means++");
  p.balance = 0;
  p.init = DKM_INIT_RANDOM;
  p.metric = DKM_METRIC_COSINE;
  p.tol = 1e-3; /* stops early in some runs */
  p.max_iter = 12;
  stop_everywhere_and_resume(&p, &p, "flat, cosine, tol");
}

/* Rows that are copies of 50 distinct ones: random centroids coincide, so
 * clusters come out empty and are repaired from the run's RNG after the
 * point where the run stopped. */
static void runs_with_repairs_resume_to_the_same_bytes(void **state) {
  (void)state;
  float *copies = malloc(sizeof(float) * N * D);
  assert_non_null(copies);
  for (uint64_t i = 0; i < N; i++)
    memcpy(copies + i * D, rows + (i % 50) * D, sizeof(float) * D);
  float *keep = rows;
  rows = copies;
  dkm_params p;
  flat_params(&p);
  p.init = DKM_INIT_RANDOM;
  p.n_redo = 2;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  dkm_result *r = NULL;
  assert_int_equal(train(ctx, &p, &r), DKM_OK);
  uint32_t repairs = 0;
  for (uint32_t t = 0; t < r->n_iter; t++)
    repairs += r->iters[t].repaired;
  assert_true(repairs > 0); /* the case this test is for */
  dkm_result_free(r);
  dkm_ctx_free(ctx);
  stop_everywhere_and_resume(&p, &p, "flat with repairs");
  rows = keep;
  free(copies);
}

static void several_runs_stopped_in_the_second_resume_to_the_same_bytes(void **state) {
  (void)state;
  dkm_params p;
  flat_params(&p);
  p.n_redo = 3;
  p.init = DKM_INIT_RANDOM;
  stop_everywhere_and_resume(&p, &p, "n_redo 3");
}

static void resume_with_other_threads_blocks_and_storage_is_the_same(void **state) {
  (void)state;
  dkm_params p, q;
  flat_params(&p);
  q = p;
  q.n_threads = 1;
  q.block_rows = 64;
  q.storage = DKM_STORAGE_DISK;
  q.tmp_dir = dir;
  stop_everywhere_and_resume(&p, &q, "flat, resumed on disk, 1 thread");
  hier_params(&p);
  q = p;
  q.n_threads = 3;
  q.storage = DKM_STORAGE_DISK;
  q.tmp_dir = dir;
  stop_everywhere_and_resume(&p, &q, "hierarchical, resumed on disk, 3 threads");
}

static void hierarchical_run_stopped_anywhere_resumes_to_the_same_bytes(void **state) {
  (void)state;
  dkm_params p;
  hier_params(&p);
  stop_everywhere_and_resume(&p, &p, "hierarchical");
  p.balance = 1;
  p.refine = 0;
  stop_everywhere_and_resume(&p, &p, "hierarchical, balanced, no refinement");
}

/* A finished run's checkpoint holds the end: resuming from it gives the
 * result again (and the library leaves the file for the caller). */
static void finished_checkpoint_gives_the_result_again(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  dkm_params p;
  flat_params(&p);
  p.checkpoint = path;
  dkm_result *r1 = NULL, *r2 = NULL;
  assert_int_equal(train(ctx, &p, &r1), DKM_OK);
  assert_true(file_exists(path));
  p.resume = 1;
  assert_int_equal(train(ctx, &p, &r2), DKM_OK);
  same(r1, r2, "resumed from a finished run");
  dkm_result_free(r1);
  dkm_result_free(r2);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  remove(path);
}

static char *read_all(const char *f, size_t *len) {
  FILE *fp = fopen(f, "rb");
  assert_non_null(fp);
  fseek(fp, 0, SEEK_END);
  *len = (size_t)ftell(fp);
  fseek(fp, 0, SEEK_SET);
  char *b = malloc(*len + 1);
  assert_int_equal(fread(b, 1, *len, fp), *len);
  fclose(fp);
  return b;
}

static void write_all(const char *f, const void *b, size_t len) {
  FILE *fp = fopen(f, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(b, 1, len, fp), len);
  fclose(fp);
}

/* A checkpoint stopped after its second iteration. */
static void make_checkpoint(dkm_ctx *ctx, const dkm_params *base) {
  remove(path);
  dkm_params p = *base;
  p.checkpoint = path;
  p.progress = stop_at_second_iteration;
  dkm_result *r = NULL;
  assert_int_equal(train(ctx, &p, &r), DKM_ERR_CANCELLED);
  assert_true(file_exists(path));
}

/* Resuming with w must fail with status and a message holding word, and
 * leave the checkpoint as it was. */
static void refused(dkm_ctx *ctx, const dkm_params *w, dkm_status status, const char *word) {
  size_t before_len, after_len;
  char *before = read_all(path, &before_len);
  dkm_params q = *w;
  q.checkpoint = path;
  q.resume = 1;
  dkm_result *r = NULL;
  dkm_status s = train(ctx, &q, &r);
  assert_null(r);
  if (s != status || strstr(dkm_ctx_errmsg(ctx), word) == NULL)
    fail_msg("expected %s naming \"%s\", got %s: %s", dkm_status_name(status), word,
             dkm_status_name(s), dkm_ctx_errmsg(ctx));
  char *after = read_all(path, &after_len);
  assert_int_equal(before_len, after_len);
  assert_memory_equal(before, after, before_len);
  free(before);
  free(after);
}

static void every_mismatch_is_refused_by_name(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  dkm_params p, q;
  flat_params(&p);
  p.checkpoint_identity = "input=/data/x.npy\ninput mtime=1\n";
  make_checkpoint(ctx, &p);
#define MISMATCH(field, value, word)                                                               \
  do {                                                                                             \
    q = p;                                                                                         \
    q.field = value;                                                                               \
    refused(ctx, &q, DKM_ERR_PARAM, word);                                                         \
  } while (0)
  MISMATCH(k, 41, "k differs (checkpoint 40, this run 41)");
  MISMATCH(seed, 7, "seed differs");
  MISMATCH(metric, DKM_METRIC_IP, "metric differs");
  MISMATCH(init, DKM_INIT_RANDOM, "init differs");
  MISMATCH(max_points_per_centroid, 99, "max_points_per_centroid differs");
  MISMATCH(max_iter, 7, "max_iter differs");
  MISMATCH(tol, 1e-3, "tol differs");
  MISMATCH(n_redo, 2, "n_redo differs");
  MISMATCH(strategy, DKM_STRATEGY_HIERARCHICAL, "strategy differs");
  MISMATCH(balance, 1, "balance differs");
  MISMATCH(checkpoint_identity, "input=/data/y.npy\ninput mtime=1\n", "input differs");
  MISMATCH(checkpoint_identity, "input=/data/x.npy\ninput mtime=2\n", "input mtime differs");
  MISMATCH(checkpoint_identity, NULL, "input");
#undef MISMATCH
  /* The same shape with one value changed: the sample's CRC. */
  float *changed = malloc(sizeof(float) * N * D);
  memcpy(changed, rows, sizeof(float) * N * D);
  float *keep = rows;
  for (uint64_t i = 0; i < (uint64_t)N * D; i++)
    changed[i] += 0.5f; /* every row moves: whichever rows the sample holds */
  rows = changed;
  refused(ctx, &p, DKM_ERR_PARAM, "the input's rows differ");
  rows = keep;
  free(changed);
  /* What may differ does not stop it. */
  q = p;
  q.n_threads = 1;
  q.block_rows = 128;
  q.storage = DKM_STORAGE_DISK;
  q.tmp_dir = dir;
  q.memory_limit = 1 << 20;
  q.checkpoint = path;
  q.resume = 1;
  dkm_result *r = NULL;
  assert_int_equal(train(ctx, &q, &r), DKM_OK);
  dkm_result_free(r);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  remove(path);
}

static void damaged_checkpoints_are_refused(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  dkm_params p;
  flat_params(&p);
  make_checkpoint(ctx, &p);
  size_t len;
  char *good = read_all(path, &len);
  char *b = malloc(len + 8);
  /* Truncated anywhere. */
  size_t cuts[] = {0, 5, 27, len / 2, len - 1};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    write_all(path, good, cuts[i]);
    refused(ctx, &p, DKM_ERR_FORMAT, "checkpoint");
  }
  write_all(path, good, len - 1);
  refused(ctx, &p, DKM_ERR_FORMAT, "truncated");
  /* A byte flipped anywhere. */
  size_t flips[] = {30, 100, len / 2, len - 30, len - 2};
  for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
    memcpy(b, good, len);
    b[flips[i]] ^= 0x10;
    write_all(path, b, len);
    refused(ctx, &p, DKM_ERR_FORMAT, "damaged");
  }
  /* Another version, another magic, bytes appended. */
  memcpy(b, good, len);
  b[8] = 2;
  write_all(path, b, len);
  refused(ctx, &p, DKM_ERR_FORMAT, "version 2");
  memcpy(b, good, len);
  b[0] = 'X';
  write_all(path, b, len);
  refused(ctx, &p, DKM_ERR_FORMAT, "not a diskmeans checkpoint");
  memcpy(b, good, len);
  memset(b + len, 0, 8);
  write_all(path, b, len + 8);
  refused(ctx, &p, DKM_ERR_FORMAT, "truncated or extended");
  /* A missing file. */
  remove(path);
  dkm_params q = p;
  q.checkpoint = path;
  q.resume = 1;
  dkm_result *r = NULL;
  assert_int_equal(train(ctx, &q, &r), DKM_ERR_IO);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "cannot resume"));
  /* A torn temporary file (a kill during a write) is not looked at. */
  write_all(path, good, len);
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  write_all(tmp, good, len / 3);
  assert_int_equal(train(ctx, &q, &r), DKM_OK);
  dkm_result_free(r);
  remove(tmp);
  free(good);
  free(b);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  remove(path);
}

static void resume_needs_a_checkpoint(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  dkm_params p;
  flat_params(&p);
  p.resume = 1;
  assert_int_equal(dkm_params_check(ctx, &p), DKM_ERR_PARAM);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "checkpoint"));
  p.resume = 0;
  p.checkpoint = "";
  assert_int_equal(dkm_params_check(ctx, &p), DKM_ERR_PARAM);
  /* An unwritable folder fails the run at its first save. */
  p.checkpoint = "/nonexistent-dir/x.ckpt";
  dkm_result *r = NULL;
  assert_int_equal(train(ctx, &p, &r), DKM_ERR_IO);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "/nonexistent-dir/x.ckpt"));
  assert_null(r);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

/* Fails each allocation of a checkpointed run, then of a resumed one: a
 * clean error each time, nothing leaked. */
static void sweep(const dkm_params *p) {
  for (long fail = 1;; fail++) {
    dkm_test_alloc a = {0};
    dkm_ctx *ctx = dkm_test_ctx(&a);
    dkm_source *src;
    assert_int_equal(dkm_source_from_memory(ctx, rows, DKM_DTYPE_F32, N, D, &src), DKM_OK);
    a.fail_at = a.count + fail;
    dkm_result *r = NULL;
    dkm_status s = dkm_train(ctx, p, src, &r);
    dkm_source_close(src);
    long failures = a.failures;
    if (s == DKM_OK) {
      assert_int_equal(failures, 0);
    } else if (s != DKM_ERR_NOMEM) {
      fail_msg("allocation %ld failed: %s: %s", fail, dkm_status_name(s), dkm_ctx_errmsg(ctx));
    }
    dkm_result_free(r);
    dkm_ctx_free(ctx);
    if (a.live != 0)
      fail_msg("allocation %ld failed: %ld blocks leaked", fail, a.live);
    if (failures == 0) {
      assert_true(fail > 10);
      break;
    }
  }
}

static void allocation_failures_leak_nothing(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  dkm_params p;
  flat_params(&p);
  p.max_iter = 3;
  p.checkpoint = path;
  remove(path);
  sweep(&p);
  make_checkpoint(ctx, &p);
  p.resume = 1;
  sweep(&p);
  hier_params(&p);
  p.k = 30;
  p.max_iter = 2;
  p.refine = 1;
  p.checkpoint = path;
  remove(path);
  sweep(&p);
  p.resume = 1;
  sweep(&p);
  dkm_ctx_free(ctx);
  remove(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(flat_run_stopped_anywhere_resumes_to_the_same_bytes),
      cmocka_unit_test(runs_with_repairs_resume_to_the_same_bytes),
      cmocka_unit_test(several_runs_stopped_in_the_second_resume_to_the_same_bytes),
      cmocka_unit_test(hierarchical_run_stopped_anywhere_resumes_to_the_same_bytes),
      cmocka_unit_test(resume_with_other_threads_blocks_and_storage_is_the_same),
      cmocka_unit_test(finished_checkpoint_gives_the_result_again),
      cmocka_unit_test(every_mismatch_is_refused_by_name),
      cmocka_unit_test(damaged_checkpoints_are_refused),
      cmocka_unit_test(resume_needs_a_checkpoint),
      cmocka_unit_test(allocation_failures_leak_nothing),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
