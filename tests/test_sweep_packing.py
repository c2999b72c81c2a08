"""Many runs per GPU (``[cluster] runs_per_gpu``), on CPU: how runs are dealt out to local workers
and grouped into SLURM jobs, that packed runs really run at once with their share of the threads,
and that a failing run or a worker killed with SIGKILL leaves the others to complete and is resumed
by running the sweep again. The real-SLURM packed job is in test_slurm.py."""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import bench.sweep.command as sweep
import bench.sweep.state as states
from bench.sweep.command import main
from bench.sweep.job import REQUEUE_LOG, WORKER_FILE, SweepJob
from bench.sweep.spec import load_spec
from bench.train.config import RunConfig
from bench.train.record import read_status
from tests.test_sweep import TINY, write_spec

# long enough (128 steps, a checkpoint every 10) to be caught mid-run, as in test_slurm.py; for ls only,
# which trains three of its models (the ends and the middle) instead of one per grid ray
LONG = {
    **TINY,
    "train.max_steps": 0,
    "data.train_limit": 4096,
    "train.checkpoint_every": 10,
    "method.rays": "1,0;0.5,0.5;0,1",
}
PACKED = "[cluster]\nruns_per_gpu = 2"
SHARE = max(1, (os.cpu_count() or 1) // 2)


class FakeExecutor:
    """Records what a sweep submits, and the thread variables the worker would start with."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.submitted: list[dict[str, Any]] = []

    def update_parameters(self, **kw: Any) -> None:
        self.params.update(kw)

    def submit(self, fn: Any, configs: list, *args: Any, **kwargs: Any) -> Any:
        job = type("Job", (), {"job_id": str(len(self.submitted))})()
        self.submitted.append(
            {"runs": configs, "kwargs": kwargs, "params": dict(self.params), "omp": os.environ.get("OMP_NUM_THREADS")}
        )
        return job

    def batch(self) -> Any:
        return open(os.devnull)  # any context manager


BAD_BACKBONE = "FAILED: ConfigError: model.backbone=mlp cannot run on multimnist-mini"


def notes(out: Path, configs: list[RunConfig]) -> list[dict[str, Any]]:
    return [json.loads((out / c.run_id() / WORKER_FILE).read_text()) for c in configs]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def mid_run(directory: Path) -> bool:
    """A checkpoint is on disk and the run is still going."""
    return (directory / "checkpoint.pt").is_file() and read_status(directory) == "RUNNING"


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except Exception as err:  # handed to the test
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def test_local_workers_take_the_gpus_in_turn(monkeypatch):
    monkeypatch.setattr(sweep.torch.cuda, "device_count", lambda: 2)
    assert sweep.local_gpus(2) == [0, 1, 0, 1]
    assert sweep.local_gpus(1) == [0, 1]
    monkeypatch.setattr(sweep.torch.cuda, "device_count", lambda: 0)
    assert sweep.local_gpus(3) == [None, None, None]


def test_local_submission_pins_gpus_and_shares_threads(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(sweep.torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(sweep.os, "cpu_count", lambda: 16)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    configs = load_spec(write_spec(tmp_path / "s.toml", seeds=[0, 1, 2])).configs()  # 6 runs
    executor = FakeExecutor()
    assignments = sweep.submit_local(executor, configs, (str(tmp_path), "", "auto", -1), runs_per_gpu=2)
    assert [runs for runs, _ in assignments] == [configs] * 4  # 4 workers, 2 per GPU, each offered every run
    (queue,) = {s["kwargs"]["queue"] for s in executor.submitted}  # from one queue
    assert Path(queue).parent == tmp_path / "_sweep" / "queue"
    assert [s["params"]["visible_gpus"] for s in executor.submitted] == [[0], [1], [0], [1]]
    assert {s["kwargs"]["threads"] for s in executor.submitted} == {4}  # 16 CPUs over 4 workers
    assert {s["omp"] for s in executor.submitted} == {"4"}  # set as each worker process starts
    assert "OMP_NUM_THREADS" not in os.environ  # and only then
    few = sweep.submit_local(FakeExecutor(), configs[:3], (str(tmp_path), "", "auto", -1), runs_per_gpu=2)
    assert len(few) == 3  # no more workers than runs


def test_slurm_groups_runs_per_gpu_into_jobs(tmp_path: Path):
    configs = load_spec(write_spec(tmp_path / "s.toml", seeds=[0, 1, 2])).configs()[:5]
    executor = FakeExecutor()
    groups = sweep.submitted(executor, configs, ("out", "", "auto", -1), "slurm", 2)
    assert [[c.run_id() for c in runs] for runs, _ in groups] == [
        [c.run_id() for c in configs[i : i + 2]] for i in (0, 2, 4)
    ]
    assert [s["kwargs"] for s in executor.submitted] == [{"pack": 2}, {"pack": 2}, {}]
    single = FakeExecutor()
    sweep.submitted(single, configs, ("out", "", "auto", -1), "slurm", 1)  # exactly as before packing
    assert [(len(s["runs"]), s["kwargs"]) for s in single.submitted] == [(1, {})] * 5


@pytest.mark.slow
def test_local_sweep_runs_two_at_once_with_their_share_of_threads(tmp_path: Path, capsys):
    spec = write_spec(tmp_path / "s.toml", methods=["ls"], seeds=[0, 1, 2, 3], extra=PACKED)
    out = tmp_path / "out"
    assert main([str(spec), "--cluster", "local", "--out", str(out)]) == 0
    assert "completed 4, failed 0" in capsys.readouterr().out
    workers = notes(out, load_spec(spec).configs())
    pids = sorted({w["pid"] for w in workers})
    assert len(pids) == 2 and all(w["pid"] != os.getpid() for w in workers)  # 2 processes from one queue
    summaries = [json.loads((out / c.run_id() / "summary.json").read_text()) for c in load_spec(spec).configs()]
    assert all(not s["resumed"] for s in summaries)  # each run trained once, by one worker
    jobs = json.loads((out / "_sweep" / "jobs.json").read_text())
    assert {len(entry["job_id"].split(", ")) for entry in jobs.values()} == {2}  # either worker could take it
    assert not any((out / "_sweep" / "queue").iterdir())  # the queue went with its workers
    assert {(w["torch_threads"], w["omp_num_threads"], w["dataloader_workers"]) for w in workers} == {
        (SHARE, str(SHARE), min(8, SHARE - 1))
    }

    def span(pid: int) -> tuple[float, float]:
        mine = [w for w in workers if w["pid"] == pid]
        return min(w["started"] for w in mine), max(w["ended"] for w in mine)

    (start0, end0), (start1, end1) = (span(p) for p in pids)
    assert start0 < end1 and start1 < end0, "the two workers' runs overlap in time"


@pytest.mark.slow
def test_a_failing_run_leaves_the_packed_runs_to_complete(tmp_path: Path, capsys):
    bad = '{"model.backbone" = "mlp"}'  # passes the spec check, fails when the model is built
    spec = write_spec(tmp_path / "s.toml", methods=["ls"], extra=f"variants = [{bad}, {{}}]\n{PACKED}")
    out = tmp_path / "out"
    assert main([str(spec), "--cluster", "local", "--out", str(out)]) == 1
    text = capsys.readouterr().out
    assert "completed 2, failed 2" in text and "backbone mlp expects feature vectors" in text
    states = {c.model.backbone: read_status(out / c.run_id()) for c in load_spec(spec).configs()}
    assert states[""] == "COMPLETED" and states["mlp"].startswith(
        "FAILED: ConfigError: model.backbone=mlp cannot run on multimnist-mini"
    )


@pytest.mark.slow
def test_a_killed_local_worker_leaves_the_other_running_and_is_resumed(tmp_path: Path, capsys):
    spec = write_spec(tmp_path / "s.toml", methods=["ls"], extra=PACKED, settings=LONG)
    out = tmp_path / "out"
    first, second = load_spec(spec).configs()
    thread, box = in_thread(lambda: main([str(spec), "--cluster", "local", "--out", str(out)]))
    wait_for(lambda: mid_run(out / first.run_id()), 300, "the first run's first checkpoint")
    victim = json.loads((out / first.run_id() / WORKER_FILE).read_text())["pid"]
    os.kill(victim, signal.SIGKILL)
    thread.join(600)
    assert box.get("value") == 1, box
    assert read_status(out / second.run_id()) == "COMPLETED"
    killed = read_status(out / first.run_id())
    assert killed.startswith("FAILED: its local worker") and "ended without a result (killed?" in killed
    capsys.readouterr()
    assert main(["status", str(spec), "--out", str(out)]) == 0
    assert "completed 1, failed 1" in capsys.readouterr().out

    assert main([str(spec), "--cluster", "local", "--out", str(out)]) == 0  # the sweep again: resumes it
    assert "1 of 2 runs already completed" in capsys.readouterr().out
    summary = json.loads((out / first.run_id() / "summary.json").read_text())
    assert read_status(out / first.run_id()) == "COMPLETED" and len(summary["resumed"]) == 1
    assert summary["resumed"][0]["from_step"] > 0 and summary["steps"] == 64


def test_status_sees_a_dead_local_worker_while_the_sweep_goes_on(tmp_path: Path):
    from bench.sweep.job import write_worker_note
    from bench.train.record import RunRecord

    (cfg,) = load_spec(write_spec(tmp_path / "s.toml", methods=["ls"], seeds=[0])).configs()
    RunRecord(tmp_path / cfg.run_id()).set_status("RUNNING")
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that surely is gone
    write_worker_note(tmp_path / cfg.run_id(), host=socket.gethostname(), pid=gone.pid, ended=None)
    state, detail = states.run_state(tmp_path, cfg)
    assert state == "failed" and f"worker process {gone.pid} is gone" in detail
    write_worker_note(tmp_path / cfg.run_id(), pid=os.getpid())
    assert states.run_state(tmp_path, cfg) == ("running", "RUNNING")  # its worker is alive here
    write_worker_note(tmp_path / cfg.run_id(), pid=gone.pid, host="elsewhere")  # another host: cannot tell
    assert states.run_state(tmp_path, cfg) == ("running", "RUNNING (or its job died: see the scheduler)")


def test_a_run_a_running_local_sweep_has_yet_to_take_is_pending_not_failed(tmp_path: Path, capsys):
    """After a stop, the sweep run again re-queues the run its killed worker left RUNNING: until a
    live worker of the new sweep takes it, status says pending (queued), not failed, and a second
    submission leaves it to the live sweep."""
    from bench.core import atomic
    from bench.sweep.job import write_worker_note
    from bench.sweep.queue import claim, new_queue
    from bench.train.record import RunRecord

    spec = write_spec(tmp_path / "s.toml", methods=["ls"], seeds=[0, 1])
    out = tmp_path / "out"
    left, fresh = load_spec(spec).configs()
    RunRecord(out / left.run_id()).set_status("RUNNING")
    gone = subprocess.Popen(["true"])
    gone.wait()
    write_worker_note(out / left.run_id(), host=socket.gethostname(), pid=gone.pid, ended=None)
    sleep = [sys.executable, "-c", "import time; time.sleep(120)"]
    worker = subprocess.Popen([*sleep, "submitit"])  # its command line names submitit, as a local worker's does
    stranger = subprocess.Popen(sleep)  # alive, but no worker (a reused pid)
    queue = new_queue(out)
    entry = {
        "job_id": f"{worker.pid}, {gone.pid}",
        "cluster": "local",
        "host": socket.gethostname(),
        "queue": str(queue),
    }
    jobs = {left.run_id(): entry, fresh.run_id(): entry}
    atomic.write_json(out / states.JOBS_FILE, jobs)
    try:
        waits = f"queued in the running local sweep (job {worker.pid})"
        assert states.run_state(out, left, waits=states.local_wait(jobs, left)) == ("pending", waits)
        assert states.run_state(out, fresh, waits=states.local_wait(jobs, fresh)) == ("pending", waits)
        assert main(["status", str(spec), "--out", str(out)]) == 0
        assert "pending 2, running 0, completed 0, failed 0" in capsys.readouterr().out
        assert main([str(spec), "--cluster", "local", "--out", str(out), "--dry-run"]) == 0
        assert "0 of 2 runs already completed in" in (printed := capsys.readouterr().out)
        assert "2 still queued or running; 0 to run" in printed
        for other in ({"host": "elsewhere"}, {"cluster": "slurm"}, {"job_id": str(stranger.pid)}, {"queue": ""}):
            assert states.local_wait({fresh.run_id(): {**entry, **other}}, fresh) == "", other

        assert claim(queue, left.run_id())  # a live worker takes it: its record speaks again
        assert states.local_wait(jobs, left) == ""
        assert states.run_state(out, left)[0] == "failed"  # its worker died before the new one started it
        write_worker_note(out / left.run_id(), pid=worker.pid)
        assert states.run_state(out, left, waits=waits)[0] == "running"  # a live worker runs it
    finally:
        for process in (worker, stranger):
            process.kill()
            process.wait()
    assert states.local_wait(jobs, fresh) == ""  # the sweep's workers are gone
    assert states.run_state(out, fresh) == ("pending", "")


@pytest.mark.slow
def test_packed_job_survives_a_failing_run_and_a_killed_worker(tmp_path: Path):
    """The SLURM packing path (one job, N worker processes) on CPU: a requeue note goes into every
    running run, a worker killed with SIGKILL is marked FAILED with why while the other completes,
    and running the job again (as a requeue does) resumes the killed run. Inside a SLURM job the same
    process does the same (the job's process, not srun, starts the workers: ``SweepJob._run_pack``);
    test_slurm.py runs a packed job through a real preemption."""
    bad = '{"model.backbone" = "mlp"}'
    spec = load_spec(write_spec(tmp_path / "s.toml", methods=["ls"], extra=f"variants = [{{}}, {bad}]", settings=LONG))
    good0, good1, bad0, _ = spec.configs()
    runs = [good0, good1, bad0]
    out = tmp_path / "out"
    job = SweepJob()
    thread, box = in_thread(lambda: job(runs, str(out), "", "cpu", -1, pack=3))
    wait_for(lambda: mid_run(out / good0.run_id()) and mid_run(out / good1.run_id()), 300, "both good runs")
    resubmission = job.checkpoint(runs, str(out), "", "cpu", -1, pack=3)
    assert pickle.loads(pickle.dumps(resubmission)).kwargs == {"pack": 3}
    for cfg in (good0, good1):
        assert json.loads((out / cfg.run_id() / REQUEUE_LOG).read_text().splitlines()[0])["signal"].startswith("USR2")
    victim = json.loads((out / good0.run_id() / WORKER_FILE).read_text())["pid"]
    os.kill(victim, signal.SIGKILL)
    thread.join(600)
    assert "2 of 3 runs failed" in str(box.get("error")), box
    assert read_status(out / good1.run_id()) == "COMPLETED"
    assert read_status(out / bad0.run_id()).startswith(
        "FAILED: ConfigError: model.backbone=mlp cannot run on multimnist-mini"
    )
    assert read_status(out / good0.run_id()) == f"FAILED: its worker process {victim} was killed by SIGKILL; " + (
        "run the sweep again to resume it"
    )
    workers = notes(out, [good0, good1])
    assert len({w["pid"] for w in workers}) == 2 and {w["torch_threads"] for w in workers} == {
        max(1, (os.cpu_count() or 1) // 3)
    }

    with pytest.raises(RuntimeError, match="1 of 2 runs failed"):  # again, as a requeued job would
        SweepJob()([good0, bad0], str(out), "", "cpu", -1, pack=2)
    summary = json.loads((out / good0.run_id() / "summary.json").read_text())
    assert read_status(out / good0.run_id()) == "COMPLETED" and len(summary["resumed"]) == 1


@pytest.mark.gpu
@pytest.mark.slow
def test_local_packed_sweep_shares_one_gpu(tmp_path: Path, monkeypatch, capsys):
    """On a GPU machine: runs_per_gpu = 2 puts two workers on GPU 0, both training on it at once."""
    monkeypatch.setattr(sweep.torch.cuda, "device_count", lambda: 1)  # both workers on GPU 0
    spec = write_spec(tmp_path / "s.toml", methods=["ls"], extra=PACKED, settings=LONG)
    out = tmp_path / "out"
    assert main([str(spec), "--cluster", "local", "--out", str(out)]) == 0
    assert "completed 2, failed 0" in capsys.readouterr().out
    configs = load_spec(spec).configs()
    workers = notes(out, configs)
    assert len({w["pid"] for w in workers}) == 2 and {w["cuda_visible_devices"] for w in workers} == {"0"}
    assert {json.loads((out / c.run_id() / "summary.json").read_text())["device"] for c in configs} == {"cuda"}
    (start0, end0), (start1, end1) = ((w["started"], w["ended"]) for w in workers)
    assert start0 < end1 and start1 < end0, "the two runs overlap in time"


def test_slurm_times_and_which_requeue_path_a_signal_takes():
    from bench.sweep.job import requeue_cause, slurm_seconds

    assert [slurm_seconds(t) for t in ("0:25", "1:00:00", "2-03:04:05", "UNLIMITED", "", "1:x")] == [
        25,
        3600,
        2 * 86400 + 3 * 3600 + 4 * 60 + 5,
        None,
        None,
        None,
    ]
    # submitit: a time-out once the job has run min(0.8 limit, limit - 10 min)
    assert requeue_cause(50, 60) == "time limit" and requeue_cause(47, 60) == "time limit"
    assert requeue_cause(47, 3600) == "preemption" and requeue_cause(3000, 3600) == "time limit"
    assert requeue_cause(19 * 3600, 24 * 3600) == "preemption" and requeue_cause(0.8 * 86400, 86400) == "time limit"
