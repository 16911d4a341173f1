/*
 * inputs.c - the INPUT arguments: one file, several files, or @LIST files
 * naming them, all one data set in the order given; opening them as one
 * source (dkm_source_concat).
 *
 * The list lives as long as the command: its paths are referred to by the
 * command's messages and reports until the very end, so it is kept here
 * rather than in each command's arguments, and main() releases it once the
 * command has returned.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"

static cli_inputs inputs;
static const char **args; /* the positional arguments as typed */
static size_t n_args, cap_args;
static size_t cap_paths, cap_checked;

/* Grows *array (of elem bytes each, *cap of them) to hold one more than n. */
static int grow(void *array, size_t *cap, size_t n, size_t elem) {
  if (n < *cap) {
    return 0;
  }
  size_t want = *cap == 0 ? 8 : *cap * 2;
  void *p = realloc(*(void **)array, want * elem);
  if (p == NULL) {
    return -1;
  }
  *(void **)array = p;
  *cap = want;
  return 0;
}

int cli_inputs_arg(const char *arg) {
  if (grow(&args, &cap_args, n_args, sizeof *args) != 0) {
    cli_error("out of memory");
    return -1;
  }
  args[n_args++] = arg;
  return 0;
}

size_t cli_inputs_args(void) {
  return n_args;
}

/* Adds path (malloc'ed, taken) to the files checked against the outputs,
 * as `option`, and when to_read is set to the files to read. */
static int add_path(char *path, const char *option, int to_read) {
  if (path == NULL || grow(&inputs.paths, &cap_paths, inputs.n, sizeof *inputs.paths) != 0 ||
      grow(&inputs.checked, &cap_checked, inputs.n_checked, sizeof *inputs.checked) != 0) {
    free(path);
    cli_error("out of memory");
    return -1;
  }
  if (to_read) {
    inputs.paths[inputs.n++] = path;
  }
  inputs.checked[inputs.n_checked++] = (cli_file_arg){option, path};
  return 0;
}

/* The path of line (len bytes) of list file `list`: as it is when absolute,
 * else relative to the list's own folder, so that a list and its shards can
 * be moved together and used from anywhere. malloc'ed. */
static char *path_in_list(const char *list, const char *line, size_t len) {
  const char *slash = strrchr(list, '/');
  size_t dir = line[0] == '/' || slash == NULL ? 0 : (size_t)(slash - list) + 1;
  char *p = malloc(dir + len + 1);
  if (p != NULL) {
    memcpy(p, list, dir);
    memcpy(p + dir, line, len);
    p[dir + len] = '\0';
  }
  return p;
}

/* Reads list file `list` (the argument without its '@'). */
static int read_list(const char *list) {
  FILE *f = fopen(list, "r");
  if (f == NULL) {
    cli_error("@%s: %s", list, strerror(errno));
    return -1;
  }
  /* The list is no input file, but no output may replace it either. */
  if (add_path(strdup(list), "@LIST", 0) != 0) {
    fclose(f);
    return -1;
  }
  size_t before = inputs.n;
  char *line = NULL;
  size_t cap = 0;
  ssize_t got;
  int rc = 0;
  unsigned long number = 0;
  errno = 0;
  while (rc == 0 && (got = getline(&line, &cap, f)) >= 0) {
    number++;
    size_t len = (size_t)got;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
      len--;
    }
    size_t lead = strspn(line, " \t");
    if (lead == len || line[lead] == '#') {
      continue; /* blank or a comment */
    }
    if (memchr(line, '\0', len) != NULL) {
      cli_error("@%s: line %lu holds a NUL byte (is it a list of paths?)", list, number);
      rc = -1;
      break;
    }
    rc = add_path(path_in_list(list, line, len), "INPUT", 1);
  }
  if (rc == 0 && ferror(f)) {
    cli_error("@%s: %s", list, strerror(errno != 0 ? errno : EIO));
    rc = -1;
  }
  free(line);
  fclose(f);
  if (rc == 0 && inputs.n == before) {
    cli_error("@%s: names no input file (blank lines and # comments only)", list);
    rc = -1;
  }
  return rc;
}

int cli_inputs_expand(const cli_inputs **out) {
  for (size_t i = 0; i < n_args; i++) {
    const char *a = args[i];
    int rc = a[0] == '@' ? read_list(a + 1) : add_path(strdup(a), "INPUT", 1);
    if (rc != 0) {
      return CLI_EXIT_ERROR;
    }
  }
  *out = &inputs;
  return CLI_EXIT_OK;
}

void cli_inputs_release(void) {
  for (size_t i = 0; i < inputs.n_checked; i++) {
    free((char *)inputs.checked[i].path);
  }
  free(inputs.paths);
  free(inputs.checked);
  free(inputs.files);
  free(args);
  memset(&inputs, 0, sizeof inputs);
  args = NULL;
  n_args = cap_args = cap_paths = cap_checked = 0;
}

const char *cli_inputs_dtype(const cli_inputs *in) {
  for (size_t i = 1; i < in->n; i++) {
    if (in->files[i].dtype != in->files[0].dtype) {
      return "mixed";
    }
  }
  return dkm_dtype_name(in->files[0].dtype);
}

uint64_t cli_inputs_data_bytes(const cli_inputs *in) {
  uint64_t total = 0;
  for (size_t i = 0; i < in->n; i++) {
    const cli_input_file *f = &in->files[i];
    total += f->rows * f->dim * dkm_dtype_size(f->dtype);
  }
  return total;
}

/* Thousands of shards are thousands of open files: raise the soft limit on
 * open files towards the hard one when the default (often 1024) is too
 * low. If even the hard limit is too low, opening says so, naming the
 * file ("Too many open files"). */
static void allow_open_files(size_t n) {
  struct rlimit rl;
  rlim_t want = (rlim_t)n + 64; /* outputs, the spill file, stdio */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int cli_open_input(dkm_ctx *ctx, const cli_common_args *c, const dkm_file_options *opts,
                   dkm_source **out) {
  cli_inputs *in = &inputs;
  *out = NULL;
  dkm_file_options o = *opts;
  if (o.tmp_dir == NULL) {
    o.tmp_dir = c->params.tmp_dir != NULL ? c->params.tmp_dir : cli_default_tmp_dir();
  }
  free(in->files);
  in->files = calloc(in->n, sizeof *in->files);
  dkm_source **parts = calloc(in->n, sizeof *parts);
  if (in->files == NULL || parts == NULL) {
    free(parts);
    cli_error("out of memory");
    return CLI_EXIT_ERROR;
  }
  if (in->n > 1) {
    allow_open_files(in->n);
  }
  /* Each file is opened (and its format detected) on its own; the first
   * that fails ends the run, naming itself. */
  for (size_t i = 0; i < in->n; i++) {
    dkm_status st = dkm_source_open_file(ctx, in->paths[i], &o, &parts[i]);
    if (st != DKM_OK) {
      for (size_t j = 0; j < i; j++) {
        dkm_source_close(parts[j]);
      }
      free(parts);
      return cli_library_error(ctx, st);
    }
    const dkm_source *p = parts[i];
    in->files[i] = (cli_input_file){p->rows, p->dim, p->dtype, p->format, p->bytes};
  }
  /* The join takes the parts, failing or not. */
  dkm_status st = dkm_source_concat(ctx, parts, in->n, out);
  free(parts);
  return st == DKM_OK ? CLI_EXIT_OK : cli_library_error(ctx, st);
}

int cli_check_inputs(const cli_inputs *in, const cli_file_arg *more, size_t n_more,
                     const cli_file_arg *outputs, size_t n_outputs) {
  size_t n = in->n_checked + n_more;
  cli_file_arg *all = malloc(n * sizeof *all);
  if (all == NULL) {
    cli_error("out of memory");
    return CLI_EXIT_ERROR;
  }
  memcpy(all, in->checked, in->n_checked * sizeof *all);
  if (n_more > 0) {
    memcpy(all + in->n_checked, more, n_more * sizeof *all);
  }
  int rc = cli_check_files(all, n, outputs, n_outputs);
  free(all);
  return rc;
}
