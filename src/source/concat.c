/*
 * concat.c - dkm_source_concat(): one source made of several, their rows one
 * after the other in the order given.
 *
 * A data set split into shards is the same data set: row r of the whole is
 * row r - start[i] of the part i whose range holds it, and every read maps a
 * global range onto the parts it covers. Nothing above this file knows that
 * the rows come from several places, so the sample drawn over the whole (by
 * row number, from src->rows and reads alone) is the sample of one file
 * holding the same rows, and so are the centroids.
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "source.h"

typedef struct concat_source {
  dkm_source base;
  size_t n_parts;
  dkm_source **parts; /* owned */
  uint64_t *start;    /* n_parts + 1: the global row of each part's row 0,
                         then the total */
  char *name;         /* "first ... last (N parts)" */
} concat_source;

/* The part that holds global row `row` (< total): the last part whose start
 * is at most row. Parts are never empty, so it is the only one. */
static size_t part_of(const concat_source *c, uint64_t row) {
  size_t lo = 0, hi = c->n_parts; /* the answer is in [lo, hi) */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (c->start[mid] <= row)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

static dkm_status concat_read(dkm_source *self, dkm_ctx *ctx, uint64_t first, uint64_t count,
                              float *buf, const float **rows) {
  concat_source *c = (concat_source *)self;
  size_t i = part_of(c, first);
  uint64_t local = first - c->start[i];
  dkm_source *p = c->parts[i];
  /* Within one part (nearly every block when parts are large): the part's
   * own read, zero copy included. */
  if (local + count <= p->rows)
    return p->methods->read(p, ctx, local, count, buf, rows);
  /* A block across parts is assembled in buf, each piece read straight into
   * its place, parts in increasing order (a sequential part sees its rows
   * in order). A part that hands out its own memory is copied in. */
  const size_t dim = self->dim;
  for (uint64_t done = 0; done < count; i++, local = 0) {
    assert(i < c->n_parts);
    p = c->parts[i];
    uint64_t n = DKM__MIN(count - done, p->rows - local);
    float *dst = buf + (size_t)done * dim;
    const float *got = NULL;
    dkm_status s = p->methods->read(p, ctx, local, n, dst, &got);
    if (s != DKM_OK)
      return s; /* the part named itself and its own row */
    if (got != dst)
      memcpy(dst, got, (size_t)n * dim * sizeof(float));
    done += n;
  }
  *rows = buf;
  return DKM_OK;
}

static void concat_will_need(dkm_source *self, uint64_t first, uint64_t count) {
  concat_source *c = (concat_source *)self;
  if (count == 0 || first >= self->rows)
    return;
  count = DKM__MIN(count, self->rows - first);
  for (size_t i = part_of(c, first); i < c->n_parts && c->start[i] < first + count; i++) {
    dkm_source *p = c->parts[i];
    uint64_t lo = DKM__MAX(first, c->start[i]) - c->start[i];
    uint64_t hi = DKM__MIN(first + count, c->start[i + 1]) - c->start[i];
    if (p->methods->will_need != NULL)
      p->methods->will_need(p, lo, hi - lo);
  }
}

static void close_parts(dkm_source *const *parts, size_t n) {
  for (size_t i = 0; parts != NULL && i < n; i++)
    dkm_source_close(parts[i]);
}

static void concat_close(dkm_source *self) {
  concat_source *c = (concat_source *)self;
  dkm_ctx *ctx = self->ctx;
  close_parts(c->parts, c->n_parts);
  dkm__free(ctx, c->parts);
  dkm__free(ctx, c->start);
  dkm__free(ctx, c->name);
  dkm__free(ctx, c);
}

static const dkm_source_methods concat_methods = {DKM_SOURCE_METHODS_VERSION, concat_read,
                                                  concat_will_need, concat_close};

void dkm__source_locate(const dkm_source *src, uint64_t row, const char **name, uint64_t *local) {
  *name = src->name;
  *local = row;
  /* A concatenation of concatenations is looked into all the way down. */
  while (src->methods == &concat_methods && row < src->rows) {
    const concat_source *c = (const concat_source *)src;
    size_t i = part_of(c, row);
    row -= c->start[i];
    src = c->parts[i];
    *name = src->name;
    *local = row;
  }
}

/* The checks on the parts, before anything is allocated. On failure the
 * error is recorded; the caller closes the parts. */
static dkm_status check_parts(dkm_ctx *ctx, dkm_source *const *parts, size_t n_parts,
                              uint64_t *total) {
  *total = 0;
  for (size_t i = 0; i < n_parts; i++) {
    const dkm_source *p = parts[i];
    if (p == NULL)
      return dkm__error(ctx, DKM_ERR_PARAM, "concat: part %zu is NULL", i);
    if (p->methods == NULL || p->methods->read == NULL || p->methods->close == NULL)
      return dkm__error(ctx, DKM_ERR_PARAM, "concat: %s (part %zu) has no read or close method",
                        p->name, i);
    if (p->rows == 0)
      return dkm__error(ctx, DKM_ERR_FORMAT, "%s: no rows (an empty part of the input)", p->name);
    if (p->dim != parts[0]->dim)
      return dkm__error(ctx, DKM_ERR_FORMAT,
                        "%s has %u values per row but %s has %u: the parts of one input need "
                        "the same dimension",
                        p->name, p->dim, parts[0]->name, parts[0]->dim);
    if (p->rows > UINT64_MAX - *total)
      return dkm__error(ctx, DKM_ERR_FORMAT,
                        "%s: the parts up to this one hold more than 2^64 - 1 rows", p->name);
    *total += p->rows;
  }
  return DKM_OK;
}

/* "first ... last (N parts)": what messages about the whole call it. */
static char *make_name(dkm_ctx *ctx, dkm_source *const *parts, size_t n_parts) {
  const char *first = parts[0]->name != NULL ? parts[0]->name : "?";
  const char *last = parts[n_parts - 1]->name != NULL ? parts[n_parts - 1]->name : "?";
  int len = snprintf(NULL, 0, "%s ... %s (%zu parts)", first, last, n_parts);
  if (len < 0)
    return NULL;
  char *name = dkm__alloc_or_fail(ctx, (size_t)len + 1, "the input's name");
  if (name != NULL)
    snprintf(name, (size_t)len + 1, "%s ... %s (%zu parts)", first, last, n_parts);
  return name;
}

dkm_status dkm_source_concat(dkm_ctx *ctx, dkm_source *const *parts, size_t n_parts,
                             dkm_source **out) {
  dkm_ctx_clear_error(ctx);
  dkm_status s = DKM_OK;
  if (out == NULL)
    s = dkm__error(ctx, DKM_ERR_PARAM, "concat: out is NULL");
  else
    *out = NULL;
  if (s == DKM_OK && (parts == NULL || n_parts == 0))
    s = dkm__error(ctx, DKM_ERR_PARAM, "concat: no parts");
  uint64_t total = 0;
  if (s == DKM_OK)
    s = check_parts(ctx, parts, n_parts, &total);
  if (s != DKM_OK) {
    close_parts(parts, n_parts);
    return s;
  }
  if (n_parts == 1) {
    *out = parts[0]; /* one part is the whole: nothing to map */
    return DKM_OK;
  }

  concat_source *c = dkm__calloc(ctx, 1, sizeof *c);
  if (c != NULL) {
    c->parts = dkm__calloc(ctx, n_parts, sizeof *c->parts);
    c->start = dkm__calloc(ctx, n_parts + 1, sizeof *c->start);
    c->name = make_name(ctx, parts, n_parts);
  }
  if (c == NULL || c->parts == NULL || c->start == NULL || c->name == NULL) {
    if (c != NULL) {
      dkm__free(ctx, c->parts);
      dkm__free(ctx, c->start);
      dkm__free(ctx, c->name);
      dkm__free(ctx, c);
    }
    close_parts(parts, n_parts);
    return dkm__error(ctx, DKM_ERR_NOMEM, "out of memory joining %zu parts of the input", n_parts);
  }

  /* The stored type is informational: the common one, or float32 (what
   * every part is read as) when they differ. So is the format: the common
   * one, or DKM_FORMAT_MIXED. */
  dkm_dtype dtype = parts[0]->dtype;
  dkm_format format = parts[0]->format;
  uint32_t flags = DKM_SOURCE_RESIDENT;
  uint64_t bytes = 0;
  for (size_t i = 0; i < n_parts; i++) {
    const dkm_source *p = parts[i];
    c->parts[i] = parts[i];
    c->start[i + 1] = c->start[i] + p->rows;
    if (p->dtype != dtype)
      dtype = DKM_DTYPE_F32;
    if (p->format != format)
      format = DKM_FORMAT_MIXED;
    /* Resident only if every read is free; sequential if any part needs
     * its rows in order (then the whole does: reads in increasing global
     * order reach every part in increasing order). */
    if ((p->flags & DKM_SOURCE_RESIDENT) == 0)
      flags &= ~DKM_SOURCE_RESIDENT;
    flags |= p->flags & DKM_SOURCE_SEQUENTIAL;
    bytes = p->bytes > UINT64_MAX - bytes ? UINT64_MAX : bytes + p->bytes;
  }
  c->n_parts = n_parts;
  dkm__source_init(&c->base, &concat_methods, ctx, total, parts[0]->dim, dtype, format, c->name);
  c->base.flags = flags;
  c->base.bytes = bytes;
  *out = &c->base;
  return DKM_OK;
}
