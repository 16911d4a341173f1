#!/usr/bin/env bash
# A hierarchical run says what it did: progress lines per part (coarse,
# routing, a few group lines and their total, refinement passes), the
# strategy and its stages in the summary, a time line and --stats seconds
# that add up, the hierarchical fields of --stats, and info -k's strategy,
# coarse k and arithmetic against flat.
source "$(dirname "$0")/lib.sh"

blobs "$T/x.npy" 20000 8 64

check "train --strategy hierarchical: progress lines per part"
run train "$T/x.npy" -k 256 --strategy hierarchical --refine 2 --iters 5 --tol 0 \
  -o "$T/c.npy" --labels "$T/l.npy" --stats "$T/s.json"
expect_status 0
LC_ALL=C grep -q $'[\r\x1b]' "$ERR" && fail "CR or ESC in plain progress"
grep -Eq '^sampled [0-9]+ of 20000 rows in [0-9.]+ s$' "$ERR" || fail "no sample line: $(cat "$ERR")"
grep -Eq '^coarse: iteration 1/5: objective [0-9.e+]+ \([0-9.]+ s\)$' "$ERR" ||
  fail "no coarse iteration line: $(head -5 "$ERR")"
grep -Eq '^routed [0-9]+ rows to their coarse groups in [0-9.]+ s$' "$ERR" ||
  fail "no routing line: $(cat "$ERR")"
for pass in 1 2; do
  grep -Eq "^refine pass $pass/2: objective [0-9.e+]+ \\([0-9.]+ s\\)$" "$ERR" ||
    fail "no refine pass $pass line: $(tail -5 "$ERR")"
done
grep -Eq '^iteration ' "$ERR" && fail "a flat-style iteration line in a hierarchical run"
"$PY" - "$ERR" "$T/s.json" <<'PYEOF' || fail "group lines"
import json, re, sys
lines = open(sys.argv[1]).read().splitlines()
stats = json.load(open(sys.argv[2]))
groups = [l for l in lines if l.startswith("group ")]
assert groups, lines
n = {int(re.match(r"group \d+/(\d+): ", l).group(1)) for l in groups}
assert len(n) == 1, groups
n = n.pop()
assert n >= 2, groups
# The first and the last group, and about every tenth in between: never
# one line per group iteration.
assert groups[0].startswith("group 1/") and groups[-1].startswith(f"group {n}/{n}:"), groups
assert len(groups) <= 12, groups
for l in groups:
    assert re.fullmatch(r"group \d+/\d+: (\d+ iterations?, objective \S+|trained in [0-9.]+ s) ?(\([0-9.]+ s\))?", l), l
total = [l for l in lines if re.fullmatch(r"trained \d+ groups in [0-9.]+ s", l)]
assert total == [total[0]] and int(total[0].split()[1]) == n, (total, n)
# The parts come in the order they run.
order = [next(i for i, l in enumerate(lines) if l.startswith(p))
         for p in ("sampled ", "coarse: iteration 1/", "routed ", "group 1/", "trained ",
                   "refine pass 1/", "refine pass 2/", "labelled ")]
assert order == sorted(order), order
PYEOF

if command -v script >/dev/null 2>&1; then
  check "under a pseudo-terminal: the bar names each part, and rolls through the groups"
  run_on_tty xterm train "$T/x.npy" -k 256 --strategy hierarchical --iters 5 -o "$T/tty.npy"
  expect_status 0
  # The first report of each phase of each part is drawn at once.
  for want in 'coarse: iteration 1/5 \[' 'routing \[' 'group 1/[0-9]+: iteration 1/5 \[' \
    'refine pass 1/2 \['; do
    tr '\r' '\n' <"$T/tty.out" | grep -Eaq "$want" || fail "no bar /$want/ in: $(od -c "$T/tty.out" | head -8)"
  done
fi

check "summary and --stats of a hierarchical run"
grep -Eq '^trained 256 centroids of dimension 8 on [0-9]+ of 20000 rows: hierarchical, objective ' "$OUT" ||
  fail "first summary line: $(head -1 "$OUT")"
grep -Eq '^strategy: hierarchical \(--strategy\): [0-9]+ coarse centroids, [0-9]+ levels, 2 refinement passes$' "$OUT" ||
  fail "strategy line: $(grep strategy "$OUT")"
grep -Eq '^partitions: CV [0-9.]+, largest [0-9]+ \([0-9.]+x the mean\), smallest [0-9]+, [0-9]+ empty$' "$OUT" ||
  fail "partitions line: $(grep partitions "$OUT")"
"$PY" - "$OUT" "$T/s.json" "$T/l.npy" <<'PYEOF' || fail "hierarchical summary or --stats"
import json, math, re, sys
import numpy as np
out, stats = open(sys.argv[1]).read(), json.load(open(sys.argv[2]))
assert stats["strategy"] == "hierarchical", stats["strategy"]
assert stats["params"]["strategy"] == "hierarchical" and stats["params"]["refine"] == 2
h = stats["hierarchical"]
assert 2 <= h["coarse_k"] < 256 and h["levels"] >= 2 and h["refine_passes"] == 2, h
assert all(h[f] >= 0 for f in ("coarse_seconds", "route_seconds", "groups_seconds", "refine_seconds")), h
m = re.search(r"^strategy: .*: (\d+) coarse centroids, (\d+) levels", out, re.M)
assert (int(m.group(1)), int(m.group(2))) == (h["coarse_k"], h["levels"]), (m.group(0), h)
plan = stats["plan"]
assert plan["strategy"] == "hierarchical" and plan["coarse_k"] == h["coarse_k"], plan
assert 0 < plan["flops"] < plan["flat_flops"], plan

# The time line: the stages of hierarchical training, adding up.
line = [l for l in out.splitlines() if l.startswith("time ")][0]
m = re.fullmatch(r"time (\d+)\.(\d\d) s: (.*)", line)
parts = {}
for p in m.group(3).split(", "):
    name, s, c = re.fullmatch(r"(\w+) (\d+)\.(\d\d) s", p).groups()
    parts[name] = int(s) * 100 + int(c)
assert list(parts) == ["sample", "coarse", "route", "groups", "refine", "labels", "other"], parts
assert sum(parts.values()) == int(m.group(1)) * 100 + int(m.group(2)), (parts, line)
sec = stats["seconds"]
assert list(sec) == ["sample", "coarse", "route", "groups", "refine", "train", "labels", "other"], sec
stages = sec["sample"] + sec["coarse"] + sec["route"] + sec["groups"] + sec["refine"]
assert abs(stages - sec["train"]) < 1e-6, sec
assert abs(sec["train"] + sec["labels"] + sec["other"] - stats["wall_seconds"]) < 1e-6, sec
assert all(v >= 0 for v in sec.values()), sec

# Balance over every row, recounted from the labels.
sizes = np.bincount(np.load(sys.argv[3]), minlength=256).astype(np.float64)
lb = stats["label_balance"]
assert math.isclose(lb["cv"], sizes.std() / sizes.mean(), rel_tol=1e-9), (lb, sizes)
assert (lb["largest"], lb["smallest"], lb["empty"]) == (sizes.max(), sizes.min(), (sizes == 0).sum())
b, z = stats["balance"], stats["cluster_sizes"]
assert (b["smallest"], b["largest"], b["empty"]) == (z["min"], z["max"], z["empty"]), (b, z)
PYEOF

check "--refine 0: no refinement pass, and the groups still end with their total line"
run train "$T/x.npy" -k 256 --strategy hierarchical --refine 0 --iters 3 -o "$T/c0.npy" \
  --stats "$T/s0.json"
expect_status 0
grep -q '^refine pass' "$ERR" && fail "a refinement pass with --refine 0: $(cat "$ERR")"
tail -1 "$ERR" | grep -Eq '^trained [0-9]+ groups in [0-9.]+ s$' ||
  fail "the groups' total line is not the last progress line: $(tail -3 "$ERR")"
grep -Eq '^strategy: hierarchical \(--strategy\): [0-9]+ coarse centroids, [0-9]+ levels, 0 refinement passes$' "$OUT" ||
  fail "strategy line with --refine 0: $(grep strategy "$OUT")"
"$PY" -c "
import json
s = json.load(open('$T/s0.json'))
assert s['hierarchical']['refine_passes'] == 0 and s['n_iter'] == 1, s['hierarchical']
" || fail "--refine 0 in --stats"

check "groups trained hierarchically in turn: no line of theirs but their group's, nesting on the bar"
# A tight blob of 12,000 rows among 8,000 spread ones: its group's share of
# k = 8192 is above 4096, so that group is trained hierarchically in turn.
"$PY" - "$T/n.npy" <<'PYEOF'
import sys
import numpy as np
rng = np.random.default_rng(5)
x = np.concatenate([rng.normal(0, 0.01, (12000, 4)), rng.uniform(-1000, 1000, (8000, 4))])
np.save(sys.argv[1], x[rng.permutation(len(x))].astype(np.float32))
PYEOF
run train "$T/n.npy" -k 8192 --iters 3 -o "$T/nc.npy" --stats "$T/ns.json"
expect_status 0
"$PY" - "$ERR" "$T/ns.json" <<'PYEOF' || fail "nested groups: $(cat "$ERR")"
import json, re, sys
lines = open(sys.argv[1]).read().splitlines()
h = json.load(open(sys.argv[2]))["hierarchical"]
assert h["levels"] >= 3, h  # else this checks nothing nested
routed = next(i for i, l in enumerate(lines) if l.startswith("routed "))
after = lines[routed + 1:]
groups = [l for l in after if l.startswith("group ")]
assert 2 <= len(groups) <= 12, groups
assert all(re.match(r"group \d+/%d: " % h["coarse_k"], l) for l in groups), groups
assert f"trained {h['coarse_k']} groups" in after[len(groups)], after
rest = after[len(groups) + 1:]
assert [l.split(":")[0] for l in rest] == ["refine pass 1/2", "refine pass 2/2"], rest
PYEOF
if command -v script >/dev/null 2>&1; then
  run_on_tty xterm train "$T/n.npy" -k 8192 --iters 3 -o "$T/nc.npy"
  expect_status 0
  # The first report from one level down is drawn at once.
  tr '\r' '\n' <"$T/tty.out" | grep -Eaq 'group [0-9?]+(/[0-9]+)? > (coarse|group [0-9]+/[0-9]+): ' ||
    fail "no nested label on the bar: $(tr '\r' '\n' <"$T/tty.out" | grep -a group | head -5)"
fi

check "info -k: the strategy, coarse k and the arithmetic against flat"
run info "$T/x.npy" -k 256 --strategy hierarchical
expect_status 0
grep -qx 'strategy: *hierarchical (--strategy)' "$OUT" || fail "info strategy: $(cat "$OUT")"
grep -Eq '^coarse k: +[0-9]+$' "$OUT" || fail "info coarse k: $(cat "$OUT")"
grep -Eq '^arithmetic: +[0-9.e+]+ flops, [0-9.]+x less than flat \([0-9.e+]+\)$' "$OUT" ||
  fail "info arithmetic: $(grep arithmetic "$OUT")"
run info "$T/x.npy" -k 4096
expect_status 0
grep -qx 'strategy: *hierarchical (auto: k >= 4096)' "$OUT" || fail "auto at 4096: $(cat "$OUT")"
run info "$T/x.npy" -k 4095 --json
expect_status 0
"$PY" -c "
import json
p = json.load(open('$OUT'))['plan']
assert p['strategy_requested'] == 'auto' and p['strategy'] == 'flat' and p['coarse_k'] == 0, p
assert p['flops'] == p['flat_flops'] > 0, p
" || fail "info --json at 4095: $(cat "$OUT")"
finish
