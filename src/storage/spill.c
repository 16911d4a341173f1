/*
 * spill.c - see spill.h.
 *
 * How the spill is read back, and why. Both candidates were measured on
 * this project's machine (2 cores, Linux 6.18, ext4 on virtio) with
 * `bench_disk io`: a 2 GiB file read in 8 MiB blocks by a reader thread while
 * a consumer touches every value of the previous block (the engine's
 * pattern), each pass in a fresh process:
 *
 *   strategy                                  warm cache  cold cache  peak RSS
 *   pread into 2 buffers + FADV_WILLNEED      17.7 GiB/s  2.7-2.9     17.6 MiB
 *   mmap + MADV_POPULATE_READ + DONTNEED      19.6 GiB/s  2.1-2.7     17.6 MiB
 *   mmap, nothing dropped (the Lance design)  19.9 GiB/s  2.3-3.0   2049.6 MiB
 *
 * Cold, both wait for the disk alike. Warm, what differs is the CPU the
 * reader thread spends, which on a machine whose cores all compute is taken
 * from the workers: reading 64 MiB costs 2-6 ms with pread (a copy) and
 * 0.1 ms with MADV_POPULATE_READ + MADV_DONTNEED (page tables only; the page
 * cache hands out large folios). On the reference workload (131072 x 128,
 * k = 512, 10 iterations; medians of 9, three A/B rounds) the CPU time of
 * disk mode over memory mode was 1.005-1.056 with pread and 1.020-1.052
 * with the mapping, wall time 0.970-1.081 and 1.026-1.053: the mapping is
 * cheaper, by less than this shared machine's noise. So we map:
 *
 *  - the whole file is mapped once, read-only and shared, and read() returns
 *    a pointer into it (zero copy), after populating the range on the
 *    reader thread (so the workers take no page faults);
 *  - the resident set stays at about two blocks whatever the file's size: a
 *    read unmaps (MADV_DONTNEED) everything but the range read last (the
 *    engine computes on it while it reads the next) and the new one. Not
 *    just the range before: a fault maps whole page-cache folios (up to
 *    2 MiB), so each read also maps neighbours, and the scattered single-row
 *    reads of initialisation once piled them up to 906 MiB at k = 1024. A
 *    shared file mapping stays valid after DONTNEED: touching those rows
 *    again just faults them back in, so "valid until closed" holds;
 *  - MADV_POPULATE_READ reports an I/O error as a return value (EFAULT where
 *    touching would raise SIGBUS), so errors stay values. (A page reclaimed
 *    between the populate and the engine's access and then unreadable would
 *    still raise SIGBUS: a disk failing in that window.)
 *
 * Where the kernel predates MADV_POPULATE_READ (Linux 5.14) or the address
 * space is short, reads fall back on pread into the caller's buffer. The
 * engine's will_need() for block i+2 becomes POSIX_FADV_WILLNEED, the
 * kernel's read-ahead, so no thread of our own is needed.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "source/source.h"
#include "spill.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14; older kernels say EINVAL */
#endif

/* Small appends (the sampler may hand over one row at a time) are gathered
 * into a buffer of about this size, so that the file sees few large writes. */
#ifndef SPILL_WRITE_BUFFER
#define SPILL_WRITE_BUFFER (1u << 20)
#endif

struct dkm__spill {
  dkm_source base; /* becomes the source once finished; must be first */
  int fd;
  size_t row_bytes;
  uint64_t rows_written; /* appended, buffered or not */
  uint64_t rows_flushed; /* on file */
  unsigned char *wbuf;   /* write buffer, NULL once finished */
  size_t wbuf_rows;      /* its capacity in rows, >= 1 */
  size_t wbuf_used;      /* rows in it */
  bool failed;           /* a write failed: only abort is allowed */
  bool finished;
  bool drop_behind;
  /* Read path (see the top of this file): the file mapped whole, each read
   * populating its pages and unmapping all but the last read's; or, where
   * that is unavailable, pread into the caller's buffer. */
  const unsigned char *map; /* NULL: pread */
  size_t map_bytes;
  size_t page;
  /* Page-aligned ranges of the last two reads: [1] the last (kept mapped),
   * [0] the one before (dropped from the page cache with drop-behind). */
  size_t held_off[2], held_len[2];
  char dir[]; /* for messages */
};

/* Rows the write buffer holds: about SPILL_WRITE_BUFFER bytes, at least one
 * row, never more than the whole spill. dim >= 1. */
static size_t buffer_rows(uint64_t rows, uint32_t dim) {
  size_t n = DKM__MAX((size_t)1, SPILL_WRITE_BUFFER / ((size_t)dim * sizeof(float)));
  return (size_t)DKM__MIN((uint64_t)n, rows);
}

size_t dkm__spill_buffer_bytes(uint64_t rows, uint32_t dim) {
  if (rows == 0 || dim == 0)
    return 0;
  return buffer_rows(rows, dim) * (size_t)dim * sizeof(float);
}

static const char *dir_or_default(const char *dir) {
  return dir == NULL ? "/tmp" : dir;
}

/* ENOSPC and its cousins are "no space" whatever the call that met them: the
 * user's fix is the same (another directory, or a smaller sample). */
static bool is_nospace(int err) {
  return err == ENOSPC || err == EDQUOT || err == EFBIG;
}

static dkm_status write_error(dkm_ctx *ctx, const dkm__spill *s, int err) {
  if (is_nospace(err))
    return dkm_ctx_set_error(ctx, DKM_ERR_NOSPACE,
                             "spill directory %s: no room for the sample (%llu bytes needed): "
                             "writing row %llu failed: %s",
                             s->dir, (unsigned long long)s->base.bytes,
                             (unsigned long long)s->rows_flushed, strerror(err));
  return dkm_ctx_set_error(ctx, DKM_ERR_IO, "spill directory %s: writing row %llu failed: %s",
                           s->dir, (unsigned long long)s->rows_flushed, strerror(err));
}

dkm_status dkm__spill_create(dkm_ctx *ctx, const char *dir, uint64_t rows, uint32_t dim,
                             dkm__spill **out) {
  assert(ctx != NULL && out != NULL);
  *out = NULL;
  dir = dir_or_default(dir);
  size_t bytes;
  if (rows == 0 || dim == 0 || !dkm__array_bytes(rows, dim, sizeof(float), &bytes) ||
      (uint64_t)bytes > (uint64_t)INT64_MAX)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM,
                             "spill directory %s: cannot hold %llu rows of %u values", dir,
                             (unsigned long long)rows, dim);

  struct stat st;
  if (stat(dir, &st) != 0)
    return dkm_ctx_set_error(ctx, DKM_ERR_IO, "spill directory %s: cannot use it: %s", dir,
                             strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return dkm_ctx_set_error(ctx, DKM_ERR_IO, "spill directory %s: not a directory", dir);

  /* The cheap check first, so that a sample that cannot fit fails with the
   * numbers the user needs before anything is written. fallocate below closes
   * the race with other writers where the file system supports it. */
  struct statvfs vfs;
  uint64_t avail;
  if (statvfs(dir, &vfs) == 0) {
    if (vfs.f_flag & ST_RDONLY)
      return dkm_ctx_set_error(ctx, DKM_ERR_IO, "spill directory %s: cannot write in it: %s", dir,
                               strerror(EROFS));
    /* Pseudo file systems (procfs, sysfs) report no blocks at all: nothing
     * to check, and creating the file there will give the real error. */
    if (vfs.f_blocks != 0 && dkm__mul_u64(vfs.f_bavail, vfs.f_frsize, &avail) &&
        avail < (uint64_t)bytes)
      return dkm_ctx_set_error(ctx, DKM_ERR_NOSPACE,
                               "spill directory %s: the sample needs %llu bytes, only %llu are "
                               "free",
                               dir, (unsigned long long)bytes, (unsigned long long)avail);
  }

  size_t dir_len = strlen(dir);
  dkm__spill *s = dkm__alloc_or_fail(ctx, sizeof *s + dir_len + 1, "the spill");
  if (s == NULL)
    return DKM_ERR_NOMEM;
  memset(s, 0, sizeof *s);
  memcpy(s->dir, dir, dir_len + 1);
  s->fd = -1;
  s->row_bytes = (size_t)dim * sizeof(float);
  s->wbuf_rows = buffer_rows(rows, dim);
  dkm__source_init(&s->base, NULL, ctx, rows, dim, DKM_DTYPE_F32, DKM_FORMAT_SPILL,
                   "spilled sample");
  s->base.bytes = bytes;
  /* wbuf_rows * row_bytes <= max(1 MiB, one row) <= bytes: no overflow. */
  s->wbuf = dkm__alloc_or_fail(ctx, s->wbuf_rows * s->row_bytes, "the spill's write buffer");
  if (s->wbuf == NULL) {
    dkm__spill_abort(s);
    return DKM_ERR_NOMEM;
  }

  int err = 0;
  s->fd = dkm__open_nameless(ctx, dir, &err);
  if (s->fd < 0) {
    dkm__spill_abort(s);
    if (err == ENOMEM)
      return dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "spill directory %s: out of memory", dir);
    if (is_nospace(err))
      return dkm_ctx_set_error(ctx, DKM_ERR_NOSPACE,
                               "spill directory %s: cannot create the spill file: %s", dir,
                               strerror(err));
    return dkm_ctx_set_error(ctx, DKM_ERR_IO, "spill directory %s: cannot create a file in it: %s",
                             dir, strerror(err));
  }

  /* Reserve the room now: a disk that fills up while the sample is drawn
   * (which may take a pass over a large input) then cannot make the writes
   * fail later. Not every file system can; those fall back on the statvfs
   * check and on the write errors. */
  if (fallocate(s->fd, 0, 0, (off_t)bytes) != 0) {
    err = errno;
    if (err != EOPNOTSUPP && err != ENOSYS && err != EINTR) {
      dkm__spill_abort(s);
      if (is_nospace(err))
        return dkm_ctx_set_error(ctx, DKM_ERR_NOSPACE,
                                 "spill directory %s: cannot reserve the %llu bytes the sample "
                                 "needs: %s",
                                 dir, (unsigned long long)bytes, strerror(err));
      return dkm_ctx_set_error(ctx, DKM_ERR_IO,
                               "spill directory %s: cannot reserve %llu bytes for the sample: %s",
                               dir, (unsigned long long)bytes, strerror(err));
    }
  }

  const char *from;
  uint64_t ram = dkm__usable_memory(&from);
  s->drop_behind = ram != 0 && (uint64_t)bytes > ram / 2;
  *out = s;
  return DKM_OK;
}

/* pwrite may move fewer bytes than asked; loop until done. Returns 0 or an
 * errno value. */
static int write_all(int fd, const unsigned char *p, size_t len, uint64_t off) {
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

/* Writes count rows at the end of the file. */
static dkm_status write_rows(dkm_ctx *ctx, dkm__spill *s, const void *rows, uint64_t count) {
  assert(count <= s->base.rows - s->rows_flushed);
  int err = write_all(s->fd, rows, (size_t)count * s->row_bytes, s->rows_flushed * s->row_bytes);
  if (err != 0) {
    s->failed = true;
    return write_error(ctx, s, err);
  }
  s->rows_flushed += count;
  return DKM_OK;
}

static dkm_status flush_buffer(dkm_ctx *ctx, dkm__spill *s) {
  if (s->wbuf_used == 0)
    return DKM_OK;
  dkm_status st = write_rows(ctx, s, s->wbuf, s->wbuf_used);
  s->wbuf_used = 0;
  return st;
}

dkm_status dkm__spill_append(dkm_ctx *ctx, dkm__spill *s, const float *rows, uint64_t count) {
  assert(s != NULL && !s->finished);
  if (s->failed)
    return dkm_ctx_set_error(ctx, DKM_ERR_INTERNAL,
                             "spill directory %s: append after a failed write", s->dir);
  if (count > s->base.rows - s->rows_written)
    return dkm_ctx_set_error(
        ctx, DKM_ERR_INTERNAL, "spill: %llu more rows appended, only %llu of %llu remain",
        (unsigned long long)count, (unsigned long long)(s->base.rows - s->rows_written),
        (unsigned long long)s->base.rows);
  if (count == 0)
    return DKM_OK;
  assert(rows != NULL);
  /* count <= base.rows, so count * row_bytes <= base.bytes fits a size_t. */
  const unsigned char *p = (const unsigned char *)rows;
  uint64_t left = count;
  if (s->wbuf_used > 0) {
    /* Complete what is buffered first: the file is written in order. */
    size_t take = (size_t)DKM__MIN(left, (uint64_t)(s->wbuf_rows - s->wbuf_used));
    memcpy(s->wbuf + s->wbuf_used * s->row_bytes, p, take * s->row_bytes);
    s->wbuf_used += take;
    p += take * s->row_bytes;
    left -= take;
    if (s->wbuf_used == s->wbuf_rows) {
      dkm_status st = flush_buffer(ctx, s);
      if (st != DKM_OK)
        return st;
    }
  }
  if (left >= s->wbuf_rows) {
    /* A buffer's worth or more: straight from the caller's memory, in one
     * write, with no copy of ours. */
    assert(s->wbuf_used == 0);
    dkm_status st = write_rows(ctx, s, p, left);
    if (st != DKM_OK)
      return st;
  } else if (left > 0) {
    assert(s->wbuf_used + left <= s->wbuf_rows);
    memcpy(s->wbuf + s->wbuf_used * s->row_bytes, p, (size_t)left * s->row_bytes);
    s->wbuf_used += (size_t)left;
  }
  s->rows_written += count;
  return DKM_OK;
}

uint64_t dkm__spill_rows_written(const dkm__spill *s) {
  return s->rows_written;
}

static dkm_status read_error(dkm_ctx *ctx, const dkm__spill *s, uint64_t first, uint64_t count,
                             const char *why) {
  return dkm_ctx_set_error(ctx, DKM_ERR_IO,
                           "spill directory %s: reading rows %llu..%llu of the spilled sample "
                           "back failed: %s",
                           s->dir, (unsigned long long)first, (unsigned long long)(first + count),
                           why);
}

/* Unmaps the pages of [a, b) (page-aligned offsets) from this process. A
 * shared file mapping stays valid: touching those rows again just faults
 * them back in. */
static void unmap_pages(dkm__spill *s, size_t a, size_t b) {
  if (b > a)
    madvise((void *)(s->map + a), b - a, MADV_DONTNEED);
}

static dkm_status read_mapped(dkm__spill *s, dkm_ctx *ctx, uint64_t first, uint64_t count,
                              const float **rows) {
  size_t off = (size_t)first * s->row_bytes, len = (size_t)count * s->row_bytes;
  size_t a0 = off & ~(s->page - 1);
  size_t a1 = DKM__MIN(off + len + s->page - 1, s->map_bytes) & ~(s->page - 1);
  if (a1 < off + len) /* the file's last, partial page */
    a1 = s->map_bytes;
  /* Keep mapped only the rows read last time (the engine computes on them
   * while this reads the next ones) and the rows asked for now; unmap all
   * else, so that the process holds about two blocks of the file, never
   * more. All else, not just the range before: a fault maps whole folios of
   * the page cache (up to 2 MiB here), so a read also maps its neighbours,
   * and random reads (initialisation) would otherwise pile them up. */
  size_t k0 = s->held_off[1], k1 = s->held_off[1] + s->held_len[1]; /* kept */
  size_t lo0 = a0, lo1 = a1, hi0 = k0, hi1 = k1;
  if (k1 == k0 || k0 < a0) {
    lo0 = k0, lo1 = k1, hi0 = a0, hi1 = a1;
  }
  size_t end = (s->map_bytes + s->page - 1) & ~(s->page - 1);
  if (lo1 == lo0) { /* nothing kept but the new range */
    unmap_pages(s, 0, hi0);
    unmap_pages(s, hi1, end);
  } else {
    unmap_pages(s, 0, lo0);
    unmap_pages(s, lo1, hi0);
    unmap_pages(s, DKM__MAX(lo1, hi1), end);
  }
  /* With drop-behind, the rows read before last leave the page cache too. */
  if (s->drop_behind && s->held_len[0] != 0)
    posix_fadvise(s->fd, (off_t)s->held_off[0], (off_t)s->held_len[0], POSIX_FADV_DONTNEED);
  s->held_off[0] = s->held_off[1];
  s->held_len[0] = s->held_len[1];
  s->held_off[1] = a0;
  s->held_len[1] = a1 - a0;
  /* Fault the rows in here, on the reader thread, not in the workers. An
   * I/O error is a return value here (EFAULT, where touching the pages
   * would raise SIGBUS). */
  while (madvise((void *)(s->map + a0), a1 - a0, MADV_POPULATE_READ) != 0) {
    if (errno == EINTR)
      continue;
    return read_error(ctx, s, first, count, strerror(errno == EFAULT ? EIO : errno));
  }
  *rows = (const float *)(const void *)(s->map + off);
  return DKM_OK;
}

static dkm_status read_copy(dkm__spill *s, dkm_ctx *ctx, uint64_t first, uint64_t count, float *buf,
                            const float **rows) {
  unsigned char *p = (unsigned char *)buf;
  size_t len = (size_t)count * s->row_bytes;
  uint64_t off = first * s->row_bytes;
  while (len > 0) {
    ssize_t n = pread(s->fd, p, len, (off_t)off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return read_error(ctx, s, first, count, n < 0 ? strerror(errno) : "unexpected end of file");
    p += n;
    len -= (size_t)n;
    off += (uint64_t)n;
  }
  /* The rows are in the caller's buffer now; their cached pages only help
   * if they can survive until the next pass (see spill.h). */
  if (s->drop_behind)
    posix_fadvise(s->fd, (off_t)(first * s->row_bytes), (off_t)(count * s->row_bytes),
                  POSIX_FADV_DONTNEED);
  *rows = buf;
  return DKM_OK;
}

static dkm_status spill_read(dkm_source *self, dkm_ctx *ctx, uint64_t first, uint64_t count,
                             float *buf, const float **rows) {
  dkm__spill *s = (dkm__spill *)self;
  assert(s->finished && first <= self->rows && count <= self->rows - first);
  if (s->map != NULL)
    return read_mapped(s, ctx, first, count, rows);
  return read_copy(s, ctx, first, count, buf, rows);
}

static void spill_will_need(dkm_source *self, uint64_t first, uint64_t count) {
  dkm__spill *s = (dkm__spill *)self;
  if (first >= self->rows)
    return;
  count = DKM__MIN(count, self->rows - first);
  posix_fadvise(s->fd, (off_t)(first * s->row_bytes), (off_t)(count * s->row_bytes),
                POSIX_FADV_WILLNEED);
}

static void spill_close(dkm_source *self) {
  dkm__spill_abort((dkm__spill *)self);
}

static const dkm_source_methods spill_methods = {DKM_SOURCE_METHODS_VERSION, spill_read,
                                                 spill_will_need, spill_close};

/* Maps the whole file for the zero-copy read path, if this system can
 * populate a mapping on request (Linux 5.14) and has the address space;
 * otherwise reads fall back on pread. */
static void map_file(dkm__spill *s) {
  long page = sysconf(_SC_PAGESIZE);
  s->page = page > 0 ? (size_t)page : 4096;
  s->map_bytes = (size_t)s->base.bytes;
  void *m = mmap(NULL, s->map_bytes, PROT_READ, MAP_SHARED, s->fd, 0);
  if (m == MAP_FAILED)
    return;
  if (madvise(m, DKM__MIN(s->map_bytes, s->page), MADV_POPULATE_READ) != 0) {
    munmap(m, s->map_bytes);
    return;
  }
  madvise(m, DKM__MIN(s->map_bytes, s->page), MADV_DONTNEED);
  s->map = m;
}

dkm_status dkm__spill_finish(dkm_ctx *ctx, dkm__spill *s, dkm_source **out) {
  assert(s != NULL && out != NULL && !s->finished);
  *out = NULL;
  if (s->failed) {
    dkm__spill_abort(s);
    return dkm_ctx_set_error(ctx, DKM_ERR_INTERNAL,
                             "spill directory %s: finish after a failed write", s->dir);
  }
  if (s->rows_written != s->base.rows) {
    dkm_status st = dkm_ctx_set_error(
        ctx, DKM_ERR_INTERNAL, "spill directory %s: finished with %llu of %llu rows written",
        s->dir, (unsigned long long)s->rows_written, (unsigned long long)s->base.rows);
    dkm__spill_abort(s);
    return st;
  }
  dkm_status st = flush_buffer(ctx, s);
  if (st != DKM_OK) {
    dkm__spill_abort(s);
    return st;
  }
  assert(s->rows_flushed == s->base.rows);
  /* Reading needs no buffer of ours: give the memory back now. */
  dkm__free(s->base.ctx, s->wbuf);
  s->wbuf = NULL;
  /* The whole file is read in order every iteration: a larger read-ahead. */
  posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  map_file(s);
  s->finished = true;
  s->base.methods = &spill_methods;
  *out = &s->base;
  return DKM_OK;
}

void dkm__spill_use_pread(dkm_source *spill_source) {
  assert(spill_source != NULL && spill_source->format == DKM_FORMAT_SPILL);
  dkm__spill *s = (dkm__spill *)spill_source;
  if (s->map != NULL)
    munmap((void *)s->map, s->map_bytes);
  s->map = NULL;
  memset(s->held_off, 0, sizeof s->held_off);
  memset(s->held_len, 0, sizeof s->held_len);
}

bool dkm__spill_is_mapped(const dkm_source *spill_source) {
  assert(spill_source != NULL && spill_source->format == DKM_FORMAT_SPILL);
  return ((const dkm__spill *)spill_source)->map != NULL;
}

void dkm__spill_set_drop_behind(dkm_source *spill_source, bool on) {
  assert(spill_source != NULL && spill_source->format == DKM_FORMAT_SPILL);
  ((dkm__spill *)spill_source)->drop_behind = on;
}

void dkm__spill_abort(dkm__spill *s) {
  if (s == NULL)
    return;
  if (s->map != NULL)
    munmap((void *)s->map, s->map_bytes);
  if (s->fd >= 0)
    close(s->fd);
  dkm_ctx *ctx = s->base.ctx;
  dkm__free(ctx, s->wbuf);
  dkm__free(ctx, s);
}
