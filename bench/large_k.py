#!/usr/bin/python3
"""Large-k benchmark: flat and hierarchical diskmeans against FAISS's
two-level clustering, side by side in one run (issue 10's goals).

Run with the Debian interpreter (/usr/bin/python3), which has numpy and faiss:

    /usr/bin/python3 bench/large_k.py --build-dir build [--repeats R] [--datasets zipf,fmnist]
        [--quick] [--markdown FILE] [--json-out FILE] [--hier-args "--refine 2"]

Data sets (written once to --data-dir and reused):
  zipf    500,000 x 96 float32 rows of a mixture of 3,000 Gaussian components
          with Zipf weights (1/rank) and varied spreads (bench/zipf_mixture.py,
          seeded), k = 4096; 2,000 held-out query rows of the same mixture.
  fmnist  Fashion-MNIST's 60,000 training images, k = 1024; 1,000 of the 10,000
          test images (a seeded choice) as queries.

Methods, all with 10 iterations and 2 threads:
  flat          diskmeans train --strategy flat
  hierarchical  diskmeans train --strategy hierarchical [--hier-args]
  balanced      diskmeans train --strategy hierarchical --balance [--hier-args]
  faiss         faiss.contrib.clustering.two_level_clustering (FAISS 1.7.3),
                sqrt(k) coarse clusters each split into sqrt(k), both levels
                at the same iteration count (see worker_faiss)

What is measured, the same way for every method:
  wall          median over the repeats, which alternate the methods (A B C D
                A B C D ...): for diskmeans the whole command (read, train,
                write), for FAISS the two_level_clustering call alone (after
                the interpreter, the imports and np.load), which favours FAISS.
  CPU           user + system seconds of the same (median): less disturbed
                than wall time when other work shares the cores.
  objective     over ALL data rows, each at its nearest final centroid (found
                by faiss.IndexFlatL2, the squared distance then summed exactly
                in float64), as a ratio to flat's.
  balance       of the partition of the data rows by nearest centroid: CV
                (population std / mean of the k sizes, empty ones included),
                largest / mean, smallest, empty.
  recall@10     IVF recall at an equal scan budget: each query probes lists
                (the partitions above) nearest centroid first until at least
                the budget (0.25%, 1% of the data rows) has been scanned; one
                of its 10 true nearest neighbours (exact search) counts when
                its list was probed, as IVF-Flat is exact inside a list. Equal
                nprobe would flatter unbalanced partitions.

The same process is the FAISS worker (--worker-faiss).
"""

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import format_rows, loadavg, machine_info, read_idx_images, rss_bytes  # noqa: E402
import zipf_mixture  # noqa: E402

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
DATA_SEED = 20261127
QUERY_SEED = 11
DATASETS = {
    "zipf": dict(title="500,000 x 96 Zipf-sized mixture (3,000 components)", rows=500000,
                 dim=96, centres=3000, queries=2000, k=4096),
    "fmnist": dict(title="Fashion-MNIST 60,000 x 784", queries=1000, k=1024),
}
# --quick: small versions, for a smoke run of the script itself.
QUICK = {
    "zipf": dict(rows=65536, centres=500, queries=500, k=512),
    "fmnist": dict(rows=10000, queries=200, k=256),
}
METHODS = ("flat", "hierarchical", "balanced", "faiss")
LABELS = {"flat": "diskmeans flat", "hierarchical": "diskmeans hierarchical",
          "balanced": "diskmeans hierarchical --balance",
          "faiss": "FAISS two_level_clustering"}
BUDGETS = (0.0025, 0.01)
FAILURES = []
NOTES = []


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

def make_dataset(name, spec):
    """(rows, queries), float32, C order."""
    if name == "zipf":
        mix = zipf_mixture.Mixture(spec["dim"], spec["centres"], DATA_SEED)
        return mix.rows(spec["rows"], stream=0), mix.rows(spec["queries"], stream=1)
    if name == "fmnist":
        x = read_idx_images(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz"))
        t = read_idx_images(os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz"))
        if "rows" in spec:
            x = x[:spec["rows"]]
        pick = np.sort(np.random.default_rng(QUERY_SEED).choice(t.shape[0], spec["queries"],
                                                                replace=False))
        return (np.ascontiguousarray(x, dtype=np.float32),
                np.ascontiguousarray(t[pick], dtype=np.float32))
    raise ValueError(name)


def exact_knn(x, q, nn):
    import faiss
    faiss.omp_set_num_threads(1)  # see nearest()
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    _, ids = index.search(q, nn)
    return ids


def prepare(name, quick, data_dir):
    """Writes (or reuses) the rows, the queries and their exact 10 nearest
    data rows; returns the spec with the paths."""
    spec = dict(DATASETS[name])
    if quick:
        spec.update(QUICK[name])
    tag = f"{name}{'-quick' if quick else ''}"
    paths = {f"{p}_path": os.path.join(data_dir, f"{tag}-{p}.npy") for p in ("data", "queries", "gt")}
    stamp_path = os.path.join(data_dir, f"{tag}.stamp")
    stamp = {"data_seed": DATA_SEED, "query_seed": QUERY_SEED, "spec": spec,
             "generator": zipf_mixture.VERSION, "version": 1}
    fresh = False
    try:
        with open(stamp_path) as f:
            fresh = json.load(f) == stamp and all(os.path.exists(p) for p in paths.values())
    except (OSError, ValueError):
        pass
    if not fresh:
        log(f"[{name}] writing rows, queries and exact neighbours to {data_dir}")
        x, q = make_dataset(name, spec)
        np.save(paths["data_path"], x)
        np.save(paths["queries_path"], q)
        np.save(paths["gt_path"], exact_knn(x, q, 10))
        with open(stamp_path, "w") as f:
            json.dump(stamp, f)
    x = np.load(paths["data_path"], mmap_mode="r")
    spec.update(name=name, tag=tag, rows=int(x.shape[0]), dim=int(x.shape[1]), **paths)
    return spec


# --------------------------------------------------------------------------
# Quality, computed the same way for every method
# --------------------------------------------------------------------------

def nearest(x, c, chunk=65536):
    """Label of every row of x (its nearest centroid by faiss.IndexFlatL2)
    and the sum of the squared distances to it, in float64. One thread:
    FAISS's OpenMP threads and its OpenBLAS spin waiting for each other, which
    on 2 busy cores made the search slower than with one."""
    import faiss
    faiss.omp_set_num_threads(1)
    index = faiss.IndexFlatL2(c.shape[1])
    index.add(c)
    c64 = c.astype(np.float64)
    labels = np.empty(x.shape[0], dtype=np.int64)
    total = 0.0
    for first in range(0, x.shape[0], chunk):
        xb = np.ascontiguousarray(x[first:first + chunk], dtype=np.float32)
        _, ids = index.search(xb, 1)
        labels[first:first + len(xb)] = ids[:, 0]
        diff = xb.astype(np.float64) - c64[ids[:, 0]]
        total += float(np.einsum("ij,ij->", diff, diff))
    return labels, total


def recall_at_budget(q, c, sizes, gt_lists, budget):
    """Mean recall@10 when each query probes lists nearest-first until at
    least `budget` rows are scanned, and the mean rows it scanned."""
    c = np.ascontiguousarray(c, dtype=np.float32)
    scores = (c * c).sum(1)[None, :] - 2.0 * (q @ c.T)
    order = np.argsort(scores, axis=1, kind="stable")
    scanned = np.cumsum(sizes[order], axis=1)
    # Lists probed: up to and including the first whose cumulative size
    # reaches the budget (all of them if the budget is never reached).
    probed = np.minimum((scanned < budget).sum(1) + 1, c.shape[0])
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(c.shape[0])[None, :], axis=1)
    found = np.take_along_axis(rank, gt_lists, axis=1) < probed[:, None]
    rows = scanned[np.arange(len(q)), probed - 1]
    return float(found.mean()), float(rows.mean())


def quality(w, x, q, gt, c):
    k = w["k"]
    labels, obj = nearest(x, c)
    sizes = np.bincount(labels, minlength=k)
    mean = x.shape[0] / k
    out = {"objective": obj, "cv": float(sizes.std() / mean), "largest_over_mean":
           float(sizes.max() / mean), "smallest": int(sizes.min()),
           "empty": int((sizes == 0).sum()), "recall": {}, "rows_scanned": {}}
    for b in BUDGETS:
        budget = int(np.ceil(b * x.shape[0]))
        r, scanned = recall_at_budget(q, c, sizes, labels[gt], budget)
        out["recall"][str(b)] = r
        out["rows_scanned"][str(b)] = scanned / budget
    return out


# --------------------------------------------------------------------------
# The FAISS worker, run as `large_k.py --worker-faiss ...`
# --------------------------------------------------------------------------

def worker_faiss(a):
    import faiss
    from faiss.contrib import clustering
    from threadpoolctl import threadpool_limits
    x = np.load(a.data)
    # sqrt(k) coarse clusters, split into k in all as train_ivf_index_with_2level
    # does (equal splits when k is a square, as 4096 and 1024 are).
    nc1 = int(np.sqrt(a.k))
    nc2 = np.diff(np.arange(nc1 + 1) * a.k // nc1)
    # two_level_clustering(xt, nc1, nc2, clustering_niter=25, **args) runs
    # level 1 with clustering_niter iterations, and passes **args to both
    # levels while level 1 also sets niter and verbose itself: niter cannot go
    # through **args, so level 2 would run its default 25 iterations. A thin
    # wrapper of faiss.Kmeans gives level 2 the same iteration count (level 1
    # passes its own niter, which wins) and keeps both levels quiet.
    plain = faiss.Kmeans

    def kmeans(d, k, **kw):
        kw.setdefault("niter", a.iters)
        kw["verbose"] = False
        return plain(d, k, **kw)

    faiss.Kmeans = kmeans
    faiss.omp_set_num_threads(a.threads)
    with threadpool_limits(a.threads):
        t0, cpu0 = time.perf_counter(), time.process_time()
        try:
            c, _ = clustering.two_level_clustering(x, nc1, nc2, clustering_niter=a.iters)
        except RuntimeError as e:
            # FAISS itself gives up, e.g. when a coarse cluster has fewer rows
            # than its equal share of k: a result to report, not a crash.
            lines = [ln for ln in str(e).splitlines() if ln.strip()]
            print(json.dumps({"program": "faiss", "gave_up": lines[0] if lines else "?"}))
            return 0
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    faiss.Kmeans = plain
    np.save(a.out, np.ascontiguousarray(c, dtype=np.float32))
    print(json.dumps({"program": "faiss", "version": faiss.__version__, "seconds": seconds,
                      "cpu_seconds": cpu, "nc1": nc1, "nc2": sorted(set(int(n) for n in nc2)), "peak_rss_bytes": rss_bytes()}))
    return 0


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------

def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Runner:
    def __init__(self, args):
        self.args = args
        help_text = subprocess.run([args.diskmeans, "train", "--help"], capture_output=True,
                                   text=True).stdout
        self.has_strategy = "--strategy" in help_text
        self.has_balance = "--balance" in help_text

    def available(self, method):
        """None, or why the method cannot run with this diskmeans."""
        if method in ("hierarchical", "balanced") and not self.has_strategy:
            return "this diskmeans has no --strategy"
        if method == "balanced" and not self.has_balance:
            return "this diskmeans has no --balance"
        return None

    def run(self, method, w, out):
        a = self.args
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(a.threads)
        if method == "faiss":
            cmd = [sys.executable, os.path.abspath(__file__), "--worker-faiss", "--data",
                   w["data_path"], "--k", str(w["k"]), "--iters", str(a.iters), "--threads",
                   str(a.threads), "--out", out]
        else:
            stats = out[:-4] + ".stats.json"
            cmd = [a.diskmeans, "train", w["data_path"], "-k", str(w["k"]), "-o", out, "--iters",
                   str(a.iters), "--tol", "0", "--threads", str(a.threads), "--stats", stats,
                   "-q"]
            if method == "flat" and self.has_strategy:
                cmd += ["--strategy", "flat"]
            if method in ("hierarchical", "balanced"):
                cmd += ["--strategy", "hierarchical"] + a.hier_args
            if method == "balanced":
                cmd += ["--balance"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=a.timeout)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # One child at a time, so the difference is this command's CPU time.
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
        res = {"command": cmd, "process_seconds": wall}
        if method == "faiss":
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if not lines:
                raise RuntimeError(f"{' '.join(cmd)} printed no JSON:\n{proc.stderr}")
            res.update(json.loads(lines[-1]))
            if "gave_up" in res:
                raise GaveUp(res["gave_up"])
            res["wall_seconds"] = res["seconds"]
        else:
            with open(stats) as f:
                res["stats"] = json.load(f)
            res["wall_seconds"] = wall
            res["cpu_seconds"] = cpu
        res["digest"] = file_digest(out)
        return res


class GaveUp(Exception):
    """A peer that refused the input (reported in the notes, not a failure
    of the benchmark)."""


def attempt(what, run):
    try:
        return run()
    except GaveUp as e:
        NOTES.append(f"{what}: gave up: {e}")
        log(f"    gave up: {e}")
        return None
    except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as e:
        msg = str(e).strip().splitlines()
        FAILURES.append(f"{what}: {msg[0] if msg else type(e).__name__}")
        log(f"    FAILED: {e}")
        return None


def run_dataset(args, runner, name):
    w = prepare(name, args.quick, args.data_dir)
    methods = []
    for m in args.methods:
        why = runner.available(m)
        if why:
            NOTES.append(f"{name}: {LABELS[m]} not run: {why}")
            log(f"[{name}] skipping {m}: {why}")
        else:
            methods.append(m)
    runs = {m: [] for m in methods}
    for r in range(args.repeats):
        for m in methods:
            # The first repeat's centroids are the ones evaluated; the later
            # repeats write elsewhere and are only compared with them.
            out = os.path.join(args.data_dir, f"{w['tag']}-{m}{'' if r == 0 else '-again'}.npy")
            log(f"[{name}] repeat {r + 1}/{args.repeats}: {m}")
            res = attempt(f"{name} {m} repeat {r + 1}", lambda: runner.run(m, w, out))
            if res is None:
                continue
            runs[m].append(res)
            log(f"    {res['wall_seconds']:.2f} s")
    x = np.load(w["data_path"])
    q = np.load(w["queries_path"])
    gt = np.load(w["gt_path"])
    rows = []
    for m in methods:
        if not runs[m]:
            continue
        log(f"[{name}] evaluating {m}")
        c = np.load(os.path.join(args.data_dir, f"{w['tag']}-{m}.npy"))
        wanted = {"flat": "flat", "hierarchical": "hierarchical", "balanced": "hierarchical"}
        ran = {r.get("stats", {}).get("strategy") for r in runs[m]} - {None}
        if m in wanted and ran and ran != {wanted[m]}:
            # The stats file names the strategy the library used.
            NOTES.append(f"{name}: {LABELS[m]} trained with strategy "
                         f"{', '.join(sorted(ran))} (--stats)")
        digests = {r["digest"] for r in runs[m]}
        if len(digests) > 1:
            NOTES.append(f"{name}: {LABELS[m]} wrote different centroids in different repeats "
                         f"(the first repeat's are evaluated)")
        row = {"dataset": name, "method": m, "repeats": len(runs[m]),
               "wall_seconds": statistics.median(r["wall_seconds"] for r in runs[m]),
               "cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs[m]),
               "same_centroids_every_repeat": len(digests) == 1, "runs": runs[m]}
        row.update(quality(w, x, q, gt, c))
        rows.append(row)
    flat = next((r for r in rows if r["method"] == "flat"), None)
    for r in rows:
        r["speedup_vs_flat"] = flat["wall_seconds"] / r["wall_seconds"] if flat else None
        r["objective_vs_flat"] = r["objective"] / flat["objective"] if flat else None
    w_out = {k: v for k, v in w.items() if not k.endswith("_path")}
    return w_out, rows


def fmt_table(rows, markdown):
    head = ["data set", "method", "wall s", "speed-up vs flat", "CPU s", "objective vs flat",
            "partition CV", "largest / mean", "smallest", "empty"] + \
           [f"recall@10 at {100 * b:g}%" for b in BUDGETS]
    body = []
    for r in rows:
        body.append([r["dataset"], LABELS[r["method"]], f"{r['wall_seconds']:.2f}",
                     "" if r["speedup_vs_flat"] is None else f"{r['speedup_vs_flat']:.2f}x",
                     f"{r['cpu_seconds']:.2f}",
                     "" if r["objective_vs_flat"] is None else f"{r['objective_vs_flat']:.4f}",
                     f"{r['cv']:.3f}", f"{r['largest_over_mean']:.2f}", str(r["smallest"]),
                     str(r["empty"])] + [f"{r['recall'][str(b)]:.4f}" for b in BUDGETS])
    return format_rows(head, body, markdown, left=2)


def goal_checks(rows):
    """Issue 10's goals 1-4, per data set: lines of 'PASS'/'FAIL'/'n/a'."""
    lines = []
    by = {}
    for r in rows:
        by.setdefault(r["dataset"], {})[r["method"]] = r

    def verdict(ok):
        return "n/a" if ok is None else ("PASS" if ok else "FAIL")

    for name, g in by.items():
        flat, hier, bal, faiss_ = (g.get(m) for m in METHODS)
        pts = lambda r, b: 100 * r["recall"][str(b)]  # noqa: E731

        def recall_text(r):
            return ", ".join(f"{pts(r, b):.2f} vs {pts(flat, b):.2f} at {100 * b:g}%"
                             for b in BUDGETS)

        checks = []
        if flat and hier:
            fast = hier["speedup_vs_flat"] >= 10
            text = (f"{hier['speedup_vs_flat']:.1f}x flat (CPU time: "
                    f"{flat['cpu_seconds'] / hier['cpu_seconds']:.1f}x)")
            if faiss_:
                fast = fast and hier["wall_seconds"] < faiss_["wall_seconds"]
                text += f", {hier['wall_seconds']:.2f} s vs FAISS {faiss_['wall_seconds']:.2f} s"
            else:
                text += ", no FAISS result: judged against flat alone"
            checks.append(("1. hierarchical >= 10x faster than flat and faster than FAISS",
                           fast, text))
            checks.append(("2. hierarchical objective <= 1.01 x flat",
                           hier["objective_vs_flat"] <= 1.01, f"{hier['objective_vs_flat']:.4f}"))
            checks.append(("3. hierarchical recall >= flat - 0.5 point at both budgets",
                           all(pts(hier, b) >= pts(flat, b) - 0.5 for b in BUDGETS),
                           recall_text(hier)))
        else:
            checks += [(f"{i}. hierarchical", None, "no hierarchical or flat row")
                       for i in (1, 2, 3)]
        if flat and bal:
            checks.append(("4a. --balance: partition CV <= 0.25", bal["cv"] <= 0.25,
                           f"{bal['cv']:.3f}"))
            checks.append(("4b. --balance: largest <= 3 x mean", bal["largest_over_mean"] <= 3,
                           f"{bal['largest_over_mean']:.2f}"))
            checks.append(("4c. --balance: objective <= 1.05 x flat",
                           bal["objective_vs_flat"] <= 1.05, f"{bal['objective_vs_flat']:.4f}"))
            checks.append(("4d. --balance: recall >= flat at both budgets",
                           all(pts(bal, b) >= pts(flat, b) for b in BUDGETS), recall_text(bal)))
        else:
            checks.append(("4. --balance", None, "no balanced or flat row"))
        for what, ok, text in checks:
            lines.append(f"{name}: goal {what}: {verdict(ok)} ({text})")
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build-dir", default="build", help="where programs/diskmeans was built")
    p.add_argument("--diskmeans", help="path of the diskmeans program "
                   "(default: BUILD/programs/diskmeans)")
    p.add_argument("--data-dir", help="data, queries, neighbours and centroids "
                   "(default: BUILD/bench-data/large-k)")
    p.add_argument("--datasets", default="zipf,fmnist", help="comma-separated, from: " +
                   ", ".join(DATASETS))
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated, from: " +
                   ", ".join(METHODS))
    p.add_argument("--repeats", type=int, default=int(os.environ.get("LARGE_K_REPEATS", "3")),
                   help="alternating repeats of every method (default: $LARGE_K_REPEATS or 3)")
    p.add_argument("--iters", type=int, default=10, help="iterations of every method")
    p.add_argument("--threads", type=int, default=2, help="threads of every method")
    p.add_argument("--hier-args", default=os.environ.get("LARGE_K_HIER_ARGS", ""),
                   help="extra diskmeans arguments for the hierarchical rows only, e.g. "
                   "'--refine 2' (default: $LARGE_K_HIER_ARGS)")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--markdown", help="also write the markdown report to this file")
    p.add_argument("--json-out", help="write every measurement as JSON to this file")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per program run")
    p.add_argument("--worker-faiss", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--k", type=int, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker_faiss:
        return worker_faiss(args)

    def parse_list(text, allowed, what):
        items = [s.strip() for s in text.split(",") if s.strip()]
        bad = [s for s in items if s not in allowed]
        if not items or bad:
            p.error(f"--{what}: unknown {', '.join(bad) or '(empty)'}; choose from "
                    f"{', '.join(allowed)}")
        return items

    args.datasets = parse_list(args.datasets, DATASETS, "datasets")
    args.methods = parse_list(args.methods, METHODS, "methods")
    if args.repeats < 1 or args.iters < 1 or args.threads < 1:
        p.error("--repeats, --iters and --threads must be positive")
    args.hier_args = args.hier_args.split()
    args.diskmeans = args.diskmeans or os.path.join(args.build_dir, "programs", "diskmeans")
    if not os.access(args.diskmeans, os.X_OK):
        p.error(f"{args.diskmeans} is not an executable: build it first (or pass its path)")
    args.data_dir = args.data_dir or os.path.join(args.build_dir, "bench-data", "large-k")
    os.makedirs(args.data_dir, exist_ok=True)

    info = machine_info()
    runner = Runner(args)
    version = subprocess.run([args.diskmeans, "--version"], capture_output=True,
                             text=True).stdout.strip()
    started = time.perf_counter()
    specs, rows = [], []
    for name in args.datasets:
        spec, r = run_dataset(args, runner, name)
        specs.append(spec)
        rows += r
    info["loadavg_end"] = loadavg()
    minutes = (time.perf_counter() - started) / 60

    header = (f"Measured {info['date']} (commit {info['commit']}; {version or 'diskmeans'}, "
              f"faiss {info.get('faiss', '?')}); {info['cpu']}, {info['cores']} cores; "
              f"OPENBLAS_CORETYPE={info['OPENBLAS_CORETYPE']}, "
              f"OPENBLAS_L2_SIZE={info['OPENBLAS_L2_SIZE']}; load average "
              f"{info['loadavg_start']:.1f} at start, {info['loadavg_end']:.1f} at end; "
              f"{args.iters} iterations, {args.threads} threads, {args.repeats} alternating "
              f"repeat(s), {minutes:.1f} minutes in all"
              + (f"; hierarchical rows with `{' '.join(args.hier_args)}`" if args.hier_args
                 else "") + ("; quick (smoke) sizes" if args.quick else "") + ".")
    sets = "\n".join(f"- `{s['name']}`: {s['rows']:,} x {s['dim']}, k = {s['k']}, "
                     f"{s['queries']:,} queries" for s in specs)
    checks = goal_checks(rows)
    report = [header, "", sets, "", fmt_table(rows, markdown=True), "",
              "Speed-up: flat's median wall time over this row's. Objective: over all data "
              "rows, each at its nearest final centroid. Balance and recall: of the partition "
              "of the data rows by nearest centroid; recall@10 probes lists nearest-first "
              "until the share of rows is scanned.", "",
              "Goals (issue 10):", ""] + [f"- {c}" for c in checks]
    if NOTES:
        report += ["", "Notes:", ""] + [f"- {n}" for n in NOTES]
    if FAILURES:
        report += ["", "FAILED runs (left out of the table):", ""] + [f"- {m}" for m in FAILURES]
    text = "\n".join(report) + "\n"
    sys.stdout.write(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"machine": info, "diskmeans": version, "datasets": specs, "rows": rows,
                       "goals": checks, "notes": NOTES, "failures": FAILURES}, f, indent=1)
    # The goals are reported, not enforced; a run that failed is an error.
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
