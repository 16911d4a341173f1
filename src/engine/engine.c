/*
 * engine.c - see engine.h.
 */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "engine.h"
#include "storage/sample.h"

dkm_status dkm__engine_open(dkm__engine *eng, dkm_ctx *ctx, const dkm_params *params,
                            dkm_source *src, uint32_t tile_rows, uint64_t block_rows) {
  assert(block_rows % tile_rows == 0);
  memset(eng, 0, sizeof *eng);
  eng->ctx = ctx;
  eng->src = src;
  eng->rows = src->rows;
  eng->dim = src->dim;
  eng->tile_rows = tile_rows;
  eng->block_rows = block_rows;
  eng->params = params;
  eng->progress.objective = NAN;
  eng->last_report = dkm__now();
  uint32_t threads = params->n_threads != 0 ? params->n_threads : dkm__cpu_count();
  /* More workers than tiles in a block would only wait. */
  uint64_t tiles = block_rows / tile_rows;
  if (threads > tiles)
    threads = (uint32_t)tiles;
  dkm_status s = dkm__pool_create(ctx, threads, &eng->pool);
  if (s == DKM_OK)
    s = dkm__stream_open(ctx, src, block_rows, &eng->stream);
  if (s != DKM_OK) {
    dkm__engine_close(eng);
    return s;
  }
  eng->n_workers = dkm__pool_size(eng->pool);
  return DKM_OK;
}

void dkm__engine_close(dkm__engine *eng) {
  dkm__stream_close(eng->stream);
  dkm__pool_free(eng->pool);
  eng->stream = NULL;
  eng->pool = NULL;
}

dkm_status dkm__engine_report(dkm__engine *eng, int force) {
  const dkm_params *p = eng->params;
  if (p->progress == NULL)
    return DKM_OK;
  double now = dkm__now();
  /* "A few times per second at most" per phase. */
  if (!force && now - eng->last_report < 0.25)
    return DKM_OK;
  eng->last_report = now;
  if (p->progress(p->progress_user, &eng->progress) != 0)
    return dkm_ctx_set_error(eng->ctx, DKM_ERR_CANCELLED, "cancelled by the progress callback");
  return DKM_OK;
}

static void tile_job(void *arg, uint32_t worker, uint32_t n_workers) {
  dkm__engine *eng = arg;
  for (;;) {
    uint32_t t = __atomic_fetch_add(&eng->next_tile, 1, __ATOMIC_RELAXED);
    if (t >= eng->block_tiles)
      break;
    uint64_t off = (uint64_t)t * eng->tile_rows;
    uint32_t count = (uint32_t)DKM__MIN((uint64_t)eng->tile_rows, eng->block_count - off);
    uint64_t bad =
        eng->tile_fn(eng->user, worker, eng->block_first + off, eng->block + off * eng->dim, count);
    if (bad != UINT64_MAX) {
      uint64_t cur = __atomic_load_n(&eng->bad_row, __ATOMIC_RELAXED);
      while (bad < cur && !__atomic_compare_exchange_n(&eng->bad_row, &cur, bad, 0,
                                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
      }
    }
  }
}

dkm_status dkm__engine_pass(dkm__engine *eng, dkm__tile_fn tile_fn, dkm__block_fn block_fn,
                            void *user) {
  const uint64_t n = eng->rows, b = eng->block_rows;
  eng->progress.done = 0;
  eng->progress.total = n;
  eng->tile_fn = tile_fn;
  eng->user = user;
  dkm_status s = DKM_OK;
  dkm__stream_request(eng->stream, 0, DKM__MIN(b, n), b, b < n ? DKM__MIN(b, n - b) : 0);
  for (uint64_t first = 0; first < n; first += b) {
    uint64_t count = DKM__MIN(b, n - first);
    const float *x = NULL;
    s = dkm__stream_wait(eng->stream, &x);
    if (s != DKM_OK)
      break;
    uint64_t next = first + b;
    if (next < n) {
      uint64_t after = next + b;
      dkm__stream_request(eng->stream, next, DKM__MIN(b, n - next), after,
                          after < n ? DKM__MIN(b, n - after) : 0);
    }
    eng->block = x;
    eng->block_first = first;
    eng->block_count = count;
    eng->block_tiles = (uint32_t)((count + eng->tile_rows - 1) / eng->tile_rows);
    eng->next_tile = 0;
    eng->bad_row = UINT64_MAX;
    dkm__pool_run(eng->pool, tile_job, eng);
    if (eng->bad_row != UINT64_MAX) {
      uint64_t r = eng->bad_row;
      s = dkm__describe_bad_row(eng->ctx, eng->src, r, x + (r - first) * eng->dim, eng->dim);
      break;
    }
    if (block_fn != NULL) {
      s = block_fn(user, first, x, count);
      if (s != DKM_OK)
        break;
    }
    eng->progress.done = first + count;
    if (first + count < n) {
      s = dkm__engine_report(eng, 0);
      if (s != DKM_OK)
        break;
    }
  }
  dkm__stream_drain(eng->stream);
  return s;
}

float **dkm__engine_worker_buffers(dkm__engine *eng, size_t floats, const char *what) {
  float **buffers = dkm__calloc(eng->ctx, eng->n_workers, sizeof(float *));
  if (buffers == NULL) {
    dkm_ctx_set_error(eng->ctx, DKM_ERR_NOMEM, "out of memory for %s", what);
    return NULL;
  }
  for (uint32_t w = 0; w < eng->n_workers; w++) {
    buffers[w] = dkm__alloc_aligned(eng->ctx, floats * sizeof(float), what);
    if (buffers[w] == NULL) {
      dkm__engine_free_worker_buffers(eng, buffers);
      return NULL;
    }
  }
  return buffers;
}

void dkm__engine_free_worker_buffers(dkm__engine *eng, float **buffers) {
  if (buffers == NULL)
    return;
  for (uint32_t w = 0; w < eng->n_workers; w++)
    dkm__free_aligned(eng->ctx, buffers[w]);
  dkm__free(eng->ctx, buffers);
}

dkm_status dkm__engine_read_row(dkm__engine *eng, uint64_t row, float *out) {
  const float *p = NULL;
  dkm_status s = eng->src->methods->read(eng->src, eng->ctx, row, 1, out, &p);
  if (s != DKM_OK)
    return s;
  if (p != out)
    memcpy(out, p, (size_t)eng->dim * sizeof(float));
  return DKM_OK;
}
