#!/usr/bin/env bash
# What `make bench` runs: the side-by-side comparison (bench/compare.py) of
# diskmeans, FAISS, scikit-learn and the bare sgemm ceiling, with the
# programs of BUILD_DIR. Writes bench/results/latest.md (+ latest.json) and
# prints the table. Extra arguments go to compare.py, e.g.
#   bash bench/compare.sh build --quick
#   bash bench/compare.sh build --workloads ref --threads 2 --unset-openblas-env
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: bash bench/compare.sh BUILD_DIR [compare.py options]" >&2
  exit 2
fi
build=$1
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

for prog in bench_train sgemm_ceiling; do
  if [ ! -x "$build/bench/$prog" ]; then
    echo "compare.sh: $build/bench/$prog is missing: build first (make build)" >&2
    exit 1
  fi
done

# The Debian interpreter: it is the one with numpy, faiss and sklearn (the
# python3 first on PATH may be another).
python=/usr/bin/python3
# diskmeans' Python package, built against this build's library and
# installed into a venv of that interpreter (program "python" of the table;
# left out if it cannot be installed).
venv="$build/python-venv"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv --system-site-packages "$venv" || true
fi
if [ -x "$venv/bin/pip" ] && DISKMEANS_BUILD_DIR="$(cd "$build" && pwd)" \
    "$venv/bin/pip" install --quiet --no-build-isolation --no-index "$here/../python"; then
  set -- --python "$venv/bin/python" "$@"
else
  echo "compare.sh: could not install the Python package: its row is left out" >&2
fi
results="$here/results"
mkdir -p "$results"
# A failed program run makes compare.py exit 1 after writing the table of the
# others: keep that table, and the status.
status=0
"$python" "$here/compare.py" --build-dir "$build" --markdown "$results/latest.md.tmp" \
  --json-out "$results/latest.json.tmp" "$@" || status=$?
if [ -f "$results/latest.md.tmp" ]; then
  mv "$results/latest.md.tmp" "$results/latest.md"
  mv "$results/latest.json.tmp" "$results/latest.json"
  echo
  echo "Written: $results/latest.md"
  cat "$results/latest.md"
fi
exit $status
