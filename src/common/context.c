/*
 * context.c - the context: the allocator and the detailed error message.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define DKM_ERRMSG_SIZE 1024

struct dkm_ctx {
  dkm_allocator allocator;
  /* Worker threads may record an error while others run, so the message is
   * guarded; the first failure of a call wins because it names the root
   * cause (later ones are usually "cancelled" echoes of it). */
  pthread_mutex_t lock;
  dkm_status status;
  char errmsg[DKM_ERRMSG_SIZE];
};

static void *default_alloc(void *user, size_t size) {
  (void)user;
  return malloc(size);
}

static void default_free(void *user, void *ptr) {
  (void)user;
  free(ptr);
}

dkm_ctx *dkm_ctx_create(const dkm_allocator *allocator) {
  dkm_allocator a = {default_alloc, default_free, NULL};
  if (allocator != NULL && allocator->alloc != NULL && allocator->free != NULL)
    a = *allocator;
  dkm_ctx *ctx = a.alloc(a.user, sizeof *ctx);
  if (ctx == NULL)
    return NULL;
  memset(ctx, 0, sizeof *ctx);
  ctx->allocator = a;
  if (pthread_mutex_init(&ctx->lock, NULL) != 0) {
    a.free(a.user, ctx);
    return NULL;
  }
  return ctx;
}

void dkm_ctx_free(dkm_ctx *ctx) {
  if (ctx == NULL)
    return;
  pthread_mutex_destroy(&ctx->lock);
  dkm_allocator a = ctx->allocator;
  a.free(a.user, ctx);
}

const char *dkm_ctx_errmsg(const dkm_ctx *ctx) {
  return ctx == NULL ? "" : ctx->errmsg;
}

dkm_status dkm_ctx_status(const dkm_ctx *ctx) {
  return ctx == NULL ? DKM_OK : ctx->status;
}

void dkm_ctx_clear_error(dkm_ctx *ctx) {
  if (ctx == NULL)
    return;
  pthread_mutex_lock(&ctx->lock);
  ctx->status = DKM_OK;
  ctx->errmsg[0] = '\0';
  pthread_mutex_unlock(&ctx->lock);
}

dkm_status dkm__verror(dkm_ctx *ctx, dkm_status status, const char *fmt, va_list ap) {
  if (ctx == NULL || status == DKM_OK)
    return status;
  pthread_mutex_lock(&ctx->lock);
  if (ctx->status == DKM_OK) {
    ctx->status = status;
    if (fmt != NULL)
      vsnprintf(ctx->errmsg, sizeof ctx->errmsg, fmt, ap);
    else
      snprintf(ctx->errmsg, sizeof ctx->errmsg, "%s", dkm_strerror(status));
  }
  pthread_mutex_unlock(&ctx->lock);
  return status;
}

dkm_status dkm_ctx_set_error(dkm_ctx *ctx, dkm_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  dkm__verror(ctx, status, fmt, ap);
  va_end(ap);
  return status;
}

void *dkm__alloc(dkm_ctx *ctx, size_t size) {
  if (size == 0)
    size = 1;
  return ctx->allocator.alloc(ctx->allocator.user, size);
}

void *dkm__calloc(dkm_ctx *ctx, size_t count, size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes))
    return NULL;
  void *p = dkm__alloc(ctx, bytes);
  if (p != NULL)
    memset(p, 0, bytes);
  return p;
}

void dkm__free(dkm_ctx *ctx, void *ptr) {
  if (ptr != NULL)
    ctx->allocator.free(ctx->allocator.user, ptr);
}

void *dkm__alloc_or_fail(dkm_ctx *ctx, size_t size, const char *what) {
  void *p = dkm__alloc(ctx, size);
  if (p == NULL)
    dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "out of memory allocating %zu bytes for %s", size, what);
  return p;
}

/* The allocator has no aligned entry point, so over-allocate and keep the
 * original pointer just before the aligned one. */
void *dkm__alloc_aligned(dkm_ctx *ctx, size_t size, const char *what) {
  const size_t align = 64;
  if (size > SIZE_MAX - align - sizeof(void *)) {
    dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "%s: size %zu is too large", what, size);
    return NULL;
  }
  char *raw = dkm__alloc_or_fail(ctx, size + align + sizeof(void *), what);
  if (raw == NULL)
    return NULL;
  uintptr_t p = ((uintptr_t)raw + sizeof(void *) + align - 1) & ~(uintptr_t)(align - 1);
  ((void **)p)[-1] = raw;
  return (void *)p;
}

void dkm__free_aligned(dkm_ctx *ctx, void *ptr) {
  if (ptr != NULL)
    dkm__free(ctx, ((void **)ptr)[-1]);
}
