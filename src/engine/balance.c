/*
 * balance.c - how even partitions are (dkm_balance_of), and the prices that
 * even them out when params.balance asks for it.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

void dkm_balance_of(const uint64_t *sizes, uint32_t k, dkm_balance *out) {
  memset(out, 0, sizeof *out);
  if (sizes == NULL || k == 0)
    return;
  double total = 0, sq = 0;
  out->smallest = UINT64_MAX;
  for (uint32_t c = 0; c < k; c++) {
    double n = (double)sizes[c];
    total += n;
    sq += n * n;
    out->smallest = DKM__MIN(out->smallest, sizes[c]);
    out->largest = DKM__MAX(out->largest, sizes[c]);
    out->empty += sizes[c] == 0;
  }
  double mean = total / k;
  if (mean > 0) {
    /* Variance as E[n^2] - mean^2, clamped: rounding may make it a hair
     * negative for equal sizes. */
    double var = DKM__MAX(sq / k - mean * mean, 0.0);
    out->cv = sqrt(var) / mean;
    out->largest_over_mean = (double)out->largest / mean;
  }
}
