/*
 * cmd_assign.c - diskmeans assign: the nearest centroid of every row.
 *
 * Labels (and distances) go straight from the library into the mapped
 * output file, so labelling a billion rows needs no second copy in memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { OPT_CENTROIDS = 1, OPT_OUTPUT, OPT_DISTANCES };

static const cli_option assign_options[] = {
    {"centroids", 'c', 1, OPT_CENTROIDS},
    {"output", 'o', 1, OPT_OUTPUT},
    {"distances", 0, 1, OPT_DISTANCES},
    {NULL, 0, 0, 0},
};

typedef struct assign_args {
  cli_common_args common; /* INPUT, --quiet, the parameters, how to read INPUT */
  const char *centroids;
  const char *output;
  const char *distances;
} assign_args;

static int assign_option(const cli_scanner *s, int id, const char *v, void *args) {
  (void)s;
  assign_args *a = args;
  switch (id) {
  case OPT_CENTROIDS:
    a->centroids = v;
    break;
  case OPT_OUTPUT:
    a->output = v;
    break;
  case OPT_DISTANCES:
    a->distances = v;
    break;
  default:
    return cli_usage_error("assign", "internal error: option %d", id);
  }
  return -1;
}

/* Parses argv into a; returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, assign_args *a) {
  cli_scanner s;
  cli_scan_init(&s, "assign", CLI_OPTS_EVERY_COMMAND | CLI_OPT_METRIC | CLI_OPT_QUIET, argc, argv);
  int rc = cli_scan_all(&s, assign_options, assign_option, a, &a->common);
  if (rc >= 0) {
    return rc;
  }
  if (a->centroids == NULL) {
    return cli_usage_error("assign", "missing -c CENTROIDS");
  }
  if (a->output == NULL) {
    return cli_usage_error("assign", "missing -o LABELS.npy");
  }
  if (cli_refuse_folder(a->output) != 0 ||
      (a->distances != NULL && cli_refuse_folder(a->distances) != 0)) {
    return CLI_EXIT_ERROR;
  }
  if (cli_output_kind(a->output) != CLI_OUT_NPY) {
    return cli_usage_error("assign", "-o %s: labels are written as .npy, not '%s'", a->output,
                           cli_extension(a->output));
  }
  if (a->distances != NULL && cli_output_kind(a->distances) != CLI_OUT_NPY) {
    return cli_usage_error("assign", "--distances %s: distances are written as .npy, not '%s'",
                           a->distances, cli_extension(a->distances));
  }
  const cli_file_arg centroids[] = {{"-c", a->centroids}};
  const cli_file_arg outputs[] = {{"-o", a->output}, {"--distances", a->distances}};
  rc =
      cli_check_inputs(a->common.inputs, centroids, 1, outputs, sizeof outputs / sizeof outputs[0]);
  if (rc != CLI_EXIT_OK) {
    return rc;
  }
  return -1;
}

int cli_cmd_assign(int argc, char **argv) {
  double start = cli_now();
  assign_args a;
  memset(&a, 0, sizeof a);
  dkm_params_init(&a.common.params);
  /* dkm_assign ignores k, but the parameter check wants a valid one. */
  a.common.params.k = 1;
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0) {
    return rc;
  }
  dkm_file_options fopts;
  if (cli_file_options("assign", &a.common.in, &fopts) != 0) {
    return CLI_EXIT_USAGE;
  }

  dkm_ctx *ctx = dkm_ctx_create(NULL);
  if (ctx == NULL) {
    cli_error("out of memory");
    return CLI_EXIT_ERROR;
  }
  dkm_params *p = &a.common.params;
  cli_progress progress;
  cli_progress_init(&progress, a.common.quiet, 1);
  p->progress = cli_progress_callback;
  p->progress_user = &progress;

  dkm_source *src = NULL;
  float *centroids = NULL;
  uint64_t *counts = NULL;
  uint32_t k = 0;
  cli_npy_map labels, distances;
  memset(&labels, 0, sizeof labels);
  memset(&distances, 0, sizeof distances);
  labels.file.fd = distances.file.fd = -1;

  /* Centroids trained with one metric and assigned with another give
   * plausible but wrong labels. A .npy written by train records its metric:
   * it is the default here, and a different --metric is refused. */
  dkm_metric recorded;
  int have_recorded;
  rc = cli_read_metric_tag(a.centroids, &recorded, &have_recorded);
  if (rc != CLI_EXIT_OK) {
    goto done;
  }
  if (have_recorded && a.common.have_metric && recorded != p->metric) {
    cli_error("-c %s: the centroids were trained with --metric %s, not --metric %s", a.centroids,
              dkm_metric_name(recorded), dkm_metric_name(p->metric));
    rc = CLI_EXIT_ERROR;
    goto done;
  }
  if (have_recorded) {
    p->metric = recorded;
  }

  dkm_status st = dkm_params_check(ctx, p);
  if (st != DKM_OK) {
    rc = cli_usage_error("assign", "%s", dkm_ctx_errmsg(ctx));
    goto done;
  }
  rc = CLI_EXIT_ERROR;
  if (cli_npy_map_open(&labels, a.output) != 0 ||
      (a.distances != NULL && cli_npy_map_open(&distances, a.distances) != 0)) {
    goto done;
  }
  rc = cli_open_input(ctx, &a.common, &fopts, &src);
  if (rc != CLI_EXIT_OK) {
    goto done;
  }
  rc = cli_read_centroids(ctx, a.centroids, src, 0, "centroids", &centroids, &k);
  if (rc != CLI_EXIT_OK) {
    goto done;
  }
  rc = CLI_EXIT_ERROR;
  if (cli_npy_map_size(&labels, "i4", src->rows) != 0 ||
      (a.distances != NULL && cli_npy_map_size(&distances, "f4", src->rows) != 0)) {
    goto done;
  }
  cli_signals_defer(1);
  st = dkm_assign(ctx, p, src, centroids, k, src->dim, labels.data, distances.data);
  cli_signals_defer(0);
  if (st == DKM_OK && cli_signal_received() != 0) {
    st = DKM_ERR_CANCELLED;
  }
  cli_progress_finish(&progress);
  if (st != DKM_OK) {
    rc = cli_library_error(ctx, st);
    goto done;
  }

  counts = cli_count_labels(labels.data, src->rows, k);
  if (counts == NULL) {
    cli_error("out of memory counting labels");
    goto done;
  }
  cli_sizes sizes;
  cli_sizes_summary(counts, k, &sizes);
  double mean_distance = 0;
  if (a.distances != NULL) {
    const float *d = distances.data;
    for (uint64_t i = 0; i < src->rows; i++) {
      mean_distance += d[i];
    }
    mean_distance /= (double)src->rows;
  }
  cli_signals_hold(1);
  int committed = cli_npy_map_commit(&labels) == 0 &&
                  (a.distances == NULL || cli_npy_map_commit(&distances) == 0);
  cli_signals_hold(0);
  if (!committed) {
    goto done;
  }
  if (!a.common.quiet) {
    printf("labelled %llu rows with %u centroids: %u clusters used, largest %llu rows "
           "(cluster %u), smallest %llu, imbalance %.3f\n",
           (unsigned long long)src->rows, k, sizes.used, (unsigned long long)sizes.max,
           sizes.largest, (unsigned long long)sizes.min, sizes.imbalance);
    if (a.distances != NULL) {
      printf("mean distance %.9g\n", mean_distance);
    }
    printf("time %.2f s\n", cli_now() - start);
  }
  rc = CLI_EXIT_OK;

done:
  cli_progress_finish(&progress);
  cli_npy_map_abort(&labels);
  cli_npy_map_abort(&distances);
  free(counts);
  free(centroids);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  return rc;
}
