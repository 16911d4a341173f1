/*
 * fuzz_fvecs.c - libFuzzer target for the headerless row formats: the input
 * is a whole file, opened as fvecs and as bvecs (forced), auto-detected by
 * its .fvecs name, and as raw rows whose dim and dtype come from the first
 * two bytes.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[128];
  fuzz_path(path, sizeof path, "vecs", ".fvecs");
  fuzz_write(path, data, size);
  fuzz_open_as(path, DKM_FORMAT_FVECS, 0, DKM_DTYPE_F32);
  fuzz_open_as(path, DKM_FORMAT_BVECS, 0, DKM_DTYPE_F32);
  fuzz_open_as(path, DKM_FORMAT_AUTO, 0, DKM_DTYPE_F32);
  if (size >= 2)
    fuzz_open_as(path, DKM_FORMAT_RAW, (uint32_t)(data[0] % 32) + 1, (dkm_dtype)(data[1] % 6));
  unlink(path);
  return 0;
}
