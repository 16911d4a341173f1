#include "formats/file.h"
dkm_status dkm__open_hdf5(dkm_ctx *ctx, const dkm__file *f, const char *dataset,
                          dkm_source **out) {
  return dkm__error(ctx, DKM_ERR_FORMAT, "%s: HDF5 not yet", f->path);
}
