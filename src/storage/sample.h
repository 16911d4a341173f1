/*
 * sample.h - the training sample: how many rows, where they live (memory,
 * a spill file, or the input itself), and drawing them in one sequential
 * pass over the source.
 */
#ifndef DKM_STORAGE_SAMPLE_H
#define DKM_STORAGE_SAMPLE_H

#include "internal.h"

/* The decisions, made before anything is read. */
typedef struct dkm__sample_plan {
  uint64_t rows;              /* rows of the source */
  uint32_t dim;               /* values per row */
  uint64_t sample_rows;       /* m: rows training uses */
  uint64_t sample_bytes;      /* m * dim * 4 */
  dkm_storage storage;        /* MEMORY or DISK */
  int from_source;            /* train on the source itself, no copy */
  uint64_t memory_limit;      /* the budget AUTO compared against */
  const char *memory_limit_source; /* where it comes from (static text) */
  uint64_t spill_bytes;       /* written to tmp_dir */
  uint32_t tile_rows;         /* the engine's row tile */
  uint64_t block_rows;        /* rows per streamed block: a multiple of tile_rows */
  uint64_t gather_block_rows; /* rows per block while drawing the sample */
} dkm__sample_plan;

/* Fills plan for training src with params (already checked). Fails with
 * DKM_ERR_TOO_FEW_ROWS when k > rows and DKM_ERR_PARAM when the sizes
 * overflow. tile_rows comes from the engine (dkm__tile_rows). */
dkm_status dkm__sample_plan_make(dkm_ctx *ctx, const dkm_params *params, const dkm_source *src,
                                 uint32_t tile_rows, dkm__sample_plan *plan);

/* Carries out plan: *train receives the source training reads (src itself
 * when plan->from_source, else a new memory or spill source the caller
 * closes, *owned = 1). Every row the pass reads (the sample's rows and,
 * between the first and last chosen row of each block read, the others) is
 * checked for NaN, infinity and a squared norm that overflows, except when
 * training reads the source directly (the engine checks those rows on its
 * first pass); the error names the first bad row. Reports
 * DKM_PHASE_SAMPLE progress; cancellation is DKM_ERR_CANCELLED. *spilled
 * receives the bytes written to the spill file. */
dkm_status dkm__sample_draw(dkm_ctx *ctx, const dkm_params *params, dkm_source *src,
                            const dkm__sample_plan *plan, dkm_source **train, int *owned,
                            uint64_t *spilled);

/* ||x||^2 in float, summed in a fixed order (8 interleaved partial sums) so
 * that it is the same wherever the row sits in memory. The engine computes
 * it for every row it assigns; a row passes the sample's check exactly when
 * this is finite. */
float dkm__row_norm2(const float *x, uint32_t dim);

/* Records DKM_ERR_DATA for a row whose dkm__row_norm2 is not finite: "NAME:
 * row R has a NaN in column J" (or an infinite value, or a squared norm that
 * overflows float32). Returns DKM_ERR_DATA. */
dkm_status dkm__describe_bad_row(dkm_ctx *ctx, const char *name, uint64_t row, const float *x,
                                 uint32_t dim);

#endif
