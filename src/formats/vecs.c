/*
 * vecs.c - the .fvecs and .bvecs formats of the TEXMEX corpus (SIFT1M,
 * SIFT1B): every row is a little-endian int32 dimension followed by that many
 * float32 (fvecs) or uint8 (bvecs) values. There is no file header, so the
 * first row's dimension fixes the row size and the file size gives the row
 * count; every row's own dimension field is checked when it is read.
 */
#include "formats/file.h"

dkm_status dkm__open_vecs(dkm_ctx *ctx, const dkm__file *f, dkm_format format, dkm_source **out) {
  const char *kind = format == DKM_FORMAT_FVECS ? "fvecs" : "bvecs";
  dkm__layout lay = {format, format == DKM_FORMAT_FVECS ? DKM_DTYPE_F32 : DKM_DTYPE_U8, 0, 0, 0, 4,
                     false};
  unsigned char head[4];
  if (f->size < sizeof head)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: truncated last row: a %s file of %llu bytes cannot hold even the "
                      "4-byte dimension of its first row",
                      f->path, kind, (unsigned long long)f->size);
  dkm_status st = dkm__file_read(ctx, f, head, sizeof head, 0);
  if (st != DKM_OK)
    return st;
  int32_t d = (int32_t)dkm__load_le32(head);
  if (d <= 0)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: row 0 has dimension %d; a %s dimension must be "
                      "at least 1",
                      f->path, (int)d, kind);
  if ((uint32_t)d > DKM__MAX_DIM)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: row 0 has dimension %d, absurdly large (limit %u, 1<<20): is this "
                      "really a %s file?",
                      f->path, (int)d, DKM__MAX_DIM, kind);
  lay.dim = (uint32_t)d;
  uint64_t row_bytes = 4 + (uint64_t)lay.dim * dkm_dtype_size(lay.dtype);
  if (f->size % row_bytes != 0)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: truncated last row: the file size %llu is not a multiple of the row "
                      "size %llu (4 + %u x %zu bytes); %llu full rows, then %llu stray bytes",
                      f->path, (unsigned long long)f->size, (unsigned long long)row_bytes, lay.dim,
                      dkm_dtype_size(lay.dtype), (unsigned long long)(f->size / row_bytes),
                      (unsigned long long)(f->size % row_bytes));
  lay.rows = f->size / row_bytes;
  return dkm__layout_open(ctx, f, &lay, out);
}
