/*
 * system.c - clocks and the machine's size: the memory and the cores this
 * process may use.
 *
 * In a container the machine's RAM and core count overstate both: the
 * kernel enforces a cgroup's memory limit by killing the process, and a CPU
 * quota or affinity mask leaves cores idle that threads would wait for. So
 * the defaults (the memory budget of DKM_STORAGE_AUTO, the thread count)
 * take the smallest of the machine's figures and every cgroup limit on the
 * way from the process's cgroup up to the root: cgroup v2 memory.max,
 * memory.high and cpu.max, cgroup v1 memory.limit_in_bytes and
 * cpu.cfs_quota_us / cpu.cfs_period_us (a host in the hybrid layout has
 * both). The process's cgroups come from /proc/self/cgroup, where their
 * hierarchies are mounted from /proc/self/mountinfo (/sys/fs/cgroup when it
 * does not say). A file that is missing or unreadable or does not parse is
 * no limit: these figures only tune defaults, so they never fail.
 *
 * These are hardware limits read from /proc and /sys, like the RAM size; the
 * library still reads no environment variables.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

double dkm__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* --- reading small files under a root ------------------------------------- */

#define CG_PATH_MAX 4096

/* Opens root + path for reading; NULL when it cannot be. */
static FILE *open_under(const char *root, const char *path) {
  char full[CG_PATH_MAX];
  if ((size_t)snprintf(full, sizeof full, "%s%s", root, path) >= sizeof full)
    return NULL;
  return fopen(full, "re");
}

/* The next line of f into buf without its newline; 0 at the end. A line
 * longer than buf (no cgroup path or mount line is) is skipped whole. */
static int next_line(FILE *f, char *buf, size_t cap) {
  for (;;) {
    if (fgets(buf, (int)cap, f) == NULL)
      return 0;
    size_t len = strlen(buf);
    if (len > 0 && buf[len - 1] == '\n') {
      buf[len - 1] = '\0';
      return 1;
    }
    if (feof(f))
      return 1; /* the last line, without a newline */
    int c;
    while ((c = getc(f)) != EOF && c != '\n') {
    }
  }
}

/* The text of the small file dir/file under root into text (cap bytes with
 * its NUL); 0 when it cannot be read or does not fit, so that a longer
 * file is never taken for its first part. */
static int read_small(const char *root, const char *dir, const char *file, char *text, size_t cap) {
  char path[CG_PATH_MAX];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path)
    return 0;
  FILE *f = open_under(root, path);
  if (f == NULL)
    return 0;
  size_t len = fread(text, 1, cap - 1, f);
  fclose(f);
  text[len] = '\0';
  return len < cap - 1;
}

/* A file holding one unsigned number (and a newline): *out. "max" (cgroup v2's
 * "no limit") and anything else give 0. */
static int read_u64(const char *root, const char *dir, const char *file, uint64_t *out) {
  char text[64];
  if (!read_small(root, dir, file, text, sizeof text))
    return 0;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  int ok = end != text && text[0] >= '0' && text[0] <= '9' && errno == 0 &&
           (*end == '\0' || (*end == '\n' && end[1] == '\0'));
  if (ok)
    *out = v;
  return ok;
}

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s) {
  char *w = s;
  for (char *r = s; *r != '\0'; r++) {
    if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
        r[3] <= '7') {
      *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
      r += 3;
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
}

/* Whether comma-separated list holds word. */
static int has_word(const char *list, const char *word) {
  size_t n = strlen(word);
  for (const char *p = list; p != NULL; p = strchr(p, ',')) {
    if (*p == ',')
      p++;
    if (strncmp(p, word, n) == 0 && (p[n] == ',' || p[n] == '\0'))
      return 1;
  }
  return 0;
}

/* The path of the process's cgroup in one hierarchy, from /proc/self/cgroup
 * ("id:controllers:path" lines): the v2 one (controller NULL, line "0::path")
 * or the v1 one that holds controller. */
static int cgroup_path(const char *root, const char *controller, char *out, size_t cap) {
  FILE *f = open_under(root, "/proc/self/cgroup");
  if (f == NULL)
    return 0;
  char buf[CG_PATH_MAX];
  int found = 0;
  while (!found && next_line(f, buf, sizeof buf)) {
    char *c1 = strchr(buf, ':');
    char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
    if (c2 == NULL || c2[1] != '/')
      continue;
    *c1 = '\0';
    *c2 = '\0';
    const char *ctrls = c1 + 1;
    int match = controller == NULL ? (strcmp(buf, "0") == 0 && ctrls[0] == '\0')
                                   : has_word(ctrls, controller);
    if (match && strlen(c2 + 1) < cap) {
      strcpy(out, c2 + 1);
      found = 1;
    }
  }
  fclose(f);
  return found;
}

/* Where the hierarchy is mounted, from /proc/self/mountinfo: the mount
 * point and the cgroup the mount shows (its "root" field). v2 is fstype
 * cgroup2; v1 is fstype cgroup with the controller among the super
 * options. */
static int cgroup_mount(const char *root, const char *controller, char *point, char *mroot,
                        size_t cap) {
  FILE *f = open_under(root, "/proc/self/mountinfo");
  if (f == NULL)
    return 0;
  char buf[CG_PATH_MAX];
  int found = 0;
  while (!found && next_line(f, buf, sizeof buf)) {
    /* id parent major:minor root mount-point options [optional...] -
     * fstype source super-options */
    char *field[6] = {0};
    char *save = NULL, *tok = strtok_r(buf, " ", &save);
    int nf = 0;
    while (tok != NULL && nf < 6) {
      field[nf++] = tok;
      tok = strtok_r(NULL, " ", &save);
    }
    while (tok != NULL && strcmp(tok, "-") != 0)
      tok = strtok_r(NULL, " ", &save);
    char *fstype = tok != NULL ? strtok_r(NULL, " ", &save) : NULL;
    char *source = fstype != NULL ? strtok_r(NULL, " ", &save) : NULL;
    char *super = source != NULL ? strtok_r(NULL, " ", &save) : NULL;
    if (nf < 6 || fstype == NULL)
      continue;
    int match = controller == NULL
                    ? strcmp(fstype, "cgroup2") == 0
                    : strcmp(fstype, "cgroup") == 0 && super != NULL && has_word(super, controller);
    if (!match || strlen(field[3]) >= cap || strlen(field[4]) >= cap)
      continue;
    strcpy(mroot, field[3]);
    strcpy(point, field[4]);
    unescape(mroot);
    unescape(point);
    found = 1;
  }
  fclose(f);
  return found;
}

/* The directory of the process's cgroup in one hierarchy (relative to the
 * root prefix) and the length of its mount point's part, so that the caller
 * can walk up to the mount point. 0 when the process is in no such
 * hierarchy. */
static int cgroup_dir(const char *root, const char *controller, char *dir, size_t cap,
                      size_t *top) {
  char path[CG_PATH_MAX], point[CG_PATH_MAX], mroot[CG_PATH_MAX];
  if (!cgroup_path(root, controller, path, sizeof path))
    return 0;
  if (!cgroup_mount(root, controller, point, mroot, sizeof point)) {
    /* The usual places. */
    snprintf(point, sizeof point, "/sys/fs/cgroup%s%s", controller != NULL ? "/" : "",
             controller != NULL ? controller : "");
    strcpy(mroot, "/");
  }
  /* The mount shows the cgroup mroot (a container's own, say): the
   * process's path is below it. A path outside it (another namespace's
   * view) leaves only the mount point itself to read. */
  const char *rel = path;
  size_t rl = strlen(mroot);
  if (strcmp(mroot, "/") != 0) {
    if (strncmp(path, mroot, rl) == 0 && (path[rl] == '/' || path[rl] == '\0'))
      rel = path + rl;
    else
      rel = "";
  }
  size_t pl = strlen(point);
  while (pl > 1 && point[pl - 1] == '/')
    point[--pl] = '\0';
  if ((size_t)snprintf(dir, cap, "%s%s", point, strcmp(rel, "/") == 0 ? "" : rel) >= cap)
    return 0;
  *top = pl;
  return 1;
}

/* Calls fn on every directory from dir up to its first top bytes (the mount
 * point), dir itself first. */
static void walk_up(char *dir, size_t top, void (*fn)(void *, const char *), void *user) {
  size_t len = strlen(dir);
  for (;;) {
    fn(user, dir);
    if (len <= top)
      break;
    while (len > top && dir[len - 1] != '/')
      len--;
    if (len > top)
      len--; /* the slash */
    dir[len] = '\0';
  }
}

typedef struct cg_walk {
  const char *root;
  dkm__cgroup_limits *out;
} cg_walk;

static void lower_memory(dkm__cgroup_limits *out, uint64_t v, const char *file) {
  if (v > 0 && (out->memory == 0 || v < out->memory)) {
    out->memory = v;
    out->memory_file = file;
  }
}

static void lower_cpus(dkm__cgroup_limits *out, uint64_t quota, uint64_t period) {
  if (quota == 0 || period == 0)
    return;
  uint64_t cpus = quota / period + (quota % period != 0); /* 1.5 cores: 2 threads */
  uint32_t c = cpus > UINT32_MAX ? UINT32_MAX : (uint32_t)cpus;
  if (out->cpus == 0 || c < out->cpus)
    out->cpus = c;
}

static void v2_level(void *user, const char *dir) {
  cg_walk *w = user;
  uint64_t v;
  if (read_u64(w->root, dir, "memory.max", &v))
    lower_memory(w->out, v, "cgroup memory.max");
  if (read_u64(w->root, dir, "memory.high", &v))
    lower_memory(w->out, v, "cgroup memory.high");
  /* cpu.max: "quota period" or "max period". */
  char text[64];
  unsigned long long quota, period;
  char extra;
  if (read_small(w->root, dir, "cpu.max", text, sizeof text) && text[0] >= '0' && text[0] <= '9' &&
      sscanf(text, "%llu %llu %c", &quota, &period, &extra) == 2)
    lower_cpus(w->out, quota, period);
}

static void v1_memory_level(void *user, const char *dir) {
  cg_walk *w = user;
  uint64_t v;
  /* "No limit" is a huge number (2^63 rounded down to a page), which the
   * physical memory undercuts anyway. */
  if (read_u64(w->root, dir, "memory.limit_in_bytes", &v))
    lower_memory(w->out, v, "cgroup v1 memory.limit_in_bytes");
}

static void v1_cpu_level(void *user, const char *dir) {
  cg_walk *w = user;
  uint64_t quota, period;
  /* A quota of -1 (no limit) does not parse as unsigned: skipped. */
  if (read_u64(w->root, dir, "cpu.cfs_quota_us", &quota) &&
      read_u64(w->root, dir, "cpu.cfs_period_us", &period))
    lower_cpus(w->out, quota, period);
}

void dkm__cgroup_read(const char *root, dkm__cgroup_limits *out) {
  memset(out, 0, sizeof *out);
  cg_walk w = {root, out};
  char dir[CG_PATH_MAX];
  size_t top;
  if (cgroup_dir(root, NULL, dir, sizeof dir, &top))
    walk_up(dir, top, v2_level, &w);
  if (cgroup_dir(root, "memory", dir, sizeof dir, &top))
    walk_up(dir, top, v1_memory_level, &w);
  if (cgroup_dir(root, "cpu", dir, sizeof dir, &top))
    walk_up(dir, top, v1_cpu_level, &w);
}

/* --- the machine ------------------------------------------------------------ */

static uint32_t affinity_count(void) {
  long conf = sysconf(_SC_NPROCESSORS_CONF);
  size_t ncpu = conf < 1024 ? 1024 : (size_t)conf;
  cpu_set_t *set = CPU_ALLOC(ncpu);
  if (set == NULL)
    return 0;
  size_t size = CPU_ALLOC_SIZE(ncpu);
  CPU_ZERO_S(size, set);
  int n = sched_getaffinity(0, size, set) == 0 ? CPU_COUNT_S(size, set) : 0;
  CPU_FREE(set);
  return n > 0 ? (uint32_t)n : 0;
}

uint32_t dkm__cpu_count(void) {
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  uint32_t n = online < 1 ? 1u : (uint32_t)online;
  uint32_t aff = affinity_count();
  if (aff != 0 && aff < n)
    n = aff;
  dkm__cgroup_limits cg;
  dkm__cgroup_read("", &cg);
  if (cg.cpus != 0 && cg.cpus < n)
    n = cg.cpus;
  return n;
}

uint64_t dkm__physical_memory(void) {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0)
    return 0;
  return (uint64_t)pages * (uint64_t)page_size;
}

uint64_t dkm__usable_memory(const char **from) {
  uint64_t ram = dkm__physical_memory();
  dkm__cgroup_limits cg;
  dkm__cgroup_read("", &cg);
  if (cg.memory != 0 && (ram == 0 || cg.memory < ram)) {
    *from = cg.memory_file;
    return cg.memory;
  }
  *from = ram != 0 ? "physical RAM" : "unknown";
  return ram;
}
