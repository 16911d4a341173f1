/*
 * source.c - the source interface's entry points, element conversion, and
 * the in-memory source over a caller's array.
 */
#include <string.h>

#include "source.h"

float dkm__half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) { /* infinity or NaN: keep the payload */
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) { /* normal */
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) { /* zero */
    bits = sign;
  } else { /* subnormal half: normalise, it becomes a normal float */
    exp = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      exp--;
    }
    bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

static void halves_to_floats(const unsigned char *p, size_t count, float *out) {
  for (size_t i = 0; i < count; i++) {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    out[i] = dkm__half_to_float(h);
  }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
/* The F16C instruction converts 8 halves at once, exactly (subnormals
 * included, whatever MXCSR says): 4-5x the plain loop. It differs from it
 * only in quieting a signalling NaN, and rows with a NaN are rejected
 * anyway. */
__attribute__((target("avx,f16c"))) static void halves_to_floats_f16c(const unsigned char *p,
                                                                      size_t count, float *out) {
  size_t i = 0;
  for (; i + 8 <= count; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i))));
  halves_to_floats(p + 2 * i, count - i, out + i);
}

/* F16C is asked of CPUID itself: clang (14) knows no "f16c" for
 * __builtin_cpu_supports. "avx" still comes from the builtin, which also
 * checks that the system saves the YMM registers F16C writes. */
static int have_f16c(void) {
  static int cached = -1; /* a benign race: every thread computes the same */
  int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
  if (v < 0) {
    unsigned eax, ebx, ecx, edx;
    __builtin_cpu_init();
    v = __builtin_cpu_supports("avx") && __get_cpuid(1, &eax, &ebx, &ecx, &edx) &&
        (ecx & bit_F16C) != 0;
    __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
  }
  return v;
}
#endif

void dkm__convert_to_f32(dkm_dtype dtype, const void *src, size_t count, float *out) {
  const unsigned char *p = src;
  switch (dtype) {
  case DKM_DTYPE_F32:
    /* memmove: a file's big-endian float32 rows are converted in place. */
    memmove(out, src, count * sizeof(float));
    break;
  case DKM_DTYPE_F16:
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (have_f16c()) {
      halves_to_floats_f16c(p, count, out);
      break;
    }
#endif
    halves_to_floats(p, count, out);
    break;
  case DKM_DTYPE_F64:
    for (size_t i = 0; i < count; i++) {
      double d;
      memcpy(&d, p + 8 * i, 8);
      out[i] = (float)d;
    }
    break;
  case DKM_DTYPE_U8:
    for (size_t i = 0; i < count; i++)
      out[i] = (float)p[i];
    break;
  case DKM_DTYPE_I8:
    for (size_t i = 0; i < count; i++)
      out[i] = (float)(int8_t)p[i];
    break;
  }
}

void dkm__source_init(dkm_source *src, const dkm_source_methods *methods, dkm_ctx *ctx,
                      uint64_t rows, uint32_t dim, dkm_dtype dtype, dkm_format format,
                      const char *name) {
  src->methods = methods;
  src->rows = rows;
  src->dim = dim;
  src->flags = 0;
  src->dtype = dtype;
  src->format = format;
  src->bytes = rows * dim * dkm_dtype_size(dtype);
  src->name = name;
  src->ctx = ctx;
}

dkm_status dkm_source_read(dkm_ctx *ctx, dkm_source *src, uint64_t first, uint64_t count,
                           float *buf, const float **rows) {
  if (src == NULL || rows == NULL)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "source read: NULL argument");
  if (first > src->rows || count > src->rows - first)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "%s: rows %llu..%llu are out of range (%llu rows)",
                             src->name, (unsigned long long)first,
                             (unsigned long long)(first + count), (unsigned long long)src->rows);
  if (count == 0) {
    *rows = buf;
    return DKM_OK;
  }
  return src->methods->read(src, ctx, first, count, buf, rows);
}

void dkm_source_close(dkm_source *src) {
  if (src != NULL)
    src->methods->close(src);
}

/* --- the in-memory source ------------------------------------------------ */

typedef struct memory_source {
  dkm_source base;
  const unsigned char *data;
  size_t row_bytes;
} memory_source;

static dkm_status memory_read(dkm_source *self, dkm_ctx *ctx, uint64_t first, uint64_t count,
                              float *buf, const float **rows) {
  memory_source *m = (memory_source *)self;
  const unsigned char *start = m->data + first * m->row_bytes;
  if (self->dtype == DKM_DTYPE_F32 && ((uintptr_t)start % sizeof(float)) == 0) {
    *rows = (const float *)start; /* zero copy */
  } else {
    dkm__convert_to_f32(self->dtype, start, (size_t)count * self->dim, buf);
    *rows = buf;
  }
  return DKM_OK;
}

static void memory_close(dkm_source *self) {
  dkm__free(self->ctx, self);
}

static const dkm_source_methods memory_methods = {DKM_SOURCE_METHODS_VERSION, memory_read, NULL,
                                                  memory_close};

dkm_status dkm_source_from_memory(dkm_ctx *ctx, const void *data, dkm_dtype dtype, uint64_t rows,
                                  uint32_t dim, dkm_source **out) {
  dkm_ctx_clear_error(ctx);
  if (out == NULL)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "memory source: out is NULL");
  *out = NULL;
  size_t bytes;
  if (data == NULL)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "memory source: data is NULL");
  if (dkm_dtype_size(dtype) == 0)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "memory source: unknown dtype %d", (int)dtype);
  if (rows == 0)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "memory source: rows is 0");
  if (dim == 0)
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "memory source: dim is 0");
  if (!dkm__array_bytes(rows, dim, dkm_dtype_size(dtype), &bytes))
    return dkm_ctx_set_error(ctx, DKM_ERR_PARAM, "memory source: %llu rows of %u values overflow",
                             (unsigned long long)rows, dim);
  memory_source *m = dkm__alloc_or_fail(ctx, sizeof *m, "memory source");
  if (m == NULL)
    return DKM_ERR_NOMEM;
  dkm__source_init(&m->base, &memory_methods, ctx, rows, dim, dtype, DKM_FORMAT_MEMORY, "memory");
  m->data = data;
  m->row_bytes = (size_t)dim * dkm_dtype_size(dtype);
  m->base.bytes = bytes;
  if (dtype == DKM_DTYPE_F32 && ((uintptr_t)data % sizeof(float)) == 0)
    m->base.flags |= DKM_SOURCE_RESIDENT;
  *out = &m->base;
  return DKM_OK;
}
