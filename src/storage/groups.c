/*
 * groups.c - see groups.h.
 */
#include <assert.h>
#include <string.h>

#include "groups.h"
#include "spill.h"

/* A chunk is about CHUNK_BYTES, less when many groups would hold more than
 * BUFFER_BUDGET of chunk buffers between them: large enough that reading a
 * group back is a few large reads, small enough that 512 groups of 1024
 * dims hold 64 MiB. */
#define CHUNK_BYTES (UINT64_C(256) << 10)
#define BUFFER_BUDGET (UINT64_C(64) << 20)

typedef struct group {
  float *buf;       /* the chunk being filled (chunk_rows rows), NULL until used */
  uint32_t filled;  /* rows in buf */
  uint64_t rows;    /* rows added */
  uint64_t *chunks; /* first row of each of its chunks in the store */
  uint64_t n_chunks, cap_chunks;
} group;

struct dkm__groups {
  dkm_ctx *ctx;
  const char *name;
  uint32_t dim, n_groups;
  uint64_t rows, added, stored; /* announced, added, written to the store */
  uint64_t chunk_rows;
  group *g;
  uint64_t *first; /* n_groups + 1: where each group starts in the all-rows order */
  int finished;
  /* The store: an array in memory, or a spill (a source once finished). */
  float *arena;
  dkm__spill *spill;
  dkm_source *spilled;
};

static uint64_t chunk_rows_for(uint64_t rows, uint32_t dim, uint32_t n_groups) {
  uint64_t row_bytes = (uint64_t)dim * sizeof(float);
  uint64_t bytes = DKM__MIN(CHUNK_BYTES, BUFFER_BUDGET / DKM__MAX(n_groups, 1u));
  uint64_t cr = DKM__MAX(bytes / row_bytes, 1);
  return DKM__MIN(cr, DKM__MAX(rows, 1));
}

uint64_t dkm__groups_overhead_bytes(uint64_t rows, uint32_t dim, uint32_t n_groups) {
  uint64_t cr = chunk_rows_for(rows, dim, n_groups);
  uint64_t buffers = (uint64_t)n_groups * cr * dim * sizeof(float);
  /* A list starts at 16 entries and doubles, the old one live while it
   * is copied. */
  uint64_t lists =
      (16 * (uint64_t)n_groups + 3 * (rows / cr + (uint64_t)n_groups)) * sizeof(uint64_t);
  return buffers + lists + (uint64_t)n_groups * (sizeof(group) + sizeof(uint64_t));
}

dkm_status dkm__groups_create(dkm_ctx *ctx, dkm_storage storage, const char *tmp_dir,
                              const char *name, uint64_t rows, uint32_t dim, uint32_t n_groups,
                              dkm__groups **out) {
  *out = NULL;
  assert(storage == DKM_STORAGE_MEMORY || storage == DKM_STORAGE_DISK);
  dkm__groups *s = dkm__calloc(ctx, 1, sizeof *s);
  if (s == NULL)
    return dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "out of memory allocating the groups");
  s->ctx = ctx;
  s->name = name;
  s->dim = dim;
  s->n_groups = n_groups;
  s->rows = rows;
  s->chunk_rows = chunk_rows_for(rows, dim, n_groups);
  s->g = dkm__calloc(ctx, n_groups, sizeof *s->g);
  s->first = dkm__calloc(ctx, (size_t)n_groups + 1, sizeof *s->first);
  dkm_status st = DKM_OK;
  if (s->g == NULL || s->first == NULL) {
    st = dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "out of memory allocating the groups");
  } else if (storage == DKM_STORAGE_MEMORY) {
    size_t bytes;
    if (!dkm__array_bytes(rows, dim, sizeof(float), &bytes))
      st = dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "%s: %llu rows of %u values are too large", name,
                             (unsigned long long)rows, dim);
    else if ((s->arena = dkm__alloc_aligned(ctx, bytes, "the grouped sample")) == NULL)
      st = DKM_ERR_NOMEM;
  } else {
    st = dkm__spill_create(ctx, tmp_dir, rows, dim, &s->spill);
  }
  if (st != DKM_OK) {
    dkm__groups_free(s);
    return st;
  }
  *out = s;
  return DKM_OK;
}

/* Appends group gi's filled chunk to the store. */
static dkm_status flush(dkm_ctx *ctx, dkm__groups *s, uint32_t gi) {
  group *g = &s->g[gi];
  if (g->filled == 0)
    return DKM_OK;
  if (g->n_chunks == g->cap_chunks) {
    uint64_t cap = g->cap_chunks == 0 ? 16 : 2 * g->cap_chunks;
    uint64_t *grown = dkm__alloc_or_fail(ctx, (size_t)cap * sizeof *grown, "a group's chunk list");
    if (grown == NULL)
      return DKM_ERR_NOMEM;
    if (g->n_chunks != 0)
      memcpy(grown, g->chunks, (size_t)g->n_chunks * sizeof *grown);
    dkm__free(ctx, g->chunks);
    g->chunks = grown;
    g->cap_chunks = cap;
  }
  dkm_status st = DKM_OK;
  if (s->arena != NULL)
    memcpy(s->arena + (size_t)s->stored * s->dim, g->buf,
           (size_t)g->filled * s->dim * sizeof(float));
  else
    st = dkm__spill_append(ctx, s->spill, g->buf, g->filled);
  if (st != DKM_OK)
    return st;
  g->chunks[g->n_chunks++] = s->stored;
  s->stored += g->filled;
  g->filled = 0;
  return DKM_OK;
}

dkm_status dkm__groups_add(dkm_ctx *ctx, dkm__groups *s, uint32_t gi, const float *row) {
  assert(!s->finished && gi < s->n_groups);
  if (s->added == s->rows)
    return dkm_ctx_set_error(ctx, DKM_ERR_INTERNAL, "more grouped rows than announced");
  group *g = &s->g[gi];
  if (g->buf == NULL) {
    g->buf = dkm__alloc_or_fail(ctx, (size_t)s->chunk_rows * s->dim * sizeof(float),
                                "a group's chunk buffer");
    if (g->buf == NULL)
      return DKM_ERR_NOMEM;
  }
  memcpy(g->buf + (size_t)g->filled * s->dim, row, (size_t)s->dim * sizeof(float));
  g->filled++;
  g->rows++;
  s->added++;
  return g->filled == s->chunk_rows ? flush(ctx, s, gi) : DKM_OK;
}

dkm_status dkm__groups_finish(dkm_ctx *ctx, dkm__groups *s) {
  assert(!s->finished);
  if (s->added != s->rows)
    return dkm_ctx_set_error(ctx, DKM_ERR_INTERNAL, "%llu grouped rows of %llu announced",
                             (unsigned long long)s->added, (unsigned long long)s->rows);
  for (uint32_t gi = 0; gi < s->n_groups; gi++) {
    dkm_status st = flush(ctx, s, gi);
    if (st != DKM_OK)
      return st;
    dkm__free(ctx, s->g[gi].buf);
    s->g[gi].buf = NULL;
    s->first[gi + 1] = s->first[gi] + s->g[gi].rows;
  }
  if (s->spill != NULL) {
    dkm__spill *sp = s->spill;
    s->spill = NULL;
    dkm_status st = dkm__spill_finish(ctx, sp, &s->spilled);
    if (st != DKM_OK)
      return st;
    /* A group's chunks are spread over the file: read them with pread
     * into the block buffer rather than through the mapping's window of
     * two ranges. */
    dkm__spill_use_pread(s->spilled);
    /* And keep what was read in the page cache: a group is read once per
     * iteration of its training, and one group is far smaller than the
     * file. Dropping pages behind (the spill's default for a file larger
     * than half the RAM) made every iteration read its group from disk
     * again: at k = 65,536 on 16 GiB the groups went by at 9 s each while
     * their iterations took about 1.5 s. */
    dkm__spill_set_drop_behind(s->spilled, false);
  }
  s->finished = 1;
  return DKM_OK;
}

uint64_t dkm__groups_rows(const dkm__groups *s, uint32_t gi) {
  return s->g[gi].rows;
}

/* --- the sources ------------------------------------------------------------ */

typedef struct group_source {
  dkm_source base;
  dkm__groups *store;
  uint32_t g;      /* the group, or DKM__ALL_GROUPS */
  uint32_t cursor; /* all rows: the group of the last read (reads go forward) */
} group_source;

/* Reads count rows from position pos of the store into dst, or points *p
 * at them (memory). */
static dkm_status store_read(dkm__groups *s, dkm_ctx *ctx, uint64_t pos, uint64_t count, float *dst,
                             const float **p) {
  if (s->arena != NULL) {
    *p = s->arena + (size_t)pos * s->dim;
    return DKM_OK;
  }
  return s->spilled->methods->read(s->spilled, ctx, pos, count, dst, p);
}

static dkm_status group_read(dkm_source *self, dkm_ctx *ctx, uint64_t first, uint64_t count,
                             float *buf, const float **rows) {
  group_source *v = (group_source *)self;
  dkm__groups *s = v->store;
  const uint32_t dim = s->dim;
  const uint64_t cr = s->chunk_rows;
  uint64_t done = 0;
  while (done < count) {
    uint64_t r = first + done; /* row of the source */
    uint32_t gi = v->g;
    uint64_t i = r; /* row within group gi */
    if (gi == DKM__ALL_GROUPS) {
      /* Most reads go forward: start from the last group seen. */
      uint32_t c = v->cursor;
      if (r < s->first[c])
        c = 0;
      while (r >= s->first[c + 1])
        c++;
      v->cursor = c;
      gi = c;
      i = r - s->first[c];
    }
    const group *g = &s->g[gi];
    uint64_t in_chunk = i % cr;
    uint64_t piece = DKM__MIN(count - done, DKM__MIN(cr - in_chunk, g->rows - i));
    uint64_t pos = g->chunks[i / cr] + in_chunk;
    float *dst = buf + (size_t)done * dim;
    const float *p = NULL;
    dkm_status st = store_read(s, ctx, pos, piece, dst, &p);
    if (st != DKM_OK)
      return st;
    if (piece == count) { /* one piece: no copy needed */
      *rows = p;
      return DKM_OK;
    }
    if (p != dst)
      memcpy(dst, p, (size_t)piece * dim * sizeof(float));
    done += piece;
  }
  *rows = buf;
  return DKM_OK;
}

static void group_close(dkm_source *self) {
  dkm__free(self->ctx, self);
}

static const dkm_source_methods group_methods = {DKM_SOURCE_METHODS_VERSION, group_read, NULL,
                                                 group_close};

dkm_status dkm__groups_open(dkm_ctx *ctx, dkm__groups *s, uint32_t gi, dkm_source **out) {
  *out = NULL;
  assert(s->finished && (gi == DKM__ALL_GROUPS || gi < s->n_groups));
  group_source *v = dkm__calloc(ctx, 1, sizeof *v);
  if (v == NULL)
    return dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "out of memory allocating a group's source");
  v->store = s;
  v->g = gi;
  v->base.methods = &group_methods;
  v->base.rows = gi == DKM__ALL_GROUPS ? s->rows : s->g[gi].rows;
  v->base.dim = s->dim;
  /* In memory a read copies at most at chunk seams: as good as resident,
   * so training reads it in place. On disk, a file that allows random
   * access. */
  v->base.flags = s->arena != NULL ? DKM_SOURCE_RESIDENT : 0;
  v->base.dtype = DKM_DTYPE_F32;
  v->base.format = s->arena != NULL ? DKM_FORMAT_MEMORY : DKM_FORMAT_SPILL;
  v->base.bytes = v->base.rows * s->dim * sizeof(float);
  v->base.name = s->name;
  v->base.ctx = ctx;
  *out = &v->base;
  return DKM_OK;
}

void dkm__groups_free(dkm__groups *s) {
  if (s == NULL)
    return;
  dkm_ctx *ctx = s->ctx;
  for (uint32_t gi = 0; s->g != NULL && gi < s->n_groups; gi++) {
    dkm__free(ctx, s->g[gi].buf);
    dkm__free(ctx, s->g[gi].chunks);
  }
  dkm__free(ctx, s->g);
  dkm__free(ctx, s->first);
  dkm__free_aligned(ctx, s->arena);
  dkm__spill_abort(s->spill);
  dkm_source_close(s->spilled);
  dkm__free(ctx, s);
}
