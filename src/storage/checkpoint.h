/*
 * checkpoint.h - the file that lets a training run be resumed (params
 * checkpoint and resume; the format is in docs/design.md, "Checkpoints").
 *
 * The file is a header (magic, version, byte order, payload size), tagged
 * sections, and a CRC32 of everything before it. This module knows the
 * container, the identity of a run and how the file is written; the engine
 * (train.c, hier.c) decides what its sections hold. A save keeps the
 * sections given last for every tag, so the hierarchical driver's section
 * goes into each save the refinement's Lloyd loop makes.
 *
 * Writing is atomic and off the training's thread: a save copies the
 * sections into a file image and hands it to a writer thread, which writes
 * FILE.tmp, syncs it, renames it over FILE and syncs the folder, while the
 * next iteration runs. A kill at any instant leaves the old or the new
 * file. A save never waits for the disk: made while a write is under way,
 * it is queued, replacing a queued one not yet started (when iterations
 * are faster than fsync, the file skips states instead of slowing training
 * down). A failed write fails the next save; dkm__ckpt_flush() waits for
 * the last one.
 */
#ifndef DKM_STORAGE_CHECKPOINT_H
#define DKM_STORAGE_CHECKPOINT_H

#include "internal.h"

/* Section tags. */
#define DKM__CKPT_FLAT 1u /* flat training's Lloyd loop (or the refinement's) */
#define DKM__CKPT_HIER 2u /* the hierarchical driver's stages */

typedef struct dkm__ckpt dkm__ckpt;

/* Opens the checkpoint of a run whose identity is ident ("name=value"
 * lines: every parameter and property of the input that changes results).
 * With resume, reads FILE and checks its header, size, CRC and version
 * (DKM_ERR_FORMAT naming the problem), then compares its identity with
 * ident line by line: a line that differs is DKM_ERR_PARAM, "checkpoint
 * FILE: seed differs (checkpoint 1, this run 2)". Nothing is written
 * until the first save. Free with dkm__ckpt_close(). */
dkm_status dkm__ckpt_open(dkm_ctx *ctx, const char *path, int resume, const char *ident,
                          dkm__ckpt **out);

/* Checks (resume) or records the CRC32 of every row of the training
 * sample, read through sample in blocks: the rows that decide the result,
 * so a changed input is caught even where its size and time are not. Only
 * the first call of a run does anything (a refinement reads the groups,
 * which hold the same rows). */
dkm_status dkm__ckpt_sample(dkm__ckpt *ck, dkm_source *sample);

/* The loaded file's section tag (resume), or NULL and *len = 0 when it has
 * none. Valid until dkm__ckpt_close(). */
const uint8_t *dkm__ckpt_loaded(const dkm__ckpt *ck, uint32_t tag, size_t *len);

/* Forgets the loaded section tag: once a stage has used what it restored,
 * later stages start afresh (a nested Lloyd loop must not restore the
 * refinement's state). */
void dkm__ckpt_forget(dkm__ckpt *ck, uint32_t tag);

/* A growable byte buffer to build a section in. */
typedef struct dkm__ckpt_buf {
  uint8_t *data;
  size_t len, cap;
  int failed; /* an allocation failed: the buffer is unusable */
} dkm__ckpt_buf;

/* The buffer of section tag, emptied, to be filled and then saved. */
dkm__ckpt_buf *dkm__ckpt_section(dkm__ckpt *ck, uint32_t tag);
/* Appends bytes (records the failure in the buffer). */
void dkm__ckpt_put(dkm__ckpt *ck, dkm__ckpt_buf *b, const void *data, size_t len);
void dkm__ckpt_put_u32(dkm__ckpt *ck, dkm__ckpt_buf *b, uint32_t v);
void dkm__ckpt_put_u64(dkm__ckpt *ck, dkm__ckpt_buf *b, uint64_t v);
void dkm__ckpt_put_f64(dkm__ckpt *ck, dkm__ckpt_buf *b, double v);
/* Drops section tag from later saves. */
void dkm__ckpt_drop(dkm__ckpt *ck, uint32_t tag);

/* Saves the identity, the sample's CRC and every section (see above).
 * Returns the failure of an earlier write, if any, or DKM_ERR_NOMEM. */
dkm_status dkm__ckpt_save(dkm__ckpt *ck);

/* Waits for the write in flight and returns its status. */
dkm_status dkm__ckpt_flush(dkm__ckpt *ck);

/* Waits for the write in flight (ignoring its status), stops the writer
 * and frees everything. NULL is harmless. */
void dkm__ckpt_close(dkm__ckpt *ck);

/* Reading a section: a cursor that turns short reads into a flag. */
typedef struct dkm__ckpt_reader {
  const uint8_t *p;
  size_t left;
  int bad;
} dkm__ckpt_reader;

void dkm__ckpt_get(dkm__ckpt_reader *r, void *out, size_t len);
uint32_t dkm__ckpt_get_u32(dkm__ckpt_reader *r);
uint64_t dkm__ckpt_get_u64(dkm__ckpt_reader *r);
double dkm__ckpt_get_f64(dkm__ckpt_reader *r);

/* Checks k restored centroids as given ones are checked: a crafted file
 * with a valid CRC must not bring a NaN into the engine. DKM_ERR_FORMAT
 * "checkpoint FILE: centroid I has a NaN in column J". */
dkm_status dkm__ckpt_check_centroids(dkm__ckpt *ck, const float *c, uint32_t k, uint32_t dim,
                                     dkm_metric metric);

/* DKM_ERR_FORMAT "checkpoint FILE: its <what> section is malformed". */
dkm_status dkm__ckpt_malformed(dkm__ckpt *ck, const char *what);

#endif
