"""A memory-mapped file far larger than the memory limit trains in disk mode
without ending up resident: the pages read are released as training goes."""

import subprocess
import sys
import textwrap

import numpy as np

GIB = 1 << 30
MIB = 1 << 20

CHILD = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import diskmeans
    path, tmp = sys.argv[1], sys.argv[2]
    mm = np.load(path, mmap_mode="r")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    # Every row is the sample (max_points_per_centroid=0): each pass reads
    # the whole mapping.
    r = diskmeans.train(mm, 4, max_points_per_centroid=0, memory_limit="64M", max_iter=2,
                        tol=0, tmp_dir=tmp)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(before, after, r.storage, r.sample_rows)
""")


def write_npy(path, rows, dim):
    """Writes rows x dim float32 in chunks (never the whole array in RAM)."""
    rng = np.random.default_rng(3)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (rows, dim)})
        chunk = 1 << 16
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            f.write(rng.standard_normal((n, dim), dtype=np.float32).tobytes())


def test_a_1gib_memmap_trains_in_disk_mode_within_160mib_of_rss(tmp_path):
    dim = 64
    rows = GIB // (dim * 4)
    path = tmp_path / "big.npy"
    write_npy(path, rows, dim)
    spill = tmp_path / "spill"
    spill.mkdir()
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(spill)],
                             check=True, capture_output=True, text=True).stdout.split()
    finally:
        path.unlink()  # pytest keeps the last runs' folders: not 1 GiB of them
    before, after, storage, sample_rows = int(out[0]), int(out[1]), out[2], int(out[3])
    assert storage == "disk"
    assert sample_rows == rows
    # Far below the 1 GiB read twice and more: had the mapping stayed
    # resident, the peak would have grown by about the file size.
    assert after - before < 160 * MIB, (before, after)
    assert list(spill.iterdir()) == []
