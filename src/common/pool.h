/*
 * pool.h - a small pool of worker threads for one library call. The calling
 * thread is worker 0, so a pool of one thread starts no thread at all. Every
 * job runs on all workers at once and dkm__pool_run returns when all are
 * done: a job is one parallel phase followed by a barrier.
 */
#ifndef DKM_COMMON_POOL_H
#define DKM_COMMON_POOL_H

#include "internal.h"

typedef struct dkm__pool dkm__pool;

/* fn(arg, worker, n_workers) with worker in [0, n_workers). */
typedef void (*dkm__pool_fn)(void *arg, uint32_t worker, uint32_t n_workers);

/* Creates a pool of n_threads workers (>= 1), starting n_threads - 1
 * threads. If the system refuses to start some of them the pool simply has
 * fewer workers (results never depend on the worker count); only an
 * allocation failure is an error (DKM_ERR_NOMEM). */
dkm_status dkm__pool_create(dkm_ctx *ctx, uint32_t n_threads, dkm__pool **out);

/* Number of workers actually running, caller included. */
uint32_t dkm__pool_size(const dkm__pool *pool);

/* Runs fn on every worker and waits for all of them. */
void dkm__pool_run(dkm__pool *pool, dkm__pool_fn fn, void *arg);

/* Stops and joins the threads and frees the pool. NULL is harmless. */
void dkm__pool_free(dkm__pool *pool);

#endif
