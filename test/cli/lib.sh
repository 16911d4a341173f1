# lib.sh - helpers the CLI tests share (sourced, not a test itself).
#
# Environment (set by ctest): DISKMEANS = the tool, DKM_TEST_TMP = scratch.
# Each test gets a fresh folder $T, removed on exit unless KEEP=1.

set -euo pipefail

: "${DISKMEANS:?set DISKMEANS to the diskmeans binary}"
: "${DKM_TEST_TMP:=/tmp}"
PY=/usr/bin/python3
mkdir -p "$DKM_TEST_TMP"
T=$(mktemp -d "$DKM_TEST_TMP/cli.XXXXXX")
if [ "${KEEP:-0}" != 1 ]; then
  trap 'rm -rf "$T"' EXIT
fi
FAILURES=0
OUT=$T/run.stdout # what the last run printed
ERR=$T/run.stderr

fail() {
  echo "FAIL: $*" >&2
  FAILURES=$((FAILURES + 1))
}

check() { # check DESCRIPTION: prints what is being checked
  echo "--- $*"
}

finish() {
  if [ "$FAILURES" -ne 0 ]; then
    echo "$FAILURES check(s) failed" >&2
    exit 1
  fi
  echo "all checks passed"
}

# status_of CMD...: runs any command, with the redirections the caller gives,
# and leaves its exit status in $RC. Never fails by itself.
status_of() {
  set +e
  "$@"
  RC=$?
  set -e
}

# run ARGS...: runs the tool, capturing status, stdout and stderr in
# $RC, $OUT, $ERR. Never fails by itself.
run() {
  status_of "$DISKMEANS" "$@" >"$OUT" 2>"$ERR"
}

# run_on_tty TERM ARGS...: runs the tool on a pseudo-terminal (script(1))
# with $TERM set to TERM. What the terminal showed, stdout and stderr alike,
# goes to $T/tty.out; the status to $RC.
run_on_tty() {
  local term=$1
  shift
  TERM=$term status_of script -qec "$(printf '%q ' "$DISKMEANS" "$@")" /dev/null \
    >"$T/tty.out" 2>&1
}

# wait_until TRIES CMD...: runs CMD every 0.05 s until it succeeds, at most
# TRIES times; fails if it never did.
wait_until() {
  local tries=$1
  shift
  for _ in $(seq 1 "$tries"); do
    "$@" && return 0
    sleep 0.05
  done
  return 1
}

# has_temp NAME: a temporary file for the output $T/NAME exists.
has_temp() {
  [ -n "$(find "$T" -maxdepth 1 -name "$1.tmp.*")" ]
}

# expect_status N: the last run exited with N.
expect_status() {
  if [ "$RC" -ne "$1" ]; then
    fail "expected exit $1, got $RC; stderr: $(head -c 400 "$ERR")"
  fi
}

# expect_one_error_line PATTERN: stderr is exactly one line starting with
# "diskmeans: " and matching the extended regex PATTERN.
expect_one_error_line() {
  local lines
  lines=$(wc -l <"$ERR")
  if [ "$lines" -ne 1 ]; then
    fail "expected one line on stderr, got $lines: $(head -c 400 "$ERR")"
  fi
  if ! grep -q '^diskmeans: ' "$ERR"; then
    fail "stderr does not start with 'diskmeans: ': $(head -c 200 "$ERR")"
  fi
  if ! grep -Eq -- "$1" "$ERR"; then
    fail "stderr does not match /$1/: $(head -c 400 "$ERR")"
  fi
  if grep -q 'AddressSanitizer\|runtime error' "$ERR"; then
    fail "sanitizer report in stderr"
  fi
}

# expect_no_temp DIR: no leftover NAME.tmp.XXXXXX file in DIR.
expect_no_temp() {
  local left
  left=$(find "$1" -maxdepth 1 -name '*.tmp.*' | head -5)
  if [ -n "$left" ]; then
    fail "temporary files left in $1: $left"
  fi
}

# expect_missing FILE...: the files do not exist.
expect_missing() {
  for f in "$@"; do
    if [ -e "$f" ]; then
      fail "$f should not exist"
    fi
  done
}

# blobs FILE.npy ROWS DIM CLUSTERS [SEED]: float32 rows around centres.
blobs() {
  "$PY" - "$@" <<'PYEOF'
import sys
import numpy as np
path, n, d, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
seed = int(sys.argv[5]) if len(sys.argv) > 5 else 7
rng = np.random.default_rng(seed)
centres = rng.normal(0, 10, size=(c, d))
x = centres[rng.integers(0, c, size=n)] + rng.normal(0, 1, size=(n, d))
np.save(path, x.astype(np.float32))
PYEOF
}

# npy_to FILE.npy OUT FORMAT: rewrites float32 rows as fvecs or raw.
npy_to() {
  "$PY" - "$@" <<'PYEOF'
import sys
import numpy as np
x = np.load(sys.argv[1]).astype(np.float32)
out, fmt = sys.argv[2], sys.argv[3]
if fmt == "fvecs":
    n, d = x.shape
    rows = np.empty((n, d + 1), dtype=np.float32)
    rows[:, 0] = np.array([d], dtype=np.int32).view(np.float32)[0]
    rows[:, 1:] = x
    rows.tofile(out)
elif fmt == "raw":
    x.tofile(out)
else:
    raise SystemExit("unknown format " + fmt)
PYEOF
}
