#!/usr/bin/python3
"""Side-by-side k-means benchmark: diskmeans, FAISS, scikit-learn and the bare
cblas_sgemm ceiling, on the same data from the same initial centroids.

Run with the Debian interpreter (/usr/bin/python3), which has numpy, faiss and
sklearn:

    /usr/bin/python3 bench/compare.py --build-dir build [--workloads ref,fmnist,mix1m]
        [--threads 1,2] [--rounds R] [--quick] [--markdown FILE] [--json-out FILE]
        [--unset-openblas-env]

For each workload the driver writes the rows and ONE set of initial centroids
(k rows drawn with a fixed seed) to .npy files, then runs the programs in turn
-- diskmeans, FAISS, sklearn, sgemm ceiling, then again -- each in its own
subprocess with the thread count set, and reports medians over the rounds.

What is measured, the same way for every program:
  s/iter        the median time of one Lloyd iteration (assignment + update),
                from the program's own per-iteration clocks where it has them
                (diskmeans: dkm_iter_stats.seconds; FAISS: differences of
                iteration_stats' cumulative times); sklearn has none, so its
                s/iter is (fit(max_iter=N) - fit(max_iter=1)) / (n_iter_ - 1),
                which cancels the set-up both fits share (validation, copies,
                norms, the final relabelling pass).
  GFLOP/s       2 n k d / (s/iter): the assignment's GEMM work per iteration.
  % of ceiling  GFLOP/s over the bare serial-OpenBLAS cblas_sgemm on the same
                shapes with the same threads (bench/sgemm_ceiling).
  objective     sum of squared distances of every row to its nearest FINAL
                centroid, computed here by one numpy routine for all programs
                (nearest by float32 GEMM, distance summed in float64), so that
                FAISS's objective-before-the-last-update and sklearn's
                inertia-after-relabelling are not compared with each other.
  peak RSS      VmHWM of the program's process (not ru_maxrss, which Linux
                carries over from this driver through fork and exec); the
                Python ones include the interpreter and their imports
                (`baseline_rss_bytes` in the JSON output is the RSS after
                imports, before the data is loaded).

The same process also serves as the FAISS and sklearn worker (--worker).
"""

import argparse
import datetime
import gzip
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

# "python" is diskmeans through its Python package (python/), on the same
# arrays as FAISS and sklearn: the goal is at most 2% over the CLI's
# bench_train ("vs diskmeans" at least 0.98x).
PROGRAMS = ("diskmeans", "python", "faiss", "sklearn", "ceiling")
PEERS = ("diskmeans", "faiss", "sklearn")
FAILURES = []  # runs that failed, reported at the end
FASHION_MNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
DATA_SEED = 20240611
INIT_SEED = 7

# name: description, rows source, k, iterations, default rounds. The 1M x 96,
# k = 1024 workload is heavy (sklearn takes seconds per iteration on one
# thread), so it runs two rounds by default to keep `make bench` near 15 minutes.
WORKLOADS = {
    "ref": dict(title="131,072 x 128 normal", k=512, iters=10, rounds=3),
    "fmnist": dict(title="Fashion-MNIST 60,000 x 784", k=256, iters=25, rounds=3),
    "mix1m": dict(title="1,000,000 x 96 Gaussian mixture", k=1024, iters=10, rounds=2),
}
# --quick: small versions of the same workloads, for a smoke run.
QUICK = {
    "ref": dict(rows=16384, k=128, iters=5),
    "fmnist": dict(rows=10000, k=64, iters=5),
    "mix1m": dict(rows=100000, k=256, iters=5),
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

def read_idx_images(path):
    """Parses an IDX file of uint8 images (optionally gzip) into (n, pixels)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    count = int(np.prod(dims))
    if len(raw) - offset != count:
        raise ValueError(f"{path}: {len(raw) - offset} bytes of data, expected {count}")
    data = np.frombuffer(raw, dtype=np.uint8, offset=offset)
    return data.reshape(dims[0], -1)


def make_rows(name, quick):
    """The rows of a workload, float32, C order."""
    rng = np.random.default_rng(DATA_SEED)
    if name == "ref":
        n = QUICK["ref"]["rows"] if quick else 131072
        return rng.standard_normal((n, 128), dtype=np.float32)
    if name == "fmnist":
        x = read_idx_images(FASHION_MNIST)
        if quick:
            x = x[:QUICK["fmnist"]["rows"]]
        return np.ascontiguousarray(x, dtype=np.float32)
    if name == "mix1m":
        n, d, comps = (QUICK["mix1m"]["rows"] if quick else 1000000), 96, 2000
        # Components of different sizes and spreads, so clusters are uneven
        # as in real embeddings; generated in chunks to bound the memory.
        centers = rng.standard_normal((comps, d), dtype=np.float32) * 3.0
        scales = rng.uniform(0.3, 1.5, comps).astype(np.float32)
        weights = rng.dirichlet(np.full(comps, 2.0))
        x = np.empty((n, d), dtype=np.float32)
        for first in range(0, n, 131072):
            m = min(131072, n - first)
            comp = rng.choice(comps, size=m, p=weights)
            noise = rng.standard_normal((m, d), dtype=np.float32)
            x[first:first + m] = centers[comp] + noise * scales[comp, None]
        return x
    raise ValueError(name)


def prepare(name, quick, data_dir):
    """Writes (or reuses) the workload's rows and initial centroids; returns
    the paths and the shape."""
    spec = dict(WORKLOADS[name])
    if quick:
        spec.update(QUICK[name])
    tag = f"{name}{'-quick' if quick else ''}"
    data_path = os.path.join(data_dir, f"{tag}.npy")
    init_path = os.path.join(data_dir, f"{tag}-init-k{spec['k']}.npy")
    stamp_path = os.path.join(data_dir, f"{tag}.stamp")
    stamp = {"data_seed": DATA_SEED, "init_seed": INIT_SEED, "k": spec["k"], "version": 1}
    fresh = False
    try:
        with open(stamp_path) as f:
            fresh = json.load(f) == stamp and os.path.exists(data_path) and \
                os.path.exists(init_path)
    except (OSError, ValueError):
        pass
    if fresh:
        x = np.load(data_path, mmap_mode="r")
    else:
        log(f"[{name}] writing rows and initial centroids to {data_dir}")
        x = make_rows(name, quick)
        rng = np.random.default_rng(INIT_SEED)
        init = x[np.sort(rng.choice(x.shape[0], size=spec["k"], replace=False))]
        np.save(data_path, x)
        np.save(init_path, np.ascontiguousarray(init))
        with open(stamp_path, "w") as f:
            json.dump(stamp, f)
    spec.update(rows=int(x.shape[0]), dim=int(x.shape[1]), data=data_path, init=init_path,
                tag=tag)
    return spec


def objective(x, c, chunk=16384):
    """Sum over the rows of the squared distance to the nearest centroid of c.
    The nearest one is found with a float32 GEMM (as all three programs do);
    the distance to it is then computed exactly in float64."""
    c = np.ascontiguousarray(c, dtype=np.float32)
    c64 = c.astype(np.float64)
    cn = (c64 * c64).sum(1).astype(np.float32)
    total = 0.0
    for first in range(0, x.shape[0], chunk):
        xb = np.asarray(x[first:first + chunk], dtype=np.float32)
        lab = (cn[None, :] - 2.0 * (xb @ c.T)).argmin(1)
        diff = xb.astype(np.float64) - c64[lab]
        total += float(np.einsum("ij,ij->", diff, diff))
    return total


# --------------------------------------------------------------------------
# Workers (FAISS, sklearn), run as `compare.py --worker NAME ...`
# --------------------------------------------------------------------------

def rss_bytes():
    """Peak RSS of this process image: VmHWM. Not ru_maxrss, which Linux
    carries across fork and exec, so that a worker would report the driver's
    peak (it holds the data) as its own."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker_faiss(a):
    import faiss
    from threadpoolctl import threadpool_limits
    baseline = rss_bytes()
    x = np.load(a.data)
    c0 = np.load(a.init)
    n, d = x.shape
    k = c0.shape[0]
    faiss.omp_set_num_threads(a.threads)
    with threadpool_limits(a.threads):
        # max_points_per_centroid huge: train on every row, like the others.
        km = faiss.Kmeans(d, k, niter=a.iters, max_points_per_centroid=10**9, seed=1234,
                          verbose=False)
        t0 = time.perf_counter()
        km.train(x, init_centroids=c0)
        total = time.perf_counter() - t0
    cumulative = [s["time"] for s in km.iteration_stats]
    per_iter = list(np.diff([0.0] + cumulative))
    np.save(a.out, km.centroids)
    return {"program": "faiss", "version": faiss.__version__, "rows": n, "dim": d, "k": k,
            "threads": a.threads, "n_iter": len(per_iter),
            "seconds_per_iter": statistics.median(per_iter), "iter_seconds": per_iter,
            "objective": float(km.obj[-1]), "train_seconds": total,
            "iter_objectives": [float(o) for o in km.obj],
            "iter_repaired": [int(s["nsplit"]) for s in km.iteration_stats],
            "peak_rss_bytes": rss_bytes(), "baseline_rss_bytes": baseline}


def worker_sklearn(a):
    import sklearn
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits
    baseline = rss_bytes()
    x = np.load(a.data)
    c0 = np.load(a.init)
    n, d = x.shape
    k = c0.shape[0]

    def fit(iters):
        km = KMeans(n_clusters=k, init=c0, n_init=1, max_iter=iters, tol=0, algorithm="lloyd")
        t0 = time.perf_counter()
        km.fit(x)
        return km, time.perf_counter() - t0

    with threadpool_limits(a.threads):
        km_one, t_one = fit(1)
        km, t_all = fit(a.iters)
    if km.n_iter_ > 1:
        s_iter = (t_all - t_one) / (km.n_iter_ - 1)
    else:
        s_iter = t_all
    np.save(a.out, km.cluster_centers_.astype(np.float32))
    return {"program": "sklearn", "version": sklearn.__version__, "rows": n, "dim": d, "k": k,
            "threads": a.threads, "n_iter": int(km.n_iter_), "seconds_per_iter": s_iter,
            "fit_seconds": t_all, "fit1_seconds": t_one,
            "fit_seconds_per_iter": t_all / km.n_iter_, "objective": float(km.inertia_),
            # After one update, relabelled: the objective of iteration 2's
            # assignment, as iter_objectives[1] of the others.
            "second_objective": float(km_one.inertia_),
            "train_seconds": t_all, "peak_rss_bytes": rss_bytes(),
            "baseline_rss_bytes": baseline}


def worker_sklearn_init(a):
    """scikit-learn's k-means++ alone (greedy, 2 + ln k candidates per step,
    as KMeans(init="k-means++") runs it)."""
    import sklearn
    from sklearn.cluster import kmeans_plusplus
    from threadpoolctl import threadpool_limits
    x = np.load(a.data)
    with threadpool_limits(a.threads):
        t0 = time.perf_counter()
        c, _ = kmeans_plusplus(x, a.k, random_state=1234)
        seconds = time.perf_counter() - t0
    return {"program": "sklearn", "version": sklearn.__version__, "k": a.k,
            "threads": a.threads, "init_seconds": seconds,
            "start_objective": objective(x, c), "peak_rss_bytes": rss_bytes()}


def worker_python(a):
    """diskmeans.train from the given centroids, run by an interpreter that
    has the package (--python); the library's own per-iteration times, as
    bench_train reports them, plus the whole call's wall time."""
    import diskmeans
    baseline = rss_bytes()
    x = np.load(a.data)
    c0 = np.load(a.init)
    n, d = x.shape
    k = c0.shape[0]
    t0 = time.perf_counter()
    r = diskmeans.train(x, k, init=c0, max_iter=a.iters, tol=0, max_points_per_centroid=0,
                        storage="memory", n_threads=a.threads)
    total = time.perf_counter() - t0
    per_iter = [s.seconds for s in r.iterations]
    np.save(a.out, r.centroids)
    return {"program": "python", "version": diskmeans.__version__, "rows": n, "dim": d, "k": k,
            "threads": a.threads, "n_iter": r.n_iter,
            "seconds_per_iter": statistics.median(per_iter), "iter_seconds": per_iter,
            "objective": r.objective, "train_seconds": total,
            "library_train_seconds": r.timings["train"],
            "iter_objectives": [s.objective for s in r.iterations],
            "iter_repaired": [s.repaired for s in r.iterations],
            "peak_rss_bytes": rss_bytes(), "baseline_rss_bytes": baseline}


def run_worker(a):
    result = {"faiss": worker_faiss, "sklearn": worker_sklearn, "python": worker_python,
              "sklearn-init": worker_sklearn_init}[a.worker](a)
    print(json.dumps(result))


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------

class Runner:
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.ceiling_config = {}  # (tag, threads) -> (tile_rows, transposed)

    def _run(self, cmd, threads):
        env = dict(self.env)
        # Every program gets the same thread settings; the serial OpenBLAS of
        # diskmeans and the ceiling ignores the BLAS ones.
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=self.args.timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            raise RuntimeError(f"{' '.join(cmd)} printed no JSON:\n{proc.stdout}{proc.stderr}")
        return json.loads(lines[-1])

    def run(self, program, w, threads, out):
        a = self.args
        if program == "diskmeans":
            cmd = [a.bench_train, "--data", w["data"], "--init", w["init"], "--iters",
                   str(w["iters"]), "--tol", "0", "--threads", str(threads),
                   "--max-points-per-centroid", "0", "--storage", "memory",
                   "--out-centroids", out]
            return self._run(cmd, threads)
        if program in ("faiss", "sklearn", "python"):
            python = a.python if program == "python" else sys.executable
            cmd = [python, os.path.abspath(__file__), "--worker", program,
                   "--data", w["data"], "--init", w["init"], "--iters", str(w["iters"]),
                   "--worker-threads", str(threads), "--out", out]
            return self._run(cmd, threads)
        if program == "ceiling":
            cmd = [a.sgemm_ceiling, "--rows", str(w["rows"]), "--dim", str(w["dim"]),
                   "--k", str(w["k"]), "--threads", str(threads), "--reps",
                   str(a.ceiling_reps), "--json"]
            key = (w["tag"], threads)
            if key in self.ceiling_config:
                tile, tr = self.ceiling_config[key]
                cmd += ["--tile", str(tile), "--transposed", str(tr)]
            r = self._run(cmd, threads)
            res = r["results"][0]
            self.ceiling_config[key] = (res["tile_rows"], res["transposed"])
            return {"program": "ceiling", "seconds_per_iter": res["median_seconds"],
                    "tile_rows": res["tile_rows"], "transposed": res["transposed"],
                    "seconds": res["seconds"], "gflops_best": res["gflops_best"],
                    "checked": res.get("checked", False), "bad_tiles": res.get("bad_tiles", 0)}
        raise ValueError(program)


    def run_init(self, program, w, threads):
        """One k-means++ initialisation: diskmeans' (plain or greedy, timed
        with 3 Lloyd iterations in the same process as the yardstick) or
        scikit-learn's."""
        if program == "sklearn":
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", "sklearn-init",
                   "--data", w["data"], "--k", str(w["k"]), "--worker-threads", str(threads)]
            return self._run(cmd, threads)
        cmd = [self.args.bench_train, "--data", w["data"], "--k", str(w["k"]), "--init-method",
               program, "--iters", "3", "--tol", "0", "--threads", str(threads),
               "--max-points-per-centroid", "0", "--storage", "memory"]
        r = self._run(cmd, threads)
        r["start_objective"] = r["iter_objectives"][0]
        return r


def attempt(what, run):
    """run(), or None after recording the failure: one program failing must
    not lose the others' numbers."""
    try:
        return run()
    except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError, KeyError,
            IndexError) as e:
        msg = str(e).strip().splitlines()
        FAILURES.append(f"{what}: {msg[0] if msg else type(e).__name__}")
        log(f"    FAILED: {e}")
        return None


INIT_PROGRAMS = ("kmeans++", "greedy-kmeans++", "sklearn")


def run_init_setting(args, runner):
    """The k-means++ table: each initialisation's time, in Lloyd iterations
    of diskmeans measured in the same run, and the objective it starts from."""
    rows = []
    for name in args.init_workloads:
        w = prepare(name, args.quick, args.data_dir)
        rounds = args.rounds or (1 if args.quick else 3)
        for threads in args.threads:
            runs = {p: [] for p in INIT_PROGRAMS}
            for r in range(rounds):
                for p in INIT_PROGRAMS:
                    log(f"[init] {name} T={threads} round {r + 1}/{rounds}: {p}")
                    res = attempt(f"init {name} T={threads} {p}",
                                  lambda: runner.run_init(p, w, threads))
                    if res is None:
                        continue
                    runs[p].append(res)
                    log(f"    {res['init_seconds']:.3f} s")
            if not runs["kmeans++"]:
                continue
            iteration = statistics.median(r["seconds_per_iter"] for r in runs["kmeans++"])
            for p in INIT_PROGRAMS:
                if not runs[p]:
                    continue
                seconds = statistics.median(r["init_seconds"] for r in runs[p])
                rows.append({"workload": name, "threads": threads, "program": p,
                             "rounds": len(runs[p]), "init_seconds": seconds,
                             "lloyd_seconds": iteration, "in_iterations": seconds / iteration,
                             "start_objective": runs[p][0]["start_objective"], "runs": runs[p]})
    return rows


def run_init_gain(args, runner):
    """The default-init table: diskmeans' final objective after the
    workload's iterations from a random start and from a k-means++ one. The
    objective does not depend on the thread count, so one run each."""
    rows = []
    threads = max(args.threads)
    for name in args.workloads:
        w = prepare(name, args.quick, args.data_dir)
        final = {}
        for method in ("random", "kmeans++"):
            log(f"[init gain] {name}: {method}, {w['iters']} iterations")
            cmd = [args.bench_train, "--data", w["data"], "--k", str(w["k"]), "--init-method",
                   method, "--iters", str(w["iters"]), "--tol", "0", "--threads", str(threads),
                   "--max-points-per-centroid", "0", "--storage", "memory"]
            res = attempt(f"init gain {name} {method}", lambda: runner._run(cmd, threads))
            if res is not None:
                final[method] = res["objective"]
        if len(final) == 2:
            rows.append({"workload": name, "iters": w["iters"], "random": final["random"],
                         "kmeans++": final["kmeans++"],
                         "ratio": final["random"] / final["kmeans++"]})
    return rows


def fmt_gain_table(rows, markdown):
    head = ["workload", "iterations", "final objective, random", "final objective, kmeans++",
            "random / kmeans++"]
    body = [[r["workload"], str(r["iters"]), f"{r['random']:.6e}", f"{r['kmeans++']:.6e}",
             f"{r['ratio']:.4f}"] for r in rows]
    return format_rows(head, body, markdown, left=1)


def fmt_init_table(rows, markdown):
    head = ["workload", "T", "initialisation", "seconds", "in Lloyd iterations",
            "starting objective"]
    names = {"kmeans++": "diskmeans kmeans++", "greedy-kmeans++": "diskmeans greedy-kmeans++",
             "sklearn": "sklearn kmeans_plusplus (greedy)"}
    body = [[r["workload"], str(r["threads"]), names[r["program"]], f"{r['init_seconds']:.3f}",
             f"{r['in_iterations']:.2f}", f"{r['start_objective']:.6e}"] for r in rows]
    return format_rows(head, body, markdown, left=3)


def summarize(w, threads, program, runs, x):
    """One table row from a program's rounds."""
    s_iter = statistics.median(r["seconds_per_iter"] for r in runs)
    flops = 2.0 * w["rows"] * w["k"] * w["dim"]
    row = {"workload": w["name"], "title": w["title"], "threads": threads, "program": program,
           "rounds": len(runs), "seconds_per_iter": s_iter, "gflops": flops / s_iter * 1e-9,
           "runs": runs}
    if program == "ceiling":
        # Products that differ from a lone thread's mean the BLAS is not safe
        # from two threads at once: that speed is no ceiling.
        row["bad_tiles"] = sum(r.get("bad_tiles", 0) for r in runs)
    else:
        row["peak_rss_bytes"] = max(r["peak_rss_bytes"] for r in runs)
        row["n_iter"] = runs[0]["n_iter"]
        row["own_objective"] = runs[0]["objective"]
    return row


def run_setting(args, runner, setting):
    rows = []
    for name in args.workloads:
        w = prepare(name, args.quick, args.data_dir)
        w["name"] = name
        rounds = args.rounds or (1 if args.quick else w["rounds"])
        x = np.load(w["data"], mmap_mode="r")
        for threads in args.threads:
            runs = {p: [] for p in args.programs}
            for r in range(rounds):
                for p in args.programs:
                    out = os.path.join(args.data_dir, f"{w['tag']}-{p}-t{threads}.npy")
                    log(f"[{setting}] {name} T={threads} round {r + 1}/{rounds}: {p}")
                    res = attempt(f"{setting} {name} T={threads} {p}",
                                  lambda: runner.run(p, w, threads, out))
                    if res is None:
                        continue
                    if p != "ceiling" and not runs[p]:
                        # The programs are deterministic from given centroids,
                        # so the first round's final centroids stand for all.
                        res["final_objective"] = objective(x, np.load(out))
                    runs[p].append(res)
                    log(f"    {res['seconds_per_iter']:.4f} s/iter")
            group = [summarize(w, threads, p, runs[p], x) for p in args.programs if runs[p]]
            ceiling = next((g for g in group if g["program"] == "ceiling"), None)
            for g in group:
                g["setting"] = setting
                if g["program"] != "ceiling":
                    g["final_objective"] = g["runs"][0]["final_objective"]
                g["pct_ceiling"] = 100.0 * g["gflops"] / ceiling["gflops"] if ceiling else None
                g["speedup"] = {o["program"]: o["seconds_per_iter"] / g["seconds_per_iter"]
                                for o in group if o["program"] in PEERS}
            rows.extend(group)
    return rows


def loadavg():
    """The 1-minute load average: other work on the machine skews timings."""
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def machine_info():
    model = platform.processor() or "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        commit = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    info = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": model, "cores": os.cpu_count(),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
            "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE", "(unset)"),
            "numpy": np.__version__, "loadavg_start": loadavg(), "commit": commit}
    try:
        import faiss
        info["faiss"] = faiss.__version__
    except ImportError:
        pass
    try:
        import sklearn
        info["sklearn"] = sklearn.__version__
    except ImportError:
        pass
    return info


def fmt_table(rows, markdown):
    head = ["workload", "T", "program", "s/iter", "GFLOP/s", "% ceiling", "final objective",
            "peak RSS MiB", "vs diskmeans", "vs faiss", "vs sklearn"]
    body = []
    for r in rows:
        sp = r["speedup"]
        body.append([
            r["workload"] + ("" if r["setting"] == "machine" else " (env unset)"),
            str(r["threads"]),
            ("sgemm ceiling" + (" (WRONG PRODUCTS)" if r.get("bad_tiles") else ""))
            if r["program"] == "ceiling" else r["program"],
            f"{r['seconds_per_iter']:.4f}",
            f"{r['gflops']:.1f}",
            "" if r["pct_ceiling"] is None else f"{r['pct_ceiling']:.0f}%",
            "" if r["program"] == "ceiling" else f"{r['final_objective']:.6e}",
            "" if r["program"] == "ceiling" else f"{r['peak_rss_bytes'] / 2**20:.0f}",
        ] + [("" if p not in sp or p == r["program"] else f"{sp[p]:.2f}x") for p in PEERS])
    return format_rows(head, body, markdown, left=3)


def format_rows(head, body, markdown, left):
    """A table as markdown or aligned text; the first `left` columns are
    left-aligned, the others (numbers) right-aligned."""
    if markdown:
        lines = ["| " + " | ".join(head) + " |",
                 "|" + "|".join(" --- " if i < left else " ---: " for i in range(len(head))) +
                 "|"]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    out = ["  ".join(h.rjust(wd) if i >= left else h.ljust(wd) for i, (h, wd) in
                     enumerate(zip(head, widths)))]
    for b in body:
        out.append("  ".join(c.rjust(wd) if i >= left else c.ljust(wd) for i, (c, wd) in
                             enumerate(zip(b, widths))))
    return "\n".join(out)


def objective_checks(rows):
    """The goal: diskmeans' final objective within 0.1% of FAISS's and
    sklearn's from the same initial centroids."""
    lines = []
    by_key = {}
    for r in rows:
        by_key.setdefault((r["setting"], r["workload"], r["threads"]), {})[r["program"]] = r
    for (setting, workload, threads), g in by_key.items():
        env = "" if setting == "machine" else " (env unset)"
        # Empty clusters are where the three stop being one algorithm: each
        # repairs them its own way (FAISS and diskmeans split a large
        # cluster with their own RNGs; sklearn moves the centre to the
        # farthest rows), and from there the runs differ.
        repairs = {p: sum(g[p]["runs"][0]["iter_repaired"]) for p in ("diskmeans", "faiss")
                   if p in g and "iter_repaired" in g[p]["runs"][0]}
        note = ""
        if any(repairs.values()):
            note = ("; empty clusters repaired: " +
                    ", ".join(f"{p} {n}" for p, n in repairs.items()) +
                    " (sklearn does not report), each program its own way")
        pairs = [("diskmeans", "faiss"), ("diskmeans", "sklearn"), ("faiss", "sklearn")]
        if any(repairs.values()):
            # Up to the first repair the three run the same algorithm: the
            # objective of iteration 2's assignment (the centroids after one
            # update) must agree, if nobody repaired in that first update.
            second = {}
            if "diskmeans" in g and g["diskmeans"]["runs"][0]["iter_repaired"][0] == 0:
                second["diskmeans"] = g["diskmeans"]["runs"][0]["iter_objectives"][1]
            if "faiss" in g and g["faiss"]["runs"][0]["iter_repaired"][0] == 0:
                second["faiss"] = g["faiss"]["runs"][0]["iter_objectives"][1]
            if "sklearn" in g and "second_objective" in g["sklearn"]["runs"][0]:
                second["sklearn"] = g["sklearn"]["runs"][0]["second_objective"]
            for mine_name, peer in pairs:
                if mine_name in second and peer in second:
                    rel = (second[mine_name] - second[peer]) / second[peer]
                    lines.append(f"{workload}{env} T={threads}: {mine_name} vs {peer}, objective "
                                 f"of iteration 2 (before any repair): {100 * rel:+.2e}%")
        for mine_name, peer in pairs:
            if mine_name not in g or peer not in g:
                continue
            mine = g[mine_name]["final_objective"]
            theirs = g[peer]["final_objective"]
            rel = (mine - theirs) / theirs
            if mine_name == "diskmeans":
                verdict = " (ok)" if abs(rel) <= 1e-3 else " (OUTSIDE 0.1%)"
            else:
                verdict = " (for scale: the two peers between themselves)"
            lines.append(f"{workload}{env} T={threads}: {mine_name} vs {peer}: "
                         f"{100 * rel:+.2e}%{verdict}{note}")
    return lines


def memory_checks(rows):
    """The goal: in memory mode, peak RSS <= the sample + 10% + the
    centroids' own size. Peak RSS counts the program itself (binary and
    libraries; for FAISS and sklearn the interpreter and imports), so its
    RSS before loading any data is taken off first."""
    lines = []
    for r in rows:
        if r["program"] not in PEERS and r["program"] != "python":
            continue
        run = r["runs"][0]
        baseline = run.get("baseline_rss_bytes")
        if baseline is None:
            continue
        data = run["rows"] * run["dim"] * 4
        centroids = run["k"] * run["dim"] * 4
        used = r["peak_rss_bytes"] - baseline
        limit = 1.1 * data + centroids
        env = "" if r["setting"] == "machine" else " (env unset)"
        verdict = ("" if r["program"] != "diskmeans" else
                   " (ok)" if used <= limit else " (ABOVE sample + 10% + centroids)")
        lines.append(f"{r['workload']}{env} T={r['threads']} {r['program']}: "
                     f"{used / 2**20:.1f} MiB above its {baseline / 2**20:.1f} MiB baseline, "
                     f"for {data / 2**20:.1f} MiB of rows ({100 * used / data:.1f}%){verdict}")
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build-dir", default="build", help="where bench/bench_train and "
                   "bench/sgemm_ceiling were built (default: build)")
    p.add_argument("--bench-train", help="path of bench_train (default: BUILD/bench/bench_train)")
    p.add_argument("--sgemm-ceiling", help="path of sgemm_ceiling")
    p.add_argument("--data-dir", help="where data, initial and final centroids go "
                   "(default: BUILD/bench-data)")
    p.add_argument("--workloads", default="ref,fmnist,mix1m",
                   help="comma-separated, from: " + ", ".join(WORKLOADS))
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--init-workloads", default="ref",
                   help="workloads of the k-means++ table, comma-separated, or 'none' "
                   "(default: ref)")
    p.add_argument("--programs", default=",".join(PROGRAMS),
                   help="comma-separated, from: " + ", ".join(PROGRAMS))
    p.add_argument("--rounds", type=int, default=0,
                   help="rounds per workload (default: 3, 2 for mix1m, 1 with --quick)")
    p.add_argument("--ceiling-reps", type=int, default=3,
                   help="timed sgemm passes per round (the round keeps their median)")
    p.add_argument("--quick", action="store_true", help="small workloads for a smoke run")
    p.add_argument("--unset-openblas-env", action="store_true",
                   help="also run everything with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset")
    p.add_argument("--markdown", help="write the table as markdown to this file")
    p.add_argument("--json-out", help="write every measurement as JSON to this file")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per program run")
    # Worker mode (internal).
    p.add_argument("--python", default=sys.executable,
                   help="the interpreter that runs program 'python' (one with diskmeans' "
                        "package installed; bench/compare.sh makes a venv for it)")
    p.add_argument("--worker", choices=("faiss", "sklearn", "python", "sklearn-init"),
                   help=argparse.SUPPRESS)
    p.add_argument("--k", type=int, help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--init", help=argparse.SUPPRESS)
    p.add_argument("--iters", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker-threads", dest="worker_threads", type=int, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        args.threads = args.worker_threads
        run_worker(args)
        return 0

    def parse_list(text, allowed, what):
        items = [s.strip() for s in text.split(",") if s.strip()]
        bad = [s for s in items if s not in allowed]
        if not items or bad:
            p.error(f"--{what}: unknown {', '.join(bad) or '(empty)'}; choose from "
                    f"{', '.join(allowed)}")
        return items

    args.workloads = parse_list(args.workloads, WORKLOADS, "workloads")
    args.programs = parse_list(args.programs, PROGRAMS, "programs")
    args.init_workloads = ([] if args.init_workloads == "none" else
                           parse_list(args.init_workloads, WORKLOADS, "init-workloads"))
    try:
        args.threads = [int(t) for t in args.threads.split(",")]
        if not args.threads or min(args.threads) < 1:
            raise ValueError
    except ValueError:
        p.error("--threads must be a comma-separated list of positive integers")
    if args.rounds < 0:
        p.error("--rounds must be positive")
    args.bench_train = args.bench_train or os.path.join(args.build_dir, "bench", "bench_train")
    args.sgemm_ceiling = args.sgemm_ceiling or os.path.join(args.build_dir, "bench",
                                                            "sgemm_ceiling")
    for prog, path in (("diskmeans", args.bench_train), ("ceiling", args.sgemm_ceiling)):
        needed = prog in args.programs or (prog == "diskmeans" and args.init_workloads)
        if needed and not os.access(path, os.X_OK):
            p.error(f"{path} is not an executable: build it first (or pass its path)")
    if "python" in args.programs and subprocess.run(
            [args.python, "-c", "import diskmeans"], capture_output=True).returncode != 0:
        log(f"{args.python} cannot import diskmeans: program 'python' left out")
        args.programs.remove("python")
    args.data_dir = args.data_dir or os.path.join(args.build_dir, "bench-data")
    os.makedirs(args.data_dir, exist_ok=True)

    info = machine_info()
    settings = [("machine", dict(os.environ))]
    if args.unset_openblas_env:
        env = {k: v for k, v in os.environ.items()
               if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        settings.append(("unset", env))
    rows = []
    for setting, env in settings:
        rows += run_setting(args, Runner(args, env), setting)
    # k-means++ under the machine's setting only: the goal compares
    # diskmeans with itself.
    init_rows = run_init_setting(args, Runner(args, settings[0][1]))
    gain_rows = run_init_gain(args, Runner(args, settings[0][1]))

    info["loadavg_end"] = loadavg()
    versions = ", ".join(f"{k} {info[k]}" for k in ("faiss", "sklearn", "numpy") if k in info)
    diskmeans_version = next((r["runs"][0].get("version") for r in rows
                              if r["program"] == "diskmeans"), None)
    if diskmeans_version:
        versions = f"diskmeans {diskmeans_version}, " + versions
    header = (f"{info['date']} (commit {info['commit']}); {info['cpu']}, {info['cores']} cores; "
              f"OPENBLAS_CORETYPE={info['OPENBLAS_CORETYPE']}, "
              f"OPENBLAS_L2_SIZE={info['OPENBLAS_L2_SIZE']}; {versions}; "
              f"load average {info['loadavg_start']:.1f} at start, {info['loadavg_end']:.1f} "
              f"at end"
              + ("; quick (smoke) sizes" if args.quick else ""))
    checks = objective_checks(rows)
    mem_checks = memory_checks(rows)
    print(header)
    print(fmt_table(rows, markdown=False))
    print("\n".join(checks))
    print("\n".join(mem_checks))
    if init_rows:
        print("\nk-means++ initialisation (goal: kmeans++ in at most 3 Lloyd iterations)")
        print(fmt_init_table(init_rows, markdown=False))
    if gain_rows:
        print("\nDefault init: final objective from a random and a k-means++ start")
        print(fmt_gain_table(gain_rows, markdown=False))
    if FAILURES:
        print("FAILED runs (left out of the table):\n" + "\n".join(FAILURES))
    if args.markdown:
        workload_lines = []
        for name in args.workloads:
            spec = dict(WORKLOADS[name])
            if args.quick:
                spec.update(QUICK[name])
            r = next(r for r in rows if r["workload"] == name)
            workload_lines.append(f"- `{name}`: {spec['title']}"
                                  f"{' (quick: ' + str(spec['rows']) + ' rows)' if args.quick else ''}"
                                  f", k = {spec['k']}, {spec['iters']} iterations, "
                                  f"{r['rounds']} round(s)")
        with open(args.markdown, "w") as f:
            f.write(f"Measured {header}.\n\n")
            f.write("\n".join(workload_lines) + "\n\n")
            f.write(fmt_table(rows, markdown=True) + "\n\n")
            f.write("`python` = diskmeans called through its Python package on the same "
                    "arrays as FAISS and sklearn (goal: `vs diskmeans` at least 0.98x). "
                    "`vs X` = X's s/iter divided by this row's (above 1: this row is faster). "
                    "Final objective: sum of squared distances to the final centroids, one "
                    "numpy routine for all.\n\n")
            f.write("Objective check (goal: within 0.1%):\n\n")
            f.write("\n".join(f"- {c}" for c in checks) + "\n")
            f.write("\nMemory check (goal for diskmeans: peak RSS above the program's own "
                    "baseline at most the rows + 10% + the centroids):\n\n")
            f.write("\n".join(f"- {c}" for c in mem_checks) + "\n")
            if init_rows:
                f.write("\nk-means++ initialisation, timed with 3 Lloyd iterations of diskmeans "
                        "in the same process as the yardstick (goal: at most 3). Starting "
                        "objective: diskmeans' iteration-0 objective, numpy's for sklearn.\n\n")
                f.write(fmt_init_table(init_rows, markdown=True) + "\n")
            if gain_rows:
                f.write("\nWhy kmeans++ is the default: diskmeans' final objective after the "
                        "workload's iterations (tol 0) from a random start and from a "
                        "k-means++ start, same seed (above 1: k-means++ ends lower).\n\n")
                f.write(fmt_gain_table(gain_rows, markdown=True) + "\n")
            if FAILURES:
                f.write("\nFAILED runs (left out of the table):\n\n" +
                        "\n".join(f"- {m}" for m in FAILURES) + "\n")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"machine": info, "rows": rows, "init_rows": init_rows, "gain_rows": gain_rows,
                       "failures": FAILURES}, f, indent=1)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
