/*
 * spill.c - see spill.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "source/source.h"
#include "spill.h"

struct dkm__spill {
  dkm_source base; /* becomes the source once finished */
  dkm_ctx *ctx;
  int fd;
  uint64_t rows_written;
  size_t row_bytes;
  char dir[]; /* for messages */
};

static dkm_status io_error(dkm_ctx *ctx, const char *dir, const char *what, int err) {
  dkm_status st = (err == ENOSPC || err == EDQUOT || err == EFBIG) ? DKM_ERR_NOSPACE : DKM_ERR_IO;
  return dkm_ctx_set_error(ctx, st, "spill directory %s: %s: %s", dir, what, strerror(err));
}

/* A file with no name from the start: O_TMPFILE where the file system has it,
 * else a unique name unlinked at once, so that only the open descriptor keeps
 * it alive and nothing is left behind whatever happens to the process. */
static int open_nameless(const char *dir, int *err) {
#ifdef O_TMPFILE
  int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0)
    return fd;
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
    *err = errno;
    return -1;
  }
#endif
  size_t len = strlen(dir) + sizeof "/.diskmeans-spill-XXXXXX";
  char *path = malloc(len);
  if (path == NULL) {
    *err = ENOMEM;
    return -1;
  }
  snprintf(path, len, "%s/.diskmeans-spill-XXXXXX", dir);
  int fd2 = mkostemp(path, O_CLOEXEC);
  if (fd2 < 0)
    *err = errno;
  else
    unlink(path);
  free(path);
  return fd2;
}

dkm_status dkm__spill_create(dkm_ctx *ctx, const char *dir, uint64_t rows, uint32_t dim,
                             dkm__spill **out) {
  *out = NULL;
  size_t bytes;
  if (rows == 0 || dim == 0 || !dkm__array_bytes(rows, dim, sizeof(float), &bytes))
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "spill: bad size %llu x %u",
                             (unsigned long long)rows, dim);
  struct stat st;
  if (stat(dir, &st) != 0)
    return io_error(ctx, dir, "cannot use it", errno);
  if (!S_ISDIR(st.st_mode))
    return dkm_ctx_set_error(ctx, DKM_ERR_IO, "spill directory %s: not a directory", dir);
  struct statvfs vfs;
  if (statvfs(dir, &vfs) == 0) {
    uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    if (avail < bytes)
      return dkm_ctx_set_error(ctx, DKM_ERR_NOSPACE,
                               "spill directory %s: the sample needs %llu bytes, "
                               "only %llu are free",
                               dir, (unsigned long long)bytes, (unsigned long long)avail);
  }
  size_t dir_len = strlen(dir);
  dkm__spill *s = dkm__alloc_or_fail(ctx, sizeof *s + dir_len + 1, "spill");
  if (s == NULL)
    return DKM_ERR_NOMEM;
  memcpy(s->dir, dir, dir_len + 1);
  int err = 0;
  s->fd = open_nameless(dir, &err);
  if (s->fd < 0) {
    dkm__free(ctx, s);
    return io_error(ctx, dir, "cannot create a temporary file", err);
  }
  s->ctx = ctx;
  s->rows_written = 0;
  s->row_bytes = (size_t)dim * sizeof(float);
  dkm__source_init(&s->base, NULL, ctx, rows, dim, DKM_DTYPE_F32, DKM_FORMAT_SPILL,
                   "spilled sample");
  s->base.bytes = bytes;
  *out = s;
  return DKM_OK;
}

/* pwrite/pread may move fewer bytes than asked; loop until done. */
static int write_all(int fd, const void *buf, size_t len, uint64_t off) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = pwrite(fd, p, len, (off_t)off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (n == 0)
      return ENOSPC;
    p += n;
    len -= (size_t)n;
    off += (uint64_t)n;
  }
  return 0;
}

dkm_status dkm__spill_append(dkm_ctx *ctx, dkm__spill *s, const float *rows, uint64_t count) {
  if (count > s->base.rows - s->rows_written)
    return dkm_ctx_set_error(ctx, DKM_ERR_INTERNAL, "spill: more rows than announced");
  int err = write_all(s->fd, rows, (size_t)count * s->row_bytes, s->rows_written * s->row_bytes);
  if (err != 0)
    return io_error(ctx, s->dir, "writing the sample", err);
  s->rows_written += count;
  return DKM_OK;
}

static dkm_status spill_read(dkm_source *self, dkm_ctx *ctx, uint64_t first, uint64_t count,
                             float *buf, const float **rows) {
  dkm__spill *s = (dkm__spill *)self;
  char *p = (char *)buf;
  size_t len = (size_t)count * s->row_bytes;
  uint64_t off = first * s->row_bytes;
  while (len > 0) {
    ssize_t n = pread(s->fd, p, len, (off_t)off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return io_error(ctx, s->dir, "reading the spilled sample back", n < 0 ? errno : EIO);
    p += n;
    len -= (size_t)n;
    off += (uint64_t)n;
  }
  *rows = buf;
  return DKM_OK;
}

static void spill_will_need(dkm_source *self, uint64_t first, uint64_t count) {
  dkm__spill *s = (dkm__spill *)self;
  posix_fadvise(s->fd, (off_t)(first * s->row_bytes), (off_t)(count * s->row_bytes),
                POSIX_FADV_WILLNEED);
}

static void spill_close(dkm_source *self) {
  dkm__spill_abort((dkm__spill *)self);
}

static const dkm_source_methods spill_methods = {DKM_SOURCE_METHODS_VERSION, spill_read,
                                                 spill_will_need, spill_close};

dkm_status dkm__spill_finish(dkm_ctx *ctx, dkm__spill *s, dkm_source **out) {
  *out = NULL;
  if (s->rows_written != s->base.rows) {
    dkm__spill_abort(s);
    return dkm_ctx_set_error(ctx, DKM_ERR_INTERNAL, "spill: %llu of %llu rows written",
                             (unsigned long long)s->rows_written, (unsigned long long)s->base.rows);
  }
  /* The whole file is read sequentially every iteration. */
  posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  s->base.methods = &spill_methods;
  *out = &s->base;
  return DKM_OK;
}

void dkm__spill_abort(dkm__spill *s) {
  if (s == NULL)
    return;
  if (s->fd >= 0)
    close(s->fd);
  dkm__free(s->ctx, s);
}
