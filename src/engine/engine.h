/*
 * engine.h - what the engine's files share: a pass over rows in blocks,
 * with the block's tiles processed in parallel and then a per-block step on
 * the calling thread.
 *
 * Rows are cut into blocks of block_rows (a multiple of tile_rows) and
 * blocks into tiles of tile_rows, both counted from row 0, so every tile
 * covers the same rows whatever the block size and the thread count. Tiles
 * are handed to workers in any order; anything whose result depends on
 * order (sums) is done per tile into per-tile slots, or by the block step
 * in row order.
 */
#ifndef DKM_ENGINE_ENGINE_H
#define DKM_ENGINE_ENGINE_H

#include "common/pool.h"
#include "internal.h"
#include "stream.h"

typedef struct dkm__engine dkm__engine;

/* Processes one tile: rows [first, first + count) of the source at x.
 * Returns UINT64_MAX, or the global index of the first row that failed the
 * finite check. */
typedef uint64_t (*dkm__tile_fn)(void *user, uint32_t worker, uint64_t first, const float *x,
                                 uint32_t count);

/* Runs on the calling thread after every tile of a block is done; x holds
 * the block's rows. May run pool jobs. Returns a status. */
typedef dkm_status (*dkm__block_fn)(void *user, uint64_t first, const float *x, uint64_t count);

struct dkm__engine {
  dkm_ctx *ctx;
  dkm_source *src;
  uint64_t rows;
  uint32_t dim;
  uint32_t tile_rows;
  uint64_t block_rows;
  dkm__pool *pool;
  dkm__stream *stream;
  uint32_t n_workers;
  /* Progress of the current pass. */
  const dkm_params *params;
  dkm_progress progress;
  double last_report;
  /* The block being processed (for the tile job). */
  dkm__tile_fn tile_fn;
  void *user;
  const float *block;
  uint64_t block_first;
  uint64_t block_count;
  uint32_t block_tiles;
  uint32_t next_tile; /* atomic */
  uint64_t bad_row;   /* atomic minimum */
};

/* Opens the pool and the stream for passes over src. n_threads 0 = every
 * core. */
dkm_status dkm__engine_open(dkm__engine *eng, dkm_ctx *ctx, const dkm_params *params,
                            dkm_source *src, uint32_t tile_rows, uint64_t block_rows);
void dkm__engine_close(dkm__engine *eng);

/* Calls the progress callback (if any) with eng->progress; force skips the
 * rate limit. Returns DKM_ERR_CANCELLED (recorded) if the callback asks. */
dkm_status dkm__engine_report(dkm__engine *eng, int force);

/* One pass over every row. eng->progress.phase etc. must be set; done and
 * total are filled in (rows). */
dkm_status dkm__engine_pass(dkm__engine *eng, dkm__tile_fn tile_fn, dkm__block_fn block_fn,
                            void *user);

/* One aligned buffer of `floats` floats per worker, for tile jobs' scratch.
 * NULL on failure, with the error recorded and nothing left allocated. */
float **dkm__engine_worker_buffers(dkm__engine *eng, size_t floats, const char *what);
void dkm__engine_free_worker_buffers(dkm__engine *eng, float **buffers);

/* Reads one row of the source into out (dim floats), on the calling thread.
 * Only between passes. */
dkm_status dkm__engine_read_row(dkm__engine *eng, uint64_t row, float *out);

#endif
