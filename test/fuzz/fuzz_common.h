/*
 * fuzz_common.h - what the file-format fuzz targets share. The API takes a
 * path, so each input is written to a file under /tmp named by the pid (two
 * fuzzing jobs never share one), opened with a forced format and with
 * auto-detection, read whole in a few blocks (a middle block first, so that
 * a sequential source has to rewind), closed and deleted.
 *
 * Besides the sanitizers, two invariants are checked with abort(): a
 * successful open gives a sane shape, and every failure leaves a message that
 * starts with the file's path.
 */
#ifndef DKM_FUZZ_COMMON_H
#define DKM_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diskmeans.h"

static void fuzz_check_error(dkm_ctx *ctx, const char *path, dkm_status st) {
  const char *msg = dkm_ctx_errmsg(ctx);
  if (st == DKM_ERR_NOMEM)
    return;
  if (strncmp(msg, path, strlen(path)) != 0 || strlen(msg) <= strlen(path) + 2) {
    fprintf(stderr, "error message does not name the file: %s (%s)\n", msg, dkm_status_name(st));
    abort();
  }
}

static void fuzz_write(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (f == NULL)
    abort();
  if (size > 0 && fwrite(data, 1, size, f) != size)
    abort();
  if (fclose(f) != 0)
    abort();
}

static dkm_status fuzz_read_block(dkm_ctx *ctx, dkm_source *src, uint64_t first, uint64_t count,
                                  float *buf) {
  const float *rows = NULL;
  dkm_status st = dkm_source_read(ctx, src, first, count, buf, &rows);
  if (st == DKM_OK) {
    /* Touch every value so that a short conversion shows under MSan/ASan. */
    volatile float sink = 0;
    for (uint64_t i = 0; i < count * src->dim; i++)
      sink += rows[i];
    (void)sink;
  }
  return st;
}

static void fuzz_open_and_read(const char *path, const dkm_file_options *opt) {
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  if (ctx == NULL)
    abort();
  dkm_source *src = NULL;
  dkm_status st = dkm_source_open_file(ctx, path, opt, &src);
  if (st != DKM_OK) {
    if (src != NULL)
      abort();
    fuzz_check_error(ctx, path, st);
    dkm_ctx_free(ctx);
    return;
  }
  if (src->rows == 0 || src->dim == 0 || src->dim > (1u << 20) || strcmp(src->name, path) != 0 ||
      (opt->format != DKM_FORMAT_AUTO && src->format != opt->format))
    abort();
  /* Three blocks or so, at most 64k values each. */
  uint64_t block = src->rows / 3 + 1;
  if (block * src->dim > 65536)
    block = 65536 / src->dim + 1;
  float *buf = malloc((size_t)(block * src->dim) * sizeof(float));
  if (buf == NULL)
    abort();
  uint64_t mid = src->rows / 2;
  st = fuzz_read_block(ctx, src, mid, src->rows - mid < block ? src->rows - mid : block, buf);
  for (uint64_t first = 0; st == DKM_OK && first < src->rows; first += block) {
    uint64_t count = src->rows - first < block ? src->rows - first : block;
    st = fuzz_read_block(ctx, src, first, count, buf);
  }
  if (st != DKM_OK)
    fuzz_check_error(ctx, path, st);
  free(buf);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
}

static void fuzz_open_as(const char *path, dkm_format format, uint32_t raw_dim,
                         dkm_dtype raw_dtype) {
  dkm_file_options opt;
  dkm_file_options_init(&opt);
  opt.format = format;
  opt.raw_dim = raw_dim;
  opt.raw_dtype = raw_dtype;
  fuzz_open_and_read(path, &opt);
}

/* A scratch path for this process: /tmp/dkm-fuzz-<tag>-<pid><suffix>. */
static void fuzz_path(char *out, size_t cap, const char *tag, const char *suffix) {
  snprintf(out, cap, "/tmp/dkm-fuzz-%s-%ld%s", tag, (long)getpid(), suffix);
}

#endif
