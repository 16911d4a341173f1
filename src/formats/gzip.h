/*
 * gzip.h - a forward-only reader of gzip-compressed bytes, fed by pread on a
 * file descriptor, with zlib's memory coming from the context. The
 * sequential source of every gzip-compressed format (gzrows.c) decompresses
 * through it; it knows nothing about rows.
 *
 * What it accepts is what `gzip -dc` reads without complaint: one or more
 * gzip members one after the other (`cat a.gz b.gz`), optionally followed by
 * zero bytes (the padding tape drives and some archivers add). Anything else
 * after a complete member (gzip(1) warns "trailing garbage ignored" and
 * exits 2) is refused with an error naming the file and the byte offset.
 */
#ifndef DKM_FORMATS_GZIP_H
#define DKM_FORMATS_GZIP_H

#include <zlib.h>

#include "internal.h"

typedef struct dkm__gzip {
  int fd;           /* not owned */
  const char *name; /* for messages, not owned */
  z_stream z;
  int z_ready;        /* inflateInit2 succeeded: inflateEnd is due */
  unsigned char *in;  /* compressed bytes read ahead */
  uint64_t in_offset; /* file offset of the next compressed byte to read */
  int in_eof;         /* the file has no more bytes */
  int member_end;     /* the current gzip member is complete */
  int padding;        /* only zero bytes may follow (to the end of the file) */
} dkm__gzip;

/* Starts reading the gzip data of fd from its first byte. On failure
 * (DKM_ERR_NOMEM, DKM_ERR_INTERNAL, recorded on ctx) nothing is left to
 * free; on success dkm__gzip_end frees what it holds. The descriptor is
 * never closed here. */
dkm_status dkm__gzip_init(dkm_ctx *ctx, dkm__gzip *gz, int fd, const char *name);

/* Decompresses up to n (< 4 GiB) bytes into dst. *got < n only at the end of
 * the data. Corrupt or truncated compressed data and trailing garbage are
 * DKM_ERR_FORMAT, a failed read DKM_ERR_IO; the messages name the file. */
dkm_status dkm__gzip_read(dkm_ctx *ctx, dkm__gzip *gz, void *dst, size_t n, size_t *got);

/* Back to the first byte of the file. */
dkm_status dkm__gzip_rewind(dkm_ctx *ctx, dkm__gzip *gz);

/* Decompresses the whole of fd's gzip data once: copies its first bytes
 * (up to head_cap) to head and their count to *head_len, and counts every
 * decompressed byte in *total. Corrupt, truncated or trailing data fails as
 * in dkm__gzip_read. Memory: zlib's state and two buffers of 64 KiB. */
dkm_status dkm__gzip_scan(dkm_ctx *ctx, int fd, const char *name, unsigned char *head,
                          size_t head_cap, size_t *head_len, uint64_t *total);

/* Frees zlib's state and the input buffer. Harmless on a zeroed struct. */
void dkm__gzip_end(dkm_ctx *ctx, dkm__gzip *gz);

#endif
