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

/* Whether the file's data looks like rows of the given kind: the first
 * dimension field d is sane, the size is a whole number of rows of that d,
 * and the rows after the first (up to 16 of them) start with d too. */
static bool looks_like(const dkm__file *f, int32_t d, size_t elem) {
  uint64_t row_bytes = 4 + (uint64_t)d * elem;
  if (f->size % row_bytes != 0)
    return false;
  uint64_t rows = f->size / row_bytes;
  for (uint64_t r = 1; r < rows && r < 16; r++) {
    unsigned char b[4];
    if (dkm__file_read(NULL, f, b, 4, r * row_bytes) != DKM_OK)
      break; /* beyond what a gzip file keeps of its start: enough seen */
    if ((int32_t)dkm__load_le32(b) != d)
      return false;
  }
  return true;
}

dkm_format dkm__vecs_sniff(const dkm__file *f, const unsigned char *head, size_t n) {
  if (n < 4)
    return DKM_FORMAT_AUTO;
  int32_t d = (int32_t)dkm__load_le32(head);
  if (d <= 0 || (uint32_t)d > DKM__MAX_DIM)
    return DKM_FORMAT_AUTO;
  bool fv = looks_like(f, d, 4), bv = looks_like(f, d, 1);
  if (fv == bv) /* neither, or (a one-row file, say) both: the name must tell */
    return DKM_FORMAT_AUTO;
  return fv ? DKM_FORMAT_FVECS : DKM_FORMAT_BVECS;
}
