#!/usr/bin/env bash
# Progress on stderr: plain lines without escape codes or carriage returns
# when stderr is not a terminal, a bar under a pseudo-terminal, nothing with
# --quiet.
source "$(dirname "$0")/lib.sh"

blobs "$T/x.npy" 5000 8 4

check "stderr not a terminal: no CR, no ESC, at most one line per iteration"
run train "$T/x.npy" -k 4 --iters 6 --tol 0 -o "$T/c.npy" --labels "$T/l.npy"
expect_status 0
if LC_ALL=C grep -q $'[\r\x1b]' "$ERR"; then
  fail "CR or ESC in stderr: $(od -c "$ERR" | head -5)"
fi
n=$(grep -c '^iteration [0-9]*/6: objective' "$ERR" || true)
[ "$n" -eq 6 ] || fail "expected 6 iteration lines, got $n: $(cat "$ERR")"
[ "$(grep -c '^iteration 3/6' "$ERR")" -eq 1 ] || fail "iteration 3 reported more than once"
grep -q '^labelled 5000 rows' "$ERR" || fail "no labelling line: $(cat "$ERR")"
LC_ALL=C grep -q $'[\r\x1b]' "$OUT" && fail "CR or ESC on stdout"
grep -q '^iteration ' "$OUT" && fail "progress leaked to stdout"

check "assign: one plain line"
run assign "$T/x.npy" -c "$T/c.npy" -o "$T/l2.npy"
expect_status 0
[ "$(wc -l <"$ERR")" -le 1 ] || fail "assign printed several progress lines: $(cat "$ERR")"
LC_ALL=C grep -q $'[\r\x1b]' "$ERR" && fail "CR or ESC in assign's stderr"

check "--quiet: nothing on stderr nor stdout"
run train "$T/x.npy" -k 4 --iters 6 -o "$T/c.npy" --labels "$T/l.npy" --quiet
expect_status 0
[ -s "$ERR" ] && fail "stderr with --quiet: $(head -c 200 "$ERR")"
[ -s "$OUT" ] && fail "stdout with --quiet: $(head -c 200 "$OUT")"
run assign "$T/x.npy" -c "$T/c.npy" -o "$T/l2.npy" -q
[ -s "$ERR" ] || [ -s "$OUT" ] && fail "assign printed something with -q"

if ! command -v script >/dev/null 2>&1; then
  echo "SKIP: no 'script' command for the pseudo-terminal checks"
  finish
  exit 0
fi

check "under a pseudo-terminal: a bar redrawn with CR and erase-line"
run_on_tty xterm train "$T/x.npy" -k 4 --iters 6 --tol 0 -o "$T/c.npy"
expect_status 0
LC_ALL=C grep -q $'\r\x1b\\[K' "$T/tty.out" || fail "no CR + erase-line in: $(od -c "$T/tty.out" | head -5)"
grep -aq 'iteration [0-9]*/6 \[[#-]*\]' "$T/tty.out" || fail "no iteration bar in the terminal output"
grep -aq 'trained 4 centroids' "$T/tty.out" || fail "no summary in the terminal output"

check "under a pseudo-terminal: at most about ten redraws a second"
# 300 short iterations would be 300+ redraws without the limit.
blobs "$T/r.npy" 20000 16 20
run_on_tty xterm train "$T/r.npy" -k 20 --iters 300 --tol 0 -o "$T/c.npy" --stats "$T/s.json"
expect_status 0
"$PY" - "$T/tty.out" "$T/s.json" <<'PYEOF' || fail "too many redraws"
import json, sys
draws = open(sys.argv[1], "rb").read().count(b"\r\x1b[K")
stats = json.load(open(sys.argv[2]))
wall = stats["wall_seconds"]
# One per phase shown at once, then at most 10 a second; the last erase.
limit = 6 + 10 * wall * 1.2
print(f"{draws} redraws, {stats['n_iter']} iterations in {wall:.2f} s (limit {limit:.0f})")
assert draws <= limit, (draws, wall)
PYEOF

check "under a pseudo-terminal with --quiet: nothing"
run_on_tty xterm train "$T/x.npy" -k 4 --iters 6 -o "$T/c.npy" --quiet
expect_status 0
[ -s "$T/tty.out" ] && fail "output with --quiet on a terminal: $(od -c "$T/tty.out" | head -3)"

check "TERM=dumb: plain lines even on a terminal"
run_on_tty dumb train "$T/x.npy" -k 4 --iters 6 -o "$T/c.npy"
expect_status 0
LC_ALL=C grep -q $'\x1b' "$T/tty.out" && fail "escape codes with TERM=dumb"
grep -aq '^iteration 1/6: objective' "$T/tty.out" || fail "no plain lines with TERM=dumb"
finish
