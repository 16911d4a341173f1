#!/usr/bin/env bash
# The reference benchmark (issue 2): diskmeans on 131,072 x 128 standard
# normal rows, k = 512, 10 iterations, 1 and 2 threads, printing seconds per
# iteration and assignment GFLOP/s next to the bare cblas_sgemm on the same
# shapes. Usage: bash bench/reference.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
if [ ! -x "$build/bench/bench_train" ]; then
  echo "reference.sh: $build/bench/bench_train is missing: build first (make build)" >&2
  exit 1
fi
exec "$build/bench/bench_train" --reference
