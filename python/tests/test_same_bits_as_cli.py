"""The same settings give byte-identical centroids to `diskmeans train`."""

import numpy as np
import pytest

import diskmeans
from conftest import run_cli

SETTINGS = [
    # (python keyword arguments, the same as CLI options)
    ({}, []),
    ({"metric": "cosine"}, ["--metric", "cosine"]),
    ({"metric": "ip"}, ["--metric", "ip"]),
    ({"init": "random"}, ["--init", "random"]),
    ({"init": "greedy-kmeans++"}, ["--init", "greedy-kmeans++"]),
    ({"seed": 99, "n_redo": 2}, ["--seed", "99", "--redo", "2"]),
    ({"max_points_per_centroid": 40}, ["--max-points-per-centroid", "40"]),  # subsampled
    ({"max_points_per_centroid": 40, "storage": "disk"},
     ["--max-points-per-centroid", "40", "--storage", "disk"]),
    ({"storage": "disk", "tol": 0, "max_iter": 7},
     ["--storage", "disk", "--tol", "0", "--iters", "7"]),
    ({"strategy": "hierarchical", "refine": 1, "balance": True},
     ["--strategy", "hierarchical", "--refine", "1", "--balance"]),
]


@pytest.mark.parametrize("kwargs,options", SETTINGS, ids=lambda v: str(v))
def test_array_gives_the_cli_centroids(cli, tmp_path, blobs, kwargs, options):
    data = tmp_path / "x.npy"
    np.save(data, blobs)
    out = tmp_path / "c.npy"
    run_cli(cli, "train", data, "-k", 24, "-o", out, "--tmp-dir", tmp_path, *options)
    expected = np.load(out)
    got = diskmeans.train(blobs, 24, tmp_dir=tmp_path, **kwargs)
    assert got.centroids.dtype == np.float32
    assert got.centroids.tobytes() == expected.tobytes()


@pytest.mark.parametrize("dtype", ["float16", "float64", "uint8", "int8"])
@pytest.mark.parametrize("storage", ["memory", "disk"])
def test_every_dtype_gives_the_cli_centroids(cli, tmp_path, blobs, dtype, storage):
    x = (blobs * 4 + 60).astype(dtype) if dtype != "int8" else (blobs * 4).astype(dtype)
    data = tmp_path / "x.npy"
    np.save(data, x)
    out = tmp_path / "c.npy"
    run_cli(cli, "train", data, "-k", 16, "-o", out, "--storage", storage,
            "--tmp-dir", tmp_path)
    got = diskmeans.train(x, 16, storage=storage, tmp_dir=tmp_path)
    assert got.centroids.tobytes() == np.load(out).tobytes()


def test_given_initial_centroids_give_the_cli_centroids(cli, tmp_path, blobs):
    data, init, out = tmp_path / "x.npy", tmp_path / "init.npy", tmp_path / "c.npy"
    np.save(data, blobs)
    np.save(init, blobs[::250][:16])
    run_cli(cli, "train", data, "-k", 16, "-o", out, "--init", init)
    got = diskmeans.train(blobs, 16, init=blobs[::250][:16])
    assert got.centroids.tobytes() == np.load(out).tobytes()


def test_assign_gives_the_cli_labels(cli, tmp_path, blobs):
    data, cen, labels = tmp_path / "x.npy", tmp_path / "c.npy", tmp_path / "l.npy"
    np.save(data, blobs)
    run_cli(cli, "train", data, "-k", 16, "-o", cen, "--labels", labels)
    result = diskmeans.train(blobs, 16)
    got, _ = diskmeans.assign(blobs, result)
    assert got.dtype == np.int32
    assert got.tobytes() == np.load(labels).tobytes()
