/*
 * bench_checkpoint - what a checkpoint save costs the training thread, and
 * how long the writer thread takes to put it on disk, for a state of k
 * centroids of dim (the Lloyd loop's section as train.c saves it: the
 * centroids, the sizes and a few fields).
 *
 *   bench_checkpoint FOLDER [K DIM [REPEATS]]
 *
 * Prints JSON: the medians of REPEATS saves (default 7) of the time save
 * took on the calling thread and of the time until the file was synced and
 * renamed. docs/design.md, "Checkpoints", has the numbers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/checkpoint.h"

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_checkpoint FOLDER [K DIM [REPEATS]]\n");
    return 2;
  }
  uint32_t k = argc > 3 ? (uint32_t)atol(argv[2]) : 512,
           dim = argc > 3 ? (uint32_t)atol(argv[3]) : 128;
  int repeats = argc > 4 ? atoi(argv[4]) : 7;
  if (repeats < 1 || repeats > 100)
    repeats = 7;
  char path[4096];
  snprintf(path, sizeof path, "%s/bench.ckpt", argv[1]);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  float *centroids = calloc((size_t)k * dim, sizeof(float));
  uint64_t *sizes = calloc(k, sizeof(uint64_t));
  float *rows = calloc(1024, sizeof(float));
  dkm_source *sample = NULL;
  dkm__ckpt *ck = NULL;
  if (ctx == NULL || centroids == NULL || sizes == NULL || rows == NULL ||
      dkm_source_from_memory(ctx, rows, DKM_DTYPE_F32, 1, 1024, &sample) != DKM_OK ||
      dkm__ckpt_open(ctx, path, 0, "bench=1\n", &ck) != DKM_OK ||
      dkm__ckpt_sample(ck, sample) != DKM_OK) {
    fprintf(stderr, "bench_checkpoint: %s\n", ctx != NULL ? dkm_ctx_errmsg(ctx) : "out of memory");
    return 1;
  }
  for (size_t i = 0; i < (size_t)k * dim; i++)
    centroids[i] = (float)i;
  double save_s[100], write_s[100];
  for (int r = 0; r < repeats; r++) {
    double t0 = dkm__now();
    dkm__ckpt_buf *b = dkm__ckpt_section(ck, DKM__CKPT_FLAT);
    uint32_t head[8] = {0, (uint32_t)r + 1, 1, 0, k, dim, 0, 0};
    dkm__ckpt_put(ck, b, head, sizeof head);
    dkm__ckpt_put(ck, b, sizes, (size_t)k * sizeof *sizes);
    dkm__ckpt_put(ck, b, centroids, (size_t)k * dim * sizeof(float));
    dkm_status s = dkm__ckpt_save(ck);
    double t1 = dkm__now();
    if (s == DKM_OK)
      s = dkm__ckpt_flush(ck);
    double t2 = dkm__now();
    if (s != DKM_OK) {
      fprintf(stderr, "bench_checkpoint: %s\n", dkm_ctx_errmsg(ctx));
      return 1;
    }
    save_s[r] = t1 - t0;
    write_s[r] = t2 - t0;
  }
  qsort(save_s, (size_t)repeats, sizeof(double), by_value);
  qsort(write_s, (size_t)repeats, sizeof(double), by_value);
  printf("{\"k\": %u, \"dim\": %u, \"bytes\": %llu, \"repeats\": %d, "
         "\"save_seconds\": %.6f, \"written_seconds\": %.6f}\n",
         k, dim, (unsigned long long)((uint64_t)k * dim * 4 + (uint64_t)k * 8), repeats,
         save_s[repeats / 2], write_s[repeats / 2]);
  dkm__ckpt_close(ck);
  remove(path);
  dkm_source_close(sample);
  dkm_ctx_free(ctx);
  free(centroids);
  free(sizes);
  free(rows);
  return 0;
}
