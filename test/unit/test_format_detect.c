/*
 * test_format_detect.c - what every file format shares: the open errors
 * (missing file, directory, empty file, FIFO, unknown format, bad
 * arguments), detection by magic bytes before the extension, a forced format
 * overriding both, and the same rows giving the same float32 values whatever
 * the format they are stored in.
 */
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zlib.h>

#include "test_format_util.h"

static int setup(void **state) {
  (void)state;
  return tf_setup_dir("format-detect");
}

static void missing_file_is_an_io_error_with_strerror(void **state) {
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  char *path = tf_path(dir, "nope.npy");
  dkm_source *src = NULL;
  assert_int_equal(dkm_source_open_file(ctx, path, NULL, &src), DKM_ERR_IO);
  assert_null(src);
  char want[512];
  snprintf(want, sizeof want, "%s: No such file or directory", path);
  assert_string_equal(dkm_ctx_errmsg(ctx), want);
  assert_int_equal(dkm_ctx_status(ctx), DKM_ERR_IO);
  /* Same when the format is forced. */
  tf_expect_error_as(ctx, path, DKM_FORMAT_FVECS, DKM_ERR_IO, "No such file or directory");
  free(path);
  dkm_ctx_free(ctx);
}

static void directory_is_refused_and_empty_fifo_is_empty(void **state) {
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  tf_expect_error_as(ctx, dir, DKM_FORMAT_AUTO, DKM_ERR_IO, "Is a directory");
  tf_expect_error_as(ctx, dir, DKM_FORMAT_NPY, DKM_ERR_IO, "Is a directory");
  char *fifo = tf_path(dir, "pipe.fvecs");
  assert_int_equal(mkfifo(fifo, 0600), 0);
  /* Opening a FIFO for reading blocks until there is a writer: a child
   * process plays the writer, and writes nothing. A FIFO is a stream, read
   * whole (test_format_stream.c); this one holds no bytes. */
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    FILE *w = fopen(fifo, "wb");
    if (w != NULL)
      fclose(w);
    _exit(0);
  }
  tf_expect_error_as(ctx, fifo, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "empty file");
  int status;
  waitpid(pid, &status, 0);
  free(fifo);
  dkm_ctx_free(ctx);
}

static void empty_file_for_every_format(void **state) {
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  const char *names[] = {"e.npy", "e.fvecs", "e.bvecs", "e-idx3-ubyte", "e.raw", "e.unknown"};
  for (size_t i = 0; i < 6; i++) {
    char *path = tf_path(dir, names[i]);
    tf_write(path, "", 0);
    tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "empty file");
    for (int f = DKM_FORMAT_FVECS; f <= DKM_FORMAT_RAW; f++) {
      dkm_file_options opt;
      dkm_file_options_init(&opt);
      opt.format = (dkm_format)f;
      opt.raw_dim = 4;
      tf_expect_error(ctx, path, &opt, DKM_ERR_FORMAT, "empty file");
    }
    free(path);
  }
  dkm_ctx_free(ctx);
}

static void unknown_format_and_bad_arguments(void **state) {
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  char *path = tf_path(dir, "mystery.dat");
  tf_write(path, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "unknown format");
  dkm_source *src = (dkm_source *)(uintptr_t)1;
  assert_int_equal(dkm_source_open_file(ctx, NULL, NULL, &src), DKM_ERR_PARAM);
  assert_null(src);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "path is NULL"));
  assert_int_equal(dkm_source_open_file(ctx, path, NULL, NULL), DKM_ERR_PARAM);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "out is NULL"));
  assert_int_equal(dkm_source_open_file(ctx, "", NULL, &src), DKM_ERR_IO);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "No such file"));
  dkm_file_options_init(NULL); /* harmless */
  free(path);
  dkm_ctx_free(ctx);
}

/* npy, gzip and IDX magic bytes win over the name; a forced format wins
 * over both. */
static void magic_first_then_name_then_forced(void **state) {
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  float values[6] = {1.5f, -2, 3, 4, 5, 6.25f};
  unsigned char header[128];
  size_t h = tf_npy_header(header, sizeof header, 1,
                           "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
  /* An npy file named .fvecs is still npy. */
  char *path = tf_path(dir, "really-npy.fvecs");
  tf_write2(path, header, h, values, sizeof values);
  dkm_source *src = tf_open(ctx, path, DKM_FORMAT_AUTO, 2, 3, DKM_DTYPE_F32, DKM_FORMAT_NPY);
  dkm_source_close(src);
  /* Forced raw reads the header bytes as rows: the caller asked for it. */
  dkm_file_options opt;
  dkm_file_options_init(&opt);
  opt.format = DKM_FORMAT_RAW;
  opt.raw_dim = 1;
  assert_int_equal(dkm_source_open_file(ctx, path, &opt, &src), DKM_OK);
  assert_int_equal(src->rows, (h + sizeof values) / 4);
  assert_int_equal(src->format, DKM_FORMAT_RAW);
  dkm_source_close(src);
  free(path);

  /* An fvecs file named .npy: auto says bad npy magic, forced fvecs reads. */
  unsigned char fv[2 * 16];
  for (int r = 0; r < 2; r++) {
    int32_t d = 3;
    memcpy(fv + 16 * r, &d, 4);
    memcpy(fv + 16 * r + 4, values + 3 * r, 12);
  }
  path = tf_path(dir, "really-fvecs.npy");
  tf_write(path, fv, sizeof fv);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "bad npy magic");
  src = tf_open(ctx, path, DKM_FORMAT_FVECS, 2, 3, DKM_DTYPE_F32, DKM_FORMAT_FVECS);
  float *got = tf_read_all(ctx, src, 1);
  tf_assert_same(got, values, 6);
  free(got);
  dkm_source_close(src);
  free(path);

  /* A gzip file with an unrelated name is IDX by its magic. */
  unsigned char idx[4 + 8 + 6] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
  path = tf_path(dir, "images.dat");
  gzFile g = gzopen(path, "wb");
  assert_non_null(g);
  assert_int_equal(gzwrite(g, idx, sizeof idx), (int)sizeof idx);
  gzclose(g);
  src = tf_open(ctx, path, DKM_FORMAT_AUTO, 2, 3, DKM_DTYPE_U8, DKM_FORMAT_IDX);
  dkm_source_close(src);
  free(path);

  /* Upper-case and .gz-wrapped names: without gzip magic, the name under
   * the .gz decides. */
  const char *names[] = {"DATA.FVECS", "plain.fvecs.gz"};
  for (int i = 0; i < 2; i++) {
    path = tf_path(dir, names[i]);
    tf_write(path, fv, sizeof fv);
    src = tf_open(ctx, path, DKM_FORMAT_AUTO, 2, 3, DKM_DTYPE_F32, DKM_FORMAT_FVECS);
    dkm_source_close(src);
    free(path);
  }
  dkm_ctx_free(ctx);
}

/* The same float32 rows stored as fvecs, npy, raw, IDX and gzipped IDX give
 * bitwise the same values. */
static void same_rows_same_values_whatever_the_format(void **state) {
  const uint64_t rows = 57;
  const uint32_t dim = 24;
  const size_t n = rows * dim;
  float *values = dkm_test_blobs(rows, dim, 4, 0.5, 11, NULL);
  values[0] = -0.0f;
  values[1] = 1e-40f; /* subnormal */

  unsigned char *fv = malloc(rows * (4 + dim * 4));
  unsigned char *be = malloc(12 + n * 4);
  for (uint64_t r = 0; r < rows; r++) {
    int32_t d = (int32_t)dim;
    memcpy(fv + r * (4 + dim * 4), &d, 4);
    memcpy(fv + r * (4 + dim * 4) + 4, values + r * dim, dim * 4);
  }
  unsigned char hdr[12] = {
      0, 0, 0x0D, 2, 0, 0, 0, (unsigned char)rows, 0, 0, 0, (unsigned char)dim};
  memcpy(be, hdr, 12);
  for (size_t i = 0; i < n; i++) {
    uint32_t b;
    memcpy(&b, &values[i], 4);
    b = __builtin_bswap32(b);
    memcpy(be + 12 + 4 * i, &b, 4);
  }
  unsigned char npyh[128];
  size_t h = tf_npy_header(npyh, sizeof npyh, 1,
                           "{'descr': '<f4', 'fortran_order': False, 'shape': (57, 24), }");

  char *p_fvecs = tf_path(dir, "same.fvecs");
  char *p_npy = tf_path(dir, "same.npy");
  char *p_raw = tf_path(dir, "same.raw");
  char *p_idx = tf_path(dir, "same.idx");
  char *p_gz = tf_path(dir, "same.idx.gz");
  tf_write(p_fvecs, fv, rows * (4 + dim * 4));
  tf_write2(p_npy, npyh, h, values, n * 4);
  tf_write(p_raw, values, n * 4);
  tf_write(p_idx, be, 12 + n * 4);
  gzFile g = gzopen(p_gz, "wb");
  assert_int_equal(gzwrite(g, be, (unsigned)(12 + n * 4)), (int)(12 + n * 4));
  gzclose(g);

  dkm_ctx *ctx = dkm_ctx_create(NULL);
  const char *paths[] = {p_fvecs, p_npy, p_raw, p_idx, p_gz};
  dkm_format formats[] = {DKM_FORMAT_FVECS, DKM_FORMAT_NPY, DKM_FORMAT_RAW, DKM_FORMAT_IDX,
                          DKM_FORMAT_IDX};
  for (size_t i = 0; i < 5; i++) {
    dkm_file_options opt;
    dkm_file_options_init(&opt);
    opt.raw_dim = dim;
    dkm_source *src = NULL;
    assert_int_equal(dkm_source_open_file(ctx, paths[i], &opt, &src), DKM_OK);
    assert_int_equal(src->format, formats[i]);
    assert_int_equal(src->rows, rows);
    assert_int_equal(src->dim, dim);
    float *got = tf_read_all(ctx, src, 13);
    tf_assert_same(got, values, n);
    free(got);
    dkm_source_close(src);
  }
  dkm_ctx_free(ctx);
  free(p_fvecs);
  free(p_npy);
  free(p_raw);
  free(p_idx);
  free(p_gz);
  free(fv);
  free(be);
  free(values);
}

/* The detailed message of an earlier failure does not survive a success. */
static void success_clears_the_previous_error(void **state) {
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  char *path = tf_path(dir, "ok.raw");
  tf_write(path, "\x01\x02\x03\x04", 4);
  dkm_file_options opt;
  dkm_file_options_init(&opt);
  tf_expect_error(ctx, path, &opt, DKM_ERR_PARAM, "dimension");
  opt.raw_dim = 2;
  opt.raw_dtype = DKM_DTYPE_U8;
  dkm_source *src = NULL;
  assert_int_equal(dkm_source_open_file(ctx, path, &opt, &src), DKM_OK);
  assert_string_equal(dkm_ctx_errmsg(ctx), "");
  /* Out-of-range reads are refused before reaching the format. */
  float buf[4];
  const float *r;
  assert_int_equal(dkm_source_read(ctx, src, 1, 2, buf, &r), DKM_ERR_PARAM);
  dkm_source_close(src);
  free(path);
  dkm_ctx_free(ctx);
}

/* A file cut short after it was opened: the read that reaches the missing
 * bytes fails with an I/O error naming the file and the offset. */
static void file_shrinking_after_open_fails_the_read(void **state) {
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  char *path = tf_path(dir, "shrinks.fvecs");
  unsigned char img[10 * 12];
  for (int r = 0; r < 10; r++) {
    int32_t d = 2;
    float v[2] = {(float)r, -(float)r};
    memcpy(img + 12 * r, &d, 4);
    memcpy(img + 12 * r + 4, v, 8);
  }
  tf_write(path, img, sizeof img);
  dkm_source *src = tf_open(ctx, path, DKM_FORMAT_AUTO, 10, 2, DKM_DTYPE_F32, DKM_FORMAT_FVECS);
  assert_int_equal(truncate(path, 12 * 7 + 5), 0);
  float buf[30];
  const float *r;
  assert_int_equal(dkm_source_read(ctx, src, 0, 7, buf, &r), DKM_OK);
  assert_true(r[13] == -6.0f);
  assert_int_equal(dkm_source_read(ctx, src, 6, 3, buf, &r), DKM_ERR_IO);
  char want[512];
  snprintf(want, sizeof want, "%s: unexpected end of file at byte 89", path);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), want));
  dkm_source_close(src);

  /* The same with raw f32 rows, read straight into the caller's buffer. */
  dkm_file_options opt;
  dkm_file_options_init(&opt);
  opt.format = DKM_FORMAT_RAW;
  opt.raw_dim = 3;
  tf_write(path, img, sizeof img);
  assert_int_equal(dkm_source_open_file(ctx, path, &opt, &src), DKM_OK);
  assert_int_equal(truncate(path, 50), 0);
  assert_int_equal(dkm_source_read(ctx, src, 0, 10, buf, &r), DKM_ERR_IO);
  snprintf(want, sizeof want, "%s: unexpected end of file at byte 50", path);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), want));
  dkm_source_close(src);
  free(path);
  dkm_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(missing_file_is_an_io_error_with_strerror),
      cmocka_unit_test(directory_is_refused_and_empty_fifo_is_empty),
      cmocka_unit_test(empty_file_for_every_format),
      cmocka_unit_test(unknown_format_and_bad_arguments),
      cmocka_unit_test(magic_first_then_name_then_forced),
      cmocka_unit_test(same_rows_same_values_whatever_the_format),
      cmocka_unit_test(success_clears_the_previous_error),
      cmocka_unit_test(file_shrinking_after_open_fails_the_read),
  };
  return cmocka_run_group_tests(tests, setup, tf_teardown);
}
