"""HDF5 files: format="hdf5" and the dataset parameter."""

import h5py
import numpy as np
import pytest

import diskmeans
from conftest import run_cli


def write_h5(path, name, x):
    with h5py.File(path, "w") as f:
        f.create_dataset(name, data=x)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, np.uint8])
def test_an_hdf5_file_gives_the_bits_of_the_npy_of_the_same_rows(tmp_path, blobs, dtype):
    x = (blobs * 4 + 60).astype(dtype)
    np.save(tmp_path / "x.npy", x)
    write_h5(tmp_path / "x.h5", "train", x)
    expected = diskmeans.train(tmp_path / "x.npy", 16).centroids.tobytes()
    assert diskmeans.train(tmp_path / "x.h5", 16).centroids.tobytes() == expected
    assert diskmeans.train(tmp_path / "x.h5", 16, format="hdf5",
                           dataset="train").centroids.tobytes() == expected
    c = diskmeans.train(x, 16).centroids
    assert diskmeans.assign(tmp_path / "x.h5", c)[0].tobytes() == \
        diskmeans.assign(tmp_path / "x.npy", c)[0].tobytes()


def test_the_dataset_parameter_chooses_the_dataset(tmp_path, blobs, cli):
    path = tmp_path / "ann.hdf5"  # as ann-benchmarks: train, test, neighbors
    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=blobs[:3000])
        f.create_dataset("test", data=blobs[3000:])
        f.create_dataset("neighbors", data=np.zeros((1000, 10), np.int32))
        f.create_group("more").create_dataset("emb", data=blobs[::2])
    assert diskmeans.train(path, 8).centroids.tobytes() == \
        diskmeans.train(blobs[:3000], 8).centroids.tobytes()
    assert diskmeans.train(path, 8, dataset="test").centroids.tobytes() == \
        diskmeans.train(blobs[3000:], 8).centroids.tobytes()
    got = diskmeans.train(path, 8, dataset="/more/emb")
    assert got.centroids.tobytes() == diskmeans.train(blobs[::2], 8).centroids.tobytes()
    out = tmp_path / "c.npy"
    run_cli(cli, "train", path, "-k", 8, "-o", out, "--dataset", "/more/emb")
    assert got.centroids.tobytes() == np.load(out).tobytes()
    assert diskmeans.plan(path, 8, dataset="test").rows == 1000


def test_a_missing_dataset_is_a_format_error_naming_it(tmp_path, blobs):
    path = tmp_path / "x.h5"
    write_h5(path, "train", blobs)
    with pytest.raises(diskmeans.FormatError, match="no dataset 'nope'") as info:
        diskmeans.train(path, 4, dataset="nope")
    assert str(path) in str(info.value) and "train" in str(info.value)
    with pytest.raises(diskmeans.FormatError, match="no dataset 'nope'"):
        diskmeans.plan(path, 4, dataset="nope")


def test_a_dataset_with_a_file_that_is_not_hdf5_is_a_parameter_error(tmp_path, blobs):
    np.save(tmp_path / "x.npy", blobs)
    with pytest.raises(diskmeans.ParameterError, match="x.npy: a dataset"):
        diskmeans.train(tmp_path / "x.npy", 4, dataset="train")
    with pytest.raises(diskmeans.ParameterError, match="does not go with format='npy'"):
        diskmeans.train(tmp_path / "x.npy", 4, format="npy", dataset="train")
    with pytest.raises(diskmeans.ParameterError, match="dataset: '' is not"):
        diskmeans.train(tmp_path / "x.npy", 4, dataset="")
    with pytest.raises(diskmeans.ParameterError, match="dataset must be"):
        diskmeans.assign(tmp_path / "x.npy", blobs[:4], dataset=3)
