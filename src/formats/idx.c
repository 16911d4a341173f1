/*
 * idx.c - the IDX format of MNIST and its family (Fashion-MNIST, KMNIST):
 * two zero bytes, a type byte, the number of dimensions, then every
 * dimension as a big-endian uint32, then the values, big-endian. The first
 * dimension counts rows; a row is all the other dimensions flattened (a
 * 28x28 image is a row of 784 values).
 *
 * The files are usually distributed gzip-compressed. A plain file is read
 * with pread like every fixed-stride format; a compressed one through zlib's
 * inflate, fed by pread, with zlib's memory coming from the context. A
 * compressed stream cannot seek, so that source is DKM_SOURCE_SEQUENTIAL:
 * reads move forward, skipping by decompressing, and a read behind the
 * current position starts again from the beginning of the file (correct but
 * slow; the engine never does it).
 */
#include <assert.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "formats/file.h"

/* Enough for any real file (MNIST has 3); bounds the header. */
#define IDX_MAX_NDIM 15
#define GZ_IN_BYTES (64u * 1024u)
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
  z_stream z;
  int z_ready;        /* inflateInit2 succeeded: inflateEnd is due */
  unsigned char *in;  /* compressed bytes, GZ_IN_BYTES */
  uint64_t in_offset; /* file offset of the next compressed byte to read */
  int in_eof;         /* the file has no more compressed bytes */
  int member_end;     /* the current gzip member is complete */
  uint64_t header_bytes;
  uint64_t row_bytes;
  uint64_t pos; /* next row the stream will produce; UINT64_MAX after
                   a failure, which forces a rewind */
  unsigned char *stage;
  uint64_t stage_rows;
  char name[];
} gz_source;

static voidpf gz_zalloc(voidpf opaque, uInt items, uInt size) {
  size_t bytes;
  if (__builtin_mul_overflow((size_t)items, (size_t)size, &bytes))
    return Z_NULL;
  return dkm__alloc((dkm_ctx *)opaque, bytes);
}

static void gz_zfree(voidpf opaque, voidpf ptr) {
  dkm__free((dkm_ctx *)opaque, ptr);
}

/* Decompresses up to n bytes into dst; *got < n only at the end of the data.
 * Gzip members that follow each other (as `cat a.gz b.gz` makes) are one
 * stream, as gzip(1) reads them. */
static dkm_status gz_inflate(dkm_ctx *ctx, gz_source *s, unsigned char *dst, size_t n,
                             size_t *got) {
  assert(n <= UINT32_MAX);
  s->z.next_out = dst;
  s->z.avail_out = (uInt)n;
  while (s->z.avail_out > 0) {
    if (s->z.avail_in == 0 && !s->in_eof) {
      ssize_t r;
      do
        r = pread(s->fd, s->in, GZ_IN_BYTES, (off_t)s->in_offset);
      while (r < 0 && errno == EINTR);
      if (r < 0) {
        char tmp[128];
        return dkm__error(ctx, DKM_ERR_IO, "%s: read failed at byte %llu: %s", s->name,
                          (unsigned long long)s->in_offset, strerror_r(errno, tmp, sizeof tmp));
      }
      if (r == 0)
        s->in_eof = 1;
      s->in_offset += (uint64_t)r;
      s->z.next_in = s->in;
      s->z.avail_in = (uInt)r;
    }
    if (s->member_end) {
      if (s->z.avail_in == 0)
        break; /* the end of the last member is the end of the data */
      if (inflateReset(&s->z) != Z_OK)
        return dkm__error(ctx, DKM_ERR_INTERNAL, "%s: inflateReset failed", s->name);
      s->member_end = 0;
    }
    int ret = inflate(&s->z, Z_NO_FLUSH);
    if (ret == Z_STREAM_END) {
      s->member_end = 1;
    } else if (ret == Z_BUF_ERROR && s->z.avail_in == 0 && s->in_eof) {
      return dkm__error(ctx, DKM_ERR_FORMAT,
                        "%s: corrupt gzip data: the compressed stream ends unexpectedly "
                        "(truncated .gz file?)",
                        s->name);
    } else if (ret == Z_MEM_ERROR) {
      return dkm__error(ctx, DKM_ERR_NOMEM, "%s: out of memory in zlib", s->name);
    } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
      return dkm__error(ctx, DKM_ERR_FORMAT, "%s: corrupt gzip data: %s", s->name,
                        s->z.msg != NULL ? s->z.msg : "inflate failed");
    }
  }
  *got = n - s->z.avail_out;
  return DKM_OK;
}

/* Back to the first byte of the file, with no header read yet. */
static dkm_status gz_restart(dkm_ctx *ctx, gz_source *s) {
  if (inflateReset(&s->z) != Z_OK)
    return dkm__error(ctx, DKM_ERR_INTERNAL, "%s: inflateReset failed", s->name);
  s->z.avail_in = 0;
  s->in_offset = 0;
  s->in_eof = 0;
  s->member_end = 0;
  s->pos = UINT64_MAX;
  return DKM_OK;
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
  dkm_status st = gz_inflate(ctx, s, &extra, 1, &got);
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
  dkm_status st = gz_inflate(ctx, s, s->stage, need, &got);
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
    st = gz_inflate(ctx, s, header, (size_t)s->header_bytes, &got);
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
  if (s->z_ready)
    inflateEnd(&s->z);
  close(s->fd);
  dkm__free(ctx, s->in);
  dkm__free(ctx, s->stage);
  dkm__free(ctx, s);
}

static const dkm_source_methods gz_methods = {DKM_SOURCE_METHODS_VERSION, gz_read, NULL, gz_close};

/* Frees a half-built gzip source but leaves the descriptor to the caller. */
static void gz_discard(dkm_ctx *ctx, gz_source *s) {
  if (s->z_ready)
    inflateEnd(&s->z);
  dkm__free(ctx, s->in);
  dkm__free(ctx, s->stage);
  dkm__free(ctx, s);
}

static dkm_status gz_open_header(dkm_ctx *ctx, gz_source *s, idx_header *h) {
  unsigned char head[4 + 4 * IDX_MAX_NDIM];
  size_t got = 0;
  dkm_status st = gz_inflate(ctx, s, head, 4, &got);
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
  st = gz_inflate(ctx, s, head + 4, (size_t)h->header_bytes - 4, &got);
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
  s->in = dkm__alloc_or_fail(ctx, GZ_IN_BYTES, "gzip input buffer");
  if (s->in == NULL) {
    gz_discard(ctx, s);
    return DKM_ERR_NOMEM;
  }
  s->z.zalloc = gz_zalloc;
  s->z.zfree = gz_zfree;
  s->z.opaque = ctx;
  /* 16 + MAX_WBITS: a gzip wrapper, not zlib's own. */
  int zret = inflateInit2(&s->z, 16 + MAX_WBITS);
  if (zret != Z_OK) {
    gz_discard(ctx, s);
    return dkm__error(ctx, zret == Z_MEM_ERROR ? DKM_ERR_NOMEM : DKM_ERR_INTERNAL,
                      "%s: cannot start zlib (%d)", f->path, zret);
  }
  s->z_ready = 1;
  idx_header h = {0};
  dkm_status st = gz_open_header(ctx, s, &h);
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
