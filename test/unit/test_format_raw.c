/*
 * test_format_raw.c - headerless rows: every dtype read back value for value,
 * detection by extension or by a given raw_dim, the errors of a missing
 * dimension or a file that is not whole rows, and a sparse 5 GiB file whose
 * last rows read back at their 64-bit offsets.
 */
#include <fcntl.h>
#include <unistd.h>

#include "test_format_util.h"

static int setup(void **state) {
  (void)state;
  return tf_setup_dir("format-raw");
}

static void each_dtype_reads_back_exactly(void **state) {
  const uint64_t rows = 19;
  const uint32_t dim = 11;
  const size_t n = rows * dim;
  uint64_t seed = 99;
  unsigned char *bytes = malloc(n * 8);
  float *want = malloc(n * sizeof(float));
  dkm_dtype dtypes[] = {DKM_DTYPE_F32, DKM_DTYPE_F16, DKM_DTYPE_F64, DKM_DTYPE_U8, DKM_DTYPE_I8};
  dkm_test_alloc st = {0};
  dkm_ctx *ctx = dkm_test_ctx(&st);
  for (size_t t = 0; t < 5; t++) {
    dkm_dtype dt = dtypes[t];
    for (size_t i = 0; i < n; i++) {
      switch (dt) {
      case DKM_DTYPE_F32: {
        float v = (float)dkm_test_normal(&seed);
        memcpy(bytes + 4 * i, &v, 4);
        want[i] = v;
        break;
      }
      case DKM_DTYPE_F16: {
        uint16_t h =
            (uint16_t)(((1 + dkm_test_rand(&seed) % 30) << 10) | (dkm_test_rand(&seed) & 0x83ff));
        memcpy(bytes + 2 * i, &h, 2);
        want[i] = tf_half_normal_value(h);
        break;
      }
      case DKM_DTYPE_F64: {
        double v = dkm_test_normal(&seed) * 1e-3;
        memcpy(bytes + 8 * i, &v, 8);
        want[i] = (float)v;
        break;
      }
      case DKM_DTYPE_U8:
        bytes[i] = (unsigned char)dkm_test_rand(&seed);
        want[i] = (float)bytes[i];
        break;
      case DKM_DTYPE_I8:
        bytes[i] = (unsigned char)dkm_test_rand(&seed);
        want[i] = (float)(int8_t)bytes[i];
        break;
      }
    }
    char name[32];
    snprintf(name, sizeof name, "rows-%s.raw", dkm_dtype_name(dt));
    char *path = tf_path(dir, name);
    tf_write(path, bytes, n * dkm_dtype_size(dt));
    dkm_file_options opt;
    dkm_file_options_init(&opt);
    opt.raw_dim = dim;
    opt.raw_dtype = dt;
    for (int forced = 0; forced < 2; forced++) {
      opt.format = forced ? DKM_FORMAT_RAW : DKM_FORMAT_AUTO;
      dkm_source *src = NULL;
      assert_int_equal(dkm_source_open_file(ctx, path, &opt, &src), DKM_OK);
      assert_int_equal(src->rows, rows);
      assert_int_equal(src->dim, dim);
      assert_int_equal(src->dtype, dt);
      assert_int_equal(src->format, DKM_FORMAT_RAW);
      assert_int_equal(src->bytes, n * dkm_dtype_size(dt));
      uint64_t blocks[] = {1, 2, 5, 19};
      for (size_t b = 0; b < 4; b++) {
        float *got = tf_read_all(ctx, src, blocks[b]);
        tf_assert_same(got, want, n);
        free(got);
      }
      float buf[3 * 11];
      const float *r;
      assert_int_equal(dkm_source_read(ctx, src, 13, 3, buf, &r), DKM_OK);
      tf_assert_same(r, want + 13 * dim, 3 * dim);
      dkm_source_close(src);
    }
    tf_alloc_sweep(path, &opt);
    free(path);
  }
  dkm_ctx_free(ctx);
  assert_int_equal(st.live, 0);
  free(bytes);
  free(want);
}

/* A raw_dim given with an unknown extension means raw rows; .bin means raw. */
static void detection_by_extension_or_dimension(void **state) {
  float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  char *bin = tf_path(dir, "x.bin");
  char *other = tf_path(dir, "x.whatever");
  tf_write(bin, v, sizeof v);
  tf_write(other, v, sizeof v);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_file_options opt;
  dkm_file_options_init(&opt);
  assert_int_equal(opt.format, DKM_FORMAT_AUTO);
  assert_int_equal(opt.raw_dim, 0);
  assert_int_equal(opt.raw_dtype, DKM_DTYPE_F32);
  /* No dimension: .bin asks for one, an unknown name is an unknown format. */
  tf_expect_error(ctx, bin, &opt, DKM_ERR_PARAM, "dimension must be given");
  tf_expect_error(ctx, other, &opt, DKM_ERR_FORMAT, "unknown format");
  opt.raw_dim = 4;
  const char *paths[2] = {bin, other};
  for (int i = 0; i < 2; i++) {
    dkm_source *src = NULL;
    assert_int_equal(dkm_source_open_file(ctx, paths[i], &opt, &src), DKM_OK);
    assert_int_equal(src->rows, 2);
    assert_int_equal(src->format, DKM_FORMAT_RAW);
    float *got = tf_read_all(ctx, src, 1);
    tf_assert_same(got, v, 8);
    free(got);
    dkm_source_close(src);
  }
  dkm_ctx_free(ctx);
  free(bin);
  free(other);
}

static void bad_parameters_and_sizes(void **state) {
  unsigned char bytes[30] = {0};
  char *path = tf_path(dir, "bad.raw");
  tf_write(path, bytes, sizeof bytes);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_file_options opt;
  dkm_file_options_init(&opt);
  opt.format = DKM_FORMAT_RAW;
  tf_expect_error(ctx, path, &opt, DKM_ERR_PARAM, "dimension must be given");
  opt.raw_dim = 4; /* 30 bytes are not whole rows of 16 */
  tf_expect_error(ctx, path, &opt, DKM_ERR_FORMAT, "truncated last row");
  opt.raw_dim = 8; /* not even one row */
  tf_expect_error(ctx, path, &opt, DKM_ERR_FORMAT, "truncated last row");
  opt.raw_dim = 3;
  opt.raw_dtype = (dkm_dtype)42;
  tf_expect_error(ctx, path, &opt, DKM_ERR_PARAM, "dtype");
  opt.raw_dtype = DKM_DTYPE_U8;
  opt.raw_dim = (1u << 20) + 1;
  tf_expect_error(ctx, path, &opt, DKM_ERR_PARAM, "absurdly large");
  opt.format = (dkm_format)99;
  opt.raw_dim = 3;
  tf_expect_error(ctx, path, &opt, DKM_ERR_PARAM, "not a file format");
  opt.format = DKM_FORMAT_MEMORY;
  tf_expect_error(ctx, path, &opt, DKM_ERR_PARAM, "not a file format");
  opt.format = DKM_FORMAT_RAW;
  opt.raw_dim = 3; /* 30 u8 = 10 rows of 3: fine */
  dkm_source *src = NULL;
  assert_int_equal(dkm_source_open_file(ctx, path, &opt, &src), DKM_OK);
  assert_int_equal(src->rows, 10);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  free(path);
}

/* A raw f32 file of 5 GiB made with ftruncate: rows and dim come out right
 * and the last rows, past 4 GiB, read back at their offsets. */
static void sparse_5_gib_file(void **state) {
  const uint32_t dim = 128;
  const uint64_t size = UINT64_C(5) << 30;
  const uint64_t rows = size / (dim * 4);
  char *path = tf_path(dir, "big.raw");
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, (off_t)size), 0);
  float row[128];
  for (uint32_t j = 0; j < dim; j++)
    row[j] = (float)j - 0.25f;
  assert_int_equal(pwrite(fd, row, sizeof row, (off_t)(size - sizeof row)), sizeof row);
  /* a row straddling nothing but sitting exactly at 4 GiB */
  assert_int_equal(pwrite(fd, row, sizeof row, (off_t)(UINT64_C(4) << 30)), sizeof row);
  assert_int_equal(close(fd), 0);

  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_file_options opt;
  dkm_file_options_init(&opt);
  opt.raw_dim = dim;
  dkm_source *src = NULL;
  assert_int_equal(dkm_source_open_file(ctx, path, &opt, &src), DKM_OK);
  assert_int_equal(src->rows, rows);
  assert_int_equal(src->dim, dim);
  assert_int_equal(src->bytes, size);
  float buf[3 * 128];
  const float *r;
  assert_int_equal(dkm_source_read(ctx, src, rows - 3, 3, buf, &r), DKM_OK);
  for (uint32_t j = 0; j < dim; j++) {
    assert_true(r[j] == 0.0f && r[dim + j] == 0.0f); /* holes read as zeros */
    assert_true(r[2 * dim + j] == (float)j - 0.25f);
  }
  uint64_t at4 = (UINT64_C(4) << 30) / (dim * 4);
  assert_int_equal(dkm_source_read(ctx, src, at4, 1, buf, &r), DKM_OK);
  tf_assert_same(r, row, dim);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  unlink(path);
  free(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(each_dtype_reads_back_exactly),
      cmocka_unit_test(detection_by_extension_or_dimension),
      cmocka_unit_test(bad_parameters_and_sizes),
      cmocka_unit_test(sparse_5_gib_file),
  };
  return cmocka_run_group_tests(tests, setup, tf_teardown);
}
