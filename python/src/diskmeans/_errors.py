"""The exceptions of diskmeans: one per library status, each also a built-in.

Every exception raised for a failure of the library derives from
:class:`DiskmeansError` and from the built-in exception a Python user would
catch for it, so ``except ValueError`` and ``except OSError`` work as usual:

=====================  ==========================================  ==========================
library status         exception                                   also a
=====================  ==========================================  ==========================
DKM_ERR_PARAM          :class:`ParameterError`                     ``ValueError``
DKM_ERR_DATA           :class:`DataError` (names the row)          ``ValueError``
DKM_ERR_FORMAT         :class:`FormatError`                        ``ValueError``
DKM_ERR_MISMATCH       :class:`DimensionMismatchError`             ``ValueError``
DKM_ERR_TOO_FEW_ROWS   :class:`TooFewRowsError`                    ``ValueError``
DKM_ERR_IO             :class:`DiskmeansOSError` (or a subclass    ``OSError`` (``FileNotFoundError``,
                       by errno)                                   ``PermissionError``, ...)
DKM_ERR_NOSPACE        :class:`NoSpaceError`                       ``OSError`` (errno ENOSPC)
DKM_ERR_NOMEM          :class:`DiskmeansMemoryError`               ``MemoryError``
DKM_ERR_CANCELLED      :class:`CancelledError`                     (only if nothing else
                                                                   was raised)
DKM_ERR_INTERNAL       :class:`InternalError`                      ``RuntimeError``
=====================  ==========================================  ==========================

The message is the library's own (``dkm_ctx_errmsg``), e.g.
``"data: row 14 has a NaN in column 1"``. An ``OSError`` carries ``errno``
and ``filename`` (the file or folder the message names).

An exception raised by a ``progress`` callable, and ``KeyboardInterrupt``
from Ctrl-C, are not wrapped: they propagate unchanged.
"""

from __future__ import annotations

import errno as _errno
import os as _os

__all__ = [
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
]

# The library's status codes (DKM_STATUS_MAP in include/diskmeans.h).
OK = 0
ERR_PARAM = -1
ERR_NOMEM = -2
ERR_IO = -3
ERR_FORMAT = -4
ERR_DATA = -5
ERR_MISMATCH = -6
ERR_NOSPACE = -7
ERR_CANCELLED = -8
ERR_TOO_FEW_ROWS = -9
ERR_INTERNAL = -10


class DiskmeansError(Exception):
    """Base class of every error the diskmeans library reports."""

    #: The library's status code (a negative ``dkm_status``).
    status: int = ERR_INTERNAL


class ParameterError(DiskmeansError, ValueError):
    """A parameter is out of range or of the wrong kind (DKM_ERR_PARAM); the
    message names it."""

    status = ERR_PARAM


class DataError(DiskmeansError, ValueError):
    """An invalid value in the data (DKM_ERR_DATA): NaN, infinite, or a
    squared norm above 2**125 for L2 and inner product; the message names the
    row and column."""

    status = ERR_DATA


class FormatError(DataError):
    """A malformed or unsupported input file (DKM_ERR_FORMAT)."""

    status = ERR_FORMAT


class DimensionMismatchError(DataError):
    """Rows and centroids of different dimensions (DKM_ERR_MISMATCH)."""

    status = ERR_MISMATCH


class TooFewRowsError(DataError):
    """Fewer rows than clusters (DKM_ERR_TOO_FEW_ROWS)."""

    status = ERR_TOO_FEW_ROWS


class DiskmeansOSError(DiskmeansError, OSError):
    """An input/output error (DKM_ERR_IO). ``errno`` and ``filename`` are set
    when the message names them; ``str()`` is the library's message."""

    status = ERR_IO

    def __str__(self) -> str:
        return str(self.strerror if self.strerror is not None else self.args[0])


class DiskmeansFileNotFoundError(DiskmeansOSError, FileNotFoundError):
    """A missing file or folder (ENOENT)."""


class DiskmeansPermissionError(DiskmeansOSError, PermissionError):
    """No permission (EACCES, EPERM)."""


class DiskmeansIsADirectoryError(DiskmeansOSError, IsADirectoryError):
    """A folder where a file was expected (EISDIR)."""


class DiskmeansNotADirectoryError(DiskmeansOSError, NotADirectoryError):
    """A file where a folder was expected (ENOTDIR)."""


class NoSpaceError(DiskmeansOSError):
    """Not enough space for the spill file (DKM_ERR_NOSPACE, errno ENOSPC)."""

    status = ERR_NOSPACE


class DiskmeansMemoryError(DiskmeansError, MemoryError):
    """Out of memory (DKM_ERR_NOMEM)."""

    status = ERR_NOMEM


class CancelledError(DiskmeansError):
    """The progress callback cancelled the call (DKM_ERR_CANCELLED). Raised
    only when no Python exception explains it: an exception raised by the
    callback, or ``KeyboardInterrupt``, propagates itself instead."""

    status = ERR_CANCELLED


class InternalError(DiskmeansError, RuntimeError):
    """A bug in diskmeans (DKM_ERR_INTERNAL)."""

    status = ERR_INTERNAL


_BY_STATUS = {
    ERR_PARAM: ParameterError,
    ERR_NOMEM: DiskmeansMemoryError,
    ERR_IO: DiskmeansOSError,
    ERR_FORMAT: FormatError,
    ERR_DATA: DataError,
    ERR_MISMATCH: DimensionMismatchError,
    ERR_NOSPACE: NoSpaceError,
    ERR_CANCELLED: CancelledError,
    ERR_TOO_FEW_ROWS: TooFewRowsError,
    ERR_INTERNAL: InternalError,
}

_BY_ERRNO = {
    _errno.ENOENT: DiskmeansFileNotFoundError,
    _errno.EACCES: DiskmeansPermissionError,
    _errno.EPERM: DiskmeansPermissionError,
    _errno.EISDIR: DiskmeansIsADirectoryError,
    _errno.ENOTDIR: DiskmeansNotADirectoryError,
}

# The texts of strerror(), longest first, so that "No space left on device"
# is found before any shorter text it ends with.
_ERRNO_TEXTS = sorted(
    ((_os.strerror(e), e) for e in range(1, 134) if not _os.strerror(e).startswith("Unknown")),
    key=lambda t: -len(t[0]),
)


_SPILL = "spill directory "


def _parse_os_message(message: str) -> tuple[int | None, str | None]:
    """The errno and file of a library I/O message. The library writes them
    as "NAME: ...: strerror(errno)" for files (file.c) and "spill directory
    DIR: ...: strerror(errno)" for the spill file (spill.c)."""
    code = None
    for text, e in _ERRNO_TEXTS:
        if message.endswith(text):
            code = e
            break
    if code is None and message.endswith(": not a directory"):
        code = _errno.ENOTDIR
    rest = message[len(_SPILL):] if message.startswith(_SPILL) else message
    filename = rest.split(": ", 1)[0] if ": " in rest else None
    return code, filename


def os_error(code: int | None, message: str, filename: str | None,
             cls: type[DiskmeansOSError] | None = None) -> DiskmeansOSError:
    """An OSError of the class for errno ``code`` carrying ``message``."""
    if cls is None:
        cls = _BY_ERRNO.get(code, DiskmeansOSError) if code is not None else DiskmeansOSError
    exc = cls(code, message) if code is not None else cls(message)
    if code is None:
        exc.strerror = message
    exc.filename = filename
    return exc


def from_status(status: int, message: str) -> DiskmeansError:
    """The exception for a failed library status (called by the extension)."""
    if status == ERR_IO:
        code, filename = _parse_os_message(message)
        return os_error(code, message, filename)
    if status == ERR_NOSPACE:
        _, filename = _parse_os_message(message)
        return os_error(_errno.ENOSPC, message, filename, NoSpaceError)
    cls = _BY_STATUS.get(status, InternalError)
    return cls(message)
