/*
 * test_spill.c - the spill file on its own: rows written are the rows read
 * back, at any block boundaries; the file never has a name; every failure
 * (missing rows, too many rows, no memory, no room, an unusable directory) is
 * one clear error that leaks nothing, leaves no descriptor open and no file
 * behind.
 *
 * Tests that need a small or read-only file system mount a tmpfs. The test
 * process first moves into a mount namespace of its own, so those mounts are
 * private and vanish with it even if a test crashes; where that is not
 * allowed (not root), those tests are skipped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "source/source.h"
#include "storage/spill.h"
#include "test_support.h"

static bool can_mount;

static int count_fds(void) {
  return dkm_test_count_entries("/proc/self/fd");
}

/* Rows whose every value is distinct and tells where it came from. */
static float *make_rows(uint64_t rows, uint32_t dim) {
  float *x = malloc((size_t)rows * dim * sizeof(float));
  assert_non_null(x);
  for (uint64_t r = 0; r < rows; r++)
    for (uint32_t j = 0; j < dim; j++)
      x[r * dim + j] = (float)r + (float)j / (float)(dim + 1);
  return x;
}

/* Writes x through a spill in chunks of the given sizes (cycled). */
static dkm_status spill_rows(dkm_ctx *ctx, const char *dir, const float *x, uint64_t rows,
                             uint32_t dim, const uint64_t *chunks, size_t n_chunks,
                             dkm_source **out) {
  dkm__spill *s = NULL;
  dkm_status st = dkm__spill_create(ctx, dir, rows, dim, &s);
  if (st != DKM_OK)
    return st;
  uint64_t done = 0;
  for (size_t i = 0; done < rows; i++) {
    uint64_t c = DKM__MIN(chunks[i % n_chunks], rows - done);
    st = dkm__spill_append(ctx, s, x + done * dim, c);
    if (st != DKM_OK) {
      dkm__spill_abort(s);
      return st;
    }
    done += c;
  }
  assert_int_equal(dkm__spill_rows_written(s), rows);
  return dkm__spill_finish(ctx, s, out);
}

/* A fresh scratch directory and a context whose allocator counts, for a
 * test that ends by proving it leaked nothing: no allocation but the
 * context, no descriptor left open, no file left in the directory. */
typedef struct fixture {
  char *dir;
  dkm_test_alloc alloc; /* the context points at it: the fixture stays put */
  dkm_ctx *ctx;
  int fds; /* descriptors open once the context exists */
} fixture;

/* Takes ownership of dir (asserted non-NULL). */
static void fixture_open(fixture *f, char *dir) {
  assert_non_null(dir);
  f->dir = dir;
  f->alloc = (dkm_test_alloc){0};
  f->ctx = dkm_test_ctx(&f->alloc);
  f->fds = count_fds();
}

static void assert_nothing_left(const fixture *f) {
  assert_int_equal(f->alloc.live, 1); /* only the context */
  assert_int_equal(count_fds(), f->fds);
  assert_int_equal(dkm_test_count_entries(f->dir), 0);
}

/* Frees the context and removes the (dkm_test_mkdtemp) directory. */
static void fixture_close(fixture *f) {
  dkm_ctx_free(f->ctx);
  dkm_test_rmtree(f->dir);
  free(f->dir);
}

/* Reads the whole source back in blocks of `block` rows and compares. */
static void check_read_back(dkm_ctx *ctx, dkm_source *src, const float *x, uint64_t block) {
  uint32_t dim = src->dim;
  float *buf = malloc((size_t)block * dim * sizeof(float));
  assert_non_null(buf);
  for (uint64_t first = 0; first < src->rows; first += block) {
    uint64_t count = DKM__MIN(block, src->rows - first);
    if (src->methods->will_need != NULL)
      src->methods->will_need(src, first + count, block);
    const float *rows = NULL;
    assert_int_equal(dkm_source_read(ctx, src, first, count, buf, &rows), DKM_OK);
    assert_memory_equal(rows, x + first * dim, (size_t)count * dim * sizeof(float));
  }
  free(buf);
}

static void test_spill_rows_read_back_exactly(void **state) {
  (void)state;
  /* dim 300: a row is 1200 bytes, so the 1 MiB write buffer holds 873 rows
   * and the chunks below cross it, fill it exactly, and bypass it. */
  static const struct {
    uint64_t rows;
    uint32_t dim;
    uint64_t chunks[6];
  } cases[] = {
      {1, 1, {1}},         {1000, 7, {1, 3, 250, 999}}, {5000, 300, {1, 872, 2000, 1, 873, 1746}},
      {3001, 300, {3001}}, {2048, 128, {2048}},         {777, 4096, {1, 2, 255, 256, 257}},
  };
  static const uint64_t blocks[] = {1, 7, 333, 1024, 100000};
  char *dir = dkm_test_mkdtemp("spill-rw");
  assert_non_null(dir);
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    dkm_test_alloc alloc = {0};
    dkm_ctx *ctx = dkm_test_ctx(&alloc);
    int fds = count_fds();
    float *x = make_rows(cases[c].rows, cases[c].dim);
    size_t n_chunks = 0;
    while (n_chunks < 6 && cases[c].chunks[n_chunks] != 0)
      n_chunks++;
    dkm_source *src = NULL;
    assert_int_equal(
        spill_rows(ctx, dir, x, cases[c].rows, cases[c].dim, cases[c].chunks, n_chunks, &src),
        DKM_OK);
    assert_int_equal(src->rows, cases[c].rows);
    assert_int_equal(src->dim, cases[c].dim);
    assert_int_equal(src->format, DKM_FORMAT_SPILL);
    assert_int_equal(src->dtype, DKM_DTYPE_F32);
    assert_int_equal(src->bytes, cases[c].rows * cases[c].dim * 4);
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++)
      check_read_back(ctx, src, x, blocks[b]);
    /* Random access too (initialisation reads scattered rows). */
    float *one = malloc(3 * (size_t)cases[c].dim * sizeof(float));
    uint64_t rng = 7;
    for (int i = 0; i < 50; i++) {
      uint64_t first = dkm_test_rand(&rng) % cases[c].rows;
      uint64_t count = DKM__MIN(3, cases[c].rows - first);
      const float *rows = NULL;
      assert_int_equal(dkm_source_read(ctx, src, first, count, one, &rows), DKM_OK);
      assert_memory_equal(rows, x + first * cases[c].dim, count * cases[c].dim * sizeof(float));
    }
    free(one);
    /* Drop-behind changes only what the page cache keeps. */
    dkm__spill_set_drop_behind(src, true);
    check_read_back(ctx, src, x, 333);
    dkm__spill_set_drop_behind(src, false);
    /* The same through the fallback read path (pread into the buffer). */
    if (!dkm__spill_is_mapped(src))
      print_message("note: this system reads spills with pread only\n");
    dkm__spill_use_pread(src);
    assert_false(dkm__spill_is_mapped(src));
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++)
      check_read_back(ctx, src, x, blocks[b]);
    dkm__spill_set_drop_behind(src, true);
    check_read_back(ctx, src, x, 7);
    /* Hints out of range are harmless. */
    src->methods->will_need(src, src->rows, 10);
    src->methods->will_need(src, src->rows - 1, UINT64_MAX);
    dkm_source_close(src);
    assert_int_equal(alloc.live, 1); /* only the context */
    assert_int_equal(count_fds(), fds);
    assert_int_equal(dkm_test_count_entries(dir), 0);
    free(x);
    dkm_ctx_free(ctx);
  }
  dkm_test_rmtree(dir);
  free(dir);
}

/* Resident set size in KiB, from /proc/self/statm, read into a buffer on
 * the stack. Not with fopen: the test polls this after every read, and
 * under AddressSanitizer each fopen/fclose leaves its FILE and 4 KiB buffer
 * in the allocator's quarantine (freed memory is not handed out again until
 * 256 MiB have been freed). Polling 2000 times that way grew the process by
 * 8 MiB on one machine and 13 MiB on another, all of it anonymous memory
 * (the spill's mapped pages did not grow at all): that, not the spill, is
 * what a fixed 8 MiB allowance once caught. */
static long rss_kib(void) {
  char text[128];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  long size, resident;
  if (n <= 0)
    return -1;
  text[n] = '\0';
  if (sscanf(text, "%ld %ld", &size, &resident) != 2)
    return -1;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* The rows of the spills below: dim 128 (512 bytes a row), written and read
 * in 1 MiB blocks. Row r holds r, then zeros. */
enum { RSS_DIM = 128, RSS_BLOCK_ROWS = 2048 };

/* Whether rows[0..count) are rows first, first + 1, ... of such a spill.
 * Its loads are left out of the sanitizers' instrumentation: ThreadSanitizer
 * records every access in shadow memory, one page per scattered row, which
 * would grow with the number of rows read, that is with the file, and say
 * nothing about the spill. */
__attribute__((no_sanitize("address", "thread"))) static bool
rows_are(const float *rows, uint64_t first, uint64_t count) {
  for (uint64_t i = 0; i < count; i += DKM__MAX(count - 1, 1))
    if (rows[i * RSS_DIM] != (float)(first + i) || rows[i * RSS_DIM + 1] != 0.0f)
      return false;
  return true;
}

/* How much the process grew (KiB, peak over the start of each phase)
 * reading a spill back: first in scattered single rows, as initialisation
 * reads them, then in order, twice, in blocks. Scattered first, so that no
 * page the in-order reads left mapped hides what the scattered ones add. */
typedef struct read_growth {
  long in_order, scattered;
} read_growth;

/* Spills `mib` MiB and reads it back through both read paths (growth[0]:
 * the default, growth[1]: pread). The scattered reads are as dense for
 * every size (one per 8 KiB of file), so that a reader that held what it
 * read would hold the same share of the file whatever its size: 40% of
 * it with 4 KiB pages, all of it with the page cache's 2 MiB folios. */
static void measure_read_growth(dkm_ctx *ctx, const char *dir, uint64_t mib,
                                read_growth growth[2]) {
  const uint64_t rows = mib * RSS_BLOCK_ROWS, scattered = mib * 128;
  float *x = calloc((size_t)RSS_BLOCK_ROWS * RSS_DIM, sizeof(float));
  float *buf = malloc((size_t)RSS_BLOCK_ROWS * RSS_DIM * sizeof(float));
  assert_non_null(x);
  assert_non_null(buf);
  dkm__spill *s = NULL;
  assert_int_equal(dkm__spill_create(ctx, dir, rows, RSS_DIM, &s), DKM_OK);
  for (uint64_t first = 0; first < rows; first += RSS_BLOCK_ROWS) {
    for (uint64_t i = 0; i < RSS_BLOCK_ROWS; i++)
      x[i * RSS_DIM] = (float)(first + i);
    assert_int_equal(dkm__spill_append(ctx, s, x, RSS_BLOCK_ROWS), DKM_OK);
  }
  dkm_source *src = NULL;
  assert_int_equal(dkm__spill_finish(ctx, s, &src), DKM_OK);
  for (int path = 0; path < 2; path++) {
    if (path == 1)
      dkm__spill_use_pread(src);
    long base = rss_kib(), peak = base;
    assert_true(base > 0);
    uint64_t rng = 99;
    for (uint64_t i = 0; i < scattered; i++) {
      uint64_t row = dkm_test_rand(&rng) % rows;
      const float *r = NULL;
      assert_int_equal(dkm_source_read(ctx, src, row, 1, buf, &r), DKM_OK);
      assert_true(rows_are(r, row, 1));
      peak = DKM__MAX(peak, rss_kib());
    }
    growth[path].scattered = peak - base;
    peak = base = rss_kib();
    for (int pass = 0; pass < 2; pass++) {
      for (uint64_t first = 0; first < rows; first += RSS_BLOCK_ROWS) {
        const float *r = NULL;
        assert_int_equal(dkm_source_read(ctx, src, first, RSS_BLOCK_ROWS, buf, &r), DKM_OK);
        assert_true(rows_are(r, first, RSS_BLOCK_ROWS));
        peak = DKM__MAX(peak, rss_kib());
      }
    }
    growth[path].in_order = peak - base;
  }
  dkm_source_close(src);
  free(x);
  free(buf);
}

/* Reading a spill back does not make the process grow with the file: a
 * spill four times as large (128 MiB against 32), read the same way, leaves
 * about as much resident, through both read paths, in order and scattered.
 * A mapping whose pages were never dropped would keep what it read: 96 MiB
 * more in order, 38-96 MiB more scattered. The two sizes are compared rather
 * than held to a number because what the same reads cost varies with the
 * machine (the page cache's folio sizes, transparent huge pages, the
 * sanitizers' own memory) but not with the file. Up to an eighth of the
 * extra 96 MiB may show. */
static void test_spill_reading_keeps_memory_bounded(void **state) {
  (void)state;
  const uint64_t small_mib = 32, large_mib = 128;
  const long allowed_kib = (long)(large_mib - small_mib) * 1024 / 8;
  char *dir = dkm_test_mkdtemp("spill-rss");
  assert_non_null(dir);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  read_growth small[2], large[2];
  measure_read_growth(ctx, dir, small_mib, small);
  measure_read_growth(ctx, dir, large_mib, large);
  for (int path = 0; path < 2; path++) {
    const char *name = path == 0 ? "default" : "pread";
    print_message("%s path: RSS grew by %ld / %ld KiB (in order), %ld / %ld KiB (scattered) "
                  "reading %llu / %llu MiB\n",
                  name, small[path].in_order, large[path].in_order, small[path].scattered,
                  large[path].scattered, (unsigned long long)small_mib,
                  (unsigned long long)large_mib);
    if (large[path].in_order - small[path].in_order > allowed_kib)
      fail_msg("%s path: reading %llu MiB in order grew RSS by %ld KiB, %llu MiB by %ld KiB", name,
               (unsigned long long)large_mib, large[path].in_order, (unsigned long long)small_mib,
               small[path].in_order);
    if (large[path].scattered - small[path].scattered > allowed_kib)
      fail_msg("%s path: scattered rows of %llu MiB grew RSS by %ld KiB, of %llu MiB by %ld KiB",
               name, (unsigned long long)large_mib, large[path].scattered,
               (unsigned long long)small_mib, small[path].scattered);
  }
  assert_int_equal(dkm_test_count_entries(dir), 0);
  dkm_ctx_free(ctx);
  dkm_test_rmtree(dir);
  free(dir);
}

/* The file is nameless from the start: the directory stays empty while the
 * spill is open, and the descriptor's link says it is not linked anywhere. */
static void test_spill_file_has_no_name(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("spill-noname");
  assert_non_null(dir);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm__spill *s = NULL;
  assert_int_equal(dkm__spill_create(ctx, dir, 100, 4, &s), DKM_OK);
  assert_int_equal(dkm_test_count_entries(dir), 0);
  /* One of our descriptors is the spill: it points into dir, "(deleted)". */
  int found = 0;
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char link[300], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0)
      continue;
    target[n] = '\0';
    if (strncmp(target, dir, strlen(dir)) == 0 && strstr(target, "(deleted)") != NULL)
      found++;
  }
  closedir(d);
  assert_int_equal(found, 1);
  float row[4] = {1, 2, 3, 4};
  for (int i = 0; i < 100; i++)
    assert_int_equal(dkm__spill_append(ctx, s, row, 1), DKM_OK);
  dkm_source *src = NULL;
  assert_int_equal(dkm__spill_finish(ctx, s, &src), DKM_OK);
  assert_int_equal(dkm_test_count_entries(dir), 0);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  dkm_test_rmtree(dir);
  free(dir);
}

static void test_spill_finish_with_missing_rows_fails_cleanly(void **state) {
  (void)state;
  fixture f;
  fixture_open(&f, dkm_test_mkdtemp("spill-missing"));
  float *x = make_rows(10, 3);
  dkm__spill *s = NULL;
  assert_int_equal(dkm__spill_create(f.ctx, f.dir, 10, 3, &s), DKM_OK);
  assert_int_equal(dkm__spill_append(f.ctx, s, x, 9), DKM_OK);
  dkm_source *src = (dkm_source *)&f; /* must be reset to NULL */
  assert_int_equal(dkm__spill_finish(f.ctx, s, &src), DKM_ERR_INTERNAL);
  assert_null(src);
  assert_non_null(strstr(dkm_ctx_errmsg(f.ctx), "9 of 10 rows"));
  assert_non_null(strstr(dkm_ctx_errmsg(f.ctx), f.dir));
  assert_nothing_left(&f);
  free(x);
  fixture_close(&f);
}

static void test_spill_too_many_rows_is_an_error(void **state) {
  (void)state;
  fixture f;
  fixture_open(&f, dkm_test_mkdtemp("spill-toomany"));
  dkm_ctx *ctx = f.ctx;
  float *x = make_rows(11, 3);
  dkm__spill *s = NULL;
  assert_int_equal(dkm__spill_create(ctx, f.dir, 10, 3, &s), DKM_OK);
  assert_int_equal(dkm__spill_append(ctx, s, x, 0), DKM_OK);
  assert_int_equal(dkm__spill_append(ctx, s, x, 11), DKM_ERR_INTERNAL);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "only 10 of 10 remain"));
  dkm_ctx_clear_error(ctx);
  /* The refused append changed nothing: the 10 rows still go in. */
  assert_int_equal(dkm__spill_append(ctx, s, x, 10), DKM_OK);
  assert_int_equal(dkm__spill_append(ctx, s, x, 1), DKM_ERR_INTERNAL);
  dkm_source *src = NULL;
  assert_int_equal(dkm__spill_finish(ctx, s, &src), DKM_OK);
  check_read_back(ctx, src, x, 4);
  dkm_source_close(src);
  assert_int_equal(f.alloc.live, 1); /* only the context */
  free(x);
  fixture_close(&f);
}

static void test_spill_bad_sizes_are_param_errors(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("spill-param");
  assert_non_null(dir);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm__spill *s = NULL;
  assert_int_equal(dkm__spill_create(ctx, dir, 0, 4, &s), DKM_ERR_PARAM);
  assert_null(s);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), dir));
  dkm_ctx_clear_error(ctx);
  assert_int_equal(dkm__spill_create(ctx, dir, 4, 0, &s), DKM_ERR_PARAM);
  dkm_ctx_clear_error(ctx);
  assert_int_equal(dkm__spill_create(ctx, dir, UINT64_MAX / 2, 1000, &s), DKM_ERR_PARAM);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "cannot hold"));
  dkm_ctx_clear_error(ctx);
  /* Fits a size_t but not an off_t. */
  assert_int_equal(dkm__spill_create(ctx, dir, UINT64_C(1) << 62, 1, &s), DKM_ERR_PARAM);
  assert_null(s);
  assert_int_equal(dkm_test_count_entries(dir), 0);
  dkm_ctx_free(ctx);
  dkm_test_rmtree(dir);
  free(dir);
}

static void expect_io_error(const char *dir, const char *why) {
  dkm_test_alloc alloc = {0};
  dkm_ctx *ctx = dkm_test_ctx(&alloc);
  int fds = count_fds();
  dkm__spill *s = NULL;
  dkm_status st = dkm__spill_create(ctx, dir, 100, 4, &s);
  if (st != DKM_ERR_IO)
    fail_msg("%s (%s): got %s: %s", dir, why, dkm_status_name(st), dkm_ctx_errmsg(ctx));
  assert_null(s);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), dir));
  assert_int_equal(alloc.live, 1); /* only the context */
  assert_int_equal(count_fds(), fds);
  dkm_ctx_free(ctx);
}

static void test_spill_unusable_directory_is_an_io_error(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("spill-unusable");
  assert_non_null(dir);
  char path[4096];
  snprintf(path, sizeof path, "%s/missing", dir);
  expect_io_error(path, "missing");
  snprintf(path, sizeof path, "%s/file", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fclose(f);
  expect_io_error(path, "a regular file");
  /* A directory where no file can be created, whoever we are. */
  expect_io_error("/proc/self", "procfs");
  assert_int_equal(dkm_test_count_entries(dir), 1);
  dkm_test_rmtree(dir);
  free(dir);
}

static void test_spill_read_only_directory_is_an_io_error(void **state) {
  (void)state;
  if (!can_mount)
    skip();
  char *dir = dkm_test_mount_tmpfs("spill-ro", 0);
  assert_int_equal(mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY, "size=1m"), 0);
  expect_io_error(dir, "read-only tmpfs");
  dkm_test_unmount_tmpfs(dir);
}

static void test_spill_too_big_for_the_directory_is_nospace(void **state) {
  (void)state;
  if (!can_mount)
    skip();
  fixture f;
  fixture_open(&f, dkm_test_mount_tmpfs("spill-small", 0));
  dkm__spill *s = NULL;
  /* 2 MiB into 1 MiB: the statvfs check refuses before any file exists. */
  assert_int_equal(dkm__spill_create(f.ctx, f.dir, 4096, 128, &s), DKM_ERR_NOSPACE);
  assert_null(s);
  const char *msg = dkm_ctx_errmsg(f.ctx);
  assert_non_null(strstr(msg, f.dir));
  assert_non_null(strstr(msg, "2097152 bytes"));
  assert_nothing_left(&f);
  dkm_ctx_free(f.ctx);
  dkm_test_unmount_tmpfs(f.dir);
}

/* The room is reserved at create: once the spill exists, another writer
 * filling the disk cannot make the spill's writes fail. */
static void test_spill_reserves_its_room_at_create(void **state) {
  (void)state;
  if (!can_mount)
    skip();
  char *dir = dkm_test_mount_tmpfs("spill-race", 0);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  /* Fill the tmpfs up except for 64 KiB. */
  char path[4096];
  snprintf(path, sizeof path, "%s/other", dir);
  int fd = open(path, O_CREAT | O_WRONLY, 0600);
  assert_true(fd >= 0);
  assert_int_equal(posix_fallocate(fd, 0, 1024 * 1024 - 64 * 1024), 0);
  close(fd);
  dkm__spill *s = NULL;
  /* 128 KiB: statvfs sees the room used, so refuses... */
  assert_int_equal(dkm__spill_create(ctx, dir, 256, 128, &s), DKM_ERR_NOSPACE);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), dir));
  dkm_ctx_clear_error(ctx);
  /* ...and 32 KiB fits, while the reservation holds the room against
   * another writer: the writes after it cannot fail for lack of room. */
  assert_int_equal(dkm__spill_create(ctx, dir, 64, 128, &s), DKM_OK);
  fd = open(path, O_WRONLY);
  assert_true(fd >= 0);
  int err = posix_fallocate(fd, 0, 1024 * 1024);
  assert_int_equal(err, ENOSPC);
  close(fd);
  float *x = make_rows(64, 128);
  assert_int_equal(dkm__spill_append(ctx, s, x, 64), DKM_OK);
  dkm_source *src = NULL;
  assert_int_equal(dkm__spill_finish(ctx, s, &src), DKM_OK);
  check_read_back(ctx, src, x, 10);
  dkm_source_close(src);
  assert_int_equal(dkm_test_count_entries(dir), 1);
  free(x);
  dkm_ctx_free(ctx);
  dkm_test_unmount_tmpfs(dir);
}

static void set_fsize_limit(rlim_t bytes) {
  struct rlimit rl;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
  rl.rlim_cur = bytes;
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

/* RLIMIT_FSIZE is invisible to statvfs: the reservation is what fails. */
static void test_spill_file_size_limit_at_create_is_nospace(void **state) {
  (void)state;
  fixture f;
  fixture_open(&f, dkm_test_mkdtemp("spill-fsize"));
  set_fsize_limit(64 * 1024);
  dkm__spill *s = NULL;
  dkm_status st = dkm__spill_create(f.ctx, f.dir, 1024, 128, &s);
  set_fsize_limit(RLIM_INFINITY);
  assert_int_equal(st, DKM_ERR_NOSPACE);
  assert_null(s);
  assert_non_null(strstr(dkm_ctx_errmsg(f.ctx), f.dir));
  assert_non_null(strstr(dkm_ctx_errmsg(f.ctx), "524288 bytes"));
  assert_nothing_left(&f);
  fixture_close(&f);
}

/* A write that fails for lack of room (here the file size limit, lowered
 * after the reservation) is DKM_ERR_NOSPACE naming the directory; the spill
 * refuses further work and is dropped cleanly. */
static void test_spill_no_room_while_writing_is_nospace(void **state) {
  (void)state;
  fixture f;
  fixture_open(&f, dkm_test_mkdtemp("spill-enospc"));
  dkm_ctx *ctx = f.ctx;
  /* 4 MiB of rows of 512 bytes, appended 1000 at a time (past the buffer). */
  float *x = make_rows(8192, 128);
  dkm__spill *s = NULL;
  assert_int_equal(dkm__spill_create(ctx, f.dir, 8192, 128, &s), DKM_OK);
  set_fsize_limit(1024 * 1024 + 100);
  dkm_status st = DKM_OK;
  uint64_t done = 0;
  while (st == DKM_OK && done < 8192) {
    uint64_t c = DKM__MIN(1000, 8192 - done);
    st = dkm__spill_append(ctx, s, x + done * 128, c);
    done += c;
  }
  if (st == DKM_OK) {
    dkm_source *src = NULL;
    st = dkm__spill_finish(ctx, s, &src);
    assert_null(src);
    s = NULL;
  }
  set_fsize_limit(RLIM_INFINITY);
  assert_int_equal(st, DKM_ERR_NOSPACE);
  const char *msg = dkm_ctx_errmsg(ctx);
  assert_non_null(strstr(msg, f.dir));
  assert_non_null(strstr(msg, "4194304 bytes needed"));
  assert_non_null(strstr(msg, "File too large"));
  if (s != NULL) {
    dkm_ctx_clear_error(ctx);
    assert_int_equal(dkm__spill_append(ctx, s, x, 1), DKM_ERR_INTERNAL);
    dkm_source *src = NULL;
    assert_int_equal(dkm__spill_finish(ctx, s, &src), DKM_ERR_INTERNAL);
    assert_null(src);
  }
  assert_nothing_left(&f);
  free(x);
  fixture_close(&f);
}

/* Every allocation of a spill's life fails in turn: each failure is
 * DKM_ERR_NOMEM, and nothing leaks, no descriptor stays open, no file. */
static void test_spill_allocation_failures_leak_nothing(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("spill-nomem");
  assert_non_null(dir);
  float *x = make_rows(3000, 100);
  static const uint64_t chunks[] = {1, 2999};
  int fds = count_fds();
  long needed = 0;
  for (long fail_at = 1;; fail_at++) {
    dkm_test_alloc alloc = {.fail_at = fail_at};
    dkm_ctx *ctx = dkm_test_ctx(&alloc);
    if (ctx == NULL) /* the context itself is the first allocation */
      continue;
    dkm_source *src = NULL;
    dkm_status st = spill_rows(ctx, dir, x, 3000, 100, chunks, 2, &src);
    if (st == DKM_OK) {
      check_read_back(ctx, src, x, 1000);
      dkm_source_close(src);
    } else {
      assert_int_equal(st, DKM_ERR_NOMEM);
      assert_null(src);
      assert_true(alloc.failures == 1);
    }
    assert_int_equal(alloc.live, 1); /* only the context */
    assert_int_equal(count_fds(), fds);
    assert_int_equal(dkm_test_count_entries(dir), 0);
    long failures = alloc.failures;
    dkm_ctx_free(ctx);
    if (failures == 0) {
      needed = fail_at - 1;
      break;
    }
  }
  /* The context, the spill, its write buffer: the sweep really failed each. */
  assert_true(needed >= 3);
  free(x);
  dkm_test_rmtree(dir);
  free(dir);
}

/* NULL means /tmp, as params.tmp_dir does. */
static void test_spill_default_directory_is_tmp(void **state) {
  (void)state;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  float *x = make_rows(10, 2);
  static const uint64_t chunks[] = {10};
  dkm_source *src = NULL;
  assert_int_equal(spill_rows(ctx, NULL, x, 10, 2, chunks, 1, &src), DKM_OK);
  check_read_back(ctx, src, x, 3);
  dkm_source_close(src);
  free(x);
  dkm_ctx_free(ctx);
}

int main(void) {
  /* Exceeding RLIMIT_FSIZE must be an error we see (EFBIG), not a signal. */
  signal(SIGXFSZ, SIG_IGN);
  can_mount = unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spill_rows_read_back_exactly),
      cmocka_unit_test(test_spill_file_has_no_name),
      cmocka_unit_test(test_spill_reading_keeps_memory_bounded),
      cmocka_unit_test(test_spill_finish_with_missing_rows_fails_cleanly),
      cmocka_unit_test(test_spill_too_many_rows_is_an_error),
      cmocka_unit_test(test_spill_bad_sizes_are_param_errors),
      cmocka_unit_test(test_spill_unusable_directory_is_an_io_error),
      cmocka_unit_test(test_spill_read_only_directory_is_an_io_error),
      cmocka_unit_test(test_spill_too_big_for_the_directory_is_nospace),
      cmocka_unit_test(test_spill_reserves_its_room_at_create),
      cmocka_unit_test(test_spill_file_size_limit_at_create_is_nospace),
      cmocka_unit_test(test_spill_no_room_while_writing_is_nospace),
      cmocka_unit_test(test_spill_allocation_failures_leak_nothing),
      cmocka_unit_test(test_spill_default_directory_is_tmp),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
