/*
 * diskmeans.h - exact, deterministic k-means for vector indexes, in memory or
 * streamed from disk.
 *
 * This is the only header the CLI, the examples, the benchmarks and bindings
 * include. Every public name starts with dkm_ or DKM_.
 *
 * Conventions (they hold for every function below unless its comment says
 * otherwise):
 *  - A call that can fail returns a dkm_status. DKM_OK is 0; errors are
 *    negative. dkm_strerror() gives a static text for a status and
 *    dkm_ctx_errmsg() the detailed message of the last failure on a context
 *    ("x.npy: row 812 has a NaN in column 3").
 *  - The library never prints, exits, aborts on bad input or reads the
 *    environment. Progress goes through a callback that can cancel.
 *  - Every object is created with a context and must be freed before it.
 *    Destructors accept NULL.
 *  - Row counts and offsets are 64-bit; sizes are overflow-checked.
 *
 * Determinism contract: for the same rows, parameters and seed, dkm_train()
 * returns bitwise identical centroids, statistics and cluster sizes whatever
 * the thread count, the block size and the storage (memory or disk), and
 * dkm_assign() returns identical labels and distances. Every distance is one
 * fused multiply-add chain over the columns in order (the same bits on any
 * tile, thread, or AVX-512 vs AVX2), and every floating-point reduction is
 * done in a fixed order (row order for centroid sums, accumulated in double).
 * The guarantee holds for one build of the library on one kind of CPU; a CPU
 * without AVX2/FMA uses the BLAS fallback, which rounds differently.
 */
#ifndef DISKMEANS_H
#define DISKMEANS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(DKM_BUILDING_LIBRARY) && defined(__GNUC__)
#define DKM_API __attribute__((visibility("default")))
#else
#define DKM_API
#endif

#define DKM_VERSION_MAJOR 0
#define DKM_VERSION_MINOR 3
#define DKM_VERSION_PATCH 0

/** Returns the library's version as "MAJOR.MINOR.PATCH" (static text). */
DKM_API const char *dkm_version(void);

/* ------------------------------------------------------------------------ */
/* Status codes                                                               */
/* ------------------------------------------------------------------------ */

/* One table generates the enum and the texts: the one place to add a case. */
#define DKM_STATUS_MAP(X)                                                                          \
  X(DKM_OK, 0, "success")                                                                          \
  X(DKM_ERR_PARAM, -1, "invalid parameter")                                                        \
  X(DKM_ERR_NOMEM, -2, "out of memory")                                                            \
  X(DKM_ERR_IO, -3, "input/output error")                                                          \
  X(DKM_ERR_FORMAT, -4, "malformed or unsupported input")                                          \
  X(DKM_ERR_DATA, -5, "invalid value in the data")                                                 \
  X(DKM_ERR_MISMATCH, -6, "dimension mismatch")                                                    \
  X(DKM_ERR_NOSPACE, -7, "not enough space on the device")                                         \
  X(DKM_ERR_CANCELLED, -8, "cancelled by the progress callback")                                   \
  X(DKM_ERR_TOO_FEW_ROWS, -9, "fewer rows than clusters")                                          \
  X(DKM_ERR_INTERNAL, -10, "internal error")

typedef enum dkm_status {
#define DKM_STATUS_ENUM_(name, value, text) name = value,
  DKM_STATUS_MAP(DKM_STATUS_ENUM_)
#undef DKM_STATUS_ENUM_
} dkm_status;

/** Static text for a status; "unknown status" for a value not in the table. */
DKM_API const char *dkm_strerror(dkm_status status);

/** Static name of a status, e.g. "DKM_ERR_PARAM" (for logs and tests). */
DKM_API const char *dkm_status_name(dkm_status status);

/* ------------------------------------------------------------------------ */
/* Context: detailed errors and the allocator                                 */
/* ------------------------------------------------------------------------ */

typedef struct dkm_ctx dkm_ctx;

/** Optional allocator. Must be thread-safe: worker threads allocate too.
 *  alloc returns NULL on failure; free accepts NULL. */
typedef struct dkm_allocator {
  void *(*alloc)(void *user, size_t size);
  void (*free)(void *user, void *ptr);
  void *user;
} dkm_allocator;

/** Creates a context. allocator may be NULL for malloc/free; it is copied.
 *  Returns NULL only when the context itself cannot be allocated. The caller
 *  frees it with dkm_ctx_free() after every object made with it. */
DKM_API dkm_ctx *dkm_ctx_create(const dkm_allocator *allocator);

/** Frees a context. NULL is harmless. */
DKM_API void dkm_ctx_free(dkm_ctx *ctx);

/** The detailed message of the most recent failure on ctx ("" if none).
 *  Valid until the next call that uses ctx. Never NULL. */
DKM_API const char *dkm_ctx_errmsg(const dkm_ctx *ctx);

/** The status of the most recent failure on ctx (DKM_OK if none). */
DKM_API dkm_status dkm_ctx_status(const dkm_ctx *ctx);

/** Records a failure on ctx and returns status. For implementers of custom
 *  sources (see dkm_source_methods). The first failure recorded during one
 *  library call wins; later ones are dropped, so the message names the root
 *  cause. Thread-safe. */
DKM_API dkm_status dkm_ctx_set_error(dkm_ctx *ctx, dkm_status status, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/** Forgets the recorded failure (the library does this at the start of
 *  every public call that takes ctx). */
DKM_API void dkm_ctx_clear_error(dkm_ctx *ctx);

/* ------------------------------------------------------------------------ */
/* Element types                                                              */
/* ------------------------------------------------------------------------ */

typedef enum dkm_dtype {
  DKM_DTYPE_F32 = 0, /* float32, the algorithm's own type */
  DKM_DTYPE_F16,     /* IEEE 754 binary16 */
  DKM_DTYPE_F64,     /* float64, rounded to nearest float32 */
  DKM_DTYPE_U8,      /* uint8 */
  DKM_DTYPE_I8       /* int8 */
} dkm_dtype;

/** Size in bytes of one element (0 for an unknown dtype). */
DKM_API size_t dkm_dtype_size(dkm_dtype dtype);

/** Short name: "f32", "f16", "f64", "u8", "i8" (NULL for an unknown dtype). */
DKM_API const char *dkm_dtype_name(dkm_dtype dtype);

/** Parses a short name as printed by dkm_dtype_name(). Returns 0 on success,
 *  -1 for an unknown name. */
DKM_API int dkm_dtype_parse(const char *name, dkm_dtype *out);

/* ------------------------------------------------------------------------ */
/* Data sources                                                               */
/* ------------------------------------------------------------------------ */

/*
 * The algorithm reads rows only through a source, as blocks of float32. A
 * source may hold its rows in memory, in a file of some format, or in a spill
 * file; the algorithm does not care. Like SQLite's VFS, a source is a table of
 * methods plus a few public fields; custom sources embed struct dkm_source as
 * their first member.
 *
 * The library never calls the methods of one source from two threads at the
 * same time, but may call them from a thread other than the one that opened
 * the source.
 */
typedef struct dkm_source dkm_source;

#define DKM_SOURCE_METHODS_VERSION 1

typedef struct dkm_source_methods {
  int version; /* DKM_SOURCE_METHODS_VERSION */

  /* Makes rows [first, first + count) available as row-major float32
   * (count * dim values). The method either converts them into buf, which the
   * caller provides with room for count * dim floats, and sets *rows = buf;
   * or sets *rows to memory the source owns, valid until the source is closed
   * (zero copy). first + count <= rows is guaranteed by the caller. On failure
   * it records the error with dkm_ctx_set_error() (naming the source and the
   * row) and returns it. */
  dkm_status (*read)(dkm_source *self, dkm_ctx *ctx, uint64_t first, uint64_t count, float *buf,
                     const float **rows);

  /* Optional (may be NULL): a hint that rows [first, first + count) will be
   * read soon, so that a file-backed source can start reading ahead. */
  void (*will_need)(dkm_source *self, uint64_t first, uint64_t count);

  /* Frees the source and everything it owns. */
  void (*close)(dkm_source *self);
} dkm_source_methods;

/* Source flags. */
#define DKM_SOURCE_RESIDENT 0x1u /* rows are float32 in memory: read is free */
#define DKM_SOURCE_SEQUENTIAL                                                                      \
  0x2u /* reads must come in increasing row order                                                  \
          (e.g. gzip); no random access */

/* How rows are stored in a file. */
typedef enum dkm_format {
  DKM_FORMAT_AUTO = 0, /* detect from magic bytes, then the extension */
  DKM_FORMAT_FVECS,    /* int32 dim, then dim float32, per row */
  DKM_FORMAT_BVECS,    /* int32 dim, then dim uint8, per row */
  DKM_FORMAT_NPY,      /* numpy .npy, version 1-3, 2-D, C order */
  DKM_FORMAT_IDX,      /* MNIST-family IDX */
  DKM_FORMAT_RAW,      /* headerless rows; needs dim and dtype */
  DKM_FORMAT_MEMORY,   /* not a file: an array in memory */
  DKM_FORMAT_SPILL,    /* not a file: the library's own spilled sample */
  DKM_FORMAT_MIXED,    /* not a file: parts of different formats joined by
                          dkm_source_concat() */
  DKM_FORMAT_HDF5      /* one 2-D dataset of an HDF5 file (libhdf5) */
} dkm_format;
/* Every file format but HDF5 may also be gzip-compressed: that is told by
 * the gzip magic bytes, not by a format of its own. */

/** Short name: "fvecs", "bvecs", "npy", "idx", "raw", "memory", "spill",
 *  "mixed", "hdf5". */
DKM_API const char *dkm_format_name(dkm_format format);

/** Parses "auto", "fvecs", "bvecs", "npy", "idx", "raw" or "hdf5". Returns 0
 *  on success, -1 for an unknown name. */
DKM_API int dkm_format_parse(const char *name, dkm_format *out);

struct dkm_source {
  const dkm_source_methods *methods;
  uint64_t rows;     /* number of rows */
  uint32_t dim;      /* values per row, >= 1 */
  uint32_t flags;    /* DKM_SOURCE_* */
  dkm_dtype dtype;   /* element type as stored (informational) */
  dkm_format format; /* where the rows come from (informational) */
  uint64_t bytes;    /* size of the stored data, e.g. the file size */
  const char *name;  /* for messages: a file name, or "memory" */
  dkm_ctx *ctx;      /* the context the source was opened with */
};

/** Wraps an array of rows * dim elements of dtype, row-major, that the
 *  caller owns and keeps alive and unchanged until the source is closed (it
 *  is borrowed, never copied whole; F32 rows are read without any copy).
 *  Fails with DKM_ERR_PARAM when data is NULL, rows or dim is 0, or the size
 *  overflows. */
DKM_API dkm_status dkm_source_from_memory(dkm_ctx *ctx, const void *data, dkm_dtype dtype,
                                          uint64_t rows, uint32_t dim, dkm_source **out);

/** Options for dkm_source_open_file(); fill with dkm_file_options_init(). */
typedef struct dkm_file_options {
  dkm_format format;   /* DKM_FORMAT_AUTO (default) or a forced format */
  uint32_t raw_dim;    /* DKM_FORMAT_RAW only: values per row */
  dkm_dtype raw_dtype; /* DKM_FORMAT_RAW only: element type (default F32) */
  /* DKM_FORMAT_HDF5 only: the path of the dataset in the file ("train",
   * "/group/emb"). NULL (default): "train" when the file has it, else its
   * only 2-D dataset. The string is read during the open only. */
  const char *dataset;
  /* Where a stream's bytes are kept (see dkm_source_open_file()); NULL
   * (default) means "/tmp". Read during the open only. */
  const char *tmp_dir;
} dkm_file_options;

/** Fills options with the defaults: DKM_FORMAT_AUTO, raw_dim 0, raw_dtype
 *  F32, dataset and tmp_dir NULL. NULL is harmless. */
DKM_API void dkm_file_options_init(dkm_file_options *options);

/** Opens a file of rows. options may be NULL for the defaults. The header is
 *  checked at once (a bad magic, a shape that disagrees with the file size, a
 *  row of the wrong dimension found later while reading: each is
 *  DKM_ERR_FORMAT with a message naming the file and the problem). Rows are
 *  read in blocks, never the whole file at once. Close with
 *  dkm_source_close().
 *
 *  gzip-compressed files (told by their magic bytes) are decompressed once
 *  during the open, to count their bytes and check their CRCs, and then read
 *  as a DKM_SOURCE_SEQUENTIAL source; the format inside is detected from the
 *  decompressed bytes, or from the name without its ".gz".
 *
 *  path "-" is the standard input (file descriptor 0, which stays open). A
 *  stream (the standard input or any path that names a pipe, FIFO, socket or
 *  character device, such as /dev/fd/N) is first copied whole to a nameless
 *  file in options->tmp_dir, which vanishes when the source is closed: the
 *  rows are then read exactly as from a file of the same bytes. A failure
 *  to write that copy is DKM_ERR_NOSPACE or DKM_ERR_IO naming the input and
 *  the folder. A terminal is refused (DKM_ERR_IO).
 *
 *  HDF5 files are read through libhdf5, one 2-D dataset (options->dataset)
 *  of f32, f64, f16, u8 or i8 elements. libhdf5 as Debian builds it is not
 *  thread-safe: the library serialises its own calls into it, but a program
 *  that calls libhdf5 itself from another thread at the same time must not
 *  read an HDF5 source then. */
DKM_API dkm_status dkm_source_open_file(dkm_ctx *ctx, const char *path,
                                        const dkm_file_options *options, dkm_source **out);

/** Makes one source of n_parts sources, their rows one after the other in
 *  the order given: row r of the whole is row r - (rows of the parts before
 *  it) of its part. Training and assignment over it give exactly what they
 *  give over one source holding the same rows (the same sample, centroids
 *  and labels, bit for bit). Each part may be of any kind, format and dtype.
 *
 *  Ownership: the parts (not the array) always pass to the call, on success
 *  AND on failure. On success *out owns them and dkm_source_close(*out)
 *  closes them; on failure they are already closed and *out is NULL. The
 *  caller must not use or close a part afterwards. With one part, *out is
 *  that part itself.
 *
 *  The parts must agree on dim (else DKM_ERR_FORMAT naming both parts and
 *  their dims) and none may be empty (DKM_ERR_FORMAT naming it); the total
 *  row count must fit 64 bits (DKM_ERR_FORMAT). DKM_ERR_PARAM for out or
 *  parts NULL, n_parts 0, or a NULL part. DKM_ERR_NOMEM.
 *
 *  The new source's fields: dtype is the parts' common dtype, or
 *  DKM_DTYPE_F32 when they differ ("mixed": every row is read as float32
 *  anyway); format is their common format, or DKM_FORMAT_MIXED; bytes is
 *  the sum of theirs; name is "FIRST ... LAST (N parts)". It is
 *  DKM_SOURCE_SEQUENTIAL when any part is (reads in increasing row order
 *  reach every part in order), DKM_SOURCE_RESIDENT only when every part is.
 *  A read within one part is that part's own read; a read across parts
 *  fills the caller's buffer from each in turn. A failure of a part's read
 *  is reported as the part reports it (naming the part and its own row). A
 *  row that training or assignment rejects (a NaN, say) is named by its
 *  part and its row in that part. */
DKM_API dkm_status dkm_source_concat(dkm_ctx *ctx, dkm_source *const *parts, size_t n_parts,
                                     dkm_source **out);

/** Reads rows through src->methods->read after checking the range. */
DKM_API dkm_status dkm_source_read(dkm_ctx *ctx, dkm_source *src, uint64_t first, uint64_t count,
                                   float *buf, const float **rows);

/** Closes a source. NULL is harmless. */
DKM_API void dkm_source_close(dkm_source *src);

/* ------------------------------------------------------------------------ */
/* Parameters                                                                 */
/* ------------------------------------------------------------------------ */

typedef enum dkm_init {
  DKM_INIT_RANDOM = 0,     /* k distinct rows drawn at random */
  DKM_INIT_KMEANSPP,       /* k-means++ (default): each centre a row drawn with
                              probability proportional to its squared distance to
                              the nearest centre so far; costs about one Lloyd
                              iteration */
  DKM_INIT_GIVEN,          /* the caller's centroids (params.init_centroids) */
  DKM_INIT_GREEDY_KMEANSPP /* greedy k-means++ (as scikit-learn): each step draws
                              2 + ln k candidates that way and keeps the one that
                              lowers the objective most; costs about 2 + ln k
                              Lloyd iterations of arithmetic and k passes */
} dkm_init;

typedef enum dkm_metric {
  DKM_METRIC_L2 = 0, /* squared Euclidean distance (default) */
  DKM_METRIC_COSINE, /* spherical k-means: rows and centroids normalised;
                        distance 1 - cos */
  DKM_METRIC_IP      /* largest inner product; distance -x.c; centroids are
                        plain means, as in FAISS without `spherical` */
} dkm_metric;

/* How k centroids are trained. Flat Lloyd costs 2 m k dim flops per
 * iteration (m sample rows): fine up to a few thousand clusters, hours at
 * k = 65,536. Hierarchical training composes the same exact engine: coarse
 * centroids (about sqrt(k)), every sample row routed to its nearest coarse
 * one, each group's rows trained into a quota of fine centroids
 * proportional to its size (recursively where a quota is still large), then
 * refinement passes over all rows in which each row only meets the fine
 * centroids of its DKM_REFINE_CANDIDATES nearest coarse groups. */
typedef enum dkm_strategy {
  DKM_STRATEGY_AUTO = 0,    /* flat for k < DKM_HIERARCHICAL_MIN_K, else
                               hierarchical */
  DKM_STRATEGY_FLAT,        /* exact Lloyd over all k centroids */
  DKM_STRATEGY_HIERARCHICAL /* coarse, route, groups, refine (see above) */
} dkm_strategy;

/** The smallest k that DKM_STRATEGY_AUTO trains hierarchically (measured:
 *  docs/benchmarks.md, "Large k"). */
#define DKM_HIERARCHICAL_MIN_K 4096u

/** Coarse groups whose fine centroids each row meets in a refinement pass:
 *  its own and the next nearest ones. */
#define DKM_REFINE_CANDIDATES 4u

typedef enum dkm_storage {
  DKM_STORAGE_AUTO = 0, /* memory when the sample fits memory_limit, else disk */
  DKM_STORAGE_MEMORY,   /* the sample is held in RAM */
  DKM_STORAGE_DISK      /* the sample is spilled to a file and streamed */
} dkm_storage;

/** Short names: "auto", "memory", "disk"; "random", "kmeans++", "given",
 *  "greedy-kmeans++"; "l2", "cosine", "ip"; "auto", "flat",
 *  "hierarchical". NULL for a value out of range. */
DKM_API const char *dkm_storage_name(dkm_storage storage);
DKM_API const char *dkm_strategy_name(dkm_strategy strategy);
DKM_API const char *dkm_init_name(dkm_init init);
DKM_API const char *dkm_metric_name(dkm_metric metric);

/** Phases reported to the progress callback. */
typedef enum dkm_phase {
  DKM_PHASE_SAMPLE = 0, /* drawing the sample in one pass over the source */
  DKM_PHASE_INIT,       /* choosing the initial centroids */
  DKM_PHASE_ITERATE,    /* one Lloyd iteration */
  DKM_PHASE_ASSIGN,     /* dkm_assign() */
  DKM_PHASE_ROUTE,      /* hierarchical: each sample row to its coarse group */
  DKM_PHASE_REFINE      /* hierarchical: one refinement pass over all rows
                           (iteration counts the passes) */
} dkm_phase;

/** Which part of a training run a progress report is about. Hierarchical
 *  training runs whole trainings inside it, each with its own SAMPLE, INIT
 *  and ITERATE phases. */
typedef enum dkm_part {
  DKM_PART_WHOLE = 0, /* a flat run, or the hierarchical run's own passes
                         (sample, route, refine) */
  DKM_PART_COARSE,    /* training the coarse centroids */
  DKM_PART_GROUP      /* training group `group` of `n_groups` */
} dkm_part;

typedef struct dkm_progress {
  dkm_phase phase;
  uint32_t run;       /* 0-based index of the current run (n_redo) */
  uint32_t iteration; /* 0-based, DKM_PHASE_ITERATE only */
  uint32_t max_iter;
  uint64_t done;    /* rows (or init steps) done in this phase so far */
  uint64_t total;   /* rows (or init steps) of this phase */
  double objective; /* objective of the last finished iteration, or NaN */
  dkm_part part;
  uint32_t level;    /* 0 at the top; a group trained hierarchically in
                        turn reports its own parts one level deeper */
  uint32_t group;    /* DKM_PART_GROUP: 0-based group ... */
  uint32_t n_groups; /* ... of n_groups at this level (0 otherwise) */
} dkm_progress;

/** Progress callback. Called from the thread that called the library, a few
 *  times per second at most per phase and once at the end of each phase and
 *  iteration. Return 0 to go on, non-zero to cancel: the call then fails with
 *  DKM_ERR_CANCELLED and frees everything. */
typedef int (*dkm_progress_fn)(void *user, const dkm_progress *progress);

#define DKM_DEFAULT_SEED UINT64_C(1234)

/** The largest k: labels are int32, so at most 2^31 - 1 clusters can be told
 *  apart. dkm_params_check() refuses more with "k is K; it must be at most
 *  2147483647 (labels are int32)". */
#define DKM_MAX_K INT32_MAX

typedef struct dkm_params {
  uint32_t k;                       /* clusters, 1 to DKM_MAX_K (no default: must be set) */
  uint32_t max_iter;                /* Lloyd iterations at most; default 25, >= 1 */
  double tol;                       /* stop when |obj_prev - obj| <= tol * |obj_prev|;
                                       default 1e-4; 0 runs every iteration */
  uint32_t n_redo;                  /* runs with different seeds; the best objective
                                       wins; default 1 */
  uint64_t seed;                    /* default DKM_DEFAULT_SEED */
  dkm_init init;                    /* default DKM_INIT_KMEANSPP */
  const float *init_centroids;      /* DKM_INIT_GIVEN: k * dim float32, borrowed
                                       for the duration of the call */
  dkm_metric metric;                /* default DKM_METRIC_L2 */
  uint64_t max_points_per_centroid; /* sample at most this * k rows (seeded,
                             in one pass); default 256; 0 = all rows */
  uint32_t n_threads;               /* 0 (default) = every core the process may
                                       use: online cores, at most its CPU
                                       affinity and its cgroup CPU quota */
  uint64_t block_rows;              /* rows per block streamed through the engine;
                                       0 (default) = automatic; never changes results */
  dkm_storage storage;              /* default DKM_STORAGE_AUTO */
  uint64_t memory_limit;            /* bytes the sample may take in RAM with
                                       DKM_STORAGE_AUTO; 0 (default) = half of RAM,
                                       or of the cgroup memory limit when lower */
  const char *tmp_dir;              /* directory of the spill file; NULL (default) =
                                       "/tmp". The library does not read $TMPDIR: the
                                       caller passes it if it wants it. */
  dkm_progress_fn progress;         /* may be NULL */
  void *progress_user;
  dkm_strategy strategy; /* default DKM_STRATEGY_AUTO */
  uint32_t refine;       /* hierarchical: refinement passes after the groups;
                            default 2; 0 keeps the groups' centroids */
  int balance;           /* non-zero: balance the partitions. Every update
                            but the last (flat, groups, refinement) moves
                            the centroids of clusters below 0.7x the mean
                            size to split the clusters above 1.5x, one for
                            one, largest and smallest first (sizes decide:
                            deterministic); hierarchical quotas go by group
                            size. Default 0 */
  /* Checkpoints (docs/design.md, "Checkpoints"). With checkpoint set,
   * dkm_train() saves its state to that file after the initialisation and
   * every iteration of each run, and after each stage of hierarchical
   * training (the coarse centroids, each group, each refinement pass),
   * replacing the file atomically (a temporary file checkpoint + ".tmp" in
   * the same folder, synced and renamed, then the folder synced) on a
   * thread of its own while training goes on. dkm_train() returns only
   * once the last state is on disk, and leaves the file in place: the
   * caller removes it when it no longer needs it. Without resume an
   * existing file is replaced. */
  const char *checkpoint;          /* path, or NULL (default): no checkpoint */
  int resume;                      /* non-zero: continue from checkpoint, which must
                                      exist, giving the very result (centroids,
                                      sizes, statistics; timings aside) of a run
                                      never interrupted. Its header, size, CRC32 and
                                      version are checked (DKM_ERR_FORMAT), then its
                                      identity: k, seed, metric, init (and the given
                                      centroids), max_points_per_centroid,
                                      max_iter, tol, n_redo, strategy, balance,
                                      refine, the source's rows and dim, the
                                      caller's checkpoint_identity and, once drawn,
                                      the CRC32 of the sample's rows; one that
                                      differs is DKM_ERR_PARAM with a message naming
                                      it, before anything is written. n_threads,
                                      block_rows, storage, memory_limit and tmp_dir
                                      may differ: they do not change results. */
  const char *checkpoint_identity; /* optional "name=value" lines the
                                      caller adds to the identity (the CLI:
                                      the input's path, size and mtime);
                                      NULL = none */
} dkm_params;

/** Fills params with the defaults above (k = 0: the caller must set k). */
DKM_API void dkm_params_init(dkm_params *params);

/** Checks every field. On failure returns DKM_ERR_PARAM with a message that
 *  names the field and the problem ("k must be at least 1"). Checks that need
 *  the data (k larger than the rows) happen in dkm_train(). */
DKM_API dkm_status dkm_params_check(dkm_ctx *ctx, const dkm_params *params);

/* ------------------------------------------------------------------------ */
/* Planning: what a training run will need                                    */
/* ------------------------------------------------------------------------ */

typedef struct dkm_plan {
  uint64_t rows; /* rows of the source */
  uint32_t dim;
  uint64_t sample_rows;            /* rows that training uses */
  uint64_t sample_bytes;           /* sample_rows * dim * 4 */
  dkm_storage storage;             /* MEMORY or DISK: what training would choose */
  int from_source;                 /* 1 when training reads the source directly,
                                      with no copy of the sample */
  uint64_t spill_bytes;            /* bytes written to tmp_dir in disk mode (0 when
                                      training reads the input file directly) */
  uint64_t memory_mode_bytes;      /* estimated peak RAM with DKM_STORAGE_MEMORY */
  uint64_t disk_mode_bytes;        /* estimated peak RAM with DKM_STORAGE_DISK */
  uint64_t memory_limit;           /* the budget auto compared against */
  dkm_strategy strategy;           /* FLAT or HIERARCHICAL: what training would do */
  uint32_t coarse_k;               /* hierarchical: coarse centroids (0 flat) */
  double flops;                    /* estimated arithmetic of the whole run
                                      (assignment products, 2 flops per
                                      multiply-add), with this strategy ... */
  double flat_flops;               /* ... and with flat Lloyd, for comparison */
  const char *memory_limit_source; /* where memory_limit comes from, a static
                                      text: "memory_limit" (params), else half
                                      of "physical RAM", "cgroup memory.max",
                                      "cgroup memory.high" or "cgroup v1
                                      memory.limit_in_bytes" (the smallest), or
                                      "unknown" (no budget: memory mode) */
} dkm_plan;

/** Says, before anything runs, how training src with params would store the
 *  sample and what it would cost. */
DKM_API dkm_status dkm_plan_training(dkm_ctx *ctx, const dkm_params *params, const dkm_source *src,
                                     dkm_plan *out);

/* ------------------------------------------------------------------------ */
/* Training                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct dkm_iter_stats {
  double objective;    /* sum of distances of the sample rows to the centroids
                          this iteration assigned them to */
  double seconds;      /* wall time of the iteration */
  uint32_t repaired;   /* empty clusters repaired by splitting */
  uint32_t rebalanced; /* params.balance: small clusters moved to split
                          large ones after this iteration */
  double imbalance;    /* k * sum(size^2) / n^2; 1 is perfectly balanced */
} dkm_iter_stats;

/** How even the partitions are (from cluster sizes). */
typedef struct dkm_balance {
  double cv;                /* coefficient of variation of the sizes: their
                               standard deviation over their mean */
  double largest_over_mean; /* the largest size over the mean */
  uint64_t smallest;        /* the smallest size */
  uint64_t largest;
  uint32_t empty; /* clusters of size 0 */
} dkm_balance;

/** Fills out from k cluster sizes (k >= 1). */
DKM_API void dkm_balance_of(const uint64_t *sizes, uint32_t k, dkm_balance *out);

/** The result of dkm_train(). Owned by the library: free with
 *  dkm_result_free(). All arrays stay valid until then. */
typedef struct dkm_result {
  uint32_t k;
  uint32_t dim;
  float *centroids;        /* k * dim float32, row-major */
  uint64_t *cluster_sizes; /* k: rows per cluster in the last assignment */
  double objective;        /* objective of the last iteration of the best run */
  uint32_t n_iter;         /* iterations of the best run; hierarchical: 1 +
                              refine_passes */
  dkm_iter_stats *iters;   /* n_iter entries, the best run's; hierarchical:
                              the groups taken together (their last passes'
                              objectives summed, the repairs and moves of
                              all their passes, seconds those of all the
                              groups), then one entry per refinement pass */
  uint32_t best_run;       /* which of the n_redo runs won */
  uint64_t rows;           /* rows of the source */
  uint64_t sample_rows;    /* rows trained on */
  dkm_storage storage;     /* MEMORY or DISK: what was used */
  int from_source;         /* 1 when training read the source directly */
  uint64_t spill_bytes;    /* bytes written to the spill file */
  double sample_seconds;   /* drawing (and spilling) the sample */
  double init_seconds;     /* initialisation, summed over runs */
  double train_seconds;    /* wall time of the whole dkm_train() call */
  uint32_t distinct_rows;  /* the number of distinct rows of the sample when it
                              is below k and training found them: every row on
                              its centroid, the other clusters empty (size 0;
                              they keep the centroid of the pass that left them
                              empty, which no row of the sample is nearest to,
                              and are no longer repaired); 0 when not known */
  dkm_balance balance;     /* of cluster_sizes */
  dkm_strategy strategy;   /* FLAT or HIERARCHICAL: what was used */
  /* Hierarchical only (0 for flat): */
  uint32_t coarse_k;      /* coarse centroids at the top level */
  uint32_t levels;        /* 2, or more where groups were trained
                             hierarchically in turn */
  uint32_t refine_passes; /* refinement passes run */
  double coarse_seconds;  /* training the coarse centroids */
  double route_seconds;   /* routing the sample rows to their groups */
  double groups_seconds;  /* training every group */
  double refine_seconds;  /* the refinement passes */
} dkm_result;

/** Trains k centroids on the rows of src (or on a seeded sample of
 *  max_points_per_centroid * k of them). On success *out receives a result
 *  the caller frees with dkm_result_free(). On failure *out is NULL, nothing
 *  is leaked and no temporary file remains. Errors: DKM_ERR_PARAM (bad
 *  params), DKM_ERR_TOO_FEW_ROWS (k > rows), DKM_ERR_DATA (a NaN or infinite
 *  value, or for L2 and inner product a squared norm above 2^125, about
 *  4.25e37, where float32 distances could overflow; the message names the
 *  row; given centroids are held to the same), DKM_ERR_NOMEM, DKM_ERR_IO,
 *  DKM_ERR_NOSPACE (spill), DKM_ERR_CANCELLED, and any error of the source. */
DKM_API dkm_status dkm_train(dkm_ctx *ctx, const dkm_params *params, dkm_source *src,
                             dkm_result **out);

/** Frees a result. NULL is harmless. */
DKM_API void dkm_result_free(dkm_result *result);

/* ------------------------------------------------------------------------ */
/* Assignment                                                                 */
/* ------------------------------------------------------------------------ */

/** Labels every row of src with the index of its nearest centroid (the
 *  lowest index wins ties) and, if distances is not NULL, the distance to it
 *  (as defined by params->metric). centroids is k * dim float32, borrowed.
 *  labels and distances have room for src->rows entries. Uses
 *  params->metric, n_threads, block_rows and progress; params->k is ignored.
 *  dim must equal src->dim (else DKM_ERR_MISMATCH). Rows and centroids
 *  are checked as dkm_train() checks rows (DKM_ERR_DATA). */
DKM_API dkm_status dkm_assign(dkm_ctx *ctx, const dkm_params *params, dkm_source *src,
                              const float *centroids, uint32_t k, uint32_t dim, int32_t *labels,
                              float *distances);

#ifdef __cplusplus
}
#endif

#endif /* DISKMEANS_H */
