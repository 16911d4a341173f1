/*
 * gzip.c - see gzip.h.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "gzip.h"

#define GZ_IN_BYTES (64u * 1024u)

static voidpf gz_zalloc(voidpf opaque, uInt items, uInt size) {
  size_t bytes;
  if (__builtin_mul_overflow((size_t)items, (size_t)size, &bytes))
    return Z_NULL;
  return dkm__alloc((dkm_ctx *)opaque, bytes);
}

static void gz_zfree(voidpf opaque, voidpf ptr) {
  dkm__free((dkm_ctx *)opaque, ptr);
}

dkm_status dkm__gzip_init(dkm_ctx *ctx, dkm__gzip *gz, int fd, const char *name) {
  memset(gz, 0, sizeof *gz);
  gz->fd = fd;
  gz->name = name;
  gz->in = dkm__alloc_or_fail(ctx, GZ_IN_BYTES, "gzip input buffer");
  if (gz->in == NULL)
    return DKM_ERR_NOMEM;
  gz->z.zalloc = gz_zalloc;
  gz->z.zfree = gz_zfree;
  gz->z.opaque = ctx;
  /* 16 + MAX_WBITS: a gzip wrapper, not zlib's own. */
  int zret = inflateInit2(&gz->z, 16 + MAX_WBITS);
  if (zret != Z_OK) {
    dkm__gzip_end(ctx, gz);
    return dkm__error(ctx, zret == Z_MEM_ERROR ? DKM_ERR_NOMEM : DKM_ERR_INTERNAL,
                      "%s: cannot start zlib (%d)", name, zret);
  }
  gz->z_ready = 1;
  return DKM_OK;
}

void dkm__gzip_end(dkm_ctx *ctx, dkm__gzip *gz) {
  if (gz->z_ready)
    inflateEnd(&gz->z);
  gz->z_ready = 0;
  dkm__free(ctx, gz->in);
  gz->in = NULL;
}

dkm_status dkm__gzip_rewind(dkm_ctx *ctx, dkm__gzip *gz) {
  if (inflateReset(&gz->z) != Z_OK)
    return dkm__error(ctx, DKM_ERR_INTERNAL, "%s: inflateReset failed", gz->name);
  gz->z.avail_in = 0;
  gz->in_offset = 0;
  gz->in_eof = 0;
  gz->member_end = 0;
  gz->padding = 0;
  return DKM_OK;
}

/* What follows a complete member, when it does not start another one: zero
 * bytes up to the end of the file are padding, as gzip(1) takes them; the
 * first other byte is trailing garbage. Consumes the buffered input. */
static dkm_status gz_after_member(dkm_ctx *ctx, dkm__gzip *gz) {
  const unsigned char *p = gz->z.next_in;
  for (uInt i = 0; i < gz->z.avail_in; i++) {
    if (p[i] != 0) {
      uint64_t at = gz->in_offset - gz->z.avail_in + i;
      return dkm__error(ctx, DKM_ERR_FORMAT,
                        "%s: trailing garbage after the gzip data: byte %llu is 0x%02x, neither "
                        "the start of another gzip member nor zero padding",
                        gz->name, (unsigned long long)at, p[i]);
    }
  }
  gz->padding = 1;
  gz->z.avail_in = 0;
  return DKM_OK;
}

dkm_status dkm__gzip_read(dkm_ctx *ctx, dkm__gzip *gz, void *dst, size_t n, size_t *got) {
  assert(n <= UINT32_MAX);
  *got = 0;
  gz->z.next_out = dst;
  gz->z.avail_out = (uInt)n;
  while (gz->z.avail_out > 0) {
    if (gz->z.avail_in == 0 && !gz->in_eof) {
      ssize_t r;
      do
        r = pread(gz->fd, gz->in, GZ_IN_BYTES, (off_t)gz->in_offset);
      while (r < 0 && errno == EINTR);
      if (r < 0) {
        char tmp[128];
        return dkm__error(ctx, DKM_ERR_IO, "%s: read failed at byte %llu: %s", gz->name,
                          (unsigned long long)gz->in_offset, strerror_r(errno, tmp, sizeof tmp));
      }
      if (r == 0)
        gz->in_eof = 1;
      gz->in_offset += (uint64_t)r;
      gz->z.next_in = gz->in;
      gz->z.avail_in = (uInt)r;
    }
    if (gz->member_end) {
      if (gz->z.avail_in == 0) {
        if (gz->in_eof)
          break; /* the end of the last member (or of its padding) is the end of the data */
        continue;
      }
      /* Another member starts with the gzip magic's first byte (zlib checks
       * the rest); once padding has begun, nothing but zeros may follow. */
      if (gz->padding || gz->z.next_in[0] != 0x1f) {
        dkm_status st = gz_after_member(ctx, gz);
        if (st != DKM_OK)
          return st;
        continue;
      }
      if (inflateReset(&gz->z) != Z_OK)
        return dkm__error(ctx, DKM_ERR_INTERNAL, "%s: inflateReset failed", gz->name);
      gz->member_end = 0;
    }
    int ret = inflate(&gz->z, Z_NO_FLUSH);
    if (ret == Z_STREAM_END) {
      gz->member_end = 1;
    } else if (ret == Z_BUF_ERROR && gz->z.avail_in == 0 && gz->in_eof) {
      return dkm__error(ctx, DKM_ERR_FORMAT,
                        "%s: corrupt gzip data: the compressed stream ends unexpectedly "
                        "(truncated .gz file?)",
                        gz->name);
    } else if (ret == Z_MEM_ERROR) {
      return dkm__error(ctx, DKM_ERR_NOMEM, "%s: out of memory in zlib", gz->name);
    } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
      return dkm__error(ctx, DKM_ERR_FORMAT, "%s: corrupt gzip data: %s", gz->name,
                        gz->z.msg != NULL ? gz->z.msg : "inflate failed");
    }
  }
  *got = n - gz->z.avail_out;
  return DKM_OK;
}

dkm_status dkm__gzip_scan(dkm_ctx *ctx, int fd, const char *name, unsigned char *head,
                          size_t head_cap, size_t *head_len, uint64_t *total) {
  enum { SCRATCH = 64 * 1024 };
  *head_len = 0;
  *total = 0;
  dkm__gzip gz;
  dkm_status st = dkm__gzip_init(ctx, &gz, fd, name);
  if (st != DKM_OK)
    return st;
  unsigned char *scratch = dkm__alloc_or_fail(ctx, SCRATCH, "a gzip scratch buffer");
  if (scratch == NULL) {
    dkm__gzip_end(ctx, &gz);
    return DKM_ERR_NOMEM;
  }
  size_t got = 0;
  st = dkm__gzip_read(ctx, &gz, head, head_cap, &got);
  *head_len = got;
  uint64_t sum = got;
  while (st == DKM_OK && got > 0) {
    st = dkm__gzip_read(ctx, &gz, scratch, SCRATCH, &got);
    sum += got;
  }
  dkm__free(ctx, scratch);
  dkm__gzip_end(ctx, &gz);
  if (st == DKM_OK)
    *total = sum;
  return st;
}
