/*
 * idx.c - the IDX format of MNIST and its family (Fashion-MNIST, KMNIST):
 * two zero bytes, a type byte, the number of dimensions, then every
 * dimension as a big-endian uint32, then the values, big-endian. The first
 * dimension counts rows; a row is all the other dimensions flattened (a
 * 28x28 image is a row of 784 values).
 *
 * The files are usually distributed gzip-compressed; like every fixed-stride
 * format they are then read through gzrows.c (file.c tells gzip by its magic
 * bytes and hands this parser the decompressed header).
 */
#include <assert.h>
#include <string.h>
#include <unistd.h>

#include "formats/file.h"

/* Enough for any real file (MNIST has 3); bounds the header. */
#define IDX_MAX_NDIM 15

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
  if (file_size == UINT64_MAX)
    return true;                                            /* the header alone */
  uint64_t data = h.rows * h.dim * dkm_dtype_size(h.dtype); /* < 2^32 * 2^20 * 8 */
  return file_size >= h.header_bytes && file_size - h.header_bytes == data;
}

/* --- the header ------------------------------------------------------------- */

static dkm_status open_header(dkm_ctx *ctx, const dkm__file *f, dkm_source **out) {
  unsigned char head[4 + 4 * IDX_MAX_NDIM];
  idx_header h = {0};
  if (f->size < 4)
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: bad IDX magic: file of %llu bytes is too short",
                      f->path, (unsigned long long)f->size);
  dkm_status st = dkm__file_read(ctx, f, head, 4, 0);
  if (st == DKM_OK)
    st = idx_check_magic(ctx, f->path, head, &h);
  if (st != DKM_OK)
    return st;
  if (f->size < h.header_bytes)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: truncated IDX header: %u dimensions need %llu bytes, the file has %llu",
                      f->path, h.ndim, (unsigned long long)h.header_bytes,
                      (unsigned long long)f->size);
  st = dkm__file_read(ctx, f, head + 4, (size_t)h.header_bytes - 4, 4);
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
  return dkm__layout_open(ctx, f, &lay, out);
}

dkm_status dkm__open_idx(dkm_ctx *ctx, const dkm__file *f, dkm_source **out) {
  return open_header(ctx, f, out);
}
