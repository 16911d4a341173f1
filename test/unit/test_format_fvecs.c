/*
 * test_format_fvecs.c - .fvecs and .bvecs: rows read back value for value
 * (auto-detected by extension and forced), odd blocks, every row's dimension
 * field checked while reading, the malformed files refused by name, no leak
 * when allocations fail, and a sparse file larger than 4 GiB.
 */
#include <fcntl.h>
#include <unistd.h>

#include "test_format_util.h"

static int setup(void **state) {
  (void)state;
  return tf_setup_dir("format-fvecs");
}

/* A file image of rows with int32 dims; dims[r] may differ from dim to make
 * a corrupt row. elem is 4 (fvecs) or 1 (bvecs). Returns malloc'ed bytes. */
static unsigned char *vecs_image(const void *values, uint64_t rows, uint32_t dim, size_t elem,
                                 const int32_t *dims, size_t *size) {
  size_t row_bytes = 4 + dim * elem;
  unsigned char *img = malloc(rows * row_bytes);
  assert_non_null(img);
  for (uint64_t r = 0; r < rows; r++) {
    int32_t d = dims != NULL ? dims[r] : (int32_t)dim;
    memcpy(img + r * row_bytes, &d, 4); /* little-endian host */
    memcpy(img + r * row_bytes + 4, (const unsigned char *)values + r * dim * elem, dim * elem);
  }
  *size = rows * row_bytes;
  return img;
}

static void fvecs_reads_back_exactly(void **state) {
  const uint64_t rows = 37;
  const uint32_t dim = 13;
  float *values = dkm_test_blobs(rows, dim, 3, 1.0, 7, NULL);
  values[5] = NAN; /* delivered as is */
  size_t size;
  unsigned char *img = vecs_image(values, rows, dim, 4, NULL, &size);
  char *path = tf_path(dir, "x.fvecs");
  char *plain = tf_path(dir, "x.dat"); /* only a forced format opens this one */
  tf_write(path, img, size);
  tf_write(plain, img, size);

  dkm_test_alloc st = {0};
  dkm_ctx *ctx = dkm_test_ctx(&st);
  const char *paths[2] = {path, plain};
  dkm_format forms[2] = {DKM_FORMAT_AUTO, DKM_FORMAT_FVECS};
  for (int i = 0; i < 2; i++) {
    dkm_source *src = tf_open(ctx, paths[i], forms[i], rows, dim, DKM_DTYPE_F32, DKM_FORMAT_FVECS);
    assert_int_equal(src->bytes, size);
    /* The read-ahead hint is harmless whatever its range. */
    assert_non_null(src->methods->will_need);
    src->methods->will_need(src, 0, rows);
    src->methods->will_need(src, rows - 1, 100);
    src->methods->will_need(src, rows + 5, 1);
    src->methods->will_need(src, 3, 0);
    uint64_t blocks[] = {1, 4, 36, 37};
    for (size_t b = 0; b < 4; b++) {
      float *got = tf_read_all(ctx, src, blocks[b]);
      tf_assert_same(got, values, rows * dim);
      free(got);
    }
    float buf[3 * 13];
    const float *r;
    assert_int_equal(dkm_source_read(ctx, src, 33, 3, buf, &r), DKM_OK);
    tf_assert_same(r, values + 33 * dim, 3 * dim);
    assert_int_equal(dkm_source_read(ctx, src, 1, 1, buf, &r), DKM_OK);
    tf_assert_same(r, values + dim, dim);
    dkm_source_close(src);
  }
  dkm_ctx_free(ctx);
  assert_int_equal(st.live, 0);
  free(img);
  free(values);
  free(path);
  free(plain);
}

static void bvecs_reads_back_exactly(void **state) {
  const uint64_t rows = 29;
  const uint32_t dim = 128;
  uint8_t *values = malloc(rows * dim);
  float *want = malloc(rows * dim * sizeof(float));
  uint64_t seed = 3;
  for (size_t i = 0; i < rows * dim; i++) {
    values[i] = (uint8_t)dkm_test_rand(&seed);
    want[i] = (float)values[i];
  }
  size_t size;
  unsigned char *img = vecs_image(values, rows, dim, 1, NULL, &size);
  char *path = tf_path(dir, "x.BVECS"); /* extensions are case-insensitive */
  char *plain = tf_path(dir, "x.vectors");
  tf_write(path, img, size);
  tf_write(plain, img, size);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  const char *paths[2] = {path, plain};
  dkm_format forms[2] = {DKM_FORMAT_AUTO, DKM_FORMAT_BVECS};
  for (int i = 0; i < 2; i++) {
    dkm_source *src = tf_open(ctx, paths[i], forms[i], rows, dim, DKM_DTYPE_U8, DKM_FORMAT_BVECS);
    uint64_t blocks[] = {1, 3, 29};
    for (size_t b = 0; b < 3; b++) {
      float *got = tf_read_all(ctx, src, blocks[b]);
      tf_assert_same(got, want, rows * dim);
      free(got);
    }
    dkm_source_close(src);
  }
  dkm_ctx_free(ctx);
  free(img);
  free(values);
  free(want);
  free(path);
  free(plain);
}

/* A row whose dimension field differs is found when that row is read; the
 * rows before it still read fine. */
static void row_of_another_dimension_fails_the_read(void **state) {
  const uint64_t rows = 10;
  const uint32_t dim = 32;
  float values[10 * 32] = {0};
  int32_t dims[10];
  for (int i = 0; i < 10; i++)
    dims[i] = 32;
  dims[7] = 24; /* still the same byte size overall: only the field lies */
  size_t size;
  unsigned char *img = vecs_image(values, rows, dim, 4, dims, &size);
  char *path = tf_path(dir, "mixed.fvecs");
  tf_write(path, img, size);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_source *src = tf_open(ctx, path, DKM_FORMAT_AUTO, rows, dim, DKM_DTYPE_F32, DKM_FORMAT_FVECS);
  float buf[10 * 32];
  const float *r;
  assert_int_equal(dkm_source_read(ctx, src, 0, 7, buf, &r), DKM_OK);
  assert_int_equal(dkm_source_read(ctx, src, 5, 4, buf, &r), DKM_ERR_FORMAT);
  char want[512];
  snprintf(want, sizeof want, "%s: row 7 has dimension 24, expected 32", path);
  assert_string_equal(dkm_ctx_errmsg(ctx), want);
  assert_int_equal(dkm_source_read(ctx, src, 8, 2, buf, &r), DKM_OK);
  dkm_source_close(src);

  /* A negative dimension field is printed as one. */
  int32_t neg = -5;
  memcpy(img + 3 * (4 + 32 * 4), &neg, 4);
  tf_write(path, img, size);
  src = tf_open(ctx, path, DKM_FORMAT_AUTO, rows, dim, DKM_DTYPE_F32, DKM_FORMAT_FVECS);
  assert_int_equal(dkm_source_read(ctx, src, 0, 10, buf, &r), DKM_ERR_FORMAT);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "row 3 has dimension -5, expected 32"));
  dkm_source_close(src);

  /* bvecs too. */
  uint8_t bytes[10 * 32] = {0};
  free(img);
  img = vecs_image(bytes, rows, dim, 1, dims, &size);
  free(path);
  path = tf_path(dir, "mixed.bvecs");
  tf_write(path, img, size);
  src = tf_open(ctx, path, DKM_FORMAT_AUTO, rows, dim, DKM_DTYPE_U8, DKM_FORMAT_BVECS);
  assert_int_equal(dkm_source_read(ctx, src, 0, 10, buf, &r), DKM_ERR_FORMAT);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "row 7 has dimension 24, expected 32"));
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  free(img);
  free(path);
}

static void bad_files_are_refused_by_name(void **state) {
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  struct {
    const char *name;
    int32_t first; /* the first row's dimension field */
    size_t extra;  /* bytes after the field */
    const char *word;
  } cases[] = {
      {"dim0.fvecs", 0, 16, "dimension 0"},
      {"neg.fvecs", -3, 16, "dimension -3"},
      {"absurd.fvecs", 1 << 24, 16, "absurdly large"},
      {"trunc.fvecs", 4, 16 + 20 + 3, "truncated last row"},
      {"trunc.bvecs", 4, 4 + 8 + 1, "truncated last row"},
      {"short.fvecs", 4, 15, "truncated last row"},
      {"dim0.bvecs", 0, 16, "dimension 0"},
  };
  unsigned char img[256] = {0};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memcpy(img, &cases[i].first, 4);
    if (cases[i].extra > 16)
      memcpy(img + 20, &cases[i].first, 4); /* a valid second row's field */
    char *path = tf_path(dir, cases[i].name);
    tf_write(path, img, 4 + cases[i].extra);
    dkm_format forced = strstr(cases[i].name, "bvecs") ? DKM_FORMAT_BVECS : DKM_FORMAT_FVECS;
    tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, cases[i].word);
    tf_expect_error_as(ctx, path, forced, DKM_ERR_FORMAT, cases[i].word);
    free(path);
  }
  /* Shorter than a dimension field. */
  char *path = tf_path(dir, "tiny.fvecs");
  tf_write(path, "\x01\x00", 2);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "truncated last row");
  free(path);
  /* Empty. */
  path = tf_path(dir, "empty.fvecs");
  tf_write(path, "", 0);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "empty file");
  tf_expect_error_as(ctx, path, DKM_FORMAT_BVECS, DKM_ERR_FORMAT, "empty file");
  free(path);
  dkm_ctx_free(ctx);
}

static void allocation_failures_leak_nothing(void **state) {
  float values[6 * 9];
  for (int i = 0; i < 54; i++)
    values[i] = (float)i * 0.5f;
  size_t size;
  unsigned char *img = vecs_image(values, 6, 9, 4, NULL, &size);
  char *path = tf_path(dir, "sweep.fvecs");
  tf_write(path, img, size);
  tf_alloc_sweep(path, NULL);
  free(img);
  free(path);
  uint8_t bytes[6 * 9] = {1, 2, 3};
  img = vecs_image(bytes, 6, 9, 1, NULL, &size);
  path = tf_path(dir, "sweep.bvecs");
  tf_write(path, img, size);
  tf_alloc_sweep(path, NULL);
  free(img);
  free(path);
}

/* An fvecs file of more than 4 GiB, sparse: only the rows we read are
 * written, at their 64-bit offsets. */
static void rows_beyond_4_gib_read_back(void **state) {
  const uint32_t dim = 256;
  const uint64_t row_bytes = 4 + 4 * dim;
  const uint64_t rows = (UINT64_C(5) << 30) / row_bytes;
  const uint64_t size = rows * row_bytes;
  assert_true(size > (UINT64_C(4) << 30));
  char *path = tf_path(dir, "big.fvecs");
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, (off_t)size), 0);
  /* Row 0 (its dim sets the layout), the row that straddles 4 GiB, and the
   * last rows. */
  uint64_t straddle = (UINT64_C(4) << 30) / row_bytes;
  uint64_t which[] = {0, straddle, rows - 2, rows - 1};
  unsigned char row[4 + 4 * 256];
  for (size_t w = 0; w < 4; w++) {
    int32_t d = (int32_t)dim;
    memcpy(row, &d, 4);
    for (uint32_t j = 0; j < dim; j++) {
      float v = (float)(which[w] % 100000) + (float)j / 1024.0f;
      memcpy(row + 4 + 4 * j, &v, 4);
    }
    assert_int_equal(pwrite(fd, row, sizeof row, (off_t)(which[w] * row_bytes)), sizeof row);
  }
  assert_int_equal(close(fd), 0);

  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_source *src = tf_open(ctx, path, DKM_FORMAT_AUTO, rows, dim, DKM_DTYPE_F32, DKM_FORMAT_FVECS);
  assert_int_equal(src->bytes, size);
  float buf[2 * 256];
  const float *r;
  for (size_t w = 1; w < 4; w++) {
    assert_int_equal(dkm_source_read(ctx, src, which[w], 1, buf, &r), DKM_OK);
    for (uint32_t j = 0; j < dim; j++)
      assert_true(r[j] == (float)(which[w] % 100000) + (float)j / 1024.0f);
  }
  assert_int_equal(dkm_source_read(ctx, src, rows - 2, 2, buf, &r), DKM_OK);
  assert_true(r[dim + 7] == (float)((rows - 1) % 100000) + 7.0f / 1024.0f);
  /* A hole row has dimension 0 in its field: found, named by its row. */
  assert_int_equal(dkm_source_read(ctx, src, rows - 3, 1, buf, &r), DKM_ERR_FORMAT);
  char want[64];
  snprintf(want, sizeof want, "row %llu has dimension 0", (unsigned long long)(rows - 3));
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), want));
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  unlink(path);
  free(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fvecs_reads_back_exactly),
      cmocka_unit_test(bvecs_reads_back_exactly),
      cmocka_unit_test(row_of_another_dimension_fails_the_read),
      cmocka_unit_test(bad_files_are_refused_by_name),
      cmocka_unit_test(allocation_failures_leak_nothing),
      cmocka_unit_test(rows_beyond_4_gib_read_back),
  };
  return cmocka_run_group_tests(tests, setup, tf_teardown);
}
