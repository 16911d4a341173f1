#!/usr/bin/env bash
# make demo: trains k = 256 centroids on the 60,000 Fashion-MNIST training
# images, then labels the 10,000 test images with them.
#   usage: bash scripts/demo.sh [BUILD_DIR]    (default: build)
# Outputs go to BUILD_DIR/demo/. DKM_FASHION_MNIST (folder of the .gz files)
# and DKM_DEMO_OUT (output folder) override the defaults; the test of this
# script uses them.
set -euo pipefail

build=${1:-build}
tool="$build/programs/diskmeans"
data=${DKM_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
out=${DKM_DEMO_OUT:-$build/demo}
train="$data/train-images-idx3-ubyte.gz"
test="$data/t10k-images-idx3-ubyte.gz"

if [ ! -x "$tool" ]; then
  echo "demo: $tool not found; build first (make build)" >&2
  exit 1
fi
for f in "$train" "$test"; do
  if [ ! -r "$f" ]; then
    echo "demo: $f not found; install the Debian package dataset-fashion-mnist (make deps)" >&2
    exit 1
  fi
done
mkdir -p "$out"

echo "== What training 256 centroids on $(basename "$train") needs"
"$tool" info "$train" -k 256
echo
echo "== Training k = 256 on the 60,000 training images (784 pixels each)"
"$tool" train "$train" -k 256 -o "$out/centroids.npy" --stats "$out/stats.json" \
  --labels "$out/train-labels.npy"
echo
echo "== Labelling the 10,000 test images with the nearest centroid"
"$tool" assign "$test" -c "$out/centroids.npy" -o "$out/test-labels.npy" \
  --distances "$out/test-distances.npy"
echo
echo "Outputs in $out/:"
ls -l "$out"
