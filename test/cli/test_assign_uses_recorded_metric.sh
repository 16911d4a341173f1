#!/usr/bin/env bash
# train records the metric beside .npy centroids (a Python comment after the
# header dict, which numpy.load skips); assign uses it when --metric is not
# given and refuses a --metric that contradicts it. .fvecs cannot record it:
# train says so, and assign uses --metric (default l2).
source "$(dirname "$0")/lib.sh"

"$PY" -c "
import numpy as np
rng = np.random.default_rng(3)
# Rows of very different norms, so that ip and l2 labels differ.
x = rng.standard_normal((3000, 8)) * rng.uniform(0.1, 10, size=(3000, 1))
np.save('$T/x.npy', x.astype(np.float32))"

check "train --metric ip records the metric; numpy still reads the file"
run train "$T/x.npy" -k 10 --metric ip -o "$T/ip.npy" --quiet
expect_status 0
head -c 256 "$T/ip.npy" | grep -aq "} # diskmeans metric=ip *$" ||
  fail "no metric in the header: $(head -c 128 "$T/ip.npy" | tr -d '\0')"
run train "$T/x.npy" -k 10 --metric ip -o "$T/ip.fvecs" --quiet
expect_status 0
"$PY" -c "
import numpy as np
c = np.load('$T/ip.npy')
m = np.load('$T/ip.npy', mmap_mode='r')
f = np.fromfile('$T/ip.fvecs', dtype=np.float32).reshape(10, 9)[:, 1:]
assert c.shape == (10, 8) and c.dtype == np.float32 and m.shape == (10, 8)
assert np.array_equal(c, f), 'the .npy and .fvecs centroids differ'
" || fail "numpy cannot read the centroids with the metric recorded"
run info "$T/ip.npy"
expect_status 0
grep -Eq '^rows: +10$' "$OUT" || fail "diskmeans cannot read its own centroids: $(cat "$ERR")"

check "assign uses the recorded metric when --metric is not given"
run assign "$T/x.npy" -c "$T/ip.npy" -o "$T/recorded.npy" --quiet
expect_status 0
run assign "$T/x.npy" -c "$T/ip.npy" -o "$T/given.npy" --metric ip --quiet
expect_status 0
cmp -s "$T/recorded.npy" "$T/given.npy" || fail "the recorded metric was not used"
# The same centroids without a record (.fvecs) and the default l2 label
# otherwise: the record made a difference.
run assign "$T/x.npy" -c "$T/ip.fvecs" -o "$T/l2.npy" --quiet
expect_status 0
cmp -s "$T/recorded.npy" "$T/l2.npy" && fail "ip and l2 labels are the same: the test data is too easy"
run assign "$T/x.npy" -c "$T/ip.fvecs" -o "$T/fvecs-ip.npy" --metric ip --quiet
expect_status 0
cmp -s "$T/recorded.npy" "$T/fvecs-ip.npy" || fail ".fvecs centroids with --metric ip differ"

check "assign refuses a --metric that contradicts the record"
for m in l2 cosine; do
  run assign "$T/x.npy" -c "$T/ip.npy" -o "$T/bad.npy" --distances "$T/bad-d.npy" --metric "$m"
  expect_status 1
  expect_one_error_line "ip.npy: the centroids were trained with --metric ip, not --metric $m"
  [ -s "$OUT" ] && fail "work was done"
  expect_missing "$T/bad.npy" "$T/bad-d.npy"
  expect_no_temp "$T"
done
run train "$T/x.npy" -k 10 -o "$T/l2c.npy" --quiet
expect_status 0
head -c 256 "$T/l2c.npy" | grep -aq "# diskmeans metric=l2" || fail "l2 is not recorded"
run assign "$T/x.npy" -c "$T/l2c.npy" -o "$T/bad.npy" --metric ip
expect_status 1
expect_one_error_line "trained with --metric l2, not --metric ip"

check "centroids saved by numpy (no record) go with any --metric"
"$PY" -c "import numpy as np; np.save('$T/plain.npy', np.load('$T/ip.npy'))"
run assign "$T/x.npy" -c "$T/plain.npy" -o "$T/plain-ip.npy" --metric ip --quiet
expect_status 0
cmp -s "$T/plain-ip.npy" "$T/recorded.npy" || fail "--metric ip on unrecorded centroids"
run assign "$T/x.npy" -c "$T/plain.npy" -o "$T/plain-l2.npy" --quiet
expect_status 0
cmp -s "$T/plain-l2.npy" "$T/l2.npy" || fail "unrecorded centroids are not l2 by default"

check "a record naming no metric is an error"
sed 's/metric=ip/metric=xx/' "$T/ip.npy" >"$T/xx.npy"
run assign "$T/x.npy" -c "$T/xx.npy" -o "$T/bad.npy"
expect_status 1
expect_one_error_line "xx.npy: the header records an unknown metric 'xx'"
expect_missing "$T/bad.npy"

check "train notes that .fvecs centroids do not record a non-l2 metric"
run train "$T/x.npy" -k 10 --metric cosine -o "$T/cos.fvecs"
expect_status 0
grep -q "^diskmeans: note: .*cos.fvecs cannot record the metric: give assign --metric cosine too$" \
  "$ERR" || fail "no note: $(tail -n 2 "$ERR")"
run train "$T/x.npy" -k 10 -o "$T/l2.fvecs"
expect_status 0
grep -q "note" "$ERR" && fail "a note for l2 centroids: $(grep note "$ERR")"
run train "$T/x.npy" -k 10 --metric cosine -o "$T/cos.npy"
expect_status 0
grep -q "note" "$ERR" && fail "a note for .npy centroids: $(grep note "$ERR")"

check "the --stats JSON records the metric"
run train "$T/x.npy" -k 10 --metric ip -o "$T/s.npy" --stats "$T/s.json" --quiet
expect_status 0
"$PY" -c "import json; assert json.load(open('$T/s.json'))['params']['metric'] == 'ip'" ||
  fail "no metric in the stats"
finish
