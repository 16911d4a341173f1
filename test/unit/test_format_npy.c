/*
 * test_format_npy.c - numpy .npy files: every supported dtype and header
 * version read back value for value, auto-detection and forced format, and
 * every malformed header refused with a message naming the file and the
 * problem.
 */
#include <sys/stat.h>

#include "test_format_util.h"

static int setup(void **state) {
  (void)state;
  return tf_setup_dir("format-npy");
}

/* Writes an npy with the given dict and data bytes; returns the path. */
static char *write_npy(const char *name, int major, const char *dict, const void *data,
                       size_t nbytes) {
  unsigned char header[4096];
  size_t h = tf_npy_header(header, sizeof header, major, dict);
  char *path = tf_path(dir, name);
  tf_write2(path, header, h, data, nbytes);
  return path;
}

static void check_npy(const char *name, int major, const char *descr, dkm_dtype dtype,
                      const void *data, size_t elem, const float *want, uint64_t rows,
                      uint32_t dim) {
  char dict[256];
  snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%llu, %u), }",
           descr, (unsigned long long)rows, dim);
  char *path = write_npy(name, major, dict, data, (size_t)(rows * dim) * elem);
  dkm_test_alloc state = {0};
  dkm_ctx *ctx = dkm_test_ctx(&state);
  dkm_format forms[2] = {DKM_FORMAT_AUTO, DKM_FORMAT_NPY};
  for (int f = 0; f < 2; f++) {
    dkm_source *src = tf_open(ctx, path, forms[f], rows, dim, dtype, DKM_FORMAT_NPY);
    assert_int_equal(src->flags & DKM_SOURCE_SEQUENTIAL, 0);
    /* Blocks of 1, 7 (odd), and everything at once. */
    uint64_t blocks[3] = {1, 7, rows};
    for (int b = 0; b < 3; b++) {
      float *got = tf_read_all(ctx, src, blocks[b]);
      tf_assert_same(got, want, (size_t)(rows * dim));
      free(got);
    }
    /* A block at an odd offset, read after a later one. */
    float buf[64 * 3];
    const float *r;
    assert_int_equal(dkm_source_read(ctx, src, rows - 3, 3, buf, &r), DKM_OK);
    tf_assert_same(r, want + (rows - 3) * dim, 3 * dim);
    assert_int_equal(dkm_source_read(ctx, src, 5, 2, buf, &r), DKM_OK);
    tf_assert_same(r, want + 5 * dim, 2 * dim);
    dkm_source_close(src);
  }
  dkm_ctx_free(ctx);
  assert_int_equal(state.live, 0);
  free(path);
}

static void every_dtype_reads_back_exactly(void **state) {
  const uint64_t rows = 23;
  const uint32_t dim = 5;
  const size_t n = rows * dim;
  uint64_t seed = 42;
  float f32[23 * 5], want[23 * 5];
  uint16_t f16[23 * 5];
  double f64[23 * 5];
  uint8_t u8[23 * 5];
  int8_t i8[23 * 5];

  for (size_t i = 0; i < n; i++)
    f32[i] = (float)dkm_test_normal(&seed) * 100.0f;
  f32[3] = NAN; /* delivered as is: the engine, not the format, checks */
  f32[4] = -INFINITY;
  check_npy("f4.npy", 1, "<f4", DKM_DTYPE_F32, f32, 4, f32, rows, dim);

  for (size_t i = 0; i < n; i++) {
    /* normal halves only: exponent 1..30 */
    uint16_t e = (uint16_t)(1 + dkm_test_rand(&seed) % 30);
    f16[i] =
        (uint16_t)((dkm_test_rand(&seed) & 0x8000) | (e << 10) | (dkm_test_rand(&seed) & 0x3ff));
    want[i] = tf_half_normal_value(f16[i]);
  }
  check_npy("f2.npy", 1, "<f2", DKM_DTYPE_F16, f16, 2, want, rows, dim);

  for (size_t i = 0; i < n; i++) {
    f64[i] = dkm_test_normal(&seed) * 1e3;
    want[i] = (float)f64[i];
  }
  check_npy("f8.npy", 2, "<f8", DKM_DTYPE_F64, f64, 8, want, rows, dim);

  for (size_t i = 0; i < n; i++) {
    u8[i] = (uint8_t)dkm_test_rand(&seed);
    want[i] = (float)u8[i];
  }
  check_npy("u1.npy", 3, "|u1", DKM_DTYPE_U8, u8, 1, want, rows, dim);

  for (size_t i = 0; i < n; i++) {
    i8[i] = (int8_t)dkm_test_rand(&seed);
    want[i] = (float)i8[i];
  }
  check_npy("i1.npy", 1, "|i1", DKM_DTYPE_I8, i8, 1, want, rows, dim);
}

static void versions_and_header_spellings(void **state) {
  float data[6] = {1, 2, 3, 4, 5, 6};
  const char *dicts[] = {
      "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }",
      "{\"shape\": (3,2), \"fortran_order\": False, \"descr\": \"<f4\"}",
      "{'descr':'<f4','fortran_order':False,'shape':(3L, 2L)}",
      /* A Python comment after the dict, as diskmeans train writes the
       * metric of its centroids (numpy.load skips it too). */
      "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), } # diskmeans metric=ip",
  };
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  for (int major = 1; major <= 3; major++) {
    for (size_t d = 0; d < sizeof dicts / sizeof dicts[0]; d++) {
      char name[64];
      snprintf(name, sizeof name, "v%d-%zu.data", major, d); /* no npy extension: magic only */
      char *path = write_npy(name, major, dicts[d], data, sizeof data);
      dkm_source *src = tf_open(ctx, path, DKM_FORMAT_AUTO, 3, 2, DKM_DTYPE_F32, DKM_FORMAT_NPY);
      float *got = tf_read_all(ctx, src, 2);
      tf_assert_same(got, data, 6);
      free(got);
      dkm_source_close(src);
      free(path);
    }
  }
  dkm_ctx_free(ctx);
}

static void source_bytes_is_the_file_size(void **state) {
  uint8_t data[10 * 4] = {0};
  char *path =
      write_npy("size.npy", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (10, 4), }", data,
                sizeof data);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_source *src = tf_open(ctx, path, DKM_FORMAT_AUTO, 10, 4, DKM_DTYPE_U8, DKM_FORMAT_NPY);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(src->bytes, (uint64_t)sb.st_size);
  assert_int_equal(src->bytes, 128 + sizeof data); /* the header pads to 64 bytes */
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  free(path);
}

/* One bad file per problem, each with the word its message must contain. */
static void bad_headers_are_refused_by_name(void **state) {
  float data[12] = {0};
  struct {
    const char *name;
    const char *dict;
    size_t nbytes;
    const char *word;
  } cases[] = {
      {"fortran.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4), }", 48, "Fortran"},
      {"bigendian.npy", "{'descr': '>f4', 'fortran_order': False, 'shape': (3, 4), }", 48,
       "big-endian"},
      {"int32.npy", "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 4), }", 48,
       "unsupported npy dtype"},
      {"struct.npy", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3, 4), }", 48,
       "structured"},
      {"oned.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (12,), }", 48, "1-D"},
      {"threed.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2, 2), }", 48, "3-D"},
      {"zerod.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4, "0-D"},
      {"short.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 44,
       "disagrees with the file size"},
      {"long.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }", 48,
       "disagrees with the file size"},
      {"huge.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999, 4), }",
       48, "disagrees with the file size"},
      {"norows.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }", 0, "no rows"},
      {"dim0.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 0), }", 0, "dimension 0"},
      {"bigdim.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2000000), }", 48,
       "absurdly large"},
      {"nokey.npy", "{'descr': '<f4', 'shape': (3, 4), }", 48, "missing key 'fortran_order'"},
      {"extrakey.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), 'x': 1}", 48,
       "unexpected key"},
      {"garbage.npy", "not a dict at all", 48, "bad npy header"},
      {"badorder.npy", "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (3, 4), }", 48,
       "fortran_order"},
      {"nocolon.npy", "{'descr' '<f4', 'fortran_order': False, 'shape': (3, 4), }", 48,
       "expected ':'"},
      {"unquoted.npy", "{'descr': <f4, 'fortran_order': False, 'shape': (3, 4), }", 48,
       "expected a quoted string"},
      {"unterminated.npy", "{'descr': '<f4, 'fortran_order': False, 'shape': (3, 4) }", 48,
       "bad npy header"},
      /* 52 characters: the padding after it is one space and the newline */
      {"endless.npy", "{'fortran_order': False, 'shape': (3, 4), 'descr': '", 48,
       "unterminated string"},
      {"longstring.npy", "{'descr': '<f4-----------------------------', }", 48, "string too long"},
      {"list.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': [3, 4], }", 48,
       "shape is not a tuple"},
      {"negative.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, -4), }", 48,
       "non-negative integers"},
      {"open.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4 }", 48,
       "expected ',' or ')'"},
      {"bignum.npy",
       "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 99999999999999999999), }", 48,
       "shape value too large"},
      {"manydims.npy",
       "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
       "1,1,1,1,1,1,1,1,1,1,1,1,1), }",
       48, "too many dimensions"},
      {"nocomma.npy", "{'descr': '<f4' 'fortran_order': False, 'shape': (3, 4), }", 48,
       "expected ',' or '}'"},
      {"overflow.npy",
       "{'descr': '<f8', 'fortran_order': False, 'shape': (9223372036854775807, 4), }", 48,
       "overflows 64 bits"},
      {"native.npy", "{'descr': '=f4', 'fortran_order': False, 'shape': (3, 4), }", 48,
       "byte order must be '<'"},
  };
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *path = write_npy(cases[i].name, 1, cases[i].dict, data, cases[i].nbytes);
    tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, cases[i].word);
    tf_expect_error_as(ctx, path, DKM_FORMAT_NPY, DKM_ERR_FORMAT, cases[i].word);
    free(path);
  }
  dkm_ctx_free(ctx);
}

static void bad_magic_version_and_lengths(void **state) {
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  unsigned char header[256];
  size_t h = tf_npy_header(header, sizeof header, 1,
                           "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }");
  float one = 1;

  /* .npy by name but not by magic: the npy parser says "magic". */
  char *path = tf_path(dir, "magic.npy");
  unsigned char bad[128];
  memcpy(bad, header, h);
  bad[1] = 'X';
  tf_write2(path, bad, h, &one, 4);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "magic");
  tf_expect_error_as(ctx, path, DKM_FORMAT_NPY, DKM_ERR_FORMAT, "magic");
  free(path);

  path = tf_path(dir, "tiny.npy");
  tf_write(path, "\x93NUM", 4);
  tf_expect_error_as(ctx, path, DKM_FORMAT_NPY, DKM_ERR_FORMAT, "magic");
  free(path);

  path = tf_path(dir, "version.npy");
  memcpy(bad, header, h);
  bad[6] = 4;
  tf_write2(path, bad, h, &one, 4);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "version 4.0");
  free(path);

  /* The header length field points past the end of the file. */
  path = tf_path(dir, "headerlen.npy");
  memcpy(bad, header, h);
  bad[8] = 0xff;
  bad[9] = 0x7f;
  tf_write2(path, bad, h, &one, 4);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "header longer than the file");
  free(path);

  /* A header over the 64 KiB limit, though within the file. */
  path = tf_path(dir, "hugeheader.npy");
  {
    size_t big = 70000;
    char *dict = malloc(big + 1);
    memset(dict, ' ', big);
    const char *d = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }";
    memcpy(dict, d, strlen(d));
    dict[big] = '\0';
    unsigned char *img = malloc(big + 128);
    size_t hh = tf_npy_header(img, big + 128, 2, dict);
    tf_write2(path, img, hh, &one, 4);
    free(img);
    free(dict);
  }
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "too long (limit 65536)");
  free(path);

  /* Version 2 with a header length field cut short. */
  path = tf_path(dir, "v2cut.npy");
  tf_write(path, "\x93NUMPY\x02\x00\x10\x00", 10);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "header longer than the file");
  free(path);
  dkm_ctx_free(ctx);
}

static void allocation_failures_leak_nothing(void **state) {
  float data[40];
  for (int i = 0; i < 40; i++)
    data[i] = (float)i;
  char *path =
      write_npy("sweep.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (8, 5), }", data,
                sizeof data);
  tf_alloc_sweep(path, NULL);
  free(path);
  uint16_t half[40] = {0};
  path = write_npy("sweep16.npy", 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (8, 5), }",
                   half, sizeof half);
  tf_alloc_sweep(path, NULL);
  /* A bad header after the allocations: still nothing leaked. */
  free(path);
  path = write_npy("sweepbad.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (9, 5), }",
                   data, sizeof data);
  dkm_test_alloc st = {0};
  dkm_ctx *ctx = dkm_test_ctx(&st);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "disagrees");
  dkm_ctx_free(ctx);
  assert_int_equal(st.live, 0);
  free(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_dtype_reads_back_exactly),
      cmocka_unit_test(versions_and_header_spellings),
      cmocka_unit_test(source_bytes_is_the_file_size),
      cmocka_unit_test(bad_headers_are_refused_by_name),
      cmocka_unit_test(bad_magic_version_and_lengths),
      cmocka_unit_test(allocation_failures_leak_nothing),
  };
  return cmocka_run_group_tests(tests, setup, tf_teardown);
}
