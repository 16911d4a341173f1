/*
 * train.c - dkm_train(): the sample, then n_redo runs of initialisation and
 * Lloyd iterations; and dkm_plan_training(), which says what that costs.
 *
 * One iteration is one pass over the sample: every tile of rows is labelled
 * by the kernel (parallel over tiles), and the labelled tiles are added to
 * the centroid sums in tile order by one worker at a time, right after their
 * labelling, so every sum sees the rows in the same order whatever the
 * thread count and block size. Sums are in double, centroids are (float)(sum/n).
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "gemm.h"
#include "storage/checkpoint.h"
#include "storage/sample.h"
#include "storage/spill.h"
#include "train.h"

/* Relative perturbation of the two halves of a split cluster. */
#define SPLIT_EPS (1.0f / 1024.0f)

/* The public result with what freeing it needs. */
typedef struct result_box {
  dkm_result pub;
  dkm_ctx *ctx;
} result_box;

void dkm_result_free(dkm_result *result) {
  if (result == NULL)
    return;
  result_box *box = (result_box *)result;
  dkm_ctx *ctx = box->ctx;
  dkm__free(ctx, result->centroids);
  dkm__free(ctx, result->cluster_sizes);
  dkm__free(ctx, result->iters);
  dkm__free(ctx, box);
}

/* --- one pass: label, then accumulate ------------------------------------ */

/* The inner loops of the update, compiled for AVX-512 and AVX2 as well as
 * the baseline and picked when the library loads. They add element by
 * element, so every version computes the same sums. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
/* (Not under ThreadSanitizer: the clones' resolvers run while the library
 * is relocated, before its runtime is up, and crash in its hooks.) */
#define DKM__CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DKM__CLONES
#endif

DKM__CLONES
static void add_row(double *restrict s, const float *restrict x, uint32_t n) {
  for (uint32_t j = 0; j < n; j++)
    s[j] += (double)x[j];
}

/* No fused multiply-add here even where the compiler could: the AVX-512
 * clone has FMA and the AVX2 one does not, and they must agree. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("fp-contract=off")))
#endif
DKM__CLONES static void
add_row_scaled(double *restrict s, const float *restrict x, double w, uint32_t n) {
  for (uint32_t j = 0; j < n; j++)
    s[j] += (double)x[j] * w;
}

static int same_row(const float *a, const float *b, uint32_t dim) {
  for (uint32_t j = 0; j < dim; j++)
    if (a[j] != b[j])
      return 0;
  return 1;
}

/* Adds one labelled tile (rows off.. of the block) to the counts, the
 * objective and the sums, row by row. */
static void add_tile(dkm__trainer *t, uint32_t tile) {
  const dkm__engine *eng = &t->eng;
  const uint32_t dim = t->dim;
  const int cosine = t->metric == DKM_METRIC_COSINE;
  uint64_t off = (uint64_t)tile * eng->tile_rows;
  uint64_t end = DKM__MIN(off + eng->tile_rows, eng->block_count);
  double obj = t->objective;
  for (uint64_t r = off; r < end; r++) {
    const float *x = eng->block + r * dim;
    uint32_t c = (uint32_t)t->labels[r];
    double *s = t->sums + (size_t)c * dim;
    /* The rows' clusters are known for the whole tile: fetch the sums a few
     * rows ahead into cache (this loop is bound by their latency). */
    if (r + 4 < end) {
      const char *ahead = (const char *)(t->sums + (size_t)t->labels[r + 4] * dim);
      for (size_t b = 0; b < (size_t)dim * sizeof(double); b += 64)
        __builtin_prefetch(ahead + b, 1);
    }
    /* Whether a cluster holds two different rows decides whether a repair
     * may split it: compare each row with the cluster's first one until
     * one differs (by value, so -0 and 0 are the same row). */
    float *first = t->first_row + (size_t)c * dim;
    if (t->counts[c] == 0)
      memcpy(first, x, (size_t)dim * sizeof(float));
    else if (!t->mixed[c])
      t->mixed[c] = !same_row(first, x, dim);
    t->counts[c]++;
    obj += (double)t->dist[r];
    if (cosine)
      add_row_scaled(s, x, t->inv[r], dim);
    else
      add_row(s, x, dim);
  }
  t->objective = obj;
}

/* Adds the labelled tiles that come next in order, if no other worker is
 * doing so. The tiles are added right after their labelling, while their
 * rows are still in cache: a second pass over a block larger than the
 * caches was bound by memory bandwidth and did not scale with threads. Tile
 * order, with one adder at a time, keeps every sum seeing the rows in row
 * order whatever the thread count and block size. A tile whose labelling
 * ends while another worker adds is either seen by that worker when it
 * looks again after letting go (sequentially consistent flag and marks), or
 * taken by this one; lloyd_block adds whatever is left in any case. */
static void add_ready_tiles(dkm__trainer *t) {
  const uint32_t tiles = t->eng.block_tiles;
  for (;;) {
    int idle = 0;
    if (!__atomic_compare_exchange_n(&t->busy, &idle, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
      return;
    uint32_t i = t->next;
    while (i < tiles && __atomic_load_n(&t->ready[i], __ATOMIC_ACQUIRE)) {
      add_tile(t, i);
      i++;
    }
    __atomic_store_n(&t->next, i, __ATOMIC_RELAXED);
    __atomic_store_n(&t->busy, 0, __ATOMIC_SEQ_CST);
    if (i >= tiles || !__atomic_load_n(&t->ready[i], __ATOMIC_SEQ_CST))
      return;
  }
}

static uint64_t lloyd_tile(void *user, uint32_t worker, uint64_t first, const float *x,
                           uint32_t count) {
  dkm__trainer *t = user;
  uint64_t off = first - t->eng.block_first;
  const dkm__train_hooks *h = t->hooks;
  uint32_t bad =
      h->label_tile != NULL
          ? h->label_tile(h->user, worker, x, count, t->labels + off, t->dist + off, t->inv + off)
          : dkm__assign_tile(&t->kern, x, count, t->scratch[worker], t->labels + off, t->dist + off,
                             t->inv + off);
  if (bad != UINT32_MAX) /* the pass fails: nothing more to add */
    return first + bad;
  __atomic_store_n(&t->ready[off / t->eng.tile_rows], 1, __ATOMIC_SEQ_CST);
  add_ready_tiles(t);
  return UINT64_MAX;
}

/* Every tile of the block is labelled and all workers are back: add what is
 * left (normally nothing), and get ready for the next block. */
static dkm_status lloyd_block(void *user, uint64_t first, const float *x, uint64_t count) {
  dkm__trainer *t = user;
  (void)first;
  (void)x;
  (void)count;
  for (uint32_t i = t->next; i < t->eng.block_tiles; i++) {
    assert(t->ready[i]);
    add_tile(t, i);
  }
  memset(t->ready, 0, (size_t)t->eng.block_tiles * sizeof *t->ready);
  t->next = 0;
  return DKM_OK;
}

/* --- the update ------------------------------------------------------------ */

/* The donors of empty-cluster repairs are drawn with probability
 * proportional to size - 1, among the clusters that hold two different
 * rows: splitting a cluster of copies of one row cannot lower the
 * objective (every row already sits on its centroid), and would only push
 * the centroid off it. With many empty clusters and a large k a walk over
 * all clusters per draw would be quadratic, so the weights live in a
 * Fenwick tree (1-based, k + 1 entries): integer weights make the draw exact,
 * and each draw and update takes O(log k). */
static uint64_t donor_weight(uint64_t count, int mixed) {
  return mixed && count > 1 ? count - 1 : 0;
}

static void fenwick_add(uint64_t *tree, uint32_t k, uint32_t c, int64_t delta) {
  for (uint32_t i = c + 1; i <= k; i += i & (0u - i))
    tree[i] += (uint64_t)delta;
}

/* The cluster c whose weight interval [prefix(c), prefix(c) + w(c)) holds
 * target (target < the total weight). */
static uint32_t fenwick_find(const uint64_t *tree, uint32_t k, uint64_t target) {
  uint32_t pos = 0, step = 1;
  while (step * 2 <= k)
    step *= 2;
  for (; step > 0; step /= 2) {
    if (pos + step <= k && tree[pos + step] <= target) {
      pos += step;
      target -= tree[pos];
    }
  }
  return pos; /* 0-based index of the cluster */
}

/* Splits a cluster in two: centroid ci becomes a copy of cj's, and the
 * two copies are pushed apart by a relative SPLIT_EPS on every coordinate
 * (opposite signs). */
static void split_into(dkm__trainer *t, uint32_t ci, uint32_t cj) {
  const uint32_t dim = t->dim;
  float *a = t->centroids + (size_t)ci * dim, *b = t->centroids + (size_t)cj * dim;
  for (uint32_t j = 0; j < dim; j++) {
    float v = b[j];
    float up = v * (1.0f + SPLIT_EPS), down = v * (1.0f - SPLIT_EPS);
    a[j] = (j % 2 == 0) ? up : down;
    b[j] = (j % 2 == 0) ? down : up;
  }
}

/* Splits a large cluster for every empty one of clusters [lo, hi) (FAISS's
 * rule): the donor is drawn from the same range with probability
 * proportional to size - 1 from the run's RNG among the clusters of two
 * different rows or more, empty clusters taken in index order, and split
 * into the empty one (split_into). The donor's count is split in half so
 * later draws see the split. A centroid of zeros stays zero: its copies
 * coincide, one of them stays empty and is repaired again next iteration
 * (counted each time).
 *
 * When no cluster of the range has two different rows, every row sits on
 * its centroid; for a single range the sample then has exactly as many
 * distinct rows as there are non-empty clusters (identical rows get
 * identical labels): that number goes to t->distinct, and the empty
 * clusters stay empty, keeping the centroids they had in the pass, which no
 * row is nearest to. Nothing loops: each empty cluster takes at most one
 * draw per iteration. */
static uint32_t repair_empty(dkm__trainer *t, uint32_t lo, uint32_t hi) {
  const uint32_t n = hi - lo;
  uint32_t empty = 0;
  for (uint32_t c = lo; c < hi; c++)
    empty += t->counts[c] == 0;
  if (empty == 0)
    return 0;
  uint64_t *tree = t->fenwick;
  memset(tree, 0, (size_t)(n + 1) * sizeof *tree);
  uint64_t total = 0;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t w = donor_weight(t->counts[lo + i], t->mixed[lo + i]);
    total += w;
    /* Linear-time build: each node passes its sum to its parent. */
    tree[i + 1] += w;
    uint32_t parent = (i + 1) + ((i + 1) & (0u - (i + 1)));
    if (parent <= n)
      tree[parent] += tree[i + 1];
  }
  if (total == 0) {
    if (n == t->k)
      t->distinct = t->k - empty;
    return 0;
  }
  uint32_t repaired = 0;
  for (uint32_t ci = lo; ci < hi; ci++) {
    if (t->counts[ci] != 0)
      continue;
    if (total == 0) /* the mixed clusters are used up: the rest next time */
      break;
    uint64_t target = (uint64_t)(dkm__rng_uniform(&t->rng) * (double)total);
    if (target >= total)
      target = total - 1;
    uint32_t cj = lo + fenwick_find(tree, n, target);
    assert(cj < hi && t->counts[cj] > 1);
    split_into(t, ci, cj);
    uint64_t before = t->counts[cj], half = before / 2;
    t->counts[ci] = half;
    t->counts[cj] = before - half;
    t->mixed[ci] = 1; /* as far as later draws of this repair know */
    int64_t dj = (int64_t)donor_weight(before - half, 1) - (int64_t)donor_weight(before, 1);
    int64_t di = (int64_t)donor_weight(half, 1);
    fenwick_add(tree, n, cj - lo, dj);
    fenwick_add(tree, n, ci - lo, di);
    total = (uint64_t)((int64_t)total + dj + di);
    repaired++;
  }
  return repaired;
}

/* --- balancing ---------------------------------------------------------------- */

/* With params.balance, every update but the last moves centroids from small
 * clusters to split large ones, within each range [lo, hi) of mean size
 * mu: the largest clusters above BALANCE_BIG * mu (largest first) are split
 * by the centroids of the smallest clusters below BALANCE_SMALL * mu
 * (smallest first), one for one. The rows of a small cluster go to its
 * neighbours at the next pass, and a large cluster's rows are shared by its
 * two halves. IVF indexes label rows by their nearest centroid, so balance
 * has to come from where the centroids are, not from a penalised
 * assignment that the index would not repeat. Sizes and ties (lower index
 * first) decide every move: no randomness, the same moves on any thread
 * count. The last update moves nothing, so the centroids returned are the
 * means of the partition whose sizes are reported. */
#define BALANCE_BIG 1.5
#define BALANCE_SMALL 0.7

/* Clusters as (size, index) pairs, sorted largest first, then by index: a
 * total order, so the unstable qsort gives the same order on every run. */
static int by_size_desc(const void *a, const void *b) {
  const uint64_t *x = a, *y = b;
  if (x[0] != y[0])
    return x[0] > y[0] ? -1 : 1;
  return x[1] < y[1] ? -1 : x[1] > y[1];
}

static uint32_t balance_moves(dkm__trainer *t, uint32_t lo, uint32_t hi) {
  const uint32_t n = hi - lo;
  if (n < 2)
    return 0;
  uint64_t total = 0;
  for (uint32_t c = lo; c < hi; c++)
    total += t->counts[c];
  double mu = (double)total / n;
  uint32_t nbig = 0, nsmall = 0;
  uint64_t *big = t->order, *small = t->order + 2 * (size_t)n;
  for (uint32_t c = lo; c < hi; c++) {
    double size = (double)t->counts[c];
    if (size > BALANCE_BIG * mu && t->mixed[c]) {
      big[2 * nbig] = t->counts[c];
      big[2 * nbig++ + 1] = c;
    } else if (size < BALANCE_SMALL * mu && t->counts[c] > 0) {
      small[2 * nsmall] = t->counts[c];
      small[2 * nsmall++ + 1] = c;
    }
  }
  uint32_t moves = DKM__MIN(nbig, nsmall);
  if (moves == 0)
    return 0;
  qsort(big, nbig, 2 * sizeof *big, by_size_desc);
  qsort(small, nsmall, 2 * sizeof *small, by_size_desc);
  for (uint32_t i = 0; i < moves; i++) /* smallest: from the end */
    split_into(t, (uint32_t)small[2 * (nsmall - 1 - i) + 1], (uint32_t)big[2 * i + 1]);
  return moves;
}

/* New centroids from the sums; returns the number of repairs, and in
 * *moved the balancing moves (when allowed). */
static uint32_t update_centroids(dkm__trainer *t, int may_balance, uint32_t *moved) {
  const uint32_t k = t->k, dim = t->dim;
  for (uint32_t c = 0; c < k; c++) {
    if (t->counts[c] == 0)
      continue;
    double n = (double)t->counts[c];
    const double *s = t->sums + (size_t)c * dim;
    float *dst = t->centroids + (size_t)c * dim;
    for (uint32_t j = 0; j < dim; j++)
      dst[j] = (float)(s[j] / n);
  }
  const dkm__train_hooks *h = t->hooks;
  uint32_t ranges = h->group_first != NULL ? h->n_groups : 1;
  uint32_t repaired = 0;
  *moved = 0;
  for (uint32_t g = 0; g < ranges; g++) {
    uint32_t lo = h->group_first != NULL ? h->group_first[g] : 0;
    uint32_t hi = h->group_first != NULL ? h->group_first[g + 1] : k;
    if (may_balance)
      *moved += balance_moves(t, lo, hi);
    repaired += repair_empty(t, lo, hi);
  }
  if (t->metric == DKM_METRIC_COSINE)
    for (uint32_t c = 0; c < k; c++)
      dkm__normalize(t->centroids + (size_t)c * dim, dim);
  dkm__centroid_norms(t->centroids, k, dim, t->cnorm);
  dkm__kernel_bias(t->metric, t->cnorm, k, t->bias);
  if (t->packed != NULL)
    dkm__pack(t->centroids, k, dim, t->packed);
  if (h->centroids_changed != NULL)
    h->centroids_changed(h->user, t->centroids);
  return repaired;
}

/* --- sizes and the plan ---------------------------------------------------- */

/* Bytes the trainer itself allocates (beyond the sample), for a block of
 * block_rows rows and n_workers workers. */
uint64_t dkm__trainer_bytes(const dkm__sample_plan *sp, const dkm_params *params,
                            uint32_t n_workers, int resident) {
  uint64_t k = params->k, dim = sp->dim, b = sp->block_rows;
  uint32_t tc = dkm__tile_cols(params->k, sp->dim);
  uint64_t bytes = 0;
  bytes += 4 * k * dim * sizeof(float); /* current, best, result, first rows */
  bytes += k;                           /* the clusters' flags */
  /* packed: k rounded up to a pair of panels (8 times k * dim for k = 4,
   * 64 MiB of 72 at dim 2^17) */
  bytes += (uint64_t)dkm__packed_floats(params->k, sp->dim) * sizeof(float);
  bytes += k * dim * sizeof(double);                   /* sums */
  bytes += k * (sizeof(float) + 4 * sizeof(uint64_t)); /* norms, counts, sizes, repairs */
  bytes += b * (sizeof(int32_t) + sizeof(float) + sizeof(double)); /* labels, dist, inv */
  bytes += b / sp->tile_rows * sizeof(uint32_t);                   /* tile marks */
  /* dkm__kernel_scratch_floats per worker */
  bytes += (uint64_t)n_workers *
           ((uint64_t)sp->tile_rows * tc + 2 * (uint64_t)sp->tile_rows + dim) * sizeof(float);
  if (!resident) /* two block buffers being read into */
    bytes += 2 * b * dim * sizeof(float);
  else /* allocated but never touched by a resident source */
    bytes += 0;
  if (params->balance)
    bytes += 4 * k * sizeof(uint64_t); /* the balancing order */
  if (params->init == DKM_INIT_KMEANSPP)
    bytes += dkm__kmeanspp_bytes(sp->sample_rows, params->k, sp->dim, sp->tile_rows, n_workers);
  else if (params->init == DKM_INIT_GREEDY_KMEANSPP)
    bytes += dkm__greedy_kmeanspp_bytes(sp->sample_rows, params->k, sp->dim, sp->tile_rows);
  return bytes;
}

static uint32_t workers_for(const dkm_params *params) {
  return params->n_threads != 0 ? params->n_threads : dkm__cpu_count();
}

double dkm__flat_flops(const dkm_params *params, uint64_t m, uint32_t dim) {
  /* Each iteration, and the k-means++ initialisations (about one, or 2 +
   * ln k, iterations' worth), of each run. */
  double iters = params->max_iter;
  if (params->init == DKM_INIT_KMEANSPP)
    iters += 1;
  else if (params->init == DKM_INIT_GREEDY_KMEANSPP)
    iters += 2 + log((double)params->k);
  return 2.0 * (double)m * params->k * dim * iters * params->n_redo;
}

dkm_status dkm_plan_training(dkm_ctx *ctx, const dkm_params *params, const dkm_source *src,
                             dkm_plan *out) {
  dkm_ctx_clear_error(ctx);
  if (out == NULL || src == NULL)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "plan: %s is NULL", out == NULL ? "out" : "src");
  memset(out, 0, sizeof *out);
  dkm_status s = dkm_params_check(ctx, params);
  if (s != DKM_OK)
    return s;
  if (src->dim == 0)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "%s: dim is 0", src->name);
  dkm__sample_plan sp;
  s = dkm__sample_plan_make(ctx, params, src, dkm__tile_rows(params->k, src->dim), &sp);
  if (s != DKM_OK)
    return s;
  uint32_t w = workers_for(params);
  out->rows = sp.rows;
  out->dim = sp.dim;
  out->sample_rows = sp.sample_rows;
  out->sample_bytes = sp.sample_bytes;
  out->storage = sp.storage;
  out->from_source = sp.from_source;
  out->spill_bytes = sp.spill_bytes;
  out->memory_limit = sp.memory_limit;
  out->memory_limit_source = sp.memory_limit_source;
  /* Each mode as if it were chosen (sample.c decides per storage the block
   * size, whether training reads the source in place, and the spill). */
  dkm_params forced = *params;
  dkm__sample_plan mem, disk;
  forced.storage = DKM_STORAGE_MEMORY;
  if ((s = dkm__sample_plan_make(ctx, &forced, src, sp.tile_rows, &mem)) != DKM_OK)
    return s;
  forced.storage = DKM_STORAGE_DISK;
  if ((s = dkm__sample_plan_make(ctx, &forced, src, sp.tile_rows, &disk)) != DKM_OK)
    return s;
  /* Drawing the sample reads the source through one block buffer and its
   * list of chosen rows; training in place draws nothing. */
  uint64_t gather = sp.gather_block_rows * (sp.dim * sizeof(float) + sizeof(uint32_t));
  int mem_in_place = mem.from_source, disk_in_place = disk.from_source;
  /* Memory mode: the sample (none in place) plus the trainer reading a
   * resident store or array. */
  out->memory_mode_bytes =
      (mem_in_place ? 0 : sp.sample_bytes) +
      DKM__MAX(dkm__trainer_bytes(&mem, params, w, 1), mem_in_place ? 0 : gather);
  /* Disk mode: no sample in RAM; the trainer streams blocks. A spill holds
   * its write buffer while the sample is drawn (freed before training). */
  uint64_t disk_gather = disk_in_place ? 0 : gather;
  if (disk.spill_bytes != 0)
    disk_gather += dkm__spill_buffer_bytes(sp.sample_rows, sp.dim);
  out->disk_mode_bytes = DKM__MAX(dkm__trainer_bytes(&disk, params, w, 0), disk_gather);
  out->strategy = DKM_STRATEGY_FLAT;
  out->flat_flops = out->flops = dkm__flat_flops(params, sp.sample_rows, sp.dim);
  if (dkm__strategy_for(params) == DKM_STRATEGY_HIERARCHICAL &&
      (s = dkm__plan_hierarchical(ctx, params, src, out)) != DKM_OK)
    return s;
  /* A checkpoint holds up to two sets of centroids and sizes (the current
   * and best runs; hierarchical: the groups' and the refinement's), and
   * the state is held four times at most: the sections, the image queued,
   * the one being written, and the file read on resume. */
  if (params->checkpoint != NULL) {
    uint64_t state = 2 * (uint64_t)params->k * ((uint64_t)sp.dim * sizeof(float) + 8) +
                     (uint64_t)out->coarse_k * sp.dim * sizeof(float) +
                     (uint64_t)params->max_iter * 2 * sizeof(dkm_iter_stats) + 4096;
    out->memory_mode_bytes += 4 * state;
    out->disk_mode_bytes += 4 * state;
  }
  return DKM_OK;
}

/* --- training ---------------------------------------------------------------- */

static void trainer_free(dkm__trainer *t) {
  dkm_ctx *ctx = t->ctx;
  dkm__engine_free_worker_buffers(&t->eng, t->scratch);
  dkm__free_aligned(ctx, t->centroids);
  dkm__free_aligned(ctx, t->packed);
  dkm__free_aligned(ctx, t->bias);
  dkm__free(ctx, t->cnorm);
  dkm__free(ctx, t->labels);
  dkm__free(ctx, t->dist);
  dkm__free(ctx, t->inv);
  dkm__free(ctx, t->ready);
  dkm__free(ctx, t->sums);
  dkm__free(ctx, t->counts);
  dkm__free(ctx, t->fenwick);
  dkm__free(ctx, t->first_row);
  dkm__free(ctx, t->mixed);
  dkm__free(ctx, t->order);
  dkm__engine_close(&t->eng);
}

static const dkm__train_hooks no_hooks;

static dkm_status trainer_open(dkm__trainer *t, dkm_ctx *ctx, const dkm_params *params,
                               dkm_source *train, const dkm__sample_plan *sp,
                               const dkm__train_hooks *hooks) {
  memset(t, 0, sizeof *t);
  t->ctx = ctx;
  t->hooks = hooks != NULL ? hooks : &no_hooks;
  t->params = params;
  t->k = params->k;
  t->dim = sp->dim;
  t->m = sp->sample_rows;
  t->metric = params->metric;
  dkm_status s = dkm__engine_open(&t->eng, ctx, params, train, sp->tile_rows, sp->block_rows);
  if (s != DKM_OK)
    return s;
  const uint32_t k = t->k, dim = t->dim;
  size_t cbytes, sbytes;
  if (!dkm__array_bytes(k, dim, sizeof(float), &cbytes) ||
      !dkm__array_bytes(k, dim, sizeof(double), &sbytes))
    return dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "%u centroids of %u values are too large", k, dim);
  t->centroids = dkm__alloc_aligned(ctx, cbytes, "the centroids");
  t->cnorm = dkm__alloc_or_fail(ctx, (size_t)k * sizeof(float), "the centroid norms");
  t->sums = dkm__alloc_or_fail(ctx, sbytes, "the centroid sums");
  t->counts = dkm__alloc_or_fail(ctx, (size_t)k * sizeof(uint64_t), "the cluster sizes");
  t->fenwick = dkm__alloc_or_fail(ctx, ((size_t)k + 1) * sizeof(uint64_t), "the repair weights");
  t->first_row = dkm__alloc_or_fail(ctx, cbytes, "the clusters' first rows");
  t->mixed = dkm__alloc_or_fail(ctx, k, "the clusters' flags");
  size_t b = (size_t)sp->block_rows;
  t->labels = dkm__alloc_or_fail(ctx, b * sizeof(int32_t), "the block's labels");
  t->dist = dkm__alloc_or_fail(ctx, b * sizeof(float), "the block's distances");
  t->inv = dkm__alloc_or_fail(ctx, b * sizeof(double), "the block's norms");
  t->ready = dkm__calloc(ctx, b / sp->tile_rows, sizeof(uint32_t));
  if (t->ready == NULL)
    dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "out of memory allocating the block's tile marks");
  if (t->centroids == NULL || t->cnorm == NULL || t->sums == NULL || t->counts == NULL ||
      t->fenwick == NULL || t->first_row == NULL || t->mixed == NULL || t->labels == NULL ||
      t->dist == NULL || t->inv == NULL || t->ready == NULL)
    return DKM_ERR_NOMEM;
  t->bias = dkm__alloc_aligned(ctx, dkm__packed_floats(k, 1) * sizeof(float), "the centroid terms");
  if (t->bias == NULL)
    return DKM_ERR_NOMEM;
  if (dkm__gemm_native()) {
    t->packed =
        dkm__alloc_aligned(ctx, dkm__packed_floats(k, dim) * sizeof(float), "the packed centroids");
    if (t->packed == NULL)
      return DKM_ERR_NOMEM;
  }
  dkm__kernel_init(&t->kern, k, dim, t->metric, t->centroids, t->cnorm, t->packed, t->bias);
  if (params->balance) {
    t->order = dkm__alloc_or_fail(ctx, (size_t)k * 4 * sizeof(uint64_t), "the balancing order");
    if (t->order == NULL)
      return DKM_ERR_NOMEM;
  }
  t->scratch_floats = dkm__kernel_scratch_floats(&t->kern);
  t->scratch = dkm__engine_worker_buffers(&t->eng, t->scratch_floats, "the tile scratch");
  return t->scratch != NULL ? DKM_OK : DKM_ERR_NOMEM;
}

/* --- checkpoints ------------------------------------------------------------------ */

/* The Lloyd loop's state in a checkpoint (section DKM__CKPT_FLAT):
 *
 *   u32 run, iter_done, have_current, have_best, k, dim, distinct_rows, 0
 *   have_current: the run's RNG (4 u64), prev objective (f64), distinct
 *     (u32, u32 0), iter_done statistics, the last pass's sizes (k u64,
 *     when iter_done > 0), the centroids (k * dim f32)
 *   have_best: objective (f64), best_run, n_iter (u32 each), n_iter
 *     statistics, sizes (k u64), centroids (k * dim f32)
 *
 * have_current says run `run` stopped after its initialisation
 * (iter_done = 0) or iteration iter_done and goes on from there; without
 * it, run `run` (n_redo when all are done) is yet to start. Everything else
 * a pass needs is recomputed from the centroids (norms, packing) or reset by
 * each pass (sums, counts), so resuming gives the same bits. */
typedef struct flat_state {
  uint32_t run, iter_done;
  int have_current;
  dkm__rng rng;
  double prev;
  uint32_t distinct;
} flat_state;

static void put_stats(dkm__ckpt *ck, dkm__ckpt_buf *b, const dkm_iter_stats *st, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    dkm__ckpt_put_f64(ck, b, st[i].objective);
    dkm__ckpt_put_f64(ck, b, st[i].seconds);
    dkm__ckpt_put_u32(ck, b, st[i].repaired);
    dkm__ckpt_put_u32(ck, b, st[i].rebalanced);
    dkm__ckpt_put_f64(ck, b, st[i].imbalance);
  }
}

static void get_stats(dkm__ckpt_reader *r, dkm_iter_stats *st, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    st[i].objective = dkm__ckpt_get_f64(r);
    st[i].seconds = dkm__ckpt_get_f64(r);
    st[i].repaired = dkm__ckpt_get_u32(r);
    st[i].rebalanced = dkm__ckpt_get_u32(r);
    st[i].imbalance = dkm__ckpt_get_f64(r);
  }
}

/* The run's place and, where the run is under way, the trainer's state;
 * then the best run so far (res, when run > 0). */
static dkm_status save_flat(dkm__ckpt *ck, const dkm__trainer *t, const flat_state *fs,
                            const dkm_iter_stats *iters, const uint64_t *sizes,
                            const dkm_result *res) {
  const uint32_t k = t->k, dim = t->dim;
  const int have_best = fs->run > 0;
  dkm__ckpt_buf *b = dkm__ckpt_section(ck, DKM__CKPT_FLAT);
  uint32_t head[8] = {fs->run, fs->iter_done, (uint32_t)fs->have_current, (uint32_t)have_best,
                      k,       dim,           res->distinct_rows,         0};
  dkm__ckpt_put(ck, b, head, sizeof head);
  if (fs->have_current) {
    dkm__ckpt_put(ck, b, fs->rng.s, sizeof fs->rng.s);
    dkm__ckpt_put_f64(ck, b, fs->prev);
    dkm__ckpt_put_u32(ck, b, fs->distinct);
    dkm__ckpt_put_u32(ck, b, 0);
    put_stats(ck, b, iters, fs->iter_done);
    if (fs->iter_done > 0)
      dkm__ckpt_put(ck, b, sizes, (size_t)k * sizeof *sizes);
    dkm__ckpt_put(ck, b, t->centroids, (size_t)k * dim * sizeof(float));
  }
  if (have_best) {
    dkm__ckpt_put_f64(ck, b, res->objective);
    dkm__ckpt_put_u32(ck, b, res->best_run);
    dkm__ckpt_put_u32(ck, b, res->n_iter);
    put_stats(ck, b, res->iters, res->n_iter);
    dkm__ckpt_put(ck, b, res->cluster_sizes, (size_t)k * sizeof(uint64_t));
    dkm__ckpt_put(ck, b, res->centroids, (size_t)k * dim * sizeof(float));
  }
  return dkm__ckpt_save(ck);
}

/* Restores what save_flat saved into fs, the trainer's centroids, iters,
 * sizes and res. */
static dkm_status load_flat(dkm__ckpt *ck, const uint8_t *data, size_t len, dkm__trainer *t,
                            flat_state *fs, dkm_iter_stats *iters, uint64_t *sizes,
                            dkm_result *res) {
  const dkm_params *p = t->params;
  const uint32_t k = t->k, dim = t->dim;
  dkm__ckpt_reader r = {data, len, 0};
  uint32_t head[8];
  dkm__ckpt_get(&r, head, sizeof head);
  fs->run = head[0];
  fs->iter_done = head[1];
  fs->have_current = head[2] != 0;
  int have_best = head[3] != 0;
  if (r.bad || head[4] != k || head[5] != dim || fs->run > p->n_redo ||
      fs->iter_done >= p->max_iter || have_best != (fs->run > 0) ||
      (fs->have_current && fs->run >= p->n_redo))
    return dkm__ckpt_malformed(ck, "Lloyd loop's");
  res->distinct_rows = head[6];
  if (fs->have_current) {
    dkm__ckpt_get(&r, fs->rng.s, sizeof fs->rng.s);
    fs->prev = dkm__ckpt_get_f64(&r);
    fs->distinct = dkm__ckpt_get_u32(&r);
    (void)dkm__ckpt_get_u32(&r);
    get_stats(&r, iters, fs->iter_done);
    if (fs->iter_done > 0)
      dkm__ckpt_get(&r, sizes, (size_t)k * sizeof *sizes);
    dkm__ckpt_get(&r, t->centroids, (size_t)k * dim * sizeof(float));
  }
  if (have_best) {
    res->objective = dkm__ckpt_get_f64(&r);
    res->best_run = dkm__ckpt_get_u32(&r);
    res->n_iter = dkm__ckpt_get_u32(&r);
    if (res->n_iter == 0 || res->n_iter > p->max_iter || res->best_run >= fs->run)
      r.bad = 1;
    else
      get_stats(&r, res->iters, res->n_iter);
    dkm__ckpt_get(&r, res->cluster_sizes, (size_t)k * sizeof(uint64_t));
    dkm__ckpt_get(&r, res->centroids, (size_t)k * dim * sizeof(float));
  }
  if (r.bad || r.left != 0)
    return dkm__ckpt_malformed(ck, "Lloyd loop's");
  dkm_status s = DKM_OK;
  if (fs->have_current)
    s = dkm__ckpt_check_centroids(ck, t->centroids, k, dim, t->metric);
  if (s == DKM_OK && have_best)
    s = dkm__ckpt_check_centroids(ck, res->centroids, k, dim, t->metric);
  return s;
}

/* What a run needs to save checkpoints: NULL ck for none. */
typedef struct flat_saver {
  dkm__ckpt *ck;
  const uint64_t *sizes;
  const dkm_result *res;
} flat_saver;

/* The centroids have been set (initialised or restored): make the
 * kernel's view of them. */
static void centroids_set(dkm__trainer *t) {
  dkm__centroid_norms(t->centroids, t->k, t->dim, t->cnorm);
  dkm__kernel_bias(t->metric, t->cnorm, t->k, t->bias);
  if (t->packed != NULL)
    dkm__pack(t->centroids, t->k, t->dim, t->packed);
  if (t->hooks->centroids_changed != NULL)
    t->hooks->centroids_changed(t->hooks->user, t->centroids);
}

/* One run: initialisation then Lloyd iterations. iters receives the stats;
 * *n_iter their number; t->counts ends as the last pass's sizes (copied to
 * sizes before the repairs). With from (resuming), the run goes on from the
 * state restored there instead: t->centroids, iters and sizes hold it. */
static dkm_status run_once(dkm__trainer *t, uint32_t run, dkm_iter_stats *iters, uint32_t *n_iter,
                           uint64_t *sizes, double *init_seconds, const flat_state *from,
                           const flat_saver *sv) {
  const dkm_params *p = t->params;
  const uint32_t k = t->k, dim = t->dim;
  t->eng.progress.max_iter = p->max_iter;
  t->eng.progress.objective = NAN;
  double prev = NAN;
  uint32_t it0 = 0;
  dkm_status s;
  if (from != NULL) {
    t->rng = from->rng;
    t->distinct = from->distinct;
    prev = from->prev;
    it0 = from->iter_done;
  } else {
    dkm__rng_seed(&t->rng, p->seed, DKM__RNG_STREAM_RUN(run));
    double t0 = dkm__now();
    s = dkm__init_centroids(t, run);
    *init_seconds += dkm__now() - t0;
    if (s != DKM_OK)
      return s;
  }
  centroids_set(t);
  flat_state fs = {run, 0, 1, t->rng, prev, t->distinct};
  if (from == NULL && sv->ck != NULL &&
      (s = save_flat(sv->ck, t, &fs, iters, sizes, sv->res)) != DKM_OK)
    return s;

  *n_iter = it0;
  for (uint32_t it = it0; it < p->max_iter; it++) {
    double start = dkm__now();
    memset(t->sums, 0, (size_t)k * dim * sizeof(double));
    memset(t->counts, 0, (size_t)k * sizeof(uint64_t));
    memset(t->mixed, 0, k);
    t->objective = 0;
    memset(t->ready, 0, (size_t)(t->eng.block_rows / t->eng.tile_rows) * sizeof *t->ready);
    t->next = 0;
    t->busy = 0;
    t->eng.progress.phase = DKM_PHASE_ITERATE;
    t->eng.progress.run = run;
    t->eng.progress.iteration = it;
    t->eng.progress.max_iter = p->max_iter;
    s = dkm__engine_pass(&t->eng, lloyd_tile, lloyd_block, t);
    if (s != DKM_OK)
      return s;
    dkm_iter_stats *st = &iters[it];
    st->objective = t->objective;
    double sq = 0;
    for (uint32_t c = 0; c < k; c++)
      sq += (double)t->counts[c] * (double)t->counts[c];
    st->imbalance = (double)k * sq / ((double)t->m * (double)t->m);
    memcpy(sizes, t->counts, (size_t)k * sizeof(uint64_t));
    int may_balance = p->balance && it + 1 < p->max_iter;
    st->repaired = update_centroids(t, may_balance, &st->rebalanced);
    st->seconds = dkm__now() - start;
    *n_iter = it + 1;
    t->eng.progress.objective = t->objective;
    t->eng.progress.done = t->eng.progress.total = t->m;
    s = dkm__engine_report(&t->eng, 1);
    if (s != DKM_OK)
      return s;
    /* tol = 0 runs every iteration, even once nothing moves any more; and
     * the run goes on after a balancing move, whose effect the next pass
     * has yet to show. */
    if (it > 0 && p->tol > 0 && st->rebalanced == 0 &&
        fabs(prev - t->objective) <= p->tol * fabs(prev))
      break;
    prev = t->objective;
    /* The run goes on: save where it is (its end is saved by the caller,
     * with the best run). */
    if (sv->ck != NULL && it + 1 < p->max_iter) {
      fs.iter_done = it + 1;
      fs.rng = t->rng;
      fs.prev = prev;
      fs.distinct = t->distinct;
      if ((s = save_flat(sv->ck, t, &fs, iters, sizes, sv->res)) != DKM_OK)
        return s;
    }
  }
  return DKM_OK;
}

void dkm__result_set_plan(dkm_result *res, const dkm__sample_plan *sp, dkm_strategy strategy) {
  res->rows = sp->rows;
  res->sample_rows = sp->sample_rows;
  res->storage = sp->storage;
  res->from_source = sp->from_source;
  res->strategy = strategy;
}

dkm_result *dkm__result_alloc(dkm_ctx *ctx, uint32_t k, uint32_t dim, uint32_t n_iter) {
  result_box *box = dkm__calloc(ctx, 1, sizeof *box);
  if (box == NULL) {
    dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "out of memory allocating the result");
    return NULL;
  }
  box->ctx = ctx;
  dkm_result *res = &box->pub;
  res->k = k;
  res->dim = dim;
  res->centroids = dkm__alloc_or_fail(ctx, (size_t)k * dim * sizeof(float), "the result");
  res->cluster_sizes = dkm__alloc_or_fail(ctx, (size_t)k * sizeof(uint64_t), "the result");
  res->iters = dkm__alloc_or_fail(ctx, (size_t)n_iter * sizeof(dkm_iter_stats), "the result");
  if (res->centroids == NULL || res->cluster_sizes == NULL || res->iters == NULL) {
    dkm_result_free(res);
    return NULL;
  }
  return res;
}

static dkm_status train(dkm_ctx *ctx, const dkm_params *params, dkm_source *src,
                        const dkm__train_hooks *hooks, dkm__ckpt *ck, dkm_result *res,
                        double call_start) {
  const uint32_t k = params->k, dim = src->dim;
  dkm__sample_plan sp;
  dkm_status s = dkm__sample_plan_make(ctx, params, src, dkm__tile_rows(k, dim), &sp);
  if (s != DKM_OK)
    return s;
  size_t sums_bytes;
  if (!dkm__array_bytes(k, dim, sizeof(double), &sums_bytes))
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "k * dim is too large: %u centroids of %u values",
                             k, dim);
  /* Given centroids are held to the rows' check (sample.h). */
  if (params->init == DKM_INIT_GIVEN &&
      (s = dkm__check_centroids(ctx, DKM_ERR_PARAM, "init_centroids", params->init_centroids,
                                params->k, dim, params->metric)) != DKM_OK)
    return s;
  dkm__result_set_plan(res, &sp, DKM_STRATEGY_FLAT);
  dkm_iter_stats *iters = dkm__alloc_or_fail(ctx, (size_t)params->max_iter * sizeof(dkm_iter_stats),
                                             "the iteration statistics");
  uint64_t *sizes = dkm__alloc_or_fail(ctx, (size_t)k * sizeof(uint64_t), "the cluster sizes");
  if (iters == NULL || sizes == NULL) {
    dkm__free(ctx, iters);
    dkm__free(ctx, sizes);
    return DKM_ERR_NOMEM;
  }

  dkm_source *sample = NULL;
  int owned = 0;
  double t0 = dkm__now();
  s = dkm__sample_draw(ctx, params, src, &sp, &sample, &owned, &res->spill_bytes);
  res->sample_seconds = dkm__now() - t0;
  dkm__trainer t;
  int opened = 0;
  if (s == DKM_OK) {
    s = trainer_open(&t, ctx, params, sample, &sp, hooks);
    opened = 1;
  }
  /* A checkpoint checks the sample's rows, and may say where to go on. */
  flat_state from;
  memset(&from, 0, sizeof from);
  if (s == DKM_OK && ck != NULL)
    s = dkm__ckpt_sample(ck, sample);
  if (s == DKM_OK && ck != NULL) {
    size_t len;
    const uint8_t *data = dkm__ckpt_loaded(ck, DKM__CKPT_FLAT, &len);
    if (data != NULL) {
      s = load_flat(ck, data, len, &t, &from, iters, sizes, res);
      dkm__ckpt_forget(ck, DKM__CKPT_FLAT);
    }
  }
  flat_saver sv = {ck, sizes, res};
  for (uint32_t run = from.run; s == DKM_OK && run < params->n_redo; run++) {
    uint32_t n_iter = 0;
    t.distinct = 0;
    s = run_once(&t, run, iters, &n_iter, sizes, &res->init_seconds,
                 run == from.run && from.have_current ? &from : NULL, &sv);
    if (s != DKM_OK)
      break;
    /* Any run that finds the count finds the same one: the sample's. */
    if (t.distinct != 0)
      res->distinct_rows = t.distinct;
    double obj = iters[n_iter - 1].objective;
    /* Lowest final objective wins; ties keep the earlier run. */
    if (run == 0 || obj < res->objective) {
      res->objective = obj;
      res->best_run = run;
      res->n_iter = n_iter;
      memcpy(res->centroids, t.centroids, (size_t)k * dim * sizeof(float));
      memcpy(res->cluster_sizes, sizes, (size_t)k * sizeof(uint64_t));
      memcpy(res->iters, iters, (size_t)n_iter * sizeof(dkm_iter_stats));
    }
    if (ck != NULL) {
      flat_state done = {run + 1, 0, 0, t.rng, NAN, 0};
      s = save_flat(ck, &t, &done, iters, sizes, res);
    }
  }
  if (opened)
    trainer_free(&t);
  if (owned)
    dkm_source_close(sample);
  dkm__free(ctx, iters);
  dkm__free(ctx, sizes);
  dkm_balance_of(res->cluster_sizes, k, &res->balance);
  res->train_seconds = dkm__now() - call_start;
  return s;
}

dkm_status dkm__train_flat(dkm_ctx *ctx, const dkm_params *params, dkm_source *src,
                           const dkm__train_hooks *hooks, dkm__ckpt *ck, dkm_result **out) {
  double start = dkm__now();
  *out = NULL;
  if (src->dim == 0)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "%s: dim is 0", src->name);
  dkm_result *res = dkm__result_alloc(ctx, params->k, src->dim, params->max_iter);
  if (res == NULL)
    return DKM_ERR_NOMEM;
  dkm_status s = train(ctx, params, src, hooks, ck, res, start);
  if (s != DKM_OK) {
    dkm_result_free(res);
    return s;
  }
  *out = res;
  return DKM_OK;
}

dkm_strategy dkm__strategy_for(const dkm_params *params) {
  if (params->strategy != DKM_STRATEGY_AUTO)
    return params->strategy;
  /* Given centroids are all k: only flat training starts from them. */
  return params->k >= DKM_HIERARCHICAL_MIN_K && params->init != DKM_INIT_GIVEN
             ? DKM_STRATEGY_HIERARCHICAL
             : DKM_STRATEGY_FLAT;
}

/* The identity of a run in a checkpoint: what changes its result, one
 * "name=value" line each (dkm__ckpt_open names the first that differs). */
static dkm_status open_checkpoint(dkm_ctx *ctx, const dkm_params *p, const dkm_source *src,
                                  dkm__ckpt **out) {
  const dkm_strategy strategy = dkm__strategy_for(p);
  const char *extra = p->checkpoint_identity != NULL ? p->checkpoint_identity : "";
  size_t size = 1024 + strlen(extra);
  char *ident = dkm__alloc_or_fail(ctx, size, "the checkpoint's identity");
  if (ident == NULL)
    return DKM_ERR_NOMEM;
  unsigned long given = 0;
  if (p->init == DKM_INIT_GIVEN)
    given = crc32_z(0, (const unsigned char *)p->init_centroids,
                    (size_t)p->k * src->dim * sizeof(float));
  int n = snprintf(ident, size,
                   "input rows=%llu\ninput dim=%u\nk=%u\nseed=%llu\nmetric=%s\ninit=%s\n"
                   "init_centroids CRC32=%08lx\nmax_points_per_centroid=%llu\nmax_iter=%u\n"
                   "tol=%.17g\nn_redo=%u\nstrategy=%s\nbalance=%s\nrefine=%u\n%s",
                   (unsigned long long)src->rows, src->dim, p->k, (unsigned long long)p->seed,
                   dkm_metric_name(p->metric), dkm_init_name(p->init), given,
                   (unsigned long long)p->max_points_per_centroid, p->max_iter, p->tol, p->n_redo,
                   dkm_strategy_name(strategy), p->balance ? "yes" : "no",
                   strategy == DKM_STRATEGY_HIERARCHICAL ? p->refine : 0, extra);
  assert(n > 0 && (size_t)n < size);
  (void)n;
  dkm_status s = dkm__ckpt_open(ctx, p->checkpoint, p->resume, ident, out);
  dkm__free(ctx, ident);
  return s;
}

dkm_status dkm_train(dkm_ctx *ctx, const dkm_params *params, dkm_source *src, dkm_result **out) {
  if (ctx == NULL)
    return DKM_ERR_PARAM;
  dkm_ctx_clear_error(ctx);
  if (out == NULL)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "train: out is NULL");
  *out = NULL;
  if (src == NULL)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "train: src is NULL");
  dkm_status s = dkm_params_check(ctx, params);
  if (s != DKM_OK)
    return s;
  if (src->dim == 0)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "%s: dim is 0", src->name);
  dkm__ckpt *ck = NULL;
  if (params->checkpoint != NULL && (s = open_checkpoint(ctx, params, src, &ck)) != DKM_OK)
    return s;
  if (dkm__strategy_for(params) == DKM_STRATEGY_HIERARCHICAL)
    s = dkm__train_hierarchical(ctx, params, src, ck, out);
  else
    s = dkm__train_flat(ctx, params, src, NULL, ck, out);
  /* The last state must be on disk before the call returns. */
  if (s == DKM_OK && ck != NULL && (s = dkm__ckpt_flush(ck)) != DKM_OK) {
    dkm_result_free(*out);
    *out = NULL;
  }
  dkm__ckpt_close(ck);
  return s;
}
