/*
 * npy.c - numpy .npy files, versions 1.0, 2.0 and 3.0: a magic string, a
 * version, a header length, then a Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (1000, 128), }
 * followed by the array. We accept 2-D C-order arrays of little-endian (or
 * byte-order-free) f4, f2, f8, u1 and i1, and nothing else: every other case
 * is a clear error rather than a guess.
 */
#include <string.h>

#include "formats/file.h"

/* numpy itself refuses headers over 10000 bytes unless told otherwise; a
 * little more room costs nothing and bounds the allocation. */
#define NPY_MAX_HEADER (64u * 1024u)
#define NPY_MAX_NDIM 32

typedef struct npy_header {
  char descr[16];
  int has_descr, has_order, has_shape;
  int fortran;
  int ndim;
  uint64_t shape[NPY_MAX_NDIM];
} npy_header;

/* A cursor over the header text; every parse step reports through err. */
typedef struct npy_parser {
  const char *begin, *p, *end;
  const char *path;
  dkm_ctx *ctx;
} npy_parser;

static dkm_status npy_fail(npy_parser *ps, const char *what) {
  return dkm__error(ps->ctx, DKM_ERR_FORMAT, "%s: bad npy header: %s at offset %ld", ps->path, what,
                    (long)(ps->p - ps->begin));
}

static void skip_ws(npy_parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
    ps->p++;
}

static bool accept(npy_parser *ps, char c) {
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == c) {
    ps->p++;
    return true;
  }
  return false;
}

/* A quoted string (either quote, no escapes: numpy never writes any). */
static dkm_status parse_string(npy_parser *ps, char *out, size_t cap) {
  skip_ws(ps);
  if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"'))
    return npy_fail(ps, "expected a quoted string");
  char q = *ps->p++;
  size_t n = 0;
  while (ps->p < ps->end && *ps->p != q) {
    if (n + 1 >= cap)
      return npy_fail(ps, "string too long");
    out[n++] = *ps->p++;
  }
  if (ps->p >= ps->end)
    return npy_fail(ps, "unterminated string");
  ps->p++;
  out[n] = '\0';
  return DKM_OK;
}

static bool accept_word(npy_parser *ps, const char *word) {
  skip_ws(ps);
  size_t n = strlen(word);
  if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, word, n) == 0) {
    ps->p += n;
    return true;
  }
  return false;
}

static dkm_status parse_shape(npy_parser *ps, npy_header *h) {
  if (!accept(ps, '('))
    return npy_fail(ps, "shape is not a tuple");
  h->ndim = 0;
  for (;;) {
    if (accept(ps, ')'))
      return DKM_OK;
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
      return npy_fail(ps, "shape holds something other than non-negative integers");
    uint64_t v = 0;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
      if (v > (UINT64_MAX - 9) / 10)
        return npy_fail(ps, "shape value too large");
      v = v * 10 + (uint64_t)(*ps->p++ - '0');
    }
    /* Python 2 wrote longs with a trailing L. */
    if (ps->p < ps->end && *ps->p == 'L')
      ps->p++;
    if (h->ndim == NPY_MAX_NDIM)
      return npy_fail(ps, "too many dimensions");
    h->shape[h->ndim++] = v;
    if (accept(ps, ','))
      continue;
    if (accept(ps, ')'))
      return DKM_OK;
    return npy_fail(ps, "expected ',' or ')' in shape");
  }
}

static dkm_status parse_dict(npy_parser *ps, npy_header *h) {
  if (!accept(ps, '{'))
    return npy_fail(ps, "not a dict");
  for (;;) {
    if (accept(ps, '}'))
      break;
    char key[32];
    dkm_status st = parse_string(ps, key, sizeof key);
    if (st != DKM_OK)
      return st;
    if (!accept(ps, ':'))
      return npy_fail(ps, "expected ':' after a key");
    if (strcmp(key, "descr") == 0) {
      /* A structured dtype is a list, not a string: say so plainly. */
      skip_ws(ps);
      if (ps->p < ps->end && *ps->p == '[')
        return dkm__error(ps->ctx, DKM_ERR_FORMAT,
                          "%s: unsupported npy dtype: structured arrays are not rows of numbers",
                          ps->path);
      st = parse_string(ps, h->descr, sizeof h->descr);
      h->has_descr = 1;
    } else if (strcmp(key, "fortran_order") == 0) {
      if (accept_word(ps, "True"))
        h->fortran = 1;
      else if (accept_word(ps, "False"))
        h->fortran = 0;
      else
        return npy_fail(ps, "fortran_order is neither True nor False");
      h->has_order = 1;
    } else if (strcmp(key, "shape") == 0) {
      st = parse_shape(ps, h);
      h->has_shape = 1;
    } else {
      return dkm__error(ps->ctx, DKM_ERR_FORMAT, "%s: bad npy header: unexpected key '%s'",
                        ps->path, key);
    }
    if (st != DKM_OK)
      return st;
    if (accept(ps, ','))
      continue;
    if (accept(ps, '}'))
      break;
    return npy_fail(ps, "expected ',' or '}'");
  }
  if (!h->has_descr || !h->has_order || !h->has_shape)
    return dkm__error(ps->ctx, DKM_ERR_FORMAT, "%s: bad npy header: missing key '%s'", ps->path,
                      !h->has_descr   ? "descr"
                      : !h->has_order ? "fortran_order"
                                      : "shape");
  return DKM_OK;
}

/* Maps a descr to our dtype; the error says what is wrong with it. */
static dkm_status npy_dtype(dkm_ctx *ctx, const char *path, const char *descr, dkm_dtype *out) {
  static const struct {
    const char *type;
    dkm_dtype dtype;
  } types[] = {{"f4", DKM_DTYPE_F32},
               {"f2", DKM_DTYPE_F16},
               {"f8", DKM_DTYPE_F64},
               {"u1", DKM_DTYPE_U8},
               {"i1", DKM_DTYPE_I8}};
  char order = descr[0];
  const char *type = descr + (order == '<' || order == '>' || order == '|' || order == '=');
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    if (strcmp(type, types[i].type) != 0)
      continue;
    size_t size = dkm_dtype_size(types[i].dtype);
    /* Single bytes have no order; wider values must say little-endian. */
    if (order == '>' && size > 1)
      return dkm__error(ctx, DKM_ERR_FORMAT,
                        "%s: unsupported npy dtype '%s': big-endian data (save it little-endian, "
                        "e.g. a.astype('<%s'))",
                        path, descr, type);
    if (size > 1 && order != '<')
      return dkm__error(ctx, DKM_ERR_FORMAT,
                        "%s: unsupported npy dtype '%s': byte order must be '<'", path, descr);
    *out = types[i].dtype;
    return DKM_OK;
  }
  return dkm__error(ctx, DKM_ERR_FORMAT,
                    "%s: unsupported npy dtype '%s' (supported: <f4, <f2, <f8, |u1, |i1)", path,
                    descr);
}

dkm_status dkm__open_npy(dkm_ctx *ctx, const dkm__file *f, dkm_source **out) {
  unsigned char pre[12];
  if (f->size < 10)
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: bad npy magic: file too short (%llu bytes)",
                      f->path, (unsigned long long)f->size);
  size_t pre_len = (size_t)DKM__MIN((uint64_t)sizeof pre, f->size);
  dkm_status st = dkm__file_read(ctx, f, pre, pre_len, 0);
  if (st != DKM_OK)
    return st;
  if (memcmp(pre, "\x93NUMPY", 6) != 0)
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: bad npy magic (expected \\x93NUMPY)", f->path);
  unsigned major = pre[6], minor = pre[7];
  uint64_t start, header_len;
  if (major == 1 && minor == 0) {
    start = 10;
    header_len = dkm__load_le16(pre + 8);
  } else if ((major == 2 || major == 3) && minor == 0) {
    if (pre_len < 12)
      return dkm__error(ctx, DKM_ERR_FORMAT, "%s: npy header longer than the file", f->path);
    start = 12;
    header_len = dkm__load_le32(pre + 8);
  } else {
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: unsupported npy version %u.%u (supported: 1.0, 2.0, 3.0)", f->path,
                      major, minor);
  }
  if (header_len > f->size - start)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: npy header longer than the file (header says %llu bytes, file has "
                      "%llu after the preamble)",
                      f->path, (unsigned long long)header_len,
                      (unsigned long long)(f->size - start));
  if (header_len > NPY_MAX_HEADER)
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: npy header of %llu bytes is too long (limit %u)",
                      f->path, (unsigned long long)header_len, NPY_MAX_HEADER);

  char *text = dkm__alloc_or_fail(ctx, (size_t)header_len + 1, "npy header");
  if (text == NULL)
    return DKM_ERR_NOMEM;
  st = dkm__file_read(ctx, f, text, (size_t)header_len, start);
  npy_header h;
  memset(&h, 0, sizeof h);
  if (st == DKM_OK) {
    text[header_len] = '\0';
    npy_parser ps = {text, text, text + header_len, f->path, ctx};
    st = parse_dict(&ps, &h);
  }
  dkm__free(ctx, text);
  if (st != DKM_OK)
    return st;

  dkm__layout lay = {DKM_FORMAT_NPY, DKM_DTYPE_F32, 0, 0, start + header_len, 0, false};
  st = npy_dtype(ctx, f->path, h.descr, &lay.dtype);
  if (st != DKM_OK)
    return st;
  if (h.fortran)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: npy array is in Fortran order; only C order is supported (save "
                      "np.ascontiguousarray(a))",
                      f->path);
  if (h.ndim != 2)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: npy array is %d-D; only 2-D arrays (rows x dim) are supported", f->path,
                      h.ndim);
  if (h.shape[0] == 0)
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: npy array has no rows (shape (0, %llu))", f->path,
                      (unsigned long long)h.shape[1]);
  if (h.shape[1] == 0)
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: npy array has dimension 0", f->path);
  if (h.shape[1] > DKM__MAX_DIM)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: npy dimension %llu is absurdly large (limit %u, 1<<20)", f->path,
                      (unsigned long long)h.shape[1], DKM__MAX_DIM);
  lay.rows = h.shape[0];
  lay.dim = (uint32_t)h.shape[1];
  uint64_t row_bytes;
  uint64_t have = f->size - lay.data_offset;
  if (!dkm__layout_row_bytes(&lay, &row_bytes))
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: npy shape (%llu, %u) disagrees with the file size: its data size "
                      "overflows 64 bits, the file has %llu bytes after the header",
                      f->path, (unsigned long long)lay.rows, lay.dim, (unsigned long long)have);
  if (lay.rows * row_bytes != have)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: npy shape (%llu, %u) of '%s' disagrees with the file size: the data "
                      "should be %llu bytes, the file has %llu after the header",
                      f->path, (unsigned long long)lay.rows, lay.dim, h.descr,
                      (unsigned long long)(lay.rows * row_bytes), (unsigned long long)have);
  return dkm__layout_open(ctx, f, &lay, out);
}
