/*
 * test_support.h - what many tests need: a context whose allocator counts
 * (and can fail) allocations, synthetic data, a scratch directory.
 */
#ifndef DKM_TEST_SUPPORT_H
#define DKM_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "diskmeans.h"

/* A counting allocator: tests check that every allocation was freed, and
 * make the N-th allocation fail to prove that failure paths leak nothing. */
typedef struct dkm_test_alloc {
  long live;            /* allocations not yet freed */
  long count;           /* allocations made */
  long fail_at;         /* 1-based index of the allocation that fails; 0 = none */
  long failures;        /* allocations refused */
  long long bytes;      /* bytes allocated and not yet freed */
  long long peak_bytes; /* the most `bytes` has been (a test may lower it to
                           `bytes` to measure the peak of one call) */
} dkm_test_alloc;

/* A context using a counting allocator (state is reset). */
dkm_ctx *dkm_test_ctx(dkm_test_alloc *state);

/* Deterministic test data (splitmix64-based, independent of the library). */
uint64_t dkm_test_rand(uint64_t *state);
double dkm_test_uniform(uint64_t *state); /* [0, 1) */
double dkm_test_normal(uint64_t *state);  /* standard normal */

/* rows x dim float32 rows drawn around `clusters` well separated centres
 * (spread sigma); the caller frees with free(). labels may be NULL. */
float *dkm_test_blobs(uint64_t rows, uint32_t dim, uint32_t clusters, double sigma, uint64_t seed,
                      int32_t *labels);

/* Scratch directory for this test run ($DKM_TEST_TMP or /tmp), and a fresh
 * empty sub-directory under it named after `tag` (returned malloc'ed). */
char *dkm_test_mkdtemp(const char *tag);
/* Removes a directory tree made by dkm_test_mkdtemp. */
void dkm_test_rmtree(const char *path);
/* A 1 MiB tmpfs mounted (mount flags such as MS_RDONLY, or 0) on a fresh
 * scratch directory named after tag; fails the test if it cannot be. Only
 * for a process that moved into a mount namespace of its own (so the mount
 * is private and vanishes with it). Returned malloc'ed. */
char *dkm_test_mount_tmpfs(const char *tag, unsigned long flags);
/* Unmounts it (asserted), removes the directory and frees dir. */
void dkm_test_unmount_tmpfs(char *dir);
/* Number of entries (other than . and ..) in a directory; -1 if unreadable. */
int dkm_test_count_entries(const char *path);

/* Sum of squared distances of rows to their nearest centroid, in double,
 * computed naively (an independent check of the library's objective). */
double dkm_test_objective(const float *rows, uint64_t n, uint32_t dim, const float *centroids,
                          uint32_t k, int32_t *labels);

/* dkm_train that must succeed: anything else fails the test with the
 * status and the context's message. */
dkm_result *dkm_test_train(dkm_ctx *ctx, const dkm_params *params, dkm_source *src);
/* The same over n x dim float32 rows in memory (a source opened and closed
 * around the training). */
dkm_result *dkm_test_train_rows(dkm_ctx *ctx, const dkm_params *params, const float *x, uint64_t n,
                                uint32_t dim);

/* Asserts that two trainings gave the same result bit for bit, timings
 * aside: shape, centroids, cluster sizes, objective, iteration count, best
 * run, sample size, distinct rows, and each iteration's objective, imbalance and repairs.
 * `what` names the comparison when the centroids differ. */
void dkm_test_assert_same_result(const dkm_result *a, const dkm_result *b, const char *what);

#endif
