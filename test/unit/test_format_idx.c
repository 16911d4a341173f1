/*
 * test_format_idx.c - MNIST-family IDX files, plain and gzip-compressed:
 * every supported type read back value for value, detection by magic and by
 * name, sequential reads that skip forward and rewind, truncated and corrupt
 * files refused by name, no leak when allocations fail, and the real
 * Fashion-MNIST training images when the Debian package is installed.
 */
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "test_format_util.h"

#define FASHION "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

static int setup(void **state) {
  (void)state;
  return tf_setup_dir("format-idx");
}

/* An IDX image: magic, big-endian dims, then the values (already in file
 * byte order). Returns malloc'ed bytes and their size. */
static unsigned char *idx_image(unsigned char type, unsigned ndim, const uint32_t *dims,
                                const void *values, size_t value_bytes, size_t *size) {
  size_t header = 4 + 4 * ndim;
  unsigned char *img = malloc(header + value_bytes + 1);
  assert_non_null(img);
  img[0] = 0;
  img[1] = 0;
  img[2] = type;
  img[3] = (unsigned char)ndim;
  for (unsigned i = 0; i < ndim; i++) {
    img[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
    img[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
    img[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
    img[7 + 4 * i] = (unsigned char)dims[i];
  }
  if (value_bytes > 0)
    memcpy(img + header, values, value_bytes);
  *size = header + value_bytes;
  return img;
}

/* Writes bytes gzip-compressed, in `members` gzip members. */
static void write_gz(const char *path, const void *data, size_t n, int members) {
  unlink(path);
  size_t per = n / (size_t)members + 1;
  for (size_t off = 0; off < n; off += per) {
    gzFile g = gzopen(path, "ab");
    assert_non_null(g);
    size_t len = DKM_TEST_MIN(per, n - off);
    assert_int_equal(gzwrite(g, (const char *)data + off, (unsigned)len), (int)len);
    assert_int_equal(gzclose(g), Z_OK);
  }
}

/* Values for each type, stored big-endian, and what they read as. */
static void make_values(unsigned char type, size_t n, unsigned char *stored, float *want,
                        uint64_t seed) {
  for (size_t i = 0; i < n; i++) {
    switch (type) {
    case 0x08:
      stored[i] = (unsigned char)dkm_test_rand(&seed);
      want[i] = stored[i];
      break;
    case 0x09:
      stored[i] = (unsigned char)dkm_test_rand(&seed);
      want[i] = (float)(int8_t)stored[i];
      break;
    case 0x0D: {
      float v = (float)dkm_test_normal(&seed);
      uint32_t b;
      memcpy(&b, &v, 4);
      for (int k = 0; k < 4; k++)
        stored[4 * i + k] = (unsigned char)(b >> (24 - 8 * k));
      want[i] = v;
      break;
    }
    case 0x0E: {
      double v = dkm_test_normal(&seed) * 1e5;
      uint64_t b;
      memcpy(&b, &v, 8);
      for (int k = 0; k < 8; k++)
        stored[8 * i + k] = (unsigned char)(b >> (56 - 8 * k));
      want[i] = (float)v;
      break;
    }
    }
  }
}

static void every_type_plain_and_gzip(void **state) {
  const unsigned char types[] = {0x08, 0x09, 0x0D, 0x0E};
  const dkm_dtype dtypes[] = {DKM_DTYPE_U8, DKM_DTYPE_I8, DKM_DTYPE_F32, DKM_DTYPE_F64};
  const size_t sizes[] = {1, 1, 4, 8};
  const uint32_t dims[3] = {41, 3, 5}; /* 41 rows of 3x5 = 15 values */
  const uint64_t rows = 41;
  const uint32_t dim = 15;
  const size_t n = rows * dim;
  unsigned char *stored = malloc(n * 8);
  float *want = malloc(n * sizeof(float));
  dkm_test_alloc st = {0};
  dkm_ctx *ctx = dkm_test_ctx(&st);
  for (size_t t = 0; t < 4; t++) {
    make_values(types[t], n, stored, want, 100 + t);
    size_t size;
    unsigned char *img = idx_image(types[t], 3, dims, stored, n * sizes[t], &size);
    char name[64];
    /* Plain: by the MNIST name, by magic alone, and forced. Compressed: by
     * magic, in one and in three gzip members. */
    snprintf(name, sizeof name, "t%zu-idx3-ubyte", t);
    char *named = tf_path(dir, name);
    snprintf(name, sizeof name, "t%zu.data", t);
    char *magic_only = tf_path(dir, name);
    snprintf(name, sizeof name, "t%zu-idx3-ubyte.gz", t);
    char *gz1 = tf_path(dir, name);
    snprintf(name, sizeof name, "t%zu.gz", t);
    char *gz3 = tf_path(dir, name);
    tf_write(named, img, size);
    tf_write(magic_only, img, size);
    write_gz(gz1, img, size, 1);
    write_gz(gz3, img, size, 3);
    struct {
      const char *path;
      dkm_format force;
      int gz;
    } opens[] = {{named, DKM_FORMAT_AUTO, 0},     {magic_only, DKM_FORMAT_AUTO, 0},
                 {magic_only, DKM_FORMAT_IDX, 0}, {gz1, DKM_FORMAT_AUTO, 1},
                 {gz1, DKM_FORMAT_IDX, 1},        {gz3, DKM_FORMAT_AUTO, 1}};
    for (size_t o = 0; o < sizeof opens / sizeof opens[0]; o++) {
      dkm_source *src =
          tf_open(ctx, opens[o].path, opens[o].force, rows, dim, dtypes[t], DKM_FORMAT_IDX);
      assert_int_equal((src->flags & DKM_SOURCE_SEQUENTIAL) != 0, opens[o].gz);
      uint64_t blocks[] = {1, 6, 41};
      for (size_t b = 0; b < 3; b++) {
        float *got = tf_read_all(ctx, src, blocks[b]);
        tf_assert_same(got, want, n);
        free(got);
      }
      /* Forward skips and a read behind the position (a rewind for gzip). */
      float buf[4 * 15];
      const float *r;
      uint64_t firsts[] = {3, 17, 37, 2, 0, 40};
      for (size_t k = 0; k < 6; k++) {
        uint64_t count = DKM_TEST_MIN(4, rows - firsts[k]);
        assert_int_equal(dkm_source_read(ctx, src, firsts[k], count, buf, &r), DKM_OK);
        tf_assert_same(r, want + firsts[k] * dim, count * dim);
      }
      dkm_source_close(src);
    }
    tf_alloc_sweep(named, NULL);
    tf_alloc_sweep(gz3, NULL);
    free(img);
    free(named);
    free(magic_only);
    free(gz1);
    free(gz3);
  }
  dkm_ctx_free(ctx);
  assert_int_equal(st.live, 0);
  free(stored);
  free(want);
}

/* A 1-D IDX (MNIST labels) is rows of one value. */
static void labels_are_rows_of_one(void **state) {
  unsigned char labels[7] = {5, 0, 4, 1, 9, 2, 1};
  float want[7] = {5, 0, 4, 1, 9, 2, 1};
  uint32_t dims[1] = {7};
  size_t size;
  unsigned char *img = idx_image(0x08, 1, dims, labels, 7, &size);
  char *path = tf_path(dir, "labels-idx1-ubyte");
  tf_write(path, img, size);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_source *src = tf_open(ctx, path, DKM_FORMAT_AUTO, 7, 1, DKM_DTYPE_U8, DKM_FORMAT_IDX);
  assert_int_equal(src->bytes, size);
  float *got = tf_read_all(ctx, src, 3);
  tf_assert_same(got, want, 7);
  free(got);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  free(img);
  free(path);
}

static void bad_plain_files_are_refused_by_name(void **state) {
  unsigned char values[64] = {0};
  uint32_t dims3[3] = {4, 2, 2};
  uint32_t zero_rows[2] = {0, 4};
  uint32_t zero_dim[3] = {4, 0, 2};
  uint32_t absurd[3] = {1, 2048, 2048};
  struct {
    const char *name;
    unsigned char type;
    unsigned ndim;
    const uint32_t *dims;
    size_t value_bytes;
    const char *word;
  } cases[] = {
      {"int16-idx3-ubyte", 0x0B, 3, dims3, 32, "unsupported type 0x0b"},
      {"int32-idx3-ubyte", 0x0C, 3, dims3, 64, "unsupported type 0x0c"},
      {"ndim0-idx0-ubyte", 0x08, 0, dims3, 0, "0 dimensions"},
      {"rows0-idx2-ubyte", 0x08, 2, zero_rows, 0, "0 rows"},
      {"dim0-idx3-ubyte", 0x08, 3, zero_dim, 0, "dimension 2 of 3 is 0"},
      {"absurd-idx3-ubyte", 0x08, 3, absurd, 16, "absurdly large"},
      {"short-idx3-ubyte", 0x08, 3, dims3, 15, "truncated: expected 4 rows of 4 values"},
      {"long-idx3-ubyte", 0x08, 3, dims3, 17, "disagrees with the file size"},
  };
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t size;
    unsigned char *img =
        idx_image(cases[i].type, cases[i].ndim, cases[i].dims, values, cases[i].value_bytes, &size);
    char *path = tf_path(dir, cases[i].name);
    tf_write(path, img, size);
    tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, cases[i].word);
    tf_expect_error_as(ctx, path, DKM_FORMAT_IDX, DKM_ERR_FORMAT, cases[i].word);
    /* And the same bytes compressed: the same checks, made at open too. */
    {
      char gzname[64];
      snprintf(gzname, sizeof gzname, "%s.gz", cases[i].name);
      char *gz = tf_path(dir, gzname);
      write_gz(gz, img, size, 1);
      tf_expect_error_as(ctx, gz, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, cases[i].word);
      free(gz);
    }
    free(img);
    free(path);
  }
  /* Bad magic bytes, by name and forced. */
  char *path = tf_path(dir, "magic-idx3-ubyte");
  tf_write(path, "\x01\x02\x08\x03\x00\x00\x00\x01", 8);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "bad IDX magic");
  tf_expect_error_as(ctx, path, DKM_FORMAT_IDX, DKM_ERR_FORMAT, "bad IDX magic");
  free(path);
  path = tf_path(dir, "tiny-idx1-ubyte");
  tf_write(path, "\x00\x00", 2);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "bad IDX magic");
  free(path);
  path = tf_path(dir, "header-idx3-ubyte");
  tf_write(path, "\x00\x00\x08\x03\x00\x00\x00\x01\x00", 9);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "truncated IDX header");
  free(path);
  dkm_ctx_free(ctx);
}

static void bad_gzip_files_are_refused_by_name(void **state) {
  uint32_t dims[2] = {100, 12};
  unsigned char values[100 * 12];
  uint64_t seed = 5;
  for (size_t i = 0; i < sizeof values; i++)
    values[i] = (unsigned char)dkm_test_rand(&seed);
  size_t size;
  /* Data for 97.5 rows where the header promises 100: the open decompresses
   * the whole file, so it fails as for the same bytes uncompressed. */
  unsigned char *img = idx_image(0x08, 2, dims, values, 97 * 12 + 6, &size);
  char *path = tf_path(dir, "short.gz");
  write_gz(path, img, size, 1);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT,
                     "truncated: expected 100 rows of 12 values (1200 bytes of data), data ends "
                     "in row 97");
  free(path);
  free(img);

  /* More data than the header gives. */
  unsigned char more[100 * 12 + 5];
  memcpy(more, values, sizeof values);
  memset(more + sizeof values, 7, 5);
  img = idx_image(0x08, 2, dims, more, sizeof more, &size);
  path = tf_path(dir, "long.gz");
  write_gz(path, img, size, 1);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT,
                     "IDX shape disagrees with the file size");
  free(path);
  free(img);

  /* The compressed bytes cut short: the gzip stream itself is truncated. */
  img = idx_image(0x08, 2, dims, values, sizeof values, &size);
  path = tf_path(dir, "cut.gz");
  write_gz(path, img, size, 1);
  FILE *f = fopen(path, "rb");
  unsigned char gz[4096];
  size_t gz_size = fread(gz, 1, sizeof gz, f);
  fclose(f);
  assert_true(gz_size > 100 && gz_size < sizeof gz);
  tf_write(path, gz, gz_size - 30);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "corrupt gzip data");
  /* Only the 4-byte length in the trailer missing. */
  tf_write(path, gz, gz_size - 4);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "truncated .gz file");

  /* Corrupt deflate data in the middle. */
  unsigned char bad[4096];
  memcpy(bad, gz, gz_size);
  for (size_t i = 40; i < 80; i++)
    bad[i] ^= 0x5a;
  tf_write(path, bad, gz_size);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "corrupt gzip data");

  /* A damaged gzip header: the very first bytes after the magic. */
  memcpy(bad, gz, gz_size);
  bad[2] = 0x07; /* compression method 7 does not exist */
  tf_write(path, bad, gz_size);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "corrupt gzip data");
  /* Only the magic. */
  tf_write(path, "\x1f\x8b", 2);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "corrupt gzip data");
  free(path);

  /* Gzip of something that is no known format: gzip no longer implies IDX
   * (every format may be compressed), so it is unknown, or bad IDX when
   * IDX is asked for. */
  path = tf_path(dir, "notidx.gz");
  write_gz(path, "hello, world, this is not an IDX file", 37, 1);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "unknown format");
  tf_expect_error_as(ctx, path, DKM_FORMAT_IDX, DKM_ERR_FORMAT, "bad IDX magic");
  free(path);
  path = tf_path(dir, "tiny-idx1-ubyte.gz");
  write_gz(path, "\x00\x00", 2, 1);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "bad IDX magic");
  write_gz(path, "\x00\x00\x08\x03\x00", 5, 1);
  tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT, "truncated IDX header");
  free(path);
  dkm_ctx_free(ctx);
  free(img);
}

/* Appends n copies of byte c to the file at path. */
static void append_bytes(const char *path, int c, size_t n) {
  FILE *f = fopen(path, "ab");
  assert_non_null(f);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(fputc(c, f), c);
  assert_int_equal(fclose(f), 0);
}

/* Reads every row of a gzip IDX file of 100 rows of 12 bytes (in blocks of
 * 7, then once more after a rewind) and compares with values. */
static void expect_rows(dkm_ctx *ctx, const char *path, const unsigned char *values) {
  dkm_source *src = tf_open(ctx, path, DKM_FORMAT_AUTO, 100, 12, DKM_DTYPE_U8, DKM_FORMAT_IDX);
  for (int pass = 0; pass < 2; pass++) {
    float *got = tf_read_all(ctx, src, 7);
    for (size_t i = 0; i < 100 * 12; i++)
      assert_true(got[i] == (float)values[i]);
    free(got);
  }
  dkm_source_close(src);
}

/* gzip -dc reads several members one after the other and ignores zero
 * bytes after the last (tape drives and some archivers pad files with
 * them); so do we. Other bytes after the data are trailing garbage: gzip
 * warns and exits 2, we refuse the file by name. */
static void gzip_members_and_zero_padding_are_read_like_gzip(void **state) {
  uint32_t dims[2] = {100, 12};
  unsigned char values[100 * 12];
  uint64_t seed = 11;
  for (size_t i = 0; i < sizeof values; i++)
    values[i] = (unsigned char)dkm_test_rand(&seed);
  size_t size;
  unsigned char *img = idx_image(0x08, 2, dims, values, sizeof values, &size);
  dkm_test_alloc st = {0};
  dkm_ctx *ctx = dkm_test_ctx(&st);
  char *path = tf_path(dir, "padded.gz");
  /* A little padding, and more than one read of the compressed input. */
  const size_t pads[] = {1, 512, 200000};
  for (int members = 1; members <= 3; members += 2) {
    for (size_t p = 0; p < sizeof pads / sizeof pads[0]; p++) {
      write_gz(path, img, size, members);
      append_bytes(path, 0, pads[p]);
      expect_rows(ctx, path, values);
    }
  }
  tf_alloc_sweep(path, NULL);

  /* A non-zero byte after the data, right after it or after zeros (the
   * latter also past the first 64 KiB read). */
  const size_t zeros[] = {0, 3, 100000};
  const int junk[] = {'x', 0x1f};
  for (size_t z = 0; z < sizeof zeros / sizeof zeros[0]; z++) {
    for (size_t j = 0; j < sizeof junk / sizeof junk[0]; j++) {
      if (junk[j] == 0x1f && zeros[z] == 0)
        continue; /* that is the start of a (truncated) member */
      write_gz(path, img, size, 1);
      append_bytes(path, 0, zeros[z]);
      append_bytes(path, junk[j], 1);
      tf_expect_error_as(ctx, path, DKM_FORMAT_AUTO, DKM_ERR_FORMAT,
                         "trailing garbage after the gzip data");
    }
  }
  free(path);
  free(img);
  dkm_ctx_free(ctx);
  assert_int_equal(st.live, 0);
}

/* The real file: 60000 images of 28x28 bytes. Compared with an independent
 * read through zlib's gzread. */
static void fashion_mnist_when_installed(void **state) {
  if (access(FASHION, R_OK) != 0) {
    skip();
    return;
  }
  gzFile g = gzopen(FASHION, "rb");
  assert_non_null(g);
  const size_t n = (size_t)60000 * 784;
  unsigned char *bytes = malloc(16 + n);
  assert_int_equal(gzread(g, bytes, (unsigned)(16 + n)), (int)(16 + n));
  gzclose(g);
  dkm_test_alloc st = {0};
  dkm_ctx *ctx = dkm_test_ctx(&st);
  dkm_source *src =
      tf_open(ctx, FASHION, DKM_FORMAT_AUTO, 60000, 784, DKM_DTYPE_U8, DKM_FORMAT_IDX);
  assert_true(src->flags & DKM_SOURCE_SEQUENTIAL);
  struct stat sb;
  assert_int_equal(stat(FASHION, &sb), 0);
  assert_int_equal(src->bytes, (uint64_t)sb.st_size);
  float *got = tf_read_all(ctx, src, 4093);
  for (size_t i = 0; i < n; i++) {
    if (got[i] != (float)bytes[16 + i])
      fail_msg("value %zu: %g != %u", i, (double)got[i], bytes[16 + i]);
  }
  /* A rewind after the end. */
  float buf[2 * 784];
  const float *r;
  assert_int_equal(dkm_source_read(ctx, src, 12345, 2, buf, &r), DKM_OK);
  for (size_t i = 0; i < 2 * 784; i++)
    assert_true(r[i] == (float)bytes[16 + 12345 * 784 + i]);
  free(got);
  free(bytes);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  assert_int_equal(st.live, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_type_plain_and_gzip),
      cmocka_unit_test(labels_are_rows_of_one),
      cmocka_unit_test(bad_plain_files_are_refused_by_name),
      cmocka_unit_test(bad_gzip_files_are_refused_by_name),
      cmocka_unit_test(gzip_members_and_zero_padding_are_read_like_gzip),
      cmocka_unit_test(fashion_mnist_when_installed),
  };
  return cmocka_run_group_tests(tests, setup, tf_teardown);
}
