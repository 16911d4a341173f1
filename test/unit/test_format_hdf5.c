/*
 * test_format_hdf5.c - HDF5 sources: the values of every element type as
 * written through libhdf5's C API, the dataset choice, allocation failures,
 * and several sources read at once from several threads. libhdf5 is not
 * thread-safe, so hdf5.c serialises every call into it; that last test
 * checks that concurrent use works and that our own state is race-free
 * (under ThreadSanitizer), but it cannot prove the lock necessary: libhdf5
 * is not instrumented, and without the lock the test still passed on the
 * machine it was written on.
 */
#include <pthread.h>

#include <hdf5.h>

#include "test_format_util.h"

enum { ROWS = 500, DIM = 9 };

static int setup(void **state) {
  (void)state;
  return tf_setup_dir("format-hdf5");
}

/* Writes a 2-D dataset of ROWS x DIM elements of file type ftype, from
 * memory of type mtype, chunked when chunk_rows > 0. */
static void write_dataset(hid_t file, const char *name, hid_t ftype, hid_t mtype, const void *data,
                          hsize_t chunk_rows) {
  hsize_t dims[2] = {ROWS, DIM};
  hid_t space = H5Screate_simple(2, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (chunk_rows > 0) {
    hsize_t chunk[2] = {chunk_rows, DIM};
    assert_true(H5Pset_chunk(dcpl, 2, chunk) >= 0);
    assert_true(H5Pset_deflate(dcpl, 4) >= 0);
  }
  hid_t d = H5Dcreate2(file, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  assert_true(d >= 0);
  assert_true(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
  H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
}

/* IEEE binary16 with the given byte order, as a libhdf5 type. */
static hid_t half(H5T_order_t order) {
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  assert_true(H5Tset_fields(t, 15, 10, 5, 0, 10) >= 0);
  assert_true(H5Tset_size(t, 2) >= 0);
  assert_true(H5Tset_ebias(t, 15) >= 0);
  assert_true(H5Tset_order(t, order) >= 0);
  return t;
}

static float *values_f32;
static uint16_t *values_f16; /* the same values as binary16 bits (exact) */
static unsigned char *values_u8;
static char *h5_path;

/* One file with a dataset per element type and layout. */
static void make_file(void) {
  values_f32 = malloc(ROWS * DIM * sizeof(float));
  values_f16 = malloc(ROWS * DIM * sizeof(uint16_t));
  values_u8 = malloc(ROWS * DIM);
  uint64_t seed = 9;
  for (int i = 0; i < ROWS * DIM; i++) {
    unsigned v = (unsigned)(dkm_test_rand(&seed) % 256);
    values_u8[i] = (unsigned char)v;
    values_f32[i] = (float)v;
    /* v in [0, 255]: binary16 of an integer below 2048 is exact. */
    uint16_t h = 0;
    if (v != 0) {
      int e = 31 - __builtin_clz(v);
      h = (uint16_t)(((e + 15) << 10) | ((v << (10 - e)) & 0x3ff));
    }
    values_f16[i] = h;
  }
  h5_path = tf_path(dir, "types.h5");
  hid_t file = H5Fcreate(h5_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(file >= 0);
  write_dataset(file, "train", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, values_f32, 0);
  write_dataset(file, "f32be_chunked", H5T_IEEE_F32BE, H5T_NATIVE_FLOAT, values_f32, 37);
  write_dataset(file, "f64", H5T_IEEE_F64LE, H5T_NATIVE_FLOAT, values_f32, 0);
  hid_t h_le = half(H5T_ORDER_LE), h_be = half(H5T_ORDER_BE);
  write_dataset(file, "f16", h_le, h_le, values_f16, 0);
  write_dataset(file, "f16be_chunked", h_be, h_le, values_f16, 64);
  H5Tclose(h_le);
  H5Tclose(h_be);
  write_dataset(file, "u8", H5T_STD_U8LE, H5T_NATIVE_UCHAR, values_u8, 0);
  hid_t g = H5Gcreate2(file, "group", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  write_dataset(g, "i8", H5T_STD_I8LE, H5T_NATIVE_SCHAR, values_u8, 100); /* bits as is */
  H5Gclose(g);
  H5Fclose(file);
}

static dkm_source *open_dataset(dkm_ctx *ctx, const char *dataset) {
  dkm_file_options opt;
  dkm_file_options_init(&opt);
  opt.dataset = dataset;
  dkm_source *src = NULL;
  dkm_status st = dkm_source_open_file(ctx, h5_path, &opt, &src);
  if (st != DKM_OK)
    fail_msg("%s %s: %s", h5_path, dataset ? dataset : "(default)", dkm_ctx_errmsg(ctx));
  assert_int_equal(src->format, DKM_FORMAT_HDF5);
  assert_int_equal(src->rows, ROWS);
  assert_int_equal(src->dim, DIM);
  assert_int_equal(src->flags & DKM_SOURCE_SEQUENTIAL, 0);
  return src;
}

/* Every type and layout reads the values written, in any block size and
 * order; the default dataset is train. */
static void every_type_and_layout_reads_the_values(void **state) {
  make_file();
  struct {
    const char *name;
    dkm_dtype dtype;
  } cases[] = {{NULL, DKM_DTYPE_F32},      {"f32be_chunked", DKM_DTYPE_F32}, {"f64", DKM_DTYPE_F64},
               {"f16", DKM_DTYPE_F16},     {"f16be_chunked", DKM_DTYPE_F16}, {"u8", DKM_DTYPE_U8},
               {"/group/i8", DKM_DTYPE_I8}};
  float *want_i8 = malloc(ROWS * DIM * sizeof(float));
  for (int i = 0; i < ROWS * DIM; i++)
    want_i8[i] = (float)(signed char)values_u8[i];
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    dkm_source *src = open_dataset(ctx, cases[c].name);
    assert_int_equal(src->dtype, cases[c].dtype);
    const float *want = cases[c].dtype == DKM_DTYPE_I8 ? want_i8 : values_f32;
    for (uint64_t block = 1; block <= 500; block += 166) {
      float *got = tf_read_all(ctx, src, block);
      tf_assert_same(got, want, ROWS * DIM);
      free(got);
    }
    float buf[3 * DIM];
    const float *r;
    assert_int_equal(dkm_source_read(ctx, src, 420, 3, buf, &r), DKM_OK);
    tf_assert_same(r, want + 420 * DIM, 3 * DIM);
    assert_int_equal(dkm_source_read(ctx, src, 5, 3, buf, &r), DKM_OK);
    tf_assert_same(r, want + 5 * DIM, 3 * DIM);
    dkm_source_close(src);
  }
  /* Seven 2-D datasets: naming one that is not there lists them. */
  dkm_file_options opt;
  dkm_file_options_init(&opt);
  opt.dataset = "nope";
  tf_expect_error(ctx, h5_path, &opt, DKM_ERR_FORMAT, "no dataset 'nope' in the file (datasets: ");
  dkm_ctx_free(ctx);
  free(want_i8);
}

/* Every allocation of ours failing in turn: clean failures, nothing kept. */
static void allocation_failures_are_clean(void **state) {
  dkm_file_options opt;
  dkm_file_options_init(&opt);
  tf_alloc_sweep(h5_path, &opt);
  opt.dataset = "f16be_chunked";
  tf_alloc_sweep(h5_path, &opt);
}

typedef struct reader {
  const char *dataset;
  int ok;
} reader;

static void *read_many_times(void *arg) {
  reader *r = arg;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  r->ok = ctx != NULL;
  for (int pass = 0; pass < 20 && r->ok; pass++) {
    dkm_file_options opt;
    dkm_file_options_init(&opt);
    opt.dataset = r->dataset;
    dkm_source *src = NULL;
    if (dkm_source_open_file(ctx, h5_path, &opt, &src) != DKM_OK) {
      r->ok = 0;
      break;
    }
    float buf[50 * DIM];
    for (uint64_t first = 0; first < ROWS && r->ok; first += 50) {
      const float *rows;
      r->ok = dkm_source_read(ctx, src, first, 50, buf, &rows) == DKM_OK &&
              memcmp(rows, values_f32 + first * DIM, sizeof buf) == 0;
    }
    dkm_source_close(src);
  }
  dkm_ctx_free(ctx);
  return NULL;
}

/* Sources of one file opened, read and closed by four threads at once. */
static void sources_in_several_threads(void **state) {
  reader r[4] = {{"train", 0}, {"f16", 0}, {"f32be_chunked", 0}, {"u8", 0}};
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&t[i], NULL, read_many_times, &r[i]), 0);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_true(r[i].ok);
  }
  free(values_f32);
  free(values_f16);
  free(values_u8);
  free(h5_path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_type_and_layout_reads_the_values),
      cmocka_unit_test(allocation_failures_are_clean),
      cmocka_unit_test(sources_in_several_threads),
  };
  return cmocka_run_group_tests(tests, setup, tf_teardown);
}
