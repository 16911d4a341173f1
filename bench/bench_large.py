#!/usr/bin/python3
"""The large-k moonshot (issue 10, goal 5): k = 65,536 on 16,777,216 x 256
float32 rows, hierarchical, on 2 threads, in at most 10 minutes, 1 GiB of
peak RSS and temporary disk of at most 1.1 x the sample, leaving nothing
behind. What `make bench-large` runs:

    /usr/bin/python3 bench/bench_large.py --build-dir build [--dir DIR] [--rows N]
        [--dim D] [--k K] [--iters N] [--threads T] [--tmp-dir DIR] [--cold]
        [--hier-args "--refine 2"]

1. Checks the free space, then writes the rows deterministically to
   DIR/rows-NxD.npy (bench/zipf_mixture.py: Zipf-sized clusters, streamed in
   64 Ki-row chunks, so memory stays bounded) unless a file of the same
   parameters is already there.
2. Runs `diskmeans train DATA -k K --strategy hierarchical --iters N --tol 0
   --threads T --tmp-dir TMP -o OUT --stats STATS` under `/usr/bin/time -v`,
   and every second samples the used space of TMP's file system (what `df`
   shows) and the blocks of diskmeans' files under TMP, named or held open
   (its spill file has no name, so `du` cannot see it); the goal is judged
   on the latter, which other processes' writes do not disturb.
3. Checks that TMP is empty afterwards and prints wall time, peak RSS and
   peak temporary disk against the goals (PASS/FAIL; the goals are reported,
   not enforced: the exit status is non-zero only when something failed to
   run). The report also goes to DIR/summary.md and DIR/summary.json.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zipf_mixture  # noqa: E402

SEED = 20261127
GiB = 1 << 30


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def fs_used(path):
    """Bytes used on path's file system, as df counts them."""
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def fs_free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def files_under(pids, folder):
    """{(dev, inode): allocated bytes} of the files under folder: those with
    a name, and those the processes hold open there without one (a nameless
    O_TMPFILE shows as 'folder/#inode (deleted)'; `du` cannot see it)."""
    found = {}
    prefix = folder.rstrip("/") + "/"
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if not os.readlink(f"{fd_dir}/{fd}").startswith(prefix):
                    continue
                st = os.stat(f"{fd_dir}/{fd}")
            except OSError:
                continue
            found[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            found[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    return found


def descendants(pid):
    """pid's children, grandchildren, ... (the program under /usr/bin/time)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(c) for c in f.read().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


class Poller(threading.Thread):
    """Samples, every second, the growth of the tmp folder's file system over
    its level before the run (df), the bytes of diskmeans' files in the
    folder (named or held open), and its RSS."""

    def __init__(self, root_pid, tmp_dir, baseline, timeline_path):
        super().__init__(daemon=True)
        self.root_pid, self.tmp_dir, self.baseline = root_pid, tmp_dir, baseline
        self.stop = threading.Event()
        self.peak_df = 0
        self.peak_files = 0
        self.samples = 0
        self.timeline = open(timeline_path, "w")
        self.timeline.write("seconds,df_growth_bytes,tmp_file_bytes,rss_bytes\n")

    def sample(self, t0):
        growth = fs_used(self.tmp_dir) - self.baseline
        pids = descendants(self.root_pid)
        held = sum(files_under(pids, self.tmp_dir).values())
        rss = 0
        for pid in pids:
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            rss += int(line.split()[1]) * 1024
            except OSError:
                pass
        self.peak_df = max(self.peak_df, growth)
        self.peak_files = max(self.peak_files, held)
        self.samples += 1
        self.timeline.write(f"{time.perf_counter() - t0:.1f},{growth},{held},{rss}\n")

    def run(self):
        t0 = time.perf_counter()
        while not self.stop.is_set():
            self.sample(t0)
            self.stop.wait(1.0)
        self.timeline.close()


def parse_time_v(text):
    """Wall seconds, peak RSS bytes and exit status from `/usr/bin/time -v`."""
    out = {}
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text)
    if m:
        parts = [float(p) for p in m.group(1).split(":")]
        out["wall_seconds"] = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        out["peak_rss_bytes"] = int(m.group(1)) * 1024
    m = re.search(r"Exit status: (\d+)", text)
    if m:
        out["exit_status"] = int(m.group(1))
    return out


def main():
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build-dir", default="build")
    p.add_argument("--diskmeans", help="default: BUILD/programs/diskmeans")
    p.add_argument("--dir", help="data and outputs (default: BUILD/bench-large)")
    p.add_argument("--tmp-dir", help="diskmeans --tmp-dir, must be empty "
                   "(default: DIR/tmp, created)")
    p.add_argument("--rows", type=int, default=16777216)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--k", type=int, default=65536)
    p.add_argument("--centres", type=int, default=0,
                   help="components of the mixture (default: 3k/4)")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--strategy", default="hierarchical",
                   help="diskmeans --strategy (default hierarchical; '' to leave it out)")
    p.add_argument("--hier-args", default=env("LARGE_K_HIER_ARGS", ""),
                   help="extra diskmeans train arguments, e.g. '--refine 2 --balance'")
    p.add_argument("--cold", action="store_true",
                   help="drop the data file's pages from the page cache first "
                   "(posix_fadvise on that file only)")
    p.add_argument("--generate-only", action="store_true", help="write the data and stop")
    args = p.parse_args()
    if min(args.rows, args.dim, args.k, args.iters, args.threads) < 1:
        p.error("--rows, --dim, --k, --iters and --threads must be positive")

    diskmeans = args.diskmeans or os.path.join(args.build_dir, "programs", "diskmeans")
    if not args.generate_only and not os.access(diskmeans, os.X_OK):
        p.error(f"{diskmeans} is not an executable: build it first (make build)")
    folder = os.path.abspath(args.dir or os.path.join(args.build_dir, "bench-large"))
    tmp_dir = os.path.abspath(args.tmp_dir or os.path.join(folder, "tmp"))
    os.makedirs(folder, exist_ok=True)
    os.makedirs(tmp_dir, exist_ok=True)
    centres = args.centres or max(1, 3 * args.k // 4)
    data = os.path.join(folder, f"rows-{args.rows}x{args.dim}.npy")
    stamp_path = data[:-4] + ".stamp"
    stamp = {"rows": args.rows, "dim": args.dim, "centres": centres, "seed": SEED,
             "generator": zipf_mixture.VERSION}
    data_bytes = args.rows * args.dim * 4
    # diskmeans' default sample: at most 256 rows per centroid.
    sample_bytes = min(args.rows, 256 * args.k) * args.dim * 4

    fresh = False
    try:
        with open(stamp_path) as f:
            if json.load(f) == stamp:
                x = np.load(data, mmap_mode="r")
                fresh = x.shape == (args.rows, args.dim) and x.dtype == np.float32
    except (OSError, ValueError):
        pass

    # Free space first: the rows (unless already there), then a spill of up
    # to the goal's 1.1 x the sample, the centroids and 1 GiB to spare.
    spill_room = int(1.1 * sample_bytes) + args.k * args.dim * 4 + GiB
    same_fs = os.stat(folder).st_dev == os.stat(tmp_dir).st_dev
    need_data = 0 if fresh else data_bytes
    if args.generate_only:
        spill_room = 0
    checks = [(folder, need_data + (spill_room if same_fs else 0))]
    if not same_fs:
        checks.append((tmp_dir, spill_room))
    for path, need in checks:
        have = fs_free(path)
        if have < need:
            log(f"bench_large: {path}: {have / GiB:.1f} GiB free, {need / GiB:.1f} GiB "
                f"needed (rows {need_data / GiB:.1f} GiB, spill and centroids "
                f"{spill_room / GiB:.1f} GiB with 1 GiB to spare); choose another folder "
                f"with LARGE_DIR=... or LARGE_TMP=...")
            return 1

    gen_seconds = None
    if not fresh:
        log(f"writing {args.rows:,} x {args.dim} float32 rows ({data_bytes / GiB:.2f} GiB, "
            f"{centres:,} Zipf-sized components) to {data}")
        mix = zipf_mixture.Mixture(args.dim, centres, SEED)
        t0 = time.perf_counter()
        last = [0.0]

        def progress(done, total):
            now = time.perf_counter()
            if now - last[0] >= 10 or done == total:
                last[0] = now
                log(f"  {done:,} / {total:,} rows ({now - t0:.0f} s)")

        if os.path.exists(stamp_path):
            os.remove(stamp_path)
        mix.write_npy(data, args.rows, progress=progress)
        gen_seconds = time.perf_counter() - t0
        with open(stamp_path, "w") as f:
            json.dump(stamp, f)
    else:
        log(f"reusing {data}")
    if args.generate_only:
        return 0

    left = os.listdir(tmp_dir)
    if left:
        log(f"bench_large: {tmp_dir} is not empty ({len(left)} entries, e.g. {left[0]}): "
            f"empty it or give another LARGE_TMP")
        return 1
    if args.cold:
        fd = os.open(data, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)

    out = os.path.join(folder, f"centroids-k{args.k}.npy")
    stats_path = os.path.join(folder, f"stats-k{args.k}.json")
    time_path = os.path.join(folder, "time-v.txt")
    help_text = subprocess.run([diskmeans, "train", "--help"], capture_output=True,
                               text=True).stdout
    cmd = [diskmeans, "train", data, "-k", str(args.k)]
    notes = []
    if args.strategy:
        if "--strategy" in help_text:
            cmd += ["--strategy", args.strategy]
        else:
            notes.append(f"this diskmeans has no --strategy: it trained flat, not "
                         f"{args.strategy}")
            log(f"bench_large: NOTE: {notes[-1]}")
    cmd += args.hier_args.split()
    cmd += ["--iters", str(args.iters), "--tol", "0", "--threads", str(args.threads),
            "--tmp-dir", tmp_dir, "-o", out, "--stats", stats_path]
    full = ["/usr/bin/time", "-v", "-o", time_path] + cmd
    log("running: " + " ".join(full))
    baseline = fs_used(tmp_dir)
    proc = subprocess.Popen(full)
    poller = Poller(proc.pid, tmp_dir, baseline, os.path.join(folder, "timeline.csv"))
    poller.start()
    status = proc.wait()
    poller.stop.set()
    poller.join()
    with open(time_path) as f:
        timed = parse_time_v(f.read())
    left = os.listdir(tmp_dir)
    growth_after = fs_used(tmp_dir) - baseline
    stats = {}
    try:
        with open(stats_path) as f:
            stats = json.load(f)
    except (OSError, ValueError):
        pass
    sample_rows = stats.get("sample_rows") or min(args.rows, 256 * args.k)
    sample_bytes = sample_rows * args.dim * 4
    spill = stats.get("spill_bytes")

    def verdict(ok):
        return "PASS" if ok else "FAIL"

    wall = timed.get("wall_seconds", float("nan"))
    rss = timed.get("peak_rss_bytes", 0)
    # The goal is judged on diskmeans' own files: df's growth also counts
    # whatever else the machine writes to that file system meanwhile. The
    # spill's size from --stats covers a peak between two samples.
    temp = max(poller.peak_files, spill or 0)
    lines = [
        f"command: {' '.join(cmd)} (exit status {status})",
        f"data: {data} ({args.rows:,} x {args.dim} float32, {data_bytes / GiB:.2f} GiB, "
        + (f"written in this run in {gen_seconds:.0f} s, so partly in the page cache"
           if gen_seconds is not None else "reused") + ("; dropped from the page cache"
                                                        if args.cold else "") + ")",
        f"sample: {sample_rows:,} rows ({sample_bytes / GiB:.2f} GiB); storage "
        f"{stats.get('storage', '?')}, spill file {0 if spill is None else spill / GiB:.2f} "
        f"GiB (stats)",
        f"strategy {stats.get('strategy', '?')} {json.dumps(stats.get('hierarchical'))}; "
        f"objective {stats.get('objective', '?')}; partitions {json.dumps(stats.get('balance'))}",
        f"arithmetic planned: {stats.get('plan', {}).get('flops')} flops (flat: "
        f"{stats.get('plan', {}).get('flat_flops')})",
        f"temporary disk, sampled every second ({poller.samples} samples): diskmeans' files "
        f"in {tmp_dir} (named or held open) peaked at {poller.peak_files / GiB:.2f} GiB; its "
        f"file system grew by {poller.peak_df / GiB:.2f} GiB at most (df: other processes' "
        f"writes count too; {growth_after / 2**20:+.0f} MiB after the run)",
        f"goal wall <= 10 min: {wall:.1f} s: {verdict(wall <= 600)}",
        f"goal peak RSS <= 1 GiB: {rss / 2**20:.0f} MiB: {verdict(rss <= GiB)}",
        f"goal temporary disk <= 1.1 x sample ({1.1 * sample_bytes / GiB:.2f} GiB): "
        f"{temp / GiB:.2f} GiB: {verdict(temp <= 1.1 * sample_bytes)}",
        f"goal nothing left in {tmp_dir}: "
        + (verdict(True) if not left else f"{verdict(False)} ({', '.join(left[:5])})"),
    ] + [f"note: {n}" for n in notes]
    report = "\n".join(lines) + "\n"
    sys.stdout.write(report)
    with open(os.path.join(folder, "summary.md"), "w") as f:
        f.write(report)
    with open(os.path.join(folder, "summary.json"), "w") as f:
        json.dump({"command": cmd, "exit_status": status, "time_v": timed,
                   "generate_seconds": gen_seconds, "sample_bytes": sample_bytes,
                   "peak_df_growth_bytes": poller.peak_df,
                   "peak_tmp_file_bytes": poller.peak_files, "left_in_tmp": left,
                   "stats": stats, "notes": notes}, f, indent=1)
    return 0 if status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
