#!/usr/bin/env bash
# scripts/demo.sh (make demo) runs end to end: here on small synthetic
# Fashion-MNIST-shaped files, so the test stays fast; the real data set is
# used by `make demo` itself.
source "$(dirname "$0")/lib.sh"

: "${DKM_SOURCE_DIR:?}" "${DKM_BINARY_DIR:?}"
mkdir -p "$T/data"
"$PY" - "$T/data" <<'PYEOF'
import gzip, struct, sys
import numpy as np
rng = np.random.default_rng(0)
for name, n in (("train-images-idx3-ubyte.gz", 600), ("t10k-images-idx3-ubyte.gz", 100)):
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    hdr = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">III", n, 28, 28)
    open(f"{sys.argv[1]}/{name}", "wb").write(gzip.compress(hdr + x.tobytes()))
PYEOF

demo() { # demo DATA OUT: scripts/demo.sh on the data set in DATA, writing to OUT
  (cd "$DKM_SOURCE_DIR" && DKM_FASHION_MNIST="$1" DKM_DEMO_OUT="$2" \
    bash scripts/demo.sh "$DKM_BINARY_DIR")
}

check "scripts/demo.sh trains, writes stats, labels the test images"
status_of demo "$T/data" "$T/demo" >"$OUT" 2>"$ERR"
expect_status 0
grep -q '^trained 256 centroids of dimension 784 on 600 of 600 rows' "$OUT" ||
  fail "no training summary: $(cat "$OUT")"
grep -q '^cluster sizes: min' "$OUT" || fail "no cluster-size summary"
grep -q '^labelled 100 rows with 256 centroids: [0-9]* clusters used, largest' "$OUT" ||
  fail "no labelling summary"
for f in centroids.npy stats.json train-labels.npy test-labels.npy test-distances.npy; do
  [ -s "$T/demo/$f" ] || fail "demo output $f missing"
done
"$PY" -c "
import json, numpy as np
assert np.load('$T/demo/centroids.npy').shape == (256, 784)
assert np.load('$T/demo/test-labels.npy').shape == (100,)
assert json.load(open('$T/demo/stats.json'))['rows'] == 600
" || fail "demo outputs malformed"

check "a missing data set is reported with the package to install"
status_of demo "$T/nothing" "$T/demo2" >"$OUT" 2>"$ERR"
expect_status 1
grep -q 'dataset-fashion-mnist' "$ERR" || fail "no hint: $(cat "$ERR")"
finish
