#!/usr/bin/env bash
# make test-python: builds the package against the library of a CMake build
# folder (the same objects as the CLI), installs it into a throw-away venv
# made as the README says, and runs its tests from outside the source tree.
#   python/run-tests.sh BUILD_DIR [pytest arguments]
set -euo pipefail

build=$(cd "$1" && pwd)
shift
src=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/diskmeans-python.XXXXXX")
trap 'rm -rf "$work"' EXIT

# setuptools builds in python/build and relinks only when a dependency is
# newer: a changed link line (a library added to the build) would be missed.
rm -rf "$src/build"
/usr/bin/python3 -m venv --system-site-packages "$work/venv"
echo "installing the package into $work/venv"
DISKMEANS_BUILD_DIR="$build" "$work/venv/bin/pip" install --quiet --no-build-isolation \
  --no-index "$src"

# From a folder outside the tree, so that `import diskmeans` finds the
# installed copy (test_installed_package.py checks it does).
mkdir "$work/run"
cd "$work/run"
DISKMEANS="$build/programs/diskmeans" TMPDIR="$work" \
  "$work/venv/bin/python" -m pytest -p no:cacheprovider -q -rs "$src/tests" "$@"
