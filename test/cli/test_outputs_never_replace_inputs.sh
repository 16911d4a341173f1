#!/usr/bin/env bash
# No output may be the same file as an input, nor as another output: the
# same path, a ./relative spelling, a symlink or a hard link. Such a run
# fails before any work with exit 1 and one line naming both options, and
# every file is left as it was. With several inputs (or @LIST), every file and
# every list counts as an input.
source "$(dirname "$0")/lib.sh"

blobs "$T/x.npy" 200 4 3
"$PY" -c "import numpy as np; np.save('$T/i.npy', np.load('$T/x.npy')[:3])"
"$DISKMEANS" train "$T/x.npy" -k 3 -o "$T/c.npy" --quiet
echo i.npy >"$T/list.txt" # a list naming i.npy, relative to its folder
sums() { (cd "$T" && md5sum x.npy i.npy c.npy list.txt); }
sums >"$T/sums.before"

# spell FORM NAME: a path naming the file $T/NAME as FORM says; the link
# forms create a new name (with NAME's extension) for the same file.
spell() {
  local form=$1 name=$2 ext=${2##*.}
  case $form in
    same) echo "$T/$name" ;;
    relative) echo "./$name" ;;
    symlink)
      ln -sf "$T/$name" "$T/sym.$ext"
      echo "$T/sym.$ext"
      ;;
    hardlink)
      rm -f "$T/hard.$ext"
      ln "$T/$name" "$T/hard.$ext"
      echo "$T/hard.$ext"
      ;;
  esac
}

# clash WANT ARGS...: runs the tool in $T, expects the clash error matching
# WANT, and checks that nothing was written or changed.
clash() {
  local want=$1
  shift
  check "diskmeans $*"
  (cd "$T" && status_of "$DISKMEANS" "$@" >"$OUT" 2>"$ERR"; echo "$RC" >"$T/rc")
  RC=$(cat "$T/rc")
  expect_status 1
  expect_one_error_line "$want"
  [ -s "$OUT" ] && fail "work was done: $(head -c 200 "$OUT")"
  sums | cmp -s - "$T/sums.before" || fail "a file changed: $(sums)"
  expect_no_temp "$T"
  expect_missing "$T/o.npy" "$T/l.npy" "$T/s.json" "$T/d.npy"
  rm -f "$T/sym."* "$T/hard."*
}

for form in same relative symlink hardlink; do
  # train: each output against each input.
  clash "-o [^ ]+ and INPUT [^ ]+ are the same file" \
    train "$T/x.npy" -k 3 -o "$(spell "$form" x.npy)"
  clash "--labels [^ ]+ and INPUT [^ ]+ are the same file" \
    train "$T/x.npy" -k 3 -o "$T/o.npy" --labels "$(spell "$form" x.npy)"
  clash "--stats [^ ]+ and INPUT [^ ]+ are the same file" \
    train "$T/x.npy" -k 3 -o "$T/o.npy" --stats "$(spell "$form" x.npy)"
  clash "-o [^ ]+ and --init [^ ]+ are the same file" \
    train "$T/x.npy" -k 3 --init "$T/i.npy" -o "$(spell "$form" i.npy)"
  clash "--labels [^ ]+ and --init [^ ]+ are the same file" \
    train "$T/x.npy" -k 3 --init "$T/i.npy" -o "$T/o.npy" --labels "$(spell "$form" i.npy)"
  clash "--stats [^ ]+ and --init [^ ]+ are the same file" \
    train "$T/x.npy" -k 3 --init "$T/i.npy" -o "$T/o.npy" --stats "$(spell "$form" i.npy)"
  # assign: each output against each input.
  clash "-o [^ ]+ and INPUT [^ ]+ are the same file" \
    assign "$T/x.npy" -c "$T/c.npy" -o "$(spell "$form" x.npy)"
  clash "--distances [^ ]+ and INPUT [^ ]+ are the same file" \
    assign "$T/x.npy" -c "$T/c.npy" -o "$T/l.npy" --distances "$(spell "$form" x.npy)"
  clash "-o [^ ]+ and -c [^ ]+ are the same file" \
    assign "$T/x.npy" -c "$T/c.npy" -o "$(spell "$form" c.npy)"
  clash "--distances [^ ]+ and -c [^ ]+ are the same file" \
    assign "$T/x.npy" -c "$T/c.npy" -o "$T/l.npy" --distances "$(spell "$form" c.npy)"
  # Several inputs: every file, and every @LIST file, is an input.
  clash "-o [^ ]+ and INPUT [^ ]+i.npy are the same file" \
    train "$T/x.npy" "$T/i.npy" -k 3 -o "$(spell "$form" i.npy)"
  clash "--labels [^ ]+ and INPUT [^ ]+i.npy are the same file" \
    train "$T/x.npy" @"$T/list.txt" -k 3 -o "$T/o.npy" --labels "$(spell "$form" i.npy)"
  clash "--stats [^ ]+ and @LIST [^ ]+list.txt are the same file" \
    train "$T/x.npy" @"$T/list.txt" -k 3 -o "$T/o.npy" --stats "$(spell "$form" list.txt)"
  clash "--distances [^ ]+ and INPUT [^ ]+i.npy are the same file" \
    assign "$T/x.npy" @"$T/list.txt" -c "$T/c.npy" -o "$T/l.npy" --distances "$(spell "$form" i.npy)"
done

# Two outputs naming one file: an existing one by any name, a new one by
# the same name or a ./relative spelling.
for form in same relative symlink hardlink; do
  name=p.npy
  if [ "$form" = symlink ] || [ "$form" = hardlink ]; then
    echo old >"$T/p.npy"
  fi
  clash "-o [^ ]+ and --labels [^ ]+ are the same file: each output needs its own" \
    train "$T/x.npy" -k 3 -o "$T/p.npy" --labels "$(spell "$form" $name)"
  clash "-o [^ ]+ and --stats [^ ]+ are the same file" \
    train "$T/x.npy" -k 3 -o "$T/p.npy" --stats "$(spell "$form" $name)"
  clash "--labels [^ ]+ and --stats [^ ]+ are the same file" \
    train "$T/x.npy" -k 3 -o "$T/o.npy" --labels "$T/p.npy" --stats "$(spell "$form" $name)"
  clash "-o [^ ]+ and --distances [^ ]+ are the same file" \
    assign "$T/x.npy" -c "$T/c.npy" -o "$T/p.npy" --distances "$(spell "$form" $name)"
  if [ -e "$T/p.npy" ]; then
    [ "$(cat "$T/p.npy")" = old ] || fail "p.npy changed"
    rm "$T/p.npy"
  fi
done

check "an existing output that is another file is replaced as usual"
cp "$T/x.npy" "$T/copy.npy"
run train "$T/x.npy" -k 3 -o "$T/copy.npy" --quiet
expect_status 0
run assign "$T/x.npy" -c "$T/c.npy" -o "$T/l.npy" --distances "$T/d.npy" --quiet
expect_status 0
sums | cmp -s - "$T/sums.before" || fail "a file changed: $(sums)"
finish
