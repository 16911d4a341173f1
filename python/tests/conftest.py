"""Shared fixtures. The tests run against the installed package (make test
installs it into a throw-away venv and runs pytest from outside the source
tree); DISKMEANS is the path of the CLI built by the same CMake build."""

import os
import shutil
import subprocess

import numpy as np
import pytest


@pytest.fixture(scope="session")
def cli():
    path = os.environ.get("DISKMEANS") or shutil.which("diskmeans")
    if not path:
        pytest.skip("DISKMEANS (the path of the diskmeans CLI) is not set")
    return path


@pytest.fixture(scope="session")
def blobs():
    """4000 x 12 float32 rows around 10 centres: a small, clustered data set."""
    rng = np.random.default_rng(7)
    centres = rng.normal(0, 10, size=(10, 12))
    x = centres[rng.integers(0, 10, size=4000)] + rng.normal(0, 1, size=(4000, 12))
    return x.astype(np.float32)


def run_cli(cli, *args):
    subprocess.run([cli, *map(str, args), "--quiet"], check=True)
