#!/usr/bin/env bash
# Read speed of the input formats (part of `make bench`): the same float32
# rows (ROWS x 128, 256 MiB by default) as .npy, HDF5 (contiguous; chunked
# and gzip-compressed) and .fvecs.gz, each read whole by bench_read with a
# warm page cache (the best of 4 passes; the first one warms it), and beside
# the .gz the time of `zcat` alone. Writes bench/results/read.md.
#   bash bench/read_formats.sh BUILD_DIR [ROWS]
set -euo pipefail
build=${1:?usage: read_formats.sh BUILD_DIR [ROWS]}
rows=${2:-524288}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work="$build/bench-read"
mkdir -p "$work" "$here/results"
prog="$build/bench/bench_read"
[ -x "$prog" ] || { echo "read_formats.sh: $prog is missing: build first" >&2; exit 1; }

if [ ! -f "$work/x-$rows.npy" ]; then
  /usr/bin/python3 - "$work" "$rows" <<'PYEOF'
import gzip, sys
import h5py
import numpy as np
d, n = sys.argv[1], int(sys.argv[2])
x = np.random.default_rng(1).normal(size=(n, 128)).astype(np.float32)
np.save(f"{d}/x-{n}.npy", x)
with h5py.File(f"{d}/x-{n}.h5", "w") as f:
    f["train"] = x
with h5py.File(f"{d}/x-{n}-chunked.h5", "w") as f:
    f.create_dataset("train", data=x, chunks=(4096, 128), compression="gzip", compression_opts=1)
fv = np.empty((n, 129), np.float32)
fv[:, 0] = np.array([128], np.int32).view(np.float32)[0]
fv[:, 1:] = x
with gzip.open(f"{d}/x-{n}.fvecs.gz", "wb", compresslevel=1) as f:
    f.write(fv.tobytes())
PYEOF
fi

out="$here/results/read.md"
{
  echo "| input | format | open s | best pass s | GB/s of float32 rows |"
  echo "|---|---|---:|---:|---:|"
  for f in "x-$rows.npy" "x-$rows.h5" "x-$rows-chunked.h5" "x-$rows.fvecs.gz"; do
    line=$("$prog" "$work/$f")
    /usr/bin/python3 - "$f" "$line" <<'PYEOF'
import json, sys
r = json.loads(sys.argv[2])
print(f"| {sys.argv[1]} | {r['format']} | {r['open_seconds']:.3f} | {min(r['seconds']):.3f} | {r['best_gb_per_s']:.2f} |")
PYEOF
  done
  TIMEFORMAT=%R
  zcat_s=$({ time zcat "$work/x-$rows.fvecs.gz" >/dev/null; } 2>&1)
  echo
  echo "zcat x-$rows.fvecs.gz > /dev/null: $zcat_s s (what one pass over the .gz must inflate; its open inflates the whole file once more to count the rows)"
} | tee "$out.tmp"
mv "$out.tmp" "$out"
echo "Written: $out"
