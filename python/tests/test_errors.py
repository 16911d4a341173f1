"""Every bad parameter and input gives one clear exception of the right
class, naming the parameter or the row."""

import errno
import os

import numpy as np
import pytest

import diskmeans
from diskmeans import _errors

X = np.random.default_rng(0).standard_normal((100, 4)).astype(np.float32)

BAD_PARAMETERS = [
    # (k, keyword arguments, a text the message must hold)
    (0, {}, "k must be at least 1"),
    (-1, {}, "k is -1"),
    (2**31, {}, "k is 2147483648"),
    (1.5, {}, "k must be an integer"),
    (True, {}, "k must be an integer, not a bool"),
    (3, {"max_iter": 0}, "max_iter must be at least 1"),
    (3, {"max_iter": 2**32}, "max_iter is 4294967296"),
    (3, {"tol": -1}, "tol is -1"),
    (3, {"tol": float("nan")}, "tol is nan"),
    (3, {"tol": "a"}, "tol must be a number"),
    (3, {"n_redo": 0}, "n_redo must be at least 1"),
    (3, {"seed": -1}, "seed is -1"),
    (3, {"seed": 2**64}, "seed is 18446744073709551616"),
    (3, {"init": "kmeans"}, "init: unknown method 'kmeans'"),
    (3, {"init": np.zeros((2, 4))}, "init: has 2 rows, but k is 3"),
    (3, {"init": np.zeros((3, 5))}, "dimension 5, but data has dimension 4"),
    (3, {"init": np.zeros(3)}, "init must be a 2-D numeric array"),
    (3, {"metric": "L2"}, "metric: unknown value 'L2'"),
    (3, {"storage": "ssd"}, "storage: unknown value 'ssd'"),
    (3, {"strategy": "tree"}, "strategy: unknown value 'tree'"),
    (3, {"memory_limit": "lots"}, "memory_limit: 'lots' is not a size"),
    (3, {"memory_limit": -5}, "memory_limit is -5"),
    (3, {"n_threads": -1}, "n_threads is -1"),
    (3, {"block_rows": -1}, "block_rows is -1"),
    (3, {"refine": -1}, "refine is -1"),
    (3, {"balance": "yes"}, "balance must be True or False"),
    (3, {"max_points_per_centroid": -1}, "max_points_per_centroid is -1"),
    (3, {"progress": 5}, "progress must be callable"),
    (3, {"tmp_dir": 5}, "tmp_dir must be a path"),
    (3, {"format": "csv"}, "format: unknown value 'csv'"),
    (3, {"dim": 0}, "dim is 0"),
    (3, {"dtype": "f128"}, "dtype: unknown value 'f128'"),
]


@pytest.mark.parametrize("k,kwargs,text", BAD_PARAMETERS, ids=lambda v: repr(v)[:40])
def test_every_bad_parameter_gives_a_parameter_error_naming_it(k, kwargs, text):
    with pytest.raises(diskmeans.ParameterError) as info:
        diskmeans.train(X, k, **kwargs)
    assert text in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, diskmeans.DiskmeansError)


def test_plan_checks_the_same_parameters():
    with pytest.raises(diskmeans.ParameterError, match="storage: unknown value"):
        diskmeans.plan(X, 3, storage="ssd")
    with pytest.raises(diskmeans.ParameterError, match="unexpected keyword"):
        diskmeans.plan(X, 3, iters=3)


BAD_DATA = [
    (np.zeros(3, np.float32), "must be 2-D"),
    (np.zeros((2, 3, 4), np.float32), "not 3-D"),
    (np.zeros((0, 4), np.float32), "has shape (0, 4)"),
    (np.zeros((5, 0), np.float32), "has shape (5, 0)"),
    (np.zeros((5, 4), np.int32), "dtype int32 is not supported"),
    (np.zeros((5, 4), np.complex64), "dtype complex64 is not supported"),
    (np.zeros((5, 4), ">f4"), "dtype >f4 is not supported"),
    (np.array([["a"]]), "is not supported"),
    ("", "an empty path"),
]


@pytest.mark.parametrize("data,text", BAD_DATA, ids=lambda v: repr(v)[:30])
def test_bad_data_gives_a_parameter_error(data, text):
    with pytest.raises(diskmeans.ParameterError) as info:
        diskmeans.train(data, 1)
    assert text in str(info.value)


@pytest.mark.parametrize("value,column", [(np.nan, "NaN"), (np.inf, "infinite")])
def test_a_bad_value_names_its_row(value, column):
    x = X.copy()
    x[37, 2] = value
    with pytest.raises(diskmeans.DataError) as info:
        diskmeans.train(x, 3)
    assert "data: row 37" in str(info.value)
    assert column in str(info.value) or "inf" in str(info.value)
    with pytest.raises(diskmeans.DataError, match="row 37"):
        diskmeans.assign(x, X[:3])


def test_fewer_rows_than_clusters():
    with pytest.raises(diskmeans.TooFewRowsError, match="k is 200 but there are only 100 rows"):
        diskmeans.train(X, 200)


def test_a_dimension_mismatch_in_assign():
    with pytest.raises(diskmeans.DimensionMismatchError):
        diskmeans.assign(X, np.zeros((3, 5), np.float32))


def test_a_missing_file_is_a_file_not_found_error_with_errno_and_filename(tmp_path):
    path = tmp_path / "missing.npy"
    with pytest.raises(FileNotFoundError) as info:
        diskmeans.train(path, 3)
    e = info.value
    assert isinstance(e, diskmeans.DiskmeansOSError)
    assert e.errno == errno.ENOENT
    assert e.filename == str(path)
    assert str(e) == f"{path}: No such file or directory"


def test_a_folder_is_an_is_a_directory_error(tmp_path):
    with pytest.raises(IsADirectoryError) as info:
        diskmeans.train(tmp_path, 3)
    assert info.value.errno == errno.EISDIR
    assert info.value.filename == str(tmp_path)


def test_an_unreadable_file_is_a_permission_error(tmp_path):
    if os.geteuid() == 0:
        # root reads everything: check the class of the errno instead.
        e = _errors.from_status(_errors.ERR_IO, "x.npy: Permission denied")
        assert isinstance(e, PermissionError) and e.errno == errno.EACCES
        return
    path = tmp_path / "x.npy"
    np.save(path, X)
    path.chmod(0)
    with pytest.raises(PermissionError):
        diskmeans.train(path, 3)


def test_a_missing_spill_folder_names_the_folder(tmp_path):
    spill = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as info:
        diskmeans.train(X, 3, storage="disk", tmp_dir=spill)
    assert info.value.filename == str(spill)
    assert "spill directory" in str(info.value)


def test_a_malformed_file_is_a_format_error(tmp_path):
    path = tmp_path / "x.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00garbage")
    with pytest.raises(diskmeans.FormatError) as info:
        diskmeans.train(path, 3)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("status,cls,builtin", [
    (_errors.ERR_PARAM, diskmeans.ParameterError, ValueError),
    (_errors.ERR_NOMEM, diskmeans.DiskmeansMemoryError, MemoryError),
    (_errors.ERR_IO, diskmeans.DiskmeansOSError, OSError),
    (_errors.ERR_FORMAT, diskmeans.FormatError, ValueError),
    (_errors.ERR_DATA, diskmeans.DataError, ValueError),
    (_errors.ERR_MISMATCH, diskmeans.DimensionMismatchError, ValueError),
    (_errors.ERR_NOSPACE, diskmeans.NoSpaceError, OSError),
    (_errors.ERR_CANCELLED, diskmeans.CancelledError, diskmeans.DiskmeansError),
    (_errors.ERR_TOO_FEW_ROWS, diskmeans.TooFewRowsError, ValueError),
    (_errors.ERR_INTERNAL, diskmeans.InternalError, RuntimeError),
])
def test_every_status_has_its_exception_class(status, cls, builtin):
    e = _errors.from_status(status, "spill directory /t: the message")
    assert type(e) is cls
    assert isinstance(e, builtin) and isinstance(e, diskmeans.DiskmeansError)
    assert str(e) == "spill directory /t: the message"
    assert e.status == status


def test_no_space_carries_enospc_and_the_folder():
    e = _errors.from_status(
        _errors.ERR_NOSPACE, "spill directory /t: the sample needs 10 bytes, only 5 are free")
    assert e.errno == errno.ENOSPC
    assert e.filename == "/t"


def test_plan_takes_initial_centroids_and_checks_them():
    assert diskmeans.plan(X, 3, init=np.zeros((3, 4))).rows == 100
    with pytest.raises(diskmeans.ParameterError, match="has 2 rows, but k is 3"):
        diskmeans.plan(X, 3, init=np.zeros((2, 4)))
