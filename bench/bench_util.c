/*
 * bench_util.c - see bench_util.h.
 */
#include "bench_util.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t bench_peak_rss_bytes(void) {
  /* VmHWM, the high-water mark of this process image. Not ru_maxrss: Linux
   * carries that across fork and exec, so a child started by a driver that
   * holds a large dataset would report the driver's peak as its own. */
  FILE *f = fopen("/proc/self/status", "r");
  if (f) {
    char line[256];
    unsigned long long kib;
    while (fgets(line, sizeof line, f))
      if (sscanf(line, "VmHWM: %llu kB", &kib) == 1) {
        fclose(f);
        return (uint64_t)kib * 1024u;
      }
    fclose(f);
  }
  struct rusage usage;
  if (getrusage(RUSAGE_SELF, &usage) != 0)
    return 0;
  return (uint64_t)usage.ru_maxrss * 1024u; /* KiB on Linux */
}

int bench_array_bytes(uint64_t rows, uint64_t cols, uint64_t elem, size_t *out) {
  uint64_t n, b;
  if (__builtin_mul_overflow(rows, cols, &n) || __builtin_mul_overflow(n, elem, &b) ||
      b > (uint64_t)SIZE_MAX)
    return 0;
  *out = (size_t)b;
  return 1;
}

/* xoshiro256** seeded through splitmix64, as its authors recommend: a fixed
 * generator so that a seed names the same data everywhere (rand() does not). */
typedef struct bench_rng {
  uint64_t s[4];
} bench_rng;

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(bench_rng *rng) {
  uint64_t *s = rng->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

/* Uniform in (0, 1]: never 0, so that log() below stays finite. */
static double rng_uniform(bench_rng *rng) {
  return ((double)(rng_next(rng) >> 11) + 1.0) * 0x1.0p-53;
}

void bench_fill_normal(float *out, size_t count, uint64_t seed) {
  bench_rng rng;
  uint64_t state = seed;
  for (int i = 0; i < 4; i++)
    rng.s[i] = splitmix64(&state);
  size_t i = 0;
  while (i < count) {
    /* Box-Muller gives two independent normals per pair of uniforms. */
    double r = sqrt(-2.0 * log(rng_uniform(&rng)));
    double theta = 2.0 * M_PI * rng_uniform(&rng);
    out[i++] = (float)(r * cos(theta));
    if (i < count)
      out[i++] = (float)(r * sin(theta));
  }
}

int bench_write_npy_f32(const char *path, const float *data, uint64_t rows, uint64_t cols) {
  size_t bytes;
  if (!bench_array_bytes(rows, cols, sizeof(float), &bytes)) {
    errno = EOVERFLOW;
    return -1;
  }
  char header[128];
  int len = snprintf(header, sizeof header,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%llu, %llu), }",
                     (unsigned long long)rows, (unsigned long long)cols);
  if (len < 0 || (size_t)len >= sizeof header - 16) {
    errno = EOVERFLOW;
    return -1;
  }
  /* The format pads the header with spaces and a newline so that the data
   * starts at a multiple of 64 bytes (magic 6 + version 2 + length 2). */
  size_t total = 10 + (size_t)len + 1;
  size_t padded = (total + 63) / 64 * 64;
  size_t header_len = padded - 10;
  memset(header + len, ' ', header_len - (size_t)len - 1);
  header[header_len - 1] = '\n';

  FILE *f = fopen(path, "wb");
  if (!f)
    return -1;
  unsigned char preamble[10] = {0x93,
                                'N',
                                'U',
                                'M',
                                'P',
                                'Y',
                                1,
                                0,
                                (unsigned char)(header_len & 0xff),
                                (unsigned char)(header_len >> 8)};
  int ok = fwrite(preamble, 1, sizeof preamble, f) == sizeof preamble &&
           fwrite(header, 1, header_len, f) == header_len &&
           (bytes == 0 || fwrite(data, 1, bytes, f) == bytes);
  int saved = errno;
  if (fclose(f) != 0 && ok) {
    ok = 0;
    saved = errno;
  }
  if (!ok) {
    remove(path);
    errno = saved;
    return -1;
  }
  return 0;
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double bench_median(const double *values, size_t count) {
  double *copy = malloc(count * sizeof *copy);
  if (!copy)
    return NAN;
  memcpy(copy, values, count * sizeof *copy);
  qsort(copy, count, sizeof *copy, compare_double);
  double m = count % 2 ? copy[count / 2] : 0.5 * (copy[count / 2 - 1] + copy[count / 2]);
  free(copy);
  return m;
}

double bench_assign_flops(uint64_t rows, uint32_t dim, uint32_t k) {
  return 2.0 * (double)rows * (double)k * (double)dim;
}

/* ------------------------------------------------------------------------ */
/* The sgemm ceiling                                                          */
/* ------------------------------------------------------------------------ */

typedef struct sgemm_job {
  const bench_sgemm_config *config;
  const float *x; /* first row of this thread's share */
  const float *c;
  uint64_t rows; /* rows in this thread's share */
  int reps;
  pthread_barrier_t *barrier;
  float *out;
  const uint64_t *expected; /* per tile: hash of the serial product, or NULL */
  uint64_t bad_tiles;       /* tiles whose concurrent product differed */
} sgemm_job;

/* FNV-1a over the bits of a tile's product: equal products hash equal, and
 * one wrong value almost surely changes the hash. */
static uint64_t hash_floats(const float *v, size_t count) {
  uint64_t h = UINT64_C(1469598103934665603);
  for (size_t i = 0; i < count; i++) {
    uint32_t bits;
    memcpy(&bits, &v[i], sizeof bits);
    h = (h ^ bits) * UINT64_C(1099511628211);
  }
  return h;
}

static void sgemm_tile(const sgemm_job *job, const float *x, uint64_t rows) {
  const bench_sgemm_config *cfg = job->config;
  int m = (int)rows, k = (int)cfg->k, d = (int)cfg->dim;
  if (cfg->transposed)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, k, m, d, 1.0f, job->c, d, x, d, 0.0f,
                job->out, m);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, k, d, 1.0f, x, d, job->c, d, 0.0f,
                job->out, k);
}

static void *sgemm_worker(void *arg) {
  sgemm_job *job = arg;
  const bench_sgemm_config *cfg = job->config;
  uint64_t tile = cfg->tile_rows ? cfg->tile_rows : job->rows;
  /* One untimed tile first: OpenBLAS allocates its buffers on first use. */
  if (job->rows > 0)
    sgemm_tile(job, job->x, tile < job->rows ? tile : job->rows);
  for (int r = 0; r < job->reps; r++) {
    pthread_barrier_wait(job->barrier);
    for (uint64_t first = 0; first < job->rows; first += tile) {
      uint64_t count = job->rows - first < tile ? job->rows - first : tile;
      sgemm_tile(job, job->x + first * cfg->dim, count);
    }
    pthread_barrier_wait(job->barrier);
  }
  if (job->expected) {
    /* The check pass: the same concurrent calls, each product compared with
     * the one computed by a lone thread beforehand. */
    pthread_barrier_wait(job->barrier);
    uint64_t i = 0;
    for (uint64_t first = 0; first < job->rows; first += tile, i++) {
      uint64_t count = job->rows - first < tile ? job->rows - first : tile;
      sgemm_tile(job, job->x + first * cfg->dim, count);
      if (hash_floats(job->out, (size_t)count * cfg->k) != job->expected[i])
        job->bad_tiles++;
    }
    pthread_barrier_wait(job->barrier);
  }
  return NULL;
}

int bench_sgemm_run(const bench_sgemm_config *config, const float *x, const float *c, int reps,
                    double *seconds, uint64_t *bad_tiles) {
  uint32_t t_count = config->threads;
  if (t_count == 0 || reps < 1 || config->rows == 0 || config->k == 0 || config->dim == 0 ||
      config->k > INT32_MAX || config->dim > INT32_MAX)
    return -1;
  sgemm_job *jobs = calloc(t_count, sizeof *jobs);
  pthread_t *ids = calloc(t_count, sizeof *ids);
  pthread_barrier_t barrier;
  int rc = -1, started = 0, barrier_ready = 0;
  if (!jobs || !ids)
    goto done;
  if (pthread_barrier_init(&barrier, NULL, t_count + 1) != 0)
    goto done;
  barrier_ready = 1;
  for (uint32_t t = 0; t < t_count; t++) {
    uint64_t first = config->rows * t / t_count, last = config->rows * (t + 1) / t_count;
    uint64_t tile = config->tile_rows ? config->tile_rows : last - first;
    if (tile == 0)
      tile = 1;
    size_t out_bytes;
    /* cblas takes int sizes. */
    if (tile > INT32_MAX || !bench_array_bytes(tile, config->k, sizeof(float), &out_bytes))
      goto done;
    jobs[t] = (sgemm_job){.config = config,
                          .x = x + first * config->dim,
                          .c = c,
                          .rows = last - first,
                          .reps = reps,
                          .barrier = &barrier};
    jobs[t].out = aligned_alloc(64, (out_bytes + 63) / 64 * 64);
    if (!jobs[t].out)
      goto done;
    if (bad_tiles) {
      /* The reference hashes, computed by this thread alone, one tile at a
       * time, before any worker starts. */
      uint64_t tiles = (jobs[t].rows + tile - 1) / tile;
      uint64_t *expected = malloc((tiles ? tiles : 1) * sizeof *expected);
      if (!expected)
        goto done;
      jobs[t].expected = expected;
      uint64_t i = 0;
      for (uint64_t f = 0; f < jobs[t].rows; f += tile, i++) {
        uint64_t count = jobs[t].rows - f < tile ? jobs[t].rows - f : tile;
        sgemm_tile(&jobs[t], jobs[t].x + f * config->dim, count);
        expected[i] = hash_floats(jobs[t].out, (size_t)count * config->k);
      }
    }
  }
  for (uint32_t t = 0; t < t_count; t++) {
    if (pthread_create(&ids[t], NULL, sgemm_worker, &jobs[t]) != 0)
      break;
    started++;
  }
  if ((uint32_t)started != t_count) {
    /* The barrier counts every thread: without all of them it would never
     * open, so the started ones are cancelled before they reach it. */
    for (int t = 0; t < started; t++)
      pthread_cancel(ids[t]);
    for (int t = 0; t < started; t++)
      pthread_join(ids[t], NULL);
    started = 0;
    goto done;
  }
  for (int r = 0; r < reps; r++) {
    pthread_barrier_wait(&barrier);
    double t0 = bench_now();
    pthread_barrier_wait(&barrier);
    seconds[r] = bench_now() - t0;
  }
  if (bad_tiles) {
    pthread_barrier_wait(&barrier);
    pthread_barrier_wait(&barrier);
    for (int t = 0; t < started; t++)
      pthread_join(ids[t], NULL);
    started = 0;
    *bad_tiles = 0;
    for (uint32_t t = 0; t < t_count; t++)
      *bad_tiles += jobs[t].bad_tiles;
  }
  rc = 0;
done:
  for (int t = 0; t < started; t++)
    pthread_join(ids[t], NULL);
  if (barrier_ready)
    pthread_barrier_destroy(&barrier);
  if (jobs)
    for (uint32_t t = 0; t < t_count; t++) {
      free(jobs[t].out);
      free((void *)jobs[t].expected);
    }
  free(jobs);
  free(ids);
  return rc;
}

int bench_parse_u64(const char *prog, const char *text, const char *what, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno || end == text || *end != '\0' || text[0] == '-') {
    fprintf(stderr, "%s: %s must be a non-negative integer, got '%s'\n", prog, what, text);
    return -1;
  }
  *out = v;
  return 0;
}

int bench_parse_u32(const char *prog, const char *text, const char *what, uint32_t min,
                    uint32_t max, uint32_t *out) {
  uint64_t v;
  if (bench_parse_u64(prog, text, what, &v) != 0)
    return -1;
  if (v < min || v > max) {
    fprintf(stderr, "%s: %s must be between %u and %u, got '%s'\n", prog, what, min, max, text);
    return -1;
  }
  *out = (uint32_t)v;
  return 0;
}
