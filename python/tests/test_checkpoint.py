"""train(checkpoint=..., resume=...): a run killed or cancelled goes on from
its checkpoint to the very bits of a run never interrupted; anything that
would change the result is refused by name; the file is interchangeable
with the CLI's --checkpoint."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import diskmeans
from diskmeans import FormatError, ParameterError

# Small enough to be quick, large enough for several iterations to matter.
KW = dict(k=48, max_iter=12, tol=0, seed=7)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    return rng.standard_normal((12000, 16)).astype(np.float32)


@pytest.fixture
def x_npy(tmp_path, data):
    path = tmp_path / "x.npy"
    np.save(path, data)
    return path


class Stop(Exception):
    pass


def wait_for(path):
    """Until the checkpoint writer, a thread of its own, has put the file in
    place (bounded only so that a bug fails rather than hangs)."""
    for _ in range(120000):
        if os.path.exists(path):
            return
        time.sleep(0.001)
    pytest.fail(f"{path} was never written")


def stop_at(ckpt):
    """A progress callable that cancels training in the middle of the run,
    once the checkpoint exists: what a crash leaves, in-process. Every
    iteration's end is reported; the coarse centroids of hierarchical
    training are saved only once done, so no waiting before them."""

    def progress(p):
        if p.phase == "iterate" and p.part != "coarse" and (p.iteration >= 2 or p.part == "group"):
            wait_for(ckpt)
            raise Stop

    return progress


def interrupted(data, ckpt, **kw):
    with pytest.raises(Stop):
        diskmeans.train(data, checkpoint=ckpt, progress=stop_at(ckpt), **{**KW, **kw})
    assert os.path.exists(ckpt)  # a call that fails keeps it


def same_bits(a, b):
    assert np.array_equal(a.centroids.view(np.uint32), b.centroids.view(np.uint32))
    assert np.array_equal(a.cluster_sizes, b.cluster_sizes)
    assert a.objective == b.objective and a.n_iter == b.n_iter


def phases(seen):
    return lambda p: seen.append(p.phase)


def test_killed_run_resumes_to_the_same_bits_with_other_threads_and_storage(tmp_path, x_npy):
    ref = diskmeans.train(x_npy, **KW)
    ckpt = tmp_path / "run.ckpt"
    marker = tmp_path / "stopped"
    # The child blocks in its progress callable at the end of iteration 4,
    # once the checkpoint exists, and says so: the kill then lands mid-run
    # whatever the speed of the machine and of its disk.
    child = textwrap.dedent(f"""
        import os, time, diskmeans
        def progress(p):
            if p.phase == "iterate" and p.iteration >= 4:
                while not os.path.exists({str(ckpt)!r}):
                    time.sleep(0.001)
                open({str(marker)!r}, "w").close()
                while True:
                    time.sleep(1)
        diskmeans.train({str(x_npy)!r}, checkpoint={str(ckpt)!r}, progress=progress,
                        n_threads=2, storage="memory", **{KW!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", child])
    try:
        while not marker.exists():
            assert proc.poll() is None, "the child ended before it was killed"
            time.sleep(0.001)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert ckpt.exists()

    seen = []
    r = diskmeans.train(x_npy, checkpoint=ckpt, resume=True, n_threads=1, storage="disk",
                        block_rows=1000, progress=phases(seen), **KW)
    same_bits(r, ref)
    assert "init" not in seen  # it went on from the checkpoint
    assert not ckpt.exists()  # and removed it, as the CLI does


@pytest.mark.parametrize("strategy", ["flat", "hierarchical"])
@pytest.mark.parametrize("other", [dict(n_threads=1, storage="disk"),
                                   dict(n_threads=3, storage="memory", block_rows=777)])
def test_cancelled_run_resumes_to_the_same_bits(tmp_path, data, strategy, other):
    ref = diskmeans.train(data, strategy=strategy, **KW)
    ckpt = tmp_path / "run.ckpt"
    interrupted(data, ckpt, strategy=strategy, storage="memory")
    r = diskmeans.train(data, checkpoint=ckpt, resume=True, strategy=strategy, **other, **KW)
    same_bits(r, ref)
    assert not ckpt.exists()


def test_success_removes_the_checkpoint_and_a_stale_tmp(tmp_path, data):
    ckpt = tmp_path / "run.ckpt"
    (tmp_path / "run.ckpt.tmp").write_bytes(b"left by a kill")
    r = diskmeans.train(data, checkpoint=ckpt, **KW)
    same_bits(r, diskmeans.train(data, **KW))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name,change", [("k", dict(k=40)), ("seed", dict(seed=8)),
                                         ("max_iter", dict(max_iter=13))])
def test_resume_with_another_parameter_names_it(tmp_path, data, name, change):
    ckpt = tmp_path / "run.ckpt"
    interrupted(data, ckpt)
    before = ckpt.read_bytes()
    with pytest.raises(ParameterError, match=rf"checkpoint .*run\.ckpt: {name} differs"):
        diskmeans.train(data, checkpoint=ckpt, resume=True, **{**KW, **change})
    assert ckpt.read_bytes() == before  # nothing written


def test_resume_with_other_rows_names_them(tmp_path, data):
    ckpt = tmp_path / "run.ckpt"
    interrupted(data, ckpt)
    other = data.copy()
    other[::7] += 1
    with pytest.raises(ParameterError, match="rows differ"):
        diskmeans.train(other, checkpoint=ckpt, resume=True, **KW)


def test_resume_with_another_input_file_names_it(tmp_path, x_npy):
    ckpt = tmp_path / "run.ckpt"
    interrupted(x_npy, ckpt)
    copy = tmp_path / "copy.npy"
    shutil.copyfile(x_npy, copy)  # the same rows under another name
    with pytest.raises(ParameterError, match="input differs"):
        diskmeans.train(copy, checkpoint=ckpt, resume=True, **KW)
    os.utime(x_npy, ns=(0, 0))  # the same file, rewritten since
    with pytest.raises(ParameterError, match="input mtime differs"):
        diskmeans.train(x_npy, checkpoint=ckpt, resume=True, **KW)


def test_resume_without_a_checkpoint_file_is_a_clear_error(tmp_path, data):
    ckpt = tmp_path / "none.ckpt"
    with pytest.raises(FileNotFoundError, match=r"checkpoint .*none\.ckpt: cannot resume") as e:
        diskmeans.train(data, checkpoint=ckpt, resume=True, **KW)
    assert e.value.filename == str(ckpt)
    with pytest.raises(ParameterError, match="resume=True needs checkpoint"):
        diskmeans.train(data, resume=True, **KW)


def test_truncated_checkpoint_is_a_format_error(tmp_path, data):
    ckpt = tmp_path / "run.ckpt"
    interrupted(data, ckpt)
    whole = ckpt.read_bytes()
    ckpt.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(FormatError, match=r"checkpoint .*run\.ckpt"):
        diskmeans.train(data, checkpoint=ckpt, resume=True, **KW)
    assert ckpt.stat().st_size == len(whole) // 2  # left as found


def test_checkpoint_naming_an_input_is_refused(tmp_path, data, x_npy):
    before = x_npy.read_bytes()
    link = tmp_path / "link.npy"
    os.symlink(x_npy, link)
    for ckpt in (x_npy, link):
        with pytest.raises(ParameterError, match="same file"):
            diskmeans.train([data, x_npy], checkpoint=ckpt, **KW)
    with pytest.raises(ParameterError, match="is a folder"):
        diskmeans.train(data, checkpoint=tmp_path, **KW)
    assert x_npy.read_bytes() == before


def test_python_checkpoint_resumes_in_the_cli(cli, tmp_path, x_npy):
    ref = diskmeans.train(x_npy, **KW)
    ckpt = tmp_path / "run.ckpt"
    interrupted(x_npy, ckpt)
    out = tmp_path / "c.npy"
    subprocess.run([cli, "train", str(x_npy), "-k", str(KW["k"]), "--iters", str(KW["max_iter"]),
                    "--tol", "0", "--seed", str(KW["seed"]), "-o", str(out),
                    "--checkpoint", str(ckpt), "--resume", "--quiet"], check=True)
    assert np.array_equal(np.load(out).view(np.uint32), ref.centroids.view(np.uint32))
    assert not ckpt.exists()


def test_cli_checkpoint_resumes_in_python(cli, tmp_path, x_npy):
    ckpt = tmp_path / "run.ckpt"
    # The CLI has no hook to stop it at a given point: kill it once its
    # checkpoint exists, with more iterations on each try should it finish
    # first (it then removes the file).
    for max_iter in (200, 2000, 20000):
        kw = {**KW, "max_iter": max_iter}
        proc = subprocess.Popen([cli, "train", str(x_npy), "-k", str(kw["k"]), "--iters",
                                 str(max_iter), "--tol", "0", "--seed", str(kw["seed"]),
                                 "-o", str(tmp_path / "c.npy"), "--checkpoint", str(ckpt),
                                 "--quiet"])
        while proc.poll() is None and not ckpt.exists():
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.returncode == -signal.SIGKILL and ckpt.exists():
            break
    else:
        pytest.fail("the CLI always finished before it could be killed")
    r = diskmeans.train(x_npy, checkpoint=ckpt, resume=True, **kw)
    same_bits(r, diskmeans.train(x_npy, **kw))


def test_kmeans_fit_resumes(tmp_path, data):
    pytest.importorskip("sklearn")
    ckpt = tmp_path / "run.ckpt"
    interrupted(data, ckpt, init="greedy-kmeans++")
    est = diskmeans.KMeans(KW["k"], max_iter=KW["max_iter"], tol=0, random_state=KW["seed"],
                           checkpoint=ckpt, resume=True)
    assert est.get_params()["checkpoint"] == ckpt and est.get_params()["resume"] is True
    est.fit(data)
    ref = diskmeans.KMeans(KW["k"], max_iter=KW["max_iter"], tol=0,
                           random_state=KW["seed"]).fit(data)
    assert np.array_equal(est.cluster_centers_.view(np.uint32),
                          ref.cluster_centers_.view(np.uint32))
    assert np.array_equal(est.labels_, ref.labels_)
    assert not ckpt.exists()
