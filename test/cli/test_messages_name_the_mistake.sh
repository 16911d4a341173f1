#!/usr/bin/env bash
# Errors name the likely mistake: a misspelt --init method lists the
# choices, a folder given as an output is called a folder, and info -k with
# more centroids than rows still describes the file before the error.
source "$(dirname "$0")/lib.sh"

blobs "$T/x.npy" 100 4 3
"$DISKMEANS" train "$T/x.npy" -k 3 -o "$T/c.npy" --quiet

check "--init with a misspelt method names the choices"
for v in kmeans kmeanspp Random; do
  run train "$T/x.npy" -k 3 -o "$T/o.npy" --init "$v"
  expect_status 1
  expect_one_error_line "--init: '$v' is neither random, kmeans\+\+, greedy-kmeans\+\+ nor an existing file"
done
expect_missing "$T/o.npy"
expect_no_temp "$T"

check "--init with an existing file of that name reads the file"
"$PY" -c "import numpy as np; np.save('$T/kmeans', np.load('$T/x.npy')[:3])"
mv "$T/kmeans.npy" "$T/kmeans"
(cd "$T" && "$DISKMEANS" train x.npy -k 3 -o o.npy --init kmeans --quiet) ||
  fail "--init FILE with a name like a method's misspelling was refused"
rm -f "$T/o.npy"

check "a folder as an output is called a folder"
mkdir "$T/dir" "$T/dir.npy"
for args in "train $T/x.npy -k 3 -o $T/dir" \
  "train $T/x.npy -k 3 -o $T/dir/" \
  "train $T/x.npy -k 3 -o $T/o.npy --labels $T/dir" \
  "train $T/x.npy -k 3 -o $T/o.npy --labels $T/dir.npy" \
  "train $T/x.npy -k 3 -o $T/o.npy --stats $T/dir" \
  "assign $T/x.npy -c $T/c.npy -o $T/dir" \
  "assign $T/x.npy -c $T/c.npy -o $T/l.npy --distances $T/dir"; do
  # shellcheck disable=SC2086 # split on purpose
  run $args
  expect_status 1
  expect_one_error_line "/dir/?: is a folder, not an output file|/dir.npy: is a folder"
  grep -q "extension" "$ERR" && fail "still talks about the extension: $(cat "$ERR")"
done
expect_missing "$T/o.npy" "$T/l.npy"
expect_no_temp "$T"

for fmt in text json; do
  check "info -k above the row count describes the file, then fails ($fmt)"
  extra=()
  [ "$fmt" = json ] && extra=(--json)
  run info "$T/x.npy" -k 101 "${extra[@]}"
  expect_status 1
  expect_one_error_line "k is 101 but there are only 100 rows"
  if [ "$fmt" = json ]; then
    "$PY" -c "
import json, sys
d = json.load(open('$OUT'))
assert d['rows'] == 100 and d['dim'] == 4 and d['plan'] is None, d" || fail "JSON: $(cat "$OUT")"
  else
    grep -Eq '^rows: +100$' "$OUT" || fail "no description: $(cat "$OUT")"
    grep -Eq '^dim: +4$' "$OUT" || fail "no dim: $(cat "$OUT")"
  fi
done
finish
