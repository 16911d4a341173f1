#!/usr/bin/env bash
# info (text and JSON), --init FILE, and the storage options: memory and disk
# storage, thread counts and block sizes give byte-identical centroids.
source "$(dirname "$0")/lib.sh"

blobs "$T/x.npy" 3000 8 5
npy_to "$T/x.npy" "$T/x.fvecs" fvecs

check "info: format, rows, dim, dtype, bytes"
run info "$T/x.fvecs"
expect_status 0
grep -Eq '^format: +fvecs$' "$OUT" || fail "format line: $(cat "$OUT")"
grep -Eq '^rows: +3000$' "$OUT" || fail "rows line"
grep -Eq '^dim: +8$' "$OUT" || fail "dim line"
grep -Eq '^dtype: +f32$' "$OUT" || fail "dtype line"
grep -Eq "^bytes: +.* \\((3000 \\* 36|108000) bytes\\)$" "$OUT" || fail "bytes line: $(grep bytes "$OUT")"
grep -Eq '^data bytes: +93\.8 KiB \(96000 bytes\)$' "$OUT" || fail "data bytes line: $(grep data "$OUT")"
grep -q '^k:' "$OUT" && fail "plan printed without -k"

check "info -k: the plan, human-readable"
run info "$T/x.npy" -k 5 --max-points-per-centroid 100 --memory-limit 1G
expect_status 0
grep -Eq '^sample rows: +500$' "$OUT" || fail "sample rows: $(cat "$OUT")"
grep -Eq '^sample bytes: +15\.6 KiB \(16000 bytes\)$' "$OUT" || fail "sample bytes"
grep -Eq '^memory limit: +1\.0 GiB \(1073741824 bytes\)$' "$OUT" || fail "memory limit"
grep -Eq '^memory limit from: +--memory-limit$' "$OUT" || fail "memory limit source"
grep -Eq '^auto would choose: +memory' "$OUT" || fail "auto choice"
grep -Eq '^memory mode needs: ' "$OUT" || fail "memory mode line"
grep -Eq '^disk mode needs: ' "$OUT" || fail "disk mode line"
grep -Eq '^spill bytes: ' "$OUT" || fail "spill line"

check "info -k: the default budget says where it comes from"
run info "$T/x.npy" -k 5
expect_status 0
grep -Eq '^memory limit from: +half of (physical RAM|cgroup memory\.max|cgroup memory\.high|cgroup v1 memory\.limit_in_bytes)$' "$OUT" ||
  fail "memory limit source: $(grep 'limit from' "$OUT")"

check "info --json"
run info "$T/x.npy" -k 5 --json --storage disk
expect_status 0
"$PY" - "$OUT" <<'PYEOF' || fail "info --json checks failed"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["format"] == "npy" and j["rows"] == 3000 and j["dim"] == 8 and j["dtype"] == "f32", j
assert j["bytes"] > 3000 * 8 * 4 and j["data_bytes"] == 3000 * 8 * 4, j
p = j["plan"]
assert p["k"] == 5 and p["sample_rows"] == 1280 and p["sample_bytes"] == 1280 * 8 * 4, p
assert p["storage"] == "disk" and p["storage_requested"] == "disk", p
assert p["memory_mode_bytes"] > 0 and p["disk_mode_bytes"] > 0
assert p["memory_limit_source"] in ("physical RAM", "cgroup memory.max", "cgroup memory.high",
                                    "cgroup v1 memory.limit_in_bytes"), p
PYEOF
run info "$T/x.npy" --json
"$PY" -c "import json,sys; assert json.load(open('$OUT'))['plan'] is None" || fail "plan not null"

check "a failed write to stdout is an error"
if [ -w /dev/full ]; then
  status_of "$DISKMEANS" info "$T/x.npy" >/dev/full 2>"$ERR"
  expect_status 1
  expect_one_error_line "cannot write to standard output"
fi

check "--init FILE: the given centroids are used"
"$PY" - "$T" <<'PYEOF'
import sys
import numpy as np
t = sys.argv[1]
x = np.load(f"{t}/x.npy")
np.save(f"{t}/init.npy", x[[3, 600, 1200, 1800, 2400]])
np.save(f"{t}/init4.npy", x[[3, 600, 1200, 1800]])
np.save(f"{t}/init_d7.npy", x[[3, 600, 1200, 1800, 2400], :7])
PYEOF
run train "$T/x.npy" -k 5 --init "$T/init.npy" --iters 1 --max-points-per-centroid 0 \
  -o "$T/c1.npy" --stats "$T/s1.json" -q
expect_status 0
"$PY" - "$T" <<'PYEOF' || fail "--init checks failed"
import json, sys
import numpy as np
t = sys.argv[1]
x = np.load(f"{t}/x.npy").astype(np.float64)
init = np.load(f"{t}/init.npy").astype(np.float64)
c = np.load(f"{t}/c1.npy").astype(np.float64)
# One Lloyd step from init: each centroid is the mean of the rows nearest
# to the initial centroid.
l = ((x[:, None] - init[None]) ** 2).sum(-1).argmin(1)
want = np.stack([x[l == j].mean(0) for j in range(5)])
assert np.allclose(c, want, rtol=1e-4, atol=1e-3), np.abs(c - want).max()
s = json.load(open(f"{t}/s1.json"))
assert s["params"]["init"] == "given" and s["params"]["init_file"].endswith("init.npy"), s["params"]
PYEOF

check "--init kmeans++ and --redo"
run train "$T/x.npy" -k 5 --init kmeans++ --redo 3 --seed 9 -o "$T/kpp.npy" --stats "$T/kpp.json" -q
expect_status 0
"$PY" - "$T/kpp.json" <<'PYEOF' || fail "kmeans++/redo stats"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["params"]["init"] == "kmeans++" and s["params"]["n_redo"] == 3 and s["params"]["seed"] == 9
assert 0 <= s["best_run"] < 3 and s["objective"] > 0
PYEOF

check "--init greedy-kmeans++"
run train "$T/x.npy" -k 5 --init greedy-kmeans++ --seed 9 -o "$T/gkpp.npy" --stats "$T/gkpp.json" -q
expect_status 0
"$PY" - "$T/gkpp.json" <<'PYEOF' || fail "greedy-kmeans++ stats"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["params"]["init"] == "greedy-kmeans++" and s["objective"] > 0, s["params"]
PYEOF

check "--init FILE of the wrong shape, or bad"
run train "$T/x.npy" -k 5 --init "$T/init4.npy" -o "$T/c2.npy"
expect_status 1
expect_one_error_line "init4.npy: has 4 rows, but -k is 5"
run train "$T/x.npy" -k 5 --init "$T/init_d7.npy" -o "$T/c2.npy"
expect_status 1
expect_one_error_line "init_d7.npy: initial centroids have dimension 7, but .*x.npy has dimension 8"
run train "$T/x.npy" -k 5 --init "$T/missing.npy" -o "$T/c2.npy"
expect_status 1
expect_one_error_line "--init: '.*missing.npy' is neither random, kmeans\+\+, greedy-kmeans\+\+ nor an existing file"
expect_missing "$T/c2.npy"

check "memory and disk storage, threads, block sizes: identical centroids"
ref="$T/ref.npy"
run train "$T/x.npy" -k 5 --iters 6 --max-points-per-centroid 0 -o "$ref" --stats "$T/sm.json" \
  --storage memory -q
expect_status 0
variants=(
  "--storage disk --tmp-dir $T"
  "--storage auto --memory-limit 1K"
  "--threads 1"
  "--threads 2 --block-rows 33"
  "--block-rows 1"
)
i=0
for v in "${variants[@]}"; do
  i=$((i + 1))
  # shellcheck disable=SC2086
  run train "$T/x.npy" -k 5 --iters 6 --max-points-per-centroid 0 -o "$T/v$i.npy" \
    --stats "$T/s$i.json" $v -q
  expect_status 0
  cmp -s "$ref" "$T/v$i.npy" || fail "centroids differ with $v"
done
"$PY" - "$T" <<'PYEOF' || fail "storage checks failed"
import json, sys
t = sys.argv[1]
m = json.load(open(f"{t}/sm.json"))
s2 = json.load(open(f"{t}/s2.json"))
assert m["storage"] == "memory", m["storage"]
assert s2["storage"] == "disk", ("auto with a 1K limit chose", s2["storage"])
assert m["objective"] == s2["objective"]
PYEOF

check "TMPDIR is the default spill folder: a missing one is an error naming it"
TMPDIR="$T/no-such-tmp" run train "$T/x.npy" -k 5 --storage disk -o "$T/c3.npy"
# With npy input, disk mode may read the file in place and need no spill
# file at all; only when it spills must the missing folder be reported.
if [ "$RC" -ne 0 ]; then
  expect_status 1
  expect_one_error_line "no-such-tmp"
  expect_missing "$T/c3.npy"
fi
run train "$T/x.npy" -k 5 --storage disk --tmp-dir "$T/no-such-tmp" -o "$T/c3.npy" --stats "$T/s3.json" -q
if [ "$RC" -ne 0 ]; then
  expect_status 1
  expect_one_error_line "no-such-tmp"
else
  "$PY" -c "import json; s=json.load(open('$T/s3.json')); assert s['spill_bytes'] == 0, s" ||
    fail "spilled into a missing folder?"
fi
check "a gzip input is spilled in disk mode: same centroids, spill bytes counted"
"$PY" - "$T" <<'PYEOF'
import gzip, struct, sys
import numpy as np
t = sys.argv[1]
rng = np.random.default_rng(3)
x = rng.integers(0, 256, size=(2000, 6), dtype=np.uint8)
hdr = struct.pack(">BBBB", 0, 0, 8, 2) + struct.pack(">II", 2000, 6)
open(f"{t}/u.idx.gz", "wb").write(gzip.compress(hdr + x.tobytes()))
PYEOF
run train "$T/u.idx.gz" -k 4 --iters 5 --max-points-per-centroid 0 --storage memory \
  -o "$T/gm.npy" --stats "$T/gm.json" -q
expect_status 0
run train "$T/u.idx.gz" -k 4 --iters 5 --max-points-per-centroid 0 --storage disk --tmp-dir "$T" \
  -o "$T/gd.npy" --stats "$T/gd.json" -q
expect_status 0
cmp -s "$T/gm.npy" "$T/gd.npy" || fail "gzip input: memory and disk storage differ"
"$PY" - "$T" <<'PYEOF' || fail "spill statistics"
import json, sys
t = sys.argv[1]
m, d = json.load(open(f"{t}/gm.json")), json.load(open(f"{t}/gd.json"))
assert m["storage"] == "memory" and d["storage"] == "disk", (m["storage"], d["storage"])
assert d["spill_bytes"] >= 2000 * 6 * 4, d["spill_bytes"]
assert m["spill_bytes"] == 0
assert d["format"] == "idx" and d["dtype"] == "u8"
PYEOF
[ -z "$(find "$T" -maxdepth 1 -newer "$T/gm.json" -type f ! -name 'g*' ! -name 'run.*')" ] ||
  fail "a file was left in --tmp-dir: $(find "$T" -maxdepth 1 -newer "$T/gm.json" -type f)"
TMPDIR="$T/no-such-tmp" run train "$T/u.idx.gz" -k 4 --storage disk -o "$T/c4.npy"
expect_status 1
expect_one_error_line "no-such-tmp"
expect_missing "$T/c4.npy"

expect_no_temp "$T"
finish
