#!/usr/bin/env bash
# Usage errors exit 2 with one line on stderr naming the problem, and create
# no output file.
source "$(dirname "$0")/lib.sh"

blobs "$T/x.npy" 200 4 3
"$PY" -c "import numpy as np; np.save('$T/c.npy', np.zeros((3, 4), np.float32))"
o="$T/c_out.npy"

# Each case: a regex the error line must match, then the arguments.
cases=(
  "missing command|||"
  "unknown command 'frobnicate'|||frobnicate"
  "unknown option '--frobnicate'|||--frobnicate"
  "unknown option '--frob'|||train $T/x.npy -k 3 -o $o --frob"
  "unknown option '-z'|||train $T/x.npy -k 3 -o $o -z"
  "'-k' needs a value|||train $T/x.npy -o $o -k"
  "-k: 'abc' is not a non-negative integer|||train $T/x.npy -o $o -k abc"
  "-k must be at least 1, not 0|||train $T/x.npy -o $o -k 0"
  "-k: '-3' is not a non-negative integer|||train $T/x.npy -o $o -k -3"
  "-k: '12x' is not|||train $T/x.npy -o $o -k 12x"
  "-k: k is 4294967296; it must be at most 2147483647 \\(labels are int32\\)|||train $T/x.npy -o $o -k 4294967296"
  "-k: k is 2147483648; it must be at most 2147483647 \\(labels are int32\\)|||train $T/x.npy -o $o -k 2147483648"
  "-k: k is 4000000000; it must be at most 2147483647 \\(labels are int32\\)|||train $T/x.npy -o $o -k 4000000000"
  "-k: k is 99999999999; it must be at most 2147483647 \\(labels are int32\\)|||train $T/x.npy -o $o -k 99999999999"
  "-k: k is 99999999999999999999999; it must be at most 2147483647 \\(labels are int32\\)|||train $T/x.npy -o $o -k 99999999999999999999999"
  "-k: k is 4000000000; it must be at most 2147483647 \\(labels are int32\\)|||info $T/x.npy -k 4000000000"
  "-k: k is 99999999999; it must be at most 2147483647 \\(labels are int32\\)|||info $T/x.npy -k 99999999999"
  "--iters must be at least 1|||train $T/x.npy -o $o -k 3 --iters 0"
  "--tol: 'nan' is not a finite number|||train $T/x.npy -o $o -k 3 --tol nan"
  "--tol must be at least 0|||train $T/x.npy -o $o -k 3 --tol -1"
  "--seed: 18446744073709551616 is too large|||train $T/x.npy -o $o -k 3 --seed 18446744073709551616"
  "--redo must be at least 1|||train $T/x.npy -o $o -k 3 --redo 0"
  "--metric: unknown metric 'manhattan'|||train $T/x.npy -o $o -k 3 --metric manhattan"
  "--storage: unknown storage 'cloud'|||train $T/x.npy -o $o -k 3 --storage cloud"
  "--strategy: unknown strategy 'tree' \\(auto, flat, hierarchical\\)|||train $T/x.npy -o $o -k 3 --strategy tree"
  "--strategy: unknown strategy 'Flat' \\(auto, flat, hierarchical\\)|||info $T/x.npy -k 3 --strategy Flat"
  "--strategy: unknown strategy '' \\(auto, flat, hierarchical\\)|||train $T/x.npy -o $o -k 3 --strategy="
  "option '--strategy' needs a value|||train $T/x.npy -o $o -k 3 --strategy"
  "--refine: 'x' is not a non-negative integer|||train $T/x.npy -o $o -k 3 --refine x"
  "--refine: '-1' is not a non-negative integer|||train $T/x.npy -o $o -k 3 --refine -1"
  "refine is 5000; it must be at most 1000|||train $T/x.npy -o $o -k 3 --refine 5000"
  "refine is 5000; it must be at most 1000|||info $T/x.npy -k 3 --refine 5000"
  "option '--balance' takes no value|||train $T/x.npy -o $o -k 3 --balance=yes"
  "unknown option '--balance'|||info $T/x.npy -k 3 --balance"
  "--memory-limit: '4X' is not a size|||train $T/x.npy -o $o -k 3 --memory-limit 4X"
  "--memory-limit: '-1G' is not a size|||train $T/x.npy -o $o -k 3 --memory-limit -1G"
  "--memory-limit: 99999999T is too large|||train $T/x.npy -o $o -k 3 --memory-limit 99999999T"
  "--threads: 'many' is not|||train $T/x.npy -o $o -k 3 --threads many"
  "--block-rows: 'x' is not|||train $T/x.npy -o $o -k 3 --block-rows x"
  "missing INPUT|||train -k 3 -o $o"
  "missing -k|||train $T/x.npy -o $o"
  "missing -o|||train $T/x.npy -k 3"
  "unknown centroid file extension '.txt'|||train $T/x.npy -k 3 -o $T/c.txt"
  "unknown centroid file extension ''|||train $T/x.npy -k 3 -o $T/centroids"
  "labels are written as .npy, not '.bin'|||train $T/x.npy -k 3 -o $o --labels $T/l.bin"
  "--format: unknown format 'csv'|||train $T/x.npy -k 3 -o $o --format csv"
  "--format raw needs --dim|||train $T/x.npy -k 3 -o $o --format raw"
  "--dim must be at least 1|||train $T/x.npy -k 3 -o $o --dim 0"
  "--dtype: unknown type 'f128'|||train $T/x.npy -k 3 -o $o --dim 4 --dtype f128"
  "do not go with --format npy|||train $T/x.npy -k 3 -o $o --format npy --dim 4"
  "option '--quiet' takes no value|||train $T/x.npy -k 3 -o $o --quiet=yes"
  "missing -c|||assign $T/x.npy -o $T/l.npy"
  "missing -o|||assign $T/x.npy -c $T/c.npy"
  "labels are written as .npy, not '.txt'|||assign $T/x.npy -c $T/c.npy -o $T/l.txt"
  "distances are written as .npy|||assign $T/x.npy -c $T/c.npy -o $T/l.npy --distances $T/d.f32"
  "--threads: 'x' is not|||assign $T/x.npy -c $T/c.npy -o $T/l.npy --threads x"
  "missing INPUT|||info"
  "-k must be at least 1|||info $T/x.npy -k 0"
  "unknown option '--labels'|||info $T/x.npy --labels $T/l.npy"
  "unknown command 'nope'|||help nope"
)

for c in "${cases[@]}"; do
  want=${c%%|||*}
  args=${c#*|||}
  check "diskmeans $args"
  # shellcheck disable=SC2086 # the arguments are split on purpose
  run $args
  expect_status 2
  expect_one_error_line "$want"
  expect_missing "$o" "$T/l.npy" "$T/d.f32"
  expect_no_temp "$T"
done

check "option forms: --name=value, -kVALUE, options after INPUT, -- before INPUT"
run train --k=3 "--output=$o" --iters=2 --quiet "$T/x.npy"
expect_status 0
cp "$o" "$T/ref.npy"
run train -k3 -o"$o" --iters 2 --quiet -- "$T/x.npy"
expect_status 0
cmp -s "$o" "$T/ref.npy" || fail "the same options spelled differently gave another result"
run train "$T/x.npy" -k 3 -o "$o" --iters 2 --quiet --memory-limit 1.5GiB --storage memory
expect_status 0
cmp -s "$o" "$T/ref.npy" || fail "--memory-limit/--storage memory changed the result"
finish
