#!/usr/bin/env bash
# The transcripts in README.md and docs/*.md (```console blocks) are real:
# each command is run on Fashion-MNIST and must print what the docs show,
# times and the machine's memory budget aside (check_transcripts.py).
source "$(dirname "$0")/lib.sh"

: "${DKM_SOURCE_DIR:?}" "${DKM_BINARY_DIR:?}"
DATA=${DKM_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
[ -r "$DATA/train-images-idx3-ubyte.gz" ] ||
  { echo "FAIL: $DATA has no Fashion-MNIST (Debian package dataset-fashion-mnist)" >&2; exit 1; }

check "every transcript in the docs prints what it shows"
status_of "$PY" "$(dirname "$0")/check_transcripts.py" "$DKM_SOURCE_DIR" "$DKM_BINARY_DIR" "$T" "$DATA"
[ "$RC" -eq 0 ] || fail "a transcript in the docs is stale (above)"
finish
