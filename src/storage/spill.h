/*
 * spill.h - the spilled sample: float32 rows in a temporary file that has no
 * name from the start, written once in row order, then read back as a
 * source. The file vanishes when it is closed or the process dies, even by
 * SIGKILL.
 *
 * Life of a spill:
 *
 *   dkm__spill_create()   checks the directory and its free space, opens the
 *                         nameless file and reserves rows * dim * 4 bytes
 *   dkm__spill_append()   any number of times, any row counts (buffered)
 *   dkm__spill_finish()   turns it into a dkm_source (format DKM_FORMAT_SPILL)
 *                         that the engine reads in blocks; close it with
 *                         dkm_source_close()
 *   dkm__spill_abort()    drops an unfinished spill instead (on any error)
 *
 * Resident memory: a write buffer of about 1 MiB while writing; while
 * reading, the pages of the last two ranges read (about two blocks).
 */
#ifndef DKM_STORAGE_SPILL_H
#define DKM_STORAGE_SPILL_H

#include "internal.h"

typedef struct dkm__spill dkm__spill;

/* Creates the nameless file in dir (NULL means "/tmp") for rows * dim float32
 * values, after checking (statvfs) that dir has room for them, and reserves
 * that room at once where the file system can (fallocate), so that a full
 * disk is found before the sample is drawn. Errors name the directory:
 * DKM_ERR_NOSPACE with the bytes needed and available, DKM_ERR_IO for a
 * directory that is missing, not a directory or not writable, DKM_ERR_PARAM
 * for rows or dim 0 or a size that overflows, DKM_ERR_NOMEM. On failure *out
 * is NULL and no file exists. */
dkm_status dkm__spill_create(dkm_ctx *ctx, const char *dir, uint64_t rows, uint32_t dim,
                             dkm__spill **out);

/* Appends count rows (count * dim floats at rows; count may be 0). Small
 * appends are gathered in a buffer, so appending one row at a time is cheap.
 * ENOSPC/EDQUOT/EFBIG while writing are DKM_ERR_NOSPACE, other failures
 * DKM_ERR_IO; both name the directory. Appending more rows than announced is
 * DKM_ERR_INTERNAL. After a failure the spill only accepts abort. */
dkm_status dkm__spill_append(dkm_ctx *ctx, dkm__spill *spill, const float *rows, uint64_t count);

/* Ends writing (all rows must have been appended, else DKM_ERR_INTERNAL) and
 * turns the spill into a source that owns the file; close it with
 * dkm_source_close(). The spill is consumed whether or not this succeeds: on
 * failure its file is gone and *out is NULL. */
dkm_status dkm__spill_finish(dkm_ctx *ctx, dkm__spill *spill, dkm_source **out);

/* Drops an unfinished spill; its file vanishes. NULL is harmless. */
void dkm__spill_abort(dkm__spill *spill);

/* Bytes of memory a spill of rows * dim float32 holds while it is written
 * (its write buffer: at most about 1 MiB, or one row if rows are larger),
 * for dkm_plan_training()'s estimate of disk mode's peak. Nothing is held
 * once it is finished. */
size_t dkm__spill_buffer_bytes(uint64_t rows, uint32_t dim);

/* Rows appended so far (for progress and checks). */
uint64_t dkm__spill_rows_written(const dkm__spill *spill);

/* Drop-behind: when on, the pages of the file are dropped from the page cache
 * as soon as they have been read (POSIX_FADV_DONTNEED). By default it is on
 * only when the file is larger than half of the physical memory, where the
 * pages could not stay cached from one pass to the next anyway; a smaller
 * file stays cached so that every pass after the first reads at memory speed.
 * For tests and benchmarks; call it on the spill or on the finished source. */
void dkm__spill_set_drop_behind(dkm_source *spill_source, bool on);

/* The read path: true when the finished spill is read through a mapping
 * (zero copy), false when it falls back on pread. dkm__spill_use_pread()
 * switches a finished spill to pread for good (for tests and benchmarks). */
bool dkm__spill_is_mapped(const dkm_source *spill_source);
void dkm__spill_use_pread(dkm_source *spill_source);

#endif
