/*
 * fuzz_idx.c - libFuzzer target for IDX, plain and gzipped. The input is
 * opened as it is (forced IDX, and auto-detected under a neutral name, where
 * the IDX sniffing and the gzip magic decide), and, when it is not already
 * gzip, once more gzip-compressed, so that the fuzzer reaches the
 * compressed reader's header and row checks with valid gzip streams; and
 * once more with the input's first bytes after the gzip stream, which reach
 * the checks of what follows a member (zero padding, trailing garbage, a
 * second member).
 */
#include <zlib.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Gzip-compresses data into a malloc'ed buffer; NULL on failure. */
static unsigned char *gzip_bytes(const uint8_t *data, size_t size, size_t *out_size) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return NULL;
  size_t cap = deflateBound(&z, (uLong)size) + 64;
  unsigned char *out = malloc(cap);
  if (out == NULL) {
    deflateEnd(&z);
    return NULL;
  }
  z.next_in = (Bytef *)(uintptr_t)data;
  z.avail_in = (uInt)size;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  int ret = deflate(&z, Z_FINISH);
  *out_size = cap - z.avail_out;
  deflateEnd(&z);
  if (ret != Z_STREAM_END) {
    free(out);
    return NULL;
  }
  return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[128];
  fuzz_path(path, sizeof path, "idx", ".data");
  fuzz_write(path, data, size);
  fuzz_open_as(path, DKM_FORMAT_IDX, 0, DKM_DTYPE_F32);
  fuzz_open_as(path, DKM_FORMAT_AUTO, 0, DKM_DTYPE_F32);
  if (!(size >= 2 && data[0] == 0x1f && data[1] == 0x8b)) {
    size_t gz_size;
    unsigned char *gz = gzip_bytes(data, size, &gz_size);
    if (gz != NULL) {
      fuzz_write(path, gz, gz_size);
      fuzz_open_as(path, DKM_FORMAT_IDX, 0, DKM_DTYPE_F32);
      fuzz_open_as(path, DKM_FORMAT_AUTO, 0, DKM_DTYPE_F32);
      size_t tail = size < 64 ? size : 64;
      unsigned char *both = malloc(gz_size + tail);
      if (both != NULL) {
        memcpy(both, gz, gz_size);
        memcpy(both + gz_size, data, tail);
        fuzz_write(path, both, gz_size + tail);
        free(both);
        fuzz_open_as(path, DKM_FORMAT_IDX, 0, DKM_DTYPE_F32);
      }
      free(gz);
    }
  }
  unlink(path);
  return 0;
}
