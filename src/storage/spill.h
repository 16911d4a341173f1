/*
 * spill.h - the spilled sample: float32 rows in a temporary file that has no
 * name from the start, written once in row order, then read back as a
 * source. The file vanishes when it is closed or the process dies, even by
 * SIGKILL.
 */
#ifndef DKM_STORAGE_SPILL_H
#define DKM_STORAGE_SPILL_H

#include "internal.h"

typedef struct dkm__spill dkm__spill;

/* Creates the nameless file in dir for rows * dim float32 values, after
 * checking (statvfs) that dir has room for them. Errors name the directory:
 * DKM_ERR_NOSPACE with the bytes needed and available, DKM_ERR_IO for a
 * directory that is missing or not writable. */
dkm_status dkm__spill_create(dkm_ctx *ctx, const char *dir, uint64_t rows, uint32_t dim,
                             dkm__spill **out);

/* Appends count rows. ENOSPC/EDQUOT/EFBIG while writing are DKM_ERR_NOSPACE,
 * other failures DKM_ERR_IO; both name the directory. */
dkm_status dkm__spill_append(dkm_ctx *ctx, dkm__spill *spill, const float *rows, uint64_t count);

/* Ends writing (all rows must have been appended) and turns the spill into a
 * source that owns the file. The spill is consumed whether or not this
 * succeeds. */
dkm_status dkm__spill_finish(dkm_ctx *ctx, dkm__spill *spill, dkm_source **out);

/* Drops an unfinished spill; its file vanishes. NULL is harmless. */
void dkm__spill_abort(dkm__spill *spill);

#endif
