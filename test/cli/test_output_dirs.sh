#!/usr/bin/env bash
# Outputs in a missing or read-only folder fail before training, with one
# line naming the folder; a failed run leaves existing outputs untouched.
source "$(dirname "$0")/lib.sh"

blobs "$T/x.npy" 500 4 3

check "output in a missing folder"
run train "$T/x.npy" -k 3 -o "$T/nope/c.npy"
expect_status 1
expect_one_error_line "nope/c.npy: cannot create the output in folder '.*nope': No such file"
[ -s "$OUT" ] && fail "training ran although the output folder is missing"

check "labels and stats in a missing folder are found before training too"
run train "$T/x.npy" -k 3 -o "$T/c.npy" --labels "$T/nope/l.npy"
expect_status 1
expect_one_error_line "nope/l.npy: cannot create"
run train "$T/x.npy" -k 3 -o "$T/c.npy" --stats "$T/nope/s.json"
expect_status 1
expect_one_error_line "nope/s.json: cannot create"
expect_missing "$T/c.npy"
expect_no_temp "$T"

check "assign into a missing folder"
run train "$T/x.npy" -k 3 -o "$T/c.npy" --quiet
expect_status 0
run assign "$T/x.npy" -c "$T/c.npy" -o "$T/nope/l.npy"
expect_status 1
expect_one_error_line "nope/l.npy: cannot create"
run assign "$T/x.npy" -c "$T/c.npy" -o "$T/l.npy" --distances "$T/nope/d.npy"
expect_status 1
expect_one_error_line "nope/d.npy: cannot create"
expect_missing "$T/l.npy"

check "output is a folder"
mkdir "$T/adir.npy"
run train "$T/x.npy" -k 3 -o "$T/adir.npy"
expect_status 1
expect_one_error_line "adir.npy: is a folder"

check "output in a read-only folder"
# Tests run as root, for whom chmod 555 means nothing. A read-only bind
# mount in a private mount namespace is read-only for root too; failing
# that, run the tool as nobody in a chmod-555 folder.
mkdir "$T/ro"
echo "old" >"$T/ro/c.npy"
if unshare -m true 2>/dev/null; then
  status_of unshare -m bash -c 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" || exit 99
    "$2" train "$3" -k 3 -o "$1/c.npy" >"$4" 2>"$5"' _ "$T/ro" "$DISKMEANS" "$T/x.npy" "$OUT" "$ERR"
  if [ "$RC" -eq 99 ]; then
    echo "SKIP: cannot make a read-only bind mount here"
  else
    expect_status 1
    expect_one_error_line "ro/c.npy: cannot create the output in folder '.*ro': Read-only file system"
  fi
elif [ "$(id -u)" -ne 0 ]; then
  chmod 555 "$T/ro"
  run train "$T/x.npy" -k 3 -o "$T/ro/c.npy"
  chmod 755 "$T/ro"
  expect_status 1
  expect_one_error_line "ro/c.npy: cannot create the output in folder '.*ro': Permission denied"
else
  echo "SKIP: root without mount namespaces cannot test a read-only folder"
fi
[ "$(cat "$T/ro/c.npy")" = old ] || fail "the existing output in the read-only folder changed"
expect_no_temp "$T/ro"

check "a failing run leaves every existing output as it was"
run train "$T/x.npy" -k 3 -o "$T/c.npy" --labels "$T/l.npy" --stats "$T/s.json" --quiet
expect_status 0
cp "$T/c.npy" "$T/c.bak"
cp "$T/l.npy" "$T/l.bak"
cp "$T/s.json" "$T/s.bak"
# Fails after the outputs were opened: k larger than the rows.
run train "$T/x.npy" -k 501 -o "$T/c.npy" --labels "$T/l.npy" --stats "$T/s.json"
expect_status 1
cmp -s "$T/c.npy" "$T/c.bak" || fail "c.npy changed"
cmp -s "$T/l.npy" "$T/l.bak" || fail "l.npy changed"
cmp -s "$T/s.json" "$T/s.bak" || fail "s.json changed"
expect_no_temp "$T"

check "a full disk: one clear error, no temporary file, no partial output"
# A 64 KiB tmpfs in a private mount namespace, when we may make one.
mkdir "$T/full"
"$PY" -c "import numpy as np; np.save('$T/wide.npy', np.ones((300, 100), np.float32) * np.arange(300, dtype=np.float32)[:, None])"
full_run() { # full_run ARGS...: runs the tool with $T/full a 64 KiB file system
  status_of unshare -m bash -c 'd=$1; shift; mount -t tmpfs -o size=64k tmpfs "$d" || exit 99
    "$@"; rc=$?; [ -z "$(ls -A "$d")" ] || { ls -la "$d" >&2; rc=98; }; exit $rc' \
    _ "$T/full" "$DISKMEANS" "$@" >"$OUT" 2>"$ERR"
}
if unshare -m true 2>/dev/null; then
  # 300 labels fit but 300 x 100 floats of centroids (120 KB) do not.
  full_run train "$T/wide.npy" -k 300 --iters 1 -o "$T/full/c.fvecs" --labels "$T/full/l.npy" -q
  if [ "$RC" -eq 99 ]; then
    echo "SKIP: cannot mount a tmpfs here"
  else
    expect_status 1
    expect_one_error_line "full/c.fvecs: cannot write: No space left on device"
    full_run train "$T/wide.npy" -k 300 --iters 1 -o "$T/full/c.npy" -q
    expect_status 1
    expect_one_error_line "full/c.npy: cannot write: No space left on device"
    # Labels are reserved before the library writes them through a mapping.
    "$PY" -c "import numpy as np; np.save('$T/tall.npy', np.arange(40000, dtype=np.float32).reshape(20000, 2))"
    full_run assign "$T/tall.npy" -c "$T/tall.npy" -o "$T/full/l.npy" -q
    expect_status 1
    expect_one_error_line "full/l.npy: cannot reserve .* No space left on device"
  fi
else
  echo "SKIP: no mount namespace for a full-disk check"
fi

check "outputs get the usual permissions (0666 minus the umask)"
(umask 022 && "$DISKMEANS" train "$T/x.npy" -k 3 -o "$T/p.npy" --quiet)
[ "$(stat -c %a "$T/p.npy")" = 644 ] || fail "mode $(stat -c %a "$T/p.npy"), expected 644"
finish
