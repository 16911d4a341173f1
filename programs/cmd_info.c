/*
 * cmd_info.c - diskmeans info: what a file holds and, with -k, what training
 * on it would cost (dkm_plan_training), before anything runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

enum { OPT_JSON = 1 };

static const cli_option info_options[] = {
    {"json", 0, 0, OPT_JSON},
    {NULL, 0, 0, 0},
};

typedef struct info_args {
  cli_common_args common; /* INPUT, -k, the parameters, how to read INPUT */
  int json;
} info_args;

static int info_option(const cli_scanner *s, int id, const char *v, void *args) {
  (void)s;
  (void)v;
  info_args *a = args;
  if (id != OPT_JSON) {
    return cli_usage_error("info", "internal error: option %d", id);
  }
  a->json = 1;
  return -1;
}

/* Parses argv into a; returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, info_args *a) {
  cli_scanner s;
  cli_scan_init(&s, "info",
                CLI_OPTS_EVERY_COMMAND | CLI_OPT_K | CLI_OPT_MPPC | CLI_OPT_MEMORY_LIMIT |
                    CLI_OPT_STORAGE | CLI_OPT_STRATEGY | CLI_OPT_REFINE,
                argc, argv);
  return cli_scan_all(&s, info_options, info_option, a, &a->common);
}

/* The values themselves, as stored: what a .gz inflates to, or an .fvecs
 * file without its per-row dimension fields. */
static uint64_t data_bytes(const cli_input_file *f) {
  return f->rows * f->dim * dkm_dtype_size(f->dtype);
}

/* The input's name: its path, or for several files the library's name of
 * the whole ("a.npy ... c.npy (3 parts)"). */
static const char *input_name(const info_args *a, const dkm_source *src) {
  const cli_inputs *in = a->common.inputs;
  return in->n == 1 ? in->paths[0] : src->name;
}

static int print_json(const info_args *a, const dkm_source *src, const dkm_plan *plan) {
  const cli_inputs *in = a->common.inputs;
  json_t *root = json_object();
  json_object_set_new(root, "file", json_string(input_name(a, src)));
  json_object_set_new(root, "format", json_string(dkm_format_name(src->format)));
  json_object_set_new(root, "dtype", json_string(cli_inputs_dtype(in)));
  json_object_set_new(root, "rows", cli_json_u64(src->rows));
  json_object_set_new(root, "dim", cli_json_u64(src->dim));
  json_object_set_new(root, "bytes", cli_json_u64(src->bytes));
  json_object_set_new(root, "data_bytes", cli_json_u64(cli_inputs_data_bytes(in)));
  /* Every file, as it was detected on its own. */
  json_t *files = json_array();
  for (size_t i = 0; i < in->n; i++) {
    const cli_input_file *f = &in->files[i];
    json_t *o = json_object();
    json_object_set_new(o, "file", json_string(in->paths[i]));
    json_object_set_new(o, "format", json_string(dkm_format_name(f->format)));
    json_object_set_new(o, "dtype", json_string(dkm_dtype_name(f->dtype)));
    json_object_set_new(o, "rows", cli_json_u64(f->rows));
    json_object_set_new(o, "dim", cli_json_u64(f->dim));
    json_object_set_new(o, "bytes", cli_json_u64(f->bytes));
    json_object_set_new(o, "data_bytes", cli_json_u64(data_bytes(f)));
    json_array_append_new(files, o);
  }
  json_object_set_new(root, "files", files);
  if (plan != NULL) {
    const dkm_params *p = &a->common.params;
    json_t *o = json_object();
    json_object_set_new(o, "k", cli_json_u64(p->k));
    json_object_set_new(o, "max_points_per_centroid", cli_json_u64(p->max_points_per_centroid));
    json_object_set_new(o, "sample_rows", cli_json_u64(plan->sample_rows));
    json_object_set_new(o, "sample_bytes", cli_json_u64(plan->sample_bytes));
    json_object_set_new(o, "storage", json_string(dkm_storage_name(plan->storage)));
    json_object_set_new(o, "storage_requested", json_string(dkm_storage_name(p->storage)));
    json_object_set_new(o, "from_source", json_boolean(plan->from_source));
    json_object_set_new(o, "spill_bytes", cli_json_u64(plan->spill_bytes));
    json_object_set_new(o, "memory_mode_bytes", cli_json_u64(plan->memory_mode_bytes));
    json_object_set_new(o, "disk_mode_bytes", cli_json_u64(plan->disk_mode_bytes));
    json_object_set_new(o, "memory_limit", cli_json_u64(plan->memory_limit));
    json_object_set_new(o, "memory_limit_source", json_string(plan->memory_limit_source));
    json_object_set_new(o, "strategy_requested", json_string(dkm_strategy_name(p->strategy)));
    json_object_set_new(o, "strategy", json_string(dkm_strategy_name(plan->strategy)));
    json_object_set_new(o, "refine", cli_json_u64(p->refine));
    json_object_set_new(o, "coarse_k", cli_json_u64(plan->coarse_k));
    json_object_set_new(o, "flops", json_real(plan->flops));
    json_object_set_new(o, "flat_flops", json_real(plan->flat_flops));
    json_object_set_new(root, "plan", o);
  } else {
    json_object_set_new(root, "plan", json_null());
  }
  char *text = json_dumps(root, JSON_INDENT(2));
  json_decref(root);
  if (text == NULL) {
    cli_error("out of memory");
    return CLI_EXIT_ERROR;
  }
  puts(text);
  free(text);
  return CLI_EXIT_OK;
}

static void print_bytes_line(const char *label, uint64_t bytes) {
  char buf[32];
  printf("%-19s %s (%llu bytes)\n", label, cli_format_bytes(bytes, buf, sizeof buf),
         (unsigned long long)bytes);
}

static void print_text(const info_args *a, const dkm_source *src, const dkm_plan *plan) {
  const cli_inputs *in = a->common.inputs;
  if (in->n == 1) {
    printf("%-19s %s\n", "file:", in->paths[0]);
  } else {
    /* Each file as detected on its own, then the whole. */
    for (size_t i = 0; i < in->n; i++) {
      const cli_input_file *f = &in->files[i];
      char label[32], size[32];
      snprintf(label, sizeof label, "file %zu:", i + 1);
      printf("%-19s %s: %s, %s, %llu rows, %s\n", label, in->paths[i], dkm_format_name(f->format),
             dkm_dtype_name(f->dtype), (unsigned long long)f->rows,
             cli_format_bytes(f->bytes, size, sizeof size));
    }
    printf("%-19s %zu\n", "files:", in->n);
  }
  printf("%-19s %s\n", "format:", dkm_format_name(src->format));
  printf("%-19s %s\n", "dtype:", cli_inputs_dtype(in));
  printf("%-19s %llu%s\n", "rows:", (unsigned long long)src->rows, in->n > 1 ? " (total)" : "");
  printf("%-19s %u\n", "dim:", src->dim);
  print_bytes_line("bytes:", src->bytes);
  print_bytes_line("data bytes:", cli_inputs_data_bytes(in));
  if (plan == NULL) {
    return;
  }
  const dkm_params *p = &a->common.params;
  printf("%-19s %u\n", "k:", p->k);
  printf("%-19s %llu\n", "sample rows:", (unsigned long long)plan->sample_rows);
  print_bytes_line("sample bytes:", plan->sample_bytes);
  print_bytes_line("spill bytes:", plan->spill_bytes);
  print_bytes_line("memory mode needs:", plan->memory_mode_bytes);
  print_bytes_line("disk mode needs:", plan->disk_mode_bytes);
  print_bytes_line("memory limit:", plan->memory_limit);
  if (p->memory_limit != 0)
    printf("%-19s %s\n", "memory limit from:", "--memory-limit");
  else if (plan->memory_limit_source == NULL || strcmp(plan->memory_limit_source, "unknown") == 0)
    printf("%-19s %s\n", "memory limit from:", "unknown (no budget: auto chooses memory)");
  else
    printf("%-19s half of %s\n", "memory limit from:", plan->memory_limit_source);
  printf("%-19s %s%s\n",
         p->storage == DKM_STORAGE_AUTO ? "auto would choose:" : "storage (forced):",
         dkm_storage_name(plan->storage),
         plan->from_source ? " (training reads the input file directly)" : "");
  char why[64];
  printf("%-19s %s\n",
         "strategy:", cli_strategy_reason(p->strategy, plan->strategy, p->k, why, sizeof why));
  if (plan->coarse_k > 0) {
    printf("%-19s %u\n", "coarse k:", plan->coarse_k);
  }
  printf("%-19s %.2g flops", "arithmetic:", plan->flops);
  if (plan->strategy == DKM_STRATEGY_HIERARCHICAL && plan->flops > 0) {
    double ratio = plan->flat_flops / plan->flops;
    if (ratio >= 1) {
      printf(", %.3gx less than flat (%.2g)", ratio, plan->flat_flops);
    } else {
      printf(", %.3gx more than flat (%.2g)", 1 / ratio, plan->flat_flops);
    }
  }
  printf("\n");
}

int cli_cmd_info(int argc, char **argv) {
  info_args a;
  memset(&a, 0, sizeof a);
  dkm_params *p = &a.common.params;
  dkm_params_init(p);
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0) {
    return rc;
  }
  dkm_file_options fopts;
  if (cli_file_options("info", &a.common.in, &fopts) != 0) {
    return CLI_EXIT_USAGE;
  }
  p->tmp_dir = cli_default_tmp_dir();
  dkm_ctx *ctx = dkm_ctx_create(NULL);
  if (ctx == NULL) {
    cli_error("out of memory");
    return CLI_EXIT_ERROR;
  }
  int have_k = a.common.have_k;
  dkm_source *src = NULL;
  dkm_plan plan;
  dkm_status st;
  if (have_k && (st = dkm_params_check(ctx, p)) != DKM_OK) {
    rc = cli_usage_error("info", "%s", dkm_ctx_errmsg(ctx));
    goto done;
  }
  rc = cli_open_input(ctx, &a.common, &fopts, &src);
  if (rc != CLI_EXIT_OK) {
    goto done;
  }
  /* A plan that cannot be made (k larger than the rows) still leaves a
   * file worth describing: print what it holds, then the error. */
  st = have_k ? dkm_plan_training(ctx, p, src, &plan) : DKM_OK;
  const dkm_plan *shown = have_k && st == DKM_OK ? &plan : NULL;
  if (a.json) {
    rc = print_json(&a, src, shown);
  } else {
    print_text(&a, src, shown);
    rc = CLI_EXIT_OK;
  }
  if (st != DKM_OK) {
    /* stdout first, so that a terminal shows the description above the
     * error. */
    fflush(stdout);
    rc = cli_library_error(ctx, st);
  }

done:
  dkm_source_close(src);
  dkm_ctx_free(ctx);
  return rc;
}
