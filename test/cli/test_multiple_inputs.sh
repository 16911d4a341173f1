#!/usr/bin/env bash
# Several INPUT files (or @LIST) are one data set in the order given: a .npy
# split into shards of mixed formats and dtypes trains into byte-identical
# centroids and labels, and assigns into identical labels and distances, in
# memory and disk mode. info describes each file and the total. A missing,
# unreadable or empty shard, a list that names nothing, and a dimension
# mismatch each fail with exit 1, one line naming the file, and no output;
# no output may replace a shard or a list.
source "$(dirname "$0")/lib.sh"

# 6000 rows of 12 small integers around 10 centres: exact in f16, f64, u8.
mkdir "$T/shards"
"$PY" - "$T" <<'PYEOF'
import sys
import numpy as np
t = sys.argv[1]
rng = np.random.default_rng(3)
centres = rng.integers(20, 230, size=(10, 12))
x = centres[rng.integers(0, 10, size=6000)] + rng.integers(-20, 21, size=(6000, 12))
x = np.clip(x, 0, 255).astype(np.float32)
np.save(f"{t}/x.npy", x)
def vecs(path, rows, dtype):
    n, d = rows.shape
    with open(path, "wb") as f:
        for r in rows:
            f.write(np.int32(d).tobytes())
            f.write(r.astype(dtype).tobytes())
s = f"{t}/shards"
np.save(f"{s}/s1.npy", x[:1000])                        # f32 npy
vecs(f"{s}/s2.fvecs", x[1000:2500], "<f4")               # fvecs
np.save(f"{s}/s3.npy", x[2500:2501].astype(np.float64))  # one f64 row
vecs(f"{s}/s4.bvecs", x[2501:4000], np.uint8)            # bvecs
np.save(f"{s}/s5.npy", x[4000:5000].astype(np.float16))  # f16 npy
np.save(f"{s}/s6.npy", x[5000:].astype(np.float64))      # f64 npy
PYEOF
S=$T/shards
shards=("$S/s1.npy" "$S/s2.fvecs" "$S/s3.npy" "$S/s4.bvecs" "$S/s5.npy" "$S/s6.npy")
common=(-k 10 --iters 8 --seed 9 --quiet --block-rows 700)

for storage in memory disk; do
  for mppc in 256 0; do
    check "train, --storage $storage --max-points-per-centroid $mppc: shards = the single file"
    opts=("${common[@]}" --storage "$storage" --max-points-per-centroid "$mppc" --tmp-dir "$T")
    run train "$T/x.npy" "${opts[@]}" -o "$T/c1.npy" --labels "$T/l1.npy"
    expect_status 0
    run train "${shards[@]}" "${opts[@]}" -o "$T/c2.npy" --labels "$T/l2.npy"
    expect_status 0
    cmp "$T/c1.npy" "$T/c2.npy" || fail "centroids differ ($storage, mppc $mppc)"
    cmp "$T/l1.npy" "$T/l2.npy" || fail "labels differ ($storage, mppc $mppc)"
    if [ "$storage$mppc" = memory256 ]; then # what the default options give
      cp "$T/c1.npy" "$T/cref.npy"
      cp "$T/l1.npy" "$T/lref.npy"
    fi
  done
done

check "assign: shards = the single file (labels and distances)"
run assign "$T/x.npy" -c "$T/c1.npy" -o "$T/a1.npy" --distances "$T/d1.npy" --quiet --block-rows 700
expect_status 0
run assign "${shards[@]}" -c "$T/c1.npy" -o "$T/a2.npy" --distances "$T/d2.npy" --quiet \
  --block-rows 700
expect_status 0
cmp "$T/a1.npy" "$T/a2.npy" || fail "assign labels differ"
cmp "$T/d1.npy" "$T/d2.npy" || fail "assign distances differ"
cmp "$T/a1.npy" "$T/l1.npy" || fail "assign labels differ from train --labels"

check "@LIST: relative to the list's folder, comments and blank lines skipped, from any folder"
printf '# the shards, in order\n\ns1.npy\ns2.fvecs\n   \n  # s3 next\ns3.npy\ns4.bvecs\r\n' \
  >"$S/list.txt"
printf '%s\n' "$S/s5.npy" "$S/s6.npy" >"$T/rest.txt" # absolute paths
mkdir "$T/elsewhere"
(cd "$T/elsewhere" && status_of "$DISKMEANS" train @../shards/list.txt @"$T/rest.txt" \
  "${common[@]}" -o "$T/c3.npy" --labels "$T/l3.npy" >"$OUT" 2>"$ERR")
expect_status 0
cmp "$T/cref.npy" "$T/c3.npy" || fail "@LIST centroids differ"
cmp "$T/lref.npy" "$T/l3.npy" || fail "@LIST labels differ"
run assign "$S/s1.npy" @"$S/list.txt" -c "$T/c1.npy" -o "$T/a3.npy" --quiet
expect_status 0
"$PY" - "$T" <<'PYEOF' || fail "a file named twice is read twice"
import sys
import numpy as np
t = sys.argv[1]
a, l = np.load(f"{t}/a3.npy"), np.load(f"{t}/l1.npy")
assert np.array_equal(a, np.concatenate([l[:1000], l[:4000]])), "labels not in input order"
PYEOF

check "--stats records every input"
run train @"$S/list.txt" "${common[@]}" -o "$T/c4.npy" --stats "$T/s.json"
expect_status 0
"$PY" - "$T" <<'PYEOF' || fail "stats JSON"
import json, sys
t = sys.argv[1]
s = json.load(open(f"{t}/s.json"))
assert [p.rsplit("/", 1)[1] for p in s["inputs"]] == ["s1.npy", "s2.fvecs", "s3.npy", "s4.bvecs"], s["inputs"]
assert s["rows"] == 4000 and s["dtype"] == "mixed" and s["format"] == "mixed", s
assert "(4 parts)" in s["input"], s["input"]
PYEOF

check "info: each file, then the total"
run info "${shards[@]}" -k 10
expect_status 0
grep -Eq '^file 1: +.*s1.npy: npy, f32, 1000 rows' "$OUT" || fail "file 1 line: $(head -3 "$OUT")"
grep -Eq '^file 4: +.*s4.bvecs: bvecs, u8, 1499 rows' "$OUT" || fail "file 4 line: $(cat "$OUT")"
grep -Eq '^file 5: +.*s5.npy: npy, f16, 1000 rows' "$OUT" || fail "file 5 line: $(cat "$OUT")"
grep -Eq '^files: +6$' "$OUT" || fail "files line: $(cat "$OUT")"
grep -Eq '^rows: +6000 \(total\)$' "$OUT" || fail "rows line: $(cat "$OUT")"
grep -Eq '^dtype: +mixed$' "$OUT" || fail "dtype line: $(cat "$OUT")"
grep -Eq '^sample rows: +2560$' "$OUT" || fail "no plan: $(cat "$OUT")"
run info "${shards[@]}" --json
expect_status 0
"$PY" - "$OUT" <<'PYEOF' || fail "info --json"
import json, sys
j = json.load(open(sys.argv[1]))
assert [f["rows"] for f in j["files"]] == [1000, 1500, 1, 1499, 1000, 1000], j["files"]
assert [f["dtype"] for f in j["files"]] == ["f32", "f32", "f64", "u8", "f16", "f64"], j["files"]
assert j["rows"] == 6000 and j["dim"] == 12 and j["dtype"] == "mixed", j
assert j["data_bytes"] == sum(f["data_bytes"] for f in j["files"]), j
PYEOF
run info "$S/s1.npy" "$S/s5.npy"
grep -Eq '^dtype: +mixed$' "$OUT" || fail "f32 + f16 is not mixed: $(cat "$OUT")"
run info "$S/s3.npy" "$S/s6.npy"
grep -Eq '^dtype: +f64$' "$OUT" || fail "f64 + f64 is not f64: $(cat "$OUT")"

check "--dim and --dtype apply to every file"
"$PY" -c "import numpy as np; x = np.load('$T/x.npy'); x[:2500].tofile('$T/r1.raw')"
run train "$T/r1.raw" "$T/x.npy" --dim 12 "${common[@]}" -o "$T/c5.npy"
expect_status 1
expect_one_error_line "x.npy: "
"$PY" -c "import numpy as np; x = np.load('$T/x.npy'); x[2500:].tofile('$T/r2.raw')"
run train "$T/r1.raw" "$T/r2.raw" --dim 12 "${common[@]}" -o "$T/c5.npy" --labels "$T/l5.npy"
expect_status 0
cmp "$T/cref.npy" "$T/c5.npy" || fail "raw shards: centroids differ"
cmp "$T/lref.npy" "$T/l5.npy" || fail "raw shards: labels differ"

# bad WANT ARGS...: the run fails with exit 1, one line matching WANT, and
# leaves no output and no temporary file.
bad() {
  local want=$1
  shift
  run "$@"
  expect_status 1
  expect_one_error_line "$want"
  [ -s "$OUT" ] && fail "output on stdout: $(head -c 200 "$OUT")"
  expect_missing "$T/bad.npy" "$T/bad_l.npy" "$T/bad.json"
  expect_no_temp "$T"
}
train_bad=(-k 10 -o "$T/bad.npy" --labels "$T/bad_l.npy" --stats "$T/bad.json")

check "a missing shard in the middle of a list"
printf 's1.npy\ngone.npy\ns2.fvecs\n' >"$S/missing.txt"
bad "shards/gone.npy: No such file or directory" train @"$S/missing.txt" "${train_bad[@]}"
bad "shards/gone.npy: No such file or directory" assign @"$S/missing.txt" -c "$T/c1.npy" \
  -o "$T/bad.npy"
bad "shards/gone.npy: No such file or directory" info @"$S/missing.txt"

check "an unreadable shard in the middle of a list"
mkdir "$S/dir.npy"
printf 's1.npy\ndir.npy\ns2.fvecs\n' >"$S/unreadable.txt"
bad "shards/dir.npy: Is a directory" train @"$S/unreadable.txt" "${train_bad[@]}"
if [ "$(id -u)" -ne 0 ]; then # root reads anything
  cp "$S/s3.npy" "$S/locked.npy"
  chmod 000 "$S/locked.npy"
  bad "shards/locked.npy: Permission denied" train "$S/s1.npy" "$S/locked.npy" "${train_bad[@]}"
  chmod 644 "$S/locked.npy"
fi

check "an empty file, and a .npy of no rows, in a list"
: >"$S/empty.npy"
"$PY" -c "import numpy as np; np.save('$S/norows.npy', np.zeros((0, 12), np.float32))"
printf 's1.npy\nempty.npy\ns2.fvecs\n' >"$S/empty.txt"
bad "shards/empty.npy: empty file" train @"$S/empty.txt" "${train_bad[@]}"
bad "shards/norows.npy: .*no rows" train "$S/s1.npy" "$S/norows.npy" "$S/s2.fvecs" \
  "${train_bad[@]}"

check "a dimension mismatch names both files"
"$PY" -c "import numpy as np; np.save('$S/d5.npy', np.zeros((10, 5), np.float32))"
bad "shards/d5.npy has 5 values per row but .*shards/s1.npy has 12" \
  train "$S/s1.npy" "$S/s2.fvecs" "$S/d5.npy" "${train_bad[@]}"
bad "shards/d5.npy has 5 values per row but .*shards/s1.npy has 12" \
  assign "$S/s1.npy" "$S/d5.npy" -c "$T/c1.npy" -o "$T/bad.npy"
bad "shards/d5.npy has 5 values per row" info "$S/s1.npy" "$S/d5.npy"

check "a list that is missing, or names no file"
bad "@$T/nolist.txt: No such file or directory" train @"$T/nolist.txt" "${train_bad[@]}"
printf '# nothing\n\n' >"$T/nothing.txt"
bad "@$T/nothing.txt: names no input file" train "$S/s1.npy" @"$T/nothing.txt" "${train_bad[@]}"

check "no output may replace a shard or a list"
cp "$S/s2.fvecs" "$T/s2.before"
bad "-o [^ ]+s2.fvecs and INPUT [^ ]+s2.fvecs are the same file" \
  train @"$S/list.txt" -k 10 -o "$S/../shards/s2.fvecs"
cmp "$S/s2.fvecs" "$T/s2.before" || fail "a shard changed"
cp "$S/list.txt" "$T/list.before"
bad "--stats [^ ]+list.txt and @LIST [^ ]+list.txt are the same file" \
  train @"$S/list.txt" -k 10 -o "$T/bad.npy" --stats "$S/list.txt"
cmp "$S/list.txt" "$T/list.before" || fail "the list changed"
bad "--distances [^ ]+s5.npy and INPUT [^ ]+s5.npy are the same file" \
  assign "${shards[@]}" -c "$T/c1.npy" -o "$T/bad.npy" --distances "$S/s5.npy"

check "'@' alone is a usage error"
run train @ -k 3 -o "$T/bad.npy"
expect_status 2
expect_one_error_line "'@' names no list file"
finish
