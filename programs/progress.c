/*
 * progress.c - what the user sees while the library works.
 *
 * On a terminal: one bar on stderr, redrawn in place at most ten times a
 * second. Elsewhere (a pipe, a log file, CI) escape codes and carriage
 * returns only make a mess, so it prints one plain line when a phase or an
 * iteration ends. --quiet prints nothing.
 *
 * Hierarchical training runs whole trainings inside one call: the coarse
 * centroids, then one per group (thousands of them at large k), each
 * possibly hierarchical in turn (dkm_progress.part, level, group). The
 * coarse training, the routing and the refinement passes get lines of their
 * own; the groups get the bar, rolling through them, or in plain mode a
 * line for about every tenth of them and one when they are all trained.
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
  p->last.phase = -1;
  p->line.phase = -1;
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
  case DKM_PHASE_ROUTE:
    return "routing";
  case DKM_PHASE_REFINE:
    return "refining";
  }
  return "working";
}

static cli_progress_key key_of(const dkm_progress *g) {
  cli_progress_key k = {(int)g->phase, g->run, g->iteration, (int)g->part, g->level, g->group};
  return k;
}

static int same_key(const cli_progress_key *a, const cli_progress_key *b) {
  return a->phase == b->phase && a->run == b->run && a->iteration == b->iteration &&
         a->part == b->part && a->level == b->level && a->group == b->group;
}

/* A report from inside the groups stage: a level-0 group's own training, or
 * anything one level down (a group trained hierarchically in turn). */
static int in_groups_stage(const dkm_progress *g) {
  return g->level > 0 || g->part == DKM_PART_GROUP;
}

/* Iterations and refinement passes are timed alike (the ETA of the next). */
static int is_pass(dkm_phase phase) {
  return phase == DKM_PHASE_ITERATE || phase == DKM_PHASE_REFINE;
}

/* Which training a report is about, as a prefix of its label: "" for a
 * flat run or the hierarchical run's own passes, "coarse: ", "group 17/64: ",
 * and one level down "group 17/64 > coarse: ", "group 17/64 > group 3/8: "
 * or, for that group's own passes, "group 17/64: ". */
/* A group not named yet (see follow_groups). */
#define GROUP_UNKNOWN UINT32_MAX

static void part_prefix(const cli_progress *p, const dkm_progress *g, char *buf, size_t size) {
  size_t len = 0;
  buf[0] = '\0';
  for (uint32_t l = 0; l < g->level && l < CLI_PROGRESS_LEVELS && len < size; l++) {
    char which[24] = "?", of[24] = "";
    if (p->nest[l].group != GROUP_UNKNOWN) {
      snprintf(which, sizeof which, "%u", p->nest[l].group + 1);
    }
    if (p->nest[l].n_groups > 0) {
      snprintf(of, sizeof of, "/%u", p->nest[l].n_groups);
    }
    len += (size_t)snprintf(buf + len, size - len, "group %s%s > ", which, of);
  }
  if (len >= size) {
    return;
  }
  if (g->part == DKM_PART_COARSE) {
    snprintf(buf + len, size - len, "coarse: ");
  } else if (g->part == DKM_PART_GROUP) {
    snprintf(buf + len, size - len, "group %u/%u: ", g->group + 1, g->n_groups);
  } else if (len >= 3) {
    /* The nested run's own passes: "group 17/64: routing". */
    buf[len - 3] = ':';
    buf[len - 2] = ' ';
    buf[len - 1] = '\0';
  }
}

/* How far the groups stage is, 0 to 1: the current group's own progress
 * (frac), folded up through the levels above it. */
static double groups_fraction(const cli_progress *p, const dkm_progress *g, double frac) {
  double f = g->part == DKM_PART_GROUP && g->n_groups > 0
                 ? ((double)g->group + frac) / (double)g->n_groups
                 : 0; /* a nested group's coarse training or routing: its start */
  for (uint32_t l = g->level; l-- > 0;) {
    if (l < CLI_PROGRESS_LEVELS && p->nest[l].n_groups > 0) {
      /* A level-0 group not named yet comes after those done. */
      uint32_t j = p->nest[l].group != GROUP_UNKNOWN ? p->nest[l].group
                   : l == 0                          ? p->groups_done
                                                     : 0;
      f = ((double)j + f) / (double)p->nest[l].n_groups;
    }
  }
  return f;
}

static void draw_bar(cli_progress *p, const dkm_progress *g, double now) {
  double frac = g->total > 0 ? (double)g->done / (double)g->total : 1.0;
  if (frac > 1) {
    frac = 1;
  }
  double elapsed = now - p->phase_start;
  int grouped = in_groups_stage(g);
  char prefix[96];
  part_prefix(p, g, prefix, sizeof prefix);
  double shown = frac; /* what the bar fills */
  char what[160], rate[32], eta[32], extra[64] = "";
  double remaining;
  if (is_pass(g->phase)) {
    const char *name = g->phase == DKM_PHASE_REFINE ? "refine pass" : "iteration";
    uint32_t runs = g->phase == DKM_PHASE_REFINE ? 1 : p->n_redo;
    if (runs > 1) {
      snprintf(what, sizeof what, "%srun %u/%u %s %u/%u", prefix, g->run + 1, runs, name,
               g->iteration + 1, g->max_iter);
    } else {
      snprintf(what, sizeof what, "%s%s %u/%u", prefix, name, g->iteration + 1, g->max_iter);
    }
    /* The time of one iteration: the mean of the finished ones, or the
     * current one's projection before any finished. Early convergence can
     * only make the real ETA shorter. */
    double per_iter =
        p->iter_done > 0 ? p->iter_sum / p->iter_done : (frac > 0 ? elapsed / frac : NAN);
    double iters_left = (double)(g->max_iter - g->iteration - 1) +
                        (double)(runs - g->run - 1) * g->max_iter + (1 - frac);
    remaining = per_iter * iters_left;
    if (isfinite(g->objective) && !grouped) {
      snprintf(extra, sizeof extra, "  objective %.6g", g->objective);
    }
  } else {
    snprintf(what, sizeof what, "%s%s", prefix, phase_label(g->phase));
    remaining = frac > 0 ? elapsed * (1 - frac) / frac : NAN;
  }
  if (grouped) {
    /* The bar and its ETA are those of the whole groups stage, from how
     * many groups are done: a single group's ETA says little when there
     * are thousands. Within a group, its iterations count; its sampling
     * and initialisation are its start, and the refinement of a group
     * trained hierarchically in turn comes after all of its own groups. */
    double inner = g->phase == DKM_PHASE_REFINE ? 1
                   : g->phase == DKM_PHASE_ITERATE && g->max_iter > 0
                       ? ((double)g->iteration + frac) / (double)g->max_iter
                       : 0;
    shown = groups_fraction(p, g, inner);
    double stage = now - p->groups_start;
    remaining = shown > 0 ? stage * (1 - shown) / shown : NAN;
  }
  if (shown > 1) {
    shown = 1;
  }
  char bar[BAR_WIDTH + 1];
  int filled = (int)(shown * BAR_WIDTH);
  for (int i = 0; i < BAR_WIDTH; i++) {
    bar[i] = i < filled ? '#' : '-';
  }
  bar[BAR_WIDTH] = '\0';
  if (g->phase == DKM_PHASE_INIT) {
    snprintf(rate, sizeof rate, "step %llu/%llu", (unsigned long long)g->done,
             (unsigned long long)g->total);
  } else {
    char r[16];
    format_rate(elapsed > 0 ? (double)g->done / elapsed : NAN, r, sizeof r);
    snprintf(rate, sizeof rate, "%s rows/s", r);
  }
  format_duration(remaining, eta, sizeof eta);
  char line[320];
  int len = snprintf(line, sizeof line, "%s [%s] %3d%%%s  %s  ETA %s", what, bar,
                     (int)(shown * 100), extra, rate, eta);
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
  cli_progress_key k = key_of(g);
  if (same_key(&p->line, &k)) {
    return;
  }
  p->line = k;
  if (in_groups_stage(g)) {
    return; /* summed up per group (group_ended) */
  }
  double seconds = now - p->phase_start;
  if (g->part == DKM_PART_COARSE) {
    fputs("coarse: ", stderr);
  }
  switch (g->phase) {
  case DKM_PHASE_SAMPLE:
    /* done counts the rows scanned; the sample keeps fewer of them unless
     * it takes every row. */
    if (p->sample_rows > 0 && g->part == DKM_PART_WHOLE) {
      fprintf(stderr, "sampled %llu of %llu rows in %.2f s\n", (unsigned long long)p->sample_rows,
              (unsigned long long)g->done, seconds);
    } else if (g->part != DKM_PART_WHOLE) {
      /* The coarse training's own sample, drawn from the run's. */
      fprintf(stderr, "sampled from %llu rows in %.2f s\n", (unsigned long long)g->done, seconds);
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
  case DKM_PHASE_ROUTE:
    fprintf(stderr, "routed %llu rows to their coarse groups in %.2f s\n",
            (unsigned long long)g->done, seconds);
    break;
  case DKM_PHASE_REFINE:
    if (isfinite(g->objective)) {
      fprintf(stderr, "refine pass %u/%u: objective %.9g (%.2f s)\n", g->iteration + 1, g->max_iter,
              g->objective, seconds);
    } else {
      fprintf(stderr, "refine pass %u/%u (%.2f s)\n", g->iteration + 1, g->max_iter, seconds);
    }
    break;
  }
}

/* The current level-0 group is done: in plain mode, a line for the first,
 * the last, and one about every tenth of the groups, so that 4096 groups
 * print a dozen lines, not 4096 (nor 40,960 iteration lines). */
static void group_ended(cli_progress *p, double now) {
  if (!p->group_known) {
    return;
  }
  p->group_known = 0;
  p->groups_done++;
  uint64_t j = p->group, n = p->n_groups;
  int show = n <= 10 || j == 0 || j + 1 == n || (j + 1) * 10 / n != j * 10 / n;
  if (p->mode != CLI_PROGRESS_PLAIN || !show) {
    return;
  }
  double seconds = now - p->group_start;
  if (p->group_iters > 0) {
    fprintf(stderr, "group %u/%u: %u iteration%s, objective %.9g (%.2f s)\n", p->group + 1,
            p->n_groups, p->group_iters, p->group_iters == 1 ? "" : "s", p->group_objective,
            seconds);
  } else {
    fprintf(stderr, "group %u/%u: trained in %.2f s\n", p->group + 1, p->n_groups, seconds);
  }
}

static void groups_ended(cli_progress *p, double now) {
  if (!p->in_groups) {
    return;
  }
  group_ended(p, now);
  p->in_groups = 0;
  p->group_pending = 0;
  memset(p->nest, 0, sizeof p->nest);
  if (p->mode == CLI_PROGRESS_PLAIN) {
    /* Groups seen only through their nested reports are not counted one by
     * one; the count of the level is the number. */
    uint32_t n = p->n_groups > p->groups_done ? p->n_groups : p->groups_done;
    fprintf(stderr, "trained %u group%s in %.2f s\n", n, n == 1 ? "" : "s", now - p->groups_start);
  }
}

/* Follows the groups of a hierarchical run: which group each level is in,
 * and where the level-0 groups start and end. start is when the work this
 * report is about started; prev the report before. */
static void follow_groups(cli_progress *p, const dkm_progress *g, double start,
                          const cli_progress_key *prev) {
  if (!in_groups_stage(g)) {
    /* The groups ended when this report's work started. */
    groups_ended(p, start);
    return;
  }
  if (g->level == 1 && g->part == DKM_PART_COARSE &&
      (prev->level == 0 || (prev->level == 1 && prev->part == DKM_PART_GROUP))) {
    /* A group trained hierarchically in turn starts with its coarse
     * training, one level down, and no report names the group before its
     * routing: the group before (flat, or hierarchical and then last seen
     * in its own groups or refinement) has ended, and this one is "?"
     * until then. */
    group_ended(p, start);
    p->nest[0].group = GROUP_UNKNOWN;
    for (uint32_t l = 1; l < CLI_PROGRESS_LEVELS; l++) {
      p->nest[l].n_groups = 0;
    }
    p->group_start = start;
    p->group_pending = 1;
  }
  if (g->part == DKM_PART_GROUP && g->level < CLI_PROGRESS_LEVELS &&
      (p->nest[g->level].group != g->group || p->nest[g->level].n_groups != g->n_groups)) {
    p->nest[g->level].group = g->group;
    p->nest[g->level].n_groups = g->n_groups;
    for (uint32_t l = g->level + 1; l < CLI_PROGRESS_LEVELS; l++) {
      p->nest[l].n_groups = 0;
    }
  }
  if (!p->in_groups) {
    p->in_groups = 1;
    p->groups_start = start;
    p->groups_done = 0;
  }
  if (p->nest[0].n_groups > 0 && p->nest[0].group != GROUP_UNKNOWN &&
      (!p->group_known || p->group != p->nest[0].group || p->n_groups != p->nest[0].n_groups)) {
    group_ended(p, start);
    p->group_known = 1;
    p->group = p->nest[0].group;
    p->n_groups = p->nest[0].n_groups;
    /* A group named late started with its coarse training. */
    p->group_start = p->group_pending ? p->group_start : start;
    p->group_pending = 0;
    p->group_iters = 0;
    p->group_objective = NAN;
  }
  if (g->level == 0 && g->phase == DKM_PHASE_ITERATE && g->done >= g->total) {
    p->group_iters = g->iteration + 1;
    p->group_objective = g->objective;
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
  cli_progress_key k = key_of(g);
  cli_progress_key prev = p->last;
  /* The library may report a phase or an iteration only when it ends; it
   * started when the previous one ended. */
  double start = p->last_finished ? p->last_call : now;
  if (!same_key(&p->last, &k)) {
    if (p->last.part != k.part || p->last.level != k.level || p->last.group != k.group) {
      /* Another training: its iterations take their own time. */
      p->iter_sum = 0;
      p->iter_done = 0;
    }
    p->last = k;
    p->phase_start = start;
  }
  follow_groups(p, g, p->phase_start, &prev);
  int finished = g->done >= g->total;
  p->last_call = now;
  p->last_finished = finished;
  if (finished && is_pass(g->phase) && !same_key(&p->line, &k)) {
    p->iter_sum += now - p->phase_start;
    p->iter_done++;
  }
  if (p->mode == CLI_PROGRESS_TTY) {
    /* At most ten redraws a second, however short the iterations (a run of
     * thousands of tiny ones must not flood the terminal), except that the
     * first report of each phase of each part (coarse, groups, and
     * anything nested one level down or more) is shown at once. */
    unsigned part = g->level > 0 ? 3 : (unsigned)g->part;
    unsigned n = part * 8 + (unsigned)g->phase;
    unsigned bit = (unsigned)g->phase < 8 && n < 32 ? 1u << n : 0;
    if ((bit != 0 && (p->phases_drawn & bit) == 0) || now - p->last_draw >= REDRAW_SECONDS) {
      p->phases_drawn |= bit;
      draw_bar(p, g, now);
    }
    if (finished) {
      /* Remember it, so that the iteration time is counted once. */
      p->line = k;
    }
  } else if (finished) {
    plain_line(p, g, now);
  }
  return 0;
}

void cli_progress_trained(cli_progress *p) {
  if (p->mode != CLI_PROGRESS_QUIET) {
    groups_ended(p, p->last_call);
  }
}

void cli_progress_finish(cli_progress *p) {
  if (p->shown) {
    cli_progress_erase();
    fflush(stderr);
    p->shown = 0;
  }
}
