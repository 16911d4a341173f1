/*
 * idx.c - the IDX format of MNIST and its family (Fashion-MNIST, KMNIST):
 * two zero bytes, a type byte, the number of dimensions, then every
 * dimension as a big-endian uint32, then the values, big-endian. The first
 * dimension counts rows; a row is all the other dimensions flattened (a
 * 28x28 image is a row of 784 values).
 *
 * The files are usually distributed gzip-compressed. A plain file is read
 * with pread like every fixed-stride format; a compressed one through
 * gzip.c's reader (zlib's inflate fed by pread; several members and zero
 * padding after the last are read as gzip(1) reads them). A
 * compressed stream cannot seek, so that source is DKM_SOURCE_SEQUENTIAL:
 * reads move forward, skipping by decompressing, and a read behind the
 * current position starts again from the beginning of the file (correct but
 * slow; the engine never does it).
 */
#include <assert.h>
#include <string.h>
#include <unistd.h>

#include "formats/file.h"
#include "formats/gzip.h"

/* Enough for any real file (MNIST has 3); bounds the header. */
#define IDX_MAX_NDIM 15
#define GZ_STAGE_BYTES (size_t)(1u << 20)

typedef struct idx_header {
  dkm_dtype dtype;
  unsigned ndim;
  uint64_t rows;
  uint32_t dim;
  uint64_t header_bytes; /* 4 + 4 * ndim */
} idx_header;

/* The type byte. int16 (0x0B) and int32 (0x0C) exist in the format but have
 * no dkm_dtype; they are refused by name. */
static int idx_dtype(unsigned char type, dkm_dtype *out) {
  switch (type) {
  case 0x08:
    *out = DKM_DTYPE_U8;
    return 1;
  case 0x09:
    *out = DKM_DTYPE_I8;
    return 1;
  case 0x0D:
    *out = DKM_DTYPE_F32;
    return 1;
  case 0x0E:
    *out = DKM_DTYPE_F64;
    return 1;
  default:
    return 0;
  }
}

/* Checks the 4 magic bytes. ctx may be NULL (sniffing): nothing recorded. */
static dkm_status idx_check_magic(dkm_ctx *ctx, const char *path, const unsigned char *m,
                                  idx_header *h) {
  if (m[0] != 0 || m[1] != 0)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: bad IDX magic %02x %02x %02x %02x (expected 00 00 type ndims)", path,
                      m[0], m[1], m[2], m[3]);
  if (!idx_dtype(m[2], &h->dtype))
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: bad IDX magic: unsupported type 0x%02x (supported: 0x08 uint8, 0x09 "
                      "int8, 0x0D float32, 0x0E float64)",
                      path, m[2]);
  if (m[3] == 0 || m[3] > IDX_MAX_NDIM)
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: bad IDX magic: %u dimensions (supported: 1 to %d)",
                      path, m[3], IDX_MAX_NDIM);
  h->ndim = m[3];
  h->header_bytes = 4 + 4 * (uint64_t)h->ndim;
  return DKM_OK;
}

/* Reads the shape from the big-endian dims that follow the magic. */
static dkm_status idx_check_dims(dkm_ctx *ctx, const char *path, const unsigned char *dims,
                                 idx_header *h) {
  h->rows = dkm__load_be32(dims);
  if (h->rows == 0)
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: IDX header says 0 rows", path);
  uint64_t dim = 1;
  for (unsigned i = 1; i < h->ndim; i++) {
    uint32_t d = dkm__load_be32(dims + 4 * i);
    if (d == 0)
      return dkm__error(ctx, DKM_ERR_FORMAT, "%s: IDX dimension %u of %u is 0", path, i + 1,
                        h->ndim);
    dim *= d; /* stays below 2^52: checked against the cap at every step */
    if (dim > DKM__MAX_DIM)
      return dkm__error(ctx, DKM_ERR_FORMAT,
                        "%s: IDX rows of %llu or more values are absurdly large (limit %u, 1<<20)",
                        path, (unsigned long long)dim, DKM__MAX_DIM);
  }
  h->dim = (uint32_t)dim;
  return DKM_OK;
}

bool dkm__idx_sniff(const unsigned char *head, size_t n, uint64_t file_size) {
  idx_header h = {0};
  if (n < 4 || idx_check_magic(NULL, "", head, &h) != DKM_OK || n < h.header_bytes ||
      idx_check_dims(NULL, "", head + 4, &h) != DKM_OK)
    return false;
  uint64_t data = h.rows * h.dim * dkm_dtype_size(h.dtype); /* < 2^32 * 2^20 * 8 */
  return file_size >= h.header_bytes && file_size - h.header_bytes == data;
}

/* --- uncompressed --------------------------------------------------------- */

static dkm_status open_plain(dkm_ctx *ctx, const dkm__file *f, dkm_source **out) {
  unsigned char head[4 + 4 * IDX_MAX_NDIM];
  idx_header h = {0};
  if (f->size < 4)
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: bad IDX magic: file of %llu bytes is too short",
                      f->path, (unsigned long long)f->size);
  dkm_status st = dkm__pread_full(ctx, f->fd, f->path, head, 4, 0);
  if (st == DKM_OK)
    st = idx_check_magic(ctx, f->path, head, &h);
  if (st != DKM_OK)
    return st;
  if (f->size < h.header_bytes)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: truncated IDX header: %u dimensions need %llu bytes, the file has %llu",
                      f->path, h.ndim, (unsigned long long)h.header_bytes,
                      (unsigned long long)f->size);
  st = dkm__pread_full(ctx, f->fd, f->path, head + 4, (size_t)h.header_bytes - 4, 4);
  if (st == DKM_OK)
    st = idx_check_dims(ctx, f->path, head + 4, &h);
  if (st != DKM_OK)
    return st;
  dkm__layout lay = {DKM_FORMAT_IDX, h.dtype, h.rows, h.dim, h.header_bytes, 0, true};
  uint64_t row_bytes;
  if (!dkm__layout_row_bytes(&lay, &row_bytes))
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: IDX shape overflows", f->path);
  uint64_t need = h.rows * row_bytes, have = f->size - h.header_bytes;
  if (have < need)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: truncated: expected %llu rows of %u values (%llu bytes of data), data "
                      "ends in row %llu",
                      f->path, (unsigned long long)h.rows, h.dim, (unsigned long long)need,
                      (unsigned long long)(have / row_bytes));
  if (have > need)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: IDX shape disagrees with the file size: %llu rows of %u values need "
                      "%llu bytes of data, the file has %llu more",
                      f->path, (unsigned long long)h.rows, h.dim, (unsigned long long)need,
                      (unsigned long long)(have - need));
  return dkm__strided_open(ctx, f, &lay, out);
}

/* --- gzip-compressed --------------------------------------------------------- */

typedef struct gz_source {
  dkm_source base;
  int fd;
  dkm__gzip gz;
  uint64_t header_bytes;
  uint64_t row_bytes;
  uint64_t pos; /* next row the stream will produce; UINT64_MAX after
                   a failure, which forces a rewind */
  unsigned char *stage;
  uint64_t stage_rows;
  char name[];
} gz_source;

/* Back to the first byte of the file, with no header read yet. */
static dkm_status gz_restart(dkm_ctx *ctx, gz_source *s) {
  s->pos = UINT64_MAX;
  return dkm__gzip_rewind(ctx, &s->gz);
}

static dkm_status gz_truncated(dkm_ctx *ctx, gz_source *s, uint64_t row_in_error) {
  s->pos = UINT64_MAX;
  return dkm__error(
      ctx, DKM_ERR_FORMAT, "%s: truncated: expected %llu rows of %u values, data ends in row %llu",
      s->name, (unsigned long long)s->base.rows, s->base.dim, (unsigned long long)row_in_error);
}

/* After the last row, decompresses on to the end of the file: zlib checks
 * each member's CRC and length only when it reaches the member's trailer,
 * and corrupt data that still inflates (a stored block, say) is caught only
 * there. Data beyond the shape the header gives is an error too, as it is
 * for a plain IDX file. */
static dkm_status gz_check_end(dkm_ctx *ctx, gz_source *s) {
  unsigned char extra;
  size_t got = 0;
  dkm_status st = dkm__gzip_read(ctx, &s->gz, &extra, 1, &got);
  if (st == DKM_OK && got != 0)
    st = dkm__error(ctx, DKM_ERR_FORMAT,
                    "%s: IDX shape disagrees with the data: more than the %llu rows of %u values "
                    "the header gives",
                    s->name, (unsigned long long)s->base.rows, s->base.dim);
  if (st != DKM_OK)
    s->pos = UINT64_MAX;
  return st;
}

/* Decompresses n rows at s->pos into the stage. */
static dkm_status gz_rows(dkm_ctx *ctx, gz_source *s, uint64_t n) {
  assert(n <= s->stage_rows);
  size_t need = (size_t)(n * s->row_bytes), got = 0;
  dkm_status st = dkm__gzip_read(ctx, &s->gz, s->stage, need, &got);
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

/* Rewinds to row 0 (decompressing the header again). */
static dkm_status gz_rewind(dkm_ctx *ctx, gz_source *s) {
  unsigned char header[4 + 4 * IDX_MAX_NDIM];
  size_t got = 0;
  dkm_status st = gz_restart(ctx, s);
  if (st == DKM_OK)
    st = dkm__gzip_read(ctx, &s->gz, header, (size_t)s->header_bytes, &got);
  if (st != DKM_OK)
    return st;
  if (got < s->header_bytes) /* the file changed since it was opened */
    return gz_truncated(ctx, s, 0);
  s->pos = 0;
  return DKM_OK;
}

static dkm_status gz_read(dkm_source *self, dkm_ctx *ctx, uint64_t first, uint64_t count,
                          float *buf, const float **rows) {
  gz_source *s = (gz_source *)self;
  dkm_status st;
  if (first < s->pos && (st = gz_rewind(ctx, s)) != DKM_OK)
    return st;
  while (s->pos < first) { /* skip forward by decompressing */
    if ((st = gz_rows(ctx, s, DKM__MIN(first - s->pos, s->stage_rows))) != DKM_OK)
      return st;
  }
  size_t elem = dkm_dtype_size(self->dtype);
  for (uint64_t done = 0; done < count;) {
    uint64_t n = DKM__MIN(count - done, s->stage_rows);
    if ((st = gz_rows(ctx, s, n)) != DKM_OK)
      return st;
    size_t values = (size_t)(n * self->dim);
    dkm__byteswap(s->stage, values, elem); /* IDX is big-endian */
    dkm__convert_to_f32(self->dtype, s->stage, values, buf + done * self->dim);
    done += n;
  }
  *rows = buf;
  return DKM_OK;
}

static void gz_close(dkm_source *self) {
  gz_source *s = (gz_source *)self;
  dkm_ctx *ctx = self->ctx;
  dkm__gzip_end(ctx, &s->gz);
  close(s->fd);
  dkm__free(ctx, s->stage);
  dkm__free(ctx, s);
}

static const dkm_source_methods gz_methods = {DKM_SOURCE_METHODS_VERSION, gz_read, NULL, gz_close};

/* Frees a half-built gzip source but leaves the descriptor to the caller. */
static void gz_discard(dkm_ctx *ctx, gz_source *s) {
  dkm__gzip_end(ctx, &s->gz);
  dkm__free(ctx, s->stage);
  dkm__free(ctx, s);
}

static dkm_status gz_open_header(dkm_ctx *ctx, gz_source *s, idx_header *h) {
  unsigned char head[4 + 4 * IDX_MAX_NDIM];
  size_t got = 0;
  dkm_status st = dkm__gzip_read(ctx, &s->gz, head, 4, &got);
  if (st != DKM_OK)
    return st;
  if (got < 4)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: truncated IDX header: the gzip data holds only %zu bytes", s->name, got);
  if (head[0] != 0 || head[1] != 0)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: bad IDX magic %02x %02x %02x %02x in gzip-compressed data (only IDX "
                      "files may be gzip-compressed)",
                      s->name, head[0], head[1], head[2], head[3]);
  if ((st = idx_check_magic(ctx, s->name, head, h)) != DKM_OK)
    return st;
  st = dkm__gzip_read(ctx, &s->gz, head + 4, (size_t)h->header_bytes - 4, &got);
  if (st != DKM_OK)
    return st;
  if (got < h->header_bytes - 4)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: truncated IDX header: %u dimensions need %llu bytes", s->name, h->ndim,
                      (unsigned long long)h->header_bytes);
  return idx_check_dims(ctx, s->name, head + 4, h);
}

static dkm_status open_gzip(dkm_ctx *ctx, const dkm__file *f, dkm_source **out) {
  size_t name_len = strlen(f->path) + 1;
  gz_source *s = dkm__alloc_or_fail(ctx, sizeof *s + name_len, "gzip source");
  if (s == NULL)
    return DKM_ERR_NOMEM;
  memset(s, 0, sizeof *s);
  memcpy(s->name, f->path, name_len);
  s->fd = f->fd;
  dkm_status st = dkm__gzip_init(ctx, &s->gz, f->fd, s->name);
  if (st != DKM_OK) {
    dkm__free(ctx, s);
    return st;
  }
  idx_header h = {0};
  st = gz_open_header(ctx, s, &h);
  if (st != DKM_OK) {
    gz_discard(ctx, s);
    return st;
  }
  dkm__source_init(&s->base, &gz_methods, ctx, h.rows, h.dim, h.dtype, DKM_FORMAT_IDX, s->name);
  s->base.flags |= DKM_SOURCE_SEQUENTIAL;
  s->base.bytes = f->size;
  s->header_bytes = h.header_bytes;
  s->row_bytes = (uint64_t)h.dim * dkm_dtype_size(h.dtype); /* <= 8 MiB */
  s->pos = 0;
  s->stage_rows = DKM__MIN(DKM__MAX(1, GZ_STAGE_BYTES / s->row_bytes), h.rows);
  s->stage = dkm__alloc_or_fail(ctx, (size_t)(s->stage_rows * s->row_bytes), "gzip read buffer");
  if (s->stage == NULL) {
    gz_discard(ctx, s);
    return DKM_ERR_NOMEM;
  }
  *out = &s->base;
  return DKM_OK;
}

dkm_status dkm__open_idx(dkm_ctx *ctx, const dkm__file *f, dkm_source **out) {
  unsigned char m[2] = {0, 0};
  if (f->size >= 2) {
    dkm_status st = dkm__pread_full(ctx, f->fd, f->path, m, 2, 0);
    if (st != DKM_OK)
      return st;
  }
  if (m[0] == 0x1f && m[1] == 0x8b)
    return open_gzip(ctx, f, out);
  return open_plain(ctx, f, out);
}
