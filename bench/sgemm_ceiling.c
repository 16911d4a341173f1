/*
 * sgemm_ceiling - how fast the bare BLAS can do the k-means assignment's
 * matrix product on this machine: the speed no k-means built on that BLAS
 * can beat.
 *
 * The shape is the assignment's: n x d rows times the d x k centroids. The
 * honest ceiling for T threads is T threads each running the single-threaded
 * (serial OpenBLAS) cblas_sgemm on its own contiguous share of the rows, which
 * is what an engine with its own threads can do at best. How the rows are cut
 * into sgemm calls changes the speed (a tile of rows whose tile x k output
 * fits the cache is usually faster than one huge call), so by default the
 * program first tries several tile heights and both product orientations on
 * a slice of the rows, then measures the fastest on all n rows, reps times.
 *
 *   sgemm_ceiling --rows N --dim D --k K [--threads 1,2] [--reps R]
 *                 [--tile ROWS] [--transposed 0|1] [--json]
 *
 * GFLOP/s counts 2 * n * k * d floating-point operations per pass. With
 * more than one thread, one more untimed pass checks that every concurrent
 * product equals, bit for bit, the same call made by a lone thread ("wrong
 * tiles"): a BLAS that is not safe to call from two threads at once would
 * otherwise be timed doing wrong work.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#define MAX_THREAD_COUNTS 16
#define MAX_REPS 100

typedef struct options {
  uint64_t rows;
  uint32_t dim, k;
  uint32_t threads[MAX_THREAD_COUNTS];
  int n_threads;
  int reps;
  int64_t tile;   /* -1: scan */
  int transposed; /* -1: scan */
  uint64_t scan_rows;
  uint64_t seed;
  int json;
} options;

/* One measured configuration. */
typedef struct measure {
  bench_sgemm_config config;
  double seconds[MAX_REPS];
  int reps;
  double median, best;
  int checked;        /* 1 if the products were checked (more than 1 thread) */
  uint64_t bad_tiles; /* concurrent products that differed from a lone thread's */
} measure;

static void usage(FILE *out) {
  fprintf(out, "usage: sgemm_ceiling --rows N --dim D --k K [options]\n"
               "  --threads LIST     thread counts, e.g. 1,2 (default 1,2)\n"
               "  --reps R           timed passes over all rows per thread count (default 3)\n"
               "  --tile ROWS        rows per sgemm call, 0 = one call per thread (default: scan)\n"
               "  --transposed 0|1   0: X*C^T, 1: C*X^T (default: scan)\n"
               "  --scan-rows N      rows per thread used by the scan (default 65536)\n"
               "  --seed S           seed of the random data (default 1)\n"
               "  --json             print one JSON object instead of a table\n");
}

static int parse_u64(const char *text, const char *what, uint64_t *out) {
  return bench_parse_u64("sgemm_ceiling", text, what, out);
}

static int parse_u32(const char *text, const char *what, uint32_t min, uint32_t *out) {
  return bench_parse_u32("sgemm_ceiling", text, what, min, INT32_MAX, out);
}

static int parse_thread_list(const char *text, options *opt) {
  char buf[256];
  if (strlen(text) >= sizeof buf) {
    fprintf(stderr, "sgemm_ceiling: --threads list is too long\n");
    return -1;
  }
  strcpy(buf, text);
  opt->n_threads = 0;
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (opt->n_threads == MAX_THREAD_COUNTS) {
      fprintf(stderr, "sgemm_ceiling: at most %d thread counts\n", MAX_THREAD_COUNTS);
      return -1;
    }
    if (parse_u32(tok, "--threads", 1, &opt->threads[opt->n_threads]) != 0)
      return -1;
    opt->n_threads++;
  }
  if (opt->n_threads == 0) {
    fprintf(stderr, "sgemm_ceiling: --threads needs at least one count\n");
    return -1;
  }
  return 0;
}

static int parse_options(int argc, char **argv, options *opt) {
  static const struct option longopts[] = {{"rows", required_argument, NULL, 'n'},
                                           {"dim", required_argument, NULL, 'd'},
                                           {"k", required_argument, NULL, 'k'},
                                           {"threads", required_argument, NULL, 't'},
                                           {"reps", required_argument, NULL, 'r'},
                                           {"tile", required_argument, NULL, 'T'},
                                           {"transposed", required_argument, NULL, 'X'},
                                           {"scan-rows", required_argument, NULL, 'S'},
                                           {"seed", required_argument, NULL, 's'},
                                           {"json", no_argument, NULL, 'j'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  *opt = (options){.threads = {1, 2},
                   .n_threads = 2,
                   .reps = 3,
                   .tile = -1,
                   .transposed = -1,
                   .scan_rows = 65536,
                   .seed = 1};
  int c;
  uint32_t u32;
  uint64_t u64;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'n':
      if (parse_u64(optarg, "--rows", &opt->rows) != 0)
        return -1;
      break;
    case 'd':
      if (parse_u32(optarg, "--dim", 1, &opt->dim) != 0)
        return -1;
      break;
    case 'k':
      if (parse_u32(optarg, "--k", 1, &opt->k) != 0)
        return -1;
      break;
    case 't':
      if (parse_thread_list(optarg, opt) != 0)
        return -1;
      break;
    case 'r':
      if (parse_u32(optarg, "--reps", 1, &u32) != 0)
        return -1;
      if (u32 > MAX_REPS) {
        fprintf(stderr, "sgemm_ceiling: --reps must be at most %d\n", MAX_REPS);
        return -1;
      }
      opt->reps = (int)u32;
      break;
    case 'T':
      if (parse_u64(optarg, "--tile", &u64) != 0)
        return -1;
      if (u64 > INT32_MAX) {
        fprintf(stderr, "sgemm_ceiling: --tile must be at most %d\n", INT32_MAX);
        return -1;
      }
      opt->tile = (int64_t)u64;
      break;
    case 'X':
      if (strcmp(optarg, "0") != 0 && strcmp(optarg, "1") != 0) {
        fprintf(stderr, "sgemm_ceiling: --transposed must be 0 or 1, got '%s'\n", optarg);
        return -1;
      }
      opt->transposed = optarg[0] == '1';
      break;
    case 'S':
      if (parse_u64(optarg, "--scan-rows", &opt->scan_rows) != 0)
        return -1;
      if (opt->scan_rows == 0) {
        fprintf(stderr, "sgemm_ceiling: --scan-rows must be at least 1\n");
        return -1;
      }
      break;
    case 's':
      if (parse_u64(optarg, "--seed", &opt->seed) != 0)
        return -1;
      break;
    case 'j':
      opt->json = 1;
      break;
    case 'h':
      usage(stdout);
      exit(0);
    default:
      usage(stderr);
      return -1;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "sgemm_ceiling: unexpected argument '%s'\n", argv[optind]);
    return -1;
  }
  if (opt->rows == 0 || opt->dim == 0 || opt->k == 0) {
    fprintf(stderr, "sgemm_ceiling: --rows, --dim and --k are required and must be at least 1\n");
    usage(stderr);
    return -1;
  }
  return 0;
}

static int run_measure(measure *m, const float *x, const float *c, int reps, int check) {
  m->reps = reps;
  m->checked = check && m->config.threads > 1;
  if (bench_sgemm_run(&m->config, x, c, reps, m->seconds, m->checked ? &m->bad_tiles : NULL) != 0)
    return -1;
  m->median = bench_median(m->seconds, (size_t)reps);
  m->best = m->seconds[0];
  for (int r = 1; r < reps; r++)
    if (m->seconds[r] < m->best)
      m->best = m->seconds[r];
  return 0;
}

static double gflops(const bench_sgemm_config *cfg, double seconds) {
  return bench_assign_flops(cfg->rows, cfg->dim, cfg->k) / seconds * 1e-9;
}

/* The fastest tile height and orientation for this thread count, tried on
 * scan_rows rows per thread, best of two passes each. One huge call per
 * thread is tried too unless its output would not fit in 1 GiB per thread. */
static int scan(const options *opt, uint32_t threads, const float *x, const float *c,
                bench_sgemm_config *best, FILE *log) {
  static const uint64_t tiles[] = {64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 0};
  uint64_t rows = opt->scan_rows * threads < opt->rows ? opt->scan_rows * threads : opt->rows;
  double best_rate = 0.0;
  for (size_t i = 0; i < sizeof tiles / sizeof tiles[0]; i++) {
    uint64_t tile = tiles[i];
    if (opt->tile >= 0 && (uint64_t)opt->tile != tile)
      continue;
    if (tile == 0 && (double)(opt->rows / threads + 1) * opt->k * 4.0 > (double)(1u << 30))
      continue;
    if (tile > rows / threads && tile != 0)
      continue;
    for (int tr = 0; tr <= 1; tr++) {
      if (opt->transposed >= 0 && opt->transposed != tr)
        continue;
      measure m = {.config = {rows, opt->dim, opt->k, threads, tile, tr}};
      if (run_measure(&m, x, c, 2, 0) != 0)
        return -1;
      double rate = gflops(&m.config, m.best);
      if (log)
        fprintf(log, "  scan T=%u tile=%llu transposed=%d: %.1f GFLOP/s\n", threads,
                (unsigned long long)tile, tr, rate);
      if (rate > best_rate) {
        best_rate = rate;
        *best = m.config;
        best->rows = opt->rows;
      }
    }
  }
  if (best_rate == 0.0) {
    /* Only a forced configuration that the scan skipped is left. */
    *best = (bench_sgemm_config){opt->rows,
                                 opt->dim,
                                 opt->k,
                                 threads,
                                 opt->tile >= 0 ? (uint64_t)opt->tile : 4096,
                                 opt->transposed >= 0 ? opt->transposed : 0};
  }
  return 0;
}

int main(int argc, char **argv) {
  options opt;
  if (parse_options(argc, argv, &opt) != 0)
    return 2;
  size_t x_bytes, c_bytes;
  if (!bench_array_bytes(opt.rows, opt.dim, sizeof(float), &x_bytes) ||
      !bench_array_bytes(opt.k, opt.dim, sizeof(float), &c_bytes)) {
    fprintf(stderr, "sgemm_ceiling: %llu x %u floats overflow the address space\n",
            (unsigned long long)opt.rows, opt.dim);
    return 1;
  }
  float *x = malloc(x_bytes), *c = malloc(c_bytes);
  if (!x || !c) {
    fprintf(stderr, "sgemm_ceiling: out of memory for %zu bytes of rows\n", x_bytes + c_bytes);
    free(x);
    free(c);
    return 1;
  }
  bench_fill_normal(x, x_bytes / sizeof(float), opt.seed);
  bench_fill_normal(c, c_bytes / sizeof(float), opt.seed + 1);

  measure results[MAX_THREAD_COUNTS];
  int status = 0;
  fflush(stdout);
  for (int i = 0; i < opt.n_threads; i++) {
    bench_sgemm_config best;
    if (scan(&opt, opt.threads[i], x, c, &best, opt.json ? NULL : stderr) != 0 ||
        (results[i] = (measure){.config = best}, run_measure(&results[i], x, c, opt.reps, 1)) !=
            0) {
      fprintf(stderr, "sgemm_ceiling: could not run %u threads (out of memory or threads)\n",
              opt.threads[i]);
      status = 1;
      goto done;
    }
  }

  if (opt.json) {
    printf("{\"program\": \"sgemm_ceiling\", \"rows\": %llu, \"dim\": %u, \"k\": %u, "
           "\"flops_per_pass\": %.0f, \"results\": [",
           (unsigned long long)opt.rows, opt.dim, opt.k,
           bench_assign_flops(opt.rows, opt.dim, opt.k));
    for (int i = 0; i < opt.n_threads; i++) {
      const measure *m = &results[i];
      printf("%s{\"threads\": %u, \"tile_rows\": %llu, \"transposed\": %d, \"seconds\": [",
             i ? ", " : "", m->config.threads, (unsigned long long)m->config.tile_rows,
             m->config.transposed);
      for (int r = 0; r < m->reps; r++)
        printf("%s%.6f", r ? ", " : "", m->seconds[r]);
      printf("], \"median_seconds\": %.6f, \"gflops_median\": %.2f, \"gflops_best\": %.2f, "
             "\"checked\": %s, \"bad_tiles\": %llu}",
             m->median, gflops(&m->config, m->median), gflops(&m->config, m->best),
             m->checked ? "true" : "false", (unsigned long long)m->bad_tiles);
    }
    printf("]}\n");
  } else {
    printf("bare cblas_sgemm, %llu x %u rows times %u x %u centroids (%.1f GFLOP per pass)\n",
           (unsigned long long)opt.rows, opt.dim, opt.dim, opt.k,
           bench_assign_flops(opt.rows, opt.dim, opt.k) * 1e-9);
    printf("%8s %10s %11s %12s %14s %14s %12s\n", "threads", "tile rows", "transposed", "s/pass",
           "GFLOP/s (med)", "GFLOP/s (best)", "wrong tiles");
    for (int i = 0; i < opt.n_threads; i++) {
      const measure *m = &results[i];
      char bad[32];
      if (m->checked)
        snprintf(bad, sizeof bad, "%llu", (unsigned long long)m->bad_tiles);
      else
        snprintf(bad, sizeof bad, "-");
      printf("%8u %10llu %11d %12.4f %14.1f %14.1f %12s\n", m->config.threads,
             (unsigned long long)m->config.tile_rows, m->config.transposed, m->median,
             gflops(&m->config, m->median), gflops(&m->config, m->best), bad);
    }
  }
done:
  free(x);
  free(c);
  return status;
}
