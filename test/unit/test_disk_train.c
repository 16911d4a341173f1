/*
 * test_disk_train.c - the on-disk mode end to end, through dkm_train():
 *  - memory, disk and auto give memcmp-identical centroids, cluster sizes,
 *    objectives and labels, for several shapes, every metric, with and
 *    without subsampling, with empty-cluster repairs happening, whatever the
 *    block size and thread count;
 *  - nothing is left in the spill directory after success, after an error
 *    (a NaN found while spilling, a cancel from the progress callback), or
 *    after SIGKILL in the middle of an iteration;
 *  - a full or read-only or missing directory is one clear error naming it;
 *  - auto picks disk when the sample exceeds the budget and memory otherwise,
 *    and dkm_plan_training() says so, with the right sizes, beforehand;
 *  - no spill when the input file is itself the whole sample.
 *
 * Tests that need a small or read-only file system mount a tmpfs inside a
 * mount namespace of this process's own (skipped when that is not allowed).
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_support.h"

static bool can_mount;
static char *scratch; /* a directory for input files, removed at the end */

static int count_fds(void) {
  return dkm_test_count_entries("/proc/self/fd");
}

/* Writes rows as a float32 .npy file (version 1.0). */
static char *write_npy(const char *name, const float *x, uint64_t rows, uint32_t dim) {
  size_t len = strlen(scratch) + strlen(name) + 2;
  char *path = malloc(len);
  assert_non_null(path);
  snprintf(path, len, "%s/%s", scratch, name);
  char dict[128];
  int n =
      snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%llu, %u), }",
               (unsigned long long)rows, dim);
  size_t pad = (64 - (10 + (size_t)n + 1) % 64) % 64;
  size_t hlen = (size_t)n + pad + 1;
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  unsigned char pre[10] = {0x93,
                           'N',
                           'U',
                           'M',
                           'P',
                           'Y',
                           1,
                           0,
                           (unsigned char)(hlen & 0xff),
                           (unsigned char)(hlen >> 8)};
  assert_int_equal(fwrite(pre, 1, 10, f), 10);
  assert_int_equal(fwrite(dict, 1, (size_t)n, f), (size_t)n);
  for (size_t i = 0; i < pad; i++)
    fputc(' ', f);
  fputc('\n', f);
  assert_int_equal(fwrite(x, sizeof(float) * dim, rows, f), rows);
  assert_int_equal(fclose(f), 0);
  return path;
}

/* Rows with only `distinct` different values (the rest are copies), so that
 * k > distinct leaves clusters empty: the engine repairs them, or finds
 * that there are only that many distinct rows. */
static float *make_duplicates(uint64_t rows, uint32_t dim, uint32_t distinct, uint64_t seed) {
  float *base = dkm_test_blobs(distinct, dim, distinct, 1.0, seed, NULL);
  float *x = malloc((size_t)rows * dim * sizeof(float));
  assert_non_null(base);
  assert_non_null(x);
  uint64_t st = seed;
  for (uint64_t r = 0; r < rows; r++)
    memcpy(x + r * dim, base + (dkm_test_rand(&st) % distinct) * dim, dim * sizeof(float));
  free(base);
  return x;
}

static int32_t *assign_labels(dkm_ctx *ctx, const dkm_params *params, dkm_source *src,
                              const dkm_result *res, float **distances) {
  int32_t *labels = malloc(src->rows * sizeof *labels);
  *distances = malloc(src->rows * sizeof **distances);
  assert_non_null(labels);
  assert_non_null(*distances);
  dkm_status st =
      dkm_assign(ctx, params, src, res->centroids, res->k, res->dim, labels, *distances);
  if (st != DKM_OK)
    fail_msg("dkm_assign: %s", dkm_ctx_errmsg(ctx));
  return labels;
}

typedef struct shape {
  uint64_t rows;
  uint32_t dim;
  uint32_t k;
  uint32_t distinct; /* 0: blobs; else that many distinct rows, copied */
} shape;

/* One shape, one metric, one sampling setting: memory (from the caller's
 * array), disk (spilled, small blocks, one thread), disk straight from a
 * .npy file when the whole input is the sample, and auto under a tiny and a
 * huge budget all agree bit for bit. */
static void check_storages_agree(const shape *sh, dkm_metric metric, uint64_t mppc, uint64_t seed) {
  float *x = sh->distinct != 0 ? make_duplicates(sh->rows, sh->dim, sh->distinct, seed)
                               : dkm_test_blobs(sh->rows, sh->dim, sh->k / 2 + 1, 2.0, seed, NULL);
  assert_non_null(x);
  char *dir = dkm_test_mkdtemp("disk-agree");
  assert_non_null(dir);
  char *npy = write_npy("agree.npy", x, sh->rows, sh->dim);
  dkm_test_alloc alloc = {0};
  dkm_ctx *ctx = dkm_test_ctx(&alloc);
  dkm_source *mem = NULL, *file = NULL;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, sh->rows, sh->dim, &mem), DKM_OK);
  assert_int_equal(dkm_source_open_file(ctx, npy, NULL, &file), DKM_OK);

  dkm_params p;
  dkm_params_init(&p);
  p.k = sh->k;
  p.metric = metric;
  p.max_iter = 6;
  p.tol = 0;
  p.seed = seed;
  p.max_points_per_centroid = mppc;
  p.tmp_dir = dir;
  p.storage = DKM_STORAGE_MEMORY;
  p.n_threads = 2;
  dkm_result *ref = dkm_test_train(ctx, &p, mem);
  assert_int_equal(ref->storage, DKM_STORAGE_MEMORY);
  assert_int_equal(ref->spill_bytes, 0);
  uint64_t m = mppc == 0 ? sh->rows : (mppc * sh->k < sh->rows ? mppc * sh->k : sh->rows);
  assert_int_equal(ref->sample_rows, m);
  if (sh->distinct != 0) {
    uint32_t repaired = 0;
    for (uint32_t i = 0; i < ref->n_iter; i++)
      repaired += ref->iters[i].repaired;
    assert_true(repaired > 0 || ref->distinct_rows != 0);
    assert_true(ref->distinct_rows <= sh->distinct);
  }

  /* Disk, spilled from memory, with small blocks and one thread. */
  p.storage = DKM_STORAGE_DISK;
  p.n_threads = 1;
  p.block_rows = 37;
  dkm_result *disk = dkm_test_train(ctx, &p, mem);
  assert_int_equal(disk->storage, DKM_STORAGE_DISK);
  assert_int_equal(disk->from_source, 0);
  assert_int_equal(disk->spill_bytes, m * sh->dim * 4);
  dkm_test_assert_same_result(ref, disk, "memory vs disk (spilled)");
  assert_int_equal(dkm_test_count_entries(dir), 0);

  /* Disk from the file: no copy at all when the file is the whole sample. */
  p.block_rows = 0;
  p.n_threads = 2;
  dkm_result *fromfile = dkm_test_train(ctx, &p, file);
  assert_int_equal(fromfile->storage, DKM_STORAGE_DISK);
  assert_int_equal(fromfile->from_source, m == sh->rows);
  assert_int_equal(fromfile->spill_bytes, m == sh->rows ? 0 : m * sh->dim * 4);
  dkm_test_assert_same_result(ref, fromfile, "memory vs disk (from the file)");

  /* Auto: a budget below the sample spills, one above keeps it in RAM. */
  p.storage = DKM_STORAGE_AUTO;
  p.memory_limit = m * sh->dim * 4 - 1;
  dkm_result *auto_disk = dkm_test_train(ctx, &p, mem);
  assert_int_equal(auto_disk->storage, DKM_STORAGE_DISK);
  dkm_test_assert_same_result(ref, auto_disk, "memory vs auto (disk)");
  p.memory_limit = m * sh->dim * 4;
  dkm_result *auto_mem = dkm_test_train(ctx, &p, file);
  assert_int_equal(auto_mem->storage, DKM_STORAGE_MEMORY);
  dkm_test_assert_same_result(ref, auto_mem, "memory vs auto (memory)");

  /* Labels: the memory run's centroids over the array, the disk run's over
   * the file. */
  p.storage = DKM_STORAGE_AUTO;
  float *d_mem, *d_disk;
  int32_t *l_mem = assign_labels(ctx, &p, mem, ref, &d_mem);
  int32_t *l_disk = assign_labels(ctx, &p, file, disk, &d_disk);
  assert_memory_equal(l_mem, l_disk, sh->rows * sizeof(int32_t));
  assert_memory_equal(d_mem, d_disk, sh->rows * sizeof(float));
  free(l_mem);
  free(l_disk);
  free(d_mem);
  free(d_disk);

  dkm_result_free(ref);
  dkm_result_free(disk);
  dkm_result_free(fromfile);
  dkm_result_free(auto_disk);
  dkm_result_free(auto_mem);
  dkm_source_close(mem);
  dkm_source_close(file);
  assert_int_equal(alloc.live, 1); /* only the context */
  assert_int_equal(dkm_test_count_entries(dir), 0);
  dkm_ctx_free(ctx);
  unlink(npy);
  free(npy);
  dkm_test_rmtree(dir);
  free(dir);
  free(x);
}

static const shape shapes[] = {
    {2000, 16, 12, 0}, /* blobs */
    {1501, 3, 7, 0},   /* odd sizes, tiny dim */
    {1200, 33, 24, 9}, /* 9 distinct rows, k = 24: 15 clusters stay empty */
    {700, 130, 40, 0}, /* dim above a cache line's worth of tiles */
};

/* Every shape, on all its rows (seed seed_all + i for shape i) and on a
 * sample of mppc rows per centroid (seed seed_sample + i). */
static void check_every_shape(dkm_metric metric, uint64_t mppc, uint64_t seed_all,
                              uint64_t seed_sample) {
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    check_storages_agree(&shapes[i], metric, 0, seed_all + i);
    check_storages_agree(&shapes[i], metric, mppc, seed_sample + i);
  }
}

static void test_disk_memory_auto_identical_l2(void **state) {
  (void)state;
  check_every_shape(DKM_METRIC_L2, 20, 11, 21);
}

static void test_disk_memory_auto_identical_cosine(void **state) {
  (void)state;
  check_every_shape(DKM_METRIC_COSINE, 25, 31, 41);
}

static void test_disk_memory_auto_identical_ip(void **state) {
  (void)state;
  check_every_shape(DKM_METRIC_IP, 30, 51, 61);
}

/* The plan says beforehand what training then does. */
static void test_disk_plan_matches_training(void **state) {
  (void)state;
  const uint64_t n = 4000;
  const uint32_t dim = 24, k = 10;
  float *x = dkm_test_blobs(n, dim, 5, 1.0, 3, NULL);
  char *dir = dkm_test_mkdtemp("disk-plan");
  char *npy = write_npy("plan.npy", x, n, dim);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_source *mem = NULL, *file = NULL;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, n, dim, &mem), DKM_OK);
  assert_int_equal(dkm_source_open_file(ctx, npy, NULL, &file), DKM_OK);
  dkm_params p;
  dkm_params_init(&p);
  p.k = k;
  p.max_iter = 2;
  p.tmp_dir = dir;
  const uint64_t sample_bytes = 100 * k * dim * 4;
  struct {
    dkm_storage storage;
    uint64_t mppc, limit;
    dkm_source *src;
    dkm_storage expect;
    int from_source;
  } cases[] = {
      {DKM_STORAGE_MEMORY, 100, 0, mem, DKM_STORAGE_MEMORY, 0},
      {DKM_STORAGE_DISK, 100, 0, mem, DKM_STORAGE_DISK, 0},
      {DKM_STORAGE_DISK, 100, 0, file, DKM_STORAGE_DISK, 0},
      {DKM_STORAGE_DISK, 0, 0, file, DKM_STORAGE_DISK, 1},    /* the file is the sample */
      {DKM_STORAGE_DISK, 0, 0, mem, DKM_STORAGE_DISK, 0},     /* memory is not a file */
      {DKM_STORAGE_MEMORY, 0, 0, mem, DKM_STORAGE_MEMORY, 1}, /* used in place */
      {DKM_STORAGE_AUTO, 100, sample_bytes - 1, mem, DKM_STORAGE_DISK, 0},
      {DKM_STORAGE_AUTO, 100, sample_bytes, mem, DKM_STORAGE_MEMORY, 0},
      {DKM_STORAGE_AUTO, 100, sample_bytes + 1, file, DKM_STORAGE_MEMORY, 0},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    p.storage = cases[c].storage;
    p.max_points_per_centroid = cases[c].mppc;
    p.memory_limit = cases[c].limit;
    uint64_t m = cases[c].mppc == 0 ? n : cases[c].mppc * k;
    dkm_plan plan;
    assert_int_equal(dkm_plan_training(ctx, &p, cases[c].src, &plan), DKM_OK);
    assert_int_equal(plan.rows, n);
    assert_int_equal(plan.dim, dim);
    assert_int_equal(plan.sample_rows, m);
    assert_int_equal(plan.sample_bytes, m * dim * 4);
    assert_int_equal(plan.storage, cases[c].expect);
    assert_int_equal(plan.from_source, cases[c].from_source);
    uint64_t spill = plan.storage == DKM_STORAGE_DISK && !plan.from_source ? m * dim * 4 : 0;
    assert_int_equal(plan.spill_bytes, spill);
    if (cases[c].limit != 0)
      assert_int_equal(plan.memory_limit, cases[c].limit);
    /* Disk mode keeps only blocks, never the sample, in RAM. */
    assert_true(plan.disk_mode_bytes > 0);
    assert_true(plan.memory_mode_bytes > 0);
    dkm_result *res = dkm_test_train(ctx, &p, cases[c].src);
    assert_int_equal(res->storage, plan.storage);
    assert_int_equal(res->from_source, plan.from_source);
    assert_int_equal(res->spill_bytes, plan.spill_bytes);
    assert_int_equal(res->sample_rows, plan.sample_rows);
    assert_int_equal(res->rows, n);
    dkm_result_free(res);
    assert_int_equal(dkm_test_count_entries(dir), 0);
  }
  /* The default budget is half of physical memory (or of a lower cgroup
   * limit, test_cgroup_limits.c). */
  p.memory_limit = 0;
  p.storage = DKM_STORAGE_AUTO;
  dkm_plan plan;
  assert_int_equal(dkm_plan_training(ctx, &p, mem, &plan), DKM_OK);
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (strcmp(plan.memory_limit_source, "physical RAM") == 0)
    assert_int_equal(plan.memory_limit, (uint64_t)pages * (uint64_t)page / 2);
  else
    assert_true(plan.memory_limit < (uint64_t)pages * (uint64_t)page / 2);
  dkm_source_close(mem);
  dkm_source_close(file);
  dkm_ctx_free(ctx);
  unlink(npy);
  free(npy);
  dkm_test_rmtree(dir);
  free(dir);
  free(x);
}

/* A source of any size that is never read: the plan only looks at it. */
static dkm_status never_read(dkm_source *self, dkm_ctx *ctx, uint64_t first, uint64_t count,
                             float *buf, const float **rows) {
  return dkm_ctx_set_error(ctx, DKM_ERR_INTERNAL, "the plan read a row");
}

static void never_close(dkm_source *self) {
  (void)self;
}

static const dkm_source_methods fake_methods = {DKM_SOURCE_METHODS_VERSION, never_read, NULL,
                                                never_close};

/* Disk mode's RAM does not grow with the sample: the plan's estimate for
 * disk mode is the same for a sample 8 times larger (and a small part of
 * it), while memory mode's grows by the sample's size. k-means++ (the
 * default) is the one exception: 8 bytes per row, checked at the end. */
static void test_disk_plan_memory_does_not_grow_with_the_sample(void **state) {
  (void)state;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_params p;
  dkm_params_init(&p);
  p.k = 1024;
  p.init = DKM_INIT_RANDOM;
  p.storage = DKM_STORAGE_DISK;
  p.max_points_per_centroid = 0;
  p.tmp_dir = "/tmp";
  dkm_source src = {&fake_methods,  UINT64_C(1) << 20,         128,    0,  DKM_DTYPE_F32,
                    DKM_FORMAT_RAW, (UINT64_C(1) << 20) * 512, "fake", ctx};
  dkm_plan small, large;
  assert_int_equal(dkm_plan_training(ctx, &p, &src, &small), DKM_OK);
  src.rows = UINT64_C(8) << 20;
  src.bytes = src.rows * 512;
  assert_int_equal(dkm_plan_training(ctx, &p, &src, &large), DKM_OK);
  assert_int_equal(large.sample_bytes, UINT64_C(4) << 30);
  assert_int_equal(large.disk_mode_bytes, small.disk_mode_bytes);
  assert_true(large.disk_mode_bytes < large.sample_bytes / 20); /* the goal: <= 5% */
  assert_true(large.memory_mode_bytes >= large.sample_bytes);
  assert_true(large.memory_mode_bytes - small.memory_mode_bytes >=
              large.sample_bytes - small.sample_bytes);
  /* The same through a spill (a sample of a larger input). */
  src.rows = UINT64_C(64) << 20;
  src.bytes = src.rows * 512;
  p.max_points_per_centroid = 8192;
  dkm_plan spilled;
  assert_int_equal(dkm_plan_training(ctx, &p, &src, &spilled), DKM_OK);
  assert_int_equal(spilled.from_source, 0);
  assert_int_equal(spilled.spill_bytes, UINT64_C(4) << 30);
  assert_true(spilled.disk_mode_bytes < spilled.sample_bytes / 20);
  /* k-means++ keeps a distance and a norm per row: 8 bytes, 1/64 of a
   * 128-dim row, and little else that grows with the sample (a double
   * per tile). */
  p.init = DKM_INIT_KMEANSPP;
  dkm_plan pp_small, pp_large;
  p.max_points_per_centroid = 1024;
  assert_int_equal(dkm_plan_training(ctx, &p, &src, &pp_small), DKM_OK);
  p.max_points_per_centroid = 8192;
  assert_int_equal(dkm_plan_training(ctx, &p, &src, &pp_large), DKM_OK);
  uint64_t more_rows = pp_large.sample_rows - pp_small.sample_rows;
  uint64_t growth = pp_large.disk_mode_bytes - pp_small.disk_mode_bytes;
  assert_true(growth >= 8 * more_rows);
  assert_true(growth <= 8 * more_rows + more_rows / 16);
  assert_true(pp_large.disk_mode_bytes < pp_large.sample_bytes / 20);
  dkm_ctx_free(ctx);
}

/* An allocator that knows the bytes it has handed out, and their peak. */
typedef struct peak_alloc {
  long long live, peak;
} peak_alloc;

static void *peak_malloc(void *user, size_t size) {
  peak_alloc *s = user;
  size_t *p = malloc(size + 16);
  if (p == NULL)
    return NULL;
  p[0] = size;
  long long now = __atomic_add_fetch(&s->live, (long long)size, __ATOMIC_SEQ_CST);
  long long peak = __atomic_load_n(&s->peak, __ATOMIC_SEQ_CST);
  while (now > peak && !__atomic_compare_exchange_n(&s->peak, &peak, now, 0, __ATOMIC_SEQ_CST,
                                                    __ATOMIC_SEQ_CST)) {
  }
  return (char *)p + 16;
}

static void peak_free(void *user, void *ptr) {
  peak_alloc *s = user;
  if (ptr == NULL)
    return;
  size_t *p = (size_t *)((char *)ptr - 16);
  __atomic_sub_fetch(&s->live, (long long)p[0], __ATOMIC_SEQ_CST);
  free(p);
}

/* What the library allocates during dkm_train() stays within the plan's
 * estimate: in disk mode a few blocks, far below the sample; in memory mode
 * at least the sample. */
static void test_disk_plan_bounds_the_memory_training_uses(void **state) {
  (void)state;
  const uint64_t n = 200000;
  const uint32_t dim = 32, k = 50;
  float *x = dkm_test_blobs(n, dim, 20, 1.0, 23, NULL);
  char *dir = dkm_test_mkdtemp("disk-peak");
  char *npy = write_npy("peak.npy", x, n, dim);
  peak_alloc counter = {0, 0};
  dkm_allocator a = {peak_malloc, peak_free, &counter};
  dkm_ctx *ctx = dkm_ctx_create(&a);
  dkm_source *mem = NULL, *file = NULL;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, n, dim, &mem), DKM_OK);
  assert_int_equal(dkm_source_open_file(ctx, npy, NULL, &file), DKM_OK);
  struct {
    dkm_storage storage;
    uint64_t mppc;
    dkm_source *src;
  } cases[] = {
      {DKM_STORAGE_DISK, 0, mem},     /* spilled: 25.6 MB */
      {DKM_STORAGE_DISK, 3000, file}, /* a sample, spilled */
      {DKM_STORAGE_DISK, 0, file},    /* straight from the file */
      {DKM_STORAGE_MEMORY, 3000, mem}, {DKM_STORAGE_MEMORY, 0, file},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    dkm_params p;
    dkm_params_init(&p);
    p.k = k;
    p.max_iter = 2;
    p.storage = cases[c].storage;
    p.max_points_per_centroid = cases[c].mppc;
    p.block_rows = 4096; /* 512 KiB blocks */
    p.n_threads = 2;
    p.tmp_dir = dir;
    dkm_plan plan;
    assert_int_equal(dkm_plan_training(ctx, &p, cases[c].src, &plan), DKM_OK);
    long long before = counter.live;
    counter.peak = before;
    dkm_result *res = dkm_test_train(ctx, &p, cases[c].src);
    double peak = (double)(counter.peak - before);
    if (cases[c].storage == DKM_STORAGE_DISK) {
      double planned = (double)plan.disk_mode_bytes;
      if (peak > 1.05 * planned)
        fail_msg("case %zu: disk mode allocated %.0f bytes, planned %.0f", c, peak, planned);
      assert_true(peak < (double)plan.sample_bytes / 4);
    } else {
      if (peak > 1.05 * (double)plan.memory_mode_bytes)
        fail_msg("case %zu: memory mode allocated %.0f bytes, planned %llu", c, peak,
                 (unsigned long long)plan.memory_mode_bytes);
      assert_true(peak >= (double)plan.sample_bytes);
    }
    dkm_result_free(res);
    assert_int_equal(dkm_test_count_entries(dir), 0);
  }
  dkm_source_close(mem);
  dkm_source_close(file);
  dkm_ctx_free(ctx);
  assert_int_equal(counter.live, 0);
  unlink(npy);
  free(npy);
  dkm_test_rmtree(dir);
  free(dir);
  free(x);
}

/* A block is whole tiles, so at a large dim the tile's rows bound disk
 * mode's memory: with 512-row tiles, dim 2^20 made two 2 GiB block buffers
 * (4 GiB, twice what memory mode needed). At every dim, once the sample
 * spans a few blocks, disk mode must need less than memory mode, by most of
 * the sample. */
static void test_disk_plan_stays_below_memory_at_every_dim(void **state) {
  (void)state;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  const uint32_t dims[] = {1,    3,    8,     100,   784,    1000,   4096,   4097,    5000,
                           8192, 9999, 32768, 65536, 100000, 131072, 524288, 1000003, 1u << 20};
  const uint32_t ks[] = {4, 100};
  for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
    for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
      const uint64_t row_bytes = (uint64_t)dims[d] * 4;
      /* A sample of at least 128 MiB: 16 blocks of 8 MiB. */
      uint64_t rows = (UINT64_C(128) << 20) / row_bytes + 1;
      rows = rows < 1024 ? 1024 : rows;
      dkm_params p;
      dkm_params_init(&p);
      p.k = ks[j];
      p.n_threads = 2;
      p.max_points_per_centroid = 0;
      p.tmp_dir = "/tmp";
      for (int init = 0; init < 2; init++) {
        p.init = init == 0 ? DKM_INIT_RANDOM : DKM_INIT_KMEANSPP;
        dkm_source src = {&fake_methods,    rows,   dims[d], 0, DKM_DTYPE_F32, DKM_FORMAT_RAW,
                          rows * row_bytes, "fake", ctx};
        dkm_plan plan;
        assert_int_equal(dkm_plan_training(ctx, &p, &src, &plan), DKM_OK);
        if (!(plan.disk_mode_bytes < plan.memory_mode_bytes &&
              plan.memory_mode_bytes - plan.disk_mode_bytes >= plan.sample_bytes / 2))
          fail_msg("dim %u, k %u: disk mode needs %llu bytes, memory mode %llu, sample %llu",
                   dims[d], ks[j], (unsigned long long)plan.disk_mode_bytes,
                   (unsigned long long)plan.memory_mode_bytes,
                   (unsigned long long)plan.sample_bytes);
      }
    }
  }
  dkm_ctx_free(ctx);
}

/* At dim 2^17 (16-row tiles) disk mode trains exactly like memory mode,
 * whatever the block size, the threads and the way the sample reaches the
 * disk, and allocates what its plan says: less than memory mode needs
 * (with 512-row tiles its two blocks alone were 512 MiB). */
static void test_disk_large_dim_trains_like_memory(void **state) {
  (void)state;
  const uint64_t n = 96; /* 48 MiB: 6 disk-mode blocks */
  const uint32_t dim = 1u << 17, k = 4;
  float *x = dkm_test_blobs(n, dim, k, 1.0, 29, NULL);
  char *dir = dkm_test_mkdtemp("disk-large-dim");
  char *npy = write_npy("wide.npy", x, n, dim);
  peak_alloc counter = {0, 0};
  dkm_allocator a = {peak_malloc, peak_free, &counter};
  dkm_ctx *ctx = dkm_ctx_create(&a);
  dkm_source *mem = NULL, *file = NULL;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, n, dim, &mem), DKM_OK);
  assert_int_equal(dkm_source_open_file(ctx, npy, NULL, &file), DKM_OK);
  struct {
    dkm_storage storage;
    dkm_source *src;
    uint64_t block_rows;
    uint32_t threads;
  } cases[] = {
      {DKM_STORAGE_MEMORY, mem, 0, 2}, /* the reference */
      {DKM_STORAGE_DISK, file, 0, 2},  /* straight from the file */
      {DKM_STORAGE_DISK, file, 1, 1},  /* one tile per block */
      {DKM_STORAGE_DISK, mem, 0, 2},   /* spilled */
      {DKM_STORAGE_DISK, file, 40, 2}, /* rounded up to 48 rows */
      {DKM_STORAGE_MEMORY, file, 1, 2},
  };
  /* Every case with random rows; the first three with k-means++ (each
   * pass here multiplies 48 MiB of rows by 32 packed centroids: slow under
   * the sanitizers). */
  for (int init = 0; init < 2; init++) {
    dkm_result *ref = NULL;
    size_t n_cases = init == 0 ? sizeof cases / sizeof cases[0] : 3;
    for (size_t c = 0; c < n_cases; c++) {
      dkm_params p;
      dkm_params_init(&p);
      p.k = k;
      p.max_iter = 2;
      p.init = init == 0 ? DKM_INIT_RANDOM : DKM_INIT_KMEANSPP;
      p.storage = cases[c].storage;
      p.max_points_per_centroid = 0;
      p.block_rows = cases[c].block_rows;
      p.n_threads = cases[c].threads;
      p.tmp_dir = dir;
      dkm_plan plan;
      assert_int_equal(dkm_plan_training(ctx, &p, cases[c].src, &plan), DKM_OK);
      long long before = counter.live;
      counter.peak = before;
      dkm_result *res = dkm_test_train(ctx, &p, cases[c].src);
      double peak = (double)(counter.peak - before);
      if (cases[c].storage == DKM_STORAGE_DISK) {
        if (peak > 1.05 * (double)plan.disk_mode_bytes)
          fail_msg("case %zu: disk mode allocated %.0f bytes, planned %llu", c, peak,
                   (unsigned long long)plan.disk_mode_bytes);
        /* Less than memory mode would need with its copy of the sample
         * (which an array in memory does not need: read in place). */
        if (cases[c].src == file && cases[c].block_rows == 0 &&
            !(peak < (double)plan.memory_mode_bytes))
          fail_msg("case %zu: disk mode allocated %.0f bytes, memory mode needs %llu", c, peak,
                   (unsigned long long)plan.memory_mode_bytes);
      }
      if (ref == NULL) {
        ref = res;
        continue;
      }
      char what[64];
      snprintf(what, sizeof what, "init %d, case %zu", init, c);
      dkm_test_assert_same_result(ref, res, what);
      dkm_result_free(res);
    }
    dkm_result_free(ref);
  }
  assert_int_equal(dkm_test_count_entries(dir), 0);
  dkm_source_close(mem);
  dkm_source_close(file);
  dkm_ctx_free(ctx);
  assert_int_equal(counter.live, 0);
  unlink(npy);
  free(npy);
  dkm_test_rmtree(dir);
  free(dir);
  free(x);
}

/* --- nothing left behind --------------------------------------------------- */

static void expect_failure_leaves_nothing(const dkm_params *params, dkm_source *src,
                                          dkm_test_alloc *alloc, dkm_ctx *ctx, dkm_status expect,
                                          const char *in_message) {
  int fds = count_fds();
  long live = alloc->live;
  dkm_result *res = (dkm_result *)alloc; /* must come back NULL */
  dkm_status st = dkm_train(ctx, params, src, &res);
  if (st != expect)
    fail_msg("expected %s, got %s: %s", dkm_status_name(expect), dkm_status_name(st),
             dkm_ctx_errmsg(ctx));
  assert_null(res);
  if (strstr(dkm_ctx_errmsg(ctx), in_message) == NULL)
    fail_msg("message \"%s\" does not name \"%s\"", dkm_ctx_errmsg(ctx), in_message);
  assert_int_equal(count_fds(), fds);
  assert_int_equal(alloc->live, live);
  if (params->tmp_dir != NULL && dkm_test_count_entries(params->tmp_dir) > 0)
    fail_msg("%s is not empty", params->tmp_dir);
}

static void test_disk_nan_while_spilling_leaves_nothing(void **state) {
  (void)state;
  const uint64_t n = 3000;
  const uint32_t dim = 8;
  float *x = dkm_test_blobs(n, dim, 4, 1.0, 5, NULL);
  x[2999 * dim + 5] = NAN; /* the last row: found after most rows are spilled */
  char *dir = dkm_test_mkdtemp("disk-nan");
  dkm_test_alloc alloc = {0};
  dkm_ctx *ctx = dkm_test_ctx(&alloc);
  dkm_source *src = NULL;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, n, dim, &src), DKM_OK);
  dkm_params p;
  dkm_params_init(&p);
  p.k = 4;
  p.storage = DKM_STORAGE_DISK;
  p.max_points_per_centroid = 0;
  p.block_rows = 100;
  p.tmp_dir = dir;
  expect_failure_leaves_nothing(&p, src, &alloc, ctx, DKM_ERR_DATA, "row 2999");
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "column 5"));
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  dkm_test_rmtree(dir);
  free(dir);
  free(x);
}

typedef struct cancel_at {
  dkm_phase phase;
  uint32_t iteration;
  int calls;
} cancel_at;

static int cancel_progress(void *user, const dkm_progress *pr) {
  cancel_at *c = user;
  c->calls++;
  return pr->phase == c->phase && (pr->phase != DKM_PHASE_ITERATE || pr->iteration >= c->iteration);
}

static void test_disk_cancel_leaves_nothing(void **state) {
  (void)state;
  const uint64_t n = 5000;
  const uint32_t dim = 12;
  float *x = dkm_test_blobs(n, dim, 6, 1.0, 9, NULL);
  char *dir = dkm_test_mkdtemp("disk-cancel");
  char *npy = write_npy("cancel.npy", x, n, dim);
  const dkm_phase phases[] = {DKM_PHASE_SAMPLE, DKM_PHASE_INIT, DKM_PHASE_ITERATE};
  for (int from_file = 0; from_file < 2; from_file++) {
    for (size_t i = 0; i < 3; i++) {
      dkm_test_alloc alloc = {0};
      dkm_ctx *ctx = dkm_test_ctx(&alloc);
      dkm_source *src = NULL;
      if (from_file)
        assert_int_equal(dkm_source_open_file(ctx, npy, NULL, &src), DKM_OK);
      else
        assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, n, dim, &src), DKM_OK);
      cancel_at c = {phases[i], 1, 0};
      dkm_params p;
      dkm_params_init(&p);
      p.k = 6;
      p.storage = DKM_STORAGE_DISK;
      p.max_points_per_centroid = 500; /* a sample: a spill even from the file */
      p.init = DKM_INIT_KMEANSPP;
      p.tol = 0;
      p.tmp_dir = dir;
      p.progress = cancel_progress;
      p.progress_user = &c;
      expect_failure_leaves_nothing(&p, src, &alloc, ctx, DKM_ERR_CANCELLED, "cancel");
      assert_true(c.calls > 0);
      dkm_source_close(src);
      dkm_ctx_free(ctx);
    }
  }
  unlink(npy);
  free(npy);
  dkm_test_rmtree(dir);
  free(dir);
  free(x);
}

/* The spill exists while the child trains (a nameless, "(deleted)" file in
 * the directory, held only by the child's descriptor); SIGKILL in the middle
 * of iteration 2 leaves the directory empty. */
static int kill_progress(void *user, const dkm_progress *pr) {
  int fd = *(int *)user;
  if (pr->phase == DKM_PHASE_ITERATE && pr->iteration == 2) {
    char byte = 'x';
    if (write(fd, &byte, 1) != 1)
      _exit(3);
    for (;;)
      pause(); /* wait for the SIGKILL */
  }
  return 0;
}

static int count_spill_fds(pid_t pid, const char *dir) {
  char fddir[64];
  snprintf(fddir, sizeof fddir, "/proc/%d/fd", (int)pid);
  DIR *d = opendir(fddir);
  if (d == NULL)
    return -1;
  int found = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char link[400], target[4096];
    snprintf(link, sizeof link, "%s/%s", fddir, e->d_name);
    ssize_t len = readlink(link, target, sizeof target - 1);
    if (len <= 0)
      continue;
    target[len] = '\0';
    if (strncmp(target, dir, strlen(dir)) == 0 && target[strlen(dir)] == '/' &&
        strstr(target, "(deleted)") != NULL)
      found++;
  }
  closedir(d);
  return found;
}

/* Bytes in use on the file system of dir. */
static uint64_t used_bytes(const char *dir) {
  struct statvfs v;
  assert_int_equal(statvfs(dir, &v), 0);
  return (uint64_t)(v.f_blocks - v.f_bfree) * v.f_frsize;
}

static void test_disk_sigkill_mid_iteration_leaves_nothing(void **state) {
  (void)state;
  const uint64_t n = 20000;
  const uint32_t dim = 32;
  const uint64_t spill = 256 * 20 * dim * sizeof(float); /* the sample: 256 rows per centroid */
  float *x = dkm_test_blobs(n, dim, 10, 1.0, 13, NULL);
  char *dir = dkm_test_mkdtemp("disk-kill");
  /* A nameless file never shows in the directory, so an empty directory
   * proves little: on a tmpfs of our own, the space in use proves that the
   * file existed while the child ran and is gone once it is killed. */
  bool own_fs = can_mount && mount("tmpfs", dir, "tmpfs", 0, "size=16m") == 0;
  uint64_t used_before = own_fs ? used_bytes(dir) : 0;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    dkm_ctx *ctx = dkm_ctx_create(NULL);
    dkm_source *src = NULL;
    if (dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, n, dim, &src) != DKM_OK)
      _exit(2);
    dkm_params p;
    dkm_params_init(&p);
    p.k = 20;
    p.max_iter = 10;
    p.tol = 0;
    p.storage = DKM_STORAGE_DISK;
    p.tmp_dir = dir;
    p.progress = kill_progress;
    p.progress_user = &fds[1];
    dkm_result *res = NULL;
    dkm_train(ctx, &p, src, &res);
    _exit(4); /* never reached: killed in iteration 2 */
  }
  close(fds[1]);
  char byte = 0;
  ssize_t got = read(fds[0], &byte, 1);
  close(fds[0]);
  int spills = got == 1 ? count_spill_fds(pid, dir) : -2;
  int entries = dkm_test_count_entries(dir);
  uint64_t used_during = own_fs ? used_bytes(dir) : 0;
  kill(pid, SIGKILL);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_int_equal(got, 1); /* the child reached iteration 2 */
  assert_int_equal(spills, 1);
  assert_int_equal(entries, 0);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  assert_int_equal(dkm_test_count_entries(dir), 0);
  if (own_fs) {
    assert_true(used_during >= used_before + spill);
    assert_int_equal(used_bytes(dir), used_before);
    assert_int_equal(umount(dir), 0);
  }
  dkm_test_rmtree(dir);
  free(dir);
  free(x);
}

/* --- out of space, unusable directories ------------------------------------ */

static void expect_spill_error(const char *dir, dkm_status expect) {
  /* 2 MiB of sample (4096 x 128 float32) */
  const uint64_t n = 4096;
  const uint32_t dim = 128;
  float *x = dkm_test_blobs(n, dim, 4, 1.0, 17, NULL);
  for (int mode = 0; mode < 2; mode++) {
    dkm_test_alloc alloc = {0};
    dkm_ctx *ctx = dkm_test_ctx(&alloc);
    dkm_source *src = NULL;
    assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, n, dim, &src), DKM_OK);
    dkm_params p;
    dkm_params_init(&p);
    p.k = 4;
    p.max_points_per_centroid = 0;
    p.tmp_dir = dir;
    /* Disk asked for, or auto under a budget that forces it. */
    p.storage = mode == 0 ? DKM_STORAGE_DISK : DKM_STORAGE_AUTO;
    p.memory_limit = 1024;
    expect_failure_leaves_nothing(&p, src, &alloc, ctx, expect, dir);
    if (expect == DKM_ERR_NOSPACE)
      assert_non_null(strstr(dkm_ctx_errmsg(ctx), "2097152 bytes"));
    dkm_source_close(src);
    dkm_ctx_free(ctx);
  }
  free(x);
}

static void test_disk_full_directory_is_nospace(void **state) {
  (void)state;
  if (!can_mount)
    skip();
  char *dir = dkm_test_mount_tmpfs("disk-full", 0);
  expect_spill_error(dir, DKM_ERR_NOSPACE);
  assert_int_equal(dkm_test_count_entries(dir), 0);
  dkm_test_unmount_tmpfs(dir);
}

/* A limit statvfs cannot see: the file size limit. The space reservation
 * (or, where there is none, the writes) then fails. */
static void test_disk_file_size_limit_is_nospace(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("disk-fsize");
  struct rlimit old, rl;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  rl = old;
  rl.rlim_cur = 256 * 1024;
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
  expect_spill_error(dir, DKM_ERR_NOSPACE);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  dkm_test_rmtree(dir);
  free(dir);
}

static void test_disk_read_only_directory_is_io_error(void **state) {
  (void)state;
  if (!can_mount)
    skip();
  char *dir = dkm_test_mount_tmpfs("disk-ro", MS_RDONLY);
  expect_spill_error(dir, DKM_ERR_IO);
  dkm_test_unmount_tmpfs(dir);
}

static void test_disk_missing_directory_is_io_error(void **state) {
  (void)state;
  char *base = dkm_test_mkdtemp("disk-missing");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/no/such/dir", base);
  expect_spill_error(dir, DKM_ERR_IO);
  assert_int_equal(dkm_test_count_entries(base), 0);
  dkm_test_rmtree(base);
  free(base);
}

/* In memory mode the directory is never touched: a missing one is fine. */
static void test_memory_mode_ignores_tmp_dir(void **state) {
  (void)state;
  const uint64_t n = 500;
  const uint32_t dim = 4;
  float *x = dkm_test_blobs(n, dim, 3, 1.0, 19, NULL);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_source *src = NULL;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, n, dim, &src), DKM_OK);
  dkm_params p;
  dkm_params_init(&p);
  p.k = 3;
  p.storage = DKM_STORAGE_MEMORY;
  p.tmp_dir = "/no/such/directory";
  dkm_result *res = dkm_test_train(ctx, &p, src);
  assert_int_equal(res->storage, DKM_STORAGE_MEMORY);
  dkm_result_free(res);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  free(x);
}

static int setup(void **state) {
  (void)state;
  scratch = dkm_test_mkdtemp("disk-inputs");
  return scratch == NULL ? -1 : 0;
}

static int teardown(void **state) {
  (void)state;
  dkm_test_rmtree(scratch);
  free(scratch);
  return 0;
}

int main(void) {
  signal(SIGXFSZ, SIG_IGN); /* a file size limit must be EFBIG, not death */
  can_mount = unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_disk_memory_auto_identical_l2),
      cmocka_unit_test(test_disk_memory_auto_identical_cosine),
      cmocka_unit_test(test_disk_memory_auto_identical_ip),
      cmocka_unit_test(test_disk_plan_matches_training),
      cmocka_unit_test(test_disk_plan_memory_does_not_grow_with_the_sample),
      cmocka_unit_test(test_disk_plan_bounds_the_memory_training_uses),
      cmocka_unit_test(test_disk_plan_stays_below_memory_at_every_dim),
      cmocka_unit_test(test_disk_large_dim_trains_like_memory),
      cmocka_unit_test(test_disk_nan_while_spilling_leaves_nothing),
      cmocka_unit_test(test_disk_cancel_leaves_nothing),
      cmocka_unit_test(test_disk_sigkill_mid_iteration_leaves_nothing),
      cmocka_unit_test(test_disk_full_directory_is_nospace),
      cmocka_unit_test(test_disk_file_size_limit_is_nospace),
      cmocka_unit_test(test_disk_read_only_directory_is_io_error),
      cmocka_unit_test(test_disk_missing_directory_is_io_error),
      cmocka_unit_test(test_memory_mode_ignores_tmp_dir),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
