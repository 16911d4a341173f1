#!/usr/bin/env bash
# The partition balance that train reports (the "partitions:" line, and
# "balance" / "label_balance" in --stats) is that of the cluster sizes: it
# agrees with the sizes recounted from the labels, with the cluster_sizes
# summary, and with what the summary line prints.
source "$(dirname "$0")/lib.sh"

# Uneven clusters, so that the balance is far from trivial: 8 blobs whose
# sizes fall as 1/i.
"$PY" - "$T/x.npy" <<'PYEOF'
import sys
import numpy as np
rng = np.random.default_rng(3)
sizes = [int(3000 / (i + 1)) for i in range(8)]
centres = rng.normal(0, 30, size=(8, 6))
x = np.concatenate([centres[i] + rng.normal(0, 1, size=(n, 6)) for i, n in enumerate(sizes)])
np.save(sys.argv[1], x[rng.permutation(len(x))].astype(np.float32))
PYEOF

check "balance of a flat run: recounted from the labels, and from assign's labels"
# Every row is in the sample (--max-points-per-centroid 0), and 60 iterations
# without a tolerance leave the assignment settled, so the last
# iteration's sizes are also those of the labels.
run train "$T/x.npy" -k 8 --iters 60 --tol 0 --max-points-per-centroid 0 -o "$T/c.npy" \
  --labels "$T/l.npy" --stats "$T/s.json"
expect_status 0
cp "$OUT" "$T/summary.txt"
run assign "$T/x.npy" -c "$T/c.npy" -o "$T/a.npy" --quiet
expect_status 0
"$PY" - "$T/s.json" "$T/l.npy" "$T/a.npy" "$T/summary.txt" <<'PYEOF' || fail "balance does not match the sizes"
import json, math, re, sys
import numpy as np
stats = json.load(open(sys.argv[1]))
k = stats["params"]["k"]

def balance_of(sizes):
    sizes = np.asarray(sizes, dtype=np.float64)
    mean = sizes.mean()
    return {"cv": sizes.std() / mean, "largest_over_mean": sizes.max() / mean,
            "smallest": int(sizes.min()), "largest": int(sizes.max()),
            "empty": int((sizes == 0).sum())}

def same(got, want, what):
    assert set(got) == set(want), (what, got)
    for key in want:
        if isinstance(want[key], int):
            assert got[key] == want[key], (what, key, got[key], want[key])
        else:
            assert math.isclose(got[key], want[key], rel_tol=1e-9, abs_tol=1e-12), (what, key, got[key], want[key])

train_sizes = np.bincount(np.load(sys.argv[2]), minlength=k)
assign_sizes = np.bincount(np.load(sys.argv[3]), minlength=k)
assert (train_sizes == assign_sizes).all(), (train_sizes, assign_sizes)
want = balance_of(train_sizes)
print("recounted:", want)
same(stats["label_balance"], want, "label_balance")
same(stats["balance"], want, "balance")

# The balance of the sample's sizes agrees with their summary: the same
# extremes and empty count, and CV^2 = imbalance - 1.
b, z = stats["balance"], stats["cluster_sizes"]
assert (b["smallest"], b["largest"], b["empty"]) == (z["min"], z["max"], z["empty"]), (b, z)
assert math.isclose(b["cv"] ** 2, z["imbalance"] - 1, rel_tol=1e-9, abs_tol=1e-12), (b, z)
assert math.isclose(b["largest_over_mean"], z["max"] / z["mean"], rel_tol=1e-9), (b, z)
assert b["cv"] > 0.3, b  # the sizes are uneven, so this checks something

# The summary line prints the same numbers.
line = [l for l in open(sys.argv[4]).read().splitlines() if l.startswith("partitions: ")]
assert len(line) == 1, line
m = re.fullmatch(r"partitions: CV (\d+\.\d{3}), largest (\d+) \((\d+\.\d\d)x the mean\), "
                 r"smallest (\d+), (\d+) empty", line[0])
assert m, line[0]
assert m.group(1) == f"{b['cv']:.3f}" and m.group(3) == f"{b['largest_over_mean']:.2f}", (line, b)
assert (int(m.group(2)), int(m.group(4)), int(m.group(5))) == (b["largest"], b["smallest"], b["empty"])
assert stats["strategy"] == "flat" and stats["hierarchical"] is None, stats["strategy"]
PYEOF

check "balance without --labels: label_balance is null, balance still there"
run train "$T/x.npy" -k 8 -o "$T/c2.npy" --stats "$T/s2.json"
expect_status 0
"$PY" -c "
import json
s = json.load(open('$T/s2.json'))
assert s['label_balance'] is None, s['label_balance']
assert s['balance']['largest'] == s['cluster_sizes']['max'], s['balance']
" || fail "balance without --labels"
grep -q '^partitions: CV ' "$OUT" || fail "no partitions line: $(cat "$OUT")"

check "empty clusters are counted: more centroids than distinct rows"
"$PY" -c "
import numpy as np
np.save('$T/dup.npy', np.repeat(np.eye(3, 4, dtype=np.float32), 20, axis=0))
"
run train "$T/dup.npy" -k 5 -o "$T/c3.npy" --stats "$T/s3.json"
expect_status 0
grep -q '^partitions: CV [0-9.]*, largest 20 (1.67x the mean), smallest 0, 2 empty$' "$OUT" ||
  fail "partitions line with empty clusters: $(grep partitions "$OUT")"
"$PY" -c "
import json
b = json.load(open('$T/s3.json'))['balance']
assert (b['smallest'], b['largest'], b['empty']) == (0, 20, 2), b
" || fail "balance with empty clusters"
finish
