/*
 * bench_disk.c - the on-disk mode's benchmarks (see docs/disk.md).
 *
 *   bench_disk io  [--dir D] [--mib N] [--block-mib B] [--reps R] [--cold]
 *       How to read a spill file back: pread into two buffers on a reader
 *       thread with POSIX_FADV_WILLNEED one block ahead (what spill.c does)
 *       against mmap with MADV_WILLNEED / MADV_POPULATE_READ on the reader
 *       thread and MADV_DONTNEED behind the consumer, and against plain mmap
 *       with nothing dropped (the design that grew to the size of the file).
 *       A consumer thread sums every value of each block, as the engine's
 *       GEMM touches every value. Each pass runs in a child process so that
 *       its peak RSS is its own. --cold evicts the file from the page cache
 *       before each pass (POSIX_FADV_DONTNEED after fsync; dropping all
 *       caches needs privileges the benchmark should not need).
 *
 *   bench_disk ref [--rows 131072] [--dim 128] [--k 512] [--iters 10]
 *                  [--reps 3] [--dir D] [--threads T]
 *       The reference workload in memory and on disk, alternating A B A B,
 *       and the median disk/memory time ratio (goal <= 1.02).
 *
 *   bench_disk gen --out F.npy [--rows 8388608] [--dim 128] [--seed 1]
 *       Writes random normal float32 rows as .npy, in chunks.
 *
 *   bench_disk large --file F.npy --storage memory|disk [--k 1024]
 *                    [--iters 3] [--mppc 0] [--dir D] [--threads T] [--cold]
 *       Trains once on a large file and prints seconds per iteration and the
 *       peak RSS of the process (run it once per storage: ru_maxrss is per
 *       process). --cold evicts the input file from the page cache first.
 *
 * Every mode prints one JSON object per measurement on stdout.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "diskmeans.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif

static const char *arg_str(int argc, char **argv, const char *name, const char *def) {
  for (int i = 2; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0)
      return argv[i + 1];
  return def;
}

static uint64_t arg_u64(int argc, char **argv, const char *name, uint64_t def) {
  const char *s = arg_str(argc, argv, name, NULL);
  return s == NULL ? def : strtoull(s, NULL, 10);
}

static int arg_flag(int argc, char **argv, const char *name) {
  for (int i = 2; i < argc; i++)
    if (strcmp(argv[i], name) == 0)
      return 1;
  return 0;
}

static void die(const char *what) {
  fprintf(stderr, "bench_disk: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* Evicts a file's pages from the page cache (they must be clean first). */
static void evict(int fd) {
  if (fdatasync(fd) != 0)
    die("fdatasync");
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
}

/* --- io: pread versus mmap ------------------------------------------------ */

enum { IO_PREAD, IO_MMAP, IO_MMAP_NODROP };
static const char *const io_names[] = {"pread+fadvise", "mmap+populate+dontneed", "mmap-nodrop"};

/* The reader thread produces blocks into two slots; the consumer sums them.
 * Exactly the engine's double buffering: block i+1 is read while block i is
 * consumed. */
typedef struct io_pipe {
  int strategy;
  int fd;
  size_t file_bytes, block_bytes;
  unsigned char *map;    /* mmap strategies */
  unsigned char *buf[2]; /* pread strategy */
  const unsigned char *ready[2];
  size_t len[2];
  int full[2];
  pthread_mutex_t lock;
  pthread_cond_t cond;
  double reader_wait; /* seconds the consumer waited for data */
} io_pipe;

static void *io_reader(void *arg) {
  io_pipe *p = arg;
  size_t nblocks = (p->file_bytes + p->block_bytes - 1) / p->block_bytes;
  for (size_t b = 0; b < nblocks; b++) {
    int slot = (int)(b % 2);
    pthread_mutex_lock(&p->lock);
    while (p->full[slot])
      pthread_cond_wait(&p->cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
    size_t off = b * p->block_bytes;
    size_t len = p->file_bytes - off < p->block_bytes ? p->file_bytes - off : p->block_bytes;
    size_t next = off + p->block_bytes;
    size_t next_len = next < p->file_bytes ? p->file_bytes - next : 0;
    if (next_len > p->block_bytes)
      next_len = p->block_bytes;
    const unsigned char *data;
    if (p->strategy == IO_PREAD) {
      if (next_len > 0)
        posix_fadvise(p->fd, (off_t)next, (off_t)next_len, POSIX_FADV_WILLNEED);
      size_t done = 0;
      while (done < len) {
        ssize_t n = pread(p->fd, p->buf[slot] + done, len - done, (off_t)(off + done));
        if (n <= 0)
          die("pread");
        done += (size_t)n;
      }
      data = p->buf[slot];
    } else {
      if (next_len > 0)
        madvise(p->map + next, next_len, MADV_WILLNEED);
      /* Fault the block in here, on the reader thread, so the consumer does
       * not take the page faults itself. */
      if (madvise(p->map + off, len, MADV_POPULATE_READ) != 0)
        die("madvise(MADV_POPULATE_READ)");
      data = p->map + off;
    }
    pthread_mutex_lock(&p->lock);
    p->ready[slot] = data;
    p->len[slot] = len;
    p->full[slot] = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
  }
  return NULL;
}

static double io_pass(int strategy, int fd, size_t file_bytes, size_t block_bytes, double *sum_out,
                      double *wait_out) {
  io_pipe p = {
      .strategy = strategy, .fd = fd, .file_bytes = file_bytes, .block_bytes = block_bytes};
  pthread_mutex_init(&p.lock, NULL);
  pthread_cond_init(&p.cond, NULL);
  if (strategy == IO_PREAD) {
    for (int i = 0; i < 2; i++)
      if ((p.buf[i] = aligned_alloc(4096, block_bytes)) == NULL)
        die("aligned_alloc");
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  } else {
    p.map = mmap(NULL, file_bytes, PROT_READ, MAP_SHARED, fd, 0);
    if (p.map == MAP_FAILED)
      die("mmap");
    madvise(p.map, file_bytes, MADV_SEQUENTIAL);
  }
  double t0 = bench_now();
  pthread_t th;
  pthread_create(&th, NULL, io_reader, &p);
  size_t nblocks = (file_bytes + block_bytes - 1) / block_bytes;
  double sum = 0, waited = 0;
  for (size_t b = 0; b < nblocks; b++) {
    int slot = (int)(b % 2);
    double w0 = bench_now();
    pthread_mutex_lock(&p.lock);
    while (!p.full[slot])
      pthread_cond_wait(&p.cond, &p.lock);
    const float *x = (const float *)p.ready[slot];
    size_t n = p.len[slot] / sizeof(float);
    pthread_mutex_unlock(&p.lock);
    waited += bench_now() - w0;
    float acc[16] = {0};
    for (size_t i = 0; i + 16 <= n; i += 16)
      for (int j = 0; j < 16; j++)
        acc[j] += x[i + j];
    for (int j = 0; j < 16; j++)
      sum += acc[j];
    if (strategy == IO_MMAP)
      madvise((void *)x, p.len[slot], MADV_DONTNEED);
    pthread_mutex_lock(&p.lock);
    p.full[slot] = 0;
    pthread_cond_broadcast(&p.cond);
    pthread_mutex_unlock(&p.lock);
  }
  pthread_join(th, NULL);
  double seconds = bench_now() - t0;
  if (strategy == IO_PREAD) {
    free(p.buf[0]);
    free(p.buf[1]);
  } else {
    munmap(p.map, file_bytes);
  }
  *sum_out = sum;
  *wait_out = waited;
  return seconds;
}

static int mode_io(int argc, char **argv) {
  const char *dir = arg_str(argc, argv, "--dir", "/tmp");
  size_t mib = arg_u64(argc, argv, "--mib", 2048);
  size_t block_mib = arg_u64(argc, argv, "--block-mib", 8);
  int reps = (int)arg_u64(argc, argv, "--reps", 3);
  int cold = arg_flag(argc, argv, "--cold");
  size_t file_bytes = mib << 20, block_bytes = block_mib << 20;
  int fd = open(dir, O_TMPFILE | O_RDWR, 0600);
  if (fd < 0)
    die("open(O_TMPFILE)");
  size_t chunk = 8u << 20;
  float *data = malloc(chunk);
  if (data == NULL)
    die("malloc");
  for (size_t off = 0; off < file_bytes; off += chunk) {
    bench_fill_normal(data, chunk / sizeof(float), off);
    if (pwrite(fd, data, chunk, (off_t)off) != (ssize_t)chunk)
      die("pwrite");
  }
  free(data);
  /* A pass reads what the previous pass left in the page cache: warm up once
   * so that the first measured pass is no different from the others. */
  for (int r = 0; r < reps; r++) {
    for (int s = 0; s < 3; s++) {
      if (cold)
        evict(fd);
      int fds[2];
      if (pipe(fds) != 0)
        die("pipe");
      pid_t pid = fork();
      if (pid < 0)
        die("fork");
      if (pid == 0) {
        close(fds[0]);
        double sum, waited;
        double sec = io_pass(s, fd, file_bytes, block_bytes, &sum, &waited);
        double out[3] = {sec, waited, sum};
        if (write(fds[1], out, sizeof out) != sizeof out)
          _exit(1);
        _exit(0);
      }
      close(fds[1]);
      double in[3] = {0};
      if (read(fds[0], in, sizeof in) != sizeof in)
        die("child result");
      close(fds[0]);
      int status;
      struct rusage ru;
      if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("child");
      printf("{\"mode\":\"io\",\"strategy\":\"%s\",\"rep\":%d,\"cold\":%d,\"mib\":%zu,"
             "\"block_mib\":%zu,\"seconds\":%.4f,\"gib_per_s\":%.2f,\"consumer_wait_s\":%.4f,"
             "\"peak_rss_mib\":%.1f,\"checksum\":%.6g}\n",
             io_names[s], r, cold, mib, block_mib, in[0], (double)mib / 1024.0 / in[0], in[1],
             (double)ru.ru_maxrss / 1024.0, in[2]);
      fflush(stdout);
    }
  }
  close(fd);
  return 0;
}

/* --- ref: the reference workload, memory against disk --------------------- */

/* CPU seconds (user + system) of the whole process: less sensitive than
 * wall time to the other processes of a shared machine. */
static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
         (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static double last_cpu; /* CPU seconds of the last train_once() */

static double train_once(dkm_ctx *ctx, dkm_source *src, const dkm_params *params,
                         dkm_result **out) {
  double c0 = cpu_seconds();
  double t0 = bench_now();
  dkm_status st = dkm_train(ctx, params, src, out);
  double sec = bench_now() - t0;
  last_cpu = cpu_seconds() - c0;
  if (st != DKM_OK) {
    fprintf(stderr, "bench_disk: dkm_train: %s\n", dkm_ctx_errmsg(ctx));
    exit(1);
  }
  return sec;
}

static int mode_ref(int argc, char **argv) {
  uint64_t rows = arg_u64(argc, argv, "--rows", 131072);
  uint32_t dim = (uint32_t)arg_u64(argc, argv, "--dim", 128);
  int reps = (int)arg_u64(argc, argv, "--reps", 3);
  size_t bytes;
  if (!bench_array_bytes(rows, dim, sizeof(float), &bytes))
    return 1;
  float *x = malloc(bytes);
  if (x == NULL)
    die("malloc");
  bench_fill_normal(x, bytes / sizeof(float), 42);
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_source *src = NULL;
  if (dkm_source_from_memory(ctx, x, DKM_DTYPE_F32, rows, dim, &src) != DKM_OK)
    return 1;
  dkm_params params;
  dkm_params_init(&params);
  params.k = (uint32_t)arg_u64(argc, argv, "--k", 512);
  params.max_iter = (uint32_t)arg_u64(argc, argv, "--iters", 10);
  params.tol = 0;
  params.n_threads = (uint32_t)arg_u64(argc, argv, "--threads", 0);
  params.tmp_dir = arg_str(argc, argv, "--dir", "/tmp");
  double times[2][64], cpu[2][64], iters[2][64];
  dkm_result *first = NULL;
  int all_same = 1;
  if (reps > 64)
    reps = 64;
  for (int r = 0; r < reps; r++) {
    for (int m = 0; m < 2; m++) {
      params.storage = m == 0 ? DKM_STORAGE_MEMORY : DKM_STORAGE_DISK;
      dkm_result *res = NULL;
      times[m][r] = train_once(ctx, src, &params, &res);
      cpu[m][r] = last_cpu;
      iters[m][r] = 0;
      for (uint32_t i = 0; i < res->n_iter; i++)
        iters[m][r] += res->iters[i].seconds;
      /* Every run must give the first run's centroids, bit for bit. */
      int same = first == NULL || memcmp(first->centroids, res->centroids,
                                         (size_t)res->k * res->dim * sizeof(float)) == 0;
      all_same &= same;
      printf("{\"mode\":\"ref\",\"storage\":\"%s\",\"rep\":%d,\"seconds\":%.4f,"
             "\"cpu_seconds\":%.4f,\"iter_seconds\":%.4f,"
             "\"sample_seconds\":%.4f,\"spill_bytes\":%llu,\"objective\":%.9g,"
             "\"identical\":%s}\n",
             dkm_storage_name(res->storage), r, times[m][r], cpu[m][r], iters[m][r],
             res->sample_seconds, (unsigned long long)res->spill_bytes, res->objective,
             same ? "true" : "false");
      fflush(stdout);
      if (first == NULL)
        first = res;
      else
        dkm_result_free(res);
    }
  }
  size_t nr = (size_t)reps;
  double mem = bench_median(times[0], nr), disk = bench_median(times[1], nr);
  double mem_cpu = bench_median(cpu[0], nr), disk_cpu = bench_median(cpu[1], nr);
  double mem_it = bench_median(iters[0], nr), disk_it = bench_median(iters[1], nr);
  printf("{\"mode\":\"ref\",\"median_memory_s\":%.4f,\"median_disk_s\":%.4f,"
         "\"disk_over_memory\":%.4f,\"cpu_disk_over_memory\":%.4f,"
         "\"iterations_disk_over_memory\":%.4f,\"identical_centroids\":%s}\n",
         mem, disk, disk / mem, disk_cpu / mem_cpu, disk_it / mem_it, all_same ? "true" : "false");
  dkm_result_free(first);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  free(x);
  return all_same ? 0 : 2;
}

/* --- gen: a large .npy file, written in chunks ----------------------------- */

static int mode_gen(int argc, char **argv) {
  const char *out = arg_str(argc, argv, "--out", NULL);
  uint64_t rows = arg_u64(argc, argv, "--rows", UINT64_C(8388608));
  uint32_t dim = (uint32_t)arg_u64(argc, argv, "--dim", 128);
  uint64_t seed = arg_u64(argc, argv, "--seed", 1);
  if (out == NULL) {
    fprintf(stderr, "bench_disk gen: --out is required\n");
    return 1;
  }
  char header[128];
  int n = snprintf(header, sizeof header,
                   "{'descr': '<f4', 'fortran_order': False, 'shape': (%llu, %u), }",
                   (unsigned long long)rows, dim);
  /* magic (6) + version (2) + length (2) + dict, padded with spaces to a
   * multiple of 64 and ended by a newline. */
  size_t total = 10 + (size_t)n + 1;
  size_t pad = (64 - total % 64) % 64;
  unsigned char pre[256];
  memcpy(pre, "\x93NUMPY\x01\x00", 8);
  uint16_t hlen = (uint16_t)(n + pad + 1);
  pre[8] = (unsigned char)(hlen & 0xff);
  pre[9] = (unsigned char)(hlen >> 8);
  memcpy(pre + 10, header, (size_t)n);
  memset(pre + 10 + n, ' ', pad);
  pre[10 + n + pad] = '\n';
  FILE *f = fopen(out, "wb");
  if (f == NULL)
    die(out);
  if (fwrite(pre, 1, total + pad, f) != total + pad)
    die("write");
  uint64_t chunk_rows = (UINT64_C(16) << 20) / (sizeof(float) * dim);
  float *buf = malloc(chunk_rows * dim * sizeof(float));
  if (buf == NULL)
    die("malloc");
  for (uint64_t r = 0; r < rows; r += chunk_rows) {
    uint64_t c = rows - r < chunk_rows ? rows - r : chunk_rows;
    bench_fill_normal(buf, (size_t)(c * dim), seed * 1000003u + r);
    if (fwrite(buf, sizeof(float) * dim, c, f) != c)
      die("write");
  }
  free(buf);
  if (fclose(f) != 0)
    die("close");
  return 0;
}

/* --- large: one training run on a large file ------------------------------ */

/* CPU seconds at the end of the sample phase and of each iteration: CPU
 * time per iteration is much less sensitive than wall time to the other
 * processes of a shared machine. */
typedef struct iter_clock {
  double cpu_at[65];
  uint32_t marks;
} iter_clock;

static int progress_iter(void *user, const dkm_progress *p) {
  iter_clock *c = user;
  if (p->done != p->total || c->marks >= 65)
    return 0;
  if (p->phase == DKM_PHASE_INIT || (p->phase == DKM_PHASE_ITERATE && c->marks > 0)) {
    c->cpu_at[c->marks++] = cpu_seconds();
    if (p->phase == DKM_PHASE_ITERATE)
      fprintf(stderr, "  iteration %u done\n", p->iteration);
  }
  return 0;
}

static int mode_large(int argc, char **argv) {
  const char *file = arg_str(argc, argv, "--file", NULL);
  const char *storage = arg_str(argc, argv, "--storage", "disk");
  if (file == NULL) {
    fprintf(stderr, "bench_disk large: --file is required\n");
    return 1;
  }
  if (arg_flag(argc, argv, "--cold")) {
    int fd = open(file, O_RDONLY);
    if (fd < 0)
      die(file);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
  }
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  dkm_source *src = NULL;
  if (dkm_source_open_file(ctx, file, NULL, &src) != DKM_OK) {
    fprintf(stderr, "bench_disk: %s\n", dkm_ctx_errmsg(ctx));
    return 1;
  }
  dkm_params params;
  dkm_params_init(&params);
  params.k = (uint32_t)arg_u64(argc, argv, "--k", 1024);
  params.max_iter = (uint32_t)arg_u64(argc, argv, "--iters", 3);
  params.tol = 0;
  params.max_points_per_centroid = arg_u64(argc, argv, "--mppc", 0);
  params.n_threads = (uint32_t)arg_u64(argc, argv, "--threads", 0);
  params.tmp_dir = arg_str(argc, argv, "--dir", "/tmp");
  params.storage = strcmp(storage, "memory") == 0 ? DKM_STORAGE_MEMORY : DKM_STORAGE_DISK;
  iter_clock clock = {{0}, 0};
  params.progress = progress_iter;
  params.progress_user = &clock;
  dkm_plan plan;
  if (dkm_plan_training(ctx, &params, src, &plan) != DKM_OK) {
    fprintf(stderr, "bench_disk: %s\n", dkm_ctx_errmsg(ctx));
    return 1;
  }
  dkm_result *res = NULL;
  double sec = train_once(ctx, src, &params, &res);
  double iter_sum = 0;
  for (uint32_t i = 0; i < res->n_iter; i++)
    iter_sum += res->iters[i].seconds;
  double cpu_per_iter =
      clock.marks > 1 ? (clock.cpu_at[clock.marks - 1] - clock.cpu_at[0]) / (clock.marks - 1) : 0;
  printf(
      "{\"mode\":\"large\",\"storage\":\"%s\",\"from_source\":%d,\"rows\":%llu,"
      "\"sample_rows\":%llu,\"sample_mib\":%.1f,\"spill_mib\":%.1f,\"seconds\":%.3f,"
      "\"sample_seconds\":%.3f,\"init_seconds\":%.3f,\"seconds_per_iter\":%.3f,"
      "\"cpu_seconds_per_iter\":%.3f,\"cpu_seconds\":%.3f,"
      "\"peak_rss_mib\":%.1f,\"plan_ram_mib\":%.1f,\"objective\":%.9g}\n",
      dkm_storage_name(res->storage), res->from_source, (unsigned long long)res->rows,
      (unsigned long long)res->sample_rows, (double)plan.sample_bytes / 1048576.0,
      (double)res->spill_bytes / 1048576.0, sec, res->sample_seconds, res->init_seconds,
      iter_sum / res->n_iter, cpu_per_iter, last_cpu, (double)bench_peak_rss_bytes() / 1048576.0,
      (double)(res->storage == DKM_STORAGE_DISK ? plan.disk_mode_bytes : plan.memory_mode_bytes) /
          1048576.0,
      res->objective);
  dkm_result_free(res);
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  return 0;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "io") == 0)
    return mode_io(argc, argv);
  if (strcmp(mode, "ref") == 0)
    return mode_ref(argc, argv);
  if (strcmp(mode, "gen") == 0)
    return mode_gen(argc, argv);
  if (strcmp(mode, "large") == 0)
    return mode_large(argc, argv);
  fprintf(stderr, "usage: bench_disk io|ref|gen|large [options] (see docs/disk.md)\n");
  return 1;
}
