/*
 * bench_train - times dkm_train() on a dataset and prints one JSON object:
 * seconds per Lloyd iteration (the median of the iterations' own clocks),
 * assignment GFLOP/s (2 n k d per iteration over those seconds), the final
 * objective, peak RSS. bench/compare.py runs it beside FAISS and
 * scikit-learn from the same initial centroids.
 *
 *   bench_train --data X.npy --init C0.npy --iters 10 --threads 2 \
 *               [--out-centroids C.npy]
 *   bench_train --generate 131072,128 --k 512 --iters 10
 *   bench_train --reference
 *
 * --reference is the reference benchmark: 131,072 x 128 standard normal
 * rows, k = 512, 10 iterations, 1 and 2 threads, each printed next to the
 * bare cblas_sgemm on the same shapes (bench_util.c's ceiling).
 *
 * By default the rows of --data are read whole into RAM first and trained
 * from dkm_source_from_memory(), as numpy hands them to FAISS and sklearn;
 * --load file passes the file source to dkm_train() instead.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "diskmeans.h"

typedef struct options {
  const char *data;
  dkm_file_options file;
  uint64_t gen_rows;
  uint32_t gen_dim;
  const char *init;
  dkm_init init_method; /* without --init */
  uint32_t k;
  uint32_t iters;
  double tol;
  uint32_t threads;
  uint64_t max_points_per_centroid;
  dkm_storage storage;
  uint64_t block_rows;
  const char *tmp_dir;
  uint64_t seed;
  int load_file; /* 1: train from the file source itself */
  const char *out_centroids;
  int reference;
} options;

static void usage(FILE *out) {
  fprintf(out,
          "usage: bench_train (--data FILE | --generate N,D) [--init FILE | --k K] [options]\n"
          "       bench_train --reference\n"
          "  --data FILE          rows (npy, fvecs, bvecs, IDX, raw), via dkm_source_open_file\n"
          "  --format NAME        force the format of --data (default auto)\n"
          "  --raw-dim D          raw files: values per row\n"
          "  --raw-dtype T        raw files: f32, f16, f64, u8, i8 (default f32)\n"
          "  --generate N,D       N rows of D standard normal float32 values (seeded)\n"
          "  --init FILE          initial centroids, one per row (any format --data takes);\n"
          "                       k is its row count and init is DKM_INIT_GIVEN\n"
          "  --k K                clusters (when no --init)\n"
          "  --init-method M      without --init: random, kmeans++ or greedy-kmeans++\n"
          "                       (default random)\n"
          "  --iters N            Lloyd iterations (default 10)\n"
          "  --tol X              tolerance (default 0: run every iteration)\n"
          "  --threads T          worker threads (default 0 = all cores)\n"
          "  --max-points-per-centroid M  sample M*k rows (default 0 = all rows)\n"
          "  --storage S          auto, memory or disk (default auto)\n"
          "  --block-rows B       rows per block (default 0 = automatic)\n"
          "  --tmp-dir DIR        folder of the spill file (default /tmp)\n"
          "  --load memory|file   memory: read --data whole into RAM first (default);\n"
          "                       file: train from the file source itself\n"
          "  --seed S             seed (default 1234)\n"
          "  --out-centroids F    write the final centroids as float32 .npy\n"
          "  --reference          the reference benchmark (see the top of bench_train.c)\n");
}

static int parse_u64(const char *text, const char *what, uint64_t *out) {
  return bench_parse_u64("bench_train", text, what, out);
}

static int parse_u32(const char *text, const char *what, uint32_t *out) {
  return bench_parse_u32("bench_train", text, what, 0, UINT32_MAX, out);
}

static int parse_shape(const char *text, options *opt) {
  char *end;
  errno = 0;
  unsigned long long n = strtoull(text, &end, 10);
  if (errno || end == text || *end != ',' || text[0] == '-') {
    fprintf(stderr, "bench_train: --generate must be ROWS,DIM, got '%s'\n", text);
    return -1;
  }
  uint32_t d;
  if (parse_u32(end + 1, "--generate DIM", &d) != 0)
    return -1;
  if (n == 0 || d == 0) {
    fprintf(stderr, "bench_train: --generate needs at least 1 row and 1 column, got '%s'\n", text);
    return -1;
  }
  opt->gen_rows = n;
  opt->gen_dim = d;
  return 0;
}

static int parse_options(int argc, char **argv, options *opt) {
  enum {
    O_DATA = 256,
    O_FORMAT,
    O_RAW_DIM,
    O_RAW_DTYPE,
    O_GENERATE,
    O_INIT,
    O_INIT_METHOD,
    O_K,
    O_ITERS,
    O_TOL,
    O_THREADS,
    O_MPPC,
    O_STORAGE,
    O_BLOCK_ROWS,
    O_TMP_DIR,
    O_LOAD,
    O_SEED,
    O_OUT,
    O_REFERENCE,
    O_HELP
  };
  static const struct option longopts[] = {
      {"data", required_argument, NULL, O_DATA},
      {"format", required_argument, NULL, O_FORMAT},
      {"raw-dim", required_argument, NULL, O_RAW_DIM},
      {"raw-dtype", required_argument, NULL, O_RAW_DTYPE},
      {"generate", required_argument, NULL, O_GENERATE},
      {"init", required_argument, NULL, O_INIT},
      {"init-method", required_argument, NULL, O_INIT_METHOD},
      {"k", required_argument, NULL, O_K},
      {"iters", required_argument, NULL, O_ITERS},
      {"tol", required_argument, NULL, O_TOL},
      {"threads", required_argument, NULL, O_THREADS},
      {"max-points-per-centroid", required_argument, NULL, O_MPPC},
      {"storage", required_argument, NULL, O_STORAGE},
      {"block-rows", required_argument, NULL, O_BLOCK_ROWS},
      {"tmp-dir", required_argument, NULL, O_TMP_DIR},
      {"load", required_argument, NULL, O_LOAD},
      {"seed", required_argument, NULL, O_SEED},
      {"out-centroids", required_argument, NULL, O_OUT},
      {"reference", no_argument, NULL, O_REFERENCE},
      {"help", no_argument, NULL, O_HELP},
      {NULL, 0, NULL, 0}};
  memset(opt, 0, sizeof *opt);
  dkm_file_options_init(&opt->file);
  opt->iters = 10;
  opt->seed = DKM_DEFAULT_SEED;
  opt->storage = DKM_STORAGE_AUTO;
  int c;
  char *end;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case O_DATA:
      opt->data = optarg;
      break;
    case O_FORMAT:
      if (dkm_format_parse(optarg, &opt->file.format) != 0) {
        fprintf(stderr, "bench_train: unknown --format '%s'\n", optarg);
        return -1;
      }
      break;
    case O_RAW_DIM:
      if (parse_u32(optarg, "--raw-dim", &opt->file.raw_dim) != 0)
        return -1;
      break;
    case O_RAW_DTYPE:
      if (dkm_dtype_parse(optarg, &opt->file.raw_dtype) != 0) {
        fprintf(stderr, "bench_train: unknown --raw-dtype '%s'\n", optarg);
        return -1;
      }
      break;
    case O_GENERATE:
      if (parse_shape(optarg, opt) != 0)
        return -1;
      break;
    case O_INIT:
      opt->init = optarg;
      break;
    case O_INIT_METHOD: {
      int found = 0;
      for (int i = DKM_INIT_RANDOM; dkm_init_name((dkm_init)i) != NULL; i++)
        if (i != DKM_INIT_GIVEN && strcmp(optarg, dkm_init_name((dkm_init)i)) == 0) {
          opt->init_method = (dkm_init)i;
          found = 1;
        }
      if (!found) {
        fprintf(
            stderr,
            "bench_train: --init-method must be random, kmeans++ or greedy-kmeans++, got '%s'\n",
            optarg);
        return 1;
      }
      break;
    }
    case O_K:
      if (parse_u32(optarg, "--k", &opt->k) != 0)
        return -1;
      break;
    case O_ITERS:
      if (parse_u32(optarg, "--iters", &opt->iters) != 0)
        return -1;
      break;
    case O_TOL:
      errno = 0;
      opt->tol = strtod(optarg, &end);
      if (errno || end == optarg || *end != '\0' || !(opt->tol >= 0)) {
        fprintf(stderr, "bench_train: --tol must be a number >= 0, got '%s'\n", optarg);
        return -1;
      }
      break;
    case O_THREADS:
      if (parse_u32(optarg, "--threads", &opt->threads) != 0)
        return -1;
      break;
    case O_MPPC:
      if (parse_u64(optarg, "--max-points-per-centroid", &opt->max_points_per_centroid) != 0)
        return -1;
      break;
    case O_STORAGE:
      if (strcmp(optarg, "auto") == 0)
        opt->storage = DKM_STORAGE_AUTO;
      else if (strcmp(optarg, "memory") == 0)
        opt->storage = DKM_STORAGE_MEMORY;
      else if (strcmp(optarg, "disk") == 0)
        opt->storage = DKM_STORAGE_DISK;
      else {
        fprintf(stderr, "bench_train: --storage must be auto, memory or disk, got '%s'\n", optarg);
        return -1;
      }
      break;
    case O_BLOCK_ROWS:
      if (parse_u64(optarg, "--block-rows", &opt->block_rows) != 0)
        return -1;
      break;
    case O_TMP_DIR:
      opt->tmp_dir = optarg;
      break;
    case O_LOAD:
      if (strcmp(optarg, "memory") == 0)
        opt->load_file = 0;
      else if (strcmp(optarg, "file") == 0)
        opt->load_file = 1;
      else {
        fprintf(stderr, "bench_train: --load must be memory or file, got '%s'\n", optarg);
        return -1;
      }
      break;
    case O_SEED:
      if (parse_u64(optarg, "--seed", &opt->seed) != 0)
        return -1;
      break;
    case O_OUT:
      opt->out_centroids = optarg;
      break;
    case O_REFERENCE:
      opt->reference = 1;
      break;
    case O_HELP:
      usage(stdout);
      exit(0);
    default:
      usage(stderr);
      return -1;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "bench_train: unexpected argument '%s'\n", argv[optind]);
    return -1;
  }
  if (opt->reference)
    return 0;
  if (!opt->data == !opt->gen_rows) {
    fprintf(stderr, "bench_train: give exactly one of --data and --generate\n");
    return -1;
  }
  if (!opt->init && opt->k == 0) {
    fprintf(stderr, "bench_train: give --init FILE or --k K (at least 1)\n");
    return -1;
  }
  if (opt->load_file && !opt->data) {
    fprintf(stderr, "bench_train: --load file needs --data\n");
    return -1;
  }
  return 0;
}

/* Reads every row of src into one new float32 array (the caller frees it). */
static dkm_status read_all(dkm_ctx *ctx, dkm_source *src, float **out) {
  size_t bytes;
  *out = NULL;
  if (!bench_array_bytes(src->rows, src->dim, sizeof(float), &bytes))
    return dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "%s: %llu x %u floats overflow memory", src->name,
                             (unsigned long long)src->rows, src->dim);
  float *all = malloc(bytes ? bytes : 1);
  if (!all)
    return dkm_ctx_set_error(ctx, DKM_ERR_NOMEM, "%s: no memory for %zu bytes of rows", src->name,
                             bytes);
  /* Blocks of about 16 MiB: the source converts into the destination itself
   * when it can, so no second buffer is needed. */
  uint64_t block = (UINT64_C(16) << 20) / ((uint64_t)src->dim * sizeof(float));
  if (block == 0)
    block = 1;
  for (uint64_t first = 0; first < src->rows; first += block) {
    uint64_t count = src->rows - first < block ? src->rows - first : block;
    float *dst = all + first * src->dim;
    const float *rows;
    dkm_status st = dkm_source_read(ctx, src, first, count, dst, &rows);
    if (st != DKM_OK) {
      free(all);
      return st;
    }
    if (rows != dst)
      memcpy(dst, rows, (size_t)count * src->dim * sizeof(float));
  }
  *out = all;
  return DKM_OK;
}

/* Opens path and reads it whole (for --init and --load memory). */
static dkm_status load_file(dkm_ctx *ctx, const char *path, const dkm_file_options *file,
                            float **rows, uint64_t *n, uint32_t *dim) {
  dkm_source *src = NULL;
  dkm_status st = dkm_source_open_file(ctx, path, file, &src);
  if (st == DKM_OK) {
    *n = src->rows;
    *dim = src->dim;
    st = read_all(ctx, src, rows);
  }
  dkm_source_close(src);
  return st;
}

typedef struct run_report {
  uint64_t rows;
  uint32_t dim, k, threads;
  double load_seconds;
  uint64_t baseline_rss_bytes; /* peak RSS before any data: binary and libraries */
  dkm_result *result;
  double *iter_seconds; /* result->n_iter entries */
  double seconds_per_iter;
  double assign_gflops;
} run_report;

/* Prints the context's message, which names the file or the parameter;
 * what (may be NULL) says which step failed when the message does not. */
static int fail(dkm_ctx *ctx, dkm_status st, const char *what) {
  fprintf(stderr, "bench_train: %s%s%s (%s)\n", what ? what : "", what ? ": " : "",
          dkm_ctx_errmsg(ctx), dkm_strerror(st));
  return 1;
}

/* Trains on src with params and fills the report (which owns the result). */
static int train(dkm_ctx *ctx, const dkm_params *params, dkm_source *src, run_report *rep) {
  dkm_status st = dkm_train(ctx, params, src, &rep->result);
  if (st != DKM_OK)
    return fail(ctx, st, "dkm_train");
  const dkm_result *res = rep->result;
  rep->rows = res->sample_rows;
  rep->dim = res->dim;
  rep->k = res->k;
  rep->threads = params->n_threads;
  rep->iter_seconds = malloc((res->n_iter ? res->n_iter : 1) * sizeof(double));
  if (!rep->iter_seconds) {
    fprintf(stderr, "bench_train: out of memory\n");
    return 1;
  }
  for (uint32_t i = 0; i < res->n_iter; i++)
    rep->iter_seconds[i] = res->iters[i].seconds;
  rep->seconds_per_iter = res->n_iter ? bench_median(rep->iter_seconds, res->n_iter) : NAN;
  rep->assign_gflops =
      bench_assign_flops(rep->rows, rep->dim, rep->k) / rep->seconds_per_iter * 1e-9;
  return 0;
}

static void report_free(run_report *rep) {
  dkm_result_free(rep->result);
  free(rep->iter_seconds);
  rep->result = NULL;
  rep->iter_seconds = NULL;
}

static void print_json(const options *opt, const run_report *rep) {
  const dkm_result *res = rep->result;
  printf("{\"program\": \"diskmeans\", \"version\": \"%s\", \"rows\": %llu, \"dim\": %u, "
         "\"k\": %u, \"threads\": %u, \"n_iter\": %u, \"seconds_per_iter\": %.6f, "
         "\"assign_gflops\": %.3f, \"objective\": %.10g, \"iter_seconds\": [",
         dkm_version(), (unsigned long long)rep->rows, rep->dim, rep->k, rep->threads, res->n_iter,
         rep->seconds_per_iter, rep->assign_gflops, res->objective);
  for (uint32_t i = 0; i < res->n_iter; i++)
    printf("%s%.6f", i ? ", " : "", rep->iter_seconds[i]);
  printf("], \"iter_objectives\": [");
  for (uint32_t i = 0; i < res->n_iter; i++)
    printf("%s%.10g", i ? ", " : "", res->iters[i].objective);
  printf("], \"iter_repaired\": [");
  for (uint32_t i = 0; i < res->n_iter; i++)
    printf("%s%u", i ? ", " : "", res->iters[i].repaired);
  printf("], \"storage\": \"%s\", \"from_source\": %d, \"load\": \"%s\", "
         "\"load_seconds\": %.3f, \"sample_seconds\": %.3f, \"init_seconds\": %.3f, "
         "\"train_seconds\": %.3f, \"peak_rss_bytes\": %llu, \"baseline_rss_bytes\": %llu}\n",
         dkm_storage_name(res->storage), res->from_source,
         opt->load_file ? "file" : (opt->data ? "memory" : "generated"), rep->load_seconds,
         res->sample_seconds, res->init_seconds, res->train_seconds,
         (unsigned long long)bench_peak_rss_bytes(), (unsigned long long)rep->baseline_rss_bytes);
}

static int run_reference(void) {
  const uint64_t n = 131072;
  const uint32_t d = 128, k = 512, iters = 10;
  const uint32_t thread_counts[2] = {1, 2};
  size_t bytes, c_bytes;
  if (!bench_array_bytes(n, d, sizeof(float), &bytes) ||
      !bench_array_bytes(k, d, sizeof(float), &c_bytes))
    return 1;
  float *x = malloc(bytes), *c = malloc(c_bytes);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_source *src = NULL;
  int status = 1;
  if (!x || !c || !ctx) {
    fprintf(stderr, "bench_train: out of memory\n");
    goto done;
  }
  bench_fill_normal(x, n * d, 1);
  bench_fill_normal(c, (size_t)k * d, 2);
  dkm_status st = dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, n, d, &src);
  if (st != DKM_OK) {
    status = fail(ctx, st, "dkm_source_from_memory");
    goto done;
  }
  printf("reference: %llu x %u standard normal rows, k = %u, %u iterations "
         "(%.1f GFLOP per assignment)\n",
         (unsigned long long)n, d, k, iters, bench_assign_flops(n, d, k) * 1e-9);
  printf("%8s %12s %16s %14s %16s %10s\n", "threads", "s/iter", "assign GFLOP/s", "sgemm s/pass",
         "sgemm GFLOP/s", "% of sgemm");
  for (int t = 0; t < 2; t++) {
    dkm_params params;
    dkm_params_init(&params);
    params.k = k;
    params.max_iter = iters;
    params.tol = 0;
    params.max_points_per_centroid = 0;
    params.init = DKM_INIT_GIVEN;
    params.init_centroids = c;
    params.n_threads = thread_counts[t];
    run_report rep = {0};
    if (train(ctx, &params, src, &rep) != 0) {
      report_free(&rep);
      goto done;
    }
    /* The ceiling on the same shapes: the best of a few tile heights, each
     * thread running the serial sgemm on its share of the rows. */
    static const uint64_t tiles[] = {512, 1024, 2048, 4096, 8192};
    double best = INFINITY;
    for (size_t i = 0; i < sizeof tiles / sizeof tiles[0]; i++)
      for (int tr = 0; tr <= 1; tr++) {
        bench_sgemm_config cfg = {n, d, k, thread_counts[t], tiles[i], tr};
        double s[3];
        if (bench_sgemm_run(&cfg, x, c, 3, s, NULL) != 0) {
          fprintf(stderr, "bench_train: could not run the sgemm ceiling\n");
          report_free(&rep);
          goto done;
        }
        double m = bench_median(s, 3);
        if (m < best)
          best = m;
      }
    double ceiling = bench_assign_flops(n, d, k) / best * 1e-9;
    printf("%8u %12.4f %16.1f %14.4f %16.1f %9.0f%%\n", thread_counts[t], rep.seconds_per_iter,
           rep.assign_gflops, best, ceiling, 100.0 * rep.assign_gflops / ceiling);
    report_free(&rep);
  }
  status = 0;
done:
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  free(x);
  free(c);
  return status;
}

int main(int argc, char **argv) {
  options opt;
  if (parse_options(argc, argv, &opt) != 0)
    return 2;
  if (opt.reference)
    return run_reference();

  int status = 1;
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_source *src = NULL;
  float *rows = NULL, *init = NULL;
  run_report rep = {0};
  rep.baseline_rss_bytes = bench_peak_rss_bytes();
  dkm_status st;
  if (!ctx) {
    fprintf(stderr, "bench_train: out of memory\n");
    return 1;
  }

  double t0 = bench_now();
  if (opt.gen_rows) {
    size_t bytes;
    if (!bench_array_bytes(opt.gen_rows, opt.gen_dim, sizeof(float), &bytes) ||
        !(rows = malloc(bytes))) {
      fprintf(stderr, "bench_train: no memory for %llu x %u rows\n",
              (unsigned long long)opt.gen_rows, opt.gen_dim);
      goto done;
    }
    bench_fill_normal(rows, bytes / sizeof(float), opt.seed);
    st = dkm_source_from_memory(ctx, rows, DKM_DTYPE_F32, opt.gen_rows, opt.gen_dim, &src);
  } else if (opt.load_file) {
    st = dkm_source_open_file(ctx, opt.data, &opt.file, &src);
  } else {
    uint64_t n;
    uint32_t d;
    st = load_file(ctx, opt.data, &opt.file, &rows, &n, &d);
    if (st == DKM_OK)
      st = dkm_source_from_memory(ctx, rows, DKM_DTYPE_F32, n, d, &src);
  }
  if (st != DKM_OK) {
    status = fail(ctx, st, NULL);
    goto done;
  }
  rep.load_seconds = bench_now() - t0;

  dkm_params params;
  dkm_params_init(&params);
  params.k = opt.k;
  params.max_iter = opt.iters;
  params.tol = opt.tol;
  params.n_threads = opt.threads;
  params.max_points_per_centroid = opt.max_points_per_centroid;
  params.storage = opt.storage;
  params.block_rows = opt.block_rows;
  params.tmp_dir = opt.tmp_dir;
  params.seed = opt.seed;
  params.init = opt.init_method;
  if (opt.init) {
    uint64_t k;
    uint32_t d;
    dkm_file_options init_file;
    dkm_file_options_init(&init_file);
    st = load_file(ctx, opt.init, &init_file, &init, &k, &d);
    if (st != DKM_OK) {
      status = fail(ctx, st, NULL);
      goto done;
    }
    if (d != src->dim) {
      fprintf(stderr, "bench_train: %s has %u columns but the rows have %u\n", opt.init, d,
              src->dim);
      goto done;
    }
    if (opt.k && opt.k != k) {
      fprintf(stderr, "bench_train: --k %u disagrees with the %llu rows of %s\n", opt.k,
              (unsigned long long)k, opt.init);
      goto done;
    }
    if (k > UINT32_MAX) {
      fprintf(stderr, "bench_train: %s has too many rows for k\n", opt.init);
      goto done;
    }
    params.k = (uint32_t)k;
    params.init = DKM_INIT_GIVEN;
    params.init_centroids = init;
  }

  if (train(ctx, &params, src, &rep) != 0)
    goto done;
  if (opt.out_centroids && bench_write_npy_f32(opt.out_centroids, rep.result->centroids,
                                               rep.result->k, rep.result->dim) != 0) {
    fprintf(stderr, "bench_train: cannot write %s: %s\n", opt.out_centroids, strerror(errno));
    goto done;
  }
  print_json(&opt, &rep);
  status = 0;
done:
  report_free(&rep);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  free(rows);
  free(init);
  return status;
}
