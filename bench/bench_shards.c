/*
 * bench_shards.c - reading a data set split into shards against reading one
 * file of the same rows (dkm_source_concat, docs/formats.md).
 *
 *   bench_shards [--dir D] [--rows 524288] [--dim 128] [--shards 64]
 *                [--reps 11] [--dtype f32|f16]
 *
 * Writes ROWS x DIM values once as one .npy and as SHARDS .npy files of
 * consecutive rows (the last takes the remainder), then times a full pass
 * over each with the page cache warm, alternating one file and the shards
 * (A B A B ...), REPS times each. A pass is what training's streaming does
 * to its input: read every row in blocks of 8 MiB of float32 (the engine's
 * automatic block size in disk mode) with a read-ahead hint for the next
 * block, and sum the values (the engine's GEMM touches every value). Two
 * times are taken of each input: opening it (every shard, and the join) and
 * reading it once, as the sampling pass does; and reading it again while it
 * is open, as each later pass of training in place does. The sums of the
 * two inputs must agree. Prints one JSON object per repetition, then the
 * medians and their ratios (shards / one file; the goal is at most 1.05).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_util.h"
#include "diskmeans.h"

static const char *arg_str(int argc, char **argv, const char *name, const char *def) {
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0)
      return argv[i + 1];
  return def;
}

static uint64_t arg_u64(int argc, char **argv, const char *name, uint64_t def) {
  const char *s = arg_str(argc, argv, name, NULL);
  uint64_t v = def;
  if (s != NULL && bench_parse_u64("bench_shards", s, name, &v) != 0)
    exit(2);
  return v;
}

/* Writes rows x cols values of elem bytes (descr "<f4" or "<f2") as .npy. */
static void write_npy(const char *path, const char *descr, size_t elem, const void *data,
                      uint64_t rows, uint64_t cols) {
  char header[128];
  int len = snprintf(header, sizeof header,
                     "{'descr': '%s', 'fortran_order': False, 'shape': (%llu, %llu), }", descr,
                     (unsigned long long)rows, (unsigned long long)cols);
  size_t padded = (10 + (size_t)len + 1 + 63) / 64 * 64, header_len = padded - 10;
  memset(header + len, ' ', header_len - (size_t)len - 1);
  header[header_len - 1] = '\n';
  unsigned char pre[10] = {0x93,
                           'N',
                           'U',
                           'M',
                           'P',
                           'Y',
                           1,
                           0,
                           (unsigned char)(header_len & 0xff),
                           (unsigned char)(header_len >> 8)};
  FILE *f = fopen(path, "wb");
  size_t bytes = (size_t)(rows * cols * elem);
  if (f == NULL || fwrite(pre, 1, sizeof pre, f) != sizeof pre ||
      fwrite(header, 1, header_len, f) != header_len || fwrite(data, 1, bytes, f) != bytes ||
      fclose(f) != 0) {
    fprintf(stderr, "bench_shards: cannot write %s: %s\n", path, strerror(errno));
    exit(1);
  }
}

static void fail(dkm_ctx *ctx, const char *what) {
  fprintf(stderr, "bench_shards: %s: %s\n", what, dkm_ctx_errmsg(ctx));
  exit(1);
}

static dkm_source *open_input(dkm_ctx *ctx, char **paths, size_t n) {
  dkm_source **parts = malloc(n * sizeof *parts);
  if (parts == NULL)
    exit(1);
  for (size_t i = 0; i < n; i++)
    if (dkm_source_open_file(ctx, paths[i], NULL, &parts[i]) != DKM_OK)
      fail(ctx, paths[i]);
  dkm_source *src;
  if (dkm_source_concat(ctx, parts, n, &src) != DKM_OK)
    fail(ctx, "concat");
  free(parts);
  return src;
}

/* Reads every row of src in blocks, hinting the next, and sums them. */
static double read_all(dkm_ctx *ctx, dkm_source *src, float *buf, uint64_t block) {
  double s = 0;
  for (uint64_t first = 0; first < src->rows; first += block) {
    uint64_t count = src->rows - first < block ? src->rows - first : block;
    uint64_t next = first + count;
    if (next < src->rows && src->methods->will_need != NULL)
      src->methods->will_need(src, next, src->rows - next < block ? src->rows - next : block);
    const float *rows;
    if (dkm_source_read(ctx, src, first, count, buf, &rows) != DKM_OK)
      fail(ctx, "read");
    float acc[8] = {0};
    size_t values = (size_t)count * src->dim;
    size_t i = 0;
    for (; i + 8 <= values; i += 8)
      for (int j = 0; j < 8; j++)
        acc[j] += rows[i + j];
    for (; i < values; i++)
      acc[0] += rows[i];
    for (int j = 0; j < 8; j++)
      s += acc[j];
  }
  return s;
}

/* One measurement of an input: the seconds of opening it and reading it
 * once (what the sampling pass costs), then of reading it again while it
 * is open (what each later pass of training in place costs). */
static void measure(dkm_ctx *ctx, char **paths, size_t n, float *buf, uint64_t block,
                    double *first_pass, double *next_pass, double *sum) {
  double t0 = bench_now();
  dkm_source *src = open_input(ctx, paths, n);
  *sum = read_all(ctx, src, buf, block);
  double t1 = bench_now();
  double again = read_all(ctx, src, buf, block);
  double t2 = bench_now();
  dkm_source_close(src);
  if (again != *sum) {
    fprintf(stderr, "bench_shards: two passes gave different sums\n");
    exit(1);
  }
  *first_pass = t1 - t0;
  *next_pass = t2 - t1;
}

int main(int argc, char **argv) {
  const char *dir = arg_str(argc, argv, "--dir", "bench-shards");
  uint64_t rows = arg_u64(argc, argv, "--rows", 524288);
  uint64_t dim = arg_u64(argc, argv, "--dim", 128);
  uint64_t shards = arg_u64(argc, argv, "--shards", 64);
  uint64_t reps = arg_u64(argc, argv, "--reps", 11);
  const char *dtype = arg_str(argc, argv, "--dtype", "f32");
  int half = strcmp(dtype, "f16") == 0;
  if ((!half && strcmp(dtype, "f32") != 0) || rows == 0 || dim == 0 || shards == 0 ||
      shards > rows || reps == 0 || reps > 1000) {
    fprintf(stderr, "bench_shards: bad arguments (see the comment at the top)\n");
    return 2;
  }
  size_t elem = half ? 2 : 4, bytes;
  if (!bench_array_bytes(rows, dim, elem, &bytes))
    return 2;
  if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
    fprintf(stderr, "bench_shards: %s: %s\n", dir, strerror(errno));
    return 1;
  }

  /* The values: normal float32, or finite normal halves made bit by bit. */
  unsigned char *data = malloc(bytes);
  if (data == NULL)
    return 1;
  if (half) {
    uint64_t st = 12345;
    for (size_t i = 0; i < (size_t)(rows * dim); i++) {
      st = st * 6364136223846793005u + 1442695040888963407u;
      uint16_t h =
          (uint16_t)(((st >> 63) << 15) | (((st >> 40) % 10 + 10) << 10) | ((st >> 20) & 0x3ff));
      memcpy(data + 2 * i, &h, 2);
    }
  } else {
    bench_fill_normal((float *)data, (size_t)(rows * dim), 7);
  }
  const char *descr = half ? "<f2" : "<f4";
  size_t n_paths = (size_t)shards;
  char **paths = calloc(n_paths, sizeof *paths);
  char one[4096];
  snprintf(one, sizeof one, "%s/one-%s.npy", dir, dtype);
  write_npy(one, descr, elem, data, rows, dim);
  uint64_t per = rows / shards;
  for (uint64_t s = 0; s < shards; s++) {
    uint64_t r0 = s * per, n = s + 1 == shards ? rows - r0 : per;
    paths[s] = malloc(4096);
    snprintf(paths[s], 4096, "%s/shard-%s-%03llu.npy", dir, dtype, (unsigned long long)s);
    write_npy(paths[s], descr, elem, data + r0 * dim * elem, n, dim);
  }
  free(data);

  dkm_ctx *ctx = dkm_ctx_create(NULL);
  uint64_t block = (UINT64_C(8) << 20) / (dim * sizeof(float));
  float *buf = malloc((size_t)(block * dim) * sizeof(float));
  char *one_path[1] = {one};
  double sum_a, sum_b, x, y;
  /* Warm the page cache with both inputs. */
  measure(ctx, one_path, 1, buf, block, &x, &y, &sum_a);
  measure(ctx, paths, n_paths, buf, block, &x, &y, &sum_b);
  double *t[4]; /* one file first pass, shards first pass, one file next, shards next */
  for (int i = 0; i < 4; i++)
    t[i] = malloc(reps * sizeof *t[i]);
  for (uint64_t r = 0; r < reps; r++) {
    measure(ctx, one_path, 1, buf, block, &t[0][r], &t[2][r], &sum_a);
    measure(ctx, paths, n_paths, buf, block, &t[1][r], &t[3][r], &sum_b);
    if (sum_a != sum_b) {
      fprintf(stderr, "bench_shards: the sums differ: %.17g vs %.17g\n", sum_a, sum_b);
      return 1;
    }
    printf("{\"rep\": %llu, \"one_file_open_read_seconds\": %.6f, "
           "\"shards_open_read_seconds\": %.6f, \"one_file_read_seconds\": %.6f, "
           "\"shards_read_seconds\": %.6f}\n",
           (unsigned long long)r, t[0][r], t[1][r], t[2][r], t[3][r]);
  }
  double m[4];
  for (int i = 0; i < 4; i++)
    m[i] = bench_median(t[i], reps);
  double gb = (double)rows * dim * elem / 1e9;
  printf("{\"rows\": %llu, \"dim\": %llu, \"dtype\": \"%s\", \"shards\": %llu, \"reps\": %llu, "
         "\"one_file_open_read_median\": %.6f, \"shards_open_read_median\": %.6f, "
         "\"open_read_ratio\": %.4f, \"one_file_read_median\": %.6f, "
         "\"shards_read_median\": %.6f, \"read_ratio\": %.4f, \"goal\": 1.05}\n",
         (unsigned long long)rows, (unsigned long long)dim, dtype, (unsigned long long)shards,
         (unsigned long long)reps, m[0], m[1], m[1] / m[0], m[2], m[3], m[3] / m[2]);
  fprintf(stderr,
          "shards: %llu x %llu %s (%.2f GB), warm, medians of %llu alternating: open + read "
          "one file %.4f s, %llu shards %.4f s, ratio %.3f; read again one file %.4f s, "
          "shards %.4f s, ratio %.3f (goal <= 1.05)\n",
          (unsigned long long)rows, (unsigned long long)dim, dtype, gb, (unsigned long long)reps,
          m[0], (unsigned long long)shards, m[1], m[1] / m[0], m[2], m[3], m[3] / m[2]);
  for (int i = 0; i < 4; i++)
    free(t[i]);
  for (size_t i = 0; i < n_paths; i++)
    free(paths[i]);
  free(paths);
  free(buf);
  dkm_ctx_free(ctx);
  return 0;
}
