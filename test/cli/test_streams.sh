#!/usr/bin/env bash
# gzip-compressed inputs of every format, the standard input ("-"), pipes and
# FIFOs give byte-identical centroids and labels to the plain file, in memory
# and disk mode, with the whole input as the sample and with a sample that
# skips rows; a truncated .gz or a stream that ends early fails cleanly.
source "$(dirname "$0")/lib.sh"

"$PY" - "$T" <<'PYEOF'
import gzip, struct, sys
import numpy as np
t = sys.argv[1]
rng = np.random.default_rng(12)
centres = rng.normal(0, 8, size=(6, 16))
x = (centres[rng.integers(0, 6, size=5000)] + rng.normal(0, 1, size=(5000, 16))).astype(np.float32)
def save(name, data):
    open(f"{t}/{name}", "wb").write(data)
    # gzip in two members, as `cat a.gz b.gz` makes, to cross a member
    # boundary in the middle of a row.
    cut = len(data) // 2 + 3
    save_gz = gzip.compress(data[:cut]) + gzip.compress(data[cut:])
    open(f"{t}/{name}.gz", "wb").write(save_gz)
import io
def npy(a):
    b = io.BytesIO(); np.save(b, a); return b.getvalue()
save("x.npy", npy(x))
fv = np.empty((5000, 17), np.float32)
fv[:, 0] = np.array([16], np.int32).view(np.float32)[0]
fv[:, 1:] = x
save("x.fvecs", fv.tobytes())
save("x.f32", x.tobytes())
# Exactly representable as float16: the same values, stored in two bytes.
h = np.round(x * 4) / 4
save("h.npy", npy(h.astype(np.float32)))
save("h16.npy", npy(h.astype(np.float16)))
u = rng.integers(0, 256, size=(3000, 12), dtype=np.uint8)
save("u.npy", npy(u))
bv = np.empty((3000, 16), np.uint8)
bv[:, :4] = np.frombuffer(struct.pack("<i", 12), np.uint8)
bv[:, 4:] = u
save("u.bvecs", bv.tobytes())
PYEOF
mkdir -p "$T/tmp"

# train_as NAME INPUT [ARGS...]: trains with the shared settings, centroids
# to $T/NAME.c.npy and labels to $T/NAME.l.npy; INPUT may be "-".
train_as() {
  local name=$1 input=$2
  shift 2
  run train "$input" -k 6 --iters 8 --tmp-dir "$T/tmp" -o "$T/$name.c.npy" \
    --labels "$T/$name.l.npy" -q "$@"
}

# same NAME REF: NAME's centroids and labels are byte-identical to REF's.
same() {
  expect_status 0
  cmp -s "$T/$1.c.npy" "$T/$2.c.npy" || fail "$1: other centroids than $2"
  cmp -s "$T/$1.l.npy" "$T/$2.l.npy" || fail "$1: other labels than $2"
}

for storage in memory disk; do
  for mppc in 0 100; do
    opts=(--storage "$storage" --max-points-per-centroid "$mppc")
    tag="$storage-$mppc"
    check "$tag: .gz of fvecs, npy and raw train as the plain file"
    train_as "ref-$tag" "$T/x.npy" "${opts[@]}"
    expect_status 0
    for f in x.npy.gz x.fvecs x.fvecs.gz; do
      train_as "$f-$tag" "$T/$f" "${opts[@]}"
      same "$f-$tag" "ref-$tag"
    done
    train_as "raw-$tag" "$T/x.f32.gz" --dim 16 "${opts[@]}"
    same "raw-$tag" "ref-$tag"

    check "$tag: a pipe on stdin, a process substitution and a FIFO train as the file"
    train_as "stdin-$tag" - "${opts[@]}" < <(cat "$T/x.npy")
    same "stdin-$tag" "ref-$tag"
    train_as "subst-$tag" <(cat "$T/x.fvecs") "${opts[@]}"
    same "subst-$tag" "ref-$tag"
    train_as "stdin-gz-$tag" - "${opts[@]}" < <(cat "$T/x.fvecs.gz")
    same "stdin-gz-$tag" "ref-$tag"
    train_as "stdin-raw-$tag" - --dim 16 "${opts[@]}" < <(cat "$T/x.f32")
    same "stdin-raw-$tag" "ref-$tag"
    rm -f "$T/fifo"
    mkfifo "$T/fifo"
    cat "$T/x.npy.gz" >"$T/fifo" &
    train_as "fifo-$tag" "$T/fifo" "${opts[@]}"
    wait
    same "fifo-$tag" "ref-$tag"
    train_as "redirect-$tag" - "${opts[@]}" <"$T/x.npy"
    same "redirect-$tag" "ref-$tag"
  done
done

check "f16 .npy.gz and u8 .bvecs.gz train as their plain files"
train_as h "$T/h.npy"
expect_status 0
train_as h16 "$T/h16.npy.gz"
same h16 h
train_as h16pipe - < <(cat "$T/h16.npy")
same h16pipe h
train_as u "$T/u.npy"
expect_status 0
for f in u.bvecs u.bvecs.gz u.npy.gz; do
  train_as "$f" "$T/$f"
  same "$f" u
done
train_as ubpipe - < <(cat "$T/u.bvecs.gz")
same ubpipe u

check "assign reads a pipe and a .gz as the file"
run assign "$T/x.npy" -c "$T/ref-memory-0.c.npy" -o "$T/a-ref.npy" -q
expect_status 0
cat "$T/x.fvecs.gz" | "$DISKMEANS" assign - -c "$T/ref-memory-0.c.npy" -o "$T/a-pipe.npy" -q ||
  fail "assign from a pipe failed"
cmp -s "$T/a-ref.npy" "$T/a-pipe.npy" || fail "assign: the pipe gave other labels"
run assign "$T/x.npy.gz" -c "$T/ref-memory-0.c.npy" -o "$T/a-gz.npy" -q
expect_status 0
cmp -s "$T/a-ref.npy" "$T/a-gz.npy" || fail "assign: the .gz gave other labels"

check "info describes a pipe and a .gz like the file"
run info "$T/x.fvecs"
grep -q "^rows: *5000$" "$OUT" || fail "info x.fvecs: $(cat "$OUT")"
status_of "$DISKMEANS" info - <"$T/x.fvecs.gz" >"$T/info.out" 2>"$ERR"
expect_status 0
grep -q "^format: *fvecs$" "$T/info.out" || fail "info -: $(cat "$T/info.out")"
grep -q "^rows: *5000$" "$T/info.out" || fail "info -: $(cat "$T/info.out")"

check "the stream's copy leaves nothing in the temporary folder"
[ -z "$(ls -A "$T/tmp")" ] || fail "left in --tmp-dir: $(ls -A "$T/tmp")"

# --- bad streams --------------------------------------------------------------
"$PY" - "$T" <<'PYEOF'
import gzip, sys
t = sys.argv[1]
fv = open(f"{t}/x.fvecs", "rb").read()
gz = gzip.compress(fv)
open(f"{t}/cut.fvecs.gz", "wb").write(gz[: len(gz) - 100])
open(f"{t}/short.fvecs.gz", "wb").write(gzip.compress(fv[:-10]))
open(f"{t}/junk.npy.gz", "wb").write(gzip.compress(open(f"{t}/x.npy", "rb").read()) + b"junk")
PYEOF
mkdir -p "$T/out"
echo precious >"$T/out/keep.npy"

# fails_cleanly NAME PATTERN: the last run failed with exit 1 and one line
# matching PATTERN, and left no output.
fails_cleanly() {
  expect_status 1
  expect_one_error_line "$2"
  expect_missing "$T/out/c.npy" "$T/out/l.npy"
  expect_no_temp "$T/out"
  [ "$(cat "$T/out/keep.npy")" = precious ] || fail "$1: keep.npy was modified"
}

for f in cut.fvecs.gz short.fvecs.gz junk.npy.gz; do
  check "train and assign on $f fail cleanly, naming it"
  run train "$T/$f" -k 2 -o "$T/out/c.npy" --labels "$T/out/l.npy"
  fails_cleanly "$f" "$f: "
  run assign "$T/$f" -c "$T/ref-memory-0.c.npy" -o "$T/out/l.npy"
  fails_cleanly "$f" "$f: "
done

check "a pipe that ends early fails cleanly, naming the input"
run train - -k 2 -o "$T/out/c.npy" --labels "$T/out/l.npy" < <(head -c 50000 "$T/x.npy")
fails_cleanly "stdin" "^diskmeans: -: .*(truncated|disagrees)"
run train <(head -c 50000 "$T/x.npy") -k 2 -o "$T/out/c.npy"
fails_cleanly "subst" "^diskmeans: /dev/fd/[0-9]+: .*(truncated|disagrees)"
run train - -k 2 -o "$T/out/c.npy" < <(head -c 3000 "$T/x.fvecs.gz")
fails_cleanly "gz" "^diskmeans: -: corrupt gzip data"
run assign - -c "$T/ref-memory-0.c.npy" -o "$T/out/l.npy" < <(head -c 50000 "$T/x.npy")
fails_cleanly "assign" "^diskmeans: -: "

check "raw rows on a pipe need --dim; an empty pipe is empty"
run train - -k 2 -o "$T/out/c.npy" < <(cat "$T/x.f32")
fails_cleanly "raw" "^diskmeans: -: unknown format"
run train - -k 2 -o "$T/out/c.npy" </dev/null
fails_cleanly "null" "^diskmeans: -: "
run train - -k 2 -o "$T/out/c.npy" < <(printf '')
fails_cleanly "empty" "^diskmeans: -: empty file"

check "a stream needs room for its copy: a missing --tmp-dir is named"
run train - -k 2 --tmp-dir "$T/no-such-dir" -o "$T/out/c.npy" < <(cat "$T/x.npy")
fails_cleanly "tmp" "^diskmeans: -: .*no-such-dir"

check "an output may not replace the file on the standard input"
cp "$T/x.npy" "$T/in.npy"
run train - -k 2 -o "$T/in.npy" <"$T/in.npy"
expect_status 1
expect_one_error_line "same file"
cmp -s "$T/x.npy" "$T/in.npy" || fail "the input on stdin was replaced"

expect_no_temp "$T"
finish
