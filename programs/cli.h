/*
 * cli.h - what the files of the diskmeans command-line tool share.
 *
 * The tool uses only the public header. Its own pieces:
 *   main.c       dispatch, --help, --version, exit statuses
 *   args.c       the option scanner, the options the commands share, strict
 *                number/size parsing
 *   inputs.c     the INPUT files (several, @LIST) and opening them as one
 *   outfile.c    atomic output files and the signal handlers that clean them
 *   writers.c    .npy and .fvecs writers
 *   progress.c   the progress bar (terminal) or plain lines (pipe, log file)
 *   centroids.c  reading centroid files whole; cluster-size summaries
 *   cmd_*.c      one file per subcommand
 *   help.c       the --help texts (docs/cli.md repeats them verbatim)
 */
#ifndef DKM_CLI_H
#define DKM_CLI_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "diskmeans.h"

/* Exit statuses. A usage error is something the user typed wrong; anything
 * else that fails (a bad file, no memory, no space) is a runtime error. A
 * signal exits with 128 + its number, as shells report it. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_ERROR = 1, CLI_EXIT_USAGE = 2 };

#define CLI_NAME "diskmeans"

/* --- messages (main.c) --------------------------------------------------- */

/* Prints "diskmeans: <message>" as one line on stderr. */
void cli_error(const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Prints "diskmeans: <cmd>: <message> (see 'diskmeans <cmd> --help')" as one
 * line on stderr and returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Reports the failure recorded on ctx (or the status text when the library
 * left no message) and returns the exit status it maps to. */
int cli_library_error(const dkm_ctx *ctx, dkm_status status);

/* --- help (help.c) -------------------------------------------------------- */

/* The --help text of a subcommand ("train", ...) or of the tool (NULL);
 * NULL for an unknown subcommand. */
const char *cli_help_text(const char *cmd);

/* --- option scanning (args.c) --------------------------------------------- */

/* A small getopt_long without global state: options may come before or after
 * the positional arguments, "--name value", "--name=value", "-k value" and
 * "-kvalue" all work, and "--" ends the options. */
typedef struct cli_option {
  const char *long_name; /* without the dashes, e.g. "iters" */
  char short_name;       /* 0 if none */
  int has_value;
  int id;
} cli_option;

/* The options that more than one command takes, parsed the same way for
 * each by cli_scan_all(). Their ids are bits above any command's own
 * ids (which count from 1), so that a command names the ones it takes as a
 * mask. */
enum {
  CLI_OPT_HELP = 1 << 8,
  CLI_OPT_FORMAT = 1 << 9,
  CLI_OPT_DIM = 1 << 10,
  CLI_OPT_DTYPE = 1 << 11,
  CLI_OPT_THREADS = 1 << 12,
  CLI_OPT_BLOCK_ROWS = 1 << 13,
  CLI_OPT_QUIET = 1 << 14,
  CLI_OPT_METRIC = 1 << 15,
  CLI_OPT_K = 1 << 16,
  CLI_OPT_MPPC = 1 << 17, /* --max-points-per-centroid */
  CLI_OPT_STORAGE = 1 << 18,
  CLI_OPT_MEMORY_LIMIT = 1 << 19,
  CLI_OPT_TMP_DIR = 1 << 20,
  CLI_OPT_STRATEGY = 1 << 21,
  CLI_OPT_REFINE = 1 << 22,
  CLI_OPT_DATASET = 1 << 23
};

/* What every command takes: --help, how to read its INPUT, and how to split
 * the work. */
#define CLI_OPTS_EVERY_COMMAND                                                                     \
  (CLI_OPT_HELP | CLI_OPT_FORMAT | CLI_OPT_DIM | CLI_OPT_DTYPE | CLI_OPT_THREADS |                 \
   CLI_OPT_BLOCK_ROWS | CLI_OPT_DATASET)

typedef struct cli_scanner {
  int argc;
  char **argv;
  int index;        /* next argument to look at */
  int only_args;    /* after "--" */
  unsigned common;  /* the CLI_OPT_* the command takes */
  const char *cmd;  /* for messages */
  const char *name; /* the option as typed, for messages ("--iters") */
  char name_buf[64];
} cli_scanner;

enum { CLI_SCAN_END = -1, CLI_SCAN_ARG = -2, CLI_SCAN_ERROR = -3 };

/* common is the mask of shared options (CLI_OPT_*) the command takes besides
 * its own. */
void cli_scan_init(cli_scanner *s, const char *cmd, unsigned common, int argc, char **argv);

/* Returns the id of the next option, the command's own or a shared one (with
 * its value in *value, or NULL), CLI_SCAN_ARG for a positional argument (in
 * *value), CLI_SCAN_END, or CLI_SCAN_ERROR after printing a usage error. */
int cli_scan_next(cli_scanner *s, const cli_option *options, const char **value);

/* Strict parsers. Each returns 0 on success or prints a usage error naming
 * the option and returns -1. */
int cli_parse_u64(const cli_scanner *s, const char *text, uint64_t min, uint64_t max,
                  uint64_t *out);
int cli_parse_u32(const cli_scanner *s, const char *text, uint32_t min, uint32_t *out);
int cli_parse_double(const cli_scanner *s, const char *text, double min, double *out);
/* -k: 1 to DKM_MAX_K, with the library's wording above that. */
int cli_parse_k(const cli_scanner *s, const char *text, uint32_t *out);
/* "4G", "512M", "1.5T", "100000": bytes with an optional K/M/G/T suffix
 * (powers of 1024), an optional "B" or "iB" after it. */
int cli_parse_size(const cli_scanner *s, const char *text, uint64_t *out);

int cli_parse_metric(const cli_scanner *s, const char *text, dkm_metric *out);
int cli_parse_storage(const cli_scanner *s, const char *text, dkm_storage *out);
int cli_parse_strategy(const cli_scanner *s, const char *text, dkm_strategy *out);

/* "flat (auto: k < 4096)", "hierarchical (--strategy)": the strategy the
 * library used (or plans to use) for k centroids and why, for train's
 * summary and info. */
const char *cli_strategy_reason(dkm_strategy requested, dkm_strategy used, uint32_t k, char *buf,
                                size_t size);

/* $TMPDIR if set and not empty, else /tmp. */
const char *cli_default_tmp_dir(void);

/* Options every command that reads a file shares: --format, --dim, --dtype,
 * --dataset. */
typedef struct cli_input_options {
  const char *format;
  const char *dim;
  const char *dtype;
  const char *dataset;
} cli_input_options;

/* Turns the four options into file options; prints a usage error and
 * returns -1 when they do not fit together. */
int cli_file_options(const char *cmd, const cli_input_options *in, dkm_file_options *out);

/* --- the INPUT files (inputs.c) ------------------------------------------- */

/* What one input file held, recorded as it was opened. */
typedef struct cli_input_file {
  uint64_t rows;
  uint32_t dim;
  dkm_dtype dtype;
  dkm_format format;
  uint64_t bytes;
} cli_input_file;

/* The INPUT arguments, one data set in the order given: each argument is a
 * file, or @LIST, a file naming files one a line (blank lines and lines
 * whose first non-blank character is '#' are skipped; a relative path is
 * relative to the list's folder). */
typedef struct cli_inputs {
  const char **paths;           /* the files to read, lists expanded, in order */
  size_t n;                     /* >= 1 */
  struct cli_file_arg *checked; /* every file and list, for cli_check_files() */
  size_t n_checked;
  cli_input_file *files; /* n, filled by cli_open_input() */
} cli_inputs;

/* Records a positional argument (borrowed: argv). -1 after an error. */
int cli_inputs_arg(const char *arg);
/* The positional arguments recorded so far. */
size_t cli_inputs_args(void);
/* Reads the @LIST files: CLI_EXIT_OK with the inputs in *out, or prints one
 * line naming the list and returns CLI_EXIT_ERROR. */
int cli_inputs_expand(const cli_inputs **out);
/* cli_check_files() with every input file and list (as "INPUT" and
 * "@LIST") and the n_more other files the command reads. */
int cli_check_inputs(const cli_inputs *in, const struct cli_file_arg *more, size_t n_more,
                     const struct cli_file_arg *outputs, size_t n_outputs);
/* Frees the inputs; main() calls it once the command has returned. */
void cli_inputs_release(void);
/* The files' common dtype name, or "mixed" (after cli_open_input). */
const char *cli_inputs_dtype(const cli_inputs *in);
/* The values as stored, summed over the files (after cli_open_input). */
uint64_t cli_inputs_data_bytes(const cli_inputs *in);

/* What the shared options and the INPUT arguments fill in. */
typedef struct cli_common_args {
  const cli_inputs *inputs; /* the INPUT files, set by cli_scan_all() */
  int quiet;
  int have_k;
  int have_metric; /* --metric was given */
  cli_input_options in;
  dkm_params params;
} cli_common_args;

/* A command's handler of its own options (ids from 1 up): stores or parses
 * value into args. Returns -1 to go on, else the exit status. */
typedef int (*cli_option_fn)(const cli_scanner *s, int id, const char *value, void *args);

/* Scans the whole command line with s: the command's own options go to own
 * with args, the INPUT argument and the shared options (cli_common_option()
 * in args.c) into c. Returns -1 when the scan went well and INPUT was given,
 * else the exit status (CLI_EXIT_OK once --help is printed, CLI_EXIT_USAGE
 * after a usage error). */
int cli_scan_all(cli_scanner *s, const cli_option *options, cli_option_fn own, void *args,
                 cli_common_args *c);

/* Opens every file of c->inputs as opts say (each detected on its own; "-"
 * is the standard input, a stream kept in c->params.tmp_dir, else
 * cli_default_tmp_dir()), as one source: the file itself, or their
 * concatenation (dkm_source_concat: the dimensions must agree), and records
 * what each file holds in c->inputs->files. Returns CLI_EXIT_OK, or reports
 * the failure (naming the file) and returns its exit status, with nothing
 * left open. */
int cli_open_input(dkm_ctx *ctx, const cli_common_args *c, const dkm_file_options *opts,
                   dkm_source **out);

/* "1.5 GiB", "812 B". buf should have room for 32 bytes. */
const char *cli_format_bytes(uint64_t bytes, char *buf, size_t size);

/* --- atomic output files (outfile.c) ---------------------------------------- */

/* An output is written to a temporary file in the target's own folder
 * ("NAME.tmp.XXXXXX") and renamed over the target only once it is complete
 * and synced, so a failed or interrupted run never leaves a partial output
 * and never touches an existing one. The temporary files are listed where
 * the signal handlers can find and unlink them. */
typedef struct cli_outfile {
  const char *target; /* borrowed */
  char *tmp_path;     /* malloc'ed */
  int fd;
  int slot; /* index in the signal-safe list, -1 if none */
} cli_outfile;

/* A file a command reads or writes, named by the option that gave it. */
typedef struct cli_file_arg {
  const char *option; /* "INPUT", "-o", "--labels", ... */
  const char *path;   /* NULL when the option was not given */
} cli_file_arg;

/* The one check every command makes before any work: no output may be the
 * same file as an input (compared by device and inode, following symlinks,
 * so hard links, symlinks and "./x.npy" are caught), nor as another output.
 * An output that does not exist yet is compared by its folder and name.
 * Entries with a NULL path are skipped. Returns CLI_EXIT_OK, or prints one
 * line naming both options and returns CLI_EXIT_ERROR. */
int cli_check_files(const cli_file_arg *inputs, size_t n_inputs, const cli_file_arg *outputs,
                    size_t n_outputs);

/* When path is an existing folder, prints "PATH: is a folder, not an output
 * file" and returns -1; else 0. */
int cli_refuse_folder(const char *path);

/* Installs the handlers of SIGINT, SIGTERM, SIGHUP and SIGPIPE. */
void cli_signals_install(void);

/* While a library call that can be cancelled is running, a first signal only
 * asks the progress callback to cancel (so the library frees what it holds
 * and the command exits cleanly); outside of it, or on a second signal, the
 * handler unlinks the temporary files and exits at once. */
void cli_signals_defer(int on);

/* Holds the signals back (on = 1) until released (on = 0), so that a set of
 * outputs is renamed into place all together or not at all; a signal that
 * came meanwhile is handled on release. Not nested. */
void cli_signals_hold(int on);

/* The signal received so far (0 if none). */
int cli_signal_received(void);

/* Creates the temporary file for target. Fails (with a message naming the
 * folder) when the folder is missing or not writable: that is checked before
 * any training starts. Returns 0 or -1 after printing an error. */
int cli_outfile_open(cli_outfile *f, const char *target);

/* Writes len bytes at the current position; 0 or -1 after printing. */
int cli_outfile_write(cli_outfile *f, const void *data, size_t len);

/* Syncs, closes and renames the temporary file over the target, then syncs
 * the folder. 0 or -1 after printing (the temporary file is then removed). */
int cli_outfile_commit(cli_outfile *f);

/* Closes and removes the temporary file; harmless when nothing is open. */
void cli_outfile_abort(cli_outfile *f);

/* --- writers (writers.c) ---------------------------------------------------- */

/* Size of the .npy header used for every output: the data starts at a
 * multiple of 64 bytes. descr is "<f4" or "<i4"; cols 0 means a 1-D shape.
 * A comment (or NULL) is written after the dict as "# comment". */
size_t cli_npy_header(char *buf, size_t size, const char *descr, uint64_t rows, uint32_t cols,
                      const char *comment);

/* How a .npy centroid file records the metric it was trained with: a Python
 * comment after the header dict, "# diskmeans metric=ip". */
#define CLI_METRIC_TAG "diskmeans metric="

/* Writes k x dim float32 centroids to f as .npy (recording metric in the
 * header) or .fvecs (which cannot record it), by the target's extension,
 * which cli_output_kind() already checked. */
int cli_write_centroids(cli_outfile *f, const float *centroids, uint32_t k, uint32_t dim,
                        dkm_metric metric);

/* Kinds of centroid files, by extension. */
typedef enum { CLI_OUT_NPY, CLI_OUT_FVECS, CLI_OUT_OTHER } cli_out_kind;
cli_out_kind cli_output_kind(const char *path);
/* The extension of path for messages ("" when it has none). */
const char *cli_extension(const char *path);

/* A 1-D .npy output of rows elements of 4 bytes whose data the library writes
 * in place: the temporary file is sized, mapped, and data points at the first
 * element. */
typedef struct cli_npy_map {
  cli_outfile file;
  void *map;
  size_t map_size;
  void *data;
} cli_npy_map;

/* Creates the temporary file (early, to fail fast on a bad folder). */
int cli_npy_map_open(cli_npy_map *m, const char *target);
/* Sizes and maps the file once the row count is known; descr is "f4" or
 * "i4". */
int cli_npy_map_size(cli_npy_map *m, const char *descr, uint64_t rows);
int cli_npy_map_commit(cli_npy_map *m);
void cli_npy_map_abort(cli_npy_map *m);

/* --- centroid files (centroids.c) ------------------------------------------ */

/* Reads the centroid file path whole (any input format). Its dimension must
 * be input's, and its row count want_k unless that is 0. what names the rows
 * in messages ("centroids"). On success returns CLI_EXIT_OK with a malloc'ed
 * k x dim array in *out and k in *k_out; otherwise prints one error line and
 * returns the exit status. */
int cli_read_centroids(dkm_ctx *ctx, const char *path, const dkm_source *input, uint32_t want_k,
                       const char *what, float **out, uint32_t *k_out);

/* The metric a .npy centroid file records (CLI_METRIC_TAG): *found is 1
 * and *metric set when it has one; 0 for any other file, one that cannot be
 * opened included (reading it whole reports that). Returns CLI_EXIT_OK, or
 * prints one line and returns CLI_EXIT_ERROR for a tag naming no metric. */
int cli_read_metric_tag(const char *path, dkm_metric *metric, int *found);

/* Summary of cluster sizes. */
typedef struct cli_sizes {
  uint32_t k;
  uint64_t rows; /* sum of the sizes */
  uint64_t min, max;
  uint32_t largest; /* index of the (first) largest cluster */
  uint32_t used;    /* non-empty clusters */
  double mean;
  double imbalance; /* k * sum(size^2) / rows^2; 1 is perfectly balanced */
} cli_sizes;

void cli_sizes_summary(const uint64_t *counts, uint32_t k, cli_sizes *out);

/* Counts the rows of each label (malloc'ed array of k), NULL if no memory. */
uint64_t *cli_count_labels(const int32_t *labels, uint64_t n, uint32_t k);

/* --- progress (progress.c) -------------------------------------------------- */

typedef enum { CLI_PROGRESS_QUIET, CLI_PROGRESS_TTY, CLI_PROGRESS_PLAIN } cli_progress_mode;

/* Which report a progress call is about: a new key starts a new phase,
 * iteration or group. */
typedef struct cli_progress_key {
  int phase; /* -1: none yet */
  uint32_t run, iteration;
  int part;
  uint32_t level, group;
} cli_progress_key;

/* Deepest nesting of hierarchical groups the labels show. */
#define CLI_PROGRESS_LEVELS 8

typedef struct cli_progress {
  cli_progress_mode mode;
  uint32_t n_redo;
  uint64_t sample_rows;  /* rows the sample will hold (0: unknown), so that
                            "sampled X of Y rows" tells kept from scanned */
  int shown;             /* a bar is on screen */
  double last_draw;      /* when the bar was last drawn */
  unsigned phases_drawn; /* bit per dkm_phase of each part (whole, coarse,
                            groups, nested) already shown */
  double phase_start;    /* when the current phase or iteration started */
  double last_call;      /* when the callback was last called */
  int last_finished;     /* and whether that call ended a phase or iteration */
  double iter_sum;       /* seconds of the finished iterations (or refinement
                            passes) of the current training */
  uint32_t iter_done;    /* finished iterations */
  cli_progress_key last; /* the last call */
  cli_progress_key line; /* what the last plain line was about */
  /* Hierarchical training: the group last reported at each level (n_groups
   * 0: none), and the groups stage at level 0, whose groups are summed up in
   * a few lines rather than one per iteration. */
  struct {
    uint32_t group, n_groups;
  } nest[CLI_PROGRESS_LEVELS];
  int in_groups;            /* the groups stage is under way */
  double groups_start;      /* when it started */
  double group_start;       /* when the current level-0 group started */
  int group_known;          /* a level-0 group is current */
  int group_pending;        /* one started that no report named yet */
  uint32_t group, n_groups; /* which */
  uint32_t group_iters;     /* its finished iterations (flat groups) */
  double group_objective;   /* and the last one's objective */
  uint32_t groups_done;     /* level-0 groups finished */
} cli_progress;

/* mode from --quiet and isatty(2). */
void cli_progress_init(cli_progress *p, int quiet, uint32_t n_redo);
/* The dkm_progress_fn; user is a cli_progress. Returns non-zero (cancel)
 * once a signal was received. */
int cli_progress_callback(void *user, const dkm_progress *progress);
/* Training returned: ends the groups stage of a hierarchical run, whose end
 * no later report shows when no refinement pass follows. */
void cli_progress_trained(cli_progress *p);
/* Erases the bar, if one is on screen. */
void cli_progress_finish(cli_progress *p);
/* Erases whatever bar is on screen (cli_error calls it). */
void cli_progress_erase(void);
/* Whether a bar is on screen; async-signal-safe. */
int cli_progress_bar_shown(void);

/* A JSON integer, or a real for the (unlikely) values above INT64_MAX. */
json_t *cli_json_u64(uint64_t v);

/* --- misc (main.c) ------------------------------------------------------------ */

double cli_now(void);
uint64_t cli_peak_rss_bytes(void);

/* Subcommands: each returns an exit status. */
int cli_cmd_train(int argc, char **argv);
int cli_cmd_assign(int argc, char **argv);
int cli_cmd_info(int argc, char **argv);

#endif
