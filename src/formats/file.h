/*
 * file.h - what the file formats share: the open file, positioned reads, and
 * the sources for every format whose rows sit at a fixed stride after a
 * header (raw, npy, fvecs/bvecs, IDX). Each format's file only parses its
 * header into a dkm__layout; dkm__layout_open() then makes the source: a
 * positioned-read one over a plain file, a sequential one (gzrows.c) over
 * gzip-compressed data. HDF5 (hdf5.c) has its own source.
 */
#ifndef DKM_FORMATS_FILE_H
#define DKM_FORMATS_FILE_H

#include <stdbool.h>

#include "source/source.h"

/* Largest dimension a header may declare. Far above any real vector index
 * (embeddings stay below 100k values), and small enough that one row always
 * fits a modest buffer, so a corrupt header cannot make us allocate
 * gigabytes. */
#define DKM__MAX_DIM (UINT32_C(1) << 20)

/* An open file as the format parsers see it. The descriptor belongs to
 * dkm_source_open_file() until a source is made from it. */
typedef struct dkm__file {
  int fd;
  uint64_t size;    /* bytes of data: the file's size, or for gzip the size of
                       the decompressed data (counted at open) */
  const char *path; /* the caller's path, for messages (not owned) */
  uint64_t stored;  /* bytes on disk: the file's size, compressed or not */
  /* gzip only: the first head_len bytes of the decompressed data, which is
   * all a header parser may read (NULL: a plain file, read with pread). */
  const unsigned char *head;
  size_t head_len;
  /* A stream kept in a nameless file (file.c): the folder of that file, for
   * HDF5, which needs a path it can resolve. NULL for a file. */
  const char *kept_in;
} dkm__file;

/* Decompressed bytes kept for the header parsers: the largest npy header
 * (64 KiB, see npy.c) and its preamble, with room to spare. */
#define DKM__GZIP_HEAD_BYTES (64u * 1024u + 64u)

/* Where the rows of a fixed-stride file are. */
typedef struct dkm__layout {
  dkm_format format;
  dkm_dtype dtype;
  uint64_t rows;
  uint32_t dim;
  uint64_t data_offset; /* byte offset of row 0 */
  uint32_t prefix;      /* bytes before each row's values: 4 for the int32 dim
                           of fvecs/bvecs, which is checked on every read */
  bool big_endian;      /* IDX stores multi-byte values big-endian */
} dkm__layout;

/* Reads exactly n bytes at offset, retrying short reads and EINTR. A read
 * error is DKM_ERR_IO with strerror; an end of file before n bytes (the file
 * shrank after it was opened) is DKM_ERR_IO too. Both name the path. */
dkm_status dkm__pread_full(dkm_ctx *ctx, int fd, const char *path, void *buf, size_t n,
                           uint64_t offset);

/* Reads n header bytes at offset of the file's data: with pread from a plain
 * file, from f->head for gzip data (a read beyond it is DKM_ERR_FORMAT, a
 * header too long to be real). */
dkm_status dkm__file_read(dkm_ctx *ctx, const dkm__file *f, void *buf, size_t n, uint64_t offset);

/* Makes a source over a fixed-stride file: positioned reads for a plain
 * file, a DKM_SOURCE_SEQUENTIAL source for gzip data (f->head != NULL). On
 * success the source owns f->fd (closed by dkm_source_close); on failure the
 * caller still owns it. The layout must already be checked against f->size. */
dkm_status dkm__layout_open(dkm_ctx *ctx, const dkm__file *f, const dkm__layout *layout,
                            dkm_source **out);

/* The two kinds of dkm__layout_open(). */
dkm_status dkm__strided_open(dkm_ctx *ctx, const dkm__file *f, const dkm__layout *layout,
                             dkm_source **out);
dkm_status dkm__gzrows_open(dkm_ctx *ctx, const dkm__file *f, const dkm__layout *layout,
                            dkm_source **out);

/* Converts n rows as stored (row_bytes each, at stage) into float32 at out:
 * checks the fvecs/bvecs dimension prefix of each (naming the file and row,
 * counting rows from first), swaps big-endian values in place, converts. */
dkm_status dkm__convert_rows(dkm_ctx *ctx, const char *name, const dkm__layout *lay,
                             uint64_t row_bytes, unsigned char *stage, uint64_t first, uint64_t n,
                             float *out);

/* Checks that rows * (prefix + dim * elem) bytes starting at data_offset end
 * exactly at the end of the file; stores the row size. Used by the headered
 * formats whose header gives the shape. */
bool dkm__layout_row_bytes(const dkm__layout *layout, uint64_t *row_bytes);

/* The format parsers. Each reads and checks its header, then makes the
 * source. On failure the error names f->path and the problem, and f->fd is
 * left open for the caller to close. */
dkm_status dkm__open_npy(dkm_ctx *ctx, const dkm__file *f, dkm_source **out);
dkm_status dkm__open_vecs(dkm_ctx *ctx, const dkm__file *f, dkm_format format, dkm_source **out);
dkm_status dkm__open_raw(dkm_ctx *ctx, const dkm__file *f, uint32_t dim, dkm_dtype dtype,
                         dkm_source **out);
dkm_status dkm__open_idx(dkm_ctx *ctx, const dkm__file *f, dkm_source **out);
dkm_status dkm__open_hdf5(dkm_ctx *ctx, const dkm__file *f, const char *dataset, dkm_source **out);

/* True when head (the first n bytes of a file of file_size bytes) is an IDX
 * header whose shape accounts for exactly the whole file. Used by
 * auto-detection, which must not mistake another format for IDX. file_size
 * UINT64_MAX: only the header is checked (the last resort of detection,
 * so that a truncated IDX file is told as one). */
bool dkm__idx_sniff(const unsigned char *head, size_t n, uint64_t file_size);

/* DKM_FORMAT_FVECS or DKM_FORMAT_BVECS when the data (head: its first n
 * bytes) reads as rows of exactly one of them, each row starting with the
 * first row's dimension; else DKM_FORMAT_AUTO. For inputs whose name says
 * nothing, such as a pipe. */
dkm_format dkm__vecs_sniff(const dkm__file *f, const unsigned char *head, size_t n);

/* Big-endian and little-endian integers at any alignment. */
static inline uint32_t dkm__load_be32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint32_t dkm__load_le32(const unsigned char *p) {
  return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}
static inline uint16_t dkm__load_le16(const unsigned char *p) {
  return (uint16_t)(((unsigned)p[1] << 8) | p[0]);
}

/* Swaps count elements of elem_size bytes (2, 4 or 8) in place: IDX keeps
 * floats big-endian. */
void dkm__byteswap(void *data, size_t count, size_t elem_size);

#endif
