"""A list (or tuple) of inputs is one data set, its items' rows in order,
exactly as the CLI's several INPUT files (dkm_source_concat)."""

import gc
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

import diskmeans
from conftest import run_cli


def write_fvecs(path, x):
    x = np.asarray(x, dtype=np.float32)
    rows = np.hstack([np.full((len(x), 1), x.shape[1], np.int32).view(np.float32), x])
    rows.tofile(path)


def write_h5(path, name, x):
    with h5py.File(path, "w") as f:
        f.create_dataset(name, data=x)


@pytest.fixture
def parts(tmp_path, blobs):
    """The same 4000 rows as five items of different kinds, formats and
    dtypes, and those rows as one float32 array."""
    a = blobs[:700]  # a float32 array
    b = blobs[700:1500].astype(np.float16)  # a float16 .npy file
    np.save(tmp_path / "b.npy", b)
    c = blobs[1500:2300]  # an .fvecs file
    write_fvecs(tmp_path / "c.fvecs", c)
    d = blobs[2300:3100].astype(np.float64)  # an HDF5 file, float64
    write_h5(tmp_path / "d.h5", "train", d)
    e = blobs[3100:]  # a read-only memory map (its pages are released)
    e.tofile(tmp_path / "e.raw")
    e_map = np.memmap(tmp_path / "e.raw", dtype=np.float32, mode="r", shape=e.shape)
    items = [a, tmp_path / "b.npy", str(tmp_path / "c.fvecs"), tmp_path / "d.h5", e_map]
    whole = np.concatenate([p.astype(np.float32) for p in (a, b, c, d, e)])
    return items, whole


SETTINGS = [
    ({}, []),
    ({"storage": "disk"}, ["--storage", "disk"]),
    # Subsampled: the sample is drawn across the parts.
    ({"max_points_per_centroid": 40, "metric": "cosine"},
     ["--max-points-per-centroid", "40", "--metric", "cosine"]),
]


@pytest.mark.parametrize("kwargs,options", SETTINGS, ids=lambda v: str(v))
def test_a_list_of_inputs_trains_as_its_rows_in_one_array(parts, tmp_path, kwargs, options):
    items, whole = parts
    got = diskmeans.train(items, 16, tmp_dir=tmp_path, **kwargs)
    assert got.rows == len(whole)
    assert got.centroids.tobytes() == diskmeans.train(
        whole, 16, tmp_dir=tmp_path, **kwargs).centroids.tobytes()
    # A tuple is a list.
    assert diskmeans.train(tuple(items), 16, tmp_dir=tmp_path,
                           **kwargs).centroids.tobytes() == got.centroids.tobytes()


@pytest.mark.parametrize("kwargs,options", SETTINGS, ids=lambda v: str(v))
def test_a_list_of_files_gives_the_cli_centroids_of_the_same_files(cli, tmp_path, blobs,
                                                                    kwargs, options):
    files = [tmp_path / "a.npy", tmp_path / "b.fvecs", tmp_path / "c.h5"]
    np.save(files[0], blobs[:1000].astype(np.float16))
    write_fvecs(files[1], blobs[1000:2500])
    write_h5(files[2], "train", blobs[2500:].astype(np.float64))
    out = tmp_path / "c.npy"
    run_cli(cli, "train", *files, "-k", 16, "-o", out, "--tmp-dir", tmp_path, *options)
    got = diskmeans.train(files, 16, tmp_dir=tmp_path, **kwargs)
    assert got.centroids.tobytes() == np.load(out).tobytes()


def test_assign_labels_a_list_of_inputs_in_its_rows_order(parts, cli, tmp_path):
    items, whole = parts
    centroids = diskmeans.train(whole, 16).centroids
    labels, dists = diskmeans.assign(items, centroids)
    want_labels, want_dists = diskmeans.assign(whole, centroids)
    assert labels.tobytes() == want_labels.tobytes()
    assert dists.tobytes() == want_dists.tobytes()
    # The CLI given the files of the list gives the same labels.
    files = [tmp_path / "b.npy", tmp_path / "c.fvecs", tmp_path / "d.h5"]
    np.save(tmp_path / "cen.npy", centroids)
    out, dout = tmp_path / "labels.npy", tmp_path / "dists.npy"
    run_cli(cli, "assign", *files, "-c", tmp_path / "cen.npy", "-o", out, "--distances", dout)
    labels, dists = diskmeans.assign(files, centroids)
    assert labels.tobytes() == np.load(out).tobytes()
    assert dists.tobytes() == np.load(dout).tobytes()
    assert labels.tobytes() == want_labels[700:3100].tobytes()


def test_plan_of_a_list_of_inputs_is_the_cli_plan_of_the_same_files(parts, cli, tmp_path):
    items, whole = parts
    p = diskmeans.plan(items, 16, max_points_per_centroid=100)
    assert (p.rows, p.dim) == whole.shape
    assert p.sample_rows == 1600
    files = items[1:4]
    for storage in ("memory", "disk"):
        p = diskmeans.plan(files, 16, max_points_per_centroid=100, storage=storage,
                           memory_limit="1G")
        info = json.loads(subprocess.run(
            [cli, "info", *map(str, files), "-k", "16", "--max-points-per-centroid", "100",
             "--storage", storage, "--memory-limit", "1G", "--json"],
            check=True, capture_output=True, text=True).stdout)
        assert (p.rows, p.dim) == (info["rows"], info["dim"]) == (2400, 12)
        for key in ("sample_rows", "storage", "from_source", "spill_bytes",
                    "memory_mode_bytes", "disk_mode_bytes", "strategy"):
            assert getattr(p, key) == info["plan"][key], key


def test_a_dimension_mismatch_in_a_list_names_both_items(tmp_path, blobs):
    np.save(tmp_path / "narrow.npy", blobs[:, :8])
    with pytest.raises(diskmeans.FormatError) as info:
        diskmeans.train([blobs, tmp_path / "narrow.npy"], 4)
    msg = str(info.value)
    assert "data[0]" in msg and "narrow.npy" in msg
    assert "12" in msg and "8" in msg
    with pytest.raises(diskmeans.FormatError, match=r"data\[0\].*data\[1\]|data\[1\].*data\[0\]"):
        diskmeans.assign([blobs, blobs[:, :8]], blobs[:4])


@pytest.mark.parametrize("empty", [[], ()], ids=["list", "tuple"])
def test_an_empty_list_is_a_parameter_error(empty):
    with pytest.raises(diskmeans.ParameterError, match="empty list"):
        diskmeans.train(empty, 4)
    with pytest.raises(diskmeans.ParameterError, match="empty list"):
        diskmeans.assign(empty, np.zeros((2, 3), np.float32))
    with pytest.raises(diskmeans.ParameterError, match="empty list"):
        diskmeans.plan(empty, 4)


def test_a_bad_item_of_a_list_is_named(tmp_path, blobs):
    with pytest.raises(diskmeans.ParameterError, match=r"data\[2\]: must be 2-D"):
        diskmeans.train([blobs, blobs, blobs[:, 0]], 4)
    with pytest.raises(diskmeans.ParameterError, match=r"data\[1\]: dtype int32"):
        diskmeans.train([blobs, blobs.astype(np.int32)], 4)
    missing = tmp_path / "missing.npy"
    with pytest.raises(FileNotFoundError) as info:
        diskmeans.train([blobs, blobs, missing], 4)
    assert info.value.filename == str(missing)
    # The parts built before the failing item were closed: no buffer of
    # theirs is held (a held Py_buffer keeps a reference to its array).
    x = blobs.copy()
    before = sys.getrefcount(x)
    with pytest.raises(FileNotFoundError):
        diskmeans.train([x, x, missing], 4)  # a later part fails to open
    with pytest.raises(diskmeans.FormatError):
        diskmeans.train([x, blobs[:, :3]], 4)  # dkm_source_concat fails
    gc.collect()
    assert sys.getrefcount(x) == before


def test_one_input_in_a_list_is_that_input(blobs, tmp_path):
    np.save(tmp_path / "x.npy", blobs)
    expected = diskmeans.train(blobs, 16).centroids.tobytes()
    assert diskmeans.train([blobs], 16).centroids.tobytes() == expected
    assert diskmeans.train([tmp_path / "x.npy"], 16).centroids.tobytes() == expected


def test_a_list_of_rows_is_still_one_array(blobs):
    rows = [list(r) for r in blobs[:300].astype(np.float64)]
    assert diskmeans.train(rows, 8).centroids.tobytes() == \
        diskmeans.train(blobs[:300].astype(np.float64), 8).centroids.tobytes()


def test_a_bad_value_is_named_by_its_item_and_its_row_there(tmp_path, blobs):
    bad = blobs[:500].copy()
    bad[123, 4] = np.nan
    with pytest.raises(diskmeans.DataError, match=r"data\[1\].*row 123"):
        diskmeans.train([blobs, bad], 4, max_points_per_centroid=0)
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(diskmeans.DataError, match=r"bad\.npy.*row 123"):
        diskmeans.assign([blobs, tmp_path / "bad.npy"], blobs[:4])
