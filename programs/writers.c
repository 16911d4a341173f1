/*
 * writers.c - the output formats: .npy (centroids, labels, distances) and
 * .fvecs (centroids).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define NPY_ENDIAN ">"
#else
#define NPY_ENDIAN "<"
#endif

/* The data of every .npy we write starts at a multiple of 64 bytes, so that
 * a reader that maps the file gets aligned rows (numpy itself pads to 64
 * since 1.x for the same reason). */
#define NPY_ALIGN 64

size_t cli_npy_header(char *buf, size_t size, const char *descr, uint64_t rows, uint32_t cols,
                      const char *comment) {
  char dict[256];
  int n;
  if (cols == 0) {
    n = snprintf(dict, sizeof dict,
                 "{'descr': '" NPY_ENDIAN "%s', 'fortran_order': False, 'shape': (%llu,), }%s%s",
                 descr, (unsigned long long)rows, comment != NULL ? " # " : "",
                 comment != NULL ? comment : "");
  } else {
    n = snprintf(dict, sizeof dict,
                 "{'descr': '" NPY_ENDIAN "%s', 'fortran_order': False, 'shape': (%llu, %u), }%s%s",
                 descr, (unsigned long long)rows, cols, comment != NULL ? " # " : "",
                 comment != NULL ? comment : "");
  }
  if (n < 0 || (size_t)n >= sizeof dict) {
    return 0;
  }
  /* magic (6) + version (2) + header length (2) + dict + spaces + '\n'. */
  size_t total = 10 + (size_t)n + 1;
  total = (total + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
  if (total > size) {
    return 0;
  }
  size_t header_len = total - 10;
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (char)(header_len & 0xff);
  buf[9] = (char)(header_len >> 8);
  memcpy(buf + 10, dict, (size_t)n);
  memset(buf + 10 + n, ' ', total - 10 - (size_t)n - 1);
  buf[total - 1] = '\n';
  return total;
}

const char *cli_extension(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *base = slash != NULL ? slash + 1 : path;
  const char *dot = strrchr(base, '.');
  return dot != NULL && dot != base ? dot : "";
}

cli_out_kind cli_output_kind(const char *path) {
  const char *ext = cli_extension(path);
  if (strcasecmp(ext, ".npy") == 0) {
    return CLI_OUT_NPY;
  }
  if (strcasecmp(ext, ".fvecs") == 0) {
    return CLI_OUT_FVECS;
  }
  return CLI_OUT_OTHER;
}

int cli_write_centroids(cli_outfile *f, const float *centroids, uint32_t k, uint32_t dim,
                        dkm_metric metric) {
  if (cli_output_kind(f->target) == CLI_OUT_NPY) {
    /* The metric rides along as a Python comment after the header dict:
     * numpy.load reads the dict with ast.literal_eval, which skips
     * comments, while an extra key would make it refuse the file. */
    char comment[64];
    snprintf(comment, sizeof comment, CLI_METRIC_TAG "%s", dkm_metric_name(metric));
    char header[256];
    size_t hlen = cli_npy_header(header, sizeof header, "f4", k, dim, comment);
    if (hlen == 0) {
      cli_error("%s: cannot build the .npy header", f->target);
      return -1;
    }
    /* k and dim are 32-bit, so k * dim * 4 fits in 64 bits; the array
     * exists in memory, so it fits in size_t too. */
    size_t bytes = (size_t)k * dim * sizeof(float);
    if (cli_outfile_write(f, header, hlen) != 0 || cli_outfile_write(f, centroids, bytes) != 0) {
      return -1;
    }
    return 0;
  }
  /* .fvecs: each row is its dimension as int32, then the floats. */
  int32_t d = (int32_t)dim;
  if (dim > INT32_MAX) {
    cli_error("%s: dimension %u does not fit an .fvecs header", f->target, dim);
    return -1;
  }
  for (uint32_t i = 0; i < k; i++) {
    if (cli_outfile_write(f, &d, sizeof d) != 0 ||
        cli_outfile_write(f, centroids + (size_t)i * dim, (size_t)dim * sizeof(float)) != 0) {
      return -1;
    }
  }
  return 0;
}

int cli_npy_map_open(cli_npy_map *m, const char *target) {
  m->map = NULL;
  m->map_size = 0;
  m->data = NULL;
  return cli_outfile_open(&m->file, target);
}

int cli_npy_map_size(cli_npy_map *m, const char *descr, uint64_t rows) {
  char header[256];
  size_t hlen = cli_npy_header(header, sizeof header, descr, rows, 0, NULL);
  if (hlen == 0) {
    cli_error("%s: cannot build the .npy header", m->file.target);
    return -1;
  }
  if (rows > (SIZE_MAX - hlen) / 4) {
    cli_error("%s: %llu rows are too many for this machine", m->file.target,
              (unsigned long long)rows);
    return -1;
  }
  size_t total = hlen + (size_t)rows * 4;
  /* Reserve the blocks now: writing to a mapping of a sparse file on a full
   * disk would kill the process with SIGBUS instead of giving an error. */
  int err = posix_fallocate(m->file.fd, 0, (off_t)total);
  if (err != 0) {
    cli_error("%s: cannot reserve %zu bytes: %s", m->file.target, total, strerror(err));
    return -1;
  }
  void *map = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, m->file.fd, 0);
  if (map == MAP_FAILED) {
    cli_error("%s: cannot map the output: %s", m->file.target, strerror(errno));
    return -1;
  }
  memcpy(map, header, hlen);
  m->map = map;
  m->map_size = total;
  m->data = (char *)map + hlen;
  return 0;
}

int cli_npy_map_commit(cli_npy_map *m) {
  if (m->map != NULL) {
    int rc = msync(m->map, m->map_size, MS_SYNC);
    int err = errno;
    munmap(m->map, m->map_size);
    m->map = NULL;
    m->data = NULL;
    if (rc != 0) {
      cli_error("%s: cannot write: %s", m->file.target, strerror(err));
      cli_outfile_abort(&m->file);
      return -1;
    }
  }
  return cli_outfile_commit(&m->file);
}

void cli_npy_map_abort(cli_npy_map *m) {
  if (m->map != NULL) {
    munmap(m->map, m->map_size);
    m->map = NULL;
    m->data = NULL;
  }
  cli_outfile_abort(&m->file);
}
