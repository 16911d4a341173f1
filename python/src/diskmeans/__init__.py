"""diskmeans: exact, deterministic k-means for vector indexes, in memory or
streamed from disk.

The functional API mirrors the C library (include/diskmeans.h) and the
``diskmeans`` command-line tool: :func:`train`, :func:`assign` and
:func:`plan` take the same parameters with the same defaults, and the same
settings give byte-identical centroids. :class:`KMeans` is a scikit-learn
estimator over them (scikit-learn is needed only for it).
"""

from ._errors import (
    CancelledError,
    DataError,
    DimensionMismatchError,
    DiskmeansError,
    DiskmeansFileNotFoundError,
    DiskmeansIsADirectoryError,
    DiskmeansMemoryError,
    DiskmeansNotADirectoryError,
    DiskmeansOSError,
    DiskmeansPermissionError,
    FormatError,
    InternalError,
    NoSpaceError,
    ParameterError,
    TooFewRowsError,
)
from ._api import Balance, IterStats, Plan, Progress, TrainResult, assign, plan, train
from ._ext import library_version

__version__ = library_version

__all__ = [
    "train",
    "assign",
    "plan",
    "KMeans",
    "TrainResult",
    "Plan",
    "Progress",
    "IterStats",
    "Balance",
    "DiskmeansError",
    "ParameterError",
    "DataError",
    "FormatError",
    "DimensionMismatchError",
    "TooFewRowsError",
    "DiskmeansOSError",
    "DiskmeansFileNotFoundError",
    "DiskmeansPermissionError",
    "DiskmeansIsADirectoryError",
    "DiskmeansNotADirectoryError",
    "NoSpaceError",
    "DiskmeansMemoryError",
    "CancelledError",
    "InternalError",
    "library_version",
]


def __getattr__(name: str):
    # KMeans needs scikit-learn: import it only when asked for.
    if name == "KMeans":
        from ._estimator import KMeans

        return KMeans
    raise AttributeError(f"module 'diskmeans' has no attribute {name!r}")
