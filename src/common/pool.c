/*
 * pool.c - see pool.h.
 */
#include <assert.h>
#include <pthread.h>

#include "pool.h"

struct dkm__pool {
  dkm_ctx *ctx;
  uint32_t n_workers; /* caller included */
  pthread_mutex_t lock;
  pthread_cond_t wake; /* a new job (or quit) */
  pthread_cond_t idle; /* the last worker finished the job */
  uint64_t generation; /* bumped for every job */
  uint32_t pending;    /* threads still running the current job */
  int quit;
  dkm__pool_fn fn;
  void *arg;
  struct worker {
    dkm__pool *pool;
    uint32_t index;
    pthread_t thread;
  } workers[];
};

static void *worker_main(void *p) {
  struct worker *w = p;
  dkm__pool *pool = w->pool;
  uint64_t seen = 0;
  pthread_mutex_lock(&pool->lock);
  for (;;) {
    while (!pool->quit && pool->generation == seen)
      pthread_cond_wait(&pool->wake, &pool->lock);
    if (pool->quit)
      break;
    seen = pool->generation;
    dkm__pool_fn fn = pool->fn;
    void *arg = pool->arg;
    pthread_mutex_unlock(&pool->lock);
    fn(arg, w->index, pool->n_workers);
    pthread_mutex_lock(&pool->lock);
    if (--pool->pending == 0)
      pthread_cond_signal(&pool->idle);
  }
  pthread_mutex_unlock(&pool->lock);
  return NULL;
}

dkm_status dkm__pool_create(dkm_ctx *ctx, uint32_t n_threads, dkm__pool **out) {
  assert(n_threads >= 1);
  *out = NULL;
  size_t bytes = sizeof(dkm__pool) + (size_t)n_threads * sizeof(struct worker);
  dkm__pool *pool = dkm__alloc_or_fail(ctx, bytes, "thread pool");
  if (pool == NULL)
    return DKM_ERR_NOMEM;
  pool->ctx = ctx;
  pool->n_workers = 1;
  pool->generation = 0;
  pool->pending = 0;
  pool->quit = 0;
  pool->fn = NULL;
  pool->arg = NULL;
  if (pthread_mutex_init(&pool->lock, NULL) != 0) {
    dkm__free(ctx, pool);
    return dkm_ctx_set_error(ctx, DKM_ERR_INTERNAL, "thread pool: cannot create a mutex");
  }
  pthread_cond_init(&pool->wake, NULL);
  pthread_cond_init(&pool->idle, NULL);
  /* n_workers is only raised for threads that started, so a refused
   * pthread_create leaves a smaller but working pool. */
  for (uint32_t i = 1; i < n_threads; i++) {
    struct worker *w = &pool->workers[i];
    w->pool = pool;
    w->index = i;
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
      break;
    pool->n_workers = i + 1;
  }
  *out = pool;
  return DKM_OK;
}

uint32_t dkm__pool_size(const dkm__pool *pool) {
  return pool->n_workers;
}

void dkm__pool_run(dkm__pool *pool, dkm__pool_fn fn, void *arg) {
  if (pool->n_workers == 1) {
    fn(arg, 0, 1);
    return;
  }
  pthread_mutex_lock(&pool->lock);
  assert(pool->pending == 0);
  pool->fn = fn;
  pool->arg = arg;
  pool->pending = pool->n_workers - 1;
  pool->generation++;
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->lock);
  fn(arg, 0, pool->n_workers);
  pthread_mutex_lock(&pool->lock);
  while (pool->pending != 0)
    pthread_cond_wait(&pool->idle, &pool->lock);
  pthread_mutex_unlock(&pool->lock);
}

void dkm__pool_free(dkm__pool *pool) {
  if (pool == NULL)
    return;
  pthread_mutex_lock(&pool->lock);
  pool->quit = 1;
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->lock);
  for (uint32_t i = 1; i < pool->n_workers; i++)
    pthread_join(pool->workers[i].thread, NULL);
  pthread_cond_destroy(&pool->wake);
  pthread_cond_destroy(&pool->idle);
  pthread_mutex_destroy(&pool->lock);
  dkm__free(pool->ctx, pool);
}
