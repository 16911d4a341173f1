#!/usr/bin/env bash
# train on rows with fewer distinct values than -k says so once, in the
# summary and in --stats, and every row ends on its own centroid; rows whose
# squared norm is too large for float32 distances are refused by name.
source "$(dirname "$0")/lib.sh"

"$PY" - "$T/dup.npy" "$T/big.npy" <<'PY'
import sys
import numpy as np
rng = np.random.default_rng(1)
points = (rng.normal(size=(5, 3)) * 10).astype(np.float32)
x = np.repeat(points, 80, axis=0)
rng.shuffle(x)
np.save(sys.argv[1], x)
np.save(sys.argv[2], np.array([[1.6e19], [1.45e19], [1]], dtype=np.float32))
PY

for init in random kmeans++ greedy-kmeans++; do
  check "5 distinct rows, -k 10, --init $init: one note, distinct_rows in the stats"
  run train "$T/dup.npy" -k 10 --init "$init" -o "$T/c.npy" --stats "$T/s.json"
  expect_status 0
  [ "$(grep -c '^note: only 5 distinct rows in the sample; 5 clusters stay empty$' "$OUT")" = 1 ] ||
    fail "no single note: $(cat "$OUT")"
  "$PY" - "$T/s.json" <<'PY' || fail "stats: $(cat "$T/s.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["distinct_rows"] == 5, s["distinct_rows"]
assert s["cluster_sizes"]["empty"] == 5
assert all(it["objective"] >= s["objective"] for it in s["iterations"])
assert s["iterations"][-1]["repaired"] == 0
PY
done

check "enough distinct rows: no note, distinct_rows null"
run train "$T/dup.npy" -k 5 --init kmeans++ -o "$T/c.npy" --stats "$T/s.json"
expect_status 0
grep -q '^note:' "$OUT" && fail "a note with 5 distinct rows and -k 5"
"$PY" -c 'import json,sys; assert json.load(open(sys.argv[1]))["distinct_rows"] is None' \
  "$T/s.json" || fail "distinct_rows is not null"

check "a row whose squared norm is above 4.25e37 is refused by name"
run train "$T/big.npy" -k 2 --init random -o "$T/c2.npy"
expect_status 1
grep -q 'big.npy: row 0 has squared norm 2.56e+38, above 4.25e+37' "$ERR" ||
  fail "message: $(cat "$ERR")"
[ -e "$T/c2.npy" ] && fail "an output was left behind"

finish
