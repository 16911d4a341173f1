/*
 * bench_read.c - how fast a source hands out its rows: opens INPUT with the
 * public API and reads every row in blocks of about 8 MiB of float32 (the
 * engine's block size on disk), PASSES times (the first pass also warms the
 * page cache), and prints one JSON line: the open time, every pass's time
 * and the best pass's speed in GB/s of float32 rows delivered.
 *
 *   bench_read INPUT [--dataset NAME] [--passes N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diskmeans.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_read INPUT [--dataset NAME] [--passes N]\n");
    return 2;
  }
  dkm_file_options opt;
  dkm_file_options_init(&opt);
  int passes = 4;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--dataset") == 0)
      opt.dataset = argv[i + 1];
    else if (strcmp(argv[i], "--passes") == 0)
      passes = atoi(argv[i + 1]);
  }
  if (passes < 1 || passes > 100)
    passes = 4;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_source *src = NULL;
  double t0 = now();
  if (ctx == NULL || dkm_source_open_file(ctx, argv[1], &opt, &src) != DKM_OK) {
    fprintf(stderr, "bench_read: %s\n", ctx != NULL ? dkm_ctx_errmsg(ctx) : "out of memory");
    dkm_ctx_free(ctx);
    return 1;
  }
  double open_seconds = now() - t0;
  uint64_t block = (8u << 20) / (src->dim * sizeof(float));
  block = block < 1 ? 1 : block;
  float *buf = malloc((size_t)(block * src->dim) * sizeof(float));
  if (buf == NULL)
    return 1;
  double best = 1e30, sum_check = 0;
  printf("{\"input\": \"%s\", \"format\": \"%s\", \"dtype\": \"%s\", \"rows\": %llu, \"dim\": %u, "
         "\"open_seconds\": %.4f, \"seconds\": [",
         argv[1], dkm_format_name(src->format), dkm_dtype_name(src->dtype),
         (unsigned long long)src->rows, src->dim, open_seconds);
  for (int p = 0; p < passes; p++) {
    double t = now();
    for (uint64_t first = 0; first < src->rows; first += block) {
      uint64_t n = src->rows - first < block ? src->rows - first : block;
      const float *rows;
      if (dkm_source_read(ctx, src, first, n, buf, &rows) != DKM_OK) {
        fprintf(stderr, "bench_read: %s\n", dkm_ctx_errmsg(ctx));
        return 1;
      }
      sum_check += rows[0]; /* the rows are looked at */
    }
    double s = now() - t;
    best = s < best ? s : best;
    printf("%s%.4f", p > 0 ? ", " : "", s);
  }
  double bytes = (double)src->rows * src->dim * sizeof(float);
  printf("], \"best_gb_per_s\": %.3f, \"check\": %g}\n", bytes / best / 1e9, sum_check);
  free(buf);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  return 0;
}
