#!/usr/bin/env bash
# train reads .npy, .fvecs and raw files of the same rows into byte-identical
# centroids; the .npy and .fvecs outputs are well formed; the labels are the
# nearest centroid of every row; the stats JSON has sane values.
source "$(dirname "$0")/lib.sh"

blobs "$T/x.npy" 3000 16 8
npy_to "$T/x.npy" "$T/x.fvecs" fvecs
npy_to "$T/x.npy" "$T/x.f32" raw
common=(-k 8 --iters 10 --seed 5 --quiet)

check "train on .npy, .fvecs and raw rows"
run train "$T/x.npy" "${common[@]}" -o "$T/c_npy.npy" --labels "$T/l.npy" --stats "$T/s.json"
expect_status 0
run train "$T/x.fvecs" "${common[@]}" -o "$T/c_fvecs.npy"
expect_status 0
run train "$T/x.f32" "${common[@]}" --dim 16 -o "$T/c_raw.npy"
expect_status 0
run train "$T/x.f32" "${common[@]}" --format raw --dim 16 --dtype f32 -o "$T/c_raw2.npy"
expect_status 0

check "--quiet prints nothing on stdout or stderr"
[ -s "$OUT" ] && fail "stdout not empty with --quiet: $(head -c 200 "$OUT")"
[ -s "$ERR" ] && fail "stderr not empty with --quiet: $(head -c 200 "$ERR")"

check "centroids are byte-identical whatever the input format"
cmp "$T/c_npy.npy" "$T/c_fvecs.npy" || fail "npy and fvecs inputs gave different centroids"
cmp "$T/c_npy.npy" "$T/c_raw.npy" || fail "npy and raw inputs gave different centroids"
cmp "$T/c_npy.npy" "$T/c_raw2.npy" || fail "--dim and --format raw gave different centroids"

check "the same centroids written as .fvecs"
run train "$T/x.npy" "${common[@]}" -o "$T/c.fvecs"
expect_status 0

check "outputs: shapes, dtypes, header alignment, labels = numpy nearest centroid, stats"
"$PY" - "$T" <<'PYEOF' || fail "python checks failed"
import json, sys
import numpy as np
t = sys.argv[1]
x = np.load(f"{t}/x.npy")
c = np.load(f"{t}/c_npy.npy")
assert c.shape == (8, 16) and c.dtype == np.float32, (c.shape, c.dtype)
raw = open(f"{t}/c_npy.npy", "rb").read()
hlen = int.from_bytes(raw[8:10], "little")
assert raw[:8] == b"\x93NUMPY\x01\x00", raw[:8]
assert (10 + hlen) % 64 == 0, hlen
assert len(raw) == 10 + hlen + c.nbytes
f = np.fromfile(f"{t}/c.fvecs", dtype=np.int32).reshape(8, 17)
assert (f[:, 0] == 16).all(), f[:, 0]
assert np.array_equal(f[:, 1:].view(np.float32), c), "fvecs values differ from npy"
assert np.isfinite(c).all()
labels = np.load(f"{t}/l.npy")
assert labels.shape == (3000,) and labels.dtype == np.int32, (labels.shape, labels.dtype)
d = ((x.astype(np.float64)[:, None, :] - c.astype(np.float64)[None, :, :]) ** 2).sum(-1)
best = d.min(1)
mine = d[np.arange(len(x)), labels]
# Ties and float32 GEMM rounding: the library's label must be a nearest
# centroid up to a relative 1e-4 of the distance.
bad = np.nonzero(mine > best * (1 + 1e-4) + 1e-3)[0]
assert len(bad) == 0, f"{len(bad)} labels are not the nearest centroid, e.g. row {bad[:5]}"
assert (labels == d.argmin(1)).mean() > 0.999
s = json.load(open(f"{t}/s.json"))
for key in ["version", "params", "rows", "dim", "format", "dtype", "iterations", "objective",
            "cluster_sizes", "storage", "spill_bytes", "sample_rows", "wall_seconds",
            "peak_rss_bytes", "label_sizes"]:
    assert key in s, key
assert s["rows"] == 3000 and s["dim"] == 16, (s["rows"], s["dim"])
assert s["format"] == "npy" and s["dtype"] == "f32"
assert s["params"]["k"] == 8 and s["params"]["max_iter"] == 10 and s["params"]["seed"] == 5
assert s["params"]["metric"] == "l2" and s["params"]["init"] == "kmeans++"
assert 1 <= len(s["iterations"]) <= 10 and s["n_iter"] == len(s["iterations"])
objs = [it["objective"] for it in s["iterations"]]
assert all(o > 0 for o in objs)
assert all(b <= a * (1 + 1e-6) for a, b in zip(objs, objs[1:])), objs  # Lloyd never goes up
assert s["objective"] == objs[-1]
for it in s["iterations"]:
    assert it["seconds"] >= 0 and it["repaired"] >= 0 and it["imbalance"] >= 1 - 1e-9
cs = s["cluster_sizes"]
assert cs["rows"] == s["sample_rows"] and 0 < cs["min"] <= cs["mean"] <= cs["max"], cs
assert s["label_sizes"]["rows"] == 3000
counts = np.bincount(labels, minlength=8)
assert s["label_sizes"]["max"] == counts.max() and s["label_sizes"]["min"] == counts.min()
assert s["storage"] in ("memory", "disk")
assert s["plan"]["storage"] == s["storage"] and s["plan"]["memory_limit"] > 0, s["plan"]
assert s["plan"]["sample_bytes"] == s["sample_rows"] * 16 * 4
assert s["wall_seconds"] > 0 and s["peak_rss_bytes"] > 1 << 20
# The objective over the sample equals the sum of the squared distances.
if s["sample_rows"] == 3000:
    assert abs(best.sum() - s["objective"]) <= 1e-3 * best.sum(), (best.sum(), s["objective"])
PYEOF

check "the summary on stdout without --quiet"
run train "$T/x.npy" -k 8 --iters 10 --seed 5 -o "$T/c2.npy"
expect_status 0
grep -q "objective" "$OUT" || fail "no objective in the summary: $(cat "$OUT")"
grep -q "cluster sizes: min" "$OUT" || fail "no cluster sizes in the summary"
cmp "$T/c2.npy" "$T/c_npy.npy" || fail "progress output changed the result"

check "u8 rows as .bvecs, .npy (u1), IDX, gzip IDX and raw u8: identical centroids"
"$PY" - "$T" <<'PYEOF'
import gzip, struct, sys
import numpy as np
t = sys.argv[1]
x = np.random.default_rng(4).integers(0, 256, size=(1000, 10), dtype=np.uint8)
np.save(f"{t}/u.npy", x)
rows = np.empty((1000, 14), dtype=np.uint8)
rows[:, :4] = np.frombuffer(struct.pack("<i", 10), dtype=np.uint8)
rows[:, 4:] = x
rows.tofile(f"{t}/u.bvecs")
idx = struct.pack(">BBBB", 0, 0, 8, 2) + struct.pack(">II", 1000, 10) + x.tobytes()
open(f"{t}/u.idx", "wb").write(idx)
open(f"{t}/u.idx.gz", "wb").write(gzip.compress(idx))
x.tofile(f"{t}/u.u8")
# The same values as float16 and float64 are exact, so they train the same.
np.save(f"{t}/u_f16.npy", x.astype(np.float16))
np.save(f"{t}/u_f64.npy", x.astype(np.float64))
PYEOF
run train "$T/u.npy" -k 7 --iters 5 -o "$T/u_ref.npy" -q
expect_status 0
for f in u.bvecs u.idx u.idx.gz u_f16.npy u_f64.npy; do
  run train "$T/$f" -k 7 --iters 5 -o "$T/u_out.npy" -q
  expect_status 0
  cmp -s "$T/u_ref.npy" "$T/u_out.npy" || fail "$f gave other centroids than u.npy"
done
run train "$T/u.u8" --dim 10 --dtype u8 -k 7 --iters 5 -o "$T/u_out.npy" -q
expect_status 0
cmp -s "$T/u_ref.npy" "$T/u_out.npy" || fail "raw u8 gave other centroids than u.npy"

expect_no_temp "$T"
finish
