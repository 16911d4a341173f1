#!/usr/bin/env bash
# train --checkpoint FILE [--resume]: a run killed (SIGKILL) at random
# instants -- while sampling, mid-iteration, during a checkpoint write,
# between hierarchical groups, during refinement -- and resumed, with other
# threads, storage or block size, writes the same centroids, labels and
# statistics (timings aside) as a run never killed; success removes the
# checkpoint; a mismatch or a damaged file is one error line, exit 1, with
# nothing written; the checkpoint may not name an input.
source "$(dirname "$0")/lib.sh"

blobs "$T/x.npy" 30000 24 40

# Compares two runs: centroids and labels bit for bit, the stats JSON
# without what may differ (timings, memory, storage, threads).
same_run() {
  "$PY" - "$@" <<'PYEOF'
import json, sys
import numpy as np
a, b, ca, cb, la, lb = sys.argv[1:7]
def strip(path):
    j = json.load(open(path))
    for k in ("seconds", "wall_seconds", "peak_rss_bytes", "params", "plan", "storage",
              "spill_bytes", "from_source", "outputs"):
        j.pop(k, None)
    for it in j["iterations"]:
        it.pop("seconds")
    if j.get("hierarchical"):
        j["hierarchical"] = {k: v for k, v in j["hierarchical"].items()
                             if not k.endswith("seconds")}
    return j
ja, jb = strip(a), strip(b)
bad = [k for k in ja if ja[k] != jb.get(k)]
if not np.array_equal(np.load(ca), np.load(cb)):
    bad.append("centroids")
if np.load(la).tobytes() != np.load(lb).tobytes():
    bad.append("labels")
if bad:
    sys.exit("differ: " + ", ".join(bad))
PYEOF
}

# kill_and_resume NAME ARGS...: a reference run, then runs killed after a
# random part of its time and resumed; each result must be the reference's.
kill_and_resume() {
  local name=$1
  shift
  local ref_start ref_ms
  ref_start=$(date +%s%N)
  run train "$T/x.npy" "$@" -o "$T/$name.ref.npy" --labels "$T/$name.ref.labels.npy" \
    --stats "$T/$name.ref.json" -q
  expect_status 0
  ref_ms=$((($(date +%s%N) - ref_start) / 1000000))
  local resumed=0 alt i delay
  for i in 1 2 3 4 5; do
    rm -f "$T/$name.ckpt"
    # From the first tenth (sampling) to all of the reference's time.
    delay=$((ref_ms * (RANDOM % 100 + 5) / 100))
    "$DISKMEANS" train "$T/x.npy" "$@" -o "$T/$name.npy" --labels "$T/$name.labels.npy" \
      --stats "$T/$name.json" -q --checkpoint "$T/$name.ckpt" &
    local pid=$!
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    kill -KILL "$pid" 2>/dev/null || true
    set +e
    wait "$pid"
    local rc=$?
    set -e
    rm -f "$T"/*.tmp.* # a kill -9 leaves the outputs' temporary files
    if [ "$rc" -eq 0 ]; then
      check "$name: a run that finished before the kill removed its checkpoint"
      expect_missing "$T/$name.ckpt"
    elif [ -f "$T/$name.ckpt" ]; then
      case $((i % 3)) in
        0) alt=(--threads 1) ;;
        1) alt=(--storage disk --tmp-dir "$T") ;;
        2) alt=(--block-rows 1000 --threads 2) ;;
      esac
      check "$name: killed after ${delay} ms of ${ref_ms}, resumed with ${alt[*]}"
      run train "$T/x.npy" "$@" -o "$T/$name.npy" --labels "$T/$name.labels.npy" \
        --stats "$T/$name.json" -q --checkpoint "$T/$name.ckpt" --resume "${alt[@]}"
      expect_status 0
      resumed=$((resumed + 1))
      expect_missing "$T/$name.ckpt"
    else
      continue # killed before the first save: nothing to resume
    fi
    same_run "$T/$name.ref.json" "$T/$name.json" "$T/$name.ref.npy" "$T/$name.npy" \
      "$T/$name.ref.labels.npy" "$T/$name.labels.npy" || fail "$name: the result differs"
  done
  echo "$name: $resumed of 5 runs resumed"
}

kill_and_resume flat -k 200 --iters 25 --tol 0 --max-points-per-centroid 150
kill_and_resume redo -k 100 --iters 8 --tol 0 --redo 3 --init random \
  --max-points-per-centroid 150
kill_and_resume hier -k 400 --strategy hierarchical --iters 6 --tol 0 --refine 3 \
  --max-points-per-centroid 40

# A checkpoint stopped mid-run, for the refusals below.
make_checkpoint() {
  rm -f "$T/c.ckpt"
  "$DISKMEANS" train "$T/x.npy" -k 200 --iters 25 --tol 0 -o "$T/c.npy" -q \
    --checkpoint "$T/c.ckpt" &
  local pid=$!
  wait_until 200 test -f "$T/c.ckpt" || fail "no checkpoint written"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$T"/c.npy.tmp.*
  cp "$T/c.ckpt" "$T/c.saved"
}

# refused PATTERN ARGS...: resuming with ARGS exits 1 with one error line
# matching PATTERN, writes no output and leaves the checkpoint as it was.
refused() {
  local pattern=$1
  shift
  run train "$@" -o "$T/out.npy" -q --checkpoint "$T/c.ckpt" --resume
  expect_status 1
  expect_one_error_line "$pattern"
  expect_missing "$T/out.npy"
  expect_no_temp "$T"
  cmp -s "$T/c.ckpt" "$T/c.saved" || fail "the checkpoint changed"
}

make_checkpoint
check "a changed parameter is named"
refused "checkpoint .*c.ckpt: seed differs \(checkpoint 1234, this run 5\)" \
  "$T/x.npy" -k 200 --iters 25 --tol 0 --seed 5
refused "k differs" "$T/x.npy" -k 201 --iters 25 --tol 0
refused "max_iter differs" "$T/x.npy" -k 200 --iters 24 --tol 0
refused "tol differs" "$T/x.npy" -k 200 --iters 25
refused "metric differs" "$T/x.npy" -k 200 --iters 25 --tol 0 --metric cosine
refused "init differs" "$T/x.npy" -k 200 --iters 25 --tol 0 --init random
refused "max_points_per_centroid differs" "$T/x.npy" -k 200 --iters 25 --tol 0 \
  --max-points-per-centroid 100
check "another input, or the same one rewritten, is named"
cp "$T/x.npy" "$T/y.npy"
refused "input differs" "$T/y.npy" -k 200 --iters 25 --tol 0
touch -d '2001-01-01' "$T/x.npy"
refused "input mtime differs" "$T/x.npy" -k 200 --iters 25 --tol 0
cp "$T/x.npy" "$T/x2.npy"

check "a damaged checkpoint is refused"
head -c 100 "$T/c.saved" >"$T/c.ckpt"
cp "$T/c.ckpt" "$T/c.saved"
refused "checkpoint .*c.ckpt: truncated" "$T/x.npy" -k 200 --iters 25 --tol 0
"$PY" -c "
import sys
b = bytearray(open(sys.argv[1], 'rb').read()); b[len(b) // 2] ^= 1
open(sys.argv[2], 'wb').write(b)" "$T/c.saved" "$T/c.flip"
make_checkpoint
"$PY" -c "
import sys
b = bytearray(open(sys.argv[1], 'rb').read()); b[len(b) // 2] ^= 1
open(sys.argv[1], 'wb').write(b)" "$T/c.ckpt"
cp "$T/c.ckpt" "$T/c.saved"
refused "checkpoint .*c.ckpt: damaged" "$T/x.npy" -k 200 --iters 25 --tol 0
printf 'not a checkpoint at all, but long enough to have a header' >"$T/c.ckpt"
cp "$T/c.ckpt" "$T/c.saved"
refused "not a diskmeans checkpoint" "$T/x.npy" -k 200 --iters 25 --tol 0

check "resuming from a missing checkpoint is an error"
rm -f "$T/c.ckpt"
run train "$T/x.npy" -k 20 -o "$T/out.npy" -q --checkpoint "$T/c.ckpt" --resume
expect_status 1
expect_one_error_line "c.ckpt: cannot resume from it: No such file"
expect_missing "$T/out.npy"

check "--resume needs --checkpoint"
run train "$T/x.npy" -k 20 -o "$T/out.npy" --resume
expect_status 2
expect_one_error_line "--resume needs --checkpoint"

check "the checkpoint may not name an input or another output"
run train "$T/x.npy" -k 20 -o "$T/out.npy" --checkpoint "$T/x.npy"
expect_status 1
expect_one_error_line "--checkpoint .*x.npy and INPUT .*x.npy are the same file"
run train "$T/x.npy" -k 20 -o "$T/x2.npy" --checkpoint "$T/x2.npy"
expect_status 1
expect_one_error_line "same file"

check "a checkpoint in a missing folder fails at once"
run train "$T/x.npy" -k 20 -o "$T/out.npy" --checkpoint "$T/nowhere/c.ckpt"
expect_status 1
expect_one_error_line "--checkpoint .*nowhere/c.ckpt: cannot write in its folder: No such file"
expect_missing "$T/out.npy"

check "without --resume an existing checkpoint is replaced, and success removes it"
printf 'old' >"$T/c.ckpt"
run train "$T/x.npy" -k 20 -o "$T/out.npy" -q --checkpoint "$T/c.ckpt"
expect_status 0
expect_missing "$T/c.ckpt" "$T/c.ckpt.tmp"

finish
