/*
 * source.h - internal helpers shared by every kind of source.
 */
#ifndef DKM_SOURCE_SOURCE_H
#define DKM_SOURCE_SOURCE_H

#include "internal.h"

/* Converts count elements of dtype at src (any alignment, little-endian as
 * stored on this machine) to float32 at out. F64 rounds to nearest. src and
 * out may overlap if every element is stored at or after its float (element
 * k at src + k * size >= out + 4 * k): elements are converted front to back,
 * each (each group of 8, in the F16C path) read before its floats are
 * written, so no write reaches an element not yet read. The in-place file
 * reads (formats/file.c) rely on this. */
void dkm__convert_to_f32(dkm_dtype dtype, const void *src, size_t count, float *out);

/* IEEE binary16 -> float32, exact (every half is a float). */
float dkm__half_to_float(uint16_t h);

/* Fills the public fields of a freshly allocated source. */
void dkm__source_init(dkm_source *src, const dkm_source_methods *methods, dkm_ctx *ctx,
                      uint64_t rows, uint32_t dim, dkm_dtype dtype, dkm_format format,
                      const char *name);

/* Where global row `row` of src lives: for a source made by
 * dkm_source_concat(), the part that holds it (looked into all the way
 * down) and the row within that part; for any other source, src->name and
 * row. Messages about one row use it, so they name the file the row is in. */
void dkm__source_locate(const dkm_source *src, uint64_t row, const char **name, uint64_t *local);

#endif
