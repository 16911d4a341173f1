/*
 * fuzz_checkpoint.c - libFuzzer target for the checkpoint reader
 * (src/storage/checkpoint.c) and the engine's sections (train.c, hier.c).
 *
 * The input is a checkpoint without its last four bytes: the target sets
 * the header's payload size and appends the right CRC32, so that mutations
 * reach the sections instead of stopping at the checksum (the checksum and
 * the size checks have their own unit tests). It is then resumed by a tiny
 * flat training or, when the input says "strategy=hierarchical", a
 * hierarchical one, on fixed rows; the corpus holds real checkpoints of
 * both, stopped at every progress report (built with -DDKM_FUZZ_MAKE_CORPUS,
 * the main() at the end writes them). Besides the sanitizers,
 * the contract is checked with abort(): a resume either succeeds with a
 * result of the right shape or fails with a message naming the checkpoint.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "diskmeans.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { ROWS = 300, DIM = 3 };

/* The rows and the parameters the corpus was made with. */
static void fuzz_params(dkm_params *p, int hierarchical) {
  dkm_params_init(p);
  p->k = hierarchical ? 16 : 5;
  p->max_iter = 3;
  p->tol = 0;
  p->n_threads = 1;
  p->max_points_per_centroid = 0;
  p->n_redo = hierarchical ? 1 : 2;
  p->strategy = hierarchical ? DKM_STRATEGY_HIERARCHICAL : DKM_STRATEGY_FLAT;
  p->refine = 2;
}

static void fuzz_rows(float *x) {
  uint32_t s = 12345;
  for (size_t i = 0; i < (size_t)ROWS * DIM; i++) {
    s = s * 1103515245u + 12345u;
    x[i] = (float)((s >> 8) % 1000) / 100.0f + (float)(i / DIM % 7) * 20.0f;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 25 || size > (1u << 20))
    return 0;
  char path[64];
  snprintf(path, sizeof path, "/tmp/dkm-fuzz-ckpt-%d", (int)getpid());
  uint8_t *file = malloc(size + 4);
  if (file == NULL)
    return 0;
  memcpy(file, data, size);
  uint64_t payload = size - 24;
  memcpy(file + 16, &payload, 8);
  uint32_t crc = (uint32_t)crc32(0, file, (uInt)size);
  memcpy(file + size, &crc, 4);
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(file, 1, size + 4, f) != size + 4 || fclose(f) != 0)
    abort();
  free(file);

  static float x[ROWS * DIM];
  fuzz_rows(x);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_source *src = NULL;
  if (ctx == NULL || dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, ROWS, DIM, &src) != DKM_OK)
    abort();
  dkm_params p;
  fuzz_params(&p, memmem(data, size, "strategy=hierarchical", 21) != NULL);
  p.checkpoint = path;
  p.resume = 1;
  dkm_result *r = NULL;
  dkm_status st = dkm_train(ctx, &p, src, &r);
  if (st == DKM_OK) {
    /* (The sizes and statistics restored are the file's, unchecked
     * beyond their framing: only the centroids and ranges the engine
     * computes with are.) */
    if (r->k != p.k || r->dim != DIM || r->n_iter == 0)
      abort();
  } else if (st != DKM_ERR_NOMEM && strstr(dkm_ctx_errmsg(ctx), path) == NULL) {
    fprintf(stderr, "error message does not name the checkpoint: %s\n", dkm_ctx_errmsg(ctx));
    abort();
  }
  dkm_result_free(r);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  unlink(path);
  char tmp[80];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  unlink(tmp);
  return 0;
}

#ifdef DKM_FUZZ_MAKE_CORPUS
/* Writes the corpus into argv[1]: the checkpoints of runs cancelled at
 * each progress report, without their CRC. */
static long reports, stop_at;
static int stop(void *user, const dkm_progress *pr) {
  (void)user;
  (void)pr;
  return ++reports == stop_at;
}

int main(int argc, char **argv) {
  static float x[ROWS * DIM];
  fuzz_rows(x);
  int n = 0;
  for (int hier = 0; hier < 2; hier++) {
    for (stop_at = 1; stop_at < 60; stop_at++) {
      char path[512];
      snprintf(path, sizeof path, "%s/made.ckpt", argv[1]);
      unlink(path);
      dkm_ctx *ctx = dkm_ctx_create(NULL);
      dkm_source *src = NULL;
      dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, ROWS, DIM, &src);
      dkm_params p;
      fuzz_params(&p, hier);
      p.checkpoint = path;
      p.progress = stop;
      reports = 0;
      dkm_result *r = NULL;
      dkm_train(ctx, &p, src, &r);
      dkm_result_free(r);
      dkm_source_close(src);
      dkm_ctx_free(ctx);
      FILE *f = fopen(path, "rb");
      if (f == NULL)
        continue;
      static uint8_t buf[1 << 20];
      size_t len = fread(buf, 1, sizeof buf, f);
      fclose(f);
      unlink(path);
      if (len < 28 || (stop_at % 3 != 0 && stop_at > 4))
        continue;
      char out[600];
      snprintf(out, sizeof out, "%s/seed-%s-%02ld", argv[1], hier ? "hier" : "flat", stop_at);
      f = fopen(out, "wb");
      fwrite(buf, 1, len - 4, f);
      fclose(f);
      n++;
    }
  }
  (void)argc;
  printf("%d seeds\n", n);
  return 0;
}
#endif
