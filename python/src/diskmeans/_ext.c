/*
 * _ext.c - the CPython extension over the public header include/diskmeans.h.
 *
 * It only turns Python objects into library calls and back: the Python layer
 * (_api.py) checks and names the parameters, and this file
 *  - turns each input into a dkm_source (build_source: a file path, or any
 *    2-D buffer read through the buffer protocol without a whole copy),
 *  - fills a dkm_params from a dict whose keys are the field names,
 *  - releases the GIL around dkm_train / dkm_assign / dkm_plan_training, with
 *    a progress callback that re-takes it to run the user's callable and
 *    Python's signal handlers (Ctrl-C), cancelling on any exception, which
 *    then propagates unchanged,
 *  - turns a failed status into the exception diskmeans._errors.from_status
 *    makes of it, with the library's message.
 *
 * No numpy C API: arrays come in through PyObject_GetBuffer and results go
 * out as bytearrays that the Python layer views with numpy.frombuffer.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "diskmeans.h"

/* diskmeans._errors.from_status(status, message) -> exception instance. */
static PyObject *from_status_fn;

/* Raises the exception for a failed status, with the context's message. */
static PyObject *raise_status(dkm_ctx *ctx, dkm_status st) {
  const char *msg = ctx != NULL ? dkm_ctx_errmsg(ctx) : "";
  if (msg[0] == '\0')
    msg = dkm_strerror(st);
  PyObject *exc = PyObject_CallFunction(from_status_fn, "is", (int)st, msg);
  if (exc != NULL) {
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
  }
  return NULL;
}

/* Raises a parameter error (DKM_ERR_PARAM's class) with a message. */
static PyObject *raise_param(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  PyObject *exc = PyObject_CallFunction(from_status_fn, "is", (int)DKM_ERR_PARAM, buf);
  if (exc != NULL) {
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
  }
  return NULL;
}

/* --- a source over a Python buffer ---------------------------------------- */

/*
 * Every array input is one of these. It owns the Py_buffer (so the array
 * stays alive and unresized until the source is closed) and reads rows in
 * one of two ways:
 *  - inner != NULL: the array is C-contiguous and not a file mapping; the
 *    library's own in-memory source reads it (zero copy for float32);
 *  - otherwise rows are gathered through the strides into a contiguous
 *    block, converted by a private in-memory source over that block (so every
 *    dtype converts with the library's own code, the same bits as a file),
 *    and, for a shared file mapping (np.memmap, np.load(mmap_mode="r")), the
 *    pages read so far are released with MADV_DONTNEED, so that a mapping far
 *    larger than RAM never ends up resident: the kernel maps them again from
 *    the page cache or the file when they are read again.
 * The library never calls one source's methods from two threads at once, so
 * the scratch block needs no lock. These methods never touch Python objects,
 * except close, which takes the GIL to release the buffer.
 */
typedef struct buffer_source {
  dkm_source base; /* first: the library sees a dkm_source */
  Py_buffer view;
  dkm_source *inner;         /* the library's in-memory source, or NULL */
  dkm_ctx *conv_ctx;         /* private context of the per-block conversion */
  const unsigned char *data; /* address of row 0, column 0 */
  Py_ssize_t row_stride, col_stride;
  size_t itemsize;
  int release_pages; /* MADV_DONTNEED what has been read */
  uintptr_t lo, hi;  /* the array's bytes: [lo, hi) */
  size_t page;
  unsigned char *scratch; /* gathered rows, itemsize * dim * scratch_rows */
  uint64_t scratch_rows;
  char name[64];
} buffer_source;

static void release_read_pages(buffer_source *s, uint64_t first, uint64_t count) {
  /* The pages wholly inside the array from its start to the end of the rows
   * just read (rows before `first` may have been read out of order). Only
   * for positive strides, where row order is address order. */
  uintptr_t end = (uintptr_t)(s->data + (first + count - 1) * (uint64_t)s->row_stride +
                              (uint64_t)(s->base.dim - 1) * (uint64_t)s->col_stride + s->itemsize);
  uintptr_t from = (s->lo + s->page - 1) / s->page * s->page;
  uintptr_t to = (end < s->hi ? end : s->hi) / s->page * s->page;
  if (to > from)
    (void)madvise((void *)from, to - from, MADV_DONTNEED);
}

static dkm_status buffer_read(dkm_source *self, dkm_ctx *ctx, uint64_t first, uint64_t count,
                              float *buf, const float **rows) {
  buffer_source *s = (buffer_source *)self;
  if (s->inner != NULL)
    return s->inner->methods->read(s->inner, ctx, first, count, buf, rows);
  const uint32_t dim = self->dim;
  const size_t row_bytes = s->itemsize * dim;
  unsigned char *dst;
  if (self->dtype == DKM_DTYPE_F32) {
    dst = (unsigned char *)buf; /* gather straight into the caller's block */
  } else {
    if (count > s->scratch_rows) {
      unsigned char *p = realloc(s->scratch, (size_t)count * row_bytes);
      if (p == NULL)
        return dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "%s: no memory for a block of %llu rows",
                                 self->name, (unsigned long long)count);
      s->scratch = p;
      s->scratch_rows = count;
    }
    dst = s->scratch;
  }
  for (uint64_t r = 0; r < count; r++) {
    const unsigned char *src = s->data + (Py_ssize_t)(first + r) * s->row_stride;
    unsigned char *out = dst + r * row_bytes;
    if ((size_t)s->col_stride == s->itemsize) {
      memcpy(out, src, row_bytes);
    } else {
      for (uint32_t c = 0; c < dim; c++)
        memcpy(out + (size_t)c * s->itemsize, src + (Py_ssize_t)c * s->col_stride, s->itemsize);
    }
  }
  if (self->dtype != DKM_DTYPE_F32) {
    dkm_source *conv = NULL;
    dkm_status st = dkm_source_from_memory(s->conv_ctx, dst, self->dtype, count, dim, &conv);
    if (st == DKM_OK)
      st = dkm_source_read(s->conv_ctx, conv, 0, count, buf, rows);
    dkm_source_close(conv);
    if (st != DKM_OK)
      return dkm_ctx_set_error(ctx, st, "%s: %s", self->name, dkm_ctx_errmsg(s->conv_ctx));
    if (*rows != buf) { /* cannot happen for a converted dtype; be safe */
      memcpy(buf, *rows, (size_t)count * dim * sizeof(float));
    }
  }
  *rows = buf;
  if (s->release_pages)
    release_read_pages(s, first, count);
  return DKM_OK;
}

static void buffer_will_need(dkm_source *self, uint64_t first, uint64_t count) {
  buffer_source *s = (buffer_source *)self;
  if (s->inner != NULL || !s->release_pages || count == 0)
    return;
  uintptr_t start = (uintptr_t)(s->data + first * (uint64_t)s->row_stride);
  uintptr_t end = (uintptr_t)(s->data + (first + count - 1) * (uint64_t)s->row_stride +
                              (uint64_t)(self->dim - 1) * (uint64_t)s->col_stride + s->itemsize);
  uintptr_t from = start / s->page * s->page;
  if (from < s->lo)
    from = (s->lo + s->page - 1) / s->page * s->page;
  if (end > from)
    (void)madvise((void *)from, end - from, MADV_WILLNEED);
}

static void buffer_close(dkm_source *self) {
  buffer_source *s = (buffer_source *)self;
  dkm_source_close(s->inner);
  dkm_ctx_free(s->conv_ctx);
  free(s->scratch);
  /* Callable from any thread, with or without the GIL. */
  PyGILState_STATE g = PyGILState_Ensure();
  PyBuffer_Release(&s->view);
  PyGILState_Release(g);
  free(s);
}

static const dkm_source_methods buffer_methods = {
    DKM_SOURCE_METHODS_VERSION,
    buffer_read,
    buffer_will_need,
    buffer_close,
};

/* The element type of a buffer format ("f", "<e", "=d", "B", "b", ...). */
static int format_dtype(const char *fmt, dkm_dtype *out) {
  if (fmt == NULL)
    fmt = "B";
  if (*fmt == '@' || *fmt == '=' || *fmt == '<')
    fmt++;
  if (fmt[0] == '\0' || fmt[1] != '\0')
    return -1;
  switch (fmt[0]) {
  case 'f':
    *out = DKM_DTYPE_F32;
    return 0;
  case 'e':
    *out = DKM_DTYPE_F16;
    return 0;
  case 'd':
    *out = DKM_DTYPE_F64;
    return 0;
  case 'B':
    *out = DKM_DTYPE_U8;
    return 0;
  case 'b':
    *out = DKM_DTYPE_I8;
    return 0;
  default:
    return -1;
  }
}

/* An array input: ("array", obj, name, release_pages). */
static int open_array(dkm_ctx *ctx, PyObject *obj, const char *name, int release_pages,
                      dkm_source **out) {
  buffer_source *s = calloc(1, sizeof *s);
  if (s == NULL) {
    PyErr_NoMemory();
    return -1;
  }
  if (PyObject_GetBuffer(obj, &s->view, PyBUF_RECORDS_RO) != 0) {
    free(s);
    return -1;
  }
  Py_buffer *v = &s->view;
  dkm_dtype dtype;
  if (v->ndim != 2 || format_dtype(v->format, &dtype) != 0 ||
      (size_t)v->itemsize != dkm_dtype_size(dtype)) {
    raise_param("%s: a 2-D buffer of float32, float16, float64, uint8 or int8 is needed "
                "(got %d-D, format '%s')",
                name, v->ndim, v->format != NULL ? v->format : "B");
    PyBuffer_Release(v);
    free(s);
    return -1;
  }
  if (v->shape[0] <= 0 || v->shape[1] <= 0 || (uint64_t)v->shape[1] > UINT32_MAX) {
    raise_param("%s: has shape (%zd, %zd); it needs at least one row and one column, and at "
                "most 4294967295 columns",
                name, v->shape[0], v->shape[1]);
    PyBuffer_Release(v);
    free(s);
    return -1;
  }
  snprintf(s->name, sizeof s->name, "%s", name);
  s->base.methods = &buffer_methods;
  s->base.rows = (uint64_t)v->shape[0];
  s->base.dim = (uint32_t)v->shape[1];
  s->base.dtype = dtype;
  s->base.bytes = (uint64_t)v->len;
  s->base.name = s->name;
  s->base.ctx = ctx;
  s->itemsize = (size_t)v->itemsize;
  s->data = v->buf;
  s->row_stride = v->strides[0];
  s->col_stride = v->strides[1];
  int contiguous = s->col_stride == v->itemsize && s->row_stride == v->itemsize * v->shape[1];
  if (contiguous && !release_pages) {
    dkm_status st =
        dkm_source_from_memory(ctx, v->buf, dtype, s->base.rows, s->base.dim, &s->inner);
    if (st != DKM_OK) {
      PyBuffer_Release(v);
      free(s);
      raise_status(ctx, st);
      return -1;
    }
    s->base.flags = s->inner->flags;
    s->base.format = DKM_FORMAT_MEMORY;
  } else {
    /* A file mapping is read like a headerless file: disk mode may then
     * stream it on every pass rather than copy it to a spill file. */
    s->base.format = release_pages ? DKM_FORMAT_RAW : DKM_FORMAT_MEMORY;
    s->base.flags = 0;
    s->conv_ctx = dkm_ctx_create(NULL);
    if (s->conv_ctx == NULL) {
      PyBuffer_Release(v);
      free(s);
      PyErr_NoMemory();
      return -1;
    }
    if (release_pages && s->row_stride > 0 && s->col_stride > 0) {
      long page = sysconf(_SC_PAGESIZE);
      s->page = page > 0 ? (size_t)page : 4096;
      s->lo = (uintptr_t)v->buf;
      s->hi = (uintptr_t)v->buf + (uintptr_t)((v->shape[0] - 1) * s->row_stride +
                                              (v->shape[1] - 1) * s->col_stride + v->itemsize);
      s->release_pages = 1;
    }
  }
  *out = &s->base;
  return 0;
}

/* A file input: ("file", path bytes, name, format, raw_dim, raw_dtype,
 * dataset str or None). */
static int open_path(dkm_ctx *ctx, PyObject *spec, dkm_source **out) {
  const char *kind, *path, *name, *dataset;
  int format, raw_dtype;
  unsigned int raw_dim;
  if (!PyArg_ParseTuple(spec, "sysiIiz", &kind, &path, &name, &format, &raw_dim, &raw_dtype,
                        &dataset))
    return -1;
  dkm_file_options opts;
  dkm_file_options_init(&opts);
  opts.format = (dkm_format)format;
  opts.raw_dim = raw_dim;
  opts.raw_dtype = (dkm_dtype)raw_dtype;
  opts.dataset = dataset; /* read during the open only; the spec holds the string */
  dkm_status st;
  Py_BEGIN_ALLOW_THREADS st = dkm_source_open_file(ctx, path, &opts, out);
  Py_END_ALLOW_THREADS if (st != DKM_OK) {
    raise_status(ctx, st);
    return -1;
  }
  return 0;
}

/* One input: a spec tuple made by _api._input_spec. */
static int build_source(dkm_ctx *ctx, PyObject *spec, dkm_source **out) {
  *out = NULL;
  if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) < 1) {
    PyErr_SetString(PyExc_TypeError, "internal: an input spec is a tuple");
    return -1;
  }
  const char *kind = PyUnicode_AsUTF8(PyTuple_GET_ITEM(spec, 0));
  if (kind == NULL)
    return -1;
  if (strcmp(kind, "file") == 0)
    return open_path(ctx, spec, out);
  if (strcmp(kind, "array") == 0) {
    PyObject *obj;
    const char *name;
    int release;
    if (!PyArg_ParseTuple(spec, "sOsp", &kind, &obj, &name, &release))
      return -1;
    return open_array(ctx, obj, name, release, out);
  }
  PyErr_Format(PyExc_TypeError, "internal: unknown input kind '%s'", kind);
  return -1;
}

/*
 * The source of a call: one per input, joined in order into one data set by
 * dkm_source_concat (as the CLI joins several INPUT files; with one input it
 * is that input's source). A part that fails to build closes the ones built
 * before it; dkm_source_concat owns the parts once called, success or not.
 */
static int build_sources(dkm_ctx *ctx, PyObject *specs, dkm_source **out) {
  *out = NULL;
  PyObject *seq = PySequence_Fast(specs, "internal: inputs are a sequence");
  if (seq == NULL)
    return -1;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  if (n < 1) {
    Py_DECREF(seq);
    raise_param("data: an empty list: no input");
    return -1;
  }
  if (n == 1) {
    int rc = build_source(ctx, PySequence_Fast_GET_ITEM(seq, 0), out);
    Py_DECREF(seq);
    return rc;
  }
  dkm_source **parts = calloc((size_t)n, sizeof *parts);
  if (parts == NULL) {
    Py_DECREF(seq);
    PyErr_NoMemory();
    return -1;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    if (build_source(ctx, PySequence_Fast_GET_ITEM(seq, i), &parts[i]) != 0) {
      for (Py_ssize_t j = 0; j < i; j++)
        dkm_source_close(parts[j]);
      free(parts);
      Py_DECREF(seq);
      return -1;
    }
  }
  Py_DECREF(seq);
  /* Closing a part on failure takes the GIL itself (buffer_close). */
  PyThreadState *ts = PyEval_SaveThread();
  dkm_status st = dkm_source_concat(ctx, parts, (size_t)n, out);
  PyEval_RestoreThread(ts);
  free(parts);
  if (st != DKM_OK) {
    *out = NULL;
    raise_status(ctx, st);
    return -1;
  }
  return 0;
}

/* --- parameters ------------------------------------------------------------ */

/* Integers were range-checked by the Python layer; these only convert. */
static int get_u64(PyObject *d, const char *key, uint64_t *out) {
  PyObject *v = PyDict_GetItemString(d, key); /* borrowed */
  if (v == NULL)
    return 0;
  unsigned long long x = PyLong_AsUnsignedLongLong(v);
  if (x == (unsigned long long)-1 && PyErr_Occurred()) {
    PyErr_Clear();
    raise_param("%s must be a non-negative integer of at most 64 bits", key);
    return -1;
  }
  *out = (uint64_t)x;
  return 0;
}

static int get_u32(PyObject *d, const char *key, uint32_t *out) {
  uint64_t x = *out;
  if (get_u64(d, key, &x) != 0)
    return -1;
  if (x > UINT32_MAX) {
    raise_param("%s is %llu; it must be at most 4294967295", key, (unsigned long long)x);
    return -1;
  }
  *out = (uint32_t)x;
  return 0;
}

static int get_enum(PyObject *d, const char *key, int *out) {
  uint32_t x = (uint32_t)*out;
  if (get_u32(d, key, &x) != 0)
    return -1;
  *out = (int)x;
  return 0;
}

/* A text field (a path): bytes from the Python layer, or None for NULL. The
 * pointer goes into the dict's bytes object, alive as long as the dict. */
static int get_bytes(PyObject *d, const char *key, const char **out) {
  PyObject *v = PyDict_GetItemString(d, key); /* borrowed */
  if (v == NULL || v == Py_None)
    return 0;
  if (!PyBytes_Check(v)) {
    PyErr_Format(PyExc_TypeError, "internal: %s is passed as bytes", key);
    return -1;
  }
  if (strlen(PyBytes_AS_STRING(v)) != (size_t)PyBytes_GET_SIZE(v)) {
    raise_param("%s contains a NUL byte", key);
    return -1;
  }
  *out = PyBytes_AS_STRING(v);
  return 0;
}

/* Fills p from the dict (keys: the dkm_params field names). The text fields
 * (tmp_dir, checkpoint, checkpoint_identity) point into the dict's bytes
 * objects, alive as long as the dict. */
static int fill_params(PyObject *d, dkm_params *p) {
  dkm_params_init(p);
  int init = p->init, metric = p->metric, storage = p->storage, strategy = p->strategy;
  if (get_u32(d, "k", &p->k) || get_u32(d, "max_iter", &p->max_iter) ||
      get_u32(d, "n_redo", &p->n_redo) || get_u64(d, "seed", &p->seed) ||
      get_enum(d, "init", &init) || get_enum(d, "metric", &metric) ||
      get_u64(d, "max_points_per_centroid", &p->max_points_per_centroid) ||
      get_u32(d, "n_threads", &p->n_threads) || get_u64(d, "block_rows", &p->block_rows) ||
      get_enum(d, "storage", &storage) || get_u64(d, "memory_limit", &p->memory_limit) ||
      get_enum(d, "strategy", &strategy) || get_u32(d, "refine", &p->refine))
    return -1;
  p->init = (dkm_init)init;
  p->metric = (dkm_metric)metric;
  p->storage = (dkm_storage)storage;
  p->strategy = (dkm_strategy)strategy;
  PyObject *v = PyDict_GetItemString(d, "tol");
  if (v != NULL) {
    p->tol = PyFloat_AsDouble(v);
    if (p->tol == -1.0 && PyErr_Occurred())
      return -1;
  }
  v = PyDict_GetItemString(d, "balance");
  if (v != NULL) {
    int b = PyObject_IsTrue(v);
    if (b < 0)
      return -1;
    p->balance = b;
  }
  if (get_bytes(d, "tmp_dir", &p->tmp_dir) || get_bytes(d, "checkpoint", &p->checkpoint) ||
      get_bytes(d, "checkpoint_identity", &p->checkpoint_identity))
    return -1;
  v = PyDict_GetItemString(d, "resume");
  if (v != NULL) {
    int b = PyObject_IsTrue(v);
    if (b < 0)
      return -1;
    p->resume = b;
  }
  return 0;
}

/* --- progress: the GIL, the user's callable, Ctrl-C ----------------------- */

typedef struct call_progress {
  PyThreadState *ts;                       /* this thread's state while the GIL is released */
  PyObject *callable;                      /* the user's, or NULL */
  PyObject *exc_type, *exc_value, *exc_tb; /* the first exception raised */
  int failed;
} call_progress;

static int progress_cb(void *user, const dkm_progress *p) {
  call_progress *cp = user;
  if (cp->failed)
    return 1; /* keep the first exception; the library is stopping */
  PyEval_RestoreThread(cp->ts);
  int cancel = 0;
  if (cp->callable != NULL) {
    PyObject *r = PyObject_CallFunction(cp->callable, "iIIIKKdIIII", (int)p->phase, p->run,
                                        p->iteration, p->max_iter, (unsigned long long)p->done,
                                        (unsigned long long)p->total, p->objective,
                                        (unsigned)p->part, p->level, p->group, p->n_groups);
    if (r == NULL)
      cancel = 1;
    Py_XDECREF(r);
  }
  /* Runs Python's signal handlers (only on the main thread): Ctrl-C raises
   * KeyboardInterrupt here. */
  if (!cancel && PyErr_CheckSignals() != 0)
    cancel = 1;
  if (cancel) {
    PyErr_Fetch(&cp->exc_type, &cp->exc_value, &cp->exc_tb);
    cp->failed = 1;
  }
  cp->ts = PyEval_SaveThread();
  return cancel;
}

/* After the call, with the GIL: re-raises the callback's exception, if any.
 * Returns 1 when it did. */
static int progress_reraise(call_progress *cp) {
  if (!cp->failed)
    return 0;
  PyErr_Restore(cp->exc_type, cp->exc_value, cp->exc_tb);
  cp->exc_type = cp->exc_value = cp->exc_tb = NULL;
  return 1;
}

/* --- results ---------------------------------------------------------------- */

static PyObject *bytes_of(const void *p, size_t n) {
  return PyByteArray_FromStringAndSize((const char *)p, (Py_ssize_t)n);
}

#define SET_ITEM(d, key, expr)                                                                     \
  do {                                                                                             \
    PyObject *v_ = (expr);                                                                         \
    if (v_ == NULL || PyDict_SetItemString((d), (key), v_) != 0) {                                 \
      Py_XDECREF(v_);                                                                              \
      goto fail;                                                                                   \
    }                                                                                              \
    Py_DECREF(v_);                                                                                 \
  } while (0)

static PyObject *result_dict(const dkm_result *r) {
  PyObject *d = PyDict_New();
  PyObject *iters = NULL;
  if (d == NULL)
    return NULL;
  SET_ITEM(d, "k", PyLong_FromUnsignedLong(r->k));
  SET_ITEM(d, "dim", PyLong_FromUnsignedLong(r->dim));
  SET_ITEM(d, "centroids", bytes_of(r->centroids, (size_t)r->k * r->dim * sizeof(float)));
  SET_ITEM(d, "cluster_sizes", bytes_of(r->cluster_sizes, (size_t)r->k * sizeof(uint64_t)));
  SET_ITEM(d, "objective", PyFloat_FromDouble(r->objective));
  SET_ITEM(d, "n_iter", PyLong_FromUnsignedLong(r->n_iter));
  iters = PyList_New(r->n_iter);
  if (iters == NULL)
    goto fail;
  for (uint32_t i = 0; i < r->n_iter; i++) {
    const dkm_iter_stats *it = &r->iters[i];
    PyObject *t = Py_BuildValue("(ddIId)", it->objective, it->seconds, it->repaired, it->rebalanced,
                                it->imbalance);
    if (t == NULL)
      goto fail;
    PyList_SET_ITEM(iters, i, t);
  }
  SET_ITEM(d, "iterations", iters);
  iters = NULL;
  SET_ITEM(d, "best_run", PyLong_FromUnsignedLong(r->best_run));
  SET_ITEM(d, "rows", PyLong_FromUnsignedLongLong(r->rows));
  SET_ITEM(d, "sample_rows", PyLong_FromUnsignedLongLong(r->sample_rows));
  SET_ITEM(d, "storage", PyLong_FromLong(r->storage));
  SET_ITEM(d, "from_source", PyBool_FromLong(r->from_source));
  SET_ITEM(d, "spill_bytes", PyLong_FromUnsignedLongLong(r->spill_bytes));
  SET_ITEM(d, "sample_seconds", PyFloat_FromDouble(r->sample_seconds));
  SET_ITEM(d, "init_seconds", PyFloat_FromDouble(r->init_seconds));
  SET_ITEM(d, "train_seconds", PyFloat_FromDouble(r->train_seconds));
  SET_ITEM(d, "distinct_rows", PyLong_FromUnsignedLong(r->distinct_rows));
  SET_ITEM(d, "balance",
           Py_BuildValue("(ddKKI)", r->balance.cv, r->balance.largest_over_mean,
                         (unsigned long long)r->balance.smallest,
                         (unsigned long long)r->balance.largest, r->balance.empty));
  SET_ITEM(d, "strategy", PyLong_FromLong(r->strategy));
  SET_ITEM(d, "coarse_k", PyLong_FromUnsignedLong(r->coarse_k));
  SET_ITEM(d, "levels", PyLong_FromUnsignedLong(r->levels));
  SET_ITEM(d, "refine_passes", PyLong_FromUnsignedLong(r->refine_passes));
  SET_ITEM(d, "coarse_seconds", PyFloat_FromDouble(r->coarse_seconds));
  SET_ITEM(d, "route_seconds", PyFloat_FromDouble(r->route_seconds));
  SET_ITEM(d, "groups_seconds", PyFloat_FromDouble(r->groups_seconds));
  SET_ITEM(d, "refine_seconds", PyFloat_FromDouble(r->refine_seconds));
  return d;
fail:
  Py_XDECREF(iters);
  Py_DECREF(d);
  return NULL;
}

static PyObject *plan_dict(const dkm_plan *p) {
  PyObject *d = PyDict_New();
  if (d == NULL)
    return NULL;
  SET_ITEM(d, "rows", PyLong_FromUnsignedLongLong(p->rows));
  SET_ITEM(d, "dim", PyLong_FromUnsignedLong(p->dim));
  SET_ITEM(d, "sample_rows", PyLong_FromUnsignedLongLong(p->sample_rows));
  SET_ITEM(d, "sample_bytes", PyLong_FromUnsignedLongLong(p->sample_bytes));
  SET_ITEM(d, "storage", PyLong_FromLong(p->storage));
  SET_ITEM(d, "from_source", PyBool_FromLong(p->from_source));
  SET_ITEM(d, "spill_bytes", PyLong_FromUnsignedLongLong(p->spill_bytes));
  SET_ITEM(d, "memory_mode_bytes", PyLong_FromUnsignedLongLong(p->memory_mode_bytes));
  SET_ITEM(d, "disk_mode_bytes", PyLong_FromUnsignedLongLong(p->disk_mode_bytes));
  SET_ITEM(d, "memory_limit", PyLong_FromUnsignedLongLong(p->memory_limit));
  SET_ITEM(d, "strategy", PyLong_FromLong(p->strategy));
  SET_ITEM(d, "coarse_k", PyLong_FromUnsignedLong(p->coarse_k));
  SET_ITEM(d, "flops", PyFloat_FromDouble(p->flops));
  SET_ITEM(d, "flat_flops", PyFloat_FromDouble(p->flat_flops));
  SET_ITEM(d, "memory_limit_source", PyUnicode_FromString(p->memory_limit_source));
  return d;
fail:
  Py_DECREF(d);
  return NULL;
}

/* --- the calls ------------------------------------------------------------- */

/* A float32 C-contiguous buffer of rows x dim for centroids. */
static int get_centroids(PyObject *obj, const char *what, Py_buffer *view) {
  if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0)
    return -1;
  dkm_dtype dt;
  if (view->ndim != 2 || format_dtype(view->format, &dt) != 0 || dt != DKM_DTYPE_F32) {
    PyBuffer_Release(view);
    raise_param("%s must be a 2-D float32 array", what);
    return -1;
  }
  return 0;
}

/* Initial centroids: a float32 k x dim buffer, checked against src and k
 * (as the CLI checks --init FILE), held in *view until the call ends. */
static int set_init(PyObject *obj, const dkm_source *src, dkm_params *params, Py_buffer *view) {
  if (get_centroids(obj, "init", view) != 0)
    return -1;
  if ((uint64_t)view->shape[1] != src->dim) {
    raise_param("init: the initial centroids have dimension %zd, but %s has dimension %u",
                view->shape[1], src->name, src->dim);
    PyBuffer_Release(view);
    return -1;
  }
  if ((uint64_t)view->shape[0] != params->k) {
    raise_param("init: has %zd rows, but k is %u", view->shape[0], params->k);
    PyBuffer_Release(view);
    return -1;
  }
  params->init = DKM_INIT_GIVEN;
  params->init_centroids = view->buf;
  return 0;
}

PyDoc_STRVAR(train_doc, "train(inputs, params, init, progress) -> dict\n\n"
                        "dkm_train() on the inputs (internal; see diskmeans.train).");

static PyObject *ext_train(PyObject *mod, PyObject *args) {
  PyObject *specs, *pdict, *init_obj, *callable;
  if (!PyArg_ParseTuple(args, "OO!OO", &specs, &PyDict_Type, &pdict, &init_obj, &callable))
    return NULL;
  dkm_params params;
  if (fill_params(pdict, &params) != 0)
    return NULL;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  if (ctx == NULL)
    return PyErr_NoMemory();
  PyObject *ret = NULL;
  dkm_source *src = NULL;
  dkm_result *res = NULL;
  Py_buffer init = {0};
  int have_init = 0;
  if (build_sources(ctx, specs, &src) != 0)
    goto done;
  if (init_obj != Py_None) {
    if (set_init(init_obj, src, &params, &init) != 0)
      goto done;
    have_init = 1;
  }
  call_progress cp = {0};
  cp.callable = callable != Py_None ? callable : NULL;
  params.progress = progress_cb;
  params.progress_user = &cp;
  cp.ts = PyEval_SaveThread();
  dkm_status st = dkm_train(ctx, &params, src, &res);
  PyEval_RestoreThread(cp.ts);
  if (progress_reraise(&cp))
    goto done;
  if (st != DKM_OK) {
    raise_status(ctx, st);
    goto done;
  }
  ret = result_dict(res);
done:
  dkm_result_free(res);
  dkm_source_close(src);
  if (have_init)
    PyBuffer_Release(&init);
  dkm_ctx_free(ctx);
  return ret;
}

PyDoc_STRVAR(assign_doc, "assign(inputs, centroids, params, progress) -> (bytearray, bytearray)\n\n"
                         "dkm_assign() (internal; see diskmeans.assign).");

static PyObject *ext_assign(PyObject *mod, PyObject *args) {
  PyObject *specs, *cobj, *pdict, *callable;
  if (!PyArg_ParseTuple(args, "OOO!O", &specs, &cobj, &PyDict_Type, &pdict, &callable))
    return NULL;
  dkm_params params;
  if (fill_params(pdict, &params) != 0)
    return NULL;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  if (ctx == NULL)
    return PyErr_NoMemory();
  PyObject *ret = NULL, *labels = NULL, *dists = NULL;
  dkm_source *src = NULL;
  Py_buffer cen = {0};
  int have_cen = 0;
  if (get_centroids(cobj, "centroids", &cen) != 0)
    goto done;
  have_cen = 1;
  if (cen.shape[0] < 1 || (uint64_t)cen.shape[0] > DKM_MAX_K || cen.shape[1] < 1 ||
      (uint64_t)cen.shape[1] > UINT32_MAX) {
    raise_param("centroids: has shape (%zd, %zd); it needs 1 to %d rows and at least one column",
                cen.shape[0], cen.shape[1], (int)DKM_MAX_K);
    goto done;
  }
  if (build_sources(ctx, specs, &src) != 0)
    goto done;
  if (src->rows > (uint64_t)PY_SSIZE_T_MAX / sizeof(float)) {
    PyErr_NoMemory();
    goto done;
  }
  labels = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)(src->rows * sizeof(int32_t)));
  dists = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)(src->rows * sizeof(float)));
  if (labels == NULL || dists == NULL)
    goto done;
  call_progress cp = {0};
  cp.callable = callable != Py_None ? callable : NULL;
  params.progress = progress_cb;
  params.progress_user = &cp;
  int32_t *lab = (int32_t *)PyByteArray_AS_STRING(labels);
  float *dis = (float *)PyByteArray_AS_STRING(dists);
  cp.ts = PyEval_SaveThread();
  dkm_status st = dkm_assign(ctx, &params, src, cen.buf, (uint32_t)cen.shape[0],
                             (uint32_t)cen.shape[1], lab, dis);
  PyEval_RestoreThread(cp.ts);
  if (progress_reraise(&cp))
    goto done;
  if (st != DKM_OK) {
    raise_status(ctx, st);
    goto done;
  }
  ret = PyTuple_Pack(2, labels, dists);
done:
  Py_XDECREF(labels);
  Py_XDECREF(dists);
  dkm_source_close(src);
  if (have_cen)
    PyBuffer_Release(&cen);
  dkm_ctx_free(ctx);
  return ret;
}

PyDoc_STRVAR(plan_doc, "plan(inputs, params, init) -> dict\n\n"
                       "dkm_plan_training() (internal; see diskmeans.plan).");

static PyObject *ext_plan(PyObject *mod, PyObject *args) {
  PyObject *specs, *pdict, *init_obj;
  if (!PyArg_ParseTuple(args, "OO!O", &specs, &PyDict_Type, &pdict, &init_obj))
    return NULL;
  dkm_params params;
  if (fill_params(pdict, &params) != 0)
    return NULL;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  if (ctx == NULL)
    return PyErr_NoMemory();
  PyObject *ret = NULL;
  dkm_source *src = NULL;
  Py_buffer init = {0};
  int have_init = 0;
  if (build_sources(ctx, specs, &src) != 0)
    goto done;
  if (init_obj != Py_None) {
    if (set_init(init_obj, src, &params, &init) != 0)
      goto done;
    have_init = 1;
  }
  dkm_plan plan;
  dkm_status st;
  Py_BEGIN_ALLOW_THREADS st = dkm_plan_training(ctx, &params, src, &plan);
  Py_END_ALLOW_THREADS if (st != DKM_OK) {
    raise_status(ctx, st);
    goto done;
  }
  ret = plan_dict(&plan);
done:
  dkm_source_close(src);
  if (have_init)
    PyBuffer_Release(&init);
  dkm_ctx_free(ctx);
  return ret;
}

PyDoc_STRVAR(check_doc, "check_params(params) -> None\n\n"
                        "dkm_params_check() (internal).");

static PyObject *ext_check_params(PyObject *mod, PyObject *args) {
  PyObject *pdict;
  if (!PyArg_ParseTuple(args, "O!", &PyDict_Type, &pdict))
    return NULL;
  dkm_params params;
  if (fill_params(pdict, &params) != 0)
    return NULL;
  /* Given centroids are checked against the data later; any non-NULL
   * pointer lets the rest be checked now. */
  static const float dummy = 0;
  if (params.init == DKM_INIT_GIVEN)
    params.init_centroids = &dummy;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  if (ctx == NULL)
    return PyErr_NoMemory();
  dkm_status st = dkm_params_check(ctx, &params);
  PyObject *ret = NULL;
  if (st == DKM_OK) {
    Py_INCREF(Py_None);
    ret = Py_None;
  } else {
    raise_status(ctx, st);
  }
  dkm_ctx_free(ctx);
  return ret;
}

static PyMethodDef ext_methods[] = {
    {"train", ext_train, METH_VARARGS, train_doc},
    {"assign", ext_assign, METH_VARARGS, assign_doc},
    {"plan", ext_plan, METH_VARARGS, plan_doc},
    {"check_params", ext_check_params, METH_VARARGS, check_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef ext_module = {
    PyModuleDef_HEAD_INIT,
    "diskmeans._ext",
    "The C extension of diskmeans (internal): calls into include/diskmeans.h.",
    -1,
    ext_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__ext(void) {
  PyObject *errors = PyImport_ImportModule("diskmeans._errors");
  if (errors == NULL)
    return NULL;
  from_status_fn = PyObject_GetAttrString(errors, "from_status");
  Py_DECREF(errors);
  if (from_status_fn == NULL)
    return NULL;
  PyObject *m = PyModule_Create(&ext_module);
  if (m == NULL)
    return NULL;
  if (PyModule_AddStringConstant(m, "library_version", dkm_version()) != 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
