/*
 * test_support.c - see test_support.h.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_support.h"

/* Each block carries its size in a header of 16 bytes (keeping malloc's
 * alignment), so that frees can be subtracted from the live bytes. */
#define HEADER 16

static void *counting_alloc(void *user, size_t size) {
  dkm_test_alloc *s = user;
  long index = __atomic_add_fetch(&s->count, 1, __ATOMIC_SEQ_CST);
  if (s->fail_at > 0 && index == s->fail_at) {
    __atomic_add_fetch(&s->failures, 1, __ATOMIC_SEQ_CST);
    return NULL;
  }
  if (size > SIZE_MAX - HEADER)
    return NULL;
  size_t *p = malloc(size + HEADER);
  if (p == NULL)
    return NULL;
  p[0] = size;
  /* Fresh memory is never zero here: a field the library forgets to set
   * reads as 0xA5A5... on every run, not as whatever malloc left. */
  memset(p + HEADER / sizeof *p, 0xA5, size);
  __atomic_add_fetch(&s->live, 1, __ATOMIC_SEQ_CST);
  long long now = __atomic_add_fetch(&s->bytes, (long long)size, __ATOMIC_SEQ_CST);
  long long peak = __atomic_load_n(&s->peak_bytes, __ATOMIC_SEQ_CST);
  while (now > peak && !__atomic_compare_exchange_n(&s->peak_bytes, &peak, now, 0, __ATOMIC_SEQ_CST,
                                                    __ATOMIC_SEQ_CST)) {
  }
  return (char *)p + HEADER;
}

static void counting_free(void *user, void *ptr) {
  dkm_test_alloc *s = user;
  if (ptr == NULL)
    return;
  size_t *p = (size_t *)((char *)ptr - HEADER);
  __atomic_sub_fetch(&s->live, 1, __ATOMIC_SEQ_CST);
  __atomic_sub_fetch(&s->bytes, (long long)p[0], __ATOMIC_SEQ_CST);
  free(p);
}

dkm_ctx *dkm_test_ctx(dkm_test_alloc *state) {
  long fail_at = state->fail_at;
  memset(state, 0, sizeof *state);
  state->fail_at = fail_at;
  dkm_allocator a = {counting_alloc, counting_free, state};
  return dkm_ctx_create(&a);
}

uint64_t dkm_test_rand(uint64_t *state) {
  uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

double dkm_test_uniform(uint64_t *state) {
  return (double)(dkm_test_rand(state) >> 11) * 0x1.0p-53;
}

double dkm_test_normal(uint64_t *state) {
  double u1 = dkm_test_uniform(state), u2 = dkm_test_uniform(state);
  if (u1 < 1e-300)
    u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

float *dkm_test_blobs(uint64_t rows, uint32_t dim, uint32_t clusters, double sigma, uint64_t seed,
                      int32_t *labels) {
  uint64_t st = seed;
  float *centres = malloc((size_t)clusters * dim * sizeof(float));
  float *x = malloc((size_t)rows * dim * sizeof(float));
  if (centres == NULL || x == NULL) {
    free(centres);
    free(x);
    return NULL;
  }
  for (size_t i = 0; i < (size_t)clusters * dim; i++)
    centres[i] = (float)(10.0 * dkm_test_uniform(&st) * clusters);
  for (uint64_t r = 0; r < rows; r++) {
    uint32_t c = (uint32_t)(dkm_test_rand(&st) % clusters);
    if (labels != NULL)
      labels[r] = (int32_t)c;
    for (uint32_t j = 0; j < dim; j++)
      x[r * dim + j] = centres[(size_t)c * dim + j] + (float)(sigma * dkm_test_normal(&st));
  }
  free(centres);
  return x;
}

char *dkm_test_mkdtemp(const char *tag) {
  const char *base = getenv("DKM_TEST_TMP");
  if (base == NULL || base[0] == '\0')
    base = "/tmp";
  mkdir(base, 0777);
  size_t len = strlen(base) + strlen(tag) + 32;
  char *path = malloc(len);
  if (path == NULL)
    return NULL;
  snprintf(path, len, "%s/%s-XXXXXX", base, tag);
  if (mkdtemp(path) == NULL) {
    free(path);
    return NULL;
  }
  return path;
}

void dkm_test_rmtree(const char *path) {
  DIR *d = opendir(path);
  if (d != NULL) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
        continue;
      char child[4096];
      snprintf(child, sizeof child, "%s/%s", path, e->d_name);
      struct stat st;
      if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
        dkm_test_rmtree(child);
      else
        unlink(child);
    }
    closedir(d);
  }
  rmdir(path);
}

int dkm_test_count_entries(const char *path) {
  DIR *d = opendir(path);
  if (d == NULL)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      n++;
  closedir(d);
  return n;
}

double dkm_test_objective(const float *rows, uint64_t n, uint32_t dim, const float *centroids,
                          uint32_t k, int32_t *labels) {
  double total = 0;
  for (uint64_t r = 0; r < n; r++) {
    double best = INFINITY;
    int32_t arg = -1;
    for (uint32_t c = 0; c < k; c++) {
      double d2 = 0;
      for (uint32_t j = 0; j < dim; j++) {
        double t = (double)rows[r * dim + j] - (double)centroids[(size_t)c * dim + j];
        d2 += t * t;
      }
      if (d2 < best) {
        best = d2;
        arg = (int32_t)c;
      }
    }
    if (labels != NULL)
      labels[r] = arg;
    total += best;
  }
  return total;
}

dkm_result *dkm_test_train(dkm_ctx *ctx, const dkm_params *params, dkm_source *src) {
  dkm_result *res = NULL;
  dkm_status st = dkm_train(ctx, params, src, &res);
  if (st != DKM_OK)
    fail_msg("dkm_train: %s: %s", dkm_status_name(st), dkm_ctx_errmsg(ctx));
  assert_non_null(res);
  return res;
}

dkm_result *dkm_test_train_rows(dkm_ctx *ctx, const dkm_params *params, const float *x, uint64_t n,
                                uint32_t dim) {
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, n, dim, &src), DKM_OK);
  dkm_result *res = dkm_test_train(ctx, params, src);
  dkm_source_close(src);
  return res;
}

void dkm_test_assert_same_result(const dkm_result *a, const dkm_result *b, const char *what) {
  /* The shape first: the memcmp below reads k x dim floats of both. */
  assert_int_equal(a->k, b->k);
  assert_int_equal(a->dim, b->dim);
  if (memcmp(a->centroids, b->centroids, sizeof(float) * a->k * a->dim) != 0)
    fail_msg("%s: centroids differ", what);
  assert_memory_equal(a->cluster_sizes, b->cluster_sizes, sizeof(uint64_t) * a->k);
  assert_memory_equal(&a->objective, &b->objective, sizeof(double));
  assert_int_equal(a->n_iter, b->n_iter);
  assert_int_equal(a->best_run, b->best_run);
  assert_int_equal(a->sample_rows, b->sample_rows);
  assert_int_equal(a->distinct_rows, b->distinct_rows);
  for (uint32_t t = 0; t < a->n_iter; t++) {
    assert_memory_equal(&a->iters[t].objective, &b->iters[t].objective, sizeof(double));
    assert_memory_equal(&a->iters[t].imbalance, &b->iters[t].imbalance, sizeof(double));
    assert_int_equal(a->iters[t].repaired, b->iters[t].repaired);
  }
}

char *dkm_test_mount_tmpfs(const char *tag, unsigned long flags) {
  char *dir = dkm_test_mkdtemp(tag);
  assert_non_null(dir);
  if (mount("tmpfs", dir, "tmpfs", flags, "size=1m") != 0)
    fail_msg("mount tmpfs on %s: %s", dir, strerror(errno));
  return dir;
}

void dkm_test_unmount_tmpfs(char *dir) {
  assert_int_equal(umount(dir), 0);
  dkm_test_rmtree(dir);
  free(dir);
}
