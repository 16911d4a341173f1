"""Runs the transcripts of the docs and compares what they show with what
the tool prints today (test_docs_transcripts.sh calls this).

A transcript is a fenced block whose info string is `console`, in README.md
or docs/*.md. In it, a line `$ COMMAND` is run by bash in a scratch folder
where the Fashion-MNIST files are linked under their own names, and the
lines after it, up to the next `$` line or the end of the block, are what it
must print, stdout and stderr together, line by line. Two things may differ:

  - times ("0.22 s", "1.86 s") and the memory budget ("memory limit:",
    "memory limit from:"), which depend on the machine and its load: they
    are masked on both sides;
  - a line `[... WHY ...]` in the docs marks a cut: it stands for any number
    of lines (also none) that the docs leave out.

Every other character must match, so a stale objective, cluster size or
message fails the test. `diskmeans` in a command (also as the last command
of a pipeline, `zcat x.gz | diskmeans info -`) is the tool under test;
`make demo` runs scripts/demo.sh with the tool's build folder (the part of
`make demo` after the build, which a cut at the top of its transcript
stands for).

usage: check_transcripts.py SOURCE_DIR BINARY_DIR SCRATCH DATA_DIR
"""

import glob
import os
import re
import shlex
import subprocess
import sys

source_dir, binary_dir, scratch, data_dir = sys.argv[1:5]
tool = os.path.join(binary_dir, "programs", "diskmeans")

CUT = re.compile(r"^\[\.\.\..*\]$")
MASKS = [
    (re.compile(r"\b\d+(\.\d+)? s\b"), "<T> s"),
    (re.compile(r"^(memory limit: +).*$"), r"\1<MACHINE>"),
    (re.compile(r"^(memory limit from: +).*$"), r"\1<MACHINE>"),
]


def mask(line):
    for pattern, repl in MASKS:
        line = pattern.sub(repl, line)
    return line.rstrip()


def transcripts(path):
    """Yields (line number, [(command, [expected lines])]) per console block."""
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```console":
            start = i + 1
            runs = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                if lines[i].startswith("$ "):
                    runs.append((lines[i][2:], []))
                elif runs:
                    runs[-1][1].append(lines[i])
                else:
                    raise SystemExit(f"{path}:{i + 1}: output before the first '$' line")
                i += 1
            yield start, runs
        i += 1


def matches(expected, actual):
    """expected (with cut lines) against actual, both masked: True or the
    index of the first expected line that cannot be matched."""
    # Simple backtracking over the cuts: transcripts have few of them.
    def walk(e, a):
        if e == len(expected):
            return a == len(actual) or None
        if CUT.match(expected[e]):
            for skip in range(a, len(actual) + 1):
                if walk(e + 1, skip) is True:
                    return True
            return None
        if a < len(actual) and mask(expected[e]) == mask(actual[a]):
            return walk(e + 1, a + 1)
        return None
    return walk(0, 0) is True


RAN = {}  # command -> (status, lines): the docs show some runs twice


def run(command):
    if command in RAN:
        return RAN[command]
    words = shlex.split(command)
    if words[:2] == ["make", "demo"]:
        argv = ["bash", os.path.join(source_dir, "scripts", "demo.sh"), binary_dir]
        env_extra = {"DKM_DEMO_OUT": os.path.join(scratch, "demo")}
        cwd = source_dir
    elif words and words[0] == "diskmeans":
        argv = [tool] + words[1:]
        env_extra = {}
        cwd = scratch
    elif "| diskmeans " in command:
        # A pipeline into the tool (reading INPUT -): bash runs it; the
        # status is the tool's, the last command's.
        before, after = command.rsplit("| diskmeans ", 1)
        argv = ["bash", "-c", f"{before}| {shlex.quote(tool)} {after}"]
        env_extra = {}
        cwd = scratch
    else:
        raise SystemExit(f"transcript command not runnable here: {command}")
    env = dict(os.environ, **env_extra)
    # One pipe for both, as a terminal shows them. (stdbuf would make stdout
    # line-buffered, but its preloaded library breaks the sanitizer builds;
    # the tool writes its stdout after its progress lines anyway.)
    proc = subprocess.run(argv, cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.split("\n")
    if out and out[-1] == "":
        out.pop()
    RAN[command] = (proc.returncode, out)
    return RAN[command]


def main():
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        link = os.path.join(scratch, name)
        if not os.path.exists(link):
            os.symlink(os.path.join(data_dir, name), link)
    docs = [os.path.join(source_dir, "README.md")] + sorted(
        glob.glob(os.path.join(source_dir, "docs", "*.md")))
    failures = checked = 0
    for path in docs:
        rel = os.path.relpath(path, source_dir)
        for line_no, runs in transcripts(path):
            for command, expected in runs:
                while expected and expected[-1] == "":
                    expected.pop()
                checked += 1
                print(f"--- {rel}:{line_no}: $ {command}")
                status, actual = run(command)
                if status != 0:
                    print(f"FAIL: exit status {status}:\n" + "\n".join(actual))
                    failures += 1
                elif not matches(expected, actual):
                    print(f"FAIL: {rel}:{line_no} shows output that '{command}' no longer "
                          "prints. It prints (times and the memory budget masked):")
                    print("\n".join(mask(a) for a in actual))
                    failures += 1
    if checked == 0:
        print("FAIL: no console transcript found in the docs")
        failures += 1
    print(f"{checked} transcript command(s), {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
