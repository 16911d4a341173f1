/*
 * raw.c - headerless rows: dim values of one dtype per row, back to back,
 * native (little-endian) byte order. Nothing in the file says its shape, so
 * the caller gives dim and dtype and the file size gives the rows.
 */
#include "formats/file.h"

dkm_status dkm__open_raw(dkm_ctx *ctx, const dkm__file *f, uint32_t dim, dkm_dtype dtype,
                         dkm_source **out) {
  if (dim == 0)
    return dkm__error(ctx, DKM_ERR_PARAM,
                      "%s: raw rows have no header: the dimension must be given (raw_dim, "
                      "e.g. --dim)",
                      f->path);
  if (dim > DKM__MAX_DIM)
    return dkm__error(ctx, DKM_ERR_PARAM,
                      "%s: raw dimension %u is absurdly large (limit %u, 1<<20)", f->path, dim,
                      DKM__MAX_DIM);
  size_t elem = dkm_dtype_size(dtype);
  if (elem == 0)
    return dkm__error(ctx, DKM_ERR_PARAM, "%s: unknown raw dtype %d", f->path, (int)dtype);
  uint64_t row_bytes = (uint64_t)dim * elem;
  if (f->size % row_bytes != 0)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: truncated last row: the file size %llu is not a multiple of the row "
                      "size %llu (%u x %s); %llu full rows, then %llu stray bytes",
                      f->path, (unsigned long long)f->size, (unsigned long long)row_bytes, dim,
                      dkm_dtype_name(dtype), (unsigned long long)(f->size / row_bytes),
                      (unsigned long long)(f->size % row_bytes));
  dkm__layout lay = {DKM_FORMAT_RAW, dtype, f->size / row_bytes, dim, 0, 0, false};
  return dkm__layout_open(ctx, f, &lay, out);
}
