/*
 * test_source_concat.c - dkm_source_concat(): a source made of sources reads
 * any global range from the parts that hold it (across parts too), forwards
 * read-ahead hints, says what its parts are (dtype, format, flags, bytes),
 * rejects parts that do not fit together naming them, always takes the parts
 * (closing them on failure), leaks nothing when any allocation fails, and
 * trains and assigns exactly as one source holding the same rows.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source/source.h"
#include "test_support.h"

/* A part that records what is done to it: its reads (out of order ones
 * counted), its read-ahead hints, its closing; it converts into the
 * caller's buffer like a file would and can fail at a chosen row. */
typedef struct probe {
  dkm_source base;
  const float *data;
  uint64_t next;     /* end of the last read */
  int out_of_order;  /* reads that started before the end of the last one */
  int *closed;       /* incremented on close (shared by a test's parts) */
  uint64_t fail_row; /* a read covering it fails; UINT64_MAX: never */
  uint64_t hint_first, hint_count;
  int hints;
} probe;

static dkm_status probe_read(dkm_source *self, dkm_ctx *ctx, uint64_t first, uint64_t count,
                             float *buf, const float **rows) {
  probe *p = (probe *)self;
  assert_true(first + count <= self->rows);
  if (first < p->next)
    p->out_of_order++;
  p->next = first + count;
  if (p->fail_row >= first && p->fail_row < first + count)
    return dkm_ctx_set_error(ctx, DKM_ERR_IO, "%s: cannot read row %llu", self->name,
                             (unsigned long long)p->fail_row);
  memcpy(buf, p->data + first * self->dim, sizeof(float) * count * self->dim);
  *rows = buf;
  return DKM_OK;
}

static void probe_will_need(dkm_source *self, uint64_t first, uint64_t count) {
  probe *p = (probe *)self;
  assert_true(count >= 1 && first + count <= self->rows);
  p->hint_first = first;
  p->hint_count = count;
  p->hints++;
}

static void probe_close(dkm_source *self) {
  probe *p = (probe *)self;
  (*p->closed)++;
  free(p);
}

static const dkm_source_methods probe_methods = {DKM_SOURCE_METHODS_VERSION, probe_read,
                                                 probe_will_need, probe_close};

/* A probe over rows x dim floats at data (borrowed), named name. */
static probe *probe_new(const float *data, uint64_t rows, uint32_t dim, const char *name,
                        uint32_t flags, int *closed) {
  probe *p = calloc(1, sizeof *p);
  assert_non_null(p);
  p->base.methods = &probe_methods;
  p->base.rows = rows;
  p->base.dim = dim;
  p->base.flags = flags;
  p->base.dtype = DKM_DTYPE_F32;
  p->base.format = DKM_FORMAT_RAW;
  p->base.bytes = rows * dim * sizeof(float);
  p->base.name = name;
  p->data = data;
  p->closed = closed;
  p->fail_row = UINT64_MAX;
  return p;
}

static float value(uint64_t row, uint32_t col) {
  return (float)(row * 10 + col); /* small integers: exact in every dtype */
}

/* Every global range [first, first + count) of three parts (5, 1 and 7 rows
 * of 3 values: f32 in memory, zero copy; u8 in memory; f64 in memory) reads
 * the rows of one array holding them all, zero copy kept within the f32
 * part. */
static void every_range_reads_the_rows_of_the_whole(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  enum { D = 3, N0 = 5, N1 = 1, N2 = 7, N = N0 + N1 + N2 };
  float whole[N * D];
  for (uint64_t r = 0; r < N; r++)
    for (uint32_t j = 0; j < D; j++)
      whole[r * D + j] = value(r, j);
  uint8_t p1[N1 * D];
  double p2[N2 * D];
  for (int i = 0; i < N1 * D; i++)
    p1[i] = (uint8_t)whole[N0 * D + i];
  for (int i = 0; i < N2 * D; i++)
    p2[i] = whole[(N0 + N1) * D + i];
  dkm_source *parts[3];
  assert_int_equal(dkm_source_from_memory(ctx, whole, DKM_DTYPE_F32, N0, D, &parts[0]), DKM_OK);
  assert_int_equal(dkm_source_from_memory(ctx, p1, DKM_DTYPE_U8, N1, D, &parts[1]), DKM_OK);
  assert_int_equal(dkm_source_from_memory(ctx, p2, DKM_DTYPE_F64, N2, D, &parts[2]), DKM_OK);
  dkm_source *src = NULL;
  assert_int_equal(dkm_source_concat(ctx, parts, 3, &src), DKM_OK);
  assert_int_equal(src->rows, N);
  assert_int_equal(src->dim, D);
  float buf[N * D];
  for (uint64_t first = 0; first < N; first++) {
    for (uint64_t count = 1; first + count <= N; count++) {
      const float *rows = NULL;
      memset(buf, 0xff, sizeof buf);
      assert_int_equal(dkm_source_read(ctx, src, first, count, buf, &rows), DKM_OK);
      assert_memory_equal(rows, whole + first * D, sizeof(float) * count * D);
      if (first + count <= N0)
        assert_ptr_equal(rows, whole + first * D); /* the f32 part's zero copy */
    }
  }
  const float *rows;
  assert_int_equal(dkm_source_read(ctx, src, N - 1, 2, buf, &rows), DKM_ERR_PARAM);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

/* dtype, format, flags, bytes and name say what the parts are. */
static void fields_describe_the_parts(void **state) {
  (void)state;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  float x[8] = {0};
  uint8_t u[8] = {0};
  int closed = 0;
  dkm_source *parts[3], *src;

  /* All f32 in memory: f32, memory, resident. */
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, 4, 2, &parts[0]), DKM_OK);
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, 2, 2, &parts[1]), DKM_OK);
  assert_int_equal(dkm_source_concat(ctx, parts, 2, &src), DKM_OK);
  assert_int_equal(src->dtype, DKM_DTYPE_F32);
  assert_int_equal(src->format, DKM_FORMAT_MEMORY);
  assert_int_equal(src->flags, DKM_SOURCE_RESIDENT);
  assert_int_equal(src->bytes, 6 * 2 * sizeof(float));
  assert_string_equal(src->name, "memory ... memory (2 parts)");
  dkm_source_close(src);

  /* u8 and u8: u8. One of them not resident: not resident. */
  assert_int_equal(dkm_source_from_memory(ctx, u, DKM_DTYPE_U8, 4, 2, &parts[0]), DKM_OK);
  assert_int_equal(dkm_source_from_memory(ctx, u, DKM_DTYPE_U8, 4, 2, &parts[1]), DKM_OK);
  assert_int_equal(dkm_source_concat(ctx, parts, 2, &src), DKM_OK);
  assert_int_equal(src->dtype, DKM_DTYPE_U8);
  assert_int_equal(src->flags, 0);
  assert_int_equal(src->bytes, 16);
  dkm_source_close(src);

  /* u8, f32 (resident) and a sequential raw file: mixed dtype (f32), mixed
   * format, sequential, not resident. */
  assert_int_equal(dkm_source_from_memory(ctx, u, DKM_DTYPE_U8, 4, 2, &parts[0]), DKM_OK);
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, 4, 2, &parts[1]), DKM_OK);
  parts[2] = &probe_new(x, 4, 2, "c.raw", DKM_SOURCE_SEQUENTIAL, &closed)->base;
  parts[0]->name = "a.npy";
  assert_int_equal(dkm_source_concat(ctx, parts, 3, &src), DKM_OK);
  assert_int_equal(src->dtype, DKM_DTYPE_F32);
  assert_int_equal(src->format, DKM_FORMAT_MIXED);
  assert_string_equal(dkm_format_name(src->format), "mixed");
  assert_int_equal(src->flags, DKM_SOURCE_SEQUENTIAL);
  assert_string_equal(src->name, "a.npy ... c.raw (3 parts)");
  assert_int_equal(src->rows, 12);
  dkm_source_close(src);
  assert_int_equal(closed, 1);

  /* One part is the whole: the part itself. */
  assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, 4, 2, &parts[0]), DKM_OK);
  dkm_source *only = parts[0];
  assert_int_equal(dkm_source_concat(ctx, parts, 1, &src), DKM_OK);
  assert_ptr_equal(src, only);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
}

/* Reads across parts reach every part in increasing order (a sequential
 * part may rely on it), and a hint is forwarded to the parts it covers, in
 * their own row numbers. */
static void reads_go_in_order_and_hints_reach_the_parts(void **state) {
  (void)state;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  float x[40 * 2];
  for (int i = 0; i < 80; i++)
    x[i] = (float)i;
  int closed = 0;
  probe *p[3] = {probe_new(x, 10, 2, "a", DKM_SOURCE_SEQUENTIAL, &closed),
                 probe_new(x + 20, 20, 2, "b", DKM_SOURCE_SEQUENTIAL, &closed),
                 probe_new(x + 60, 10, 2, "c", DKM_SOURCE_SEQUENTIAL, &closed)};
  dkm_source *parts[3] = {&p[0]->base, &p[1]->base, &p[2]->base};
  dkm_source *src;
  assert_int_equal(dkm_source_concat(ctx, parts, 3, &src), DKM_OK);
  float buf[80];
  const float *rows;
  for (uint64_t first = 0; first < 40; first += 7) {
    uint64_t n = first + 7 <= 40 ? 7 : 40 - first;
    assert_int_equal(dkm_source_read(ctx, src, first, n, buf, &rows), DKM_OK);
    assert_memory_equal(rows, x + first * 2, sizeof(float) * n * 2);
  }
  for (int i = 0; i < 3; i++)
    assert_int_equal(p[i]->out_of_order, 0);
  src->methods->will_need(src, 8, 25); /* rows 8..32: a 8..9, b 0..19, c 0..2 */
  assert_int_equal(p[0]->hint_first, 8);
  assert_int_equal(p[0]->hint_count, 2);
  assert_int_equal(p[1]->hint_first, 0);
  assert_int_equal(p[1]->hint_count, 20);
  assert_int_equal(p[2]->hint_first, 0);
  assert_int_equal(p[2]->hint_count, 3);
  src->methods->will_need(src, 39, 100); /* clipped to the end */
  assert_int_equal(p[2]->hint_first, 9);
  assert_int_equal(p[2]->hint_count, 1);
  src->methods->will_need(src, 40, 5); /* beyond the end: nothing */
  assert_int_equal(p[2]->hints, 2);
  dkm_source_close(src);
  assert_int_equal(closed, 3);
  dkm_ctx_free(ctx);
}

/* A failing read of a part is reported as the part reported it. */
static void a_failing_part_names_itself(void **state) {
  (void)state;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  float x[20] = {0};
  int closed = 0;
  probe *b = probe_new(x, 5, 2, "b.fvecs", 0, &closed);
  b->fail_row = 3;
  dkm_source *parts[2] = {&probe_new(x, 5, 2, "a.npy", 0, &closed)->base, &b->base};
  dkm_source *src;
  assert_int_equal(dkm_source_concat(ctx, parts, 2, &src), DKM_OK);
  float buf[20];
  const float *rows;
  assert_int_equal(dkm_source_read(ctx, src, 0, 5, buf, &rows), DKM_OK);
  assert_int_equal(dkm_source_read(ctx, src, 4, 5, buf, &rows), DKM_ERR_IO);
  assert_string_equal(dkm_ctx_errmsg(ctx), "b.fvecs: cannot read row 3");
  dkm_source_close(src);
  dkm_ctx_free(ctx);
}

/* Each bad set of parts fails with a message naming the part (both, for a
 * dimension mismatch), *out NULL, and every part closed. */
static void bad_parts_are_rejected_and_closed(void **state) {
  (void)state;
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  float x[64] = {0};
  int closed = 0;
  dkm_source *parts[3], *src;

#define EXPECT_FAIL(n, status, text)                                                               \
  do {                                                                                             \
    closed = 0;                                                                                    \
    src = (dkm_source *)1;                                                                         \
    assert_int_equal(dkm_source_concat(ctx, parts, n, &src), status);                              \
    assert_null(src);                                                                              \
    if (strstr(dkm_ctx_errmsg(ctx), text) == NULL)                                                 \
      fail_msg("expected '%s' in '%s'", text, dkm_ctx_errmsg(ctx));                                \
  } while (0)

  parts[0] = &probe_new(x, 4, 3, "a.npy", 0, &closed)->base;
  parts[1] = &probe_new(x, 4, 3, "b.npy", 0, &closed)->base;
  parts[2] = &probe_new(x, 4, 5, "c.fvecs", 0, &closed)->base;
  EXPECT_FAIL(3, DKM_ERR_FORMAT, "c.fvecs has 5 values per row but a.npy has 3");
  assert_int_equal(closed, 3);

  parts[0] = &probe_new(x, 4, 3, "a.npy", 0, &closed)->base;
  parts[1] = &probe_new(x, 0, 3, "empty.npy", 0, &closed)->base;
  parts[2] = &probe_new(x, 4, 3, "c.npy", 0, &closed)->base;
  EXPECT_FAIL(3, DKM_ERR_FORMAT, "empty.npy: no rows");
  assert_int_equal(closed, 3);

  parts[0] = &probe_new(x, UINT64_MAX / 2 + 1, 3, "a.npy", 0, &closed)->base;
  parts[1] = &probe_new(x, 4, 3, "b.npy", 0, &closed)->base;
  parts[2] = &probe_new(x, UINT64_MAX / 2, 3, "c.npy", 0, &closed)->base;
  EXPECT_FAIL(3, DKM_ERR_FORMAT, "c.npy: the parts up to this one hold more than 2^64 - 1 rows");
  assert_int_equal(closed, 3);

  parts[0] = &probe_new(x, 4, 3, "a.npy", 0, &closed)->base;
  parts[1] = NULL;
  parts[2] = &probe_new(x, 4, 3, "c.npy", 0, &closed)->base;
  EXPECT_FAIL(3, DKM_ERR_PARAM, "part 1 is NULL");
  assert_int_equal(closed, 2);

  EXPECT_FAIL(0, DKM_ERR_PARAM, "no parts");
  assert_int_equal(dkm_source_concat(ctx, NULL, 2, &src), DKM_ERR_PARAM);
  assert_null(src);

  parts[0] = &probe_new(x, 4, 3, "a.npy", 0, &closed)->base;
  parts[1] = &probe_new(x, 4, 3, "b.npy", 0, &closed)->base;
  closed = 0;
  assert_int_equal(dkm_source_concat(ctx, parts, 2, NULL), DKM_ERR_PARAM);
  assert_int_equal(closed, 2);
#undef EXPECT_FAIL
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
}

/* Whichever allocation fails, in opening the parts, joining them or
 * reading, the call fails with DKM_ERR_NOMEM and nothing is leaked; the
 * parts are closed by the failed join. */
static void any_failed_allocation_leaks_nothing(void **state) {
  (void)state;
  float x[6 * 2];
  uint8_t u[6 * 2];
  for (int i = 0; i < 12; i++) {
    x[i] = (float)i;
    u[i] = (uint8_t)i;
  }
  for (long fail_at = 1;; fail_at++) {
    dkm_test_alloc a = {0};
    a.fail_at = fail_at;
    dkm_ctx *ctx = dkm_test_ctx(&a);
    if (ctx == NULL)
      continue;
    dkm_source *parts[3] = {NULL, NULL, NULL}, *src = NULL;
    dkm_status st = dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, 6, 2, &parts[0]);
    if (st == DKM_OK)
      st = dkm_source_from_memory(ctx, u, DKM_DTYPE_U8, 6, 2, &parts[1]);
    if (st == DKM_OK)
      st = dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, 3, 2, &parts[2]);
    if (st == DKM_OK) {
      st = dkm_source_concat(ctx, parts, 3, &src);
      if (st != DKM_OK)
        assert_null(src);
    } else {
      for (int i = 0; i < 3; i++)
        dkm_source_close(parts[i]);
    }
    if (st == DKM_OK) {
      float buf[15 * 2];
      const float *rows;
      st = dkm_source_read(ctx, src, 4, 7, buf, &rows);
      dkm_source_close(src);
    }
    if (st != DKM_OK && st != DKM_ERR_NOMEM)
      fail_msg("fail_at %ld: %s: %s", fail_at, dkm_status_name(st), dkm_ctx_errmsg(ctx));
    long failures = a.failures;
    dkm_ctx_free(ctx);
    assert_int_equal(a.live, 0);
    if (failures == 0) {
      assert_int_equal(st, DKM_OK);
      break;
    }
    assert_true(fail_at < 100);
  }
}

/* The same rows, whole or in parts of mixed dtypes (u8 values: exact in
 * each), give the same training bit for bit, sample and all, in memory and
 * on disk, whole input or a subsample; and the same labels. */
enum { N = 3000, D = 8, K = 12 };

static void training_on_parts_equals_training_on_the_whole(void **state) {
  (void)state;
  char *dir = dkm_test_mkdtemp("concat-train");
  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  float *x = dkm_test_blobs(N, D, K, 3.0, 77, NULL);
  /* Rounded into 0..255 so that u8 and f64 copies hold the same values. */
  float lo = x[0], hi = x[0];
  for (size_t i = 0; i < (size_t)N * D; i++) {
    lo = fminf(lo, x[i]);
    hi = fmaxf(hi, x[i]);
  }
  uint8_t *u = malloc((size_t)N * D);
  double *f = malloc(sizeof(double) * N * D);
  for (size_t i = 0; i < (size_t)N * D; i++) {
    x[i] = roundf((x[i] - lo) / (hi - lo) * 255.0f);
    u[i] = (uint8_t)x[i];
    f[i] = x[i];
  }
  /* Cut at rows 1000, 1001 (a one-row part) and 2100. */
  const uint64_t cut[5] = {0, 1000, 1001, 2100, N};
  dkm_params p;
  dkm_params_init(&p);
  p.k = K;
  p.tmp_dir = dir;
  p.block_rows = 700; /* blocks across the cuts */
  int32_t *la = malloc(sizeof(int32_t) * N), *lb = malloc(sizeof(int32_t) * N);
  /* Modes 0-3: mixed dtypes, whole input or a subsample; 4-5: float32
   * parts only, resident like one array, so memory mode trains on them in
   * place. */
  for (int mode = 0; mode < 6; mode++) {
    int all_f32 = mode >= 4;
    p.storage = mode % 2 == 0 ? DKM_STORAGE_MEMORY : DKM_STORAGE_DISK;
    p.max_points_per_centroid = mode == 2 || mode == 3 ? 100 : 0;
    dkm_result *whole = dkm_test_train_rows(ctx, &p, x, N, D);
    dkm_source *parts[4];
    for (int i = 0; i < 4; i++) {
      uint64_t r0 = cut[i], n = cut[i + 1] - cut[i];
      dkm_status st = i == 1 && !all_f32
                          ? dkm_source_from_memory(ctx, u + r0 * D, DKM_DTYPE_U8, n, D, &parts[i])
                      : i == 2 && !all_f32
                          ? dkm_source_from_memory(ctx, f + r0 * D, DKM_DTYPE_F64, n, D, &parts[i])
                          : dkm_source_from_memory(ctx, x + r0 * D, DKM_DTYPE_F32, n, D, &parts[i]);
      assert_int_equal(st, DKM_OK);
    }
    dkm_source *src;
    assert_int_equal(dkm_source_concat(ctx, parts, 4, &src), DKM_OK);
    dkm_result *joined = dkm_test_train(ctx, &p, src);
    dkm_test_assert_same_result(whole, joined, "parts vs whole");
    if (all_f32)
      assert_int_equal(joined->from_source, whole->from_source);
    assert_int_equal((src->flags & DKM_SOURCE_RESIDENT) != 0, all_f32);
    dkm_source *mem;
    assert_int_equal(dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, N, D, &mem), DKM_OK);
    assert_int_equal(dkm_assign(ctx, &p, mem, whole->centroids, K, D, la, NULL), DKM_OK);
    assert_int_equal(dkm_assign(ctx, &p, src, whole->centroids, K, D, lb, NULL), DKM_OK);
    assert_memory_equal(la, lb, sizeof(int32_t) * N);
    dkm_source_close(mem);
    dkm_source_close(src);
    dkm_result_free(whole);
    dkm_result_free(joined);
  }
  free(la);
  free(lb);
  free(x);
  free(u);
  free(f);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  dkm_test_rmtree(dir);
  free(dir);
}

/* A row that training or assignment rejects is named by the part it is in
 * and its row there, through concatenations of concatenations too. */
static void a_bad_row_is_named_by_its_part(void **state) {
  (void)state;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  float *x = dkm_test_blobs(300, 4, 3, 1.0, 5, NULL);
  x[(250 + 7) * 4 + 2] = NAN; /* row 7 of the part starting at 250 */
  int closed = 0;
  dkm_source *inner[2] = {&probe_new(x + 100 * 4, 150, 4, "b.npy", 0, &closed)->base,
                          &probe_new(x + 250 * 4, 50, 4, "c.fvecs", 0, &closed)->base};
  dkm_source *parts[2] = {&probe_new(x, 100, 4, "a.npy", 0, &closed)->base, NULL};
  assert_int_equal(dkm_source_concat(ctx, inner, 2, &parts[1]), DKM_OK);
  dkm_source *src;
  assert_int_equal(dkm_source_concat(ctx, parts, 2, &src), DKM_OK);
  dkm_params p;
  dkm_params_init(&p);
  p.k = 3;
  dkm_result *r = NULL;
  assert_int_equal(dkm_train(ctx, &p, src, &r), DKM_ERR_DATA);
  assert_string_equal(dkm_ctx_errmsg(ctx), "c.fvecs: row 7 has a NaN in column 2");
  float c[12] = {0};
  int32_t labels[300];
  assert_int_equal(dkm_assign(ctx, &p, src, c, 3, 4, labels, NULL), DKM_ERR_DATA);
  assert_string_equal(dkm_ctx_errmsg(ctx), "c.fvecs: row 7 has a NaN in column 2");
  dkm_source_close(src);
  assert_int_equal(closed, 3);
  free(x);
  dkm_ctx_free(ctx);
}

/* --- open file parts -------------------------------------------------------- */

/* A half's value, decoded here independently of the library. */
static float half_value(uint16_t h) {
  int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  double v = exp == 0 ? ldexp(mant, -24) : ldexp(1024 + mant, exp - 25);
  return (float)((h & 0x8000) ? -v : v);
}

/* Writes a .npy file of rows x dim values of type descr (data: rows * dim
 * values of size elem). */
static void write_npy(const char *path, const char *descr, const void *data, uint64_t rows,
                      uint32_t dim, size_t elem) {
  char dict[128];
  int len =
      snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%llu, %u), }",
               descr, (unsigned long long)rows, dim);
  size_t total = (10 + (size_t)len + 1 + 63) / 64 * 64;
  unsigned char head[192];
  assert_true(total <= sizeof head);
  memcpy(head, "\x93NUMPY\x01\x00", 8);
  head[8] = (unsigned char)((total - 10) & 0xff);
  head[9] = (unsigned char)((total - 10) >> 8);
  memcpy(head + 10, dict, (size_t)len);
  memset(head + 10 + len, ' ', total - 10 - (size_t)len - 1);
  head[total - 1] = '\n';
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(head, 1, total, fp), total);
  assert_int_equal(fwrite(data, elem, (size_t)(rows * dim), fp), rows * dim);
  assert_int_equal(fclose(fp), 0);
}

/* 64 open file parts whose rows are not plain float32 (u8, f16 and f64
 * .npy, .bvecs; each part stores well over 128 KiB) hold far less than a
 * read buffer of that size each, before and after reads, and every read
 * (ranges of odd sizes, across parts, into a buffer of exactly the rows
 * asked for) gives the float32 values of the rows bit for bit. */
static void open_file_parts_hold_no_read_buffer_each(void **state) {
  (void)state;
  enum { PARTS = 64, DIM = 37 };
  char *dir = dkm_test_mkdtemp("concat-shards");
  uint64_t rows_of[PARTS], total = 0;
  for (int i = 0; i < PARTS; i++) {
    /* ~160 KiB stored per part: u8, f16, f64, bvecs in turn. */
    static const uint64_t base[4] = {4500, 2250, 560, 4100};
    rows_of[i] = base[i % 4] + (uint64_t)i;
    total += rows_of[i];
  }
  float *want = malloc(sizeof(float) * total * DIM);
  assert_non_null(want);
  uint64_t seed = 12, at = 0;
  char paths[PARTS][512];
  for (int i = 0; i < PARTS; i++) {
    size_t n = (size_t)rows_of[i] * DIM;
    float *w = want + at * DIM;
    int kind = i % 4;
    snprintf(paths[i], sizeof paths[i], "%s/part%02d.%s", dir, i, kind == 3 ? "bvecs" : "npy");
    if (kind == 0 || kind == 3) {
      uint8_t *u = malloc(n);
      for (size_t e = 0; e < n; e++) {
        u[e] = (uint8_t)dkm_test_rand(&seed);
        w[e] = (float)u[e];
      }
      if (kind == 0) {
        write_npy(paths[i], "|u1", u, rows_of[i], DIM, 1);
      } else {
        FILE *fp = fopen(paths[i], "wb");
        assert_non_null(fp);
        for (uint64_t r = 0; r < rows_of[i]; r++) {
          const unsigned char d[4] = {DIM, 0, 0, 0};
          assert_int_equal(fwrite(d, 1, 4, fp), 4);
          assert_int_equal(fwrite(u + r * DIM, 1, DIM, fp), DIM);
        }
        assert_int_equal(fclose(fp), 0);
      }
      free(u);
    } else if (kind == 1) {
      uint16_t *h = malloc(2 * n);
      for (size_t e = 0; e < n; e++) {
        uint16_t v = (uint16_t)dkm_test_rand(&seed);
        if (((v >> 10) & 0x1f) == 0x1f)
          v &= 0xbfff; /* no infinity or NaN; subnormals kept */
        h[e] = v;
        w[e] = half_value(v);
      }
      write_npy(paths[i], "<f2", h, rows_of[i], DIM, 2);
      free(h);
    } else {
      double *f = malloc(8 * n);
      for (size_t e = 0; e < n; e++) {
        f[e] = dkm_test_normal(&seed) * 1000.0;
        w[e] = (float)f[e];
      }
      write_npy(paths[i], "<f8", f, rows_of[i], DIM, 8);
      free(f);
    }
    at += rows_of[i];
  }

  dkm_test_alloc a = {0};
  dkm_ctx *ctx = dkm_test_ctx(&a);
  long long before = a.bytes;
  dkm_source *parts[PARTS];
  for (int i = 0; i < PARTS; i++)
    assert_int_equal(dkm_source_open_file(ctx, paths[i], NULL, &parts[i]), DKM_OK);
  dkm_source *src;
  assert_int_equal(dkm_source_concat(ctx, parts, PARTS, &src), DKM_OK);
  assert_int_equal(src->rows, total);
  assert_true((a.bytes - before) / PARTS < 128 * 1024);

  /* Every row once, in reads of 3001 rows (odd, across parts), then ranges
   * of random odd sizes anywhere. */
  uint64_t step = 3001;
  for (int round = 0; round < 2; round++) {
    for (uint64_t first = 0, k = 0; first < total; k++) {
      uint64_t count =
          round == 0 ? DKM__MIN(step, total - first) : 1 + 2 * (dkm_test_rand(&seed) % 4000);
      if (round == 1) {
        if (k == 40)
          break;
        first = dkm_test_rand(&seed) % total;
        count = DKM__MIN(count, total - first);
      }
      float *buf = malloc(sizeof(float) * count * DIM); /* exactly: ASan sees any overrun */
      const float *rows = NULL;
      dkm_status st = dkm_source_read(ctx, src, first, count, buf, &rows);
      if (st != DKM_OK)
        fail_msg("%s", dkm_ctx_errmsg(ctx));
      assert_memory_equal(rows, want + first * DIM, sizeof(float) * count * DIM);
      free(buf);
      if (round == 0)
        first += count;
    }
  }
  assert_true((a.bytes - before) / PARTS < 128 * 1024);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  assert_int_equal(a.live, 0);
  free(want);
  dkm_test_rmtree(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_range_reads_the_rows_of_the_whole),
      cmocka_unit_test(fields_describe_the_parts),
      cmocka_unit_test(reads_go_in_order_and_hints_reach_the_parts),
      cmocka_unit_test(a_failing_part_names_itself),
      cmocka_unit_test(bad_parts_are_rejected_and_closed),
      cmocka_unit_test(any_failed_allocation_leaks_nothing),
      cmocka_unit_test(training_on_parts_equals_training_on_the_whole),
      cmocka_unit_test(a_bad_row_is_named_by_its_part),
      cmocka_unit_test(open_file_parts_hold_no_read_buffer_each),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
