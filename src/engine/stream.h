/*
 * stream.h - reading a source block by block with the next block read on a
 * background thread while the current one is computed (double buffering).
 *
 * Protocol: request(block 0); then repeatedly wait() for the oldest
 * requested block and request() the next one before computing on the block
 * wait() returned. At most one request is outstanding, and the block that
 * wait() returned stays valid until the second request() after it. The
 * source's methods are called only by the reader thread while a request is
 * outstanding, so the caller may read the source itself (dkm__stream_read)
 * only when none is.
 */
#ifndef DKM_ENGINE_STREAM_H
#define DKM_ENGINE_STREAM_H

#include "internal.h"

typedef struct dkm__stream dkm__stream;

/* Opens a stream over src with room for blocks of up to max_rows rows.
 * Resident sources are read inline (their reads are free); others get a
 * reader thread. */
dkm_status dkm__stream_open(dkm_ctx *ctx, dkm_source *src, uint64_t max_rows, dkm__stream **out);

/* Asks for rows [first, first + count) (count <= max_rows). hint_count > 0
 * names the block that will be asked for next, for read-ahead. */
void dkm__stream_request(dkm__stream *st, uint64_t first, uint64_t count, uint64_t hint_first,
                         uint64_t hint_count);

/* Waits for the oldest request; on success *rows points at its rows. On
 * failure the source has recorded its error on ctx and it is returned. */
dkm_status dkm__stream_wait(dkm__stream *st, const float **rows);

/* Waits for an outstanding request, if any, and drops it. */
void dkm__stream_drain(dkm__stream *st);

/* Joins the thread and frees the buffers. NULL is harmless. */
void dkm__stream_close(dkm__stream *st);

#endif
