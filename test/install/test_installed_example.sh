#!/usr/bin/env bash
# Installs the library into a scratch prefix, then builds examples/ against
# it twice - through the CMake package and through pkg-config - and runs it.
# Checks the example's output: 4 clusters, every point labelled with the
# centroid of its own pair.
set -euo pipefail
src=$1
bin=$2
work=$(mktemp -d "$bin/test-tmp/install-XXXXXX")
trap 'rm -rf "$work"' EXIT

cmake --install "$bin" --prefix "$work/prefix" >/dev/null

check_output() {
  local out=$1
  grep -q '^objective 2\.000 after' "$out" || { echo "unexpected objective:"; cat "$out"; exit 1; }
  # Points come in pairs (0,1), (2,3), ...: each pair shares a label, pairs differ.
  labels=$(awk '/^point/ {print $6}' "$out" | tr '\n' ' ')
  read -r -a l <<<"$labels"
  [ "${#l[@]}" -eq 8 ] || { echo "expected 8 labelled points"; cat "$out"; exit 1; }
  for i in 0 2 4 6; do
    [ "${l[$i]}" = "${l[$((i + 1))]}" ] || { echo "pair $i split"; cat "$out"; exit 1; }
  done
  [ "$(printf '%s\n' "${l[0]}" "${l[2]}" "${l[4]}" "${l[6]}" | sort -u | wc -l)" -eq 4 ] ||
    { echo "pairs share a centroid"; cat "$out"; exit 1; }
}

echo "building examples/ with find_package(diskmeans)"
cmake -S "$src/examples" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
"$work/cmake-build/example" >"$work/out-cmake.txt"
check_output "$work/out-cmake.txt"

echo "building examples/example.c with pkg-config"
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig:$work/prefix/lib/$(gcc -print-multiarch)/pkgconfig"
cc -std=c11 -Wall -Werror $(pkg-config --cflags diskmeans) "$src/examples/example.c" \
  -o "$work/example-pc" $(pkg-config --libs diskmeans) -Wl,-rpath,"$work/prefix/lib" \
  -Wl,-rpath,"$work/prefix/lib/$(gcc -print-multiarch)"
"$work/example-pc" >"$work/out-pc.txt"
check_output "$work/out-pc.txt"

echo "checking that README.md shows examples/example.c as it is"
awk '/^```c$/ {on=1; next} /^```$/ {on=0} on' "$src/README.md" >"$work/readme_example.c"
sed '1,2d' "$src/examples/example.c" | diff - "$work/readme_example.c" ||
  { echo "README.md's C example differs from examples/example.c"; exit 1; }
cc -std=c11 -Wall -Werror $(pkg-config --cflags diskmeans) "$work/readme_example.c" \
  -o "$work/readme-example" $(pkg-config --libs diskmeans) -Wl,-rpath,"$work/prefix/lib" \
  -Wl,-rpath,"$work/prefix/lib/$(gcc -print-multiarch)"
"$work/readme-example" >"$work/out-readme.txt"
check_output "$work/out-readme.txt"
echo "running README.md's lines for a non-system prefix"
# The block that sets PREFIX; 'make install' there is the install above.
awk '/^```sh$/ {on=1; block=""; next} on && /^```$/ {on=0; if (block ~ /^PREFIX=/) print block; next}
     on {block = block $0 "\n"}' "$src/README.md" >"$work/prefix-lines.sh"
grep -q '^make install PREFIX=' "$work/prefix-lines.sh" ||
  { echo "README.md has no block for a non-system prefix"; exit 1; }
sed -i -e "s|^PREFIX=.*|PREFIX='$work/prefix2'|" \
  -e "s|^make install PREFIX=.*|cmake --install '$bin' --prefix \"\$PREFIX\" >/dev/null|" \
  "$work/prefix-lines.sh"
mkdir -p "$work/prefix-run"
cp "$src/examples/example.c" "$work/prefix-run/"
(cd "$work/prefix-run" && env -u PKG_CONFIG_PATH -u LD_LIBRARY_PATH bash -e "$work/prefix-lines.sh") \
  >"$work/out-prefix.txt"
check_output "$work/out-prefix.txt"
# The rpath alone finds the library: no LD_LIBRARY_PATH was set above.
readelf -d "$work/prefix-run/example" | grep -q "$work/prefix2" ||
  { echo "the README's build recorded no rpath"; exit 1; }
echo "1 passed, 0 failed"
