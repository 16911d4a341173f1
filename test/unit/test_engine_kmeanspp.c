/*
 * test_engine_kmeanspp.c - k-means++ draws its centres with exactly the
 * probabilities of the textbook algorithm, although it brings the rows'
 * distances up to date only in batches (see src/engine/kmeanspp.c); it ends
 * on data where every row sits on a centre; and greedy k-means++ keeps its
 * better starts.
 *
 * The initial centroids are observed through iteration 0's objective: it is
 * the potential of the initial centroids (the assignment comes before the
 * update), exact here because the rows are small integers.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

/* Seven points in the plane, placed so that every set of three centres has
 * its own potential (on a line, two neighbours that are nobody else's
 * nearest would tie). */
enum { N_POINTS = 7, N_SETS = 35, N_TRIALS = 6000 };
static const float points[N_POINTS][2] = {{9, 11}, {28, 8},  {5, 19}, {14, 21},
                                          {4, 4},  {10, 16}, {11, 19}};

/* Squared distance of point x to the nearest point of the set (bit mask). */
static double dist_to_set(int x, unsigned set) {
  double best = INFINITY;
  for (int c = 0; c < N_POINTS; c++)
    if (set & (1u << c)) {
      double dx = points[x][0] - points[c][0], dy = points[x][1] - points[c][1];
      double d = dx * dx + dy * dy;
      best = d < best ? d : best;
    }
  return best;
}

static double potential(unsigned set) {
  double sum = 0;
  for (int x = 0; x < N_POINTS; x++)
    sum += dist_to_set(x, set);
  return sum;
}

/* The textbook probability of ending with the centres of set (3 bits):
 * the sum over the orders a, b, c of 1/n * D_a(b) / phi_a * D_ab(c) / phi_ab. */
static double textbook_probability(unsigned set) {
  double p = 0;
  for (int a = 0; a < N_POINTS; a++)
    for (int b = 0; b < N_POINTS; b++)
      for (int c = 0; c < N_POINTS; c++) {
        unsigned sa = 1u << a, sab = sa | 1u << b;
        if ((sab | 1u << c) != set || b == a || c == a || c == b)
          continue;
        p += 1.0 / N_POINTS * dist_to_set(b, sa) / potential(sa) * dist_to_set(c, sab) /
             potential(sab);
      }
  return p;
}

static void draws_follow_the_textbook_probabilities(void **state) {
  (void)state;
  double phi[N_SETS], expected[N_SETS];
  int n = 0;
  for (unsigned s = 0; s < 1u << N_POINTS; s++)
    if (__builtin_popcount(s) == 3) {
      phi[n] = potential(s);
      expected[n] = textbook_probability(s);
      n++;
    }
  assert_int_equal(n, N_SETS);
  double total = 0;
  for (int i = 0; i < N_SETS; i++) {
    total += expected[i];
    for (int j = 0; j < i; j++)
      assert_true(phi[i] != phi[j]); /* the objective tells the set */
  }
  assert_true(fabs(total - 1) < 1e-12);

  dkm_test_alloc alloc = {0};
  dkm_ctx *ctx = dkm_test_ctx(&alloc);
  dkm_params p;
  dkm_params_init(&p);
  p.k = 3;
  p.init = DKM_INIT_KMEANSPP;
  p.max_iter = 1;
  p.n_threads = 1;
  unsigned observed[N_SETS] = {0};
  for (int trial = 0; trial < N_TRIALS; trial++) {
    p.seed = 1000 + (uint64_t)trial;
    dkm_result *r = dkm_test_train_rows(ctx, &p, &points[0][0], N_POINTS, 2);
    int found = -1;
    for (int i = 0; i < N_SETS; i++)
      if (r->iters[0].objective == phi[i])
        found = i;
    assert_true(found >= 0);
    observed[found]++;
    dkm_result_free(r);
  }
  dkm_ctx_free(ctx);
  assert_int_equal(alloc.live, 0);

  /* Pearson's chi-square over the sets expected at least 5 times, the rest
   * pooled in one cell. With about 25 degrees of freedom, 70 is far out in
   * the tail (p < 1e-5) for the right distribution, while drawing by the
   * stale distances (accepting every proposal) scores in the hundreds. */
  double chi2 = 0, pooled_e = 0, pooled_o = 0;
  int cells = 0;
  for (int i = 0; i < N_SETS; i++) {
    double e = expected[i] * N_TRIALS;
    if (e < 5) {
      pooled_e += e;
      pooled_o += observed[i];
      continue;
    }
    chi2 += (observed[i] - e) * (observed[i] - e) / e;
    cells++;
  }
  if (pooled_e > 0)
    chi2 += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e;
  print_message("k-means++ draws: chi-square %.1f over %d cells\n", chi2, cells + 1);
  assert_true(cells >= 15);
  assert_true(chi2 < 70);
}

/* Four distinct rows, 100 copies each: the first four centres are the four
 * rows (a row on a centre has no chance), then the draws fall back to any
 * row instead of rejecting forever. */
static void every_row_on_a_centre_ends(void **state) {
  (void)state;
  enum { DISTINCT = 4, COPIES = 100, DIM = 3 };
  float *x = malloc(sizeof(float) * DISTINCT * COPIES * DIM);
  for (int i = 0; i < DISTINCT * COPIES; i++)
    for (int j = 0; j < DIM; j++)
      x[i * DIM + j] = (float)((i % DISTINCT) * 10 + j);
  dkm_test_alloc alloc = {0};
  dkm_ctx *ctx = dkm_test_ctx(&alloc);
  dkm_params p;
  dkm_params_init(&p);
  p.init = DKM_INIT_KMEANSPP;
  p.max_iter = 1;
  for (uint32_t k = DISTINCT; k <= 300; k += 148)
    for (uint64_t seed = 1; seed <= 5; seed++) {
      p.k = k;
      p.seed = seed;
      dkm_result *r = dkm_test_train_rows(ctx, &p, x, DISTINCT * COPIES, DIM);
      assert_true(r->iters[0].objective == 0);
      dkm_result_free(r);
    }
  dkm_ctx_free(ctx);
  assert_int_equal(alloc.live, 0);
  free(x);
}

/* Both k-means++ start far below random rows on blobs, and the greedy one
 * below the plain one on average: it keeps the best of 2 + ln k candidates. */
static void greedy_starts_lower(void **state) {
  (void)state;
  enum { ROWS = 6000, DIM = 8, K = 40 };
  float *x = dkm_test_blobs(ROWS, DIM, K, 1.0, 7, NULL);
  dkm_test_alloc alloc = {0};
  dkm_ctx *ctx = dkm_test_ctx(&alloc);
  dkm_params p;
  dkm_params_init(&p);
  p.k = K;
  p.max_iter = 1;
  double start[3] = {0, 0, 0};
  const dkm_init inits[3] = {DKM_INIT_RANDOM, DKM_INIT_KMEANSPP, DKM_INIT_GREEDY_KMEANSPP};
  for (int i = 0; i < 3; i++) {
    p.init = inits[i];
    for (uint64_t seed = 1; seed <= 6; seed++) {
      p.seed = seed;
      dkm_result *r = dkm_test_train_rows(ctx, &p, x, ROWS, DIM);
      start[i] += r->iters[0].objective;
      dkm_result_free(r);
    }
  }
  print_message("starting objectives: random %.4g, k-means++ %.4g, greedy %.4g\n", start[0],
                start[1], start[2]);
  assert_true(start[1] < 0.5 * start[0]);
  assert_true(start[2] < start[1]);
  dkm_ctx_free(ctx);
  assert_int_equal(alloc.live, 0);
  free(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(draws_follow_the_textbook_probabilities),
      cmocka_unit_test(every_row_on_a_centre_ends),
      cmocka_unit_test(greedy_starts_lower),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
