#!/usr/bin/env bash
# HDF5 inputs: the same rows as a .npy give byte-identical centroids and
# labels, whatever the element type, byte order and layout, in memory and
# disk mode, from a file or a pipe; the dataset is train, the only 2-D one,
# or --dataset; every bad file fails with one line naming file and dataset.
source "$(dirname "$0")/lib.sh"

"$PY" - "$T" <<'PYEOF'
import sys
import h5py
import numpy as np
t = sys.argv[1]
rng = np.random.default_rng(5)
centres = rng.normal(0, 8, size=(5, 10))
# Multiples of 1/8 below 256 in magnitude: exact in float16 too.
x = np.round((centres[rng.integers(0, 5, size=4000)] + rng.normal(0, 1, size=(4000, 10))) * 8) / 8
u = rng.integers(0, 256, size=(4000, 10)).astype(np.uint8)
i = rng.integers(-128, 128, size=(4000, 10)).astype(np.int8)
np.save(f"{t}/x.npy", x.astype(np.float32))
np.save(f"{t}/x16.npy", x.astype(np.float16))
np.save(f"{t}/x64.npy", x.astype(np.float64))
np.save(f"{t}/u.npy", u)
np.save(f"{t}/i.npy", i)
with h5py.File(f"{t}/ann.hdf5", "w") as f:  # as ann-benchmarks lays them out
    f["train"] = x.astype(np.float32)
    f["test"] = x[:100].astype(np.float32)
    f["neighbors"] = np.zeros((100, 10), np.int32)
    f["distances"] = np.zeros((100, 10), np.float32)
with h5py.File(f"{t}/chunked.h5", "w") as f:  # the only 2-D dataset, in a group
    f.create_dataset("g/emb", data=x.astype(np.float32), chunks=(333, 10), compression="gzip")
    f["ids"] = np.arange(4000)
with h5py.File(f"{t}/x16.h5", "w") as f:
    f["train"] = x.astype(np.float16)
with h5py.File(f"{t}/x16be.h5", "w") as f:
    f.create_dataset("train", data=x.astype(">f2"), chunks=(1000, 5))
with h5py.File(f"{t}/x64be.h5", "w") as f:
    f["train"] = x.astype(">f8")
with h5py.File(f"{t}/u.h5", "w") as f:
    f["train"] = u
with h5py.File(f"{t}/i.h5", "w") as f:
    f["train"] = i
with h5py.File(f"{t}/two.h5", "w") as f:
    f["a"] = x.astype(np.float32)
    f["b"] = u
# Bad files.
with h5py.File(f"{t}/no2d.h5", "w") as f:
    f["ids"] = np.arange(10)
    f["cube"] = np.zeros((2, 3, 4), np.float32)
with h5py.File(f"{t}/cube.h5", "w") as f:
    f["train"] = np.zeros((20, 3, 4), np.float32)
with h5py.File(f"{t}/strings.h5", "w") as f:
    f["train"] = np.array([[b"ab", b"cd"]] * 20)
with h5py.File(f"{t}/int32.h5", "w") as f:
    f["train"] = np.zeros((20, 4), np.int32)
with h5py.File(f"{t}/norows.h5", "w") as f:
    f["train"] = np.zeros((0, 4), np.float32)
with h5py.File(f"{t}/empty.h5", "w") as f:
    pass
whole = open(f"{t}/ann.hdf5", "rb").read()
open(f"{t}/truncated.h5", "wb").write(whole[: len(whole) // 2])
open(f"{t}/garbage.h5", "wb").write(b"not an HDF5 file at all\n" * 10)
PYEOF
mkdir -p "$T/tmp" "$T/out"

train_as() { # train_as NAME INPUT [ARGS...]
  local name=$1 input=$2
  shift 2
  run train "$input" -k 5 --iters 8 --tmp-dir "$T/tmp" -o "$T/$name.c.npy" \
    --labels "$T/$name.l.npy" -q "$@"
}
same() { # same NAME REF
  expect_status 0
  cmp -s "$T/$1.c.npy" "$T/$2.c.npy" || fail "$1: other centroids than $2"
  cmp -s "$T/$1.l.npy" "$T/$2.l.npy" || fail "$1: other labels than $2"
}

for storage in memory disk; do
  for mppc in 0 100; do
    opts=(--storage "$storage" --max-points-per-centroid "$mppc")
    tag="$storage-$mppc"
    check "$tag: HDF5 float32 (contiguous, chunked and compressed, from a pipe) as .npy"
    train_as "ref-$tag" "$T/x.npy" "${opts[@]}"
    expect_status 0
    train_as "ann-$tag" "$T/ann.hdf5" "${opts[@]}"
    same "ann-$tag" "ref-$tag"
    train_as "chunked-$tag" "$T/chunked.h5" "${opts[@]}"
    same "chunked-$tag" "ref-$tag"
    train_as "pipe-$tag" - "${opts[@]}" < <(cat "$T/ann.hdf5")
    same "pipe-$tag" "ref-$tag"
  done
done

check "f16 (either byte order), f64 big-endian, u8 and i8 as the same .npy"
for pair in x16.h5:x16.npy x16be.h5:x16.npy x64be.h5:x64.npy u.h5:u.npy i.h5:i.npy; do
  h5=${pair%%:*} npy=${pair#*:}
  train_as "npy-$npy" "$T/$npy"
  expect_status 0
  train_as "h5-$h5" "$T/$h5"
  same "h5-$h5" "npy-$npy"
done

check "--dataset picks a dataset; the default is train"
run info "$T/ann.hdf5" --dataset test
expect_status 0
grep -q "^rows: *100$" "$OUT" || fail "info --dataset test: $(cat "$OUT")"
run info "$T/ann.hdf5"
grep -q "^rows: *4000$" "$OUT" || fail "info: $(cat "$OUT")"
grep -q "^format: *hdf5$" "$OUT" || fail "info: $(cat "$OUT")"
train_as two-a "$T/two.h5" --dataset a --storage memory --max-points-per-centroid 0
same two-a ref-memory-0
train_as two-b "$T/two.h5" --dataset /b
same two-b npy-u.npy

echo precious >"$T/out/keep.npy"
# bad NAME PATTERN ARGS...: train and assign fail with exit 1 and one line
# matching PATTERN, leaving no output.
bad() {
  local name=$1 pattern=$2
  shift 2
  check "$name fails cleanly: $pattern"
  run train "$T/$name" -k 2 -o "$T/out/c.npy" --labels "$T/out/l.npy" "$@"
  expect_status 1
  expect_one_error_line "$pattern"
  expect_missing "$T/out/c.npy" "$T/out/l.npy"
  expect_no_temp "$T/out"
  run assign "$T/$name" -c "$T/ref-memory-0.c.npy" -o "$T/out/l.npy" "$@"
  expect_status 1
  expect_one_error_line "$pattern"
  expect_missing "$T/out/l.npy"
  [ "$(cat "$T/out/keep.npy")" = precious ] || fail "$name: keep.npy was modified"
}
bad no2d.h5 "no2d.h5: no 2-D dataset .*/cube \(3-D\).*/ids \(1-D\)"
bad cube.h5 "cube.h5: dataset train is 3-D"
bad strings.h5 "strings.h5: dataset train holds strings"
bad int32.h5 "int32.h5: dataset train holds 32-bit integers"
bad norows.h5 "norows.h5: dataset train has no rows"
bad empty.h5 "empty.h5: no 2-D dataset .*none"
bad two.h5 "two.h5: no dataset 'train' and 2 2-D datasets.*--dataset.*/a.*/b"
bad ann.hdf5 "ann.hdf5: no dataset 'nope' in the file .*/train" --dataset nope
bad ann.hdf5 "ann.hdf5: dataset neighbors holds 32-bit integers" --dataset neighbors
bad truncated.h5 "truncated.h5: not a readable HDF5 file: .*truncated"
bad garbage.h5 "garbage.h5: not a readable HDF5 file"
bad x.npy "x.npy: a dataset \(train\) was given, but this is a npy file" --dataset train

check "--dataset with another forced format is a usage error"
run train "$T/x.npy" --format npy --dataset train -k 2 -o "$T/out/c.npy"
expect_status 2
grep -q "dataset" "$ERR" || fail "no word about --dataset: $(cat "$ERR")"

check "an HDF5 file inside gzip is refused by name"
gzip -c "$T/ann.hdf5" >"$T/ann.h5.gz"
run train "$T/ann.h5.gz" -k 2 -o "$T/out/c.npy"
expect_status 1
expect_one_error_line "ann.h5.gz: an HDF5 file inside gzip"

check "every file of the malformed HDF5 corpus: exit 0, or exit 1 and one line naming it"
# In a process of its own: libhdf5 could print as the process ends.
for f in "${DKM_SOURCE_DIR:-$(dirname "$0")/../..}"/test/fuzz/corpus/hdf5_malformed/*; do
  run info "$f"
  if [ "$RC" -eq 0 ]; then
    [ -s "$ERR" ] && fail "info $(basename "$f") succeeded but printed: $(head -c 300 "$ERR")"
  else
    expect_status 1
    expect_one_error_line "$(basename "$f"): "
  fi
done

check "nothing is left in the temporary folder"
[ -z "$(ls -A "$T/tmp")" ] || fail "left in --tmp-dir: $(ls -A "$T/tmp")"
expect_no_temp "$T"
finish
