/*
 * cmd_train.c - diskmeans train: centroids, and optionally labels of every
 * input row and a JSON report.
 *
 * Order of work, chosen so that mistakes cost seconds, not hours: parse and
 * check every option, create the temporary outputs (a missing or read-only
 * folder fails here), open the input and the initial centroids, then train,
 * label, write, and only at the very end rename the outputs into place.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

enum {
  OPT_OUTPUT = 1,
  OPT_ITERS,
  OPT_TOL,
  OPT_SEED,
  OPT_INIT,
  OPT_REDO,
  OPT_LABELS,
  OPT_STATS,
  OPT_BALANCE,
  OPT_CHECKPOINT,
  OPT_RESUME
};

/* One option a line: */
/* clang-format off */
static const cli_option train_options[] = {
    {"output", 'o', 1, OPT_OUTPUT},
    {"iters", 0, 1, OPT_ITERS},
    {"tol", 0, 1, OPT_TOL},
    {"seed", 0, 1, OPT_SEED},
    {"init", 0, 1, OPT_INIT},
    {"redo", 0, 1, OPT_REDO},
    {"labels", 0, 1, OPT_LABELS},
    {"stats", 0, 1, OPT_STATS},
    {"balance", 0, 0, OPT_BALANCE},
    {"checkpoint", 0, 1, OPT_CHECKPOINT},
    {"resume", 0, 0, OPT_RESUME},
    {NULL, 0, 0, 0},
};
/* clang-format on */

typedef struct train_args {
  cli_common_args common; /* INPUT, -k, --quiet, the parameters, how to read INPUT */
  const char *output;
  const char *labels;
  const char *stats;
  const char *init_file;
  const char *checkpoint;
  int resume;
} train_args;

static int train_option(const cli_scanner *s, int id, const char *v, void *args) {
  train_args *a = args;
  dkm_params *p = &a->common.params;
  int bad = 0;
  switch (id) {
  case OPT_OUTPUT:
    a->output = v;
    break;
  case OPT_ITERS:
    bad = cli_parse_u32(s, v, 1, &p->max_iter);
    break;
  case OPT_TOL:
    bad = cli_parse_double(s, v, 0, &p->tol);
    break;
  case OPT_SEED:
    bad = cli_parse_u64(s, v, 0, UINT64_MAX, &p->seed);
    break;
  case OPT_INIT:
    if (strcmp(v, "random") == 0) {
      p->init = DKM_INIT_RANDOM;
    } else if (strcmp(v, "kmeans++") == 0) {
      p->init = DKM_INIT_KMEANSPP;
    } else if (strcmp(v, "greedy-kmeans++") == 0) {
      p->init = DKM_INIT_GREEDY_KMEANSPP;
    } else if (v[0] == '\0') {
      return cli_usage_error("train",
                             "--init: empty value (random, kmeans++, greedy-kmeans++ or a file)");
    } else {
      p->init = DKM_INIT_GIVEN;
      a->init_file = v;
    }
    break;
  case OPT_REDO:
    bad = cli_parse_u32(s, v, 1, &p->n_redo);
    break;
  case OPT_LABELS:
    a->labels = v;
    break;
  case OPT_STATS:
    a->stats = v;
    break;
  case OPT_BALANCE:
    p->balance = 1;
    break;
  case OPT_CHECKPOINT:
    a->checkpoint = v;
    break;
  case OPT_RESUME:
    a->resume = 1;
    break;
  default:
    return cli_usage_error("train", "internal error: option %d", id);
  }
  return bad ? CLI_EXIT_USAGE : -1;
}

/* Parses argv into a; returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, train_args *a) {
  cli_scanner s;
  cli_scan_init(&s, "train",
                CLI_OPTS_EVERY_COMMAND | CLI_OPT_QUIET | CLI_OPT_METRIC | CLI_OPT_K | CLI_OPT_MPPC |
                    CLI_OPT_STORAGE | CLI_OPT_MEMORY_LIMIT | CLI_OPT_TMP_DIR | CLI_OPT_STRATEGY |
                    CLI_OPT_REFINE,
                argc, argv);
  int rc = cli_scan_all(&s, train_options, train_option, a, &a->common);
  if (rc >= 0) {
    return rc;
  }
  if (!a->common.have_k) {
    return cli_usage_error("train", "missing -k K");
  }
  if (a->output == NULL) {
    return cli_usage_error("train", "missing -o CENTROIDS");
  }
  /* A folder has no extension: say what it is rather than that its
   * extension '' is unknown. */
  if (a->resume && a->checkpoint == NULL) {
    return cli_usage_error("train", "--resume needs --checkpoint FILE");
  }
  if (cli_refuse_folder(a->output) != 0 ||
      (a->labels != NULL && cli_refuse_folder(a->labels) != 0) ||
      (a->stats != NULL && cli_refuse_folder(a->stats) != 0) ||
      (a->checkpoint != NULL && cli_refuse_folder(a->checkpoint) != 0)) {
    return CLI_EXIT_ERROR;
  }
  if (cli_output_kind(a->output) == CLI_OUT_OTHER) {
    return cli_usage_error("train", "-o %s: unknown centroid file extension '%s' (.npy or .fvecs)",
                           a->output, cli_extension(a->output));
  }
  if (a->labels != NULL && cli_output_kind(a->labels) != CLI_OUT_NPY) {
    return cli_usage_error("train", "--labels %s: labels are written as .npy, not '%s'", a->labels,
                           cli_extension(a->labels));
  }
  if (a->init_file != NULL && access(a->init_file, F_OK) != 0 && errno == ENOENT) {
    /* Most likely a misspelt method ("kmeans"): name the choices rather
     * than only "kmeans: No such file or directory". */
    cli_error("--init: '%s' is neither random, kmeans++, greedy-kmeans++ nor an existing file",
              a->init_file);
    return CLI_EXIT_ERROR;
  }
  const cli_file_arg init[] = {{"--init", a->init_file}};
  const cli_file_arg outputs[] = {{"-o", a->output},
                                  {"--labels", a->labels},
                                  {"--stats", a->stats},
                                  {"--checkpoint", a->checkpoint}};
  rc = cli_check_inputs(a->common.inputs, init, 1, outputs, sizeof outputs / sizeof outputs[0]);
  if (rc != CLI_EXIT_OK) {
    return rc;
  }
  if (a->common.params.tmp_dir == NULL) {
    a->common.params.tmp_dir = cli_default_tmp_dir();
  }
  return -1;
}

/* --- the JSON report ------------------------------------------------------ */

/* The wall time of the command in parts that add up. The library reports
 * the time of some stages inside its whole call (train_seconds): flat, the
 * sample and the init, and the rest of the call is the iterations (and the
 * little bookkeeping around them); hierarchical, the sample, the coarse
 * training, the routing and the groups, and the rest is the refinement
 * passes (and the bookkeeping). What the command did outside the library
 * calls (open the input, plan, write and sync the outputs) is "other". */
enum { TIME_PARTS_MAX = 7 };
typedef struct time_parts {
  int n;
  const char *names[TIME_PARTS_MAX];
  double seconds[TIME_PARTS_MAX];
  int labels; /* index of "labels", -1 without labelling */
} time_parts;

static void add_part(time_parts *t, const char *name, double seconds) {
  t->names[t->n] = name;
  t->seconds[t->n] = seconds;
  t->n++;
}

/* labels_seconds < 0: no labelling. */
static void split_time(const dkm_result *res, double labels_seconds, double wall_seconds,
                       time_parts *out) {
  memset(out, 0, sizeof *out);
  add_part(out, "sample", res->sample_seconds);
  double reported = res->sample_seconds;
  if (res->strategy == DKM_STRATEGY_HIERARCHICAL) {
    add_part(out, "coarse", res->coarse_seconds);
    add_part(out, "route", res->route_seconds);
    add_part(out, "groups", res->groups_seconds);
    reported += res->coarse_seconds + res->route_seconds + res->groups_seconds;
    add_part(out, "refine", fmax(0, res->train_seconds - reported));
  } else {
    add_part(out, "init", res->init_seconds);
    reported += res->init_seconds;
    add_part(out, "iterations", fmax(0, res->train_seconds - reported));
  }
  out->labels = -1;
  if (labels_seconds >= 0) {
    out->labels = out->n;
    add_part(out, "labels", labels_seconds);
  }
  add_part(out, "other",
           fmax(0, wall_seconds - res->train_seconds - (labels_seconds >= 0 ? labels_seconds : 0)));
}

static json_t *jreal(double v) {
  /* JSON has no NaN or infinity. */
  return isfinite(v) ? json_real(v) : json_null();
}

static json_t *jstr(const char *s) {
  return s != NULL ? json_string(s) : json_null();
}

static json_t *sizes_json(const cli_sizes *z) {
  json_t *o = json_object();
  json_object_set_new(o, "rows", cli_json_u64(z->rows));
  json_object_set_new(o, "min", cli_json_u64(z->min));
  json_object_set_new(o, "max", cli_json_u64(z->max));
  json_object_set_new(o, "mean", jreal(z->mean));
  json_object_set_new(o, "imbalance", jreal(z->imbalance));
  json_object_set_new(o, "used", cli_json_u64(z->used));
  json_object_set_new(o, "empty", cli_json_u64(z->k - z->used));
  return o;
}

static json_t *balance_json(const dkm_balance *b) {
  json_t *o = json_object();
  json_object_set_new(o, "cv", jreal(b->cv));
  json_object_set_new(o, "largest_over_mean", jreal(b->largest_over_mean));
  json_object_set_new(o, "smallest", cli_json_u64(b->smallest));
  json_object_set_new(o, "largest", cli_json_u64(b->largest));
  json_object_set_new(o, "empty", cli_json_u64(b->empty));
  return o;
}

typedef struct train_report {
  const train_args *args;
  const dkm_source *src;
  const dkm_result *result;
  const cli_sizes *sizes;
  const cli_sizes *label_sizes; /* NULL without --labels */
  const dkm_balance *balance;
  const dkm_balance *label_balance; /* NULL without --labels */
  const dkm_plan *plan;
  double labels_seconds;
  double wall_seconds;
  uint64_t peak_rss;
} train_report;

static json_t *report_json(const train_report *r) {
  const dkm_params *p = &r->args->common.params;
  const dkm_result *res = r->result;
  json_t *root = json_object();
  json_object_set_new(root, "version", json_string(dkm_version()));
  json_object_set_new(root, "command", json_string("train"));
  /* One input: its path; several: the library's name of the whole, and
   * "inputs" lists them all. */
  const cli_inputs *in = r->args->common.inputs;
  json_object_set_new(root, "input", json_string(in->n == 1 ? in->paths[0] : r->src->name));
  json_t *paths = json_array();
  for (size_t i = 0; i < in->n; i++) {
    json_array_append_new(paths, json_string(in->paths[i]));
  }
  json_object_set_new(root, "inputs", paths);
  json_object_set_new(root, "format", jstr(dkm_format_name(r->src->format)));
  json_object_set_new(root, "dtype", jstr(cli_inputs_dtype(in)));
  json_object_set_new(root, "rows", cli_json_u64(r->src->rows));
  json_object_set_new(root, "dim", cli_json_u64(r->src->dim));
  json_object_set_new(root, "input_bytes", cli_json_u64(r->src->bytes));

  json_t *params = json_object();
  json_object_set_new(params, "k", cli_json_u64(p->k));
  json_object_set_new(params, "max_iter", cli_json_u64(p->max_iter));
  json_object_set_new(params, "tol", jreal(p->tol));
  json_object_set_new(params, "seed", cli_json_u64(p->seed));
  json_object_set_new(params, "init", jstr(dkm_init_name(p->init)));
  json_object_set_new(params, "init_file", jstr(r->args->init_file));
  json_object_set_new(params, "metric", jstr(dkm_metric_name(p->metric)));
  json_object_set_new(params, "n_redo", cli_json_u64(p->n_redo));
  json_object_set_new(params, "max_points_per_centroid", cli_json_u64(p->max_points_per_centroid));
  json_object_set_new(params, "n_threads", cli_json_u64(p->n_threads));
  json_object_set_new(params, "block_rows", cli_json_u64(p->block_rows));
  json_object_set_new(params, "storage", jstr(dkm_storage_name(p->storage)));
  json_object_set_new(params, "memory_limit", cli_json_u64(p->memory_limit));
  json_object_set_new(params, "tmp_dir", jstr(p->tmp_dir));
  json_object_set_new(params, "strategy", jstr(dkm_strategy_name(p->strategy)));
  json_object_set_new(params, "refine", cli_json_u64(p->refine));
  json_object_set_new(params, "balance", json_boolean(p->balance));
  json_object_set_new(root, "params", params);

  /* The plan made before training, to compare its estimates with what
   * happened (peak_rss_bytes). */
  json_t *plan = json_object();
  json_object_set_new(plan, "storage", jstr(dkm_storage_name(r->plan->storage)));
  json_object_set_new(plan, "memory_limit", cli_json_u64(r->plan->memory_limit));
  json_object_set_new(plan, "sample_bytes", cli_json_u64(r->plan->sample_bytes));
  json_object_set_new(plan, "spill_bytes", cli_json_u64(r->plan->spill_bytes));
  json_object_set_new(plan, "memory_mode_bytes", cli_json_u64(r->plan->memory_mode_bytes));
  json_object_set_new(plan, "disk_mode_bytes", cli_json_u64(r->plan->disk_mode_bytes));
  json_object_set_new(plan, "strategy", jstr(dkm_strategy_name(r->plan->strategy)));
  json_object_set_new(plan, "coarse_k", cli_json_u64(r->plan->coarse_k));
  json_object_set_new(plan, "flops", jreal(r->plan->flops));
  json_object_set_new(plan, "flat_flops", jreal(r->plan->flat_flops));
  json_object_set_new(root, "plan", plan);

  json_object_set_new(root, "strategy", jstr(dkm_strategy_name(res->strategy)));
  json_t *hier = json_null();
  if (res->strategy == DKM_STRATEGY_HIERARCHICAL) {
    hier = json_object();
    json_object_set_new(hier, "coarse_k", cli_json_u64(res->coarse_k));
    json_object_set_new(hier, "levels", cli_json_u64(res->levels));
    json_object_set_new(hier, "refine_passes", cli_json_u64(res->refine_passes));
    json_object_set_new(hier, "coarse_seconds", jreal(res->coarse_seconds));
    json_object_set_new(hier, "route_seconds", jreal(res->route_seconds));
    json_object_set_new(hier, "groups_seconds", jreal(res->groups_seconds));
    json_object_set_new(hier, "refine_seconds", jreal(res->refine_seconds));
  }
  json_object_set_new(root, "hierarchical", hier);
  json_object_set_new(root, "sample_rows", cli_json_u64(res->sample_rows));
  json_object_set_new(root, "storage", jstr(dkm_storage_name(res->storage)));
  json_object_set_new(root, "from_source", json_boolean(res->from_source));
  json_object_set_new(root, "spill_bytes", cli_json_u64(res->spill_bytes));

  json_t *iters = json_array();
  for (uint32_t i = 0; i < res->n_iter; i++) {
    const dkm_iter_stats *it = &res->iters[i];
    json_t *o = json_object();
    json_object_set_new(o, "iteration", cli_json_u64(i + 1));
    json_object_set_new(o, "objective", jreal(it->objective));
    json_object_set_new(o, "seconds", jreal(it->seconds));
    json_object_set_new(o, "repaired", cli_json_u64(it->repaired));
    json_object_set_new(o, "rebalanced", cli_json_u64(it->rebalanced));
    json_object_set_new(o, "imbalance", jreal(it->imbalance));
    json_array_append_new(iters, o);
  }
  json_object_set_new(root, "iterations", iters);
  json_object_set_new(root, "n_iter", cli_json_u64(res->n_iter));
  json_object_set_new(root, "best_run", cli_json_u64(res->best_run));
  json_object_set_new(root, "objective", jreal(res->objective));
  /* 0 (unknown) is written as null. */
  json_object_set_new(root, "distinct_rows",
                      res->distinct_rows != 0 ? cli_json_u64(res->distinct_rows) : json_null());
  json_object_set_new(root, "cluster_sizes", sizes_json(r->sizes));
  json_object_set_new(root, "label_sizes",
                      r->label_sizes != NULL ? sizes_json(r->label_sizes) : json_null());
  json_object_set_new(root, "balance", balance_json(r->balance));
  json_object_set_new(root, "label_balance",
                      r->label_balance != NULL ? balance_json(r->label_balance) : json_null());

  /* sample + init + iterations = train (the library call), or sample +
   * coarse + route + groups + refine when hierarchical, and train + labels +
   * other = wall_seconds. */
  time_parts tp;
  split_time(res, r->label_sizes != NULL ? r->labels_seconds : -1, r->wall_seconds, &tp);
  json_t *secs = json_object();
  for (int i = 0; i < tp.n; i++) {
    if (i == tp.labels) {
      continue;
    }
    if (strcmp(tp.names[i], "other") == 0) {
      json_object_set_new(secs, "train", jreal(res->train_seconds));
      json_object_set_new(secs, "labels",
                          tp.labels >= 0 ? jreal(tp.seconds[tp.labels]) : json_null());
    }
    json_object_set_new(secs, tp.names[i], jreal(tp.seconds[i]));
  }
  json_object_set_new(root, "seconds", secs);
  json_object_set_new(root, "wall_seconds", jreal(r->wall_seconds));
  json_object_set_new(root, "peak_rss_bytes", cli_json_u64(r->peak_rss));

  json_t *outs = json_object();
  json_object_set_new(outs, "centroids", json_string(r->args->output));
  json_object_set_new(outs, "labels", jstr(r->args->labels));
  json_object_set_new(outs, "stats", jstr(r->args->stats));
  json_object_set_new(root, "outputs", outs);
  return root;
}

static int write_report(cli_outfile *f, const train_report *r) {
  json_t *root = report_json(r);
  char *text = root != NULL ? json_dumps(root, JSON_INDENT(2)) : NULL;
  json_decref(root);
  if (text == NULL) {
    cli_error("%s: out of memory building the JSON report", f->target);
    return -1;
  }
  int rc = cli_outfile_write(f, text, strlen(text));
  if (rc == 0) {
    rc = cli_outfile_write(f, "\n", 1);
  }
  free(text);
  return rc;
}

/* --- the command ------------------------------------------------------------ */

/* "time 1.86 s: sample 0.22 s, init 0.00 s, iterations 1.46 s, labels 0.18 s,
 * other 0.00 s". Each part is the difference of two rounded running totals,
 * so that the printed parts add up to the printed total exactly.
 * labels_seconds < 0: no labelling. */
static void print_time(const dkm_result *res, double labels_seconds, double wall_seconds) {
  time_parts tp;
  split_time(res, labels_seconds, wall_seconds, &tp);
  double running = 0;
  long done = 0; /* hundredths of a second printed so far */
  char line[256];
  int len = 0;
  for (int i = 0; i < tp.n; i++) {
    running += tp.seconds[i];
    long upto = lround(running * 100);
    if (upto < done) {
      upto = done;
    }
    len += snprintf(line + len, sizeof line - (size_t)len, "%s%s %ld.%02ld s", len > 0 ? ", " : "",
                    tp.names[i], (upto - done) / 100, (upto - done) % 100);
    done = upto;
  }
  printf("time %ld.%02ld s: %s\n", done / 100, done % 100, line);
}

/* "partitions: CV 0.512, largest 641 (2.73x the mean), smallest 1, 0 empty" */
static void print_balance(const dkm_balance *b) {
  printf("partitions: CV %.3f, largest %llu (%.2fx the mean), smallest %llu, %u empty\n", b->cv,
         (unsigned long long)b->largest, b->largest_over_mean, (unsigned long long)b->smallest,
         b->empty);
}

typedef struct train_state {
  dkm_ctx *ctx;
  dkm_source *src;
  dkm_result *result;
  float *init;
  char *identity; /* the input's path, size and time, for the checkpoint */
  uint64_t *label_counts;
  dkm_balance label_balance;
  cli_outfile centroids;
  cli_npy_map labels;
  cli_outfile stats;
  cli_progress progress;
} train_state;

/* What identifies the input in a checkpoint beyond its rows (which the
 * library checks): its full path, size and modification time, so that a
 * resume against another or a rewritten file is refused by name. NULL when
 * out of memory. */
/* One input file's lines of the identity: its full path, and for a regular
 * file its size and mtime. The first file's keys are "input", "input size"
 * and "input mtime"; the next ones' "input 2", "input 2 size", ... */
static int append_file_identity(char **text, size_t i, const char *input) {
  char key[32] = "input";
  if (i > 0) {
    snprintf(key, sizeof key, "input %zu", i + 1);
  }
  char *full = realpath(input, NULL);
  const char *name = full != NULL ? full : input;
  struct stat st;
  char *more = NULL;
  int n;
  if (strcmp(input, "-") != 0 && stat(input, &st) == 0 && S_ISREG(st.st_mode)) {
    n = asprintf(&more, "%s%s=%s\n%s size=%lld\n%s mtime=%lld.%09ld\n", *text, key, name, key,
                 (long long)st.st_size, key, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  } else {
    n = asprintf(&more, "%s%s=%s\n", *text, key, name);
  }
  free(full);
  if (n < 0) {
    return -1;
  }
  free(*text);
  *text = more;
  return 0;
}

/* The identity of the inputs for a checkpoint: every file, in order. */
static char *input_identity(const cli_inputs *in) {
  char *text = strdup("");
  for (size_t i = 0; text != NULL && i < in->n; i++) {
    if (append_file_identity(&text, i, in->paths[i]) != 0) {
      free(text);
      text = NULL;
    }
  }
  return text;
}

static void cleanup(train_state *t) {
  cli_progress_finish(&t->progress);
  cli_outfile_abort(&t->centroids);
  cli_npy_map_abort(&t->labels);
  cli_outfile_abort(&t->stats);
  free(t->label_counts);
  free(t->init);
  free(t->identity);
  dkm_result_free(t->result);
  dkm_source_close(t->src);
  dkm_ctx_free(t->ctx);
}

/* A library call that failed, or was cancelled by a signal. */
static int library_failure(train_state *t, dkm_status st) {
  cli_progress_finish(&t->progress);
  int rc = cli_library_error(t->ctx, st);
  cleanup(t);
  return rc;
}

static int fail(train_state *t, int rc) {
  cleanup(t);
  return rc;
}

int cli_cmd_train(int argc, char **argv) {
  double start = cli_now();
  train_args a;
  memset(&a, 0, sizeof a);
  dkm_params *p = &a.common.params;
  dkm_params_init(p);
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0) {
    return rc;
  }
  dkm_file_options fopts;
  if (cli_file_options("train", &a.common.in, &fopts) != 0) {
    return CLI_EXIT_USAGE;
  }

  train_state t;
  memset(&t, 0, sizeof t);
  t.centroids.fd = -1;
  t.labels.file.fd = -1;
  t.stats.fd = -1;
  cli_progress_init(&t.progress, a.common.quiet, p->n_redo);
  t.ctx = dkm_ctx_create(NULL);
  if (t.ctx == NULL) {
    cli_error("out of memory");
    return CLI_EXIT_ERROR;
  }
  /* The initial centroids are read (and checked) only after the input is
   * open; until then the check looks at every other parameter. */
  dkm_params early = *p;
  if (early.init == DKM_INIT_GIVEN) {
    early.init = DKM_INIT_RANDOM;
  }
  dkm_status st = dkm_params_check(t.ctx, &early);
  if (st != DKM_OK) {
    /* Every parameter came from the command line. */
    cli_usage_error("train", "%s", dkm_ctx_errmsg(t.ctx));
    return fail(&t, CLI_EXIT_USAGE);
  }

  /* Fail fast on an output folder that is missing or read-only. */
  if (cli_outfile_open(&t.centroids, a.output) != 0 ||
      (a.labels != NULL && cli_npy_map_open(&t.labels, a.labels) != 0) ||
      (a.stats != NULL && cli_outfile_open(&t.stats, a.stats) != 0)) {
    return fail(&t, CLI_EXIT_ERROR);
  }
  /* The checkpoint's folder too: the library would only find out at its
   * first save, after the sample. */
  if (a.checkpoint != NULL) {
    char *dir = strdup(a.checkpoint);
    char *slash = dir != NULL ? strrchr(dir, '/') : NULL;
    const char *folder = slash == NULL ? "." : slash == dir ? "/" : dir;
    if (slash != NULL && slash != dir) {
      *slash = '\0';
    }
    int ok = dir != NULL && access(folder, W_OK | X_OK) == 0;
    int err = errno;
    free(dir);
    if (!ok) {
      cli_error("--checkpoint %s: cannot write in its folder: %s", a.checkpoint, strerror(err));
      return fail(&t, CLI_EXIT_ERROR);
    }
  }

  rc = cli_open_input(t.ctx, &a.common, &fopts, &t.src);
  if (rc != CLI_EXIT_OK) {
    return fail(&t, rc);
  }
  if (a.init_file != NULL) {
    uint32_t k;
    rc = cli_read_centroids(t.ctx, a.init_file, t.src, p->k, "initial centroids", &t.init, &k);
    if (rc != CLI_EXIT_OK) {
      return fail(&t, rc);
    }
    p->init_centroids = t.init;
  }

  dkm_plan plan;
  st = dkm_plan_training(t.ctx, p, t.src, &plan);
  if (st != DKM_OK) {
    return library_failure(&t, st);
  }

  t.progress.sample_rows = plan.sample_rows;
  /* The limit bounds the sample in memory; the centroids, the work buffers
   * and the blocks read come on top, and with a small limit they are most
   * of it. Not an error, but a surprise worth one line. */
  uint64_t peak =
      plan.storage == DKM_STORAGE_MEMORY ? plan.memory_mode_bytes : plan.disk_mode_bytes;
  if (!a.common.quiet && peak > plan.memory_limit) {
    char peak_text[32], limit_text[32];
    cli_error("note: training needs about %s in %s mode, more than the memory limit of %s, "
              "which bounds the sample only",
              cli_format_bytes(peak, peak_text, sizeof peak_text), dkm_storage_name(plan.storage),
              cli_format_bytes(plan.memory_limit, limit_text, sizeof limit_text));
  }
  if (a.checkpoint != NULL) {
    t.identity = input_identity(a.common.inputs);
    if (t.identity == NULL) {
      cli_error("out of memory");
      return fail(&t, CLI_EXIT_ERROR);
    }
    p->checkpoint = a.checkpoint;
    p->resume = a.resume;
    p->checkpoint_identity = t.identity;
  }
  p->progress = cli_progress_callback;
  p->progress_user = &t.progress;
  cli_signals_defer(1);
  st = dkm_train(t.ctx, p, t.src, &t.result);
  cli_signals_defer(0);
  if (st != DKM_OK) {
    return library_failure(&t, st);
  }
  if (cli_signal_received() != 0) {
    return library_failure(&t, DKM_ERR_CANCELLED);
  }
  cli_progress_trained(&t.progress);
  const dkm_result *res = t.result;

  double labels_seconds = 0;
  cli_sizes label_sizes;
  if (a.labels != NULL) {
    double t0 = cli_now();
    if (cli_npy_map_size(&t.labels, "i4", t.src->rows) != 0) {
      return fail(&t, CLI_EXIT_ERROR);
    }
    cli_signals_defer(1);
    st = dkm_assign(t.ctx, p, t.src, res->centroids, res->k, res->dim, t.labels.data, NULL);
    cli_signals_defer(0);
    if (st == DKM_OK && cli_signal_received() != 0) {
      st = DKM_ERR_CANCELLED;
    }
    if (st != DKM_OK) {
      return library_failure(&t, st);
    }
    labels_seconds = cli_now() - t0;
    t.label_counts = cli_count_labels(t.labels.data, t.src->rows, res->k);
    if (t.label_counts == NULL) {
      cli_error("out of memory counting labels");
      return fail(&t, CLI_EXIT_ERROR);
    }
    cli_sizes_summary(t.label_counts, res->k, &label_sizes);
    dkm_balance_of(t.label_counts, res->k, &t.label_balance);
  }
  cli_progress_finish(&t.progress);

  cli_sizes sizes;
  cli_sizes_summary(res->cluster_sizes, res->k, &sizes);
  if (cli_write_centroids(&t.centroids, res->centroids, res->k, res->dim, p->metric) != 0) {
    return fail(&t, CLI_EXIT_ERROR);
  }
  train_report report = {
      .args = &a,
      .src = t.src,
      .result = res,
      .sizes = &sizes,
      .label_sizes = a.labels != NULL ? &label_sizes : NULL,
      .balance = &res->balance,
      .label_balance = a.labels != NULL ? &t.label_balance : NULL,
      .plan = &plan,
      .labels_seconds = labels_seconds,
      .wall_seconds = cli_now() - start,
      .peak_rss = cli_peak_rss_bytes(),
  };
  if (a.stats != NULL && write_report(&t.stats, &report) != 0) {
    return fail(&t, CLI_EXIT_ERROR);
  }
  /* All outputs are complete: put them in place, all of them, without a
   * signal landing between two renames. */
  cli_signals_hold(1);
  int committed = cli_outfile_commit(&t.centroids) == 0 &&
                  (a.labels == NULL || cli_npy_map_commit(&t.labels) == 0) &&
                  (a.stats == NULL || cli_outfile_commit(&t.stats) == 0);
  cli_signals_hold(0);
  if (!committed) {
    return fail(&t, CLI_EXIT_ERROR);
  }
  /* The outputs are in place: the checkpoint has served (a kill before
   * this line leaves it, and a resume from it finishes at once). */
  if (a.checkpoint != NULL) {
    if (unlink(a.checkpoint) != 0 && errno != ENOENT) {
      cli_error("note: --checkpoint %s: cannot remove it: %s", a.checkpoint, strerror(errno));
    }
    /* A write a kill cut short leaves the library's temporary file. */
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp", a.checkpoint) >= 0) {
      unlink(tmp);
      free(tmp);
    }
  }

  if (!a.common.quiet) {
    dkm_strategy used = res->strategy; /* FLAT or HIERARCHICAL */
    printf("trained %u centroids of dimension %u on %llu of %llu rows: ", res->k, res->dim,
           (unsigned long long)res->sample_rows, (unsigned long long)res->rows);
    if (used == DKM_STRATEGY_HIERARCHICAL) {
      printf("hierarchical, objective %.9g\n", res->objective);
    } else {
      printf("%u iterations, objective %.9g\n", res->n_iter, res->objective);
    }
    char why[64];
    printf("strategy: %s", cli_strategy_reason(p->strategy, used, res->k, why, sizeof why));
    if (used == DKM_STRATEGY_HIERARCHICAL) {
      printf(": %u coarse centroid%s, %u levels, %u refinement pass%s", res->coarse_k,
             res->coarse_k == 1 ? "" : "s", res->levels, res->refine_passes,
             res->refine_passes == 1 ? "" : "es");
    }
    printf("%s\n", p->balance ? ", balanced" : "");
    printf("cluster sizes: min %llu, max %llu, mean %.1f, imbalance %.3f, empty %u\n",
           (unsigned long long)sizes.min, (unsigned long long)sizes.max, sizes.mean,
           sizes.imbalance, sizes.k - sizes.used);
    print_balance(&res->balance);
    if (res->distinct_rows != 0)
      printf("note: only %u distinct rows in the sample; %u clusters stay empty\n",
             res->distinct_rows, res->k - res->distinct_rows);
    if (a.labels != NULL) {
      printf("labels: %llu rows in %u clusters, largest %llu (cluster %u), smallest %llu\n",
             (unsigned long long)label_sizes.rows, label_sizes.used,
             (unsigned long long)label_sizes.max, label_sizes.largest,
             (unsigned long long)label_sizes.min);
    }
    char spill[32];
    printf("storage: %s%s, spilled %s\n", dkm_storage_name(res->storage),
           res->from_source ? " (read from the input)" : "",
           cli_format_bytes(res->spill_bytes, spill, sizeof spill));
    print_time(res, a.labels != NULL ? labels_seconds : -1, cli_now() - start);
  }
  if (!a.common.quiet && p->metric != DKM_METRIC_L2 && cli_output_kind(a.output) == CLI_OUT_FVECS) {
    /* .npy centroids carry their metric to assign; .fvecs cannot. */
    fflush(stdout);
    cli_error("note: %s cannot record the metric: give assign --metric %s too", a.output,
              dkm_metric_name(p->metric));
  }
  cleanup(&t);
  return CLI_EXIT_OK;
}
