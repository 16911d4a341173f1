"""examples/ivf_faiss.py runs on small data (make test)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ivf_faiss.py"


def run(*args):
    return subprocess.run([sys.executable, str(EXAMPLE), *map(str, args)], check=True,
                          capture_output=True, text=True).stdout


def test_ivf_example_prints_its_recall():
    pytest.importorskip("faiss")
    out = run("--rows", 5000, "--k", 32, "--nprobe", 4)
    assert "trained 32 centroids of dimension 32 on 5000 of 5000 rows" in out
    recall = float(out.split("recall@10 = ")[1])
    assert 0 < recall <= 1


def test_ivf_example_searching_every_list_is_exact(tmp_path, blobs):
    pytest.importorskip("faiss")
    path = tmp_path / "base.fvecs"
    d = blobs.shape[1]
    np.hstack([np.full((len(blobs), 1), d, np.int32).view(np.float32), blobs]).tofile(path)
    out = run("--data", path, "--k", 16, "--nprobe", 16)
    assert "recall@10 = 1.000" in out
