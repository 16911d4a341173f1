/*
 * fuzz_cgroup.c - libFuzzer target for the cgroup reader (src/common/
 * system.c), which parses /proc/self/cgroup, /proc/self/mountinfo and the
 * cgroup limit files: text the library reads on every machine it runs on.
 *
 * The input is up to five parts separated by 0x01 bytes: the contents of
 * proc/self/cgroup, proc/self/mountinfo, memory.max, memory.high and cpu.max.
 * They are written under a fake root (a folder per process under /tmp), the
 * limit files in the usual v2 mount point, in its subfolder "a" and in the v1
 * memory and cpu mount points, so that paths named by the first two parts
 * often lead somewhere. Besides the sanitizers, the reader's contract is
 * checked with abort(): it never fails, and a memory limit comes with the
 * name of the file that set it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put(const char *root, const char *path, const uint8_t *data, size_t size) {
  char full[512];
  snprintf(full, sizeof full, "%s%s", root, path);
  FILE *f = fopen(full, "wb");
  if (f == NULL)
    abort();
  if (size > 0 && fwrite(data, 1, size, f) != size)
    abort();
  if (fclose(f) != 0)
    abort();
}

static const char *const dirs_[] = {"",
                                    "/proc",
                                    "/proc/self",
                                    "/sys",
                                    "/sys/fs",
                                    "/sys/fs/cgroup",
                                    "/sys/fs/cgroup/a",
                                    "/sys/fs/cgroup/memory",
                                    "/sys/fs/cgroup/cpu"};
#define N_DIRS (sizeof dirs_ / sizeof dirs_[0])

static const char *const files_[] = {"/proc/self/cgroup",
                                     "/proc/self/mountinfo",
                                     "/sys/fs/cgroup/memory.max",
                                     "/sys/fs/cgroup/memory.high",
                                     "/sys/fs/cgroup/cpu.max",
                                     "/sys/fs/cgroup/a/memory.max",
                                     "/sys/fs/cgroup/a/memory.high",
                                     "/sys/fs/cgroup/a/cpu.max",
                                     "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                     "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                                     "/sys/fs/cgroup/cpu/cpu.cfs_period_us"};
/* Which part of the input each file holds. */
static const int part_of_[] = {0, 1, 2, 3, 4, 2, 3, 4, 2, 3, 4};

static void make_dirs(const char *root) {
  char full[512];
  for (size_t i = 0; i < N_DIRS; i++) {
    snprintf(full, sizeof full, "%s%s", root, dirs_[i]);
    if (mkdir(full, 0700) != 0 && access(full, F_OK) != 0)
      abort();
  }
}

/* Nothing stays in /tmp: the tree goes after every input. */
static void remove_tree(const char *root) {
  char full[512];
  for (size_t i = 0; i < sizeof files_ / sizeof files_[0]; i++) {
    snprintf(full, sizeof full, "%s%s", root, files_[i]);
    unlink(full);
  }
  for (size_t i = N_DIRS; i-- > 0;) {
    snprintf(full, sizeof full, "%s%s", root, dirs_[i]);
    rmdir(full);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char root[128];
  snprintf(root, sizeof root, "/tmp/dkm-fuzz-cgroup.%ld", (long)getpid());
  make_dirs(root);
  /* The five parts; missing ones are empty files. */
  const uint8_t *part[5] = {data, data, data, data, data};
  size_t len[5] = {0};
  size_t p = 0, start = 0;
  for (size_t i = 0; i <= size && p < 5; i++) {
    if (i == size || data[i] == 0x01) {
      part[p] = data + start;
      len[p] = i - start;
      p++;
      start = i + 1;
    }
  }
  for (size_t i = 0; i < sizeof files_ / sizeof files_[0]; i++)
    put(root, files_[i], part[part_of_[i]], len[part_of_[i]]);

  dkm__cgroup_limits limits;
  memset(&limits, 0xa5, sizeof limits);
  dkm__cgroup_read(root, &limits);
  if (limits.memory != 0 && limits.memory_file == NULL)
    abort();
  if (limits.memory_file != NULL && strlen(limits.memory_file) == 0)
    abort();
  remove_tree(root);
  return 0;
}
