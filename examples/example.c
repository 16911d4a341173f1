/* example.c - train 4 centroids on 2-D points, then label the points.
 * Built against the installed library by the tests; README.md shows it. */
#include <diskmeans.h>
#include <stdio.h>

int main(void) {
  static const float points[8][2] = {{0, 0},  {0, 1},  {10, 10}, {10, 11},
                                     {0, 10}, {1, 10}, {10, 0},  {11, 0}};
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  if (ctx == NULL)
    return 1;
  dkm_source *src = NULL;
  dkm_result *result = NULL;
  int32_t labels[8];
  dkm_params params;
  dkm_params_init(&params);
  params.k = 4;
  params.init = DKM_INIT_KMEANSPP;

  dkm_status st = dkm_source_from_memory(ctx, points, DKM_DTYPE_F32, 8, 2, &src);
  if (st == DKM_OK)
    st = dkm_train(ctx, &params, src, &result);
  if (st == DKM_OK)
    st = dkm_assign(ctx, &params, src, result->centroids, result->k, result->dim, labels, NULL);
  if (st != DKM_OK) {
    fprintf(stderr, "diskmeans: %s\n", dkm_ctx_errmsg(ctx));
  } else {
    printf("objective %.3f after %u iterations\n", result->objective, result->n_iter);
    for (int i = 0; i < 8; i++)
      printf("point (%g, %g) -> centroid %d (%g, %g)\n", points[i][0], points[i][1], labels[i],
             result->centroids[2 * labels[i]], result->centroids[2 * labels[i] + 1]);
  }
  dkm_result_free(result);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  return st == DKM_OK ? 0 : 1;
}
