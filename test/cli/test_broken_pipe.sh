#!/usr/bin/env bash
# A reader that goes away (diskmeans train ... 2>&1 | head) sends SIGPIPE:
# the run stops as on Ctrl-C, exits 141 (128 + 13) and leaves no temporary
# file and no partial output.
source "$(dirname "$0")/lib.sh"

blobs "$T/x.npy" 20000 16 32
echo "old" >"$T/l.npy"

# closed_pipe ARGS...: runs the tool with stdout and stderr on a pipe whose
# reading end is already closed, so that its first write gets SIGPIPE (no
# race with a reader that may or may not have exited yet). $RC is the exit
# status as a shell reports it.
closed_pipe() {
  status_of "$PY" - "$DISKMEANS" "$@" <<'PYEOF'
import os, subprocess, sys
r, w = os.pipe()
os.close(r)
# restore_signals (the default) gives the child SIGPIPE's default action,
# which Python itself ignores.
p = subprocess.run(sys.argv[1:], stdout=w, stderr=w)
sys.exit(128 - p.returncode if p.returncode < 0 else p.returncode)
PYEOF
}

check "train with its progress going to a closed pipe"
closed_pipe train "$T/x.npy" -k 16 --iters 50 --tol 0 -o "$T/c.npy" --labels "$T/l.npy" \
  --stats "$T/s.json"
expect_status 141
expect_no_temp "$T"
expect_missing "$T/c.npy" "$T/s.json"
[ "$(cat "$T/l.npy")" = old ] || fail "l.npy was replaced"

check "assign with its progress going to a closed pipe"
"$DISKMEANS" train "$T/x.npy" -k 16 -o "$T/c.npy" --quiet
closed_pipe assign "$T/x.npy" -c "$T/c.npy" -o "$T/l.npy" --distances "$T/d.npy"
expect_status 141
expect_no_temp "$T"
expect_missing "$T/d.npy"
[ "$(cat "$T/l.npy")" = old ] || fail "l.npy was replaced"

check "with --quiet nothing is written, so nothing breaks"
closed_pipe train "$T/x.npy" -k 16 -o "$T/q.npy" --quiet
expect_status 0
[ -s "$T/q.npy" ] || fail "no centroids"
expect_no_temp "$T"
finish
