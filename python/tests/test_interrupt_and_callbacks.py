"""Ctrl-C cancels, the user's callback exceptions propagate unchanged, the
GIL is released while the library works."""

import _thread
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import diskmeans


@pytest.fixture(scope="module")
def big():
    # Enough work that training runs for many progress reports.
    rng = np.random.default_rng(1)
    return rng.standard_normal((60000, 32), dtype=np.float32)


LONG = dict(max_iter=100000, tol=0, max_points_per_centroid=0, n_threads=1)


def test_interrupt_main_cancels_training_and_leaves_no_file(big, tmp_path):
    seen = []

    def progress(p):
        seen.append(p)
        if p.phase == "iterate" and p.iteration == 1 and p.done == p.total:
            # As Ctrl-C would, from another thread while the library works.
            threading.Thread(target=_thread.interrupt_main).start()

    with pytest.raises(KeyboardInterrupt):
        diskmeans.train(big, 64, storage="disk", tmp_dir=tmp_path, progress=progress, **LONG)
    assert max(p.iteration for p in seen if p.phase == "iterate") < 100
    assert list(tmp_path.iterdir()) == []


def test_interrupt_main_cancels_assign(big):
    centroids = big[:4096]
    calls = []

    def progress(p):
        calls.append(p)
        if len(calls) == 1:
            _thread.interrupt_main()

    with pytest.raises(KeyboardInterrupt):
        diskmeans.assign(big, centroids, progress=progress, n_threads=1, block_rows=256)


CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import diskmeans
    x = np.random.default_rng(1).standard_normal((60000, 32), dtype=np.float32)
    def progress(p):
        if p.phase == "iterate" and p.iteration == 0 and p.done == p.total:
            print("training", flush=True)
    diskmeans.train(x, 64, max_iter=100000, tol=0, max_points_per_centroid=0, n_threads=1,
                    storage="disk", tmp_dir=sys.argv[1], progress=progress)
    print("finished", flush=True)
""")


def test_sigint_stops_a_training_process_with_keyboard_interrupt(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "training\n"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
        child.wait()
    assert "finished" not in out
    assert "KeyboardInterrupt" in err
    assert child.returncode != 0
    assert list(tmp_path.iterdir()) == []


class Boom(Exception):
    pass


@pytest.mark.parametrize("phase", ["sample", "init", "iterate"])
def test_an_exception_in_the_progress_callback_propagates_unchanged(big, tmp_path, phase):
    raised = Boom("from the callback")

    def progress(p):
        if p.phase == phase:
            raise raised

    with pytest.raises(Boom) as info:
        diskmeans.train(big[:5000], 16, progress=progress, storage="disk", tmp_dir=tmp_path)
    assert info.value is raised
    # The traceback goes through the callback.
    assert any(tb.name == "progress" for tb in info.traceback)
    assert list(tmp_path.iterdir()) == []


def test_an_exception_in_the_progress_callback_of_assign_propagates(big):
    raised = Boom()

    def progress(p):
        raise raised

    with pytest.raises(Boom) as info:
        diskmeans.assign(big, big[:8], progress=progress)
    assert info.value is raised


def test_progress_reports_every_phase_of_a_run(blobs):
    seen = []
    r = diskmeans.train(blobs, 8, max_iter=5, tol=0, progress=seen.append)
    phases = {p.phase for p in seen}
    assert {"sample", "init", "iterate"} <= phases
    last = [p for p in seen if p.phase == "iterate" and p.done == p.total]
    assert [p.iteration for p in last] == list(range(r.n_iter))
    assert all(isinstance(p, diskmeans.Progress) for p in seen)


def test_verbose_writes_progress_and_returns_the_same_centroids(blobs, capsys):
    quiet = diskmeans.train(blobs, 8)
    loud = diskmeans.train(blobs, 8, verbose=True)
    assert loud.centroids.tobytes() == quiet.centroids.tobytes()
    assert capsys.readouterr().err != ""


def test_the_gil_is_released_while_training(big):
    # Another Python thread counts while the main thread is inside the
    # library. No progress callable: the library calls back only to check
    # for signals, which runs no Python code, so with the GIL held during
    # the call the counter could not move until it returned.
    state = {"inside": False, "stop": False, "count": 0}

    def counter():
        while not state["stop"]:
            if state["inside"]:
                state["count"] += 1
            time.sleep(0.001)

    t = threading.Thread(target=counter)
    t.start()
    try:
        state["inside"] = True
        diskmeans.train(big, 64, max_iter=40, tol=0, max_points_per_centroid=0, n_threads=1)
        state["inside"] = False
    finally:
        state["stop"] = True
        t.join()
    assert state["count"] >= 10


def test_verbose_without_tqdm_writes_a_line_per_iteration(blobs, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    r = diskmeans.train(blobs, 8, max_iter=4, tol=0, verbose=True)
    lines = capsys.readouterr().err.splitlines()
    iterations = [ln for ln in lines if ln.startswith("iteration ")]
    assert len(iterations) == r.n_iter == 4
    assert iterations[-1].startswith("iteration 4/4: objective ")
