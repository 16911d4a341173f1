/*
 * hdf5.c - one 2-D dataset of an HDF5 file, read through libhdf5: the
 * format of ann-benchmarks' data sets (datasets train, test, neighbors).
 *
 * Which dataset: the caller's (dkm_file_options.dataset); else "train" when
 * the file has it; else the file's only 2-D dataset; else an error that
 * lists the datasets. Elements: IEEE f32, f64, f16, u8 and i8, either byte
 * order, any storage layout (contiguous, chunked, compressed with the
 * filters libhdf5 has). Rows are read as hyperslabs of whole rows, at most
 * about 1 MiB of stored values at a time unless they go straight into the
 * caller's float32 buffer, so memory stays bounded whatever the dataset's
 * size (libhdf5 adds its chunk cache: two chunks, at most 64 MiB).
 *
 * Values come out of libhdf5 as stored, in little-endian order, and are
 * converted to float32 by the library's own converter (source.c), exactly
 * as the same values in a .npy are: so HDF5 and npy give the same floats
 * bit for bit. f16 in particular is read as raw half-precision bits, since
 * libhdf5 1.10 has no predefined half type: we describe IEEE binary16 to it
 * as a float type of our own, which it accepts as a memory type equal to the
 * stored one (no conversion but a byte swap).
 *
 * libhdf5's own error printing is off during our calls (the previous
 * setting is put back after each), and its error stack becomes one line.
 *
 * Threads: Debian's libhdf5 is built without its thread-safe option, so two
 * threads must never be inside it at once. Every call into it here holds one
 * mutex; that protects our sources from each other (one source per thread,
 * several sources in several threads), not from a program that calls
 * libhdf5 itself from another thread at the same time.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "formats/file.h"

/* Stored bytes per staged read. */
#define H5_STAGE_BYTES (size_t)(1u << 20)
/* The most a dataset's chunk cache may hold (see open_dataset). */
#define H5_CACHE_MAX (UINT64_C(64) << 20)
/* Datasets named in an error message at most. */
#define H5_LIST_MAX 12

static pthread_mutex_t h5_lock = PTHREAD_MUTEX_INITIALIZER;

/* The error printing libhdf5 had before a call of ours. */
typedef struct h5_quiet {
  H5E_auto2_t func;
  void *data;
} h5_quiet;

/* Takes the lock and silences libhdf5's error printing. The first time,
 * before libhdf5 starts, it is asked not to clean up at exit: after failing
 * to open some damaged files (test/fuzz/corpus/hdf5_malformed/flip-f16-5)
 * it keeps a half-open file that its exit-time cleanup cannot close, and
 * then prints "HDF5: infinite loop closing library" to stderr as the
 * process ends. The request has no effect when the program started libhdf5
 * before us; when it takes effect, a program that also writes HDF5 files
 * must close them itself (H5Fclose), as libhdf5 asks anyway. */
static void h5_enter(h5_quiet *q) {
  static bool started;
  pthread_mutex_lock(&h5_lock);
  if (!started) {
    started = true;
    H5dont_atexit();
  }
  q->func = NULL;
  q->data = NULL;
  H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void h5_leave(const h5_quiet *q) {
  H5Eclear2(H5E_DEFAULT);
  H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
  pthread_mutex_unlock(&h5_lock);
}

/* The deepest description on libhdf5's error stack: the most specific
 * ("truncated file: eof = ...", "file signature not found"). */
static herr_t h5_walk(unsigned n, const H5E_error2_t *err, void *data) {
  (void)n;
  if (err->desc != NULL && err->desc[0] != '\0')
    snprintf(data, 256, "%s", err->desc);
  return 0;
}

static const char *h5_reason(char buf[256]) {
  strcpy(buf, "libhdf5 gave no reason");
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, h5_walk, buf);
  return buf;
}

/* --- finding the dataset ---------------------------------------------------- */

/* What a walk over the file's links found: every dataset's path (the first
 * H5_LIST_MAX of them written out) and the 2-D ones. */
typedef struct h5_census {
  unsigned datasets;
  unsigned two_d;
  char only_2d[512]; /* the path of the first 2-D dataset */
  char list[1024];   /* "/a (2-D), /b (1-D), ..." */
} h5_census;

static void census_add(h5_census *c, const char *name, int ndims) {
  if (ndims == 2 && c->two_d++ == 0)
    snprintf(c->only_2d, sizeof c->only_2d, "/%s", name);
  if (c->datasets++ < H5_LIST_MAX) {
    size_t len = strlen(c->list);
    snprintf(c->list + len, sizeof c->list - len, "%s/%s (%d-D)", len > 0 ? ", " : "", name, ndims);
  }
}

#if H5_VERSION_GE(1, 12, 0)
typedef H5L_info2_t h5_link_info;
#define h5_get_link_info H5Lget_info2
#else
typedef H5L_info_t h5_link_info;
#define h5_get_link_info H5Lget_info
#endif

/* H5Lvisit's callback: hard links only (a soft or external link could lead
 * anywhere, another file included); each object opened to ask its type,
 * which needs no versioned info structure. */
static herr_t census_visit(hid_t group, const char *name, const h5_link_info *info, void *data) {
  if (info->type != H5L_TYPE_HARD)
    return 0;
  hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
  if (obj < 0)
    return 0; /* unreadable: not listed */
  if (H5Iget_type(obj) == H5I_DATASET) {
    hid_t space = H5Dget_space(obj);
    int ndims = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (space >= 0)
      H5Sclose(space);
    census_add(data, name, ndims);
  }
  H5Oclose(obj);
  return 0;
}

static void census_take(hid_t file, h5_census *c) {
  memset(c, 0, sizeof *c);
  H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, census_visit, c);
  if (c->datasets > H5_LIST_MAX) {
    size_t len = strlen(c->list);
    snprintf(c->list + len, sizeof c->list - len, " and %u more", c->datasets - H5_LIST_MAX);
  }
}

/* Whether name is a dataset of the file (H5Lexists fails rather than says
 * no when a group on the way is missing: that is "no" too). An external
 * link is not followed: it could name any file. */
static bool is_dataset(hid_t file, const char *name) {
  h5_link_info info;
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0 ||
      h5_get_link_info(file, name, &info, H5P_DEFAULT) < 0 || info.type == H5L_TYPE_EXTERNAL)
    return false;
  hid_t obj = H5Oopen(file, name, H5P_DEFAULT);
  if (obj < 0)
    return false;
  bool yes = H5Iget_type(obj) == H5I_DATASET;
  H5Oclose(obj);
  return yes;
}

/* Picks the dataset (see the top of the file); its path goes to name. */
static dkm_status choose_dataset(dkm_ctx *ctx, const char *path, hid_t file, const char *wanted,
                                 char *name, size_t cap) {
  h5_census c;
  if (wanted != NULL) {
    if (wanted[0] != '\0' && is_dataset(file, wanted)) {
      snprintf(name, cap, "%s", wanted);
      return DKM_OK;
    }
    census_take(file, &c);
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: no dataset '%s' in the file (datasets: %s)", path,
                      wanted, c.datasets > 0 ? c.list : "none");
  }
  if (is_dataset(file, "train")) {
    snprintf(name, cap, "train");
    return DKM_OK;
  }
  census_take(file, &c);
  if (c.two_d == 1) {
    snprintf(name, cap, "%s", c.only_2d);
    return DKM_OK;
  }
  if (c.two_d == 0)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: no 2-D dataset (rows x dim) in the file (datasets: %s)", path,
                      c.datasets > 0 ? c.list : "none");
  return dkm__error(ctx, DKM_ERR_FORMAT,
                    "%s: no dataset 'train' and %u 2-D datasets; choose one (the dataset option, "
                    "e.g. --dataset): %s",
                    path, c.two_d, c.list);
}

/* --- the element type ------------------------------------------------------- */

/* IEEE binary16, little-endian, as a libhdf5 float type (1.10 predefines
 * none). Closed by the caller; negative on failure. */
static hid_t half_type(void) {
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  if (t < 0)
    return t;
  if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
    H5Tclose(t);
    return -1;
  }
  return t;
}

/* The dtype of the stored type, and the memory type to read it with (a
 * predefined one, or for f16 one of ours that *owned says to close). */
static dkm_status element_type(dkm_ctx *ctx, const char *path, const char *name, hid_t stored,
                               dkm_dtype *dtype, hid_t *mem, bool *owned) {
  H5T_class_t cls = H5Tget_class(stored);
  size_t size = H5Tget_size(stored);
  *owned = false;
  if (cls == H5T_FLOAT && size == 4) {
    *dtype = DKM_DTYPE_F32;
    *mem = H5T_IEEE_F32LE;
    return DKM_OK;
  }
  if (cls == H5T_FLOAT && size == 8) {
    *dtype = DKM_DTYPE_F64;
    *mem = H5T_IEEE_F64LE;
    return DKM_OK;
  }
  if (cls == H5T_FLOAT && size == 2) {
    size_t spos, epos, esize, mpos, msize;
    if (H5Tget_fields(stored, &spos, &epos, &esize, &mpos, &msize) < 0 || spos != 15 ||
        epos != 10 || esize != 5 || mpos != 0 || msize != 10 || H5Tget_ebias(stored) != 15)
      return dkm__error(ctx, DKM_ERR_FORMAT,
                        "%s: dataset %s holds 16-bit floats that are not IEEE binary16", path,
                        name);
    *mem = half_type();
    if (*mem < 0)
      return dkm__error(ctx, DKM_ERR_INTERNAL, "%s: dataset %s: cannot describe binary16", path,
                        name);
    *owned = true;
    *dtype = DKM_DTYPE_F16;
    return DKM_OK;
  }
  if (cls == H5T_INTEGER && size == 1) {
    bool sign = H5Tget_sign(stored) == H5T_SGN_2;
    *dtype = sign ? DKM_DTYPE_I8 : DKM_DTYPE_U8;
    *mem = sign ? H5T_STD_I8LE : H5T_STD_U8LE;
    return DKM_OK;
  }
  const char *what = cls == H5T_INTEGER    ? "integers"
                     : cls == H5T_FLOAT    ? "floats"
                     : cls == H5T_STRING   ? "strings"
                     : cls == H5T_COMPOUND ? "compound values"
                     : cls == H5T_ENUM     ? "enum values"
                                           : "values of an unsupported class";
  if (cls == H5T_STRING || (cls != H5T_INTEGER && cls != H5T_FLOAT))
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: dataset %s holds %s, not numbers (supported: f32, f64, f16, u8, i8)",
                      path, name, what);
  return dkm__error(ctx, DKM_ERR_FORMAT,
                    "%s: dataset %s holds %zu-bit %s (supported: f32, f64, f16, u8, i8)", path,
                    name, size * 8, what);
}

/* --- the source --------------------------------------------------------------- */

typedef struct h5_source {
  dkm_source base;
  hid_t file, dset, fspace, mem;
  bool mem_owned;
  unsigned char *stage; /* NULL for f32: read straight into the caller's buffer */
  uint64_t stage_rows;
  char *dataset; /* its path, for messages */
  char name[];
} h5_source;

/* Reads rows [first, first + n) as stored (little-endian) into dst. Called
 * with the lock held. */
static dkm_status h5_rows(dkm_ctx *ctx, h5_source *s, uint64_t first, uint64_t n, void *dst) {
  hsize_t start[2] = {first, 0}, count[2] = {n, s->base.dim};
  hid_t mspace = H5Screate_simple(2, count, NULL);
  herr_t e =
      mspace < 0 ? -1 : H5Sselect_hyperslab(s->fspace, H5S_SELECT_SET, start, NULL, count, NULL);
  if (e >= 0)
    e = H5Dread(s->dset, s->mem, mspace, s->fspace, H5P_DEFAULT, dst);
  if (mspace >= 0)
    H5Sclose(mspace);
  if (e < 0) {
    char why[256];
    return dkm__error(ctx, DKM_ERR_IO, "%s: dataset %s: reading rows %llu..%llu failed: %s",
                      s->name, s->dataset, (unsigned long long)first,
                      (unsigned long long)(first + n), h5_reason(why));
  }
  return DKM_OK;
}

static dkm_status h5_read(dkm_source *self, dkm_ctx *ctx, uint64_t first, uint64_t count,
                          float *buf, const float **rows) {
  h5_source *s = (h5_source *)self;
  dkm_status st = DKM_OK;
  h5_quiet q;
  h5_enter(&q);
  if (s->stage == NULL) {
    st = h5_rows(ctx, s, first, count, buf);
  } else {
    for (uint64_t done = 0; done < count && st == DKM_OK;) {
      uint64_t n = DKM__MIN(count - done, s->stage_rows);
      st = h5_rows(ctx, s, first + done, n, s->stage);
      if (st == DKM_OK)
        dkm__convert_to_f32(self->dtype, s->stage, (size_t)(n * self->dim), buf + done * self->dim);
      done += n;
    }
  }
  h5_leave(&q);
  *rows = buf;
  return st;
}

/* Closes what is open; with the lock held. */
static void h5_release(dkm_ctx *ctx, h5_source *s) {
  if (s->fspace >= 0)
    H5Sclose(s->fspace);
  if (s->mem_owned)
    H5Tclose(s->mem);
  if (s->dset >= 0)
    H5Dclose(s->dset);
  if (s->file >= 0)
    H5Fclose(s->file);
  dkm__free(ctx, s->stage);
  dkm__free(ctx, s->dataset);
  dkm__free(ctx, s);
}

static void h5_close(dkm_source *self) {
  h5_quiet q;
  h5_enter(&q);
  h5_release(self->ctx, (h5_source *)self);
  h5_leave(&q);
}

static const dkm_source_methods h5_methods = {DKM_SOURCE_METHODS_VERSION, h5_read, NULL, h5_close};

/* A stream's copy has no name, and libhdf5 insists on resolving the path
 * it opens (/proc/self/fd/N of a nameless file leads nowhere): the copy is
 * given a name in its folder for the moment of the open (linkat, as
 * open(2) describes for O_TMPFILE files), and the name is removed at once;
 * libhdf5 keeps its own descriptor. */
static hid_t open_kept(const dkm__file *f, const char *by_fd, hid_t fapl, char why[256]) {
  static unsigned counter;
  char name[4096];
  snprintf(name, sizeof name, "%s/.diskmeans-stream-%ld-%u.h5", f->kept_in, (long)getpid(),
           __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
  if (linkat(AT_FDCWD, by_fd, AT_FDCWD, name, AT_SYMLINK_FOLLOW) != 0) {
    snprintf(why, 256, "cannot name the stream's copy in %s for libhdf5: %s", f->kept_in,
             strerror(errno));
    return -1;
  }
  hid_t file = H5Fopen(name, H5F_ACC_RDONLY, fapl);
  if (file < 0)
    h5_reason(why);
  unlink(name);
  return file;
}

/* Opens the file read-only through the descriptor we hold (/proc/self/fd/N:
 * the very file checked, and what a kept stream or "-" can only be named
 * by), else by its path; without HDF5's file locks, which some file systems
 * refuse and which a reader does not need. */
static hid_t open_file(const dkm__file *f, char why[256]) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0) {
    h5_reason(why);
    return -1;
  }
#if H5_VERSION_GE(1, 10, 7)
  H5Pset_file_locking(fapl, 0, 1);
#endif
  char by_fd[64];
  snprintf(by_fd, sizeof by_fd, "/proc/self/fd/%d", f->fd);
  hid_t file;
  if (f->kept_in != NULL) {
    file = open_kept(f, by_fd, fapl, why);
  } else {
    file = H5Fopen(access(by_fd, R_OK) == 0 ? by_fd : f->path, H5F_ACC_RDONLY, fapl);
    if (file < 0)
      h5_reason(why); /* before H5Pclose, which clears the error stack */
  }
  H5Pclose(fapl);
  return file;
}

/* Opens the dataset with a chunk cache that holds two of its chunks
 * (libhdf5's default, 1 MiB, is smaller than many chunks: a chunk that two
 * reads share would then be read and decompressed twice), at most
 * H5_CACHE_MAX bytes. */
static hid_t open_dataset(hid_t file, const char *name) {
  hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
  if (dset < 0)
    return dset;
  hid_t dcpl = H5Dget_create_plist(dset);
  hid_t type = H5Dget_type(dset);
  hsize_t chunk[H5S_MAX_RANK];
  int rank =
      dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED ? H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk) : 0;
  uint64_t bytes = type >= 0 ? H5Tget_size(type) : 0;
  for (int i = 0; i < rank; i++)
    bytes = chunk[i] != 0 && bytes <= H5_CACHE_MAX / chunk[i] ? bytes * chunk[i] : H5_CACHE_MAX;
  if (dcpl >= 0)
    H5Pclose(dcpl);
  if (type >= 0)
    H5Tclose(type);
  if (rank <= 0 || 2 * bytes <= (UINT64_C(1) << 20))
    return dset;
  hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
  if (dapl < 0)
    return dset; /* the default cache is slower, not wrong */
  H5Pset_chunk_cache(dapl, 521, (size_t)DKM__MIN(2 * bytes, (uint64_t)H5_CACHE_MAX), 1.0);
  hid_t better = H5Dopen2(file, name, dapl);
  H5Pclose(dapl);
  if (better < 0)
    return dset;
  H5Dclose(dset);
  return better;
}

/* The open, with the lock held. */
static dkm_status open_locked(dkm_ctx *ctx, const dkm__file *f, const char *wanted, h5_source *s) {
  char why[256];
  s->file = open_file(f, why);
  if (s->file < 0)
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: not a readable HDF5 file: %s", f->path, why);
  char name[512];
  dkm_status st = choose_dataset(ctx, f->path, s->file, wanted, name, sizeof name);
  if (st != DKM_OK)
    return st;
  s->dataset = dkm__alloc_or_fail(ctx, strlen(name) + 1, "a dataset name");
  if (s->dataset == NULL)
    return DKM_ERR_NOMEM;
  strcpy(s->dataset, name);
  s->dset = open_dataset(s->file, name);
  if (s->dset < 0)
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: dataset %s: cannot open it: %s", f->path, name,
                      h5_reason(why));
  s->fspace = H5Dget_space(s->dset);
  int ndims = s->fspace >= 0 ? H5Sget_simple_extent_ndims(s->fspace) : -1;
  if (ndims < 0)
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: dataset %s: cannot read its shape: %s", f->path,
                      name, h5_reason(why));
  hsize_t dims[H5S_MAX_RANK];
  if (H5Sget_simple_extent_dims(s->fspace, dims, NULL) < 0)
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: dataset %s: cannot read its shape: %s", f->path,
                      name, h5_reason(why));
  if (ndims != 2)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: dataset %s is %d-D; only 2-D datasets (rows x dim) are supported",
                      f->path, name, ndims);
  if (dims[0] == 0)
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: dataset %s has no rows (shape (0, %llu))", f->path,
                      name, (unsigned long long)dims[1]);
  if (dims[1] == 0 || dims[1] > DKM__MAX_DIM)
    return dkm__error(ctx, DKM_ERR_FORMAT,
                      "%s: dataset %s has dimension %llu (supported: 1 to %u, 1<<20)", f->path,
                      name, (unsigned long long)dims[1], DKM__MAX_DIM);
  hid_t stored = H5Dget_type(s->dset);
  if (stored < 0)
    return dkm__error(ctx, DKM_ERR_FORMAT, "%s: dataset %s: cannot read its type: %s", f->path,
                      name, h5_reason(why));
  dkm_dtype dtype = DKM_DTYPE_F32;
  st = element_type(ctx, f->path, name, stored, &dtype, &s->mem, &s->mem_owned);
  H5Tclose(stored);
  if (st != DKM_OK)
    return st;
  dkm__source_init(&s->base, &h5_methods, ctx, dims[0], (uint32_t)dims[1], dtype, DKM_FORMAT_HDF5,
                   s->name);
  s->base.bytes = f->stored;
  if (dtype != DKM_DTYPE_F32) {
    uint64_t row_bytes = dims[1] * dkm_dtype_size(dtype);
    s->stage_rows = DKM__MIN(DKM__MAX(1, H5_STAGE_BYTES / row_bytes), dims[0]);
    s->stage = dkm__alloc_or_fail(ctx, (size_t)(s->stage_rows * row_bytes), "HDF5 read buffer");
    if (s->stage == NULL)
      return DKM_ERR_NOMEM;
  }
  return DKM_OK;
}

dkm_status dkm__open_hdf5(dkm_ctx *ctx, const dkm__file *f, const char *dataset, dkm_source **out) {
  size_t name_len = strlen(f->path) + 1;
  h5_source *s = dkm__alloc_or_fail(ctx, sizeof *s + name_len, "HDF5 source");
  if (s == NULL)
    return DKM_ERR_NOMEM;
  memset(s, 0, sizeof *s);
  memcpy(s->name, f->path, name_len);
  s->file = s->dset = s->fspace = -1;
  h5_quiet q;
  h5_enter(&q);
  dkm_status st = open_locked(ctx, f, dataset, s);
  if (st != DKM_OK)
    h5_release(ctx, s);
  h5_leave(&q);
  if (st != DKM_OK)
    return st;
  /* libhdf5 holds its own descriptor of the file: ours is not needed. */
  close(f->fd);
  *out = &s->base;
  return DKM_OK;
}
