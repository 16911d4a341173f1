#!/usr/bin/python3
"""Writes the replayed corpus of HDF5 files (test/fuzz/corpus/hdf5_malformed/):
small files that are sound but unusable (no 2-D dataset, 3-D, strings,
compound values, links), and sound files truncated and damaged at fixed
places. Parsing them is libhdf5's job; what the replay checks is our side:
one error naming the file, nothing printed by libhdf5, nothing leaked.

Run from the repository root: /usr/bin/python3 test/fuzz/make_hdf5_corpus.py
"""
import os
import random

import h5py
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "hdf5_malformed")
os.makedirs(OUT, exist_ok=True)
TMP = os.path.join(OUT, ".tmp.h5")


def make(name, fill, **kw):
    with h5py.File(TMP, "w", **kw) as f:
        fill(f)
    data = open(TMP, "rb").read()
    os.unlink(TMP)
    open(os.path.join(OUT, name), "wb").write(data)
    return data


x = np.arange(40 * 6, dtype=np.float32).reshape(40, 6)
sound = {
    "contiguous": make("ok-contiguous", lambda f: f.create_dataset("train", data=x)),
    "chunked": make("ok-chunked-gzip", lambda f: f.create_dataset(
        "train", data=x, chunks=(7, 6), compression="gzip", shuffle=True)),
    "f16": make("ok-f16", lambda f: f.create_dataset("emb", data=x.astype(np.float16))),
}
make("no-2d", lambda f: (f.create_dataset("a", data=np.arange(5)),
                         f.create_group("g").create_dataset("s", data=3.0)))
make("3d", lambda f: f.create_dataset("train", data=np.zeros((2, 3, 4), np.float32)))
make("strings", lambda f: f.create_dataset("train", data=np.array([[b"ab", b"cd"]] * 3)))
make("vlen-strings", lambda f: f.create_dataset(
    "train", data=np.array([["a", "bcd"]] * 3, dtype=object), dtype=h5py.string_dtype()))
make("compound", lambda f: f.create_dataset(
    "train", data=np.zeros((4, 2), dtype=[("a", "<f4"), ("b", "<i4")])))
make("int64", lambda f: f.create_dataset("train", data=np.zeros((4, 2), np.int64)))
make("zero-rows", lambda f: f.create_dataset("train", data=np.zeros((0, 3), np.float32)))
make("empty-file", lambda f: None)
make("group-named-train", lambda f: f.create_group("train").create_dataset("x", data=x))
make("soft-link-train", lambda f: (f.create_dataset("data", data=x),
                                   f.__setitem__("train", h5py.SoftLink("/data"))))
make("dangling-soft-link", lambda f: f.__setitem__("train", h5py.SoftLink("/nowhere")))
make("external-link", lambda f: f.__setitem__(
    "train", h5py.ExternalLink("/nonexistent/elsewhere.h5", "/train")))
make("null-space", lambda f: f.create_dataset("train", data=h5py.Empty("f4")))
make("many-datasets", lambda f: [f.create_dataset(f"d{i:02d}", data=x[:2]) for i in range(20)])

rng = random.Random(12)
for kind, data in sound.items():
    n = len(data)
    for cut in sorted({8, 64, 200, 512, 1024, n // 2, n - 100, n - 1}):
        if 0 < cut < n:
            open(os.path.join(OUT, f"cut-{kind}-{cut}"), "wb").write(data[:cut])
    for i in range(8):
        b = bytearray(data)
        at = rng.randrange(0, min(n, 2048)) if i < 6 else rng.randrange(0, n)
        for j in range(rng.randrange(1, 5)):
            if at + j < n:
                b[at + j] ^= rng.randrange(1, 256)
        open(os.path.join(OUT, f"flip-{kind}-{i}"), "wb").write(bytes(b))
