/*
 * sample.c - see sample.h.
 *
 * The sample is drawn with Knuth's selection sampling (Algorithm S, TAOCP
 * vol. 2, 3.4.2): row i is kept with probability (m - chosen) / (n - i).
 * It keeps exactly m rows, in increasing order, deciding each row from the
 * seed alone: one sequential pass over the source, and the same rows
 * whatever the file format or block size.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/rng.h"
#include "sample.h"
#include "source/source.h"
#include "spill.h"

/* Rows per block when no block size is given: about 8 MiB of float32, the
 * size of each of the two read buffers when the sample streams from disk. */
#define AUTO_BLOCK_BYTES (UINT64_C(8) << 20)

/* In RAM a block costs no buffer, only 12 bytes per row of labels and
 * distances, while every block ends in a wait for its last tile (with
 * 3,072-row blocks of Fashion-MNIST that idled the second thread for 3% of
 * an iteration). So blocks grow there to about 64 MiB, at most 131,072 rows
 * (1.5 MiB of labels). */
#define MEMORY_BLOCK_BYTES (UINT64_C(64) << 20)
#define MEMORY_BLOCK_ROWS UINT64_C(131072)

/* Rows per read while drawing the sample: about 1 MiB, whatever block_rows
 * says (it does not change which rows are drawn). Small enough that the
 * buffer adds little to the sample in memory mode, large enough for
 * sequential reads at full speed. */
#define GATHER_BLOCK_BYTES (UINT64_C(1) << 20)

/* Sixteen lanes of partial sums in four 4-float vectors (registers on
 * every x86-64; GCC and clang lower the vector type to what the target
 * has), summed pairwise at the end: a fixed order, whatever the row's
 * address. */
typedef float dkm__v4f __attribute__((vector_size(16)));

float dkm__row_norm2(const float *x, uint32_t dim) {
  dkm__v4f a0 = {0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0;
  uint32_t j = 0;
  for (; j + 16 <= dim; j += 16) {
    dkm__v4f v0, v1, v2, v3;
    memcpy(&v0, x + j, sizeof v0); /* rows need not be aligned */
    memcpy(&v1, x + j + 4, sizeof v1);
    memcpy(&v2, x + j + 8, sizeof v2);
    memcpy(&v3, x + j + 12, sizeof v3);
    a0 += v0 * v0;
    a1 += v1 * v1;
    a2 += v2 * v2;
    a3 += v3 * v3;
  }
  dkm__v4f sum = (a0 + a1) + (a2 + a3);
  float total = (sum[0] + sum[1]) + (sum[2] + sum[3]);
  for (; j < dim; j++)
    total += x[j] * x[j];
  return total;
}

int dkm__row_ok(const float *x, uint32_t dim, dkm_metric metric) {
  if (metric != DKM_METRIC_COSINE)
    return dkm__norm2_ok(dkm__row_norm2(x, dim));
  for (uint32_t j = 0; j < dim; j++)
    if (!isfinite(x[j]))
      return 0;
  return 1;
}

const char *dkm__norm2_problem(const float *x, uint32_t dim, char *buf, size_t size) {
  double n2 = 0; /* in double: the float sum may be infinite */
  for (uint32_t j = 0; j < dim; j++)
    n2 += (double)x[j] * (double)x[j];
  snprintf(buf, size,
           "has squared norm %.3g, above %.3g, the largest float32 distances can hold; scale "
           "the data",
           n2, (double)DKM__MAX_NORM2);
  return buf;
}

/* "NAME: WHAT I has a NaN in column J" (or an infinite value, or a
 * squared norm beyond the bound) for a vector that failed dkm__row_ok. */
static dkm_status describe_bad_vector(dkm_ctx *ctx, dkm_status status, const char *name,
                                      const char *what, uint64_t index, const float *x,
                                      uint32_t dim) {
  char buf[160];
  for (uint32_t j = 0; j < dim; j++)
    if (!isfinite(x[j]))
      return dkm_ctx_set_error(ctx, status, "%s: %s %llu has %s in column %u", name, what,
                               (unsigned long long)index,
                               isnan(x[j]) ? "a NaN" : "an infinite value", j);
  return dkm_ctx_set_error(ctx, status, "%s: %s %llu %s", name, what, (unsigned long long)index,
                           dkm__norm2_problem(x, dim, buf, sizeof buf));
}

dkm_status dkm__describe_bad_row(dkm_ctx *ctx, const dkm_source *src, uint64_t row, const float *x,
                                 uint32_t dim) {
  const char *name;
  uint64_t local;
  dkm__source_locate(src, row, &name, &local);
  return describe_bad_vector(ctx, DKM_ERR_DATA, name, "row", local, x, dim);
}

dkm_status dkm__check_centroids(dkm_ctx *ctx, dkm_status status, const char *name, const float *c,
                                uint32_t k, uint32_t dim, dkm_metric metric) {
  for (uint32_t i = 0; i < k; i++) {
    const float *row = c + (size_t)i * dim;
    if (!dkm__row_ok(row, dim, metric))
      return describe_bad_vector(ctx, status, name, "centroid", i, row, dim);
  }
  return DKM_OK;
}

static uint64_t round_up(uint64_t x, uint64_t multiple) {
  return (x + multiple - 1) / multiple * multiple;
}

dkm_status dkm__sample_plan_make(dkm_ctx *ctx, const dkm_params *params, const dkm_source *src,
                                 uint32_t tile_rows, dkm__sample_plan *plan) {
  assert(tile_rows >= 1);
  memset(plan, 0, sizeof *plan);
  if (src->dim == 0)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "%s: dim is 0", src->name);
  if (src->rows < params->k)
    return dkm_ctx_set_error(ctx, DKM_ERR_TOO_FEW_ROWS, "%s: k is %u but there are only %llu rows",
                             src->name, params->k, (unsigned long long)src->rows);
  plan->rows = src->rows;
  plan->dim = src->dim;
  uint64_t m = src->rows, cap;
  if (params->max_points_per_centroid != 0 &&
      dkm__mul_u64(params->max_points_per_centroid, params->k, &cap) && cap < m)
    m = cap;
  plan->sample_rows = m;
  size_t bytes;
  if (!dkm__array_bytes(m, src->dim, sizeof(float), &bytes))
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM,
                             "%s: a sample of %llu rows of %u values is too large", src->name,
                             (unsigned long long)m, src->dim);
  plan->sample_bytes = bytes;

  plan->memory_limit = params->memory_limit;
  plan->memory_limit_source = "memory_limit";
  if (plan->memory_limit == 0) {
    /* Half of what the process may use: the machine's RAM, or less in a
     * container (see system.c). */
    plan->memory_limit = dkm__usable_memory(&plan->memory_limit_source) / 2;
  }
  plan->storage = params->storage;
  if (plan->storage == DKM_STORAGE_AUTO)
    /* An unknown RAM size (0) means no budget to compare with: memory. */
    plan->storage = (plan->memory_limit == 0 || plan->sample_bytes <= plan->memory_limit)
                        ? DKM_STORAGE_MEMORY
                        : DKM_STORAGE_DISK;

  /* No copy when the whole input is the sample and it can be read the way
   * training reads: in place when it is already float32 in memory, or
   * straight from a file that allows random access. An in-memory array of
   * another type is copied (converted) like a file that cannot be reread. */
  int whole = m == src->rows;
  if (whole && plan->storage == DKM_STORAGE_MEMORY && (src->flags & DKM_SOURCE_RESIDENT) != 0)
    plan->from_source = 1;
  if (whole && plan->storage == DKM_STORAGE_DISK &&
      (src->flags & (DKM_SOURCE_RESIDENT | DKM_SOURCE_SEQUENTIAL)) == 0 &&
      src->format != DKM_FORMAT_MEMORY)
    plan->from_source = 1;
  plan->spill_bytes =
      (plan->storage == DKM_STORAGE_DISK && !plan->from_source) ? plan->sample_bytes : 0;

  plan->tile_rows = tile_rows;
  uint64_t b = params->block_rows;
  const uint64_t row_bytes = (uint64_t)src->dim * sizeof(float);
  if (b == 0) {
    b = AUTO_BLOCK_BYTES / row_bytes;
    if (plan->storage == DKM_STORAGE_MEMORY)
      b = DKM__MAX(b, DKM__MIN(MEMORY_BLOCK_BYTES / row_bytes, MEMORY_BLOCK_ROWS));
  }
  /* Never more than the data (big block_rows values would only waste
   * memory), always whole tiles. */
  b = DKM__MAX(b, 1);
  uint64_t gather = GATHER_BLOCK_BYTES / row_bytes;
  gather = DKM__MIN(DKM__MAX(gather, 1), src->rows);
  b = DKM__MIN(b, m);
  plan->block_rows = round_up(b, tile_rows);
  plan->gather_block_rows = gather;
  return DKM_OK;
}

/* --- the in-memory sample: one aligned array, wrapped as a source -------- */

typedef struct memory_store {
  dkm_source base;
  float *data;
} memory_store;

static dkm_status store_read(dkm_source *self, dkm_ctx *ctx, uint64_t first, uint64_t count,
                             float *buf, const float **rows) {
  memory_store *s = (memory_store *)self;
  *rows = s->data + first * self->dim;
  return DKM_OK;
}

static void store_close(dkm_source *self) {
  memory_store *s = (memory_store *)self;
  dkm__free_aligned(self->ctx, s->data);
  dkm__free(self->ctx, s);
}

static const dkm_source_methods store_methods = {DKM_SOURCE_METHODS_VERSION, store_read, NULL,
                                                 store_close};

static dkm_status store_create(dkm_ctx *ctx, const dkm_source *src, uint64_t rows, size_t bytes,
                               memory_store **out) {
  *out = NULL;
  memory_store *s = dkm__calloc(ctx, 1, sizeof *s);
  if (s == NULL)
    return dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "out of memory allocating the sample");
  s->data = dkm__alloc_aligned(ctx, bytes, "the sample");
  if (s->data == NULL) {
    dkm__free(ctx, s);
    return DKM_ERR_NOMEM;
  }
  s->base.methods = &store_methods;
  s->base.rows = rows;
  s->base.dim = src->dim;
  s->base.flags = DKM_SOURCE_RESIDENT;
  s->base.dtype = DKM_DTYPE_F32;
  s->base.format = DKM_FORMAT_MEMORY;
  s->base.bytes = bytes;
  s->base.name = src->name; /* errors about sample rows name the input */
  s->base.ctx = ctx;
  *out = s;
  return DKM_OK;
}

/* --- drawing -------------------------------------------------------------- */

static int report(const dkm_params *params, uint64_t done, uint64_t total) {
  if (params->progress == NULL)
    return 0;
  dkm_progress p;
  memset(&p, 0, sizeof p);
  p.phase = DKM_PHASE_SAMPLE;
  p.done = done;
  p.total = total;
  p.objective = NAN;
  return params->progress(params->progress_user, &p);
}

dkm_status dkm__sample_draw(dkm_ctx *ctx, const dkm_params *params, dkm_source *src,
                            const dkm__sample_plan *plan, dkm_source **train, int *owned,
                            uint64_t *spilled) {
  *train = NULL;
  *owned = 0;
  *spilled = 0;
  if (plan->from_source) {
    *train = src;
    return DKM_OK;
  }
  const uint32_t dim = src->dim;
  const uint64_t n = src->rows, m = plan->sample_rows, bsz = plan->gather_block_rows;
  size_t block_bytes;
  if (!dkm__array_bytes(bsz, dim, sizeof(float), &block_bytes))
    return dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "block of %llu rows is too large",
                             (unsigned long long)bsz);

  dkm_status s = DKM_OK;
  memory_store *store = NULL;
  dkm__spill *spill = NULL;
  float *buf = NULL;
  uint32_t *picked = NULL;
  if (plan->storage == DKM_STORAGE_MEMORY) {
    s = store_create(ctx, src, m, plan->sample_bytes, &store);
  } else {
    const char *dir = params->tmp_dir != NULL ? params->tmp_dir : "/tmp";
    s = dkm__spill_create(ctx, dir, m, dim, &spill);
  }
  if (s == DKM_OK) {
    buf = dkm__alloc_aligned(ctx, block_bytes, "a block of rows");
    picked = dkm__alloc_or_fail(ctx, (size_t)bsz * sizeof *picked, "the sample's row list");
    if (buf == NULL || picked == NULL)
      s = DKM_ERR_NOMEM;
  }

  dkm__rng rng;
  dkm__rng_seed(&rng, params->seed, DKM__RNG_STREAM_SAMPLE);
  uint64_t chosen = 0;
  double last_report = dkm__now();
  for (uint64_t first = 0; s == DKM_OK && first < n && chosen < m; first += bsz) {
    uint64_t count = DKM__MIN(bsz, n - first);
    /* Decide the block's rows before reading it, so that only the span
     * that holds chosen rows is read (and none at all when m << n leaves a
     * block empty). */
    uint32_t np = 0;
    for (uint64_t i = first; i < first + count && chosen < m; i++) {
      if (m - chosen == n - i || (double)(n - i) * dkm__rng_uniform(&rng) < (double)(m - chosen)) {
        picked[np++] = (uint32_t)(i - first);
        chosen++;
      }
    }
    /* Let a file source start reading the next block while this one is
     * copied (and spilled). */
    if (src->methods->will_need != NULL && first + count < n)
      src->methods->will_need(src, first + count, DKM__MIN(bsz, n - first - count));
    if (np > 0) {
      uint64_t lo = picked[0], hi = (uint64_t)picked[np - 1] + 1;
      /* Where the chosen rows span half the block or more, the whole block
       * is read (at most twice the span) so that its every row is checked
       * below. */
      if (2 * (hi - lo) >= count) {
        lo = 0;
        hi = count;
      }
      const float *rows = NULL;
      s = src->methods->read(src, ctx, first + lo, hi - lo, buf, &rows);
      if (s != DKM_OK)
        break;
      /* Every row read is checked, chosen or not: the rows are in the
       * cache already, so this costs little (drawing 1 row in 4 of 65,536
       * x 784 float32 from a .npy: about 5% of the pass), and a NaN (or a
       * norm beyond the float range's bound) anywhere in the block is
       * found now rather than by a labelling pass after training. A 1 MiB
       * block is skipped, or read only in part, only where the sample
       * holds few of its rows (docs/formats.md). */
      for (uint64_t r = lo; r < hi; r++) {
        const float *x = rows + (size_t)(r - lo) * dim;
        if (!dkm__row_ok(x, dim, params->metric)) {
          s = dkm__describe_bad_row(ctx, src, first + r, x, dim);
          break;
        }
      }
      for (uint32_t p = 0; p < np && s == DKM_OK && store != NULL; p++)
        memcpy(store->data + (size_t)(chosen - np + p) * dim, rows + (size_t)(picked[p] - lo) * dim,
               (size_t)dim * sizeof(float));
      /* The spill takes each run of consecutive chosen rows straight from
       * the block just read: it gathers short runs in its write buffer and
       * writes runs of a buffer's worth or more from our memory, so the
       * sample is copied at most once on its way to the file (and mostly
       * not at all when every row is chosen: a whole block is then one run
       * the size of the write buffer). */
      for (uint32_t p = 0; s == DKM_OK && spill != NULL && p < np;) {
        uint32_t q = p + 1;
        while (q < np && picked[q] == picked[q - 1] + 1)
          q++;
        s = dkm__spill_append(ctx, spill, rows + (size_t)(picked[p] - lo) * dim, q - p);
        p = q;
      }
    }
    double now = dkm__now();
    if (s == DKM_OK && now - last_report >= 0.25) {
      last_report = now;
      if (report(params, first + count, n) != 0)
        s = dkm_ctx_set_error(ctx, DKM_ERR_CANCELLED, "cancelled while drawing the sample");
    }
  }
  if (s == DKM_OK) {
    assert(chosen == m);
    if (report(params, n, n) != 0)
      s = dkm_ctx_set_error(ctx, DKM_ERR_CANCELLED, "cancelled while drawing the sample");
  }
  dkm__free_aligned(ctx, buf);
  dkm__free(ctx, picked);
  if (s == DKM_OK && spill != NULL) {
    dkm__spill *sp = spill;
    spill = NULL;
    s = dkm__spill_finish(ctx, sp, train);
    if (s == DKM_OK)
      *spilled = plan->sample_bytes;
  } else if (s == DKM_OK) {
    *train = &store->base;
    store = NULL;
  }
  if (s != DKM_OK) {
    dkm__spill_abort(spill);
    if (store != NULL)
      store_close(&store->base);
    *train = NULL;
    return s;
  }
  *owned = 1;
  return DKM_OK;
}
