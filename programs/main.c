/*
 * main.c - the diskmeans tool: picks the subcommand, prints help and version,
 * and turns failures into one line on stderr and an exit status.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli.h"

void cli_error(const char *fmt, ...) {
  /* One fprintf for the whole line, so that it is not interleaved with
   * anything else written to stderr. */
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  cli_progress_erase();
  fprintf(stderr, CLI_NAME ": %s\n", line);
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (cmd != NULL) {
    fprintf(stderr, CLI_NAME ": %s: %s (see '" CLI_NAME " %s --help')\n", cmd, line, cmd);
  } else {
    fprintf(stderr, CLI_NAME ": %s (see '" CLI_NAME " --help')\n", line);
  }
  return CLI_EXIT_USAGE;
}

int cli_library_error(const dkm_ctx *ctx, dkm_status status) {
  const char *msg = ctx != NULL ? dkm_ctx_errmsg(ctx) : "";
  if (msg[0] == '\0') {
    msg = dkm_strerror(status);
  }
  if (status == DKM_ERR_CANCELLED && cli_signal_received() != 0) {
    cli_error("interrupted");
    return 128 + cli_signal_received();
  }
  cli_error("%s", msg);
  return CLI_EXIT_ERROR;
}

double cli_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t cli_peak_rss_bytes(void) {
  /* VmHWM and ru_maxrss are the same counter on Linux; getrusage needs no
   * parsing. ru_maxrss is in KiB. */
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0 || ru.ru_maxrss < 0) {
    return 0;
  }
  return (uint64_t)ru.ru_maxrss * 1024u;
}

json_t *cli_json_u64(uint64_t v) {
  return v <= (uint64_t)INT64_MAX ? json_integer((json_int_t)v) : json_real((double)v);
}

static int print_help(const char *cmd) {
  const char *text = cli_help_text(cmd);
  if (text == NULL) {
    return cli_usage_error(NULL, "unknown command '%s'", cmd);
  }
  fputs(text, stdout);
  return CLI_EXIT_OK;
}

static int finish(int status) {
  /* A failed write to stdout (a full disk, a closed pipe) is an error too. */
  if (fflush(stdout) != 0 || ferror(stdout)) {
    cli_error("cannot write to standard output");
    return status == CLI_EXIT_OK ? CLI_EXIT_ERROR : status;
  }
  return status;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    return cli_usage_error(NULL, "missing command");
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    return finish(print_help(NULL));
  }
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
    printf(CLI_NAME " %s\n", dkm_version());
    return finish(CLI_EXIT_OK);
  }
  if (strcmp(cmd, "help") == 0) {
    if (argc > 3) {
      return cli_usage_error(NULL, "help takes at most one command");
    }
    return finish(print_help(argc == 3 ? argv[2] : NULL));
  }

  cli_signals_install();
  /* Subcommands see argv starting at their own name. */
  int (*run)(int, char **) = strcmp(cmd, "train") == 0    ? cli_cmd_train
                             : strcmp(cmd, "assign") == 0 ? cli_cmd_assign
                             : strcmp(cmd, "info") == 0   ? cli_cmd_info
                                                          : NULL;
  if (run != NULL) {
    int status = run(argc - 1, argv + 1);
    cli_inputs_release();
    return finish(status);
  }
  if (cmd[0] == '-') {
    return cli_usage_error(NULL, "unknown option '%s'", cmd);
  }
  return cli_usage_error(NULL, "unknown command '%s'", cmd);
}
