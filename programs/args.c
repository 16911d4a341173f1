/*
 * args.c - the option scanner and strict parsing of numbers and sizes.
 *
 * Numbers are parsed strictly: "-k 12abc", "-k -3", "-k ''" and values out
 * of range are usage errors naming the option, never silently truncated.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_scan_init(cli_scanner *s, const char *cmd, unsigned common, int argc, char **argv) {
  memset(s, 0, sizeof *s);
  s->argc = argc;
  s->argv = argv;
  s->index = 1; /* argv[0] is the subcommand's name */
  s->common = common;
  s->cmd = cmd;
  s->name = "";
}

/* The shared options; a command takes those in its scanner's mask. One
 * option a line: */
/* clang-format off */
static const cli_option common_options[] = {
    {"help", 'h', 0, CLI_OPT_HELP},
    {"format", 0, 1, CLI_OPT_FORMAT},
    {"dim", 0, 1, CLI_OPT_DIM},
    {"dtype", 0, 1, CLI_OPT_DTYPE},
    {"threads", 0, 1, CLI_OPT_THREADS},
    {"block-rows", 0, 1, CLI_OPT_BLOCK_ROWS},
    {"quiet", 'q', 0, CLI_OPT_QUIET},
    {"metric", 0, 1, CLI_OPT_METRIC},
    {"k", 'k', 1, CLI_OPT_K},
    {"max-points-per-centroid", 0, 1, CLI_OPT_MPPC},
    {"storage", 0, 1, CLI_OPT_STORAGE},
    {"memory-limit", 0, 1, CLI_OPT_MEMORY_LIMIT},
    {"tmp-dir", 0, 1, CLI_OPT_TMP_DIR},
    {"strategy", 0, 1, CLI_OPT_STRATEGY},
    {"refine", 0, 1, CLI_OPT_REFINE},
    {"dataset", 0, 1, CLI_OPT_DATASET},
    {NULL, 0, 0, 0},
};
/* clang-format on */

/* Whether o is called name (len characters long) or, when name is NULL, has
 * the short name c. */
static int matches(const cli_option *o, const char *name, size_t len, char c) {
  if (name == NULL) {
    return o->short_name == c;
  }
  return o->long_name != NULL && strlen(o->long_name) == len &&
         strncmp(o->long_name, name, len) == 0;
}

/* The command's own option, or a shared one it takes, that matches. */
static const cli_option *find(const cli_scanner *s, const cli_option *options, const char *name,
                              size_t len, char c) {
  for (const cli_option *o = options; o->id != 0; o++) {
    if (matches(o, name, len, c)) {
      return o;
    }
  }
  for (const cli_option *o = common_options; o->id != 0; o++) {
    if (((unsigned)o->id & s->common) != 0 && matches(o, name, len, c)) {
      return o;
    }
  }
  return NULL;
}

int cli_scan_next(cli_scanner *s, const cli_option *options, const char **value) {
  *value = NULL;
  if (s->index >= s->argc) {
    return CLI_SCAN_END;
  }
  char *arg = s->argv[s->index++];
  /* "-" alone is a positional argument (conventionally stdin); we have no
   * use for it but it is not an option either. */
  if (s->only_args || arg[0] != '-' || arg[1] == '\0') {
    *value = arg;
    return CLI_SCAN_ARG;
  }
  if (strcmp(arg, "--") == 0) {
    s->only_args = 1;
    return cli_scan_next(s, options, value);
  }

  const cli_option *o;
  const char *inline_value = NULL;
  if (arg[1] == '-') {
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
    o = find(s, options, name, len, 0);
    snprintf(s->name_buf, sizeof s->name_buf, "--%.*s", (int)(len < 40 ? len : 40), name);
    s->name = s->name_buf;
    if (o == NULL) {
      cli_usage_error(s->cmd, "unknown option '%s'", s->name);
      return CLI_SCAN_ERROR;
    }
    if (eq != NULL) {
      if (!o->has_value) {
        cli_usage_error(s->cmd, "option '%s' takes no value", s->name);
        return CLI_SCAN_ERROR;
      }
      inline_value = eq + 1;
    }
  } else {
    o = find(s, options, NULL, 0, arg[1]);
    snprintf(s->name_buf, sizeof s->name_buf, "-%c", arg[1]);
    s->name = s->name_buf;
    if (o == NULL) {
      cli_usage_error(s->cmd, "unknown option '%s'", s->name);
      return CLI_SCAN_ERROR;
    }
    if (arg[2] != '\0') {
      if (!o->has_value) {
        cli_usage_error(s->cmd, "unknown option '%s'", arg);
        return CLI_SCAN_ERROR;
      }
      inline_value = arg + 2;
    }
  }

  if (o->has_value) {
    if (inline_value == NULL) {
      if (s->index >= s->argc) {
        cli_usage_error(s->cmd, "option '%s' needs a value", s->name);
        return CLI_SCAN_ERROR;
      }
      inline_value = s->argv[s->index++];
    }
    *value = inline_value;
  }
  return o->id;
}

int cli_parse_u64(const cli_scanner *s, const char *text, uint64_t min, uint64_t max,
                  uint64_t *out) {
  /* strtoull accepts leading spaces and a minus sign (wrapping around);
   * neither is a number here. */
  if (text == NULL || !isdigit((unsigned char)text[0])) {
    cli_usage_error(s->cmd, "%s: '%s' is not a non-negative integer", s->name, text);
    return -1;
  }
  errno = 0;
  char *end;
  unsigned long long v = strtoull(text, &end, 10);
  if (*end != '\0') {
    cli_usage_error(s->cmd, "%s: '%s' is not a non-negative integer", s->name, text);
    return -1;
  }
  if (errno == ERANGE || v > max) {
    cli_usage_error(s->cmd, "%s: %s is too large (at most %llu)", s->name, text,
                    (unsigned long long)max);
    return -1;
  }
  if (v < min) {
    cli_usage_error(s->cmd, "%s must be at least %llu, not %s", s->name, (unsigned long long)min,
                    text);
    return -1;
  }
  *out = v;
  return 0;
}

int cli_parse_u32(const cli_scanner *s, const char *text, uint32_t min, uint32_t *out) {
  uint64_t v;
  if (cli_parse_u64(s, text, min, UINT32_MAX, &v) != 0) {
    return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

int cli_parse_k(const cli_scanner *s, const char *text, uint32_t *out) {
  /* Any k above DKM_MAX_K, even one that overflows 64 bits, gets the
   * library's own wording, so that -k 4000000000 and -k 99999999999 say
   * the same thing. */
  if (text != NULL && isdigit((unsigned char)text[0]) && text[strspn(text, "0123456789")] == '\0') {
    errno = 0;
    unsigned long long v = strtoull(text, NULL, 10);
    if (errno == ERANGE || v > (unsigned long long)DKM_MAX_K) {
      cli_usage_error(s->cmd, "%s: k is %s; it must be at most %d (labels are int32)", s->name,
                      text, DKM_MAX_K);
      return -1;
    }
  }
  uint64_t v;
  if (cli_parse_u64(s, text, 1, DKM_MAX_K, &v) != 0) {
    return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

int cli_parse_double(const cli_scanner *s, const char *text, double min, double *out) {
  errno = 0;
  char *end;
  double v = text[0] != '\0' && !isspace((unsigned char)text[0]) ? strtod(text, &end) : 0;
  if (text[0] == '\0' || isspace((unsigned char)text[0]) || *end != '\0' || errno == ERANGE ||
      !isfinite(v)) {
    cli_usage_error(s->cmd, "%s: '%s' is not a finite number", s->name, text);
    return -1;
  }
  if (v < min) {
    cli_usage_error(s->cmd, "%s must be at least %g, not %s", s->name, min, text);
    return -1;
  }
  *out = v;
  return 0;
}

int cli_parse_size(const cli_scanner *s, const char *text, uint64_t *out) {
  if (!isdigit((unsigned char)text[0])) {
    cli_usage_error(s->cmd, "%s: '%s' is not a size (e.g. 512M, 4G)", s->name, text);
    return -1;
  }
  errno = 0;
  char *end;
  double v = strtod(text, &end);
  double scale = 1;
  switch (toupper((unsigned char)*end)) {
  case 'K':
    scale = 1024.0;
    end++;
    break;
  case 'M':
    scale = 1024.0 * 1024;
    end++;
    break;
  case 'G':
    scale = 1024.0 * 1024 * 1024;
    end++;
    break;
  case 'T':
    scale = 1024.0 * 1024 * 1024 * 1024;
    end++;
    break;
  default:
    break;
  }
  if (scale > 1 && (end[0] == 'i' || end[0] == 'I') && (end[1] == 'B' || end[1] == 'b')) {
    end += 2;
  } else if (end[0] == 'B' || end[0] == 'b') {
    end++;
  }
  if (*end != '\0' || errno == ERANGE || !isfinite(v)) {
    cli_usage_error(s->cmd, "%s: '%s' is not a size (e.g. 512M, 4G)", s->name, text);
    return -1;
  }
  double bytes = v * scale;
  /* 2^64 is exactly representable; anything at or above it does not fit. */
  if (bytes >= 18446744073709551616.0) {
    cli_usage_error(s->cmd, "%s: %s is too large", s->name, text);
    return -1;
  }
  *out = (uint64_t)bytes;
  return 0;
}

int cli_file_options(const char *cmd, const cli_input_options *in, dkm_file_options *out) {
  dkm_file_options_init(out);
  if (in->format != NULL && dkm_format_parse(in->format, &out->format) != 0) {
    cli_usage_error(cmd, "--format: unknown format '%s' (auto, fvecs, bvecs, npy, idx, raw, hdf5)",
                    in->format);
    return -1;
  }
  if (in->dataset != NULL) {
    if (in->dataset[0] == '\0') {
      cli_usage_error(cmd, "--dataset: empty name");
      return -1;
    }
    if (in->format != NULL && out->format != DKM_FORMAT_HDF5 && out->format != DKM_FORMAT_AUTO) {
      cli_usage_error(cmd,
                      "--dataset names a dataset of an HDF5 file; it does not go with "
                      "--format %s",
                      in->format);
      return -1;
    }
    out->dataset = in->dataset;
  }
  /* --dim describes headerless rows, so it implies --format raw. */
  if (in->format == NULL && in->dim != NULL) {
    out->format = DKM_FORMAT_RAW;
  }
  if (out->format == DKM_FORMAT_RAW) {
    if (in->dim == NULL) {
      cli_usage_error(cmd, "--format raw needs --dim");
      return -1;
    }
    cli_scanner s;
    cli_scan_init(&s, cmd, 0, 0, NULL);
    s.name = "--dim";
    if (cli_parse_u32(&s, in->dim, 1, &out->raw_dim) != 0) {
      return -1;
    }
    if (in->dtype != NULL && dkm_dtype_parse(in->dtype, &out->raw_dtype) != 0) {
      cli_usage_error(cmd, "--dtype: unknown type '%s' (f32, f16, f64, u8, i8)", in->dtype);
      return -1;
    }
  } else if (in->dim != NULL || in->dtype != NULL) {
    cli_usage_error(cmd, "--dim and --dtype describe raw files; they do not go with --format %s",
                    in->format);
    return -1;
  }
  return 0;
}

/* Handles whatever cli_scan_next() returned that is not one of the command's
 * own options: a scan error, the INPUT argument, or a shared option. Returns
 * -1 to go on, else the exit status. */
static int cli_common_option(const cli_scanner *s, int id, const char *value, cli_common_args *c) {
  dkm_params *p = &c->params;
  int bad = 0;
  switch (id) {
  case CLI_SCAN_ERROR:
    return CLI_EXIT_USAGE;
  case CLI_SCAN_ARG:
    if (value[0] == '@' && value[1] == '\0') {
      return cli_usage_error(s->cmd, "'@' names no list file (@LIST)");
    }
    if (cli_inputs_arg(value) != 0) {
      return CLI_EXIT_ERROR;
    }
    break;
  case CLI_OPT_HELP:
    fputs(cli_help_text(s->cmd), stdout);
    return CLI_EXIT_OK;
  case CLI_OPT_DATASET:
    c->in.dataset = value;
    break;
  case CLI_OPT_FORMAT:
    c->in.format = value;
    break;
  case CLI_OPT_DIM:
    c->in.dim = value;
    break;
  case CLI_OPT_DTYPE:
    c->in.dtype = value;
    break;
  case CLI_OPT_THREADS:
    bad = cli_parse_u32(s, value, 0, &p->n_threads);
    break;
  case CLI_OPT_BLOCK_ROWS:
    bad = cli_parse_u64(s, value, 0, UINT64_MAX, &p->block_rows);
    break;
  case CLI_OPT_QUIET:
    c->quiet = 1;
    break;
  case CLI_OPT_METRIC:
    bad = cli_parse_metric(s, value, &p->metric);
    c->have_metric = 1;
    break;
  case CLI_OPT_K:
    bad = cli_parse_k(s, value, &p->k);
    c->have_k = 1;
    break;
  case CLI_OPT_MPPC:
    bad = cli_parse_u64(s, value, 0, UINT64_MAX, &p->max_points_per_centroid);
    break;
  case CLI_OPT_STORAGE:
    bad = cli_parse_storage(s, value, &p->storage);
    break;
  case CLI_OPT_MEMORY_LIMIT:
    bad = cli_parse_size(s, value, &p->memory_limit);
    break;
  case CLI_OPT_TMP_DIR:
    if (value[0] == '\0') {
      return cli_usage_error(s->cmd, "--tmp-dir: empty folder name");
    }
    p->tmp_dir = value;
    break;
  case CLI_OPT_STRATEGY:
    bad = cli_parse_strategy(s, value, &p->strategy);
    break;
  case CLI_OPT_REFINE:
    /* The library bounds it (dkm_params_check) and names the bound. */
    bad = cli_parse_u32(s, value, 0, &p->refine);
    break;
  default:
    return cli_usage_error(s->cmd, "internal error: option %d", id);
  }
  return bad ? CLI_EXIT_USAGE : -1;
}

int cli_scan_all(cli_scanner *s, const cli_option *options, cli_option_fn own, void *args,
                 cli_common_args *c) {
  const char *v;
  int id;
  while ((id = cli_scan_next(s, options, &v)) != CLI_SCAN_END) {
    /* A command's own ids count from 1 and stay below the shared ones; the
     * scan's results are negative. */
    int rc = id > 0 && id < CLI_OPT_HELP ? own(s, id, v, args) : cli_common_option(s, id, v, c);
    if (rc >= 0) {
      return rc;
    }
  }
  if (cli_inputs_args() == 0) {
    return cli_usage_error(s->cmd, "missing INPUT");
  }
  int rc = cli_inputs_expand(&c->inputs);
  return rc == CLI_EXIT_OK ? -1 : rc;
}

const char *cli_format_bytes(uint64_t bytes, char *buf, size_t size) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = (double)bytes;
  int u = 0;
  while (v >= 1024.0 && u < 6) {
    v /= 1024.0;
    u++;
  }
  if (u == 0) {
    snprintf(buf, size, "%llu B", (unsigned long long)bytes);
  } else {
    snprintf(buf, size, "%.1f %s", v, units[u]);
  }
  return buf;
}

int cli_parse_metric(const cli_scanner *s, const char *text, dkm_metric *out) {
  for (int m = DKM_METRIC_L2; m <= DKM_METRIC_IP; m++) {
    if (strcmp(text, dkm_metric_name((dkm_metric)m)) == 0) {
      *out = (dkm_metric)m;
      return 0;
    }
  }
  cli_usage_error(s->cmd, "%s: unknown metric '%s' (l2, cosine, ip)", s->name, text);
  return -1;
}

int cli_parse_storage(const cli_scanner *s, const char *text, dkm_storage *out) {
  for (int m = DKM_STORAGE_AUTO; m <= DKM_STORAGE_DISK; m++) {
    if (strcmp(text, dkm_storage_name((dkm_storage)m)) == 0) {
      *out = (dkm_storage)m;
      return 0;
    }
  }
  cli_usage_error(s->cmd, "%s: unknown storage '%s' (auto, memory, disk)", s->name, text);
  return -1;
}

int cli_parse_strategy(const cli_scanner *s, const char *text, dkm_strategy *out) {
  for (int m = DKM_STRATEGY_AUTO; m <= DKM_STRATEGY_HIERARCHICAL; m++) {
    if (strcmp(text, dkm_strategy_name((dkm_strategy)m)) == 0) {
      *out = (dkm_strategy)m;
      return 0;
    }
  }
  cli_usage_error(s->cmd, "%s: unknown strategy '%s' (auto, flat, hierarchical)", s->name, text);
  return -1;
}

const char *cli_strategy_reason(dkm_strategy requested, dkm_strategy used, uint32_t k, char *buf,
                                size_t size) {
  const char *name = dkm_strategy_name(used);
  name = name != NULL ? name : "?";
  if (requested != DKM_STRATEGY_AUTO) {
    snprintf(buf, size, "%s (--strategy)", name);
  } else if ((used == DKM_STRATEGY_FLAT && k < DKM_HIERARCHICAL_MIN_K) ||
             (used == DKM_STRATEGY_HIERARCHICAL && k >= DKM_HIERARCHICAL_MIN_K)) {
    /* The documented rule of auto; anything else it did is said as is. */
    snprintf(buf, size, "%s (auto: k %s %u)", name,
             k < DKM_HIERARCHICAL_MIN_K ? "<" : ">=", DKM_HIERARCHICAL_MIN_K);
  } else {
    snprintf(buf, size, "%s (auto)", name);
  }
  return buf;
}

const char *cli_default_tmp_dir(void) {
  /* The library never reads the environment; the tool does, as users
   * expect of a command-line program. */
  const char *dir = getenv("TMPDIR");
  return dir != NULL && dir[0] != '\0' ? dir : "/tmp";
}
