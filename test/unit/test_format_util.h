/*
 * test_format_util.h - helpers the file-format tests share: writing files,
 * reading a whole source back in odd-sized blocks, checking that an open
 * fails with the right status and a message naming the file and the
 * problem, the allocation-failure sweep, the scratch directory and a
 * binary16 decoder. Header-only (static functions) so that each
 * test_format_*.c stays one executable.
 */
#ifndef DKM_TEST_FORMAT_UTIL_H
#define DKM_TEST_FORMAT_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

#define DKM_TEST_MIN(a, b) ((a) < (b) ? (a) : (b))

/* The scratch directory a format test writes its files in: made by the
 * group setup (through tf_setup_dir, with the test's own tag) and removed
 * with everything in it by tf_teardown. */
static char *dir;

static inline int tf_setup_dir(const char *tag) {
  dir = dkm_test_mkdtemp(tag);
  return dir == NULL ? -1 : 0;
}

static inline int tf_teardown(void **state) {
  (void)state;
  dkm_test_rmtree(dir);
  free(dir);
  return 0;
}

/* An independent binary16 decoder for normal numbers (the tests must not
 * trust the library's own conversion). */
static inline float tf_half_normal_value(uint16_t h) {
  int exp = (h >> 10) & 0x1f;
  double mant = 1.0 + (h & 0x3ff) / 1024.0;
  double v = ldexp(mant, exp - 15);
  return (float)((h & 0x8000) ? -v : v);
}

static inline char *tf_path(const char *base, const char *name) {
  size_t n = strlen(base) + strlen(name) + 2;
  char *p = malloc(n);
  assert_non_null(p);
  snprintf(p, n, "%s/%s", base, name);
  return p;
}

/* Writes the concatenation of two byte ranges (header, data) to path. */
static inline void tf_write2(const char *path, const void *a, size_t na, const void *b, size_t nb) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  if (na > 0)
    assert_int_equal(fwrite(a, 1, na, f), na);
  if (nb > 0)
    assert_int_equal(fwrite(b, 1, nb, f), nb);
  assert_int_equal(fclose(f), 0);
}

static inline void tf_write(const char *path, const void *data, size_t n) {
  tf_write2(path, data, n, NULL, 0);
}

/* Opens path, expecting success; checks the shape and the informational
 * fields. */
static inline dkm_source *tf_open(dkm_ctx *ctx, const char *path, dkm_format force, uint64_t rows,
                                  uint32_t dim, dkm_dtype dtype, dkm_format format) {
  dkm_file_options opt;
  dkm_file_options_init(&opt);
  opt.format = force;
  dkm_source *src = NULL;
  dkm_status st = dkm_source_open_file(ctx, path, &opt, &src);
  if (st != DKM_OK)
    fail_msg("open %s: %s: %s", path, dkm_status_name(st), dkm_ctx_errmsg(ctx));
  assert_non_null(src);
  assert_int_equal(src->rows, rows);
  assert_int_equal(src->dim, dim);
  assert_int_equal(src->dtype, dtype);
  assert_int_equal(src->format, format);
  assert_string_equal(src->name, path);
  assert_true(src->name != path); /* copied, not borrowed */
  return src;
}

/* Reads every row in blocks of `block` rows (the last one shorter) into a
 * malloc'ed array. */
static inline float *tf_read_all(dkm_ctx *ctx, dkm_source *src, uint64_t block) {
  size_t n = (size_t)(src->rows * src->dim);
  float *all = malloc(n * sizeof(float) + 1);
  float *buf = malloc((size_t)(block * src->dim) * sizeof(float));
  assert_non_null(all);
  assert_non_null(buf);
  for (uint64_t first = 0; first < src->rows; first += block) {
    uint64_t count = DKM_TEST_MIN(block, src->rows - first);
    const float *rows = NULL;
    dkm_status st = dkm_source_read(ctx, src, first, count, buf, &rows);
    if (st != DKM_OK)
      fail_msg("read rows %llu+%llu: %s", (unsigned long long)first, (unsigned long long)count,
               dkm_ctx_errmsg(ctx));
    assert_non_null(rows);
    memcpy(all + first * src->dim, rows, (size_t)(count * src->dim) * sizeof(float));
  }
  free(buf);
  return all;
}

/* Values must be bitwise equal (NaN payloads included: the format layer
 * delivers values as they are). */
static inline void tf_assert_same(const float *got, const float *want, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
      fail_msg("value %zu: got %.9g, want %.9g", i, (double)got[i], (double)want[i]);
  }
}

/* Opens (forced format or auto) and checks that it fails with status, that
 * the message starts with the path and contains `word`, and that *out stays
 * NULL. */
static inline void tf_expect_error(dkm_ctx *ctx, const char *path, const dkm_file_options *opt,
                                   dkm_status status, const char *word) {
  dkm_source *src = (dkm_source *)(uintptr_t)1;
  int fds = dkm_test_count_entries("/proc/self/fd");
  dkm_status st = dkm_source_open_file(ctx, path, opt, &src);
  const char *msg = dkm_ctx_errmsg(ctx);
  assert_int_equal(dkm_test_count_entries("/proc/self/fd"), fds); /* no descriptor leaked */
  if (st != status)
    fail_msg("%s: expected %s, got %s (%s)", path, dkm_status_name(status), dkm_status_name(st),
             msg);
  assert_null(src);
  if (strncmp(msg, path, strlen(path)) != 0 || strstr(msg, word) == NULL)
    fail_msg("%s: message '%s' should start with the path and contain '%s'", path, msg, word);
}

static inline void tf_expect_error_as(dkm_ctx *ctx, const char *path, dkm_format format,
                                      dkm_status status, const char *word) {
  dkm_file_options opt;
  dkm_file_options_init(&opt);
  opt.format = format;
  tf_expect_error(ctx, path, &opt, status, word);
}

/* Opens and reads path with allocation number 1, 2, 3... failing in turn,
 * until a run needs no failure. Every run must fail cleanly with
 * DKM_ERR_NOMEM (or succeed when the failed allocation was not needed) and
 * leave no allocation alive. */
static inline void tf_alloc_sweep(const char *path, const dkm_file_options *opt) {
  for (long fail_at = 1;; fail_at++) {
    dkm_test_alloc state = {0};
    state.fail_at = fail_at;
    dkm_ctx *ctx = dkm_test_ctx(&state);
    if (ctx == NULL)
      continue; /* the context itself was the failed allocation */
    dkm_source *src = NULL;
    dkm_status st = dkm_source_open_file(ctx, path, opt, &src);
    if (st == DKM_OK) {
      uint64_t block = src->rows / 3 + 1;
      float *buf = malloc((size_t)(block * src->dim) * sizeof(float));
      assert_non_null(buf);
      for (uint64_t first = 0; first < src->rows && st == DKM_OK; first += block) {
        const float *rows;
        st = dkm_source_read(ctx, src, first, DKM_TEST_MIN(block, src->rows - first), buf, &rows);
      }
      free(buf);
      dkm_source_close(src);
    } else {
      assert_null(src);
    }
    if (st != DKM_OK && st != DKM_ERR_NOMEM)
      fail_msg("fail_at %ld: %s: %s", fail_at, dkm_status_name(st), dkm_ctx_errmsg(ctx));
    long failures = state.failures;
    dkm_ctx_free(ctx);
    assert_int_equal(state.live, 0);
    if (failures == 0) {
      assert_int_equal(st, DKM_OK);
      break;
    }
    assert_true(fail_at < 1000);
  }
}

/* Builds a .npy file image: preamble, the dict padded with spaces and a
 * newline to a multiple of 64 bytes (as numpy writes it), then nothing else.
 * Returns the header size. */
static inline size_t tf_npy_header(unsigned char *out, size_t cap, int major, const char *dict) {
  size_t pre = major == 1 ? 10 : 12;
  size_t len = strlen(dict) + 1;
  size_t total = (pre + len + 63) / 64 * 64;
  assert_true(total <= cap);
  memcpy(out, "\x93NUMPY", 6);
  out[6] = (unsigned char)major;
  out[7] = 0;
  size_t hlen = total - pre;
  if (major == 1) {
    out[8] = (unsigned char)(hlen & 0xff);
    out[9] = (unsigned char)(hlen >> 8);
  } else {
    for (int i = 0; i < 4; i++)
      out[8 + i] = (unsigned char)(hlen >> (8 * i));
  }
  memcpy(out + pre, dict, len - 1);
  memset(out + pre + len - 1, ' ', hlen - len);
  out[total - 1] = '\n';
  return total;
}

#endif
