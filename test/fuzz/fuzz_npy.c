/*
 * fuzz_npy.c - libFuzzer target for the .npy parser: the input is a whole
 * file, opened as npy (forced) and auto-detected.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[128];
  fuzz_path(path, sizeof path, "npy", ".npy");
  fuzz_write(path, data, size);
  fuzz_open_as(path, DKM_FORMAT_NPY, 0, DKM_DTYPE_F32);
  fuzz_open_as(path, DKM_FORMAT_AUTO, 0, DKM_DTYPE_F32);
  unlink(path);
  return 0;
}
