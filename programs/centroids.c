/*
 * centroids.c - reading a small file of centroids (assign -c, train --init)
 * whole into memory, checked against the input it will be used with.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_read_centroids(dkm_ctx *ctx, const char *path, const dkm_source *input, uint32_t want_k,
                       const char *what, float **out, uint32_t *k_out) {
  *out = NULL;
  dkm_source *src = NULL;
  dkm_status st = dkm_source_open_file(ctx, path, NULL, &src);
  if (st != DKM_OK) {
    return cli_library_error(ctx, st);
  }
  if (src->dim != input->dim) {
    cli_error("%s: %s have dimension %u, but %s has dimension %u", path, what, src->dim,
              input->name, input->dim);
    dkm_source_close(src);
    return CLI_EXIT_ERROR;
  }
  if (want_k != 0 && src->rows != want_k) {
    cli_error("%s: has %llu rows, but -k is %u", path, (unsigned long long)src->rows, want_k);
    dkm_source_close(src);
    return CLI_EXIT_ERROR;
  }
  /* Labels are int32, so at most 2^31 - 1 centroids can be told apart. */
  if (src->rows > DKM_MAX_K) {
    cli_error("%s: %llu rows are too many %s (at most %d: labels are int32)", path,
              (unsigned long long)src->rows, what, DKM_MAX_K);
    dkm_source_close(src);
    return CLI_EXIT_ERROR;
  }
  uint64_t values = src->rows * (uint64_t)src->dim; /* < 2^31 * 2^32: no overflow */
  if (values > SIZE_MAX / sizeof(float)) {
    cli_error("%s: %s do not fit in memory", path, what);
    dkm_source_close(src);
    return CLI_EXIT_ERROR;
  }
  float *buf = malloc((size_t)values * sizeof(float));
  if (buf == NULL) {
    cli_error("%s: out of memory reading %llu x %u %s", path, (unsigned long long)src->rows,
              src->dim, what);
    dkm_source_close(src);
    return CLI_EXIT_ERROR;
  }
  const float *rows = NULL;
  st = dkm_source_read(ctx, src, 0, src->rows, buf, &rows);
  if (st != DKM_OK) {
    free(buf);
    int rc = cli_library_error(ctx, st);
    dkm_source_close(src);
    return rc;
  }
  if (rows != buf) {
    memcpy(buf, rows, (size_t)values * sizeof(float));
  }
  /* A NaN centroid would silently attract no row (or every row); refuse it
   * here with the row named, as the library does for input rows. */
  for (uint64_t i = 0; i < values; i++) {
    if (!isfinite(buf[i])) {
      cli_error("%s: row %llu has a non-finite value in column %llu", path,
                (unsigned long long)(i / src->dim), (unsigned long long)(i % src->dim));
      free(buf);
      dkm_source_close(src);
      return CLI_EXIT_ERROR;
    }
  }
  *k_out = (uint32_t)src->rows;
  *out = buf;
  dkm_source_close(src);
  return CLI_EXIT_OK;
}

int cli_read_metric_tag(const char *path, dkm_metric *metric, int *found) {
  *found = 0;
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    return CLI_EXIT_OK;
  }
  /* The preamble: magic, version, then the header length (2 bytes in
   * version 1, 4 in versions 2 and 3). Headers we write are short; a long
   * one is read up to 64 KiB, the library's own limit. */
  unsigned char pre[12];
  size_t got = fread(pre, 1, sizeof pre, f);
  char *text = NULL;
  size_t len = 0;
  if (got >= 10 && memcmp(pre, "\x93NUMPY", 6) == 0) {
    size_t start = pre[6] == 1 ? 10 : 12;
    len = pre[6] == 1 ? (size_t)pre[8] | (size_t)pre[9] << 8
                      : (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 |
                            (size_t)pre[11] << 24;
    if (got >= start && len <= 65536 && fseek(f, (long)start, SEEK_SET) == 0 &&
        (text = malloc(len + 1)) != NULL) {
      len = fread(text, 1, len, f);
      text[len] = '\0';
    }
  }
  fclose(f);
  if (text == NULL) {
    return CLI_EXIT_OK;
  }
  /* The tag follows the dict's closing brace; a '#' inside a quoted value
   * of the dict is not a comment. */
  const char *brace = memchr(text, '}', len);
  const char *tag = brace != NULL ? strstr(brace, "# " CLI_METRIC_TAG) : NULL;
  int rc = CLI_EXIT_OK;
  if (tag != NULL) {
    const char *name = tag + strlen("# " CLI_METRIC_TAG);
    size_t n = strcspn(name, " \t\r\n");
    for (int m = DKM_METRIC_L2; m <= DKM_METRIC_IP; m++) {
      const char *known = dkm_metric_name((dkm_metric)m);
      if (strlen(known) == n && strncmp(name, known, n) == 0) {
        *metric = (dkm_metric)m;
        *found = 1;
      }
    }
    if (!*found) {
      cli_error("%s: the header records an unknown metric '%.*s' (l2, cosine, ip)", path,
                (int)(n < 32 ? n : 32), name);
      rc = CLI_EXIT_ERROR;
    }
  }
  free(text);
  return rc;
}

void cli_sizes_summary(const uint64_t *counts, uint32_t k, cli_sizes *out) {
  memset(out, 0, sizeof *out);
  out->k = k;
  double sum_sq = 0;
  for (uint32_t c = 0; c < k; c++) {
    uint64_t v = counts[c];
    out->rows += v;
    if (c == 0 || v < out->min) {
      out->min = v;
    }
    if (c == 0 || v > out->max) {
      out->max = v;
      out->largest = c;
    }
    if (v > 0) {
      out->used++;
    }
    sum_sq += (double)v * (double)v;
  }
  out->mean = k > 0 ? (double)out->rows / k : 0;
  /* The library's definition: k * sum(size^2) / n^2, 1 when balanced. */
  out->imbalance = out->rows > 0 ? k * sum_sq / ((double)out->rows * (double)out->rows) : 0;
}

uint64_t *cli_count_labels(const int32_t *labels, uint64_t n, uint32_t k) {
  uint64_t *counts = calloc(k > 0 ? k : 1, sizeof *counts);
  if (counts == NULL) {
    return NULL;
  }
  for (uint64_t i = 0; i < n; i++) {
    /* The library promises labels in [0, k); an assert would hide a broken
     * promise in release builds, so out-of-range labels are just skipped. */
    if (labels[i] >= 0 && (uint32_t)labels[i] < k) {
      counts[labels[i]]++;
    }
  }
  return counts;
}
