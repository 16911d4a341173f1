#!/usr/bin/env bash
# assign labels every row like train --labels does, its distances are the
# metric's, and it reads centroids from .npy and .fvecs alike.
source "$(dirname "$0")/lib.sh"

blobs "$T/x.npy" 4000 12 6
blobs "$T/y.npy" 1500 12 6 99
npy_to "$T/y.npy" "$T/y.fvecs" fvecs

run train "$T/x.npy" -k 6 --iters 8 -o "$T/c.npy" --labels "$T/lx_train.npy" --quiet
expect_status 0
run train "$T/x.npy" -k 6 --iters 8 -o "$T/c.fvecs" --quiet
expect_status 0

check "assign on the training rows gives train's labels"
run assign "$T/x.npy" -c "$T/c.npy" -o "$T/lx.npy" --quiet
expect_status 0
cmp -s "$T/lx.npy" "$T/lx_train.npy" || fail "assign and train --labels differ"

check "assign on other rows, centroids from .npy or .fvecs, input .npy or .fvecs"
run assign "$T/y.npy" -c "$T/c.npy" -o "$T/ly.npy" --distances "$T/dy.npy"
expect_status 0
grep -q '^labelled 1500 rows with 6 centroids: [0-9]* clusters used, largest' "$OUT" ||
  fail "summary: $(cat "$OUT")"
grep -q '^mean distance' "$OUT" || fail "no mean distance in the summary"
run assign "$T/y.fvecs" -c "$T/c.fvecs" -o "$T/ly2.npy" --distances "$T/dy2.npy" --quiet
expect_status 0
cmp -s "$T/ly.npy" "$T/ly2.npy" || fail "labels depend on the file formats"
cmp -s "$T/dy.npy" "$T/dy2.npy" || fail "distances depend on the file formats"

check "labels and distances agree with numpy"
"$PY" - "$T" <<'PYEOF' || fail "python checks failed"
import sys
import numpy as np
t = sys.argv[1]
y = np.load(f"{t}/y.npy").astype(np.float64)
c = np.load(f"{t}/c.npy").astype(np.float64)
l = np.load(f"{t}/ly.npy")
d = np.load(f"{t}/dy.npy")
assert l.dtype == np.int32 and l.shape == (1500,), (l.dtype, l.shape)
assert d.dtype == np.float32 and d.shape == (1500,), (d.dtype, d.shape)
for name in ("ly.npy", "dy.npy"):
    raw = open(f"{t}/{name}", "rb").read(10)
    assert (10 + int.from_bytes(raw[8:10], "little")) % 64 == 0, name
full = ((y[:, None, :] - c[None, :, :]) ** 2).sum(-1)
best = full.min(1)
assert (full[np.arange(1500), l] <= best * (1 + 1e-4) + 1e-3).all(), "a label is not the nearest"
assert np.allclose(d, best, rtol=1e-3, atol=1e-2), np.abs(d - best).max()
PYEOF

check "threads and block size do not change labels or distances"
run assign "$T/y.npy" -c "$T/c.npy" -o "$T/ly3.npy" --distances "$T/dy3.npy" --threads 1 \
  --block-rows 7 --quiet
expect_status 0
cmp -s "$T/ly.npy" "$T/ly3.npy" || fail "labels changed with --threads 1 --block-rows 7"
cmp -s "$T/dy.npy" "$T/dy3.npy" || fail "distances changed with --threads 1 --block-rows 7"

check "--metric ip and cosine"
for m in ip cosine; do
  run train "$T/x.npy" -k 6 --iters 5 --metric "$m" -o "$T/c_$m.npy" --labels "$T/l_$m.npy" -q
  expect_status 0
  run assign "$T/x.npy" -c "$T/c_$m.npy" --metric "$m" -o "$T/a_$m.npy" --distances "$T/d_$m.npy" -q
  expect_status 0
  cmp -s "$T/l_$m.npy" "$T/a_$m.npy" || fail "$m: assign differs from train --labels"
done
"$PY" - "$T" <<'PYEOF' || fail "ip/cosine python checks failed"
import sys
import numpy as np
t = sys.argv[1]
x = np.load(f"{t}/x.npy").astype(np.float64)
c = np.load(f"{t}/c_ip.npy").astype(np.float64)
l = np.load(f"{t}/a_ip.npy")
ip = x @ c.T
assert (ip[np.arange(len(x)), l] >= ip.max(1) - 1e-4 * np.abs(ip).max(1) - 1e-3).all()
d = np.load(f"{t}/d_ip.npy")
assert np.allclose(d, -ip.max(1), rtol=1e-3, atol=1e-2)
c = np.load(f"{t}/c_cosine.npy").astype(np.float64)
assert np.allclose(np.linalg.norm(c, axis=1), 1, atol=1e-4), "cosine centroids are not unit"
d = np.load(f"{t}/d_cosine.npy")
assert (d >= -1e-5).all() and (d <= 2 + 1e-5).all()
PYEOF
expect_no_temp "$T"
finish
