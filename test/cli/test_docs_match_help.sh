#!/usr/bin/env bash
# docs/cli.md repeats every --help text verbatim: each fenced block under a
# "### diskmeans [CMD] --help" heading must equal the tool's output.
source "$(dirname "$0")/lib.sh"

DOC=${DKM_SOURCE_DIR:-$(dirname "$0")/../..}/docs/cli.md
[ -f "$DOC" ] || { echo "FAIL: $DOC missing" >&2; exit 1; }

# Writes each block to $T/doc.<cmd> ("main" for the tool's own help).
awk -v dir="$T" '
  /^### diskmeans .*--help$/ {
    cmd = $0; sub(/^### diskmeans /, "", cmd); sub(/ *--help$/, "", cmd)
    if (cmd == "") cmd = "main"
    want = 1; next
  }
  want && /^```/ && !inside { inside = 1; file = dir "/doc." cmd; printf "" > file; next }
  inside && /^```/ { inside = 0; want = 0; close(file); next }
  inside { print >> file }
' "$DOC"

for cmd in main train assign info; do
  check "docs/cli.md has the --help of '$cmd' and it matches"
  if [ ! -f "$T/doc.$cmd" ]; then
    fail "no '### diskmeans $cmd --help' block in docs/cli.md"
    continue
  fi
  if [ "$cmd" = main ]; then
    run --help
  else
    run "$cmd" --help
  fi
  expect_status 0
  diff -u "$T/doc.$cmd" "$OUT" || fail "docs/cli.md differs from '$cmd --help' (diff above)"
  [ -s "$ERR" ] && fail "--help wrote to stderr"
  if [ "$cmd" != main ]; then
    cp "$OUT" "$T/help.a"
    run help "$cmd"
    expect_status 0
    cmp -s "$T/help.a" "$OUT" || fail "'help $cmd' differs from '$cmd --help'"
    run "$cmd" -h
    cmp -s "$T/help.a" "$OUT" || fail "'$cmd -h' differs from '$cmd --help'"
  fi
done

check "every block found in the docs is checked"
for f in "$T"/doc.*; do
  case "${f##*/doc.}" in main | train | assign | info) ;; *) fail "unexpected help block $f" ;; esac
done

check "--version"
run --version
expect_status 0
grep -Eq '^diskmeans [0-9]+\.[0-9]+\.[0-9]+$' "$OUT" || fail "--version printed: $(cat "$OUT")"
grep -qF "prints \`$(cat "$OUT")\`" "$DOC" || fail "docs/cli.md does not say --version prints '$(cat "$OUT")'"
run help
expect_status 0
grep -q '^Usage: diskmeans COMMAND' "$OUT" || fail "'help' does not print the main help"
finish
