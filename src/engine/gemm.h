/*
 * gemm.h - the engine's own matrix product for the assignment: scores of
 * rows against centroids packed in panels of 16.
 *
 * Why not cblas_sgemm: Debian's serial OpenBLAS (0.3.21, built without
 * USE_LOCKING) shares its packing buffers between threads without a lock,
 * so two threads in sgemm at once can corrupt each other's products; and
 * its results for a row depend on how many rows the call has. Here every
 * score is one chain of fused multiply-adds over the columns in order, from
 * zero: the same bits whatever the tile, the thread and the instruction set
 * (AVX-512 or AVX2), and nothing is shared between threads. CPUs without
 * AVX2 and FMA fall back to cblas_sgemm behind a lock (dkm__gemm_native()
 * says which).
 */
#ifndef DKM_ENGINE_GEMM_H
#define DKM_ENGINE_GEMM_H

#include "internal.h"

/* Centroids per panel, and panels are used in pairs where possible. */
#define DKM__PANEL 16u

/* 1 when the own kernel runs on this CPU, 0 for the BLAS fallback. */
int dkm__gemm_native(void);

/* Floats of the packed form of k vectors of dim values: k rounded up to a
 * multiple of 32, times dim. */
size_t dkm__packed_floats(uint32_t k, uint32_t dim);

/* Packs k vectors (row-major, dim values each) into panels: panel q holds
 * vectors 16q..16q+15 interleaved by column (packed[q*16*dim + p*16 + i] =
 * v[16q + i][p]), zeros past k. */
void dkm__pack(const float *v, uint32_t k, uint32_t dim, float *packed);

/* out[r * ldo + j] = x_r . v_j for rows r < rows of x (row-major, dim
 * values) and j < 16 * panels, v packed by dkm__pack (panels counted from
 * its start). Native kernel only. */
void dkm__gemm_packed(const float *x, uint32_t rows, uint32_t dim, const float *packed,
                      uint32_t panels, float *out, uint32_t ldo);

/* The same, storing bias[j] - scale * (x_r . v_j) instead (bias has 16 *
 * panels entries): the assignment's per-centroid value, made while the
 * scores are in registers. */
void dkm__gemm_packed_biased(const float *x, uint32_t rows, uint32_t dim, const float *packed,
                             uint32_t panels, const float *bias, float scale, float *out,
                             uint32_t ldo);

/* The fallback: out[r * ldo + j] = x_r . v_j for j < n, v row-major, through
 * cblas_sgemm under a process-wide lock. */
void dkm__gemm_blas(const float *x, uint32_t rows, uint32_t dim, const float *v, uint32_t n,
                    float *out, uint32_t ldo);

/* For tests: force the AVX2 kernel or the BLAS fallback (where the CPU
 * allows), or go back to the automatic choice. Not for concurrent use with a
 * running training. */
#define DKM__GEMM_AUTO 0
#define DKM__GEMM_AVX2 1
#define DKM__GEMM_BLAS 2
void dkm__gemm_force(int which);

#endif
