/*
 * groups.h - the sample regrouped by coarse cluster, for hierarchical
 * training: rows are added one at a time with their group, in sample order,
 * and read back as one source per group (its rows in sample order) or as
 * one source of every row, group after group.
 *
 * Rows are gathered per group in chunks of a fixed size and a full chunk is
 * appended to the store, in memory or in a nameless spill file (spill.h):
 * one pass, no second copy of the sample, and memory bounded by one chunk
 * per group. A group's rows are its chunks in order. The order of rows
 * within a group and of groups is a function of the sample and the labels
 * only, so memory and disk give the same sources, row for row.
 *
 *   dkm__groups_create()  for rows in total, of dim values, in n_groups
 *   dkm__groups_add()     each row with its group
 *   dkm__groups_finish()  flushes the last chunks; then the store is read-only
 *   dkm__groups_open()    a source over one group, or every row
 *                         (DKM__ALL_GROUPS); close it before the store
 *   dkm__groups_free()    frees the store; its file vanishes
 */
#ifndef DKM_STORAGE_GROUPS_H
#define DKM_STORAGE_GROUPS_H

#include "internal.h"

typedef struct dkm__groups dkm__groups;

#define DKM__ALL_GROUPS UINT32_MAX

/* storage is MEMORY or DISK (in tmp_dir, NULL for /tmp); name names the
 * rows in messages (the input). Errors as dkm__spill_create's. */
dkm_status dkm__groups_create(dkm_ctx *ctx, dkm_storage storage, const char *tmp_dir,
                              const char *name, uint64_t rows, uint32_t dim, uint32_t n_groups,
                              dkm__groups **out);

/* Adds one row (dim floats) to group g. */
dkm_status dkm__groups_add(dkm_ctx *ctx, dkm__groups *groups, uint32_t g, const float *row);

/* Ends adding: every announced row must have been added. */
dkm_status dkm__groups_finish(dkm_ctx *ctx, dkm__groups *groups);

/* Rows of group g (after finish). */
uint64_t dkm__groups_rows(const dkm__groups *groups, uint32_t g);

/* A source over the rows of group g (g < n_groups, with rows), or over all
 * rows in group order (DKM__ALL_GROUPS). Sources of one store must not be
 * read at the same time. */
dkm_status dkm__groups_open(dkm_ctx *ctx, dkm__groups *groups, uint32_t g, dkm_source **out);

/* Frees the store (its sources must be closed). NULL is harmless. */
void dkm__groups_free(dkm__groups *groups);

/* Bytes of memory the store holds beyond its rows in memory mode (chunk
 * buffers and chunk lists), for the plan. */
uint64_t dkm__groups_overhead_bytes(uint64_t rows, uint32_t dim, uint32_t n_groups);

#endif
