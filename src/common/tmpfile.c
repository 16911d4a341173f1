/*
 * tmpfile.c - temporary files that have no name, for the spilled sample and
 * for a stream's bytes kept so that they can be read at offsets.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

int dkm__open_nameless(dkm_ctx *ctx, const char *dir, int *err) {
#ifdef O_TMPFILE
  int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0)
    return fd;
  /* EOPNOTSUPP: this file system has no O_TMPFILE; EISDIR/EINVAL: a kernel
   * that predates it. Anything else (EACCES, EROFS, ...) is the answer. */
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
    *err = errno;
    return -1;
  }
#endif
  static const char name[] = "/.diskmeans-spill-XXXXXX";
  size_t len = strlen(dir) + sizeof name;
  char *path = dkm__alloc(ctx, len);
  if (path == NULL) {
    *err = ENOMEM;
    return -1;
  }
  snprintf(path, len, "%s%s", dir, name);
  int fd2 = mkostemp(path, O_CLOEXEC);
  if (fd2 < 0)
    *err = errno;
  else
    unlink(path);
  dkm__free(ctx, path);
  return fd2;
}
