/*
 * gzrows.c - the source of every fixed-stride format stored gzip-compressed
 * (.fvecs.gz, .bvecs.gz, .npy.gz, raw .gz, IDX .gz): the layout is the one
 * the format's parser found in the decompressed header, the rows come
 * through gzip.c's reader. A compressed stream cannot seek, so the source is
 * DKM_SOURCE_SEQUENTIAL: reads move forward, skipping by decompressing, and
 * a read behind the current position starts again from the beginning of
 * the file (correct but slow; the engine never does it within one pass).
 *
 * The row count is known before the first read: dkm_source_open_file()
 * decompressed the whole file once to count its bytes (file.c), and the
 * parser checked the shape against that count as it does for a plain file.
 */
#include <assert.h>
#include <string.h>
#include <unistd.h>

#include "formats/file.h"
#include "formats/gzip.h"

/* Decompressed bytes per staging read: converted rows, skipped rows and the
 * header all pass through a buffer of about this size. */
#define GZ_STAGE_BYTES (size_t)(1u << 20)
/* Rows decompressed straight into the caller's buffer go in pieces below
 * zlib's 4 GiB limit on one call. */
#define GZ_DIRECT_BYTES (UINT64_C(1) << 30)

typedef struct gz_rows {
  dkm_source base;
  int fd;
  dkm__gzip gz;
  dkm__layout lay;
  uint64_t row_bytes;
  bool direct;  /* little-endian float32 without a prefix: no conversion */
  uint64_t pos; /* next row the stream will produce; UINT64_MAX after a
                   failure, which forces a rewind */
  unsigned char *stage;
  uint64_t stage_rows;
  char name[];
} gz_rows;

static dkm_status gz_truncated(dkm_ctx *ctx, gz_rows *s, uint64_t row_in_error) {
  s->pos = UINT64_MAX;
  return dkm__error(ctx, DKM_ERR_FORMAT,
                    "%s: truncated: expected %llu rows of %u values, data ends in row %llu (the "
                    "file changed since it was opened?)",
                    s->name, (unsigned long long)s->base.rows, s->base.dim,
                    (unsigned long long)row_in_error);
}

/* After the last row, decompresses on to the end of the file: zlib checks
 * each member's CRC and length only when it reaches the member's trailer.
 * The open already did this once; doing it again on every pass that reaches
 * the end catches a file changed since. */
static dkm_status gz_check_end(dkm_ctx *ctx, gz_rows *s) {
  unsigned char extra;
  size_t got = 0;
  dkm_status st = dkm__gzip_read(ctx, &s->gz, &extra, 1, &got);
  if (st == DKM_OK && got != 0)
    st = dkm__error(ctx, DKM_ERR_FORMAT,
                    "%s: more data than the %llu rows of %u values found at open (the file "
                    "changed since it was opened?)",
                    s->name, (unsigned long long)s->base.rows, s->base.dim);
  if (st != DKM_OK)
    s->pos = UINT64_MAX;
  return st;
}

/* Decompresses n rows at s->pos into dst (the stage, or the caller's buffer
 * for direct reads). */
static dkm_status gz_rows_into(dkm_ctx *ctx, gz_rows *s, uint64_t n, unsigned char *dst) {
  size_t need = (size_t)(n * s->row_bytes), got = 0;
  assert(n * s->row_bytes <= GZ_DIRECT_BYTES || n <= s->stage_rows);
  dkm_status st = dkm__gzip_read(ctx, &s->gz, dst, need, &got);
  if (st != DKM_OK) {
    s->pos = UINT64_MAX;
    return st;
  }
  if (got < need)
    return gz_truncated(ctx, s, s->pos + got / s->row_bytes);
  s->pos += n;
  if (s->pos == s->base.rows)
    return gz_check_end(ctx, s);
  return DKM_OK;
}

/* Back to row 0: the stream from its first byte, the header skipped. */
static dkm_status gz_rewind(dkm_ctx *ctx, gz_rows *s) {
  s->pos = UINT64_MAX;
  dkm_status st = dkm__gzip_rewind(ctx, &s->gz);
  size_t stage_bytes = (size_t)(s->stage_rows * s->row_bytes);
  for (uint64_t left = s->lay.data_offset; st == DKM_OK && left > 0;) {
    size_t n = (size_t)DKM__MIN(left, (uint64_t)stage_bytes), got = 0;
    st = dkm__gzip_read(ctx, &s->gz, s->stage, n, &got);
    if (st == DKM_OK && got < n)
      return gz_truncated(ctx, s, 0);
    left -= n;
  }
  if (st == DKM_OK)
    s->pos = 0;
  return st;
}

static dkm_status gz_read(dkm_source *self, dkm_ctx *ctx, uint64_t first, uint64_t count,
                          float *buf, const float **rows) {
  gz_rows *s = (gz_rows *)self;
  dkm_status st;
  if (first < s->pos && (st = gz_rewind(ctx, s)) != DKM_OK)
    return st;
  while (s->pos < first) { /* skip forward by decompressing */
    if ((st = gz_rows_into(ctx, s, DKM__MIN(first - s->pos, s->stage_rows), s->stage)) != DKM_OK)
      return st;
  }
  for (uint64_t done = 0; done < count;) {
    float *out = buf + done * self->dim;
    uint64_t n;
    if (s->direct) {
      n = DKM__MIN(count - done, GZ_DIRECT_BYTES / s->row_bytes);
      st = gz_rows_into(ctx, s, n, (unsigned char *)out);
    } else {
      n = DKM__MIN(count - done, s->stage_rows);
      uint64_t at = s->pos;
      st = gz_rows_into(ctx, s, n, s->stage);
      if (st == DKM_OK)
        st = dkm__convert_rows(ctx, s->name, &s->lay, s->row_bytes, s->stage, at, n, out);
    }
    if (st != DKM_OK)
      return st;
    done += n;
  }
  *rows = buf;
  return DKM_OK;
}

/* Frees a source, or a half-built one (fd < 0: the descriptor is the
 * caller's). */
static void gz_free(dkm_ctx *ctx, gz_rows *s) {
  dkm__gzip_end(ctx, &s->gz);
  if (s->fd >= 0)
    close(s->fd);
  dkm__free(ctx, s->stage);
  dkm__free(ctx, s);
}

static void gz_close(dkm_source *self) {
  gz_free(self->ctx, (gz_rows *)self);
}

static const dkm_source_methods gz_methods = {DKM_SOURCE_METHODS_VERSION, gz_read, NULL, gz_close};

dkm_status dkm__gzrows_open(dkm_ctx *ctx, const dkm__file *f, const dkm__layout *layout,
                            dkm_source **out) {
  uint64_t row_bytes;
  assert(layout->rows >= 1 && layout->dim >= 1 && layout->dim <= DKM__MAX_DIM);
  if (!dkm__layout_row_bytes(layout, &row_bytes))
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: %llu rows of %u values overflow", f->path,
                      (unsigned long long)layout->rows, layout->dim);
  size_t name_len = strlen(f->path) + 1;
  gz_rows *s = dkm__alloc_or_fail(ctx, sizeof *s + name_len, "gzip source");
  if (s == NULL)
    return DKM_ERR_NOMEM;
  memset(s, 0, sizeof *s);
  memcpy(s->name, f->path, name_len);
  s->fd = -1;
  dkm_status st = dkm__gzip_init(ctx, &s->gz, f->fd, s->name);
  if (st != DKM_OK) {
    dkm__free(ctx, s);
    return st;
  }
  dkm__source_init(&s->base, &gz_methods, ctx, layout->rows, layout->dim, layout->dtype,
                   layout->format, s->name);
  s->base.flags |= DKM_SOURCE_SEQUENTIAL;
  s->base.bytes = f->stored;
  s->lay = *layout;
  s->row_bytes = row_bytes; /* <= 4 + 8 MiB: the dim cap */
  s->direct = layout->dtype == DKM_DTYPE_F32 && layout->prefix == 0 && !layout->big_endian;
  s->stage_rows = DKM__MIN(DKM__MAX(1, GZ_STAGE_BYTES / row_bytes), layout->rows);
  s->stage = dkm__alloc_or_fail(ctx, (size_t)(s->stage_rows * row_bytes), "gzip read buffer");
  st = s->stage == NULL ? DKM_ERR_NOMEM : gz_rewind(ctx, s);
  if (st != DKM_OK) {
    gz_free(ctx, s);
    return st;
  }
  s->fd = f->fd;
  *out = &s->base;
  return DKM_OK;
}
