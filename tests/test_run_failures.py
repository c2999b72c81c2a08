"""Nothing wrong is reported as a result: a diverged run ends FAILED with the step, a damaged
checkpoint never blocks a run (the previous one, or a fresh start, is used and noted), and a second
process on the same run stops with one line while the first goes on."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench.core.errors import Diverged
from bench.train import checkpoint
from bench.train.command import main
from bench.train.config import resolve
from bench.train.lock import RunLocked, run_lock
from bench.train.record import read_status
from bench.train.runner import run_experiment
from tests.support import tiny_settings
from tests.test_resume import SETTINGS as RESUMABLE
from tests.test_resume import Interrupt, interrupt_after, metric_rows

TINY = tiny_settings()


@pytest.mark.parametrize("method", ["palora", "mean", "phn-ls"])
@pytest.mark.parametrize("lr", ["1e8", "inf"])
def test_a_diverged_run_is_failed_with_its_step_and_no_front(method, lr, tmp_path: Path, capsys):
    argv = ["--method", method, "--device", "cpu", "--out", str(tmp_path), "--no-progress"]
    argv += [item for s in [*TINY, f"train.lr={lr}"] for item in ("--set", s)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: run ") and "diverged: non-finite" in err[0]
    (run_dir,) = tmp_path.iterdir()
    status = read_status(run_dir)
    assert status.startswith("FAILED: diverged: non-finite loss at step ") and status.endswith("(epoch 1)")
    assert not (run_dir / "summary.json").exists()


def test_divergence_names_the_first_bad_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The loss turns NaN at step 6 (epoch 2 of 4-step epochs): the record says exactly that."""
    from bench.train import loop

    original = loop.train_step
    calls = {"n": 0}

    def nan_from_step_6(*args, **kwargs):
        losses, loss = original(*args, **kwargs)
        calls["n"] += 1
        return (losses, loss * float("nan")) if calls["n"] >= 6 else (losses, loss)

    monkeypatch.setattr(loop, "train_step", nan_from_step_6)
    cfg = resolve("palora", "multimnist-mini", assignments=TINY)
    with pytest.raises(Diverged, match=r"non-finite loss at step 6 \(epoch 2\)"):
        run_experiment(cfg, tmp_path, device="cpu", show_progress=False)
    assert read_status(tmp_path / cfg.run_id()) == "FAILED: diverged: non-finite loss at step 6 (epoch 2)"


def test_on_an_accelerator_the_flag_is_read_every_n_steps_not_each_step():
    from bench.train.loop import DIVERGENCE_CHECK_EVERY, DivergenceWatch

    watch = DivergenceWatch(torch.device("meta"), steps_per_epoch=10)
    assert watch.every == DIVERGENCE_CHECK_EVERY > 1
    cpu = DivergenceWatch(torch.device("cpu"), steps_per_epoch=10)
    cpu.note(3, torch.ones(2, 2), torch.tensor(1.0))
    cpu.check()  # finite: nothing
    cpu.note(4, torch.tensor([[1.0, float("inf")]]), torch.tensor(1.0))  # a task loss alone
    cpu.note(5, torch.ones(2, 2), torch.tensor(float("nan")))
    with pytest.raises(Diverged, match=r"step 4 \(epoch 1\)"):
        cpu.check()


def interrupted_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, saves: int):
    cfg = resolve("palora", "multimnist-mini", seed=3, assignments=RESUMABLE)
    interrupt_after(monkeypatch, saves)
    with pytest.raises(Interrupt):
        run_experiment(cfg, tmp_path / "broken", device="cpu", show_progress=False)
    monkeypatch.undo()
    return cfg, tmp_path / "broken" / cfg.run_id()


def damage(path: Path, how: str) -> None:
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "random":
        path.write_bytes(random.Random(0).randbytes(4096))
    elif how == "no-keys":
        torch.save({"model": {}}, path)
    elif how == "version":
        state = torch.load(path, weights_only=False)
        torch.save({**state, "version": 99}, path)
    elif how == "other-method":
        other = resolve("pamal", "multimnist-mini", seed=3, assignments=[*RESUMABLE, "train.epochs=1"])
        run = run_experiment(other, path.parent.parent / "other", device="cpu", show_progress=False)
        path.write_bytes((run.directory / checkpoint.FILENAME).read_bytes())


@pytest.fixture(scope="module")
def interrupted_and_straight(tmp_path_factory: pytest.TempPathFactory):
    """One run interrupted after its third checkpoint (latest at step 10, previous at 8) and the same
    run never interrupted; each damage case resumes its own copy of the interrupted one."""
    root = tmp_path_factory.mktemp("interrupted")
    with pytest.MonkeyPatch.context() as monkeypatch:
        cfg, run_dir = interrupted_run(root, monkeypatch, saves=3)
    straight = run_experiment(cfg, root / "straight", device="cpu", show_progress=False)
    return cfg, run_dir, straight.summary["front"], metric_rows(straight.directory)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncated", "empty", "random", "no-keys", "version", "other-method"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous(how, interrupted_and_straight, tmp_path: Path, capsys):
    cfg, pristine, straight_front, straight_rows = interrupted_and_straight
    run_dir = tmp_path / "broken" / pristine.name
    shutil.copytree(pristine, run_dir)
    damage(run_dir / checkpoint.FILENAME, how)
    capsys.readouterr()
    resumed = run_experiment(cfg, tmp_path / "broken", device="cpu", show_progress=False, resume=True)
    assert resumed.summary["front"] == straight_front
    assert metric_rows(resumed.directory) == straight_rows
    note = resumed.summary["resumed"][-1]
    assert note["from_step"] == 8 and note["passed_over"][0].startswith("checkpoint.pt is damaged: ")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint.pt is damaged" in err[0] and err[0].endswith("resumed from step 8")
    assert (run_dir / "checkpoint.pt.damaged").is_file() and read_status(run_dir) == "COMPLETED"


def test_when_every_checkpoint_is_damaged_the_run_starts_over(tmp_path: Path, monkeypatch, capsys):
    cfg, run_dir = interrupted_run(tmp_path, monkeypatch, saves=3)
    damage(run_dir / checkpoint.FILENAME, "truncated")
    damage(run_dir / checkpoint.PREVIOUS, "random")
    straight = run_experiment(cfg, tmp_path / "straight", device="cpu", show_progress=False)
    resumed = run_experiment(cfg, tmp_path / "broken", device="cpu", show_progress=False, resume=True)
    assert resumed.summary["front"] == straight.summary["front"]
    assert metric_rows(resumed.directory) == metric_rows(straight.directory)
    (note,) = resumed.summary["resumed"]
    assert note["started_over"] and note["from_step"] == 0 and len(note["passed_over"]) == 2
    assert capsys.readouterr().err.strip().endswith("started over")


def test_the_checkpoint_before_the_latest_is_kept(tmp_path: Path, monkeypatch):
    _, run_dir = interrupted_run(tmp_path, monkeypatch, saves=2)
    latest = torch.load(run_dir / checkpoint.FILENAME, weights_only=False)
    previous = torch.load(run_dir / checkpoint.PREVIOUS, weights_only=False)
    assert (latest["loop"]["steps"], previous["loop"]["steps"]) == (8, 4)


def test_a_second_holder_of_the_run_lock_is_refused_with_the_pid(tmp_path: Path):
    with run_lock(tmp_path / "run"):
        with pytest.raises(RunLocked, match=rf"run run is already running \(pid {os.getpid()}\)"):
            with run_lock(tmp_path / "run"):
                pass
    with run_lock(tmp_path / "run"):  # released with the block
        pass


@pytest.mark.slow
def test_a_second_process_on_the_same_run_exits_2_and_the_first_completes(tmp_path: Path, data_root: Path):
    argv = [sys.executable, "-m", "bench.run", "--method", "palora", "--device", "cpu", "--out", str(tmp_path)]
    argv += ["--no-progress", *[item for s in [*TINY, "train.epochs=30"] for item in ("--set", s)]]
    env = {**os.environ, "PFLBENCH_DATA": str(data_root)}
    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob("*/status")) and time.time() < deadline:
        time.sleep(0.2)
    second = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert second.returncode == 2
    (line,) = second.stderr.strip().splitlines()
    assert line.startswith("error: run palora_multimnist-mini_s0_") and f"(pid {first.pid})" in line
    assert first.wait(timeout=300) == 0
    (run_dir,) = tmp_path.iterdir()
    assert read_status(run_dir) == "COMPLETED" and json.loads((run_dir / "summary.json").read_text())["steps"] == 120


@pytest.mark.slow
def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path):
    code = (
        "import sys, time; from pathlib import Path; from bench.train.lock import run_lock\n"
        f"with run_lock(Path({str(tmp_path / 'run')!r})):\n    print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunLocked):
        with run_lock(tmp_path / "run"):
            pass
    holder.kill()
    holder.wait()
    with run_lock(tmp_path / "run"):  # the kernel released it with the process
        pass


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_disk_fails_the_run_in_one_line_and_leaves_nothing_half_written(
    code, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    """The disk fills up when the first checkpoint is written: FAILED with the file, nothing partial."""
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").split("/")[-1].startswith(".checkpoint.pt."):
            raise OSError(code, os.strerror(code))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    argv = ["--method", "palora", "--device", "cpu", "--out", str(tmp_path), "--no-progress"]
    argv += [item for s in TINY for item in ("--set", s)]
    assert main(argv) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    what = os.strerror(code).lower()
    assert line.startswith("error: run palora_") and f"{what} writing {tmp_path}" in line and "checkpoint.pt" in line
    (run_dir,) = tmp_path.iterdir()
    assert read_status(run_dir) == f"FAILED: {what} writing {run_dir / 'checkpoint.pt'}"
    assert not list(run_dir.glob("*.tmp")) and not list(run_dir.glob(".*.tmp"))
    assert not (run_dir / "checkpoint.pt").exists() and not (run_dir / "summary.json").exists()


@pytest.mark.slow
def test_sigterm_ends_the_run_as_failed_with_the_reason_and_it_resumes(tmp_path: Path, data_root: Path):
    """``kill`` (SIGTERM) mid-run: exit 1, one error line, status FAILED with why, never RUNNING; then
    ``--resume`` continues from its checkpoint."""
    argv = [sys.executable, "-m", "bench.run", "--method", "palora", "--device", "cpu", "--out", str(tmp_path)]
    argv += ["--no-progress", "--data-root", str(data_root)]
    argv += [item for s in [*TINY, "train.epochs=12", "train.checkpoint_every=4"] for item in ("--set", s)]
    run = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("*/checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.1)
    run.terminate()
    _, err = run.communicate(timeout=60)
    assert run.returncode == 1, err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: run palora_multimnist-mini_s0_") and "terminated by SIGTERM" in line
    (run_dir,) = tmp_path.iterdir()
    assert read_status(run_dir).startswith("FAILED: terminated by SIGTERM")
    resumed = subprocess.run([*argv, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert read_status(run_dir) == "COMPLETED"
    assert json.loads((run_dir / "summary.json").read_text())["resumed"][0]["from_step"] > 0


def test_running_out_of_memory_during_training_is_a_failed_run_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    from bench.train import loop
    from tests.test_memory import HOST_ALLOC

    def fit(*args, **kwargs):
        raise RuntimeError(HOST_ALLOC)

    monkeypatch.setattr("bench.train.runner.fit", fit)
    assert loop.fit is not fit
    argv = ["--method", "palora", "--device", "cpu", "--out", str(tmp_path), "--no-progress"]
    argv += [item for s in TINY for item in ("--set", s)]
    assert main(argv) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "FAILED: out of memory in host memory (asked for 186.3 GiB) during the run" in line
    (run_dir,) = tmp_path.iterdir()
    assert read_status(run_dir).startswith("FAILED: out of memory in host memory")
