#!/usr/bin/env bash
# SIGINT or SIGTERM during training cancels it through the progress callback:
# exit 130 / 143, no temporary file, existing outputs untouched, and one line
# saying it was interrupted.
source "$(dirname "$0")/lib.sh"

blobs "$T/x.npy" 100000 32 64
echo "old" >"$T/c.npy"
echo "old" >"$T/l.npy"

# Training that would run for minutes: many iterations, no early stop.
long_run() { # long_run verbose|quiet
  local extra=()
  [ "$1" = quiet ] && extra=(--quiet)
  "$DISKMEANS" train "$T/x.npy" -k 256 --iters 100000 --tol 0 --max-points-per-centroid 0 \
    -o "$T/c.npy" --labels "$T/l.npy" --stats "$T/s.json" "${extra[@]}" >"$OUT" 2>"$ERR" &
  PID=$!
  # The temporary outputs are created before training starts.
  wait_until 600 has_temp c.npy || fail "no temporary output appeared"
  # Wait until the first iteration is over (slow under sanitizers or on a
  # busy machine); with --quiet there is nothing to wait for.
  if [ "$1" != quiet ]; then
    wait_until 1200 grep -q '^iteration 1/' "$ERR" || true
  fi
  sleep 0.2
}

for sig in INT TERM; do
  check "SIG$sig during training"
  long_run verbose
  kill -s "$sig" "$PID"
  status_of wait "$PID"
  if [ "$sig" = INT ]; then expect_status 130; else expect_status 143; fi
  grep -q "iteration" "$ERR" || fail "training had not started: $(head -c 300 "$ERR")"
  tail -n 1 "$ERR" | grep -q '^diskmeans: interrupted$' || fail "last line: $(tail -n 1 "$ERR")"
  grep -q 'AddressSanitizer\|runtime error' "$ERR" && fail "sanitizer report"
  expect_no_temp "$T"
  [ "$(cat "$T/c.npy")" = old ] || fail "c.npy was replaced"
  [ "$(cat "$T/l.npy")" = old ] || fail "l.npy was replaced"
  expect_missing "$T/s.json"
done

check "SIGINT with --quiet prints only the one line"
long_run quiet
kill -s INT "$PID"
status_of wait "$PID"
expect_status 130
[ "$(cat "$ERR")" = "diskmeans: interrupted" ] || fail "stderr: $(head -c 300 "$ERR")"
expect_no_temp "$T"

check "a signal outside a library call still says why"
# Opening a FIFO blocks until a writer comes: the tool waits there with its
# temporary output created and no library call running.
mkfifo "$T/fifo.npy"
"$DISKMEANS" train "$T/fifo.npy" -k 3 -o "$T/f.npy" >"$OUT" 2>"$ERR" &
PID=$!
wait_until 600 has_temp f.npy || fail "no temporary output appeared"
kill -s TERM "$PID"
status_of wait "$PID"
expect_status 143
expect_one_error_line "^diskmeans: interrupted$"
expect_no_temp "$T"
expect_missing "$T/f.npy"
rm "$T/fifo.npy"

# temp_is_sized NAME BYTES: the temporary file for $T/NAME has BYTES or more.
temp_is_sized() {
  [ -n "$(find "$T" -maxdepth 1 -name "$1.tmp.*" -size +$(($2 - 1))c)" ]
}

check "SIGINT during assign"
# 200,000 rows against 65,536 centroids: about 1.7 10^12 flops, seconds of work
# even for a fast kernel (4,096 centroids took under the 0.5 s we wait). In
# blocks of 2,048 rows, since the signal is seen between blocks: one block of
# the automatic 32,768 rows took eight minutes under ASan on a busy machine.
"$PY" -c "
import numpy as np
rng = np.random.default_rng(1)
np.save('$T/a.npy', rng.standard_normal((200000, 64), dtype=np.float32))
np.save('$T/ac.npy', rng.standard_normal((65536, 64), dtype=np.float32))"
"$DISKMEANS" assign "$T/a.npy" -c "$T/ac.npy" -o "$T/l.npy" --distances "$T/d.npy" \
  --block-rows 2048 >"$OUT" 2>"$ERR" &
PID=$!
# The tool sizes its outputs (the distances last) just before the library
# call: wait for that, not only for the files, so that the signal does not
# land while the inputs are still loading (under TSan on a busy machine that
# took more than the 0.5 s), which ends the tool at once and silently.
wait_until 6000 temp_is_sized d.npy 800000 || true
sleep 0.5
kill -s INT "$PID"
status_of wait "$PID"
expect_status 130
expect_one_error_line "^diskmeans: interrupted$"
expect_no_temp "$T"
[ "$(cat "$T/l.npy")" = old ] || fail "l.npy was replaced"
expect_missing "$T/d.npy"
finish
