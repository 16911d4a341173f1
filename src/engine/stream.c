/*
 * stream.c - see stream.h.
 */
#include <assert.h>
#include <pthread.h>

#include "stream.h"

struct dkm__stream {
  dkm_ctx *ctx;
  dkm_source *src;
  float *buf[2];
  uint64_t max_rows;
  int threaded;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  /* The request being served, or served and not yet collected. */
  int has_request; /* set by request(), cleared by wait() */
  int done;        /* set by the reader when the request is served */
  int quit;
  uint64_t first, count, hint_first, hint_count;
  unsigned next_buf; /* buffer the next request reads into */
  unsigned cur_buf;  /* buffer of the outstanding request */
  dkm_status status;
  const float *rows;
};

static void serve(dkm__stream *st) {
  const float *rows = NULL;
  dkm_status s =
      st->src->methods->read(st->src, st->ctx, st->first, st->count, st->buf[st->cur_buf], &rows);
  if (s == DKM_OK && st->hint_count > 0 && st->src->methods->will_need != NULL)
    st->src->methods->will_need(st->src, st->hint_first, st->hint_count);
  st->status = s;
  st->rows = rows;
}

static void *reader_main(void *p) {
  dkm__stream *st = p;
  pthread_mutex_lock(&st->lock);
  for (;;) {
    while (!st->quit && !(st->has_request && !st->done))
      pthread_cond_wait(&st->cond, &st->lock);
    if (st->quit)
      break;
    pthread_mutex_unlock(&st->lock);
    serve(st);
    pthread_mutex_lock(&st->lock);
    st->done = 1;
    pthread_cond_broadcast(&st->cond);
  }
  pthread_mutex_unlock(&st->lock);
  return NULL;
}

dkm_status dkm__stream_open(dkm_ctx *ctx, dkm_source *src, uint64_t max_rows, dkm__stream **out) {
  *out = NULL;
  size_t bytes;
  if (!dkm__array_bytes(max_rows, src->dim, sizeof(float), &bytes))
    return dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "block of %llu rows of %u values is too large",
                             (unsigned long long)max_rows, src->dim);
  dkm__stream *st = dkm__calloc(ctx, 1, sizeof *st);
  if (st == NULL)
    return dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "out of memory allocating the block reader");
  st->ctx = ctx;
  st->src = src;
  st->max_rows = max_rows;
  for (int i = 0; i < 2; i++) {
    st->buf[i] = dkm__alloc_aligned(ctx, bytes, "a block of rows");
    if (st->buf[i] == NULL) {
      dkm__stream_close(st);
      return DKM_ERR_NOMEM;
    }
  }
  pthread_mutex_init(&st->lock, NULL);
  pthread_cond_init(&st->cond, NULL);
  /* A resident source hands out pointers into memory: a thread would only
   * add latency. Otherwise the reader thread overlaps I/O and decoding with
   * compute; if it cannot start, reads simply happen inline. */
  if ((src->flags & DKM_SOURCE_RESIDENT) == 0)
    st->threaded = pthread_create(&st->thread, NULL, reader_main, st) == 0;
  *out = st;
  return DKM_OK;
}

void dkm__stream_request(dkm__stream *st, uint64_t first, uint64_t count, uint64_t hint_first,
                         uint64_t hint_count) {
  assert(!st->has_request);
  assert(count >= 1 && count <= st->max_rows);
  pthread_mutex_lock(&st->lock);
  st->first = first;
  st->count = count;
  st->hint_first = hint_first;
  st->hint_count = hint_count;
  st->cur_buf = st->next_buf;
  st->next_buf ^= 1u;
  st->has_request = 1;
  st->done = 0;
  if (st->threaded)
    pthread_cond_broadcast(&st->cond);
  pthread_mutex_unlock(&st->lock);
  if (!st->threaded) {
    serve(st);
    st->done = 1;
  }
}

dkm_status dkm__stream_wait(dkm__stream *st, const float **rows) {
  assert(st->has_request);
  pthread_mutex_lock(&st->lock);
  while (!st->done)
    pthread_cond_wait(&st->cond, &st->lock);
  st->has_request = 0;
  dkm_status s = st->status;
  *rows = st->rows;
  pthread_mutex_unlock(&st->lock);
  return s;
}

void dkm__stream_drain(dkm__stream *st) {
  if (st != NULL && st->has_request) {
    const float *rows;
    (void)dkm__stream_wait(st, &rows);
  }
}

void dkm__stream_close(dkm__stream *st) {
  if (st == NULL)
    return;
  if (st->buf[0] != NULL && st->buf[1] != NULL) { /* fully opened */
    dkm__stream_drain(st);
    if (st->threaded) {
      pthread_mutex_lock(&st->lock);
      st->quit = 1;
      pthread_cond_broadcast(&st->cond);
      pthread_mutex_unlock(&st->lock);
      pthread_join(st->thread, NULL);
    }
    pthread_cond_destroy(&st->cond);
    pthread_mutex_destroy(&st->lock);
  }
  dkm__free_aligned(st->ctx, st->buf[0]);
  dkm__free_aligned(st->ctx, st->buf[1]);
  dkm__free(st->ctx, st);
}
