/*
 * test_format_stream.c - gzip-compressed files of every fixed-stride format,
 * and streams (the standard input, FIFOs): the same values as the plain
 * file, the row count known at open, errors that name the input.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "test_format_util.h"

enum { ROWS = 300, DIM = 12 };

static int setup(void **state) {
  (void)state;
  return tf_setup_dir("format-stream");
}

static void write_gz(const char *path, const void *data, size_t n) {
  gzFile g = gzopen(path, "wb");
  assert_non_null(g);
  assert_int_equal(gzwrite(g, data, (unsigned)n), (int)n);
  assert_int_equal(gzclose(g), Z_OK);
}

/* The images of one set of rows (values[ROWS * DIM], small integers so that
 * u8 holds them too) as fvecs, bvecs, npy f32 and raw f32. */
typedef struct images {
  unsigned char *data[4];
  size_t size[4];
} images;
static const char *const image_names[4] = {"r.fvecs", "r.bvecs", "r.npy", "r.raw"};
static const dkm_format image_formats[4] = {DKM_FORMAT_FVECS, DKM_FORMAT_BVECS, DKM_FORMAT_NPY,
                                            DKM_FORMAT_RAW};

static void make_images(const float *values, images *im) {
  im->size[0] = ROWS * (4 + DIM * 4);
  im->size[1] = ROWS * (4 + DIM);
  unsigned char npyh[128];
  char dict[128];
  snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", ROWS,
           DIM);
  size_t h = tf_npy_header(npyh, sizeof npyh, 1, dict);
  im->size[2] = h + ROWS * DIM * 4;
  im->size[3] = ROWS * DIM * 4;
  for (int i = 0; i < 4; i++) {
    im->data[i] = malloc(im->size[i]);
    assert_non_null(im->data[i]);
  }
  int32_t d = DIM;
  for (int r = 0; r < ROWS; r++) {
    unsigned char *fv = im->data[0] + r * (4 + DIM * 4), *bv = im->data[1] + r * (4 + DIM);
    memcpy(fv, &d, 4);
    memcpy(fv + 4, values + r * DIM, DIM * 4);
    memcpy(bv, &d, 4);
    for (int j = 0; j < DIM; j++)
      bv[4 + j] = (unsigned char)values[r * DIM + j];
  }
  memcpy(im->data[2], npyh, h);
  memcpy(im->data[2] + h, values, ROWS * DIM * 4);
  memcpy(im->data[3], values, ROWS * DIM * 4);
}

static void free_images(images *im) {
  for (int i = 0; i < 4; i++)
    free(im->data[i]);
}

static float *make_values(void) {
  float *v = malloc(ROWS * DIM * sizeof(float));
  assert_non_null(v);
  uint64_t seed = 3;
  for (int i = 0; i < ROWS * DIM; i++)
    v[i] = (float)(dkm_test_rand(&seed) % 256);
  return v;
}

/* .fvecs.gz, .bvecs.gz, .npy.gz and raw .gz: detected through the .gz, the
 * row count known at open, DKM_SOURCE_SEQUENTIAL, the same values as the
 * plain file in any block size and after a rewind; every allocation failure
 * is clean. */
static void every_format_reads_the_same_compressed(void **state) {
  float *values = make_values();
  images im;
  make_images(values, &im);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  for (int i = 0; i < 4; i++) {
    char name[64];
    snprintf(name, sizeof name, "%s.gz", image_names[i]);
    char *gz = tf_path(dir, name);
    write_gz(gz, im.data[i], im.size[i]);
    dkm_file_options opt;
    dkm_file_options_init(&opt);
    opt.raw_dim = DIM; /* used by the raw file only */
    dkm_source *src = NULL;
    assert_int_equal(dkm_source_open_file(ctx, gz, &opt, &src), DKM_OK);
    assert_int_equal(src->format, image_formats[i]);
    assert_int_equal(src->rows, ROWS);
    assert_int_equal(src->dim, DIM);
    assert_true((src->flags & DKM_SOURCE_SEQUENTIAL) != 0);
    struct stat sb;
    assert_int_equal(stat(gz, &sb), 0);
    assert_int_equal(src->bytes, (uint64_t)sb.st_size); /* the compressed size */
    for (uint64_t block = 1; block <= 301; block += 100) {
      float *got = tf_read_all(ctx, src, block);
      tf_assert_same(got, values, ROWS * DIM);
      free(got);
    }
    /* Forward skips, then a read behind the position (a rewind). */
    float buf[5 * DIM];
    const float *r;
    const uint64_t firsts[] = {250, 7, 120, 295};
    for (int k = 0; k < 4; k++) {
      assert_int_equal(dkm_source_read(ctx, src, firsts[k], 5, buf, &r), DKM_OK);
      tf_assert_same(r, values + firsts[k] * DIM, 5 * DIM);
    }
    dkm_source_close(src);
    tf_alloc_sweep(gz, &opt);
    free(gz);
  }
  dkm_ctx_free(ctx);
  free_images(&im);
  free(values);
}

/* A child process writes data to fd and exits. */
static pid_t writer(int fd, const void *data, size_t n) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    const unsigned char *p = data;
    while (n > 0) {
      ssize_t w = write(fd, p, n);
      if (w <= 0)
        _exit(1);
      p += w;
      n -= (size_t)w;
    }
    _exit(0);
  }
  return pid;
}

static void reap(pid_t pid) {
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
}

/* "-" reads a pipe on the standard input whole and leaves descriptor 0
 * open; the values are the file's. */
static void standard_input_is_a_stream(void **state) {
  float *values = make_values();
  images im;
  make_images(values, &im);
  int saved = dup(STDIN_FILENO);
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t pid = writer(p[1], im.data[0], im.size[0]); /* fvecs, sniffed */
  close(p[1]);
  assert_int_equal(dup2(p[0], STDIN_FILENO), STDIN_FILENO);
  close(p[0]);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_file_options opt;
  dkm_file_options_init(&opt);
  opt.tmp_dir = dir;
  dkm_source *src = tf_open(ctx, "-", DKM_FORMAT_AUTO, ROWS, DIM, DKM_DTYPE_F32, DKM_FORMAT_FVECS);
  reap(pid);
  assert_int_equal(src->flags & DKM_SOURCE_SEQUENTIAL, 0); /* read at offsets from the copy */
  float *got = tf_read_all(ctx, src, 64);
  tf_assert_same(got, values, ROWS * DIM);
  free(got);
  dkm_source_close(src);
  assert_true(fcntl(STDIN_FILENO, F_GETFD) >= 0);
  dkm_ctx_free(ctx);
  assert_int_equal(dup2(saved, STDIN_FILENO), STDIN_FILENO);
  close(saved);
  free_images(&im);
  free(values);
}

/* A FIFO holding a gzip-compressed npy reads as the file; one that ends
 * before the rows its header promises is an error naming the FIFO; the
 * copy needs a folder that exists, named in the error. */
static void fifo_whole_short_and_nowhere_to_keep(void **state) {
  float *values = make_values();
  images im;
  make_images(values, &im);
  char *gz = tf_path(dir, "n.npy.gz");
  write_gz(gz, im.data[2], im.size[2]);
  FILE *f = fopen(gz, "rb");
  unsigned char *gzbytes = malloc(im.size[2] + 1024);
  size_t gzsize = fread(gzbytes, 1, im.size[2] + 1024, f);
  fclose(f);
  char *fifo = tf_path(dir, "stream");
  assert_int_equal(mkfifo(fifo, 0600), 0);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_file_options opt;
  dkm_file_options_init(&opt);
  opt.tmp_dir = dir;

  /* The child opens the FIFO for writing (which waits for our open). */
  struct {
    const void *data;
    size_t size;
    const char *tmp_dir;
    dkm_status want;
    const char *word;
  } cases[] = {
      {gzbytes, gzsize, dir, DKM_OK, NULL},
      {im.data[2], im.size[2] - 100, dir, DKM_ERR_FORMAT, "disagrees with the file size"},
      {gzbytes, gzsize - 20, dir, DKM_ERR_FORMAT, "corrupt gzip data"},
      {im.data[2], im.size[2], "/nonexistent-dkm-dir", DKM_ERR_IO, "/nonexistent-dkm-dir"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      int w = open(fifo, O_WRONLY);
      const unsigned char *p = cases[c].data;
      size_t n = cases[c].size;
      while (w >= 0 && n > 0) {
        ssize_t put = write(w, p, n);
        if (put <= 0)
          break;
        p += put;
        n -= (size_t)put;
      }
      _exit(0);
    }
    opt.tmp_dir = cases[c].tmp_dir;
    if (cases[c].want == DKM_OK) {
      dkm_source *src = NULL;
      assert_int_equal(dkm_source_open_file(ctx, fifo, &opt, &src), DKM_OK);
      assert_int_equal(src->format, DKM_FORMAT_NPY);
      assert_int_equal(src->rows, ROWS);
      float *got = tf_read_all(ctx, src, 100);
      tf_assert_same(got, values, ROWS * DIM);
      free(got);
      dkm_source_close(src);
    } else {
      tf_expect_error(ctx, fifo, &opt, cases[c].want, cases[c].word);
    }
    /* A writer left with bytes it could not write is ended (SIGPIPE, or
     * here). */
    kill(pid, SIGKILL);
    reap(pid);
  }
  dkm_ctx_free(ctx);
  free(fifo);
  free(gz);
  free(gzbytes);
  free_images(&im);
  free(values);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_format_reads_the_same_compressed),
      cmocka_unit_test(standard_input_is_a_stream),
      cmocka_unit_test(fifo_whole_short_and_nowhere_to_keep),
  };
  return cmocka_run_group_tests(tests, setup, tf_teardown);
}
