#!/usr/bin/env bash
# run_fuzzer.sh FUZZER CORPUS WORK SECONDS: a short libFuzzer run of FUZZER
# for SECONDS, starting from a copy of its corpus folder CORPUS made in WORK
# (emptied first), so that the inputs it adds and any crash it finds stay in
# the build tree, never in the source tree. Fails when the corpus is missing
# or empty, and when the fuzzer stops on a crash, a sanitizer report, a leak,
# an input that runs for more than 60 s, or an out-of-memory; the input that
# did it is then in WORK/crashes/ and the fuzzer's output is shown.
set -euo pipefail

if [ $# -ne 4 ]; then
  echo "usage: $0 FUZZER CORPUS WORK SECONDS" >&2
  exit 2
fi
fuzzer=$1 corpus=$2 work=$3 seconds=$4
name=$(basename "$fuzzer")

if [ -z "$(ls -A "$corpus" 2>/dev/null)" ]; then
  echo "$name: corpus $corpus is missing or empty" >&2
  exit 1
fi
rm -rf "$work"
mkdir -p "$work/corpus" "$work/crashes"
cp -R "$corpus"/. "$work/corpus/"

status=0
(cd "$work" && "$fuzzer" -max_total_time="$seconds" -timeout=60 -print_final_stats=1 \
  -artifact_prefix="$work/crashes/" "$work/corpus" >"$work/fuzzer.log" 2>&1) || status=$?
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$work/crashes")" ]; then
  tail -n 80 "$work/fuzzer.log" >&2
  echo "$name: the fuzzer failed (exit $status); the input is in $work/crashes/:" >&2
  ls -l "$work/crashes" >&2
  exit 1
fi
# One line of what the run did, for the test log.
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzzer.log")
echo "$name: ${runs:-?} inputs in ${seconds} s from $(ls "$corpus" | wc -l) corpus files, no failure"
