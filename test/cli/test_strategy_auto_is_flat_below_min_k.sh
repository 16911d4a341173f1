#!/usr/bin/env bash
# Below DKM_HIERARCHICAL_MIN_K (4096), --strategy auto (the default) trains
# flat: the same centroid bytes as --strategy flat, and --refine (which only
# hierarchical training uses) changes nothing. The summary, --stats and
# info say which strategy was used and why.
source "$(dirname "$0")/lib.sh"

blobs "$T/x.npy" 3000 8 16

check "no option, --strategy auto, --strategy flat and --refine 7: the same centroids"
run train "$T/x.npy" -k 16 -o "$T/none.npy" --stats "$T/none.json"
expect_status 0
grep -qx 'strategy: flat (auto: k < 4096)' "$OUT" || fail "strategy line: $(grep strategy "$OUT")"
for variant in "auto:--strategy auto" "flat:--strategy flat" "refine:--refine 7" \
  "flat-refine:--strategy=flat --refine 0"; do
  name=${variant%%:*}
  # shellcheck disable=SC2086 # the options are split on purpose
  run train "$T/x.npy" -k 16 -o "$T/$name.npy" --stats "$T/$name.json" ${variant#*:}
  expect_status 0
  cmp -s "$T/none.npy" "$T/$name.npy" || fail "${variant#*:} changed the centroids"
done
grep -qx 'strategy: flat (--strategy)' "$OUT" || fail "forced strategy line: $(grep strategy "$OUT")"

check "--stats records the strategy asked for and the one used"
"$PY" - "$T" <<'PYEOF' || fail "strategy in --stats"
import json, sys
t = sys.argv[1]
for name, asked, refine in (("none", "auto", 2), ("auto", "auto", 2), ("flat", "flat", 2),
                            ("refine", "auto", 7), ("flat-refine", "flat", 0)):
    s = json.load(open(f"{t}/{name}.json"))
    assert s["params"]["strategy"] == asked, (name, s["params"])
    assert s["params"]["refine"] == refine and s["params"]["balance"] is False, (name, s["params"])
    assert s["strategy"] == "flat" and s["hierarchical"] is None, (name, s["strategy"])
    # The planner's price: flat at this k.
    plan = s["plan"]
    assert plan["strategy"] == "flat" and plan["coarse_k"] == 0, (name, plan)
    assert plan["flops"] == plan["flat_flops"] > 0, (name, plan)
    assert "init" in s["seconds"] and "coarse" not in s["seconds"], (name, s["seconds"])
PYEOF

check "--balance is recorded and said"
run train "$T/x.npy" -k 16 -o "$T/b.npy" --stats "$T/b.json" --balance
expect_status 0
grep -qx 'strategy: flat (auto: k < 4096), balanced' "$OUT" ||
  fail "strategy line with --balance: $(grep strategy "$OUT")"
"$PY" -c "
import json
assert json.load(open('$T/b.json'))['params']['balance'] is True
" || fail "params.balance is not true"

check "info -k: the strategy is flat, with no coarse k"
run info "$T/x.npy" -k 16
expect_status 0
grep -qx 'strategy: *flat (auto: k < 4096)' "$OUT" || fail "info strategy: $(grep strategy "$OUT")"
grep -Eqx 'arithmetic: +[0-9.e+]+ flops' "$OUT" || fail "info arithmetic: $(grep arithmetic "$OUT")"
grep -q '^coarse k:' "$OUT" && fail "coarse k shown for flat: $(cat "$OUT")"
run info "$T/x.npy" -k 16 --strategy flat --refine 3 --json
expect_status 0
"$PY" -c "
import json
p = json.load(open('$OUT'))['plan']
assert p['strategy_requested'] == 'flat' and p['refine'] == 3, p
assert p['strategy'] == 'flat' and p['coarse_k'] == 0, p
" || fail "info --json strategy fields: $(cat "$OUT")"
finish
