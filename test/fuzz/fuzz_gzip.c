/*
 * fuzz_gzip.c - libFuzzer target for the gzip-wrapped formats. The first
 * byte chooses: bit 0 set, the rest of the input is the .gz file itself
 * (the gzip layer and the decompressed-size check are fuzzed); clear, the
 * rest is the data inside, gzip-compressed here (the header parsers and the
 * sequential source are fuzzed through the decompressed head). Bits 1-3
 * choose the name, so that detection by name goes through the ".gz" too;
 * each file is opened auto-detected and forced as every fixed-stride format.
 */
#include <zlib.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* data gzip-compressed (one member, fast level) into a malloc'ed buffer. */
static unsigned char *gzip_of(const uint8_t *data, size_t size, size_t *out_size) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    abort();
  size_t cap = deflateBound(&z, (uLong)size) + 64;
  unsigned char *out = malloc(cap);
  if (out == NULL)
    abort();
  z.next_in = (Bytef *)(uintptr_t)data;
  z.avail_in = (uInt)size;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  if (deflate(&z, Z_FINISH) != Z_STREAM_END)
    abort();
  *out_size = cap - z.avail_out;
  deflateEnd(&z);
  return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const suffixes[8] = {".fvecs.gz",      ".bvecs.gz", ".npy.gz", ".raw.gz",
                                          "-idx3-ubyte.gz", ".gz",       ".bin.gz", ".h5.gz"};
  if (size < 1 || size > (1u << 20))
    return 0;
  unsigned mode = data[0];
  char path[128];
  fuzz_path(path, sizeof path, "gzip", suffixes[(mode >> 1) & 7]);
  if (mode & 1) {
    fuzz_write(path, data + 1, size - 1);
  } else {
    size_t gz_size;
    unsigned char *gz = gzip_of(data + 1, size - 1, &gz_size);
    fuzz_write(path, gz, gz_size);
    free(gz);
  }
  fuzz_open_as(path, DKM_FORMAT_AUTO, 0, DKM_DTYPE_F32);
  fuzz_open_as(path, DKM_FORMAT_FVECS, 0, DKM_DTYPE_F32);
  fuzz_open_as(path, DKM_FORMAT_BVECS, 0, DKM_DTYPE_F32);
  fuzz_open_as(path, DKM_FORMAT_NPY, 0, DKM_DTYPE_F32);
  fuzz_open_as(path, DKM_FORMAT_IDX, 0, DKM_DTYPE_F32);
  fuzz_open_as(path, DKM_FORMAT_RAW, (mode >> 4) + 1, (dkm_dtype)((mode >> 1) % 5));
  unlink(path);
  return 0;
}
