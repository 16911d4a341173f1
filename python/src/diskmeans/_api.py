"""The functional API: train, assign, plan.

Parameter names and defaults are those of ``dkm_params`` (include/diskmeans.h)
and of the ``diskmeans`` command-line tool; the same settings give
byte-identical centroids to ``diskmeans train``.
"""

from __future__ import annotations

import mmap
import operator
import os
import re
import stat
import warnings
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import _errors
from ._errors import DiskmeansOSError, ParameterError

# The extension is imported last: it looks up diskmeans._errors.from_status.
from . import _ext  # noqa: E402

__all__ = [
    "train",
    "assign",
    "plan",
    "TrainResult",
    "Plan",
    "Progress",
    "IterStats",
    "Balance",
]

# Enum values of include/diskmeans.h, by the names the CLI uses.
INITS = {"random": 0, "kmeans++": 1, "greedy-kmeans++": 3}
_INIT_GIVEN = 2
METRICS = {"l2": 0, "cosine": 1, "ip": 2}
STORAGES = {"auto": 0, "memory": 1, "disk": 2}
STRATEGIES = {"auto": 0, "flat": 1, "hierarchical": 2}
# The file formats dkm_format_parse() names (not memory, spill, mixed).
FORMATS = {"auto": 0, "fvecs": 1, "bvecs": 2, "npy": 3, "idx": 4, "raw": 5, "hdf5": 9}
DTYPES = {"f32": 0, "f16": 1, "f64": 2, "u8": 3, "i8": 4}
_NUMPY_DTYPES = {
    np.dtype(np.float32): "f32",
    np.dtype(np.float16): "f16",
    np.dtype(np.float64): "f64",
    np.dtype(np.uint8): "u8",
    np.dtype(np.int8): "i8",
}
_PHASES = ("sample", "init", "iterate", "assign", "route", "refine")
_PARTS = ("whole", "coarse", "group")
_STORAGE_NAMES = {v: k for k, v in STORAGES.items()}
_STRATEGY_NAMES = {v: k for k, v in STRATEGIES.items()}

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
MAX_K = 2**31 - 1

PathType = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
#: What ``data`` may be: a 2-D array (float32, float16, float64, uint8 or
#: int8; any strides), a memory map of one, the path of a file, or a list
#: (or tuple) of those: one data set, their rows in order.
Data = Union[np.ndarray, PathType, Sequence[Any]]


class Progress(NamedTuple):
    """One progress report (``dkm_progress``), passed to ``progress=``.

    ``phase`` is "sample", "init", "iterate", "assign", "route" or "refine";
    ``part`` is "whole" (a flat run, or a hierarchical run's own passes),
    "coarse" or "group". ``done`` of ``total`` rows (or init steps) of the
    phase are done; ``objective`` is that of the last finished iteration, or
    NaN. ``iteration`` is 0-based (ITERATE only); ``run`` the 0-based index of
    the current run of ``n_redo``; ``group`` of ``n_groups`` is the group
    trained (part "group"); ``level`` is 0 at the top.
    """

    phase: str
    run: int
    iteration: int
    max_iter: int
    done: int
    total: int
    objective: float
    part: str
    level: int
    group: int
    n_groups: int


class IterStats(NamedTuple):
    """Statistics of one iteration (``dkm_iter_stats``)."""

    objective: float  #: sum of distances of the sample rows to their centroids
    seconds: float  #: wall time of the iteration
    repaired: int  #: empty clusters repaired by splitting
    rebalanced: int  #: balance=True: small clusters moved to split large ones
    imbalance: float  #: k * sum(size^2) / n^2; 1 is perfectly balanced


class Balance(NamedTuple):
    """How even the partitions are (``dkm_balance``, from cluster sizes)."""

    cv: float  #: coefficient of variation of the sizes
    largest_over_mean: float
    smallest: int
    largest: int
    empty: int  #: clusters of size 0


@dataclass(frozen=True)
class TrainResult:
    """The result of :func:`train` (``dkm_result``).

    ``centroids`` is a float32 array of k x dim; ``cluster_sizes`` (uint64,
    k) the rows per cluster in the last assignment of the sample;
    ``objective`` that of the last iteration of the best run; ``n_iter`` its
    iterations (hierarchical: 1 + refinement passes) and ``iterations`` their
    statistics; ``storage`` "memory" or "disk" as used; ``from_source`` True
    when training read the input directly; ``spill_bytes`` written to the
    spill file; ``sample_rows`` of ``rows`` trained on; ``timings`` the
    library's seconds: ``sample``, ``init`` (summed over runs), ``train`` (the
    whole call) and, hierarchical, ``coarse``, ``route``, ``groups``,
    ``refine``; ``distinct_rows`` the distinct sample rows when fewer than k
    (0 when not known).
    """

    centroids: np.ndarray
    cluster_sizes: np.ndarray
    objective: float
    n_iter: int
    iterations: list
    best_run: int
    rows: int
    sample_rows: int
    storage: str
    from_source: bool
    spill_bytes: int
    timings: dict
    distinct_rows: int
    balance: Balance
    strategy: str
    metric: str
    coarse_k: int = 0
    levels: int = 0
    refine_passes: int = 0

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])


@dataclass(frozen=True)
class Plan:
    """What training would do and need (``dkm_plan``), from :func:`plan`."""

    rows: int
    dim: int
    sample_rows: int  #: rows that training uses
    sample_bytes: int  #: sample_rows * dim * 4
    storage: str  #: "memory" or "disk": what training would choose
    from_source: bool  #: training would read the input directly, no copy
    spill_bytes: int  #: bytes written to tmp_dir in disk mode
    memory_mode_bytes: int  #: estimated peak RAM with storage="memory"
    disk_mode_bytes: int  #: estimated peak RAM with storage="disk"
    memory_limit: int  #: the budget "auto" compared against
    strategy: str  #: "flat" or "hierarchical"
    coarse_k: int  #: hierarchical: coarse centroids (0 flat)
    flops: float  #: estimated arithmetic of the run with this strategy
    flat_flops: float  #: ... and with flat Lloyd
    memory_limit_source: str  #: where memory_limit comes from


# --- parameters ---------------------------------------------------------------


def _uint(name: str, value: Any, hi: int, lo: int = 0) -> int:
    if isinstance(value, bool):
        raise ParameterError(f"{name} must be an integer, not a bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise ParameterError(
            f"{name} must be an integer, not {type(value).__name__} {value!r}"
        ) from None
    if v < lo or v > hi:
        raise ParameterError(f"{name} is {v}; it must be {lo} to {hi}")
    return v


def _choice(name: str, value: Any, choices: dict) -> int:
    if not isinstance(value, str) or value not in choices:
        raise ParameterError(
            f"{name}: unknown value {value!r} ({', '.join(choices)})"
        )
    return choices[value]


_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)


def parse_size(name: str, value: Any) -> int:
    """Bytes from an int, or a text with K, M, G or T (powers of 1024),
    optionally followed by B or iB, as the CLI reads --memory-limit."""
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m is None:
            raise ParameterError(
                f"{name}: {value!r} is not a size (bytes, or a number with K, M, G or T)"
            )
        scale = 1024 ** " KMGT".index((m.group(2) or " ").upper())
        v = float(m.group(1)) * scale
        if v > U64_MAX:
            raise ParameterError(f"{name}: {value!r} is too large")
        return int(v)
    return _uint(name, value, U64_MAX)


def _tmp_dir(value: Any) -> Optional[bytes]:
    # Like the CLI: the argument, else $TMPDIR, else the library's /tmp.
    if value is None:
        value = os.environ.get("TMPDIR") or None
        if value is None:
            return None
    try:
        return os.fsencode(value)
    except TypeError:
        raise ParameterError(
            f"tmp_dir must be a path, not {type(value).__name__}"
        ) from None


def _params(
    k: int = 0,
    max_iter: int = 25,
    tol: float = 1e-4,
    n_redo: int = 1,
    seed: int = 1234,
    init: int = 1,
    metric: str = "l2",
    max_points_per_centroid: int = 256,
    n_threads: int = 0,
    block_rows: int = 0,
    storage: str = "auto",
    memory_limit: Any = None,
    tmp_dir: Any = None,
    strategy: str = "auto",
    refine: int = 2,
    balance: bool = False,
) -> dict:
    """The dict the extension turns into a dkm_params (keys: field names)."""
    try:
        tol_f = float(tol)
    except (TypeError, ValueError):
        raise ParameterError(f"tol must be a number, not {tol!r}") from None
    if not isinstance(balance, (bool, np.bool_)):
        raise ParameterError(f"balance must be True or False, not {balance!r}")
    return {
        "k": _uint("k", k, MAX_K),
        "max_iter": _uint("max_iter", max_iter, U32_MAX),
        "tol": tol_f,
        "n_redo": _uint("n_redo", n_redo, U32_MAX),
        "seed": _uint("seed", seed, U64_MAX),
        "init": init,
        "metric": _choice("metric", metric, METRICS),
        "max_points_per_centroid": _uint(
            "max_points_per_centroid", max_points_per_centroid, U64_MAX
        ),
        "n_threads": _uint("n_threads", n_threads, U32_MAX),
        "block_rows": _uint("block_rows", block_rows, U64_MAX),
        "storage": _choice("storage", storage, STORAGES),
        "memory_limit": 0 if memory_limit is None else parse_size("memory_limit", memory_limit),
        "tmp_dir": _tmp_dir(tmp_dir),
        "strategy": _choice("strategy", strategy, STRATEGIES),
        "refine": _uint("refine", refine, U32_MAX),
        "balance": bool(balance),
    }


def _init(init: Any, k: Any) -> Tuple[int, Optional[np.ndarray]]:
    """The init method, and the initial centroids as float32 k x dim."""
    if isinstance(init, str):
        if init not in INITS:
            raise ParameterError(
                f"init: unknown method {init!r} (random, kmeans++, greedy-kmeans++, "
                f"or an array of k rows)"
            )
        return INITS[init], None
    try:
        arr = np.asarray(init)
    except Exception:
        raise ParameterError(
            f"init must be a method name or an array of k rows, not {type(init).__name__}"
        ) from None
    if arr.ndim != 2 or arr.dtype.kind not in "fiu":
        raise ParameterError(
            f"init must be a 2-D numeric array of k rows (got {arr.ndim}-D {arr.dtype})"
        )
    return _INIT_GIVEN, np.ascontiguousarray(arr, dtype=np.float32)


# --- inputs ---------------------------------------------------------------------


def _mapping_mode(arr: np.ndarray) -> Optional[str]:
    """The mode of the np.memmap whose pages hold arr, if any ("r", "r+",
    "w+" or "c"); None for memory that is not a numpy memory map."""
    b: Any = arr
    while b is not None:
        if isinstance(b, np.memmap):
            return getattr(b, "mode", None)
        if isinstance(b, mmap.mmap):
            return None  # access mode unknown: do not release its pages
        b = getattr(b, "base", None)
    return None


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, bytes, os.PathLike))


def _file_options(format: str, dim: Optional[int], dtype: Optional[str],
                  dataset: Optional[str] = None) -> Tuple[int, int, int, Optional[str]]:
    fmt = _choice("format", format, FORMATS)
    if dataset is not None:
        # As the CLI checks --dataset; the library then refuses it for a
        # file that is not HDF5, naming the file.
        if not isinstance(dataset, str):
            raise ParameterError(
                f"dataset must be the path of a dataset in an HDF5 file (a str), "
                f"not {type(dataset).__name__}"
            )
        if dataset == "" or "\0" in dataset:
            raise ParameterError(f"dataset: {dataset!r} is not a dataset name")
        if fmt not in (FORMATS["auto"], FORMATS["hdf5"]) or dim is not None:
            raise ParameterError(
                f"dataset ({dataset!r}) names a dataset of an HDF5 file; it does not go "
                f"with format={format!r}" + (f", dim={dim!r}" if dim is not None else "")
            )
    raw_dim = 0
    if dim is not None:
        raw_dim = _uint("dim", dim, U32_MAX, lo=1)
        if fmt == FORMATS["auto"]:
            fmt = FORMATS["raw"]  # as the CLI: --dim implies --format raw
    raw_dtype = 0 if dtype is None else _choice("dtype", dtype, DTYPES)
    return fmt, raw_dim, raw_dtype, dataset


def _array_spec(data: Any, name: str) -> tuple:
    if isinstance(data, np.ndarray):
        arr = data
        if arr.dtype not in _NUMPY_DTYPES:
            raise ParameterError(
                f"{name}: dtype {arr.dtype} is not supported (float32, float16, float64, "
                f"uint8, int8, native byte order): convert it, e.g. with .astype(np.float32)"
            )
    else:
        # Not an array yet (a list, ...): it must be converted anyway.
        try:
            arr = np.asarray(data)
        except Exception as e:
            raise ParameterError(f"{name}: not an array: {e}") from None
        if arr.dtype.kind in "biu" and arr.dtype not in _NUMPY_DTYPES:
            arr = arr.astype(np.float64)
        if arr.dtype not in _NUMPY_DTYPES:
            raise ParameterError(
                f"{name}: values of type {arr.dtype} are not supported (numbers are)"
            )
    if arr.ndim != 2:
        raise ParameterError(f"{name}: must be 2-D (rows x dim), not {arr.ndim}-D")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ParameterError(
            f"{name}: has shape {arr.shape}; it needs at least one row and one column"
        )
    release = _mapping_mode(arr) in ("r", "r+", "w+")
    return ("array", arr, name, release)


def _input_spec(data: Any, name: str, opts: Tuple[int, int, int, Optional[str]]) -> tuple:
    """One input of a call, as the extension builds a dkm_source of it."""
    if _is_path(data):
        path = os.fsencode(data)
        if not path:
            raise ParameterError(f"{name}: an empty path")
        return ("file", path, name, *opts)
    return _array_spec(data, name)


def _input_specs(data: Any, name: str, format: str = "auto", dim: Optional[int] = None,
                 dtype: Optional[str] = None, dataset: Optional[str] = None) -> list:
    """The inputs of a call, one spec each. A list (or tuple) holding a path
    or an array of 2 or more dimensions is several inputs, taken as one data
    set, their rows in order (as the CLI's several INPUT files): each item
    gets its own spec and source, named data[i], and the extension joins them
    (build_sources in _ext.c). Any other list is rows (a list of lists)."""
    opts = _file_options(format, dim, dtype, dataset)
    if isinstance(data, (list, tuple)):
        if len(data) == 0:
            raise ParameterError(f"{name}: an empty list: no input, no rows")
        if any(_is_path(x) or (isinstance(x, np.ndarray) and x.ndim >= 2) for x in data):
            return [_input_spec(x, f"{name}[{i}]", opts) for i, x in enumerate(data)]
    return [_input_spec(data, name, opts)]


def _paths(specs: list) -> list:
    return [os.fsdecode(s[1]) for s in specs if s[0] == "file"]


def _name_file(exc: DiskmeansOSError, specs: list, checkpoint: Optional[bytes] = None) -> None:
    """Sets filename to the input path the message starts with, if any (a
    path may itself contain ': '), or to the checkpoint's path when the
    message is about it ("checkpoint PATH: ...")."""
    msg = str(exc)
    for p in sorted(_paths(specs), key=len, reverse=True):
        if msg.startswith(p + ": "):
            exc.filename = p
            return
    if checkpoint is not None:
        c = os.fsdecode(checkpoint)
        if msg.startswith(f"checkpoint {c}: "):
            exc.filename = c


# --- checkpoints -------------------------------------------------------------------


def _checkpoint_path(checkpoint: Any, resume: Any, specs: list) -> Optional[bytes]:
    """The checkpoint path as bytes (None: no checkpoint), refused as the CLI
    refuses --checkpoint: a folder, or a file that is one of the inputs."""
    if not isinstance(resume, (bool, np.bool_)):
        raise ParameterError(f"resume must be True or False, not {resume!r}")
    if checkpoint is None:
        if resume:
            raise ParameterError("resume=True needs checkpoint, the file to resume from")
        return None
    if not _is_path(checkpoint):
        raise ParameterError(f"checkpoint must be a path, not {type(checkpoint).__name__}")
    path = os.fsencode(checkpoint)
    if not path or b"\0" in path:
        raise ParameterError(f"checkpoint: {checkpoint!r} is not a file name")
    try:
        st = os.stat(path)
    except OSError:
        return path  # not there yet: it cannot be an input
    if stat.S_ISDIR(st.st_mode):
        raise ParameterError(f"checkpoint {os.fsdecode(path)}: is a folder, not a file")
    for s in specs:
        if s[0] != "file":
            continue
        try:
            same = os.path.samefile(path, s[1])
        except OSError:
            continue  # the input's own error comes from the library
        if same:
            raise ParameterError(
                f"checkpoint {os.fsdecode(path)} and {s[2]} {os.fsdecode(s[1])} are the same "
                f"file: the checkpoint must not replace an input"
            )
    return path


def _input_identity(specs: list) -> bytes:
    """The lines the CLI adds to a checkpoint's identity (input_identity in
    programs/cmd_train.c), byte for byte, so that a checkpoint of
    ``diskmeans train`` and one of :func:`train` on the same files are
    interchangeable: for each file, its full path and, for a regular file,
    its size and modification time; keys "input", "input size", "input
    mtime" for the first input, "input 2", ... for the next. An array adds
    nothing (the library's CRC32 of the sample rows covers its contents)."""
    out = b""
    for i, s in enumerate(specs):
        if s[0] != "file":
            continue
        key = b"input" if i == 0 else b"input %d" % (i + 1)
        path = s[1]
        try:
            full = os.path.realpath(path, strict=True)
        except OSError:
            full = path  # as the CLI when realpath() fails: the path as given
        out += key + b"=" + full + b"\n"
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            sec, nsec = divmod(st.st_mtime_ns, 10**9)
            out += b"%s size=%d\n%s mtime=%d.%09d\n" % (key, st.st_size, key, sec, nsec)
    return out


def _remove_checkpoint(path: bytes) -> None:
    """As the CLI once its outputs are written: the checkpoint has served;
    so has a FILE.tmp an earlier kill may have left."""
    for p in (path, path + b".tmp"):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
        except OSError as e:
            warnings.warn(f"checkpoint {os.fsdecode(p)}: cannot remove it: {e.strerror}",
                          RuntimeWarning, stacklevel=3)


# --- progress ---------------------------------------------------------------------


class _Reporter:
    """The progress callable handed to the extension: builds a Progress and
    calls the user's callable and the verbose display; close() ends the
    display whatever happened."""

    def __init__(self, progress: Optional[Callable[[Progress], Any]], verbose: bool, what: str):
        self.targets: list = []
        self.display: Any = None
        if progress is not None:
            if not callable(progress):
                raise ParameterError(
                    f"progress must be callable, not {type(progress).__name__}"
                )
            self.targets.append(progress)
        if verbose:
            from ._progress import make_display

            self.display = make_display(what)
            self.targets.append(self.display)

    def __call__(self, phase, run, iteration, max_iter, done, total, objective, part, level,
                 group, n_groups) -> None:
        p = Progress(_PHASES[phase] if phase < len(_PHASES) else str(phase), run, iteration,
                     max_iter, done, total, objective,
                     _PARTS[part] if part < len(_PARTS) else str(part), level, group, n_groups)
        for t in self.targets:
            t(p)

    def close(self) -> None:
        if self.display is not None:
            self.display.close()


# --- the calls -----------------------------------------------------------------------


def train(
    data: Data,
    k: int,
    *,
    max_iter: int = 25,
    tol: float = 1e-4,
    n_redo: int = 1,
    seed: int = 1234,
    init: Union[str, np.ndarray] = "kmeans++",
    metric: str = "l2",
    max_points_per_centroid: int = 256,
    n_threads: int = 0,
    block_rows: int = 0,
    storage: str = "auto",
    memory_limit: Union[int, str, None] = None,
    tmp_dir: Optional[PathType] = None,
    strategy: str = "auto",
    refine: int = 2,
    balance: bool = False,
    progress: Optional[Callable[[Progress], Any]] = None,
    verbose: bool = False,
    format: str = "auto",
    dim: Optional[int] = None,
    dtype: Optional[str] = None,
    dataset: Optional[str] = None,
    checkpoint: Optional[PathType] = None,
    resume: bool = False,
) -> TrainResult:
    """Trains k centroids on the rows of ``data`` (``dkm_train``).

    ``data`` is a 2-D array of float32, float16, float64, uint8 or int8 (read
    in place: zero copy when C-contiguous, row by row through the strides
    otherwise; every type is converted to float32 as the library converts a
    file), a ``np.memmap`` or ``np.load(..., mmap_mode="r")`` (streamed: the
    pages read are released, so a file larger than RAM trains with bounded
    memory), the path of a file (.npy, .fvecs, .bvecs, IDX, gzip of those,
    HDF5, raw with ``dim`` and ``dtype``; ``format`` forces one: "auto",
    "fvecs", "bvecs", "npy", "idx", "raw" or "hdf5"; ``dataset`` is the path
    of the dataset in an HDF5 file, default "train", else its only 2-D
    dataset), or a list (or tuple) of those: one data set, the rows of each
    item in order, exactly as ``diskmeans train`` takes several INPUT files
    (items may mix paths, formats and dtypes but must agree on dim;
    ``format``, ``dim``, ``dtype`` and ``dataset`` apply to every file).

    Training uses a seeded sample of at most ``max_points_per_centroid * k``
    rows (0: all rows), drawn in one pass. Parameters, as ``dkm_params`` and
    ``diskmeans train``:

    - ``max_iter``: Lloyd iterations at most (>= 1).
    - ``tol``: stop when ``|obj_prev - obj| <= tol * |obj_prev|``; 0 runs
      every iteration.
    - ``n_redo``: runs with different seeds; the best objective wins.
    - ``seed``: the random seed (0 to 2**64 - 1).
    - ``init``: "kmeans++" (each centre a row drawn with probability
      proportional to its squared distance to the nearest centre so far;
      about one iteration), "greedy-kmeans++" (as scikit-learn: 2 + ln k
      candidates per step; about 2 + ln k iterations), "random" (k distinct
      rows), or an array of k x dim initial centroids.
    - ``metric``: "l2" (squared Euclidean), "cosine" (spherical k-means,
      distance 1 - cos) or "ip" (largest inner product, distance -x.c,
      centroids plain means).
    - ``n_threads``: worker threads; 0 = every core the process may use.
    - ``block_rows``: rows per block; 0 = automatic; never changes results.
    - ``storage``: "auto" (memory when the sample fits ``memory_limit``),
      "memory" or "disk" (the sample is spilled to an unnamed file in
      ``tmp_dir`` and streamed).
    - ``memory_limit``: bytes (or "512M", "4G") the sample may take in RAM
      with storage="auto"; None = half of RAM (or of the cgroup limit).
    - ``tmp_dir``: folder of the spill file; None = $TMPDIR, else /tmp.
    - ``strategy``: "auto" (flat below k = 4096, else hierarchical), "flat"
      or "hierarchical"; ``refine``: hierarchical refinement passes;
      ``balance``: even out the cluster sizes.
    - ``progress``: called with a :class:`Progress` a few times a second at
      most per phase, on the calling thread; an exception it raises cancels
      training and propagates unchanged. ``verbose=True`` shows a tqdm bar
      (text lines on stderr without tqdm).
    - ``checkpoint``: a file where the training state is saved after the
      initialisation and every iteration (and each stage of hierarchical
      training), replaced atomically, so that a run killed at any instant
      (a crash, an OOM kill, Ctrl-C, an exception) can go on with
      ``resume=True``. An existing file is replaced unless resuming. Like
      ``diskmeans train --checkpoint``, :func:`train` removes it once it
      returns a result; a call that fails keeps it. It may not be one of
      the inputs (:class:`ParameterError`).
    - ``resume``: go on from ``checkpoint``, which must exist; the result
      (centroids, sizes, statistics; timings aside) is that of a run never
      interrupted. ``n_threads``, ``block_rows``, ``storage``,
      ``memory_limit`` and ``tmp_dir`` may differ; anything else that
      changes the result may not: the parameters, and the input (each
      file's full path, size and modification time, in order, as the CLI
      records them, so a checkpoint of ``diskmeans train`` on the same files
      resumes here and the other way round; and the sample's rows). One that
      differs raises :class:`ParameterError` naming it ("checkpoint c.ckpt:
      seed differs (checkpoint 1234, this run 5)"); a truncated or damaged
      checkpoint :class:`FormatError`; a missing one
      :class:`DiskmeansFileNotFoundError`.

    The GIL is released while the library works; Ctrl-C cancels within about
    a second (KeyboardInterrupt), leaving no temporary file. Errors:
    :class:`ParameterError`, :class:`DataError` (a NaN or infinite value
    names its row), :class:`TooFewRowsError`, :class:`FormatError`,
    OSError subclasses (:class:`DiskmeansFileNotFoundError`, ...,
    :class:`NoSpaceError`), :class:`DiskmeansMemoryError`.
    """
    init_method, init_centroids = _init(init, k)
    params = _params(k, max_iter, tol, n_redo, seed, init_method, metric,
                     max_points_per_centroid, n_threads, block_rows, storage, memory_limit,
                     tmp_dir, strategy, refine, balance)
    _ext.check_params(params)
    specs = _input_specs(data, "data", format, dim, dtype, dataset)
    ckpt = _checkpoint_path(checkpoint, resume, specs)
    if ckpt is not None:
        params.update(checkpoint=ckpt, resume=bool(resume),
                      checkpoint_identity=_input_identity(specs) or None)
    report = _Reporter(progress, verbose, "train")
    try:
        r = _ext.train(specs, params, init_centroids, report if report.targets else None)
    except DiskmeansOSError as e:
        _name_file(e, specs, ckpt)
        raise
    finally:
        report.close()
    if ckpt is not None:
        _remove_checkpoint(ckpt)
    kk, d = r["k"], r["dim"]
    centroids = np.frombuffer(r["centroids"], dtype=np.float32).reshape(kk, d)
    sizes = np.frombuffer(r["cluster_sizes"], dtype=np.uint64)
    timings = {"sample": r["sample_seconds"], "init": r["init_seconds"],
               "train": r["train_seconds"]}
    if r["strategy"] == STRATEGIES["hierarchical"]:
        timings.update(coarse=r["coarse_seconds"], route=r["route_seconds"],
                       groups=r["groups_seconds"], refine=r["refine_seconds"])
    return TrainResult(
        centroids=centroids,
        cluster_sizes=sizes,
        objective=r["objective"],
        n_iter=r["n_iter"],
        iterations=[IterStats(*t) for t in r["iterations"]],
        best_run=r["best_run"],
        rows=r["rows"],
        sample_rows=r["sample_rows"],
        storage=_STORAGE_NAMES[r["storage"]],
        from_source=r["from_source"],
        spill_bytes=r["spill_bytes"],
        timings=timings,
        distinct_rows=r["distinct_rows"],
        balance=Balance(*r["balance"]),
        strategy=_STRATEGY_NAMES[r["strategy"]],
        metric=metric,
        coarse_k=r["coarse_k"],
        levels=r["levels"],
        refine_passes=r["refine_passes"],
    )


def assign(
    data: Data,
    centroids: Union[np.ndarray, TrainResult],
    *,
    metric: Optional[str] = None,
    n_threads: int = 0,
    block_rows: int = 0,
    progress: Optional[Callable[[Progress], Any]] = None,
    verbose: bool = False,
    format: str = "auto",
    dim: Optional[int] = None,
    dtype: Optional[str] = None,
    dataset: Optional[str] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Labels every row of ``data`` with its nearest centroid (``dkm_assign``).

    Returns ``(labels, distances)``: int32 and float32 arrays of one entry
    per row; the lowest index wins ties; distances as defined by ``metric``
    (squared Euclidean for "l2"). ``centroids`` is a k x dim array (converted
    to float32 if needed: it is small) or a :class:`TrainResult`, whose
    metric is then the default; otherwise ``metric`` defaults to "l2".
    ``data`` is read as in :func:`train` (``format``, ``dim``, ``dtype``,
    ``dataset`` too); a list of inputs is one data set and its labels come in
    its rows' order. Rows and centroids are checked as training checks rows
    (:class:`DataError`), and a dimension that differs from the centroids'
    raises :class:`DimensionMismatchError`.
    """
    if isinstance(centroids, TrainResult):
        if metric is None:
            metric = centroids.metric
        centroids = centroids.centroids
    if metric is None:
        metric = "l2"
    try:
        c = np.asarray(centroids)
    except Exception:
        raise ParameterError("centroids must be a 2-D array of k rows") from None
    if c.ndim != 2 or c.dtype.kind not in "fiu":
        raise ParameterError(
            f"centroids must be a 2-D numeric array of k rows (got {c.ndim}-D {c.dtype})"
        )
    c = np.ascontiguousarray(c, dtype=np.float32)
    params = _params(k=max(1, min(c.shape[0], MAX_K)), metric=metric, n_threads=n_threads,
                     block_rows=block_rows)
    _ext.check_params(params)
    specs = _input_specs(data, "data", format, dim, dtype, dataset)
    report = _Reporter(progress, verbose, "assign")
    try:
        labels, dists = _ext.assign(specs, c, params, report if report.targets else None)
    except DiskmeansOSError as e:
        _name_file(e, specs)
        raise
    finally:
        report.close()
    return np.frombuffer(labels, dtype=np.int32), np.frombuffer(dists, dtype=np.float32)


def plan(data: Data, k: int, **params: Any) -> Plan:
    """Says, before anything runs, how :func:`train` with these parameters
    would store the sample and what it would cost (``dkm_plan_training``).
    Takes the parameters of :func:`train` (progress and verbose are
    ignored, and so are checkpoint and resume: they do not change the plan)."""
    for key in ("progress", "verbose", "checkpoint", "resume"):
        params.pop(key, None)
    file_opts = {key: params.pop(key) for key in ("format", "dim", "dtype", "dataset")
                 if key in params}
    init = params.pop("init", "kmeans++")
    init_method, init_centroids = _init(init, k)
    try:
        p = _params(k, init=init_method, **params)
    except TypeError as e:
        raise ParameterError(f"plan: {e}") from None
    _ext.check_params(p)
    specs = _input_specs(data, "data", **file_opts)
    try:
        d = _ext.plan(specs, p, init_centroids)
    except DiskmeansOSError as e:
        _name_file(e, specs)
        raise
    d["storage"] = _STORAGE_NAMES[d["storage"]]
    d["strategy"] = _STRATEGY_NAMES[d["strategy"]]
    return Plan(**d)
