/*
 * replay_hdf5.c - our side of reading HDF5, over the files of a corpus
 * folder (corpus/hdf5_malformed/, made by make_hdf5_corpus.py). Each input
 * is opened auto-detected, forced as HDF5, and with the datasets "train" and
 * "g/s", and read whole (fuzz_common.h checks the shape of a success and
 * that every failure names the file). Besides: libhdf5 must print nothing
 * (the standard error is a file during the call, and must stay empty).
 *
 * Not a libFuzzer target (its name does not start with fuzz_): mutating
 * inputs would fuzz libhdf5's parser, which is not ours to fix; the corpus
 * only replays, in every build.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[128], err_path[128];
  fuzz_path(path, sizeof path, "h5", ".h5");
  fuzz_path(err_path, sizeof err_path, "h5", ".stderr");
  fuzz_write(path, data, size);
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (saved < 0 || err < 0 || dup2(err, STDERR_FILENO) < 0)
    abort();
  close(err);

  fuzz_open_as(path, DKM_FORMAT_AUTO, 0, DKM_DTYPE_F32);
  fuzz_open_as(path, DKM_FORMAT_HDF5, 0, DKM_DTYPE_F32);
  const char *datasets[] = {"train", "g/s", "/emb"};
  for (int i = 0; i < 3; i++) {
    dkm_file_options opt;
    dkm_file_options_init(&opt);
    opt.dataset = datasets[i];
    fuzz_open_and_read(path, &opt);
  }

  fflush(stderr);
  if (dup2(saved, STDERR_FILENO) < 0)
    abort();
  close(saved);
  struct stat st;
  if (stat(err_path, &st) != 0)
    abort();
  if (st.st_size != 0) {
    fprintf(stderr, "libhdf5 printed %lld bytes to stderr (see %s)\n", (long long)st.st_size,
            err_path);
    abort();
  }
  unlink(err_path);
  unlink(path);
  return 0;
}
