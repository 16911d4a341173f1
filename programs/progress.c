/*
 * progress.c - what the user sees while the library works.
 *
 * On a terminal: one bar on stderr, redrawn in place at most ten times a
 * second. Elsewhere (a pipe, a log file, CI) escape codes and carriage
 * returns only make a mess, so it prints one plain line when a phase or an
 * iteration ends. --quiet prints nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"

#define REDRAW_SECONDS 0.1

/* Whether a bar is on the terminal's last line, whichever command drew it:
 * an error message must first erase it, or it would be glued to the bar. */
static volatile sig_atomic_t bar_on_screen;

int cli_progress_bar_shown(void) {
  return bar_on_screen;
}

void cli_progress_erase(void) {
  if (bar_on_screen) {
    fputs("\r\033[K", stderr);
    bar_on_screen = 0;
  }
}
#define BAR_WIDTH 24

void cli_progress_init(cli_progress *p, int quiet, uint32_t n_redo) {
  memset(p, 0, sizeof *p);
  const char *term = getenv("TERM");
  if (quiet) {
    p->mode = CLI_PROGRESS_QUIET;
  } else if (isatty(STDERR_FILENO) && !(term != NULL && strcmp(term, "dumb") == 0)) {
    p->mode = CLI_PROGRESS_TTY;
  } else {
    p->mode = CLI_PROGRESS_PLAIN;
  }
  p->n_redo = n_redo > 0 ? n_redo : 1;
  p->last_phase = -1;
  p->last_line_phase = -1;
  /* The first phase starts now, even if the library reports it only when
   * it ends. */
  p->last_call = cli_now();
  p->last_finished = 1;
}

static void format_duration(double seconds, char *buf, size_t size) {
  if (!isfinite(seconds) || seconds < 0) {
    snprintf(buf, size, "?");
    return;
  }
  unsigned long s = (unsigned long)(seconds + 0.5);
  if (s >= 3600) {
    snprintf(buf, size, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
  } else {
    snprintf(buf, size, "%lu:%02lu", s / 60, s % 60);
  }
}

static void format_rate(double rows_per_second, char *buf, size_t size) {
  if (!isfinite(rows_per_second) || rows_per_second <= 0) {
    snprintf(buf, size, "-");
  } else if (rows_per_second >= 1e6) {
    snprintf(buf, size, "%.1fM", rows_per_second / 1e6);
  } else if (rows_per_second >= 1e3) {
    snprintf(buf, size, "%.1fk", rows_per_second / 1e3);
  } else {
    snprintf(buf, size, "%.0f", rows_per_second);
  }
}

static const char *phase_label(dkm_phase phase) {
  switch (phase) {
  case DKM_PHASE_SAMPLE:
    return "sampling";
  case DKM_PHASE_INIT:
    return "initialising";
  case DKM_PHASE_ITERATE:
    return "iterating";
  case DKM_PHASE_ASSIGN:
    return "labelling";
  }
  return "working";
}

static void draw_bar(cli_progress *p, const dkm_progress *g, double now) {
  double frac = g->total > 0 ? (double)g->done / (double)g->total : 1.0;
  if (frac > 1) {
    frac = 1;
  }
  double elapsed = now - p->phase_start;
  char bar[BAR_WIDTH + 1];
  int filled = (int)(frac * BAR_WIDTH);
  for (int i = 0; i < BAR_WIDTH; i++) {
    bar[i] = i < filled ? '#' : '-';
  }
  bar[BAR_WIDTH] = '\0';

  char what[64], rate[32], eta[32], extra[64] = "";
  double remaining;
  if (g->phase == DKM_PHASE_ITERATE) {
    if (p->n_redo > 1) {
      snprintf(what, sizeof what, "run %u/%u iteration %u/%u", g->run + 1, p->n_redo,
               g->iteration + 1, g->max_iter);
    } else {
      snprintf(what, sizeof what, "iteration %u/%u", g->iteration + 1, g->max_iter);
    }
    /* The time of one iteration: the mean of the finished ones, or the
     * current one's projection before any finished. Early convergence can
     * only make the real ETA shorter. */
    double per_iter =
        p->iter_done > 0 ? p->iter_sum / p->iter_done : (frac > 0 ? elapsed / frac : NAN);
    double iters_left = (double)(g->max_iter - g->iteration - 1) +
                        (double)(p->n_redo - g->run - 1) * g->max_iter + (1 - frac);
    remaining = per_iter * iters_left;
    if (isfinite(g->objective)) {
      snprintf(extra, sizeof extra, "  objective %.6g", g->objective);
    }
  } else {
    snprintf(what, sizeof what, "%s", phase_label(g->phase));
    remaining = frac > 0 ? elapsed * (1 - frac) / frac : NAN;
  }
  if (g->phase == DKM_PHASE_INIT) {
    snprintf(rate, sizeof rate, "step %llu/%llu", (unsigned long long)g->done,
             (unsigned long long)g->total);
  } else {
    char r[16];
    format_rate(elapsed > 0 ? (double)g->done / elapsed : NAN, r, sizeof r);
    snprintf(rate, sizeof rate, "%s rows/s", r);
  }
  format_duration(remaining, eta, sizeof eta);
  char line[256];
  int len = snprintf(line, sizeof line, "%s [%s] %3d%%%s  %s  ETA %s", what, bar, (int)(frac * 100),
                     extra, rate, eta);
  /* A line longer than the terminal wraps, and \r then redraws only its
   * last part: cut it to the width instead. */
  struct winsize ws;
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && len >= ws.ws_col &&
      (size_t)ws.ws_col - 1 < sizeof line) {
    line[ws.ws_col - 1] = '\0';
  }
  fprintf(stderr, "\r\033[K%s", line);
  fflush(stderr);
  p->shown = 1;
  bar_on_screen = 1;
  p->last_draw = now;
}

static void plain_line(cli_progress *p, const dkm_progress *g, double now) {
  /* One line per finished phase or iteration, and only once even if the
   * library reports the end twice. */
  if (p->last_line_phase == (int)g->phase && p->last_line_run == g->run &&
      p->last_line_iter == g->iteration) {
    return;
  }
  p->last_line_phase = (int)g->phase;
  p->last_line_run = g->run;
  p->last_line_iter = g->iteration;
  double seconds = now - p->phase_start;
  switch (g->phase) {
  case DKM_PHASE_SAMPLE:
    /* done counts the rows scanned; the sample keeps fewer of them unless
     * it takes every row. */
    if (p->sample_rows > 0) {
      fprintf(stderr, "sampled %llu of %llu rows in %.2f s\n", (unsigned long long)p->sample_rows,
              (unsigned long long)g->done, seconds);
    } else {
      fprintf(stderr, "scanned %llu rows in %.2f s\n", (unsigned long long)g->done, seconds);
    }
    break;
  case DKM_PHASE_INIT:
    fprintf(stderr, "initialised the centroids in %.2f s\n", seconds);
    break;
  case DKM_PHASE_ITERATE:
    if (p->n_redo > 1) {
      fprintf(stderr, "run %u/%u ", g->run + 1, p->n_redo);
    }
    fprintf(stderr, "iteration %u/%u: objective %.9g (%.2f s)\n", g->iteration + 1, g->max_iter,
            g->objective, seconds);
    break;
  case DKM_PHASE_ASSIGN:
    fprintf(stderr, "labelled %llu rows in %.2f s\n", (unsigned long long)g->done, seconds);
    break;
  }
}

int cli_progress_callback(void *user, const dkm_progress *g) {
  cli_progress *p = user;
  if (cli_signal_received() != 0) {
    return 1;
  }
  if (p->mode == CLI_PROGRESS_QUIET) {
    return 0;
  }
  double now = cli_now();
  if (p->last_phase != (int)g->phase || p->last_run != g->run || p->last_iter != g->iteration) {
    p->last_phase = (int)g->phase;
    p->last_run = g->run;
    p->last_iter = g->iteration;
    /* The library may report an iteration only when it ends; it started
     * when the previous one ended. */
    p->phase_start = p->last_finished ? p->last_call : now;
  }
  int finished = g->done >= g->total;
  p->last_call = now;
  p->last_finished = finished;
  if (finished && g->phase == DKM_PHASE_ITERATE &&
      !(p->last_line_phase == DKM_PHASE_ITERATE && p->last_line_run == g->run &&
        p->last_line_iter == g->iteration)) {
    p->iter_sum += now - p->phase_start;
    p->iter_done++;
  }
  if (p->mode == CLI_PROGRESS_TTY) {
    /* At most ten redraws a second, however short the iterations (a run of
     * thousands of tiny ones must not flood the terminal), except that the
     * first report of each phase is shown at once. */
    unsigned bit = (unsigned)g->phase < 32 ? 1u << (unsigned)g->phase : 0;
    if ((bit != 0 && (p->phases_drawn & bit) == 0) || now - p->last_draw >= REDRAW_SECONDS) {
      p->phases_drawn |= bit;
      draw_bar(p, g, now);
    }
    if (finished) {
      /* Remember it, so that the iteration time is counted once. */
      p->last_line_phase = (int)g->phase;
      p->last_line_run = g->run;
      p->last_line_iter = g->iteration;
    }
  } else if (finished) {
    plain_line(p, g, now);
  }
  return 0;
}

void cli_progress_finish(cli_progress *p) {
  if (p->shown) {
    cli_progress_erase();
    fflush(stderr);
    p->shown = 0;
  }
}
