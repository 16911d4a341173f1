"""Deterministic clustered float32 rows with Zipf-sized clusters, made in
fixed chunks so that any number of rows can be streamed to a .npy file with
bounded memory (the large-k benchmarks: bench/large_k.py and
bench/bench_large.py).

The model: `centres` latent centres, grouped around a few super-centres (real
embeddings have structure at several scales, which is what hierarchical
training exploits and what equal Gaussian blobs lack); component i has weight
proportional to 1 / rank^zipf (ranks shuffled) and its own spread. Every row
is its component's centre plus isotropic Gaussian noise of that spread.

Rows depend only on (seed, stream, chunk index): stream 0 is the data, other
streams are held-out rows of the same distribution (queries), never copies of
data rows.
"""

import os

import numpy as np

CHUNK_ROWS = 65536  # fixed: the rows are a function of the chunk index
VERSION = 1  # of the model: data written by another version is made again


class Mixture:
    def __init__(self, dim, centres, seed, zipf=1.0):
        rng = np.random.default_rng([seed, 0xC0FFEE])
        # sqrt(centres) super-centres, spread wide; each component's centre
        # is its super-centre plus N(0, 0.5^2) per coordinate.
        supers = max(4, int(round(centres ** 0.5)))
        sup = rng.standard_normal((supers, dim)) * 4.0
        owner = rng.integers(0, supers, centres)
        self.centres = (sup[owner] + 0.5 * rng.standard_normal((centres, dim))).astype(np.float32)
        weights = 1.0 / np.arange(1, centres + 1, dtype=np.float64) ** zipf
        weights = rng.permutation(weights)
        self.cdf = np.cumsum(weights / weights.sum())
        self.cdf[-1] = 1.0
        # Spreads of 0.3-0.6 per coordinate: components of one super-centre
        # overlap partly, as in real data. (At 500,000 x 96, 3,000
        # components, flat Lloyd with k = 4096 leaves partitions of CV 0.82,
        # the largest 5.3x the mean; with spreads of 0.15-0.6 the CV was
        # 1.5, with offsets of N(0, 1) 1.0.)
        self.spreads = rng.uniform(0.3, 0.6, centres).astype(np.float32)
        self.dim = dim
        self.seed = seed

    def chunk(self, stream, index, rows=CHUNK_ROWS):
        """Rows of chunk `index` of `stream` (the first `rows` of it)."""
        rng = np.random.default_rng([self.seed, stream, index])
        comp = np.searchsorted(self.cdf, rng.random(CHUNK_ROWS), side="right")[:rows]
        noise = rng.standard_normal((CHUNK_ROWS, self.dim), dtype=np.float32)[:rows]
        noise *= self.spreads[comp, None]
        noise += self.centres[comp]
        return noise

    def rows(self, n, stream=0):
        """All n rows of a stream in one array (for sizes that fit in RAM)."""
        out = np.empty((n, self.dim), dtype=np.float32)
        for first in range(0, n, CHUNK_ROWS):
            m = min(CHUNK_ROWS, n - first)
            out[first:first + m] = self.chunk(stream, first // CHUNK_ROWS, m)
        return out

    def write_npy(self, path, n, stream=0, progress=None):
        """Streams n rows of a stream to a .npy file, one chunk in memory at a
        time; writes to path + '.part' and renames at the end, so that a run
        that is interrupted leaves no file that looks complete."""
        part = path + ".part"
        try:
            with open(part, "wb") as f:
                np.lib.format.write_array_header_1_0(
                    f, {"descr": "<f4", "fortran_order": False, "shape": (n, self.dim)})
                for first in range(0, n, CHUNK_ROWS):
                    m = min(CHUNK_ROWS, n - first)
                    f.write(self.chunk(stream, first // CHUNK_ROWS, m).data)
                    if progress:
                        progress(first + m, n)
                f.flush()
                os.fsync(f.fileno())
            os.replace(part, path)
        except BaseException:
            # Ctrl-C, a full disk: no partial file left (a kill -9 leaves
            # the .part, which the next run overwrites).
            if os.path.exists(part):
                os.remove(part)
            raise
