/*
 * file.c - dkm_source_open_file(): opening the file, detecting its format,
 * and the source shared by every fixed-stride format (rows read with pread in
 * bounded chunks and converted to float32).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/file.h"
#include "formats/gzip.h"

/* 64-bit offsets everywhere: files over 4 GiB are the point of streaming. */
_Static_assert(sizeof(off_t) == 8, "off_t must be 64-bit");

/* Scratch size for converted reads whose stored rows are larger than their
 * float32 form (f64, and the dimension prefix of .fvecs and one-value
 * .bvecs), the only ones that cannot be read in place into the caller's
 * buffer. Small because every open input keeps one: a run over thousands of
 * shards keeps them all open. 64 KiB still makes a pread cost little per byte. */
#define SCRATCH_BYTES (size_t)(64u << 10)

void dkm_file_options_init(dkm_file_options *options) {
  if (options == NULL)
    return;
  memset(options, 0, sizeof *options);
  options->format = DKM_FORMAT_AUTO;
  options->raw_dim = 0;
  options->raw_dtype = DKM_DTYPE_F32;
  options->dataset = NULL;
  options->tmp_dir = NULL;
}

dkm_status dkm__pread_full(dkm_ctx *ctx, int fd, const char *path, void *buf, size_t n,
                           uint64_t offset) {
  unsigned char *p = buf;
  size_t done = 0;
  while (done < n) {
    /* Linux moves at most about 2 GiB per call; a large block takes a few. */
    ssize_t got = pread(fd, p + done, n - done, (off_t)(offset + done));
    if (got < 0) {
      if (errno == EINTR)
        continue;
      char tmp[128];
      return dkm__error(ctx, DKM_ERR_IO, "%s: read failed at byte %llu: %s", path,
                        (unsigned long long)(offset + done), strerror_r(errno, tmp, sizeof tmp));
    }
    if (got == 0)
      return dkm__error(ctx, DKM_ERR_IO,
                        "%s: unexpected end of file at byte %llu (the file shrank after it was "
                        "opened?)",
                        path, (unsigned long long)(offset + done));
    done += (size_t)got;
  }
  return DKM_OK;
}

void dkm__byteswap(void *data, size_t count, size_t elem_size) {
  unsigned char *p = data;
  switch (elem_size) {
  case 2:
    for (size_t i = 0; i < count; i++) {
      uint16_t v;
      memcpy(&v, p + 2 * i, 2);
      v = __builtin_bswap16(v);
      memcpy(p + 2 * i, &v, 2);
    }
    break;
  case 4:
    for (size_t i = 0; i < count; i++) {
      uint32_t v;
      memcpy(&v, p + 4 * i, 4);
      v = __builtin_bswap32(v);
      memcpy(p + 4 * i, &v, 4);
    }
    break;
  case 8:
    for (size_t i = 0; i < count; i++) {
      uint64_t v;
      memcpy(&v, p + 8 * i, 8);
      v = __builtin_bswap64(v);
      memcpy(p + 8 * i, &v, 8);
    }
    break;
  default:
    assert(elem_size == 1);
    break;
  }
}

bool dkm__layout_row_bytes(const dkm__layout *layout, uint64_t *row_bytes) {
  uint64_t values_bytes, rb, total;
  if (!dkm__mul_u64(layout->dim, dkm_dtype_size(layout->dtype), &values_bytes))
    return false;
  rb = values_bytes + layout->prefix;
  if (!dkm__mul_u64(layout->rows, rb, &total) || total > UINT64_MAX - layout->data_offset)
    return false;
  *row_bytes = rb;
  return true;
}

/* --- the fixed-stride source -------------------------------------------- */

typedef struct strided_source {
  dkm_source base;
  int fd;
  dkm__layout lay;
  uint64_t row_bytes; /* prefix + dim * elem */
  enum {
    READ_DIRECT,  /* little-endian f32 without a prefix: as stored */
    READ_INPLACE, /* stored row no larger than its floats: stored bytes go to
                     the end of the caller's buffer, converted forward */
    READ_SCRATCH  /* larger stored rows: through s->scratch, chunk by chunk */
  } mode;
  unsigned char *scratch; /* READ_SCRATCH: allocated on first read, kept */
  uint64_t scratch_rows;
  char name[]; /* the path, copied */
} strided_source;

dkm_status dkm__convert_rows(dkm_ctx *ctx, const char *name, const dkm__layout *lay,
                             uint64_t row_bytes, unsigned char *stage, uint64_t first, uint64_t n,
                             float *out) {
  size_t elem = dkm_dtype_size(lay->dtype);
  for (uint64_t r = 0; r < n; r++) {
    unsigned char *row = stage + r * row_bytes;
    if (lay->prefix != 0) {
      /* The dim field is a signed int32; print it as one so that a corrupt
       * row says "-1", not "4294967295". */
      int32_t d = (int32_t)dkm__load_le32(row);
      if (d < 0 || (uint32_t)d != lay->dim)
        return dkm__error(ctx, DKM_ERR_FORMAT, "%s: row %llu has dimension %d, expected %u", name,
                          (unsigned long long)(first + r), (int)d, lay->dim);
    }
    unsigned char *values = row + lay->prefix;
    if (lay->big_endian)
      dkm__byteswap(values, lay->dim, elem);
    dkm__convert_to_f32(lay->dtype, values, lay->dim, out + r * lay->dim);
  }
  return DKM_OK;
}

static dkm_status strided_read(dkm_source *self, dkm_ctx *ctx, uint64_t first, uint64_t count,
                               float *buf, const float **rows) {
  strided_source *s = (strided_source *)self;
  assert(first + count <= self->rows);
  /* first + count <= rows and rows * row_bytes fits the file, so neither
   * product below can overflow. */
  uint64_t offset = s->lay.data_offset + first * s->row_bytes;
  size_t stored = (size_t)(count * s->row_bytes);
  if (s->mode == READ_DIRECT) {
    dkm_status st = dkm__pread_full(ctx, s->fd, s->name, buf, stored, offset);
    if (st != DKM_OK)
      return st;
  } else if (s->mode == READ_INPLACE) {
    /* The caller's buffer holds count * dim floats, at least as many bytes
     * as the stored rows, which go to its end. Converting from the front,
     * the float of each value lands at or before where that value was
     * stored (row_bytes <= 4 * dim), so every write only covers stored
     * bytes already read: the prefix and values of row r start at or after
     * the end of the floats of rows 0..r-1, and within a row the j-th value
     * is stored (4 - elem) * (dim - j) bytes or more past its float.
     * dkm__convert_rows reads each value before writing its float. */
    unsigned char *at = (unsigned char *)buf + (size_t)(count * self->dim) * sizeof(float) - stored;
    dkm_status st = dkm__pread_full(ctx, s->fd, s->name, at, stored, offset);
    if (st == DKM_OK)
      st = dkm__convert_rows(ctx, s->name, &s->lay, s->row_bytes, at, first, count, buf);
    if (st != DKM_OK)
      return st;
  } else {
    if (s->scratch == NULL) {
      s->scratch =
          dkm__alloc_or_fail(ctx, (size_t)(s->scratch_rows * s->row_bytes), "file read buffer");
      if (s->scratch == NULL)
        return DKM_ERR_NOMEM;
    }
    for (uint64_t done = 0; done < count;) {
      uint64_t n = DKM__MIN(count - done, s->scratch_rows);
      dkm_status st = dkm__pread_full(ctx, s->fd, s->name, s->scratch, (size_t)(n * s->row_bytes),
                                      offset + done * s->row_bytes);
      if (st == DKM_OK)
        st = dkm__convert_rows(ctx, s->name, &s->lay, s->row_bytes, s->scratch, first + done, n,
                               buf + done * self->dim);
      if (st != DKM_OK)
        return st;
      done += n;
    }
  }
  *rows = buf;
  return DKM_OK;
}

static void strided_will_need(dkm_source *self, uint64_t first, uint64_t count) {
  strided_source *s = (strided_source *)self;
  if (first >= self->rows || count == 0)
    return; /* a length of 0 would mean "to the end of the file" */
  count = DKM__MIN(count, self->rows - first);
  /* Only a hint: a failure just means no read-ahead. */
  (void)posix_fadvise(s->fd, (off_t)(s->lay.data_offset + first * s->row_bytes),
                      (off_t)(count * s->row_bytes), POSIX_FADV_WILLNEED);
}

static void strided_close(dkm_source *self) {
  strided_source *s = (strided_source *)self;
  dkm_ctx *ctx = self->ctx;
  close(s->fd);
  dkm__free(ctx, s->scratch);
  dkm__free(ctx, s);
}

static const dkm_source_methods strided_methods = {DKM_SOURCE_METHODS_VERSION, strided_read,
                                                   strided_will_need, strided_close};

dkm_status dkm__strided_open(dkm_ctx *ctx, const dkm__file *f, const dkm__layout *layout,
                             dkm_source **out) {
  uint64_t row_bytes;
  assert(layout->rows >= 1 && layout->dim >= 1 && layout->dim <= DKM__MAX_DIM);
  if (!dkm__layout_row_bytes(layout, &row_bytes))
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: %llu rows of %u values overflow", f->path,
                      (unsigned long long)layout->rows, layout->dim);
  size_t name_len = strlen(f->path) + 1;
  strided_source *s = dkm__alloc_or_fail(ctx, sizeof *s + name_len, "file source");
  if (s == NULL)
    return DKM_ERR_NOMEM;
  memcpy(s->name, f->path, name_len);
  dkm__source_init(&s->base, &strided_methods, ctx, layout->rows, layout->dim, layout->dtype,
                   layout->format, s->name);
  s->base.bytes = f->stored;
  s->fd = f->fd;
  s->lay = *layout;
  s->row_bytes = row_bytes;
  s->scratch = NULL;
  s->scratch_rows = 0;
  if (layout->dtype == DKM_DTYPE_F32 && layout->prefix == 0 && !layout->big_endian) {
    s->mode = READ_DIRECT;
  } else if (row_bytes <= (uint64_t)layout->dim * sizeof(float)) {
    s->mode = READ_INPLACE;
  } else {
    /* At least one row, at most SCRATCH_BYTES unless one row is larger. The
     * dim cap bounds a row to a few MiB. Nothing is allocated until the
     * first read. */
    s->mode = READ_SCRATCH;
    s->scratch_rows = DKM__MIN(DKM__MAX(1, SCRATCH_BYTES / row_bytes), layout->rows);
  }
  *out = &s->base;
  return DKM_OK;
}

dkm_status dkm__layout_open(dkm_ctx *ctx, const dkm__file *f, const dkm__layout *layout,
                            dkm_source **out) {
  return f->head != NULL ? dkm__gzrows_open(ctx, f, layout, out)
                         : dkm__strided_open(ctx, f, layout, out);
}

dkm_status dkm__file_read(dkm_ctx *ctx, const dkm__file *f, void *buf, size_t n, uint64_t offset) {
  if (f->head == NULL)
    return dkm__pread_full(ctx, f->fd, f->path, buf, n, offset);
  if (offset > f->head_len || n > f->head_len - offset)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: the header in the gzip data runs past its first %zu bytes", f->path,
                      f->head_len);
  memcpy(buf, f->head + offset, n);
  return DKM_OK;
}

/* --- detection ------------------------------------------------------------ */

/* The extension of path's last component, lowercase, without a trailing
 * ".gz" (compression is told by magic bytes, the inner name tells the rest).
 * Writes "" when there is none. */
static void lower_name(const char *path, char *out, size_t cap) {
  const char *base = strrchr(path, '/');
  base = base != NULL ? base + 1 : path;
  size_t n = 0;
  for (; base[n] != '\0' && n + 1 < cap; n++) {
    char c = base[n];
    out[n] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  }
  out[n] = '\0';
  if (n >= 3 && strcmp(out + n - 3, ".gz") == 0)
    out[n - 3] = '\0';
}

static bool ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Format from the file name alone; DKM_FORMAT_AUTO when it tells nothing. */
static dkm_format format_from_name(const char *path) {
  char name[256];
  lower_name(path, name, sizeof name);
  if (ends_with(name, ".fvecs"))
    return DKM_FORMAT_FVECS;
  if (ends_with(name, ".bvecs"))
    return DKM_FORMAT_BVECS;
  if (ends_with(name, ".npy"))
    return DKM_FORMAT_NPY;
  /* MNIST names: train-images-idx3-ubyte, t10k-labels.idx1-ubyte, x.idx3 */
  if (ends_with(name, "-ubyte") || strstr(name, ".idx") != NULL || strstr(name, "-idx") != NULL)
    return DKM_FORMAT_IDX;
  if (ends_with(name, ".raw") || ends_with(name, ".bin"))
    return DKM_FORMAT_RAW;
  if (ends_with(name, ".h5") || ends_with(name, ".hdf5") || ends_with(name, ".he5"))
    return DKM_FORMAT_HDF5;
  return DKM_FORMAT_AUTO;
}

/* The signature HDF5 files start with (HDF5's user block, which would move
 * it to byte 512 or later, is not looked for). */
static const unsigned char hdf5_magic[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

/* Magic bytes first (they cannot lie about npy, HDF5 or a self-consistent
 * IDX header), then the name; fvecs/bvecs have no magic (their first bytes
 * are a dimension), so after the name comes a look at their dimension
 * fields; raw files have no header, so only names (or raw_dim) tell them.
 * For gzip data, head and f->size are the decompressed data's, and the name
 * is looked at without its ".gz". */
static dkm_format detect(const dkm__file *f, const unsigned char *head, size_t n,
                         const dkm_file_options *opt) {
  if (n >= 6 && memcmp(head, "\x93NUMPY", 6) == 0)
    return DKM_FORMAT_NPY;
  if (n >= sizeof hdf5_magic && memcmp(head, hdf5_magic, sizeof hdf5_magic) == 0)
    return DKM_FORMAT_HDF5;
  if (dkm__idx_sniff(head, n, f->size))
    return DKM_FORMAT_IDX;
  dkm_format by_name = format_from_name(f->path);
  if (by_name != DKM_FORMAT_AUTO)
    return by_name;
  /* A caller who gave a raw dimension means headerless rows. */
  if (opt->raw_dim != 0)
    return DKM_FORMAT_RAW;
  dkm_format vecs = dkm__vecs_sniff(f, head, n);
  if (vecs != DKM_FORMAT_AUTO)
    return vecs;
  /* A sound IDX header whose shape disagrees with the size: the IDX parser
   * says how (a truncated download, typically). */
  if (dkm__idx_sniff(head, n, UINT64_MAX))
    return DKM_FORMAT_IDX;
  return DKM_FORMAT_AUTO;
}

static dkm_status open_detected(dkm_ctx *ctx, const dkm__file *f, const dkm_file_options *opt,
                                dkm_source **out) {
  unsigned char head[64];
  size_t n = (size_t)DKM__MIN((uint64_t)sizeof head, f->size);
  dkm_status st = dkm__file_read(ctx, f, head, n, 0);
  if (st != DKM_OK)
    return st;
  dkm_format format = opt->format;
  if (format == DKM_FORMAT_AUTO) {
    format = detect(f, head, n, opt);
    if (format == DKM_FORMAT_AUTO)
      return dkm__error(ctx, DKM_ERR_FORMAT,
                        "%s: unknown format: no npy, HDF5 or IDX magic bytes and no known "
                        "extension (.fvecs, .bvecs, .npy, .h5, .hdf5, .idx*, -ubyte, .raw, "
                        ".bin); give the format explicitly",
                        f->path);
  }
  if (opt->dataset != NULL && format != DKM_FORMAT_HDF5)
    return dkm__error(ctx, DKM_ERR_PARAM,
                      "%s: a dataset (%s) was given, but this is a%s %s file, not HDF5", f->path,
                      opt->dataset, format == DKM_FORMAT_IDX ? "n" : "", dkm_format_name(format));
  if (format == DKM_FORMAT_HDF5 && f->head != NULL)
    /* HDF5 compresses inside the file, chunk by chunk; libhdf5 reads it at
     * offsets, which a gzip stream cannot give. */
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: an HDF5 file inside gzip cannot be read at offsets; decompress it "
                      "first (HDF5 compresses its datasets itself)",
                      f->path);
  switch (format) {
  case DKM_FORMAT_NPY:
    return dkm__open_npy(ctx, f, out);
  case DKM_FORMAT_FVECS:
  case DKM_FORMAT_BVECS:
    return dkm__open_vecs(ctx, f, format, out);
  case DKM_FORMAT_IDX:
    return dkm__open_idx(ctx, f, out);
  case DKM_FORMAT_RAW:
    return dkm__open_raw(ctx, f, opt->raw_dim, opt->raw_dtype, out);
  case DKM_FORMAT_HDF5:
    return dkm__open_hdf5(ctx, f, opt->dataset, out);
  default:
    return dkm__error(ctx, DKM_ERR_PARAM, "%s: format %d cannot be opened as a file", f->path,
                      (int)format);
  }
}

/* Copies a stream (a pipe, FIFO, socket or character device: something
 * that cannot be read at offsets, nor told its size) to a nameless file in
 * dir, in 1 MiB pieces, and returns that file's descriptor and size. The
 * rows are then read from the copy exactly as from a file holding the same
 * bytes: the engine needs the row count before it draws the sample, and
 * reads the rows again to label them, neither of which a stream allows. */
static dkm_status keep_stream(dkm_ctx *ctx, int in, const char *path, const char *dir, int *out_fd,
                              uint64_t *out_size) {
  enum { PIECE = 1 << 20 };
  char tmp[128];
  int err = 0;
  *out_fd = -1;
  *out_size = 0;
  int fd = dkm__open_nameless(ctx, dir, &err);
  if (fd < 0) {
    if (err == ENOMEM)
      return dkm__error(ctx, DKM_ERR_NOMEM, "%s: out of memory", path);
    return dkm__error(ctx, err == ENOSPC || err == EDQUOT ? DKM_ERR_NOSPACE : DKM_ERR_IO,
                      "%s: cannot keep the stream's bytes in a file in %s: %s", path, dir,
                      strerror_r(err, tmp, sizeof tmp));
  }
  unsigned char *buf = dkm__alloc_or_fail(ctx, PIECE, "a stream buffer");
  if (buf == NULL) {
    close(fd);
    return DKM_ERR_NOMEM;
  }
  uint64_t size = 0;
  dkm_status st = DKM_OK;
  for (;;) {
    ssize_t got = read(in, buf, PIECE);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      st = dkm__error(ctx, DKM_ERR_IO, "%s: read failed at byte %llu: %s", path,
                      (unsigned long long)size, strerror_r(errno, tmp, sizeof tmp));
      break;
    }
    if (got == 0)
      break;
    for (ssize_t done = 0; done < got && st == DKM_OK;) {
      ssize_t put = write(fd, buf + done, (size_t)(got - done));
      if (put < 0 && errno == EINTR)
        continue;
      if (put < 0) {
        int e = errno;
        st = dkm__error(
            ctx, e == ENOSPC || e == EDQUOT || e == EFBIG ? DKM_ERR_NOSPACE : DKM_ERR_IO,
            "%s: keeping the stream's bytes in %s failed after %llu bytes: %s", path, dir,
            (unsigned long long)(size + (uint64_t)done), strerror_r(e, tmp, sizeof tmp));
        break;
      }
      done += put;
    }
    if (st != DKM_OK)
      break;
    size += (uint64_t)got;
  }
  dkm__free(ctx, buf);
  if (st != DKM_OK) {
    close(fd);
    return st;
  }
  *out_fd = fd;
  *out_size = size;
  return DKM_OK;
}

/* Opens what path names for reading: "-" is a new descriptor of the
 * standard input (so that closing it leaves file descriptor 0 alone). */
static dkm_status open_path(dkm_ctx *ctx, const char *path, int *out) {
  char tmp[128];
  int fd;
  if (strcmp(path, "-") == 0) {
    fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
      return dkm__error(ctx, DKM_ERR_IO, "-: cannot read the standard input: %s",
                        strerror_r(errno, tmp, sizeof tmp));
  } else {
    do
      fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
      return dkm__error(ctx, DKM_ERR_IO, "%s: %s", path, strerror_r(errno, tmp, sizeof tmp));
  }
  *out = fd;
  return DKM_OK;
}

/* Looks at the stored file's first bytes and, when they are gzip's magic,
 * decompresses all of it once (see gzip.h): that checks every member's CRC
 * and length, finds trailing garbage, and counts the decompressed bytes, so
 * that the row count and every header check are those of the file
 * uncompressed, made at open time. *head receives the first bytes of the
 * decompressed data (the caller frees it); NULL for a plain file. */
static dkm_status look_for_gzip(dkm_ctx *ctx, dkm__file *f, unsigned char **head) {
  unsigned char m[2] = {0, 0};
  *head = NULL;
  if (f->size >= 2) {
    dkm_status st = dkm__pread_full(ctx, f->fd, f->path, m, 2, 0);
    if (st != DKM_OK)
      return st;
  }
  if (m[0] != 0x1f || m[1] != 0x8b)
    return DKM_OK;
  unsigned char *h = dkm__alloc_or_fail(ctx, DKM__GZIP_HEAD_BYTES, "the gzip data's header");
  if (h == NULL)
    return DKM_ERR_NOMEM;
  size_t head_len = 0;
  uint64_t total = 0;
  dkm_status st = dkm__gzip_scan(ctx, f->fd, f->path, h, DKM__GZIP_HEAD_BYTES, &head_len, &total);
  if (st == DKM_OK && total == 0)
    st = dkm__error(ctx, DKM_ERR_FORMAT, "%s: empty file (the gzip data decompresses to nothing)",
                    f->path);
  if (st != DKM_OK) {
    dkm__free(ctx, h);
    return st;
  }
  f->size = total;
  f->head = h;
  f->head_len = head_len;
  *head = h;
  return DKM_OK;
}

dkm_status dkm_source_open_file(dkm_ctx *ctx, const char *path, const dkm_file_options *options,
                                dkm_source **out) {
  dkm_ctx_clear_error(ctx);
  if (out == NULL)
    return dkm__error(ctx, DKM_ERR_PARAM, "open file: out is NULL");
  *out = NULL;
  if (path == NULL)
    return dkm__error(ctx, DKM_ERR_PARAM, "open file: path is NULL");
  dkm_file_options opt;
  dkm_file_options_init(&opt);
  if (options != NULL)
    opt = *options;
  if ((unsigned)opt.format > DKM_FORMAT_RAW && opt.format != DKM_FORMAT_HDF5)
    return dkm__error(ctx, DKM_ERR_PARAM, "%s: format %d is not a file format", path,
                      (int)opt.format);
  if (path[0] == '\0')
    return dkm__error(ctx, DKM_ERR_IO, "(empty path): %s", strerror(ENOENT));

  int fd = -1;
  dkm_status st = open_path(ctx, path, &fd);
  if (st != DKM_OK)
    return st;
  char tmp[128];
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    dkm__error(ctx, DKM_ERR_IO, "%s: %s", path, strerror_r(errno, tmp, sizeof tmp));
    close(fd);
    return DKM_ERR_IO;
  }
  if (S_ISDIR(sb.st_mode)) {
    close(fd);
    return dkm__error(ctx, DKM_ERR_IO, "%s: %s", path, strerror(EISDIR));
  }
  dkm__file f = {fd, (uint64_t)sb.st_size, path, 0, NULL, 0, NULL};
  if (S_ISBLK(sb.st_mode)) {
    off_t end = lseek(fd, 0, SEEK_END);
    f.size = end > 0 ? (uint64_t)end : 0;
  } else if (!S_ISREG(sb.st_mode)) {
    /* Rows are read at offsets: a stream is first kept in a file. A
     * terminal would only wait for someone to type the rows. */
    if (isatty(fd)) {
      close(fd);
      return dkm__error(ctx, DKM_ERR_IO, "%s: a terminal, not a file or a stream of rows", path);
    }
    int kept;
    st = keep_stream(ctx, fd, path, opt.tmp_dir != NULL ? opt.tmp_dir : "/tmp", &kept, &f.size);
    close(fd);
    if (st != DKM_OK)
      return st;
    f.fd = fd = kept;
    f.kept_in = opt.tmp_dir != NULL ? opt.tmp_dir : "/tmp";
  }
  if (f.size == 0) {
    close(fd);
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: empty file", path);
  }
  f.stored = f.size;
  unsigned char *head = NULL;
  st = look_for_gzip(ctx, &f, &head);
  if (st == DKM_OK)
    st = open_detected(ctx, &f, &opt, out);
  dkm__free(ctx, head);
  if (st != DKM_OK) {
    close(fd);
    *out = NULL;
  }
  return st;
}
