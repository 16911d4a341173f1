/*
 * test_cgroup_limits.c - the default memory budget and thread count follow
 * the limits of the process's cgroups: memory.max, memory.high and cpu.max
 * (cgroup v2), memory.limit_in_bytes and cpu.cfs_quota_us (v1), the lowest
 * on the way up to the root, found through /proc/self/cgroup and
 * /proc/self/mountinfo. Each case is a fake tree in a scratch directory,
 * passed as the root the reader prefixes to every path; garbled or missing
 * files must mean "no limit", never a failure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "test_support.h"

static char *root;

static int setup(void **state) {
  (void)state;
  return 0;
}

/* Writes text to root + path, making the directories on the way. */
static void put(const char *path, const char *text) {
  char full[4096];
  snprintf(full, sizeof full, "%s%s", root, path);
  for (char *p = full + strlen(root) + 1; *p != '\0'; p++) {
    if (*p == '/') {
      *p = '\0';
      assert_true(mkdir(full, 0755) == 0 || errno == EEXIST);
      *p = '/';
    }
  }
  FILE *f = fopen(full, "w");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
}

static void fresh(const char *tag) {
  if (root != NULL) {
    dkm_test_rmtree(root);
    free(root);
  }
  root = dkm_test_mkdtemp(tag);
  assert_non_null(root);
}

static int teardown(void **state) {
  (void)state;
  if (root != NULL) {
    dkm_test_rmtree(root);
    free(root);
    root = NULL;
  }
  return 0;
}

static dkm__cgroup_limits read_limits(void) {
  dkm__cgroup_limits cg;
  memset(&cg, 0x5a, sizeof cg);
  dkm__cgroup_read(root, &cg);
  return cg;
}

#define V2_MOUNT "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
#define OTHER_MOUNTS                                                                               \
  "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"                                                 \
  "23 22 0:21 / /sys rw,nosuid - sysfs sysfs rw\n"

static void cgroup_v2_memory_max_and_cpu_max(void **state) {
  (void)state;
  fresh("cg-v2");
  put("/proc/self/cgroup", "0::/system.slice/job.service\n");
  put("/proc/self/mountinfo", OTHER_MOUNTS V2_MOUNT);
  put("/sys/fs/cgroup/system.slice/job.service/memory.max", "1073741824\n");
  put("/sys/fs/cgroup/system.slice/job.service/memory.high", "max\n");
  put("/sys/fs/cgroup/system.slice/job.service/cpu.max", "150000 100000\n");
  dkm__cgroup_limits cg = read_limits();
  assert_int_equal(cg.memory, 1073741824);
  assert_string_equal(cg.memory_file, "cgroup memory.max");
  assert_int_equal(cg.cpus, 2); /* 1.5 cores, rounded up */

  /* memory.high lower than memory.max: the kernel throttles there. */
  put("/sys/fs/cgroup/system.slice/job.service/memory.high", "536870912\n");
  cg = read_limits();
  assert_int_equal(cg.memory, 536870912);
  assert_string_equal(cg.memory_file, "cgroup memory.high");

  /* A quota below one core still leaves one thread. */
  put("/sys/fs/cgroup/system.slice/job.service/cpu.max", "20000 100000\n");
  assert_int_equal(read_limits().cpus, 1);
}

static void cgroup_v2_max_means_no_limit(void **state) {
  (void)state;
  fresh("cg-v2-max");
  put("/proc/self/cgroup", "0::/user.slice\n");
  put("/proc/self/mountinfo", V2_MOUNT);
  put("/sys/fs/cgroup/user.slice/memory.max", "max\n");
  put("/sys/fs/cgroup/user.slice/memory.high", "max\n");
  put("/sys/fs/cgroup/user.slice/cpu.max", "max 100000\n");
  dkm__cgroup_limits cg = read_limits();
  assert_int_equal(cg.memory, 0);
  assert_null(cg.memory_file);
  assert_int_equal(cg.cpus, 0);
}

/* A parent's limit binds its children: the lowest on the way up wins. */
static void cgroup_v2_nested_parent_limit_applies(void **state) {
  (void)state;
  fresh("cg-v2-nested");
  put("/proc/self/cgroup", "0::/a/b/c\n");
  put("/proc/self/mountinfo", V2_MOUNT);
  put("/sys/fs/cgroup/a/b/c/memory.max", "max\n");
  put("/sys/fs/cgroup/a/b/c/cpu.max", "max 100000\n");
  put("/sys/fs/cgroup/a/b/memory.max", "3221225472\n");
  put("/sys/fs/cgroup/a/memory.max", "4294967296\n");
  put("/sys/fs/cgroup/a/cpu.max", "300000 100000\n");
  put("/sys/fs/cgroup/a/b/cpu.max", "400000 100000\n");
  dkm__cgroup_limits cg = read_limits();
  assert_int_equal(cg.memory, 3221225472);
  assert_int_equal(cg.cpus, 3);

  /* No mountinfo: the usual mount point. */
  fresh("cg-v2-nomountinfo");
  put("/proc/self/cgroup", "0::/a\n");
  put("/sys/fs/cgroup/a/memory.max", "2147483648\n");
  assert_int_equal(read_limits().memory, 2147483648);

  /* A busy host's mountinfo: thousands of mounts (over 256 KiB) before the
   * cgroup2 one. */
  fresh("cg-v2-many-mounts");
  put("/proc/self/cgroup", "0::/a\n");
  put("/my/a/memory.max", "65536\n");
  size_t cap = 6000 * 80 + 200, len = 0;
  char *many = malloc(cap);
  assert_non_null(many);
  for (int i = 0; i < 6000; i++)
    len += (size_t)snprintf(many + len, cap - len,
                            "%d 22 0:%d / /run/containers/mount%05d rw - overlay overlay rw\n",
                            100 + i, 100 + i, i);
  snprintf(many + len, cap - len, "29 23 0:26 / /my rw - cgroup2 cgroup2 rw\n");
  put("/proc/self/mountinfo", many);
  free(many);
  assert_int_equal(read_limits().memory, 65536);

  /* A mount point with a space (escaped as \040 in mountinfo). */
  fresh("cg-v2-escaped");
  put("/proc/self/cgroup", "0::/a\n");
  put("/proc/self/mountinfo", "29 23 0:26 / /my\\040cgroup rw - cgroup2 cgroup2 rw\n");
  put("/my cgroup/a/memory.max", "1048576\n");
  assert_int_equal(read_limits().memory, 1048576);
}

/* A container with its own cgroup namespace, or a bind mount of its cgroup:
 * the mount shows the cgroup itself, so the limit sits at the mount point. */
static void cgroup_mount_of_the_container_itself(void **state) {
  (void)state;
  fresh("cg-container");
  put("/proc/self/cgroup", "0::/docker/abc\n");
  put("/proc/self/mountinfo",
      "40 30 0:26 /docker/abc /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n");
  put("/sys/fs/cgroup/memory.max", "268435456\n");
  put("/sys/fs/cgroup/cpu.max", "100000 100000\n");
  dkm__cgroup_limits cg = read_limits();
  assert_int_equal(cg.memory, 268435456);
  assert_int_equal(cg.cpus, 1);

  /* The process's path outside the mounted cgroup (another namespace's
   * view): only the mount point is read. */
  put("/proc/self/cgroup", "0::/elsewhere\n");
  assert_int_equal(read_limits().memory, 268435456);
}

static void cgroup_v1_memory_and_cfs_quota(void **state) {
  (void)state;
  fresh("cg-v1");
  put("/proc/self/cgroup", "12:pids:/docker/x\n"
                           "4:memory:/docker/x\n"
                           "3:cpu,cpuacct:/docker/x\n"
                           "1:name=systemd:/docker/x\n"
                           "0::/\n");
  put("/proc/self/mountinfo",
      OTHER_MOUNTS "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
                   "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                   "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
                   "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
  put("/sys/fs/cgroup/memory/docker/x/memory.limit_in_bytes", "536870912\n");
  put("/sys/fs/cgroup/memory/docker/memory.limit_in_bytes", "9223372036854771712\n");
  put("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  put("/sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_quota_us", "250000\n");
  put("/sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_period_us", "100000\n");
  put("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  put("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  dkm__cgroup_limits cg = read_limits();
  assert_int_equal(cg.memory, 536870912);
  assert_string_equal(cg.memory_file, "cgroup v1 memory.limit_in_bytes");
  assert_int_equal(cg.cpus, 3);

  /* No limit (v1's huge number, quota -1) anywhere. */
  put("/sys/fs/cgroup/memory/docker/x/memory.limit_in_bytes", "9223372036854771712\n");
  put("/sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_quota_us", "-1\n");
  cg = read_limits();
  assert_int_equal(cg.memory, UINT64_C(9223372036854771712)); /* RAM undercuts it */
  assert_int_equal(cg.cpus, 0);
}

static void garbled_or_missing_files_mean_no_limit(void **state) {
  (void)state;
  /* Nothing at all. */
  fresh("cg-none");
  dkm__cgroup_limits cg = read_limits();
  assert_int_equal(cg.memory, 0);
  assert_int_equal(cg.cpus, 0);

  fresh("cg-garbage");
  const char *bad_values[] = {"",           "\n",
                              "lots\n",     "-5\n",
                              "12abc\n",    "1 2\n",
                              " 100\n",     "99999999999999999999999\n",
                              "0x100\n",    "max max\n",
                              "100000\n",   "abc 100000\n",
                              "100000 0\n", "50000 100000 7\n"};
  put("/proc/self/mountinfo", V2_MOUNT);
  put("/proc/self/cgroup", "0::/g\n");
  for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
    const char *v = bad_values[i];
    put("/sys/fs/cgroup/g/memory.max", v);
    put("/sys/fs/cgroup/g/memory.high", v);
    put("/sys/fs/cgroup/g/cpu.max", v);
    cg = read_limits();
    /* "100000\n" is a valid memory.max (and not a valid cpu.max); "1 2\n"
     * a valid cpu.max (half a core: one thread). */
    if (strcmp(v, "100000\n") == 0)
      assert_int_equal(cg.memory, 100000);
    else
      assert_int_equal(cg.memory, 0);
    assert_int_equal(cg.cpus, strcmp(v, "1 2\n") == 0 ? 1 : 0);
  }

  /* Garbled /proc/self/cgroup and mountinfo: no cgroup found, or the usual
   * mount point. */
  const char *bad_cgroup[] = {"",      "garbage",    "0:",    "0::", "0::relative\n",
                              ":::\n", "4:memory\n", "\n\n\n"};
  put("/sys/fs/cgroup/g/memory.max", "4096\n");
  put("/proc/self/mountinfo", "garbage\n- - -\n1 2 3\n\n29 23 0:26 / /sys/fs/cgroup rw -\n");
  for (size_t i = 0; i < sizeof bad_cgroup / sizeof bad_cgroup[0]; i++) {
    put("/proc/self/cgroup", bad_cgroup[i]);
    cg = read_limits();
    assert_int_equal(cg.memory, 0);
    assert_int_equal(cg.cpus, 0);
  }
  put("/proc/self/cgroup", "0::/g\n");
  assert_int_equal(read_limits().memory, 4096);

  /* A line longer than any path. */
  char *longline = malloc(20000);
  assert_non_null(longline);
  memset(longline, 'a', 19999);
  longline[0] = '0';
  longline[1] = ':';
  longline[2] = ':';
  longline[3] = '/';
  longline[19999] = '\0';
  put("/proc/self/cgroup", longline);
  put("/proc/self/mountinfo", longline);
  cg = read_limits();
  assert_int_equal(cg.memory, 0);
  free(longline);

  /* A directory where a file should be. */
  fresh("cg-dir");
  put("/proc/self/cgroup", "0::/g\n");
  put("/sys/fs/cgroup/g/memory.max/x", "1\n");
  assert_int_equal(read_limits().memory, 0);
}

/* On the machine the tests run on: figures that make sense, whatever its
 * cgroups say. */
static void the_real_machine_gives_sane_defaults(void **state) {
  (void)state;
  uint32_t cpus = dkm__cpu_count();
  assert_true(cpus >= 1);
  const char *from = NULL;
  uint64_t mem = dkm__usable_memory(&from);
  assert_non_null(from);
  uint64_t ram = dkm__physical_memory();
  if (ram != 0)
    assert_true(mem > 0 && mem <= ram);
  dkm__cgroup_limits cg;
  dkm__cgroup_read("", &cg);
  if (cg.memory != 0 && cg.memory < ram)
    assert_int_equal(mem, cg.memory);
  if (cg.cpus != 0)
    assert_true(cpus <= cg.cpus);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(cgroup_v2_memory_max_and_cpu_max, teardown),
      cmocka_unit_test_teardown(cgroup_v2_max_means_no_limit, teardown),
      cmocka_unit_test_teardown(cgroup_v2_nested_parent_limit_applies, teardown),
      cmocka_unit_test_teardown(cgroup_mount_of_the_container_itself, teardown),
      cmocka_unit_test_teardown(cgroup_v1_memory_and_cfs_quota, teardown),
      cmocka_unit_test_teardown(garbled_or_missing_files_mean_no_limit, teardown),
      cmocka_unit_test(the_real_machine_gives_sane_defaults),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
