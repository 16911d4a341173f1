/*
 * test_memory_source.c - the in-memory source converts every element type
 * to float32 correctly (f16 subnormals, infinities and NaN included), hands
 * out aligned float32 rows without a copy, and rejects bad arguments.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "source/source.h"
#include "test_support.h"

static void read_all(dkm_ctx *ctx, dkm_source *src, float *out) {
  const float *rows = NULL;
  assert_int_equal(dkm_source_read(ctx, src, 0, src->rows, out, &rows), DKM_OK);
  if (rows != out)
    memcpy(out, rows, (size_t)src->rows * src->dim * sizeof(float));
}

static void f32_is_zero_copy_and_resident(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  float x[6] = {1, 2, 3, 4, 5, 6};
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, 3, 2, &src), DKM_OK);
  assert_true(src->flags & DKM_SOURCE_RESIDENT);
  assert_int_equal(src->bytes, sizeof x);
  float buf[4];
  const float *rows = NULL;
  assert_int_equal(dkm_source_read(ctx, src, 1, 2, buf, &rows), DKM_OK);
  assert_ptr_equal(rows, x + 2);
  assert_int_equal(dkm_source_read(ctx, src, 2, 2, buf, &rows), DKM_ERR_PARAM);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

static void f16_converts_exactly(void **state) {
  (void)state;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  const uint16_t h[8] = {
      0x3c00, /* 1 */
      0xc000, /* -2 */
      0x0001, /* smallest subnormal 2^-24 */
      0x03ff, /* largest subnormal */
      0x7bff, /* 65504 */
      0x7c00, /* +inf */
      0xfc00, /* -inf */
      0x8000, /* -0 */
  };
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, h, DKM_DTYPE_F16, 2, 4, &src), DKM_OK);
  assert_false(src->flags & DKM_SOURCE_RESIDENT);
  float out[8];
  read_all(ctx, src, out);
  assert_true(out[0] == 1.0f);
  assert_true(out[1] == -2.0f);
  assert_true(out[2] == ldexpf(1.0f, -24));
  assert_true(out[3] == ldexpf(1023.0f, -24));
  assert_true(out[4] == 65504.0f);
  assert_true(isinf(out[5]) && out[5] > 0);
  assert_true(isinf(out[6]) && out[6] < 0);
  assert_true(out[7] == 0.0f && signbit(out[7]));
  dkm_source_close(src);
  const uint16_t nan_half = 0x7e00;
  assert_int_equal(dkm_source_from_memory(ctx, &nan_half, DKM_DTYPE_F16, 1, 1, &src), DKM_OK);
  read_all(ctx, src, out);
  assert_true(isnan(out[0]));
  dkm_source_close(src);
  dkm_ctx_free(ctx);
}

/* Every one of the 65,536 halves converts to the same float32 bits as the
 * plain bit-by-bit conversion (the F16C instruction, where the CPU has it,
 * does the bulk), NaNs to NaNs; read in runs of 13 so that every offset
 * within a vector of 8 and the tails are covered. */
static void f16_every_value_as_the_plain_conversion(void **state) {
  (void)state;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  uint16_t *h = malloc(65536 * sizeof *h);
  for (uint32_t i = 0; i < 65536; i++)
    h[i] = (uint16_t)i;
  dkm_source *src;
  assert_int_equal(dkm_source_from_memory(ctx, h, DKM_DTYPE_F16, 65536 / 16, 16, &src), DKM_OK);
  float out[13 * 16];
  for (uint64_t first = 0; first < src->rows; first += 13) {
    uint64_t count = first + 13 <= src->rows ? 13 : src->rows - first;
    const float *rows = NULL;
    assert_int_equal(dkm_source_read(ctx, src, first, count, out, &rows), DKM_OK);
    for (uint64_t i = 0; i < count * 16; i++) {
      uint16_t v = h[first * 16 + i];
      float want = dkm__half_to_float(v);
      if (isnan(want)) {
        assert_true(isnan(rows[i]));
        continue;
      }
      if (memcmp(&want, &rows[i], sizeof want) != 0)
        fail_msg("half 0x%04x: %a, expected %a", v, (double)rows[i], (double)want);
    }
  }
  dkm_source_close(src);
  free(h);
  dkm_ctx_free(ctx);
}

static void f64_u8_i8_convert(void **state) {
  (void)state;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_source *src;
  float out[4];
  const double d[4] = {0.1, -1e300, 3.0, 1.0000000001};
  assert_int_equal(dkm_source_from_memory(ctx, d, DKM_DTYPE_F64, 2, 2, &src), DKM_OK);
  read_all(ctx, src, out);
  assert_true(out[0] == 0.1f); /* rounded to nearest */
  assert_true(isinf(out[1]) && out[1] < 0);
  assert_true(out[2] == 3.0f);
  assert_true(out[3] == 1.0f);
  dkm_source_close(src);
  const uint8_t u[4] = {0, 1, 128, 255};
  assert_int_equal(dkm_source_from_memory(ctx, u, DKM_DTYPE_U8, 4, 1, &src), DKM_OK);
  read_all(ctx, src, out);
  assert_true(out[0] == 0 && out[1] == 1 && out[2] == 128 && out[3] == 255);
  dkm_source_close(src);
  const int8_t i[4] = {0, -1, -128, 127};
  assert_int_equal(dkm_source_from_memory(ctx, i, DKM_DTYPE_I8, 1, 4, &src), DKM_OK);
  read_all(ctx, src, out);
  assert_true(out[0] == 0 && out[1] == -1 && out[2] == -128 && out[3] == 127);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
}

static void training_on_u8_equals_training_on_its_f32(void **state) {
  (void)state;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  enum { N = 600, D = 5 };
  static uint8_t u[N * D];
  static float f[N * D];
  uint64_t st = 3;
  for (int i = 0; i < N * D; i++) {
    u[i] = (uint8_t)(dkm_test_rand(&st) & 0xff);
    f[i] = (float)u[i];
  }
  dkm_source *su, *sf;
  assert_int_equal(dkm_source_from_memory(ctx, u, DKM_DTYPE_U8, N, D, &su), DKM_OK);
  assert_int_equal(dkm_source_from_memory(ctx, f, DKM_DTYPE_F32, N, D, &sf), DKM_OK);
  dkm_params p;
  dkm_params_init(&p);
  p.k = 7;
  p.n_threads = 2;
  dkm_result *ru, *rf;
  assert_int_equal(dkm_train(ctx, &p, su, &ru), DKM_OK);
  assert_int_equal(dkm_train(ctx, &p, sf, &rf), DKM_OK);
  assert_memory_equal(ru->centroids, rf->centroids, sizeof(float) * 7 * D);
  dkm_result_free(ru);
  dkm_result_free(rf);
  dkm_source_close(su);
  dkm_source_close(sf);
  dkm_ctx_free(ctx);
}

static void bad_arguments_are_rejected(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  float x[4] = {0};
  dkm_source *src = (dkm_source *)x;
  assert_int_equal(dkm_source_from_memory(ctx, NULL, DKM_DTYPE_F32, 1, 1, &src), DKM_ERR_PARAM);
  assert_null(src);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "data"));
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, 0, 1, &src), DKM_ERR_PARAM);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "rows"));
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, 1, 0, &src), DKM_ERR_PARAM);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "dim"));
  assert_int_equal(dkm_source_from_memory(ctx, x, (dkm_dtype)42, 1, 1, &src), DKM_ERR_PARAM);
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, UINT64_MAX / 2, 4, &src),
                   DKM_ERR_PARAM);
  assert_non_null(strstr(dkm_ctx_errmsg(ctx), "overflow"));
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, 1, 1, NULL), DKM_ERR_PARAM);
  a.fail_at = a.count + 1;
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, 1, 1, &src), DKM_ERR_NOMEM);
  assert_null(src);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(f32_is_zero_copy_and_resident),
      cmocka_unit_test(f16_converts_exactly),
      cmocka_unit_test(f16_every_value_as_the_plain_conversion),
      cmocka_unit_test(f64_u8_i8_convert),
      cmocka_unit_test(training_on_u8_equals_training_on_its_f32),
      cmocka_unit_test(bad_arguments_are_rejected),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
