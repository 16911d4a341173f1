/*
 * outfile.c - atomic output files, and the signal handlers that remove their
 * temporary files.
 *
 * The handlers may run at any moment, on any thread (the library's workers
 * included), so what they read is a fixed table of path buffers with one
 * sig_atomic_t flag each: a slot's path is written while the signals are
 * blocked and before its flag is set, and its flag is cleared (again with
 * the signals blocked) before the path is reused. The handler then only calls
 * unlink() and _exit(), both async-signal-safe.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* train writes at most four outputs: centroids, labels, stats, distances. */
#define MAX_PENDING 8

static char pending_path[MAX_PENDING][PATH_MAX];
static volatile sig_atomic_t pending_used[MAX_PENDING];
static volatile sig_atomic_t deferring;
static volatile sig_atomic_t received;

static void unlink_pending(void) {
  for (int i = 0; i < MAX_PENDING; i++) {
    if (pending_used[i]) {
      unlink(pending_path[i]);
    }
  }
}

static void on_signal(int sig) {
  if (deferring && !received) {
    /* The progress callback sees this and cancels the library call, which
     * then returns and the command cleans up and exits 128 + sig. */
    received = sig;
    return;
  }
  unlink_pending();
  /* Say why, as the cancelled path does: a signal that lands outside a
   * library call (while centroids are read, say) would otherwise end the
   * run without a word. write() is async-signal-safe; stdio is not. */
  static const char erase[] = "\r\033[K";
  static const char msg[] = CLI_NAME ": interrupted\n";
  if (cli_progress_bar_shown()) {
    (void)!write(STDERR_FILENO, erase, sizeof erase - 1);
  }
  (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
  _exit(128 + sig);
}

/* SIGPIPE too: a reader that goes away (diskmeans ... 2>&1 | head) would
 * otherwise kill the tool by the default action, leaving its temporary files
 * behind. Handled, it cancels the work like Ctrl-C and exits 141. */
static const int handled_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
#define N_HANDLED (int)(sizeof handled_signals / sizeof handled_signals[0])

void cli_signals_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int i = 0; i < N_HANDLED; i++) {
    sigaddset(&sa.sa_mask, handled_signals[i]);
  }
  for (int i = 0; i < N_HANDLED; i++) {
    sigaction(handled_signals[i], &sa, NULL);
  }
}

void cli_signals_defer(int on) {
  deferring = on;
}

int cli_signal_received(void) {
  return received;
}

static void block_signals(sigset_t *old) {
  sigset_t set;
  sigemptyset(&set);
  for (int i = 0; i < N_HANDLED; i++) {
    sigaddset(&set, handled_signals[i]);
  }
  pthread_sigmask(SIG_BLOCK, &set, old);
}

static void restore_signals(const sigset_t *old) {
  pthread_sigmask(SIG_SETMASK, old, NULL);
}

static sigset_t held_mask;

void cli_signals_hold(int on) {
  if (on) {
    block_signals(&held_mask);
  } else {
    restore_signals(&held_mask);
  }
}

/* The folder part of path, malloc'ed ("." when there is none). */
static char *folder_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL) {
    return strdup(".");
  }
  if (slash == path) {
    return strdup("/");
  }
  return strndup(path, (size_t)(slash - path));
}

static mode_t file_mode(void) {
  /* mkstemp makes 0600 files; outputs get the usual 0666 minus the umask,
   * like any file the user creates. umask() can only be read by setting it. */
  mode_t mask = umask(022);
  umask(mask);
  return 0666 & ~mask;
}

int cli_refuse_folder(const char *path) {
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    cli_error("%s: is a folder, not an output file", path);
    return -1;
  }
  return 0;
}

/* What a path names, for cli_check_files(): an existing file by its device
 * and inode, a file yet to be created by its folder's and its own name. */
typedef struct file_id {
  int exists; /* 1: dev/ino of the file; 0: dev/ino of its folder and base */
  int known;  /* 0 when not even the folder could be looked at */
  dev_t dev;
  ino_t ino;
  const char *base;
} file_id;

static file_id identify(const char *path, int input) {
  file_id id = {0, 0, 0, 0, NULL};
  struct stat st;
  /* The input "-" is the standard input, which may be a file (< x.npy). */
  if (input && strcmp(path, "-") == 0 ? fstat(STDIN_FILENO, &st) == 0 : stat(path, &st) == 0) {
    id.exists = id.known = 1;
    id.dev = st.st_dev;
    id.ino = st.st_ino;
    return id;
  }
  const char *slash = strrchr(path, '/');
  id.base = slash != NULL ? slash + 1 : path;
  char *dir = folder_of(path);
  if (dir != NULL && stat(dir, &st) == 0) {
    id.known = 1;
    id.dev = st.st_dev;
    id.ino = st.st_ino;
  }
  free(dir);
  return id;
}

static int same_file(const file_id *a, const char *a_path, const file_id *b, const char *b_path) {
  if (a->exists != b->exists) {
    return 0;
  }
  if (!a->known || !b->known) {
    /* Neither stat() told anything: only the very same name is sure. */
    return !a->known && !b->known && strcmp(a_path, b_path) == 0;
  }
  if (a->exists) {
    return a->dev == b->dev && a->ino == b->ino;
  }
  return a->dev == b->dev && a->ino == b->ino && strcmp(a->base, b->base) == 0;
}

int cli_check_files(const cli_file_arg *inputs, size_t n_inputs, const cli_file_arg *outputs,
                    size_t n_outputs) {
  for (size_t i = 0; i < n_outputs; i++) {
    if (outputs[i].path == NULL) {
      continue;
    }
    file_id out = identify(outputs[i].path, 0);
    /* An output that does not exist yet cannot be an input; one that does
     * would be replaced by the rename at the end, input or not. */
    for (size_t j = 0; out.exists && j < n_inputs; j++) {
      if (inputs[j].path == NULL) {
        continue;
      }
      file_id in = identify(inputs[j].path, 1);
      if (same_file(&out, outputs[i].path, &in, inputs[j].path)) {
        cli_error("%s %s and %s %s are the same file: an output must not replace an input",
                  outputs[i].option, outputs[i].path, inputs[j].option, inputs[j].path);
        return CLI_EXIT_ERROR;
      }
    }
    for (size_t j = 0; j < i; j++) {
      if (outputs[j].path == NULL) {
        continue;
      }
      file_id other = identify(outputs[j].path, 0);
      if (same_file(&other, outputs[j].path, &out, outputs[i].path)) {
        cli_error("%s %s and %s %s are the same file: each output needs its own", outputs[j].option,
                  outputs[j].path, outputs[i].option, outputs[i].path);
        return CLI_EXIT_ERROR;
      }
    }
  }
  return CLI_EXIT_OK;
}

int cli_outfile_open(cli_outfile *f, const char *target) {
  f->target = target;
  f->tmp_path = NULL;
  f->fd = -1;
  f->slot = -1;

  if (cli_refuse_folder(target) != 0) {
    return -1;
  }
  static const char suffix[] = ".tmp.XXXXXX";
  size_t len = strlen(target);
  if (len == 0 || len + sizeof suffix > PATH_MAX) {
    cli_error("'%s': output path is empty or too long", target);
    return -1;
  }
  char *tmp = malloc(len + sizeof suffix);
  if (tmp == NULL) {
    cli_error("%s: out of memory", target);
    return -1;
  }
  memcpy(tmp, target, len);
  memcpy(tmp + len, suffix, sizeof suffix);

  sigset_t old;
  block_signals(&old);
  int slot = -1;
  for (int i = 0; i < MAX_PENDING; i++) {
    if (!pending_used[i]) {
      slot = i;
      break;
    }
  }
  if (slot < 0) {
    restore_signals(&old);
    free(tmp);
    cli_error("%s: too many output files", target);
    return -1;
  }
  int fd = mkostemp(tmp, O_CLOEXEC);
  int err = errno;
  if (fd >= 0) {
    memcpy(pending_path[slot], tmp, len + sizeof suffix);
    pending_used[slot] = 1;
  }
  restore_signals(&old);

  if (fd < 0) {
    char *dir = folder_of(target);
    cli_error("%s: cannot create the output in folder '%s': %s", target, dir ? dir : "?",
              strerror(err));
    free(dir);
    free(tmp);
    return -1;
  }
  /* A failure is not worth failing the run for: the file is still the
   * user's, only with tighter permissions. */
  (void)fchmod(fd, file_mode());
  f->tmp_path = tmp;
  f->fd = fd;
  f->slot = slot;
  return 0;
}

int cli_outfile_write(cli_outfile *f, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(f->fd, p, len);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      cli_error("%s: cannot write: %s", f->target, strerror(errno));
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static void release_slot(cli_outfile *f) {
  if (f->slot >= 0) {
    pending_used[f->slot] = 0;
    f->slot = -1;
  }
  free(f->tmp_path);
  f->tmp_path = NULL;
}

void cli_outfile_abort(cli_outfile *f) {
  if (f->tmp_path == NULL) {
    return;
  }
  sigset_t old;
  block_signals(&old);
  if (f->fd >= 0) {
    close(f->fd);
    f->fd = -1;
  }
  unlink(f->tmp_path);
  release_slot(f);
  restore_signals(&old);
}

int cli_outfile_commit(cli_outfile *f) {
  if (fsync(f->fd) != 0) {
    cli_error("%s: cannot sync: %s", f->target, strerror(errno));
    cli_outfile_abort(f);
    return -1;
  }
  if (close(f->fd) != 0) {
    f->fd = -1;
    cli_error("%s: cannot write: %s", f->target, strerror(errno));
    cli_outfile_abort(f);
    return -1;
  }
  f->fd = -1;
  sigset_t old;
  block_signals(&old);
  int rc = rename(f->tmp_path, f->target);
  int err = errno;
  if (rc == 0) {
    release_slot(f);
  }
  restore_signals(&old);
  if (rc != 0) {
    cli_error("%s: cannot rename the finished output into place: %s", f->target, strerror(err));
    cli_outfile_abort(f);
    return -1;
  }
  /* The rename is durable once the folder is synced. Some file systems
   * refuse fsync on a folder; the data itself is already safe then. */
  char *dir = folder_of(f->target);
  if (dir != NULL) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
    free(dir);
  }
  return 0;
}
