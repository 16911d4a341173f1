"""Every kind of input gives the same bits: dtypes, strides, paths, maps."""

import numpy as np
import pytest

import diskmeans


def centroids(data, **kw):
    return diskmeans.train(data, 16, **kw).centroids.tobytes()


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.uint8, np.int8])
def test_every_dtype_gives_the_bits_of_the_same_values_in_float32(blobs, dtype):
    x = (np.clip(blobs * 4, -100, 100)).astype(dtype)
    assert centroids(x) == centroids(x.astype(np.float32))


@pytest.mark.parametrize("view", [
    lambda a: a[::2],  # every other row
    lambda a: a[::-1][::-1][:, :],  # a view that is still contiguous
    lambda a: np.asfortranarray(a),  # column-major
    lambda a: np.hstack([a, a])[:, ::2],  # a column stride
    lambda a: a[::-1],  # negative row stride
], ids=["rows", "view", "fortran", "columns", "reversed"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_strided_arrays_give_the_bits_of_a_contiguous_copy(blobs, view, dtype):
    x = view(blobs.astype(dtype))
    assert centroids(x) == centroids(np.ascontiguousarray(x))


def test_path_input_equals_array_input(tmp_path, blobs):
    npy = tmp_path / "x.npy"
    np.save(npy, blobs)
    raw = tmp_path / "x.raw"
    blobs.astype(np.float16).tofile(raw)
    fvecs = tmp_path / "x.fvecs"
    rows = np.hstack([np.full((len(blobs), 1), blobs.shape[1], np.int32).view(np.float32),
                      blobs])
    rows.tofile(fvecs)
    expected = centroids(blobs)
    assert centroids(npy) == expected
    assert centroids(str(npy)) == expected
    assert centroids(bytes(npy)) == expected
    assert centroids(fvecs) == expected
    assert centroids(raw, dim=12, dtype="f16") == centroids(blobs.astype(np.float16))


@pytest.mark.parametrize("storage", ["memory", "disk"])
def test_memmap_input_equals_array_input(tmp_path, blobs, storage):
    npy = tmp_path / "x.npy"
    np.save(npy, blobs)
    mm = np.load(npy, mmap_mode="r")
    raw = tmp_path / "x.raw"
    blobs.tofile(raw)
    mm2 = np.memmap(raw, dtype=np.float32, mode="r", shape=blobs.shape)
    mm3 = np.memmap(raw, dtype=np.float32, mode="c", shape=blobs.shape)
    expected = centroids(blobs)
    assert centroids(mm, storage=storage) == expected
    assert centroids(mm2, storage=storage) == expected
    assert centroids(mm3, storage=storage) == expected
    assert centroids(mm[::3], storage=storage) == centroids(blobs[::3])
    # The mapping still reads the same after its pages were released.
    assert np.array_equal(np.asarray(mm), blobs)


def test_a_list_of_lists_is_an_array(blobs):
    small = blobs[:200]
    assert centroids(small.tolist()) == centroids(small.astype(np.float64))


def test_the_input_array_is_not_modified(blobs):
    x = blobs.copy()
    diskmeans.train(x, 16, metric="cosine")
    assert np.array_equal(x, blobs)
