/*
 * checkpoint.c - see checkpoint.h; the format is in docs/design.md,
 * "Checkpoints".
 *
 *   offset 0   "DKMCKPT\n"                  magic
 *          8   u32 version (1)
 *         12   u32 0x01020304               byte order of the writer
 *         16   u64 payload bytes P
 *         24   sections: u32 tag, u32 0, u64 length, bytes
 *     24 + P   u32 CRC32 (zlib) of bytes [0, 24 + P)
 *
 * Every file has the identity section (text) and the sample's CRC section
 * first, then the engine's sections. The file is exactly 28 + P bytes: a
 * truncated or extended one is refused before its CRC is even computed.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "checkpoint.h"
#include "sample.h"

#define CKPT_MAGIC "DKMCKPT\n"
#define CKPT_VERSION 1u
#define CKPT_BOM 0x01020304u
#define CKPT_HEADER 24u
#define CKPT_IDENT 0x100u  /* identity lines */
#define CKPT_SAMPLE 0x101u /* u32 CRC32 of the sample's rows, u32 0 */
#define CKPT_TAGS 3u       /* engine tags are 1 .. CKPT_TAGS - 1 */

struct dkm__ckpt {
  dkm_ctx *ctx;
  char *path, *tmp_path, *dir;
  char *ident;
  size_t ident_len;
  int have_crc;
  uint32_t crc;
  /* Resume: the file read, and where its sections are. */
  uint8_t *loaded;
  const uint8_t *lsec[CKPT_TAGS];
  size_t lsec_len[CKPT_TAGS];
  int resume_crc; /* the loaded CRC is still to be compared */
  uint32_t loaded_crc;
  /* The sections of the next save. */
  dkm__ckpt_buf sec[CKPT_TAGS];
  int present[CKPT_TAGS];
  /* The writer: `writing` is the image on its way to disk, `queued` the
   * newest one waiting for it (a save made while the writer was busy
   * replaces the one queued before: the file skips a state rather than
   * hold training up), `spare` the buffer the next save builds in. */
  pthread_t thread;
  int started, failed_start;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int busy, quit;
  dkm__ckpt_buf writing, queued, spare;
  dkm_status last; /* status of the last finished write */
};

/* --- reading sections ------------------------------------------------------ */

void dkm__ckpt_get(dkm__ckpt_reader *r, void *out, size_t len) {
  if (r->bad || len > r->left) {
    r->bad = 1;
    memset(out, 0, len);
    return;
  }
  memcpy(out, r->p, len);
  r->p += len;
  r->left -= len;
}

uint32_t dkm__ckpt_get_u32(dkm__ckpt_reader *r) {
  uint32_t v;
  dkm__ckpt_get(r, &v, sizeof v);
  return v;
}

uint64_t dkm__ckpt_get_u64(dkm__ckpt_reader *r) {
  uint64_t v;
  dkm__ckpt_get(r, &v, sizeof v);
  return v;
}

double dkm__ckpt_get_f64(dkm__ckpt_reader *r) {
  double v;
  dkm__ckpt_get(r, &v, sizeof v);
  return v;
}

dkm_status dkm__ckpt_malformed(dkm__ckpt *ck, const char *what) {
  return dkm__error(ck->ctx, DKM_ERR_FORMAT, "checkpoint %s: its %s section is malformed", ck->path,
                    what);
}

dkm_status dkm__ckpt_check_centroids(dkm__ckpt *ck, const float *c, uint32_t k, uint32_t dim,
                                     dkm_metric metric) {
  size_t n = strlen(ck->path) + 16;
  char *name = dkm__alloc_or_fail(ck->ctx, n, "the checkpoint's name");
  if (name == NULL)
    return DKM_ERR_NOMEM;
  snprintf(name, n, "checkpoint %s", ck->path);
  dkm_status s = dkm__check_centroids(ck->ctx, DKM_ERR_FORMAT, name, c, k, dim, metric);
  dkm__free(ck->ctx, name);
  return s;
}

/* --- building sections ------------------------------------------------------ */

void dkm__ckpt_put(dkm__ckpt *ck, dkm__ckpt_buf *b, const void *data, size_t len) {
  if (b->failed)
    return;
  if (len > b->cap - b->len) {
    size_t cap = b->cap != 0 ? b->cap : 4096;
    while (cap - b->len < len) {
      if (cap > SIZE_MAX / 2) {
        b->failed = 1;
        return;
      }
      cap *= 2;
    }
    uint8_t *data2 = dkm__alloc(ck->ctx, cap);
    if (data2 == NULL) {
      b->failed = 1;
      return;
    }
    if (b->len != 0)
      memcpy(data2, b->data, b->len);
    dkm__free(ck->ctx, b->data);
    b->data = data2;
    b->cap = cap;
  }
  if (len != 0)
    memcpy(b->data + b->len, data, len);
  b->len += len;
}

void dkm__ckpt_put_u32(dkm__ckpt *ck, dkm__ckpt_buf *b, uint32_t v) {
  dkm__ckpt_put(ck, b, &v, sizeof v);
}

void dkm__ckpt_put_u64(dkm__ckpt *ck, dkm__ckpt_buf *b, uint64_t v) {
  dkm__ckpt_put(ck, b, &v, sizeof v);
}

void dkm__ckpt_put_f64(dkm__ckpt *ck, dkm__ckpt_buf *b, double v) {
  dkm__ckpt_put(ck, b, &v, sizeof v);
}

dkm__ckpt_buf *dkm__ckpt_section(dkm__ckpt *ck, uint32_t tag) {
  assert(tag > 0 && tag < CKPT_TAGS);
  dkm__ckpt_buf *b = &ck->sec[tag];
  b->len = 0;
  b->failed = 0;
  ck->present[tag] = 1;
  return b;
}

void dkm__ckpt_drop(dkm__ckpt *ck, uint32_t tag) {
  assert(tag > 0 && tag < CKPT_TAGS);
  ck->present[tag] = 0;
}

const uint8_t *dkm__ckpt_loaded(const dkm__ckpt *ck, uint32_t tag, size_t *len) {
  assert(tag > 0 && tag < CKPT_TAGS);
  *len = ck->lsec_len[tag];
  return ck->lsec[tag];
}

void dkm__ckpt_forget(dkm__ckpt *ck, uint32_t tag) {
  assert(tag > 0 && tag < CKPT_TAGS);
  ck->lsec[tag] = NULL;
  ck->lsec_len[tag] = 0;
}

/* --- writing the file ------------------------------------------------------------- */

static dkm_status io_error(dkm__ckpt *ck, const char *what, int err) {
  char tmp[128];
  return dkm__error(ck->ctx, err == ENOSPC || err == EDQUOT ? DKM_ERR_NOSPACE : DKM_ERR_IO,
                    "checkpoint %s: cannot %s: %s", ck->path, what,
                    strerror_r(err, tmp, sizeof tmp));
}

/* Writes image to FILE.tmp, syncs it, renames it over FILE and syncs the
 * folder, so that FILE is always a whole file: the old one or the new. */
static dkm_status write_file(dkm__ckpt *ck, uint8_t *image, size_t len) {
  /* The CRC is the writer's work too: at 64 MiB of centroids it is tens of
   * milliseconds that training need not wait for. */
  uint32_t crc = (uint32_t)crc32_z(0, image, len - 4);
  memcpy(image + len - 4, &crc, 4);
  int fd = open(ck->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return io_error(ck, "create its temporary file", errno);
  size_t done = 0;
  while (done < len) {
    ssize_t w = write(fd, image + done, len - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      int err = w < 0 ? errno : ENOSPC;
      close(fd);
      unlink(ck->tmp_path);
      return io_error(ck, "write", err);
    }
    done += (size_t)w;
  }
  if (fsync(fd) != 0) {
    int err = errno;
    close(fd);
    unlink(ck->tmp_path);
    return io_error(ck, "sync", err);
  }
  if (close(fd) != 0) {
    int err = errno;
    unlink(ck->tmp_path);
    return io_error(ck, "close", err);
  }
  if (rename(ck->tmp_path, ck->path) != 0) {
    int err = errno;
    unlink(ck->tmp_path);
    return io_error(ck, "rename its temporary file into place", err);
  }
  /* The rename is durable once the folder is synced; some file systems
   * refuse fsync on a folder, and the file itself is safe then. */
  int dfd = open(ck->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return DKM_OK;
}

static void swap_bufs(dkm__ckpt_buf *a, dkm__ckpt_buf *b) {
  dkm__ckpt_buf t = *a;
  *a = *b;
  *b = t;
}

static void *writer_main(void *arg) {
  dkm__ckpt *ck = arg;
  pthread_mutex_lock(&ck->mu);
  for (;;) {
    while (ck->queued.len == 0 && !ck->quit)
      pthread_cond_wait(&ck->cv, &ck->mu);
    if (ck->queued.len == 0)
      break;
    swap_bufs(&ck->writing, &ck->queued);
    ck->queued.len = 0;
    ck->busy = 1;
    pthread_mutex_unlock(&ck->mu);
    dkm_status s = write_file(ck, ck->writing.data, ck->writing.len);
    pthread_mutex_lock(&ck->mu);
    if (ck->last == DKM_OK)
      ck->last = s;
    ck->busy = 0;
    pthread_cond_broadcast(&ck->cv);
  }
  pthread_mutex_unlock(&ck->mu);
  return NULL;
}

dkm_status dkm__ckpt_flush(dkm__ckpt *ck) {
  if (!ck->started)
    return ck->last;
  pthread_mutex_lock(&ck->mu);
  while (ck->busy || ck->queued.len != 0)
    pthread_cond_wait(&ck->cv, &ck->mu);
  dkm_status s = ck->last;
  pthread_mutex_unlock(&ck->mu);
  return s;
}

static void put_raw(uint8_t **p, const void *data, size_t len) {
  memcpy(*p, data, len);
  *p += len;
}

static void put_section(uint8_t **p, uint32_t tag, const void *data, size_t len) {
  uint32_t zero = 0;
  uint64_t len64 = len;
  put_raw(p, &tag, sizeof tag);
  put_raw(p, &zero, sizeof zero);
  put_raw(p, &len64, sizeof len64);
  if (len != 0)
    put_raw(p, data, len);
}

static dkm_status start_writer(dkm__ckpt *ck) {
  if (ck->started || ck->failed_start)
    return DKM_OK;
  if (pthread_mutex_init(&ck->mu, NULL) == 0) {
    if (pthread_cond_init(&ck->cv, NULL) == 0) {
      if (pthread_create(&ck->thread, NULL, writer_main, ck) == 0)
        ck->started = 1;
      else
        pthread_cond_destroy(&ck->cv);
    }
    if (!ck->started)
      pthread_mutex_destroy(&ck->mu);
  }
  ck->failed_start = !ck->started;
  return DKM_OK;
}

dkm_status dkm__ckpt_save(dkm__ckpt *ck) {
  /* A failed write fails the next save: training stops rather than run on
   * without the checkpoint it was asked to keep. */
  if (ck->started) {
    pthread_mutex_lock(&ck->mu);
    dkm_status last = ck->last;
    pthread_mutex_unlock(&ck->mu);
    if (last != DKM_OK)
      return last;
  } else if (ck->last != DKM_OK) {
    return ck->last;
  }
  size_t len = CKPT_HEADER + 16 + ck->ident_len + 16 + 8 + 4;
  for (uint32_t t = 1; t < CKPT_TAGS; t++) {
    if (!ck->present[t])
      continue;
    if (ck->sec[t].failed)
      return dkm__error(ck->ctx, DKM_ERR_NOMEM, "out of memory building the checkpoint");
    len += 16 + ck->sec[t].len;
  }
  /* spare is this thread's alone. */
  dkm__ckpt_buf *img = &ck->spare;
  if (len > img->cap) {
    dkm__free(ck->ctx, img->data);
    img->cap = 0;
    img->data = dkm__alloc_or_fail(ck->ctx, len, "the checkpoint's image");
    if (img->data == NULL)
      return DKM_ERR_NOMEM;
    img->cap = len;
  }
  uint8_t *p = img->data;
  uint32_t version = CKPT_VERSION, bom = CKPT_BOM;
  uint64_t payload = len - CKPT_HEADER - 4;
  put_raw(&p, CKPT_MAGIC, 8);
  put_raw(&p, &version, 4);
  put_raw(&p, &bom, 4);
  put_raw(&p, &payload, 8);
  put_section(&p, CKPT_IDENT, ck->ident, ck->ident_len);
  uint32_t crc_words[2] = {ck->crc, 0};
  assert(ck->have_crc);
  put_section(&p, CKPT_SAMPLE, crc_words, sizeof crc_words);
  for (uint32_t t = 1; t < CKPT_TAGS; t++)
    if (ck->present[t])
      put_section(&p, t, ck->sec[t].data, ck->sec[t].len);
  uint32_t crc = 0; /* filled in by write_file */
  put_raw(&p, &crc, 4);
  assert((size_t)(p - img->data) == len);
  img->len = len;

  start_writer(ck);
  if (!ck->started) { /* no thread to be had: write on this one */
    ck->last = write_file(ck, img->data, len);
    return ck->last;
  }
  /* Queue it, replacing a queued one the writer has not started. */
  pthread_mutex_lock(&ck->mu);
  swap_bufs(&ck->queued, &ck->spare);
  ck->spare.len = 0;
  pthread_cond_broadcast(&ck->cv);
  pthread_mutex_unlock(&ck->mu);
  return DKM_OK;
}

/* --- reading the file ------------------------------------------------------------ */

/* Reads the whole of FILE into ck->loaded and checks the container. */
static dkm_status load(dkm__ckpt *ck) {
  char tmp[128];
  int fd = open(ck->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return dkm__error(ck->ctx, DKM_ERR_IO, "checkpoint %s: cannot resume from it: %s", ck->path,
                      strerror_r(errno, tmp, sizeof tmp));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int err = S_ISDIR(st.st_mode) ? EISDIR : errno;
    close(fd);
    return dkm__error(ck->ctx, DKM_ERR_IO, "checkpoint %s: %s", ck->path,
                      err == EISDIR ? "is a folder" : strerror_r(err, tmp, sizeof tmp));
  }
  uint64_t size = (uint64_t)st.st_size;
  if (size < CKPT_HEADER + 4) {
    close(fd);
    return dkm__error(ck->ctx, DKM_ERR_FORMAT,
                      "checkpoint %s: truncated (%llu bytes, shorter than its header)", ck->path,
                      (unsigned long long)size);
  }
  if (size > SIZE_MAX) {
    close(fd);
    return dkm__error(ck->ctx, DKM_ERR_FORMAT, "checkpoint %s: too large", ck->path);
  }
  ck->loaded = dkm__alloc_or_fail(ck->ctx, (size_t)size, "the checkpoint read");
  if (ck->loaded == NULL) {
    close(fd);
    return DKM_ERR_NOMEM;
  }
  size_t done = 0;
  while (done < size) {
    ssize_t r = read(fd, ck->loaded + done, (size_t)size - done);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      int err = r < 0 ? errno : 0;
      close(fd);
      return dkm__error(ck->ctx, err != 0 ? DKM_ERR_IO : DKM_ERR_FORMAT, "checkpoint %s: %s",
                        ck->path,
                        err != 0 ? strerror_r(err, tmp, sizeof tmp) : "shorter than its size");
    }
    done += (size_t)r;
  }
  close(fd);
  const uint8_t *b = ck->loaded;
  if (memcmp(b, CKPT_MAGIC, 8) != 0)
    return dkm__error(ck->ctx, DKM_ERR_FORMAT, "checkpoint %s: not a diskmeans checkpoint",
                      ck->path);
  uint32_t version, bom;
  uint64_t payload;
  memcpy(&version, b + 8, 4);
  memcpy(&bom, b + 12, 4);
  memcpy(&payload, b + 16, 8);
  if (bom != CKPT_BOM)
    return dkm__error(ck->ctx, DKM_ERR_FORMAT,
                      "checkpoint %s: written on a machine of the other byte order", ck->path);
  if (version != CKPT_VERSION)
    return dkm__error(ck->ctx, DKM_ERR_FORMAT,
                      "checkpoint %s: version %u; this library reads version %u", ck->path, version,
                      CKPT_VERSION);
  if (payload != size - CKPT_HEADER - 4)
    return dkm__error(ck->ctx, DKM_ERR_FORMAT,
                      "checkpoint %s: truncated or extended (%llu bytes, the header says %llu)",
                      ck->path, (unsigned long long)size,
                      (unsigned long long)(payload <= UINT64_MAX - CKPT_HEADER - 4
                                               ? payload + CKPT_HEADER + 4
                                               : payload));
  uint32_t want;
  memcpy(&want, b + size - 4, 4);
  if ((uint32_t)crc32_z(0, b, (size_t)size - 4) != want)
    return dkm__error(ck->ctx, DKM_ERR_FORMAT,
                      "checkpoint %s: damaged (its CRC32 does not match its contents)", ck->path);
  /* The sections. */
  dkm__ckpt_reader r = {b + CKPT_HEADER, (size_t)payload, 0};
  const uint8_t *ident = NULL;
  size_t ident_len = 0;
  int have_crc = 0;
  while (r.left > 0 && !r.bad) {
    uint32_t tag = dkm__ckpt_get_u32(&r);
    (void)dkm__ckpt_get_u32(&r);
    uint64_t len = dkm__ckpt_get_u64(&r);
    if (r.bad || len > r.left) {
      r.bad = 1;
      break;
    }
    if (tag == CKPT_IDENT) {
      ident = r.p;
      ident_len = (size_t)len;
    } else if (tag == CKPT_SAMPLE && len == 8) {
      memcpy(&ck->loaded_crc, r.p, 4);
      have_crc = 1;
    } else if (tag > 0 && tag < CKPT_TAGS) {
      ck->lsec[tag] = r.p;
      ck->lsec_len[tag] = (size_t)len;
    } else {
      r.bad = 1;
      break;
    }
    r.p += len;
    r.left -= (size_t)len;
  }
  if (r.bad || ident == NULL || !have_crc)
    return dkm__error(ck->ctx, DKM_ERR_FORMAT, "checkpoint %s: malformed sections", ck->path);
  ck->resume_crc = 1;
  /* The identity, line by line: the first line that differs is named. */
  const char *a = (const char *)ident, *a_end = a + ident_len;
  const char *c = ck->ident, *c_end = c + ck->ident_len;
  while (a < a_end || c < c_end) {
    const char *al = memchr(a, '\n', (size_t)(a_end - a));
    const char *cl = memchr(c, '\n', (size_t)(c_end - c));
    al = al != NULL ? al : a_end;
    cl = cl != NULL ? cl : c_end;
    if ((size_t)(al - a) != (size_t)(cl - c) || memcmp(a, c, (size_t)(al - a)) != 0) {
      const char *aeq = memchr(a, '=', (size_t)(al - a)), *ceq = memchr(c, '=', (size_t)(cl - c));
      if (aeq != NULL && ceq != NULL && aeq - a == ceq - c && memcmp(a, c, (size_t)(aeq - a)) == 0)
        return dkm__error(ck->ctx, DKM_ERR_PARAM,
                          "checkpoint %s: %.*s differs (checkpoint %.*s, this run %.*s)", ck->path,
                          (int)(aeq - a), a, (int)(al - aeq - 1), aeq + 1, (int)(cl - ceq - 1),
                          ceq + 1);
      const char *name = ceq != NULL ? c : aeq != NULL ? a : "the identity";
      int name_len = ceq != NULL ? (int)(ceq - c) : aeq != NULL ? (int)(aeq - a) : 12;
      return dkm__error(ck->ctx, DKM_ERR_PARAM,
                        "checkpoint %s: %.*s differs (the checkpoint was made by another run)",
                        ck->path, name_len, name);
    }
    a = al < a_end ? al + 1 : a_end;
    c = cl < c_end ? cl + 1 : c_end;
  }
  return DKM_OK;
}

dkm_status dkm__ckpt_sample(dkm__ckpt *ck, dkm_source *sample) {
  if (ck->have_crc)
    return DKM_OK;
  dkm_ctx *ctx = ck->ctx;
  const uint32_t dim = sample->dim;
  uint64_t block = DKM__MAX((uint64_t)(1u << 20) / ((uint64_t)dim * sizeof(float)), 1);
  block = DKM__MIN(block, sample->rows);
  float *buf = dkm__alloc_or_fail(ctx, (size_t)block * dim * sizeof(float), "the checkpoint's CRC");
  if (buf == NULL)
    return DKM_ERR_NOMEM;
  uLong crc = crc32_z(0, NULL, 0);
  dkm_status s = DKM_OK;
  for (uint64_t first = 0; first < sample->rows && s == DKM_OK; first += block) {
    uint64_t n = DKM__MIN(block, sample->rows - first);
    const float *rows = NULL;
    s = dkm_source_read(ctx, sample, first, n, buf, &rows);
    if (s == DKM_OK)
      crc = crc32_z(crc, (const Bytef *)rows, (size_t)n * dim * sizeof(float));
  }
  dkm__free(ctx, buf);
  if (s != DKM_OK)
    return s;
  if (ck->resume_crc && (uint32_t)crc != ck->loaded_crc)
    return dkm__error(ctx, DKM_ERR_PARAM,
                      "checkpoint %s: the input's rows differ (the CRC32 of the sample is %08x, "
                      "the checkpoint's %08x)",
                      ck->path, (unsigned)crc, (unsigned)ck->loaded_crc);
  ck->crc = (uint32_t)crc;
  ck->have_crc = 1;
  return DKM_OK;
}

/* --- open and close ------------------------------------------------------------------ */

static char *copy_string(dkm_ctx *ctx, const char *a, size_t alen, const char *b) {
  size_t blen = b != NULL ? strlen(b) : 0;
  char *s = dkm__alloc_or_fail(ctx, alen + blen + 1, "the checkpoint's name");
  if (s == NULL)
    return NULL;
  memcpy(s, a, alen);
  if (blen != 0)
    memcpy(s + alen, b, blen);
  s[alen + blen] = '\0';
  return s;
}

dkm_status dkm__ckpt_open(dkm_ctx *ctx, const char *path, int resume, const char *ident,
                          dkm__ckpt **out) {
  *out = NULL;
  if (path[0] == '\0')
    return dkm__error(ctx, DKM_ERR_PARAM, "checkpoint is an empty path");
  dkm__ckpt *ck = dkm__calloc(ctx, 1, sizeof *ck);
  if (ck == NULL)
    return dkm__error(ctx, DKM_ERR_NOMEM, "out of memory opening the checkpoint");
  ck->ctx = ctx;
  const char *slash = strrchr(path, '/');
  ck->path = copy_string(ctx, path, strlen(path), NULL);
  ck->tmp_path = copy_string(ctx, path, strlen(path), ".tmp");
  ck->dir = slash == NULL   ? copy_string(ctx, ".", 1, NULL)
            : slash == path ? copy_string(ctx, "/", 1, NULL)
                            : copy_string(ctx, path, (size_t)(slash - path), NULL);
  ck->ident_len = strlen(ident);
  ck->ident = copy_string(ctx, ident, ck->ident_len, NULL);
  dkm_status s = DKM_OK;
  if (ck->path == NULL || ck->tmp_path == NULL || ck->dir == NULL || ck->ident == NULL)
    s = DKM_ERR_NOMEM;
  if (s == DKM_OK && resume)
    s = load(ck);
  if (s != DKM_OK) {
    dkm__ckpt_close(ck);
    return s;
  }
  *out = ck;
  return DKM_OK;
}

void dkm__ckpt_close(dkm__ckpt *ck) {
  if (ck == NULL)
    return;
  dkm_ctx *ctx = ck->ctx;
  if (ck->started) {
    pthread_mutex_lock(&ck->mu);
    ck->quit = 1;
    pthread_cond_broadcast(&ck->cv);
    pthread_mutex_unlock(&ck->mu);
    pthread_join(ck->thread, NULL);
    pthread_cond_destroy(&ck->cv);
    pthread_mutex_destroy(&ck->mu);
  }
  for (uint32_t t = 0; t < CKPT_TAGS; t++)
    dkm__free(ctx, ck->sec[t].data);
  dkm__free(ctx, ck->writing.data);
  dkm__free(ctx, ck->queued.data);
  dkm__free(ctx, ck->spare.data);
  dkm__free(ctx, ck->loaded);
  dkm__free(ctx, ck->path);
  dkm__free(ctx, ck->tmp_path);
  dkm__free(ctx, ck->dir);
  dkm__free(ctx, ck->ident);
  dkm__free(ctx, ck);
}
