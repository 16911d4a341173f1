/*
 * names.c - static texts for the public enums.
 */
#include <string.h>

#include "internal.h"

#define DKM__STRINGIFY_(x) #x
#define DKM__STRINGIFY(x) DKM__STRINGIFY_(x)

const char *dkm_version(void) {
  return DKM__STRINGIFY(DKM_VERSION_MAJOR) "." DKM__STRINGIFY(DKM_VERSION_MINOR) "." DKM__STRINGIFY(
      DKM_VERSION_PATCH);
}

const char *dkm_strerror(dkm_status status) {
  switch (status) {
#define DKM_STATUS_TEXT_(name, value, text)                                                        \
  case name:                                                                                       \
    return text;
    DKM_STATUS_MAP(DKM_STATUS_TEXT_)
#undef DKM_STATUS_TEXT_
  }
  return "unknown status";
}

const char *dkm_status_name(dkm_status status) {
  switch (status) {
#define DKM_STATUS_NAME_(name, value, text)                                                        \
  case name:                                                                                       \
    return #name;
    DKM_STATUS_MAP(DKM_STATUS_NAME_)
#undef DKM_STATUS_NAME_
  }
  return "DKM_UNKNOWN_STATUS";
}

static const char *const dtype_names[] = {"f32", "f16", "f64", "u8", "i8"};
static const size_t dtype_sizes[] = {4, 2, 8, 1, 1};
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

size_t dkm_dtype_size(dkm_dtype dtype) {
  return (unsigned)dtype < COUNT_OF(dtype_sizes) ? dtype_sizes[dtype] : 0;
}

const char *dkm_dtype_name(dkm_dtype dtype) {
  return (unsigned)dtype < COUNT_OF(dtype_names) ? dtype_names[dtype] : NULL;
}

int dkm_dtype_parse(const char *name, dkm_dtype *out) {
  for (size_t i = 0; name != NULL && i < COUNT_OF(dtype_names); i++) {
    if (strcmp(name, dtype_names[i]) == 0) {
      *out = (dkm_dtype)i;
      return 0;
    }
  }
  return -1;
}

static const char *const format_names[] = {"auto", "fvecs",  "bvecs", "npy",   "idx",
                                           "raw",  "memory", "spill", "mixed", "hdf5"};

const char *dkm_format_name(dkm_format format) {
  return (unsigned)format < COUNT_OF(format_names) ? format_names[format] : NULL;
}

int dkm_format_parse(const char *name, dkm_format *out) {
  /* Only the file formats can be asked for by name. */
  for (size_t i = 0; name != NULL && i < COUNT_OF(format_names); i++) {
    if (i != DKM_FORMAT_MEMORY && i != DKM_FORMAT_SPILL && i != DKM_FORMAT_MIXED &&
        strcmp(name, format_names[i]) == 0) {
      *out = (dkm_format)i;
      return 0;
    }
  }
  return -1;
}

static const char *const storage_names[] = {"auto", "memory", "disk"};
static const char *const init_names[] = {"random", "kmeans++", "given", "greedy-kmeans++"};
static const char *const metric_names[] = {"l2", "cosine", "ip"};
static const char *const strategy_names[] = {"auto", "flat", "hierarchical"};

const char *dkm_storage_name(dkm_storage s) {
  return (unsigned)s < COUNT_OF(storage_names) ? storage_names[s] : NULL;
}

const char *dkm_init_name(dkm_init i) {
  return (unsigned)i < COUNT_OF(init_names) ? init_names[i] : NULL;
}

const char *dkm_metric_name(dkm_metric m) {
  return (unsigned)m < COUNT_OF(metric_names) ? metric_names[m] : NULL;
}

const char *dkm_strategy_name(dkm_strategy s) {
  return (unsigned)s < COUNT_OF(strategy_names) ? strategy_names[s] : NULL;
}
