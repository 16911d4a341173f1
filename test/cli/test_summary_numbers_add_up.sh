#!/usr/bin/env bash
# The numbers train prints are honest: "sampled X of Y rows" tells the rows
# kept from the rows scanned, the parts of the time line add up to its total
# (and those of the --stats JSON to wall_seconds), and a --memory-limit the
# run will exceed (it bounds only the sample) is said on stderr.
source "$(dirname "$0")/lib.sh"

blobs "$T/x.npy" 20000 8 10

for labels in no yes; do
  check "sampled X of Y rows, and a time line that adds up (labels: $labels)"
  extra=()
  [ "$labels" = yes ] && extra=(--labels "$T/l.npy")
  run train "$T/x.npy" -k 10 -o "$T/c.npy" --stats "$T/s.json" "${extra[@]}"
  expect_status 0
  # 256 rows per centroid by default: 2,560 of the 20,000 rows.
  grep -Eq '^sampled 2560 of 20000 rows in [0-9.]+ s$' "$ERR" ||
    fail "sample line: $(grep sampled "$ERR")"
  "$PY" - "$OUT" "$T/s.json" "$labels" <<'PYEOF' || fail "time: $(grep '^time' "$OUT")"
import json, re, sys
out, stats, labels = open(sys.argv[1]).read(), json.load(open(sys.argv[2])), sys.argv[3]
line = [l for l in out.splitlines() if l.startswith("time ")]
assert len(line) == 1, out
m = re.fullmatch(r"time (\d+)\.(\d\d) s: (.*)", line[0])
assert m, line[0]
total = int(m.group(1)) * 100 + int(m.group(2))
parts = {}
for p in m.group(3).split(", "):
    name, s, h, unit = re.fullmatch(r"(\w+) (\d+)\.(\d\d) (s)", p).groups()
    parts[name] = int(s) * 100 + int(h)
want = ["sample", "init", "iterations"] + (["labels"] if labels == "yes" else []) + ["other"]
assert list(parts) == want, parts
assert sum(parts.values()) == total, (parts, total)
sec = stats["seconds"]
assert abs(sec["sample"] + sec["init"] + sec["iterations"] - sec["train"]) < 1e-6, sec
lab = sec["labels"] if labels == "yes" else 0
assert (sec["labels"] is None) == (labels == "no"), sec
assert abs(sec["train"] + lab + sec["other"] - stats["wall_seconds"]) < 1e-6, (sec, stats)
assert all(v is None or v >= 0 for v in sec.values()), sec
assert stats["sample_rows"] == 2560 and stats["rows"] == 20000
PYEOF
done

check "a memory limit below the estimated peak is noted, not an error"
run train "$T/x.npy" -k 10 -o "$T/c.npy" --memory-limit 1K
expect_status 0
n=$(grep -c '^diskmeans: note: training needs about .* mode, more than the memory limit of 1.0 KiB, which bounds the sample only$' "$ERR" || true)
[ "$n" = 1 ] || fail "expected one note: $(grep diskmeans "$ERR")"
[ -s "$T/c.npy" ] || fail "no centroids"
for storage in memory disk; do
  run train "$T/x.npy" -k 10 -o "$T/c.npy" --memory-limit 1K --storage "$storage"
  expect_status 0
  grep -q "^diskmeans: note: training needs about .* in $storage mode" "$ERR" ||
    fail "no note with --storage $storage: $(grep diskmeans "$ERR")"
done
run train "$T/x.npy" -k 10 -o "$T/c.npy" --memory-limit 1K --quiet
expect_status 0
[ -s "$ERR" ] && fail "--quiet printed: $(cat "$ERR")"
run train "$T/x.npy" -k 10 -o "$T/c.npy" --memory-limit 1G
expect_status 0
grep -q note "$ERR" && fail "a note under a limit that holds: $(grep note "$ERR")"

check "--help says the limit is for the sample"
run train --help
tr '\n' ' ' <"$OUT" | grep -Eq -- '--memory-limit SIZE +memory the sample may take.*the centroids +and buffers come on top' ||
  fail "train --help does not say what the limit bounds"
finish
