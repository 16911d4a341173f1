#!/usr/bin/env bash
# Every bad input gives exit 1, one error line naming the file, no output and
# no temporary file; an existing output is left untouched.
source "$(dirname "$0")/lib.sh"

mkdir -p "$T/in" "$T/out"
"$PY" - "$T/in" <<'PYEOF'
import gzip, struct, sys
import numpy as np
d = sys.argv[1]
def w(name, data):
    open(f"{d}/{name}", "wb").write(data)
good = np.arange(40 * 4, dtype=np.float32).reshape(40, 4)
def npy(arr):
    import io
    b = io.BytesIO(); np.save(b, arr); return b.getvalue()
def fvecs(rows):
    return b"".join(struct.pack("<i", len(r)) + np.asarray(r, np.float32).tobytes() for r in rows)
w("empty.fvecs", b"")
w("empty.npy", b"")
w("truncated.fvecs", fvecs(good)[:-6])
w("truncated.f32", good.tobytes()[:-4])
# Row 12 has 9 values instead of 4, and one row less keeps the size a
# multiple of the row size: only reading the rows can find it.
w("dims.fvecs", fvecs(list(good[:12]) + [np.zeros(9)] + list(good[14:])))
w("dim0.fvecs", struct.pack("<i", 0) * 4)
w("dimhuge.fvecs", struct.pack("<i", 2**30) + b"\0" * 64)
w("dimneg.fvecs", struct.pack("<i", -4) + b"\0" * 64)
w("magic.npy", b"\x93NUMPX" + npy(good)[6:])
full = npy(good)
w("headerlong.npy", full[:8] + struct.pack("<H", 60000) + full[10:40])
w("fortran.npy", npy(np.asfortranarray(good)))
w("bigendian.npy", npy(good.astype(">f4")))
w("complex.npy", npy(good.astype(np.complex64)))
w("str.npy", npy(np.array([["a", "b"]])))
w("oned.npy", npy(np.arange(10, dtype=np.float32)))
w("threed.npy", npy(np.zeros((2, 3, 4), np.float32)))
w("zerodim.npy", npy(np.zeros((5, 0), np.float32)))
w("zerorows.npy", npy(np.zeros((0, 4), np.float32)))
def npy_header(shape):  # a hand-made v1.0 header, for shapes numpy would not write
    d = ("{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % shape).encode()
    d += b" " * (63 - (10 + len(d)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d
w("hugedim.npy", npy_header("(4, 1000000000000)") + b"\0" * 64)
w("negshape.npy", npy_header("(-4, 4)") + b"\0" * 64)
w("shape.npy", full[:-16])
w("shapebig.npy", full + b"\0" * 16)
w("nan.npy", npy(np.where(np.arange(160).reshape(40, 4) == 57, np.nan, good).astype(np.float32)))
w("inf.npy", npy(np.where(np.arange(160).reshape(40, 4) == 99, np.inf, good).astype(np.float32)))
w("nan.fvecs", fvecs(np.where(np.arange(160).reshape(40, 4) == 150, np.nan, good)))
idx = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">III", 40, 2, 2) + bytes(range(160))
w("badmagic.idx", b"\x01\x02" + idx[2:])
w("truncated.idx", idx[:-7])
w("truncated-idx.gz", gzip.compress(idx[:-7]))
gz = gzip.compress(idx)
w("corrupt.gz", gz[:20] + bytes(b ^ 0x5a for b in gz[20:40]) + gz[40:])
w("cut.gz", gz[: len(gz) // 2])
w("good.npy", npy(good))
w("good.idx", idx)
PYEOF

# The good files really are good (so the failures below are about the files).
run train "$T/in/good.npy" -k 2 -o "$T/out/ok.npy" --quiet
expect_status 0
run train "$T/in/good.idx" -k 2 -o "$T/out/ok2.npy" --quiet
expect_status 0
rm -f "$T/out/ok.npy" "$T/out/ok2.npy"

# A previous good output that must survive every failure below.
echo "precious" >"$T/out/keep.npy"

bad_inputs=(
  empty.fvecs empty.npy truncated.fvecs dims.fvecs dim0.fvecs dimhuge.fvecs dimneg.fvecs
  magic.npy headerlong.npy zerodim.npy zerorows.npy hugedim.npy negshape.npy fortran.npy bigendian.npy complex.npy str.npy oned.npy threed.npy
  shape.npy shapebig.npy nan.npy inf.npy nan.fvecs badmagic.idx truncated.idx
  truncated-idx.gz corrupt.gz cut.gz missing.npy
)
for f in "${bad_inputs[@]}"; do
  check "train on $f fails cleanly"
  run train "$T/in/$f" -k 2 -o "$T/out/c.npy" --labels "$T/out/l.npy" --stats "$T/out/s.json"
  expect_status 1
  expect_one_error_line "$f"
  expect_missing "$T/out/c.npy" "$T/out/l.npy" "$T/out/s.json"
  expect_no_temp "$T/out"
  check "assign on $f fails cleanly"
  run assign "$T/in/$f" -c "$T/in/good.npy" -o "$T/out/l.npy"
  if [ "$f" = dims.fvecs ] || [ "$f" = nan.fvecs ] || [ "$f" = nan.npy ] || [ "$f" = inf.npy ]; then
    # Whether assign checks values is the library's choice; it must not
    # crash, and if it fails it fails cleanly.
    [ "$RC" -eq 0 ] || [ "$RC" -eq 1 ] || fail "assign $f: exit $RC"
    [ "$RC" -eq 0 ] && rm -f "$T/out/l.npy"
  else
    expect_status 1
    expect_one_error_line "$f"
  fi
  expect_missing "$T/out/l.npy"
  expect_no_temp "$T/out"
done

check "the fvecs row of another dimension is named"
run train "$T/in/dims.fvecs" -k 2 -o "$T/out/c.npy"
expect_one_error_line "dims.fvecs: row 12 .*dimension 9"

check "raw rows: truncated last row"
run train "$T/in/truncated.f32" --dim 4 -k 2 -o "$T/out/c.npy"
expect_status 1
expect_one_error_line "truncated.f32"
expect_missing "$T/out/c.npy"

check "k larger than the rows"
run train "$T/in/good.npy" -k 41 -o "$T/out/c.npy"
expect_status 1
expect_one_error_line "41|rows|clusters"
expect_missing "$T/out/c.npy"

check "an existing output is not clobbered by a failing run"
run train "$T/in/nan.npy" -k 2 -o "$T/out/keep.npy"
expect_status 1
[ "$(cat "$T/out/keep.npy")" = precious ] || fail "keep.npy was modified"

check "assign with centroids of another dimension"
"$PY" -c "import numpy as np; np.save('$T/in/c5.npy', np.zeros((3, 5), np.float32))"
run assign "$T/in/good.npy" -c "$T/in/c5.npy" -o "$T/out/l.npy"
expect_status 1
expect_one_error_line "c5.npy.*dimension 5.*good.npy.*dimension 4"
expect_missing "$T/out/l.npy"

check "assign with a bad centroid file"
run assign "$T/in/good.npy" -c "$T/in/fortran.npy" -o "$T/out/l.npy"
expect_status 1
expect_one_error_line "fortran.npy"
run assign "$T/in/good.npy" -c "$T/in/nan.npy" -o "$T/out/l.npy"
expect_status 1
expect_one_error_line "nan.npy.*row 14"
expect_missing "$T/out/l.npy"

check "info on bad files"
for f in empty.fvecs magic.npy fortran.npy badmagic.idx missing.npy; do
  run info "$T/in/$f"
  expect_status 1
  expect_one_error_line "$f"
done

expect_no_temp "$T/out"
finish
