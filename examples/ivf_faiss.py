#!/usr/bin/env python3
"""An IVF index whose coarse centroids diskmeans trained on a file.

Trains k centroids on the rows of a file with diskmeans (streamed: the file
is never loaded whole), builds a FAISS IndexIVFFlat on those centroids, adds
the rows, searches held-out queries, and prints the recall of the IVF search
against an exact search.

    python3 examples/ivf_faiss.py                  # on generated data
    python3 examples/ivf_faiss.py --data base.fvecs --k 1024 --nprobe 16

Needs diskmeans (pip install ./python), numpy and faiss (python3-faiss).
"""

import argparse
import os
import sys
import tempfile

import faiss
import numpy as np

import diskmeans


def generated_data(folder, rows, dim, seed):
    """Rows around a few hundred centres, saved as .npy (as a user's file)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, size=(256, dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), size=rows)]
    x += rng.normal(0, 1, size=x.shape).astype(np.float32)
    path = os.path.join(folder, "base.npy")
    np.save(path, x)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="a file of rows (.npy, .fvecs, .bvecs, ...); "
                                   "default: generated")
    ap.add_argument("--rows", type=int, default=20000, help="generated rows (default 20000)")
    ap.add_argument("--dim", type=int, default=32, help="generated dimension (default 32)")
    ap.add_argument("--k", type=int, default=128, help="inverted lists (default 128)")
    ap.add_argument("--nprobe", type=int, default=8, help="lists searched (default 8)")
    ap.add_argument("--queries", type=int, default=200, help="queries (default 200)")
    ap.add_argument("--topk", type=int, default=10, help="neighbours (default 10)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.data or generated_data(tmp, args.rows, args.dim, seed=1)

        # Train on the file: diskmeans reads it in blocks.
        result = diskmeans.train(path, args.k, seed=1234)
        print(f"trained {result.k} centroids of dimension {result.dim} on "
              f"{result.sample_rows} of {result.rows} rows: {result.n_iter} iterations, "
              f"storage {result.storage}")

        # The rows themselves, to fill the index (a memory map: not a copy).
        if path.endswith(".npy"):
            base = np.load(path, mmap_mode="r")
        else:
            base = diskmeans_rows(path)
        rng = np.random.default_rng(2)
        queries = np.asarray(base[rng.choice(len(base), args.queries, replace=False)],
                             dtype=np.float32)
        queries = queries + rng.normal(0, 0.1, size=queries.shape).astype(np.float32)

        d = result.dim
        quantizer = faiss.IndexFlatL2(d)
        quantizer.add(result.centroids)
        index = faiss.IndexIVFFlat(quantizer, d, result.k, faiss.METRIC_L2)
        index.is_trained = True  # the centroids are diskmeans'
        for start in range(0, len(base), 65536):
            index.add(np.ascontiguousarray(base[start:start + 65536], dtype=np.float32))
        index.nprobe = args.nprobe

        exact = faiss.IndexFlatL2(d)
        for start in range(0, len(base), 65536):
            exact.add(np.ascontiguousarray(base[start:start + 65536], dtype=np.float32))
        _, truth = exact.search(queries, args.topk)
        _, found = index.search(queries, args.topk)
        hits = sum(len(set(t) & set(f)) for t, f in zip(truth, found))
        recall = hits / truth.size
        print(f"IVF{result.k},Flat nprobe={args.nprobe}: recall@{args.topk} = {recall:.3f}")
    return 0


def diskmeans_rows(path):
    """The rows of a file that numpy cannot map (.fvecs, ...), as float32."""
    if path.endswith(".fvecs"):
        raw = np.fromfile(path, dtype=np.int32)
        d = raw[0]
        return raw.reshape(-1, d + 1)[:, 1:].view(np.float32)
    if path.endswith(".bvecs"):
        raw = np.fromfile(path, dtype=np.uint8)
        d = int(raw[:4].view(np.int32)[0])
        return raw.reshape(-1, d + 4)[:, 4:].astype(np.float32)
    sys.exit(f"{path}: give a .npy, .fvecs or .bvecs file")


if __name__ == "__main__":
    sys.exit(main())
