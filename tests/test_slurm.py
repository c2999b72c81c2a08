"""A real sweep on a real SLURM cluster started on this machine (slurm/local_cluster.sh): submit
2 methods x 2 seeds, requeue one job mid-run with ``scontrol requeue``, and check that it resumed
from its checkpoint and ended exactly as a run never interrupted.

Skipped, with the reason, when slurmctld is not installed or we are not root; `.ci/run` installs
slurm-wlm and munge so CI runs them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import submitit
import torch

from bench.sweep.command import main, submit
from bench.sweep.job import REQUEUE_LOG, WORKER_FILE
from bench.sweep.spec import load_spec
from bench.sweep.state import active_slurm_jobs
from bench.train.config import resolve
from bench.train.record import read_status
from bench.train.runner import run_experiment

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[1] / "slurm" / "local_cluster.sh"
SETTINGS = {
    "train.epochs": 2,
    "data.train_limit": 4096,
    "data.eval_limit": 512,
    "train.batch_size": 64,
    "train.checkpoint_every": 10,
}


def cluster_is_up() -> bool:
    probe = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    return probe.returncode == 0 and "idle" in probe.stdout or "mix" in probe.stdout or "alloc" in probe.stdout


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[None]:
    if shutil.which("slurmctld") is None or shutil.which("sbatch") is None:
        pytest.skip("slurmctld is not installed: run `slurm/local_cluster.sh install` (root) for the real-SLURM tests")
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster runs its daemons as root; run the slurm tests as root")
    started = False
    if not cluster_is_up():
        subprocess.run([str(SCRIPT), "start"], check=True, timeout=60)
        started = True
    yield
    if started:
        subprocess.run([str(SCRIPT), "stop"], check=False, timeout=60)


def wait_for(condition, timeout: float, what: str, logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    tails = [f"--- {p}\n{p.read_text()[-2000:]}" for p in sorted(logs.rglob("*.err"))[-4:]]
    pytest.fail(f"timed out after {timeout} s waiting for {what}\n" + "\n".join(tails))


def write_spec(
    path: Path,
    methods: list[str],
    seeds: list[int],
    runs_per_gpu: int = 1,
    settings: dict[str, Any] = SETTINGS,
    cluster: dict[str, int] | None = None,
) -> Path:
    """A spec for the local cluster: one CPU per run (a packed job gets one per run it holds);
    ``cluster``: profile values that replace the defaults here (time_min = 60)."""
    profile = {"time_min": 60, **(cluster or {})}
    lines = ["[grid]", f"methods = {json.dumps(methods)}", 'datasets = ["multimnist-mini"]', f"seeds = {seeds}"]
    lines += ["[set]", *[f'"{k}" = {json.dumps(v)}' for k, v in settings.items()]]
    lines += ["[cluster]", 'partition = "debug"', "gpus_per_node = 0", f"cpus_per_task = {runs_per_gpu}", "mem_gb = 1"]
    lines += [f"runs_per_gpu = {runs_per_gpu}", *[f"{k} = {v}" for k, v in profile.items()]]
    lines += ["[run]", 'device = "cpu"', f'data_root = "{os.environ["PFLBENCH_DATA"]}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def uninterrupted_front(tmp_path: Path, settings: dict[str, Any] = SETTINGS) -> list:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the job, which uses its one CPU
    try:
        target = resolve("ls", "multimnist-mini", 0, overrides=settings)
        return run_experiment(target, tmp_path / "straight", device="cpu", show_progress=False).summary["front"]
    finally:
        torch.set_num_threads(threads)


def test_sweep_survives_a_requeue_and_matches_an_uninterrupted_run(slurm_cluster, tmp_path: Path, capsys):
    spec = write_spec(tmp_path / "sweep.toml", ["ls", "palora"], [0])  # one job each, on the node's two CPUs
    out = tmp_path / "out"
    assert main([str(spec), "--cluster", "slurm", "--out", str(out)]) == 0
    assert "submitted 2 runs as 2 slurm job(s)" in capsys.readouterr().out

    target = resolve("ls", "multimnist-mini", 0, overrides=SETTINGS)
    run_dir = out / target.run_id()
    job_id = json.loads((out / "_sweep" / "jobs.json").read_text())[target.run_id()]["job_id"]
    assert "_" in job_id  # an array task
    wait_for(
        lambda: (run_dir / "checkpoint.pt").is_file() and read_status(run_dir) == "RUNNING",
        180,
        "the first checkpoint of the ls run",
        out,
    )
    subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=30)

    runs = [out / resolve(m, "multimnist-mini", 0, overrides=SETTINGS).run_id() for m in ("ls", "palora")]
    wait_for(lambda: all(read_status(r) == "COMPLETED" for r in runs), 400, "both runs to complete", out)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["resumed"]) == 1, summary["resumed"]
    resumed = summary["resumed"][0]
    assert resumed["from_step"] > 0 and resumed["slurm_restart_count"] >= 1 and resumed["slurm_job_id"]

    assert summary["front"] == uninterrupted_front(tmp_path)
    assert summary["steps"] == 2 * 64

    assert main(["status", str(spec), "--out", str(out)]) == 0
    assert "pending 0, running 0, completed 2, failed 0" in capsys.readouterr().out


def preempt(job, logs: Path) -> None:
    """submitit's simulated preemption (``job._interrupt()``: SIGTERM, then USR2), with the order made
    certain: ``_interrupt`` sends both at once and slurmd may deliver USR2 first, so the SIGTERM then
    kills the ``scontrol requeue`` that submitit's USR2 handler is running, and the job is never
    requeued (seen on CI). Here USR2 goes only after the job has logged that it ignored the SIGTERM."""
    subprocess.run(["scancel", job.job_id, "--signal", "SIGTERM"], check=True, timeout=30)
    log = Path(job.paths.stderr)
    wait_for(lambda: log.is_file() and "Bypassing signal SIGTERM" in log.read_text(), 60, "the SIGTERM to arrive", logs)
    subprocess.run(["scancel", job.job_id, "--signal", "USR2"], check=True, timeout=30)


def both_mid_run(run_dirs: list[Path]) -> bool:
    return all((d / "checkpoint.pt").is_file() and read_status(d) == "RUNNING" for d in run_dirs)


def test_packed_job_runs_two_runs_at_once_and_requeues_both(slurm_cluster, tmp_path: Path):
    """runs_per_gpu = 2: one array task holds both runs, each in its own process with one of the
    task's two CPUs; submitit's simulated preemption (SIGTERM, then USR2) is noted in both as a
    preemption, the job requeues, and both resume from their checkpoints to the uninterrupted result.
    (A job of one run takes the same signal path: the time-limit test below.)"""
    spec = load_spec(write_spec(tmp_path / "packed.toml", ["ls"], [0, 1], runs_per_gpu=2))
    out = tmp_path / "out"
    (job,) = submit(spec, spec.configs(), out, "slurm")
    run_dirs = [out / cfg.run_id() for cfg in spec.configs()]
    wait_for(lambda: both_mid_run(run_dirs), 180, "a checkpoint of both packed runs", out)
    workers = [json.loads((d / WORKER_FILE).read_text()) for d in run_dirs]
    assert len({w["pid"] for w in workers}) == 2 and len({w["slurm_job_id"] for w in workers}) == 1
    assert {w["torch_threads"] for w in workers} == {1}
    preempt(job, out)
    wait_for(lambda: all(read_status(d) == "COMPLETED" for d in run_dirs), 400, "both runs to complete", out)
    for d in run_dirs:
        notes = [json.loads(line) for line in (d / REQUEUE_LOG).read_text().splitlines()]
        assert len(notes) == 1 and notes[0]["slurm_job_id"] and notes[0]["cause"] == "preemption", notes
        summary = json.loads((d / "summary.json").read_text())
        resumed = summary["resumed"]
        assert len(resumed) == 1 and resumed[0]["slurm_restart_count"] >= 1 and resumed[0]["from_step"] > 0
    front = json.loads((run_dirs[0] / "summary.json").read_text())["front"]
    assert front == uninterrupted_front(tmp_path)


LONG_SETTINGS = {**SETTINGS, "train.epochs": 3, "data.train_limit": 288 * 64}
"""864 steps of ls (11 models): a minute of training on a free CPU, more than the first allocation
leaves before its signal (at most 55 s after its start)."""
MAX_REQUEUES = 10


def job_record(job_id: str) -> dict[str, str]:
    """``scontrol show job`` as a dict (slurmctld keeps a finished job for MinJobAge, 300 s)."""
    shown = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30)
    return dict(field.split("=", 1) for field in shown.stdout.split() if "=" in field)


def signal_times(log: str) -> list[float]:
    """Seconds from each start of the job's process to the USR2 it caught, read from submitit's
    log (``submitit INFO (2026-01-01 12:00:00,000) - ...``), one per allocation that was signalled."""
    times, started = [], None
    for line in log.splitlines():
        stamp = re.match(r"submitit \w+ \((.+?)\) - ", line)
        if stamp is None:
            continue
        at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if "Starting with JobEnvironment" in line:
            started = at
        elif "Caught signal SIGUSR2" in line and started is not None:
            times.append(at - started)
    return times


def test_time_limit_signal_requeues_and_resumes(slurm_cluster, tmp_path: Path):
    """A job that really reaches its 1-minute time limit, signalled by SLURM alone (the test sends
    nothing): each signal is noted in the run, submitit requeues the job as timed out (counted
    against ``max_requeues``), and the run resumes from its checkpoint to the uninterrupted result.

    slurmctld checks time limits every 30 s and sends the signal at the first check that finds less
    than ``signal_delay_s`` + 30 s left; with 5 s that is 25 to 55 s into an allocation, and the limit
    itself is enforced 60 to 90 s in. A delay of 30 s or more would signal at the first check after
    the start, possibly before submitit has installed its handler (after importing torch), and the
    USR2 would kill the job."""
    cluster = {"time_min": 1, "signal_delay_s": 5, "max_requeues": MAX_REQUEUES}
    spec = load_spec(write_spec(tmp_path / "limit.toml", ["ls"], [0], settings=LONG_SETTINGS, cluster=cluster))
    out = tmp_path / "out"
    (job,) = submit(spec, spec.configs(), out, "slurm")
    run_dir = out / spec.configs()[0].run_id()
    expected = uninterrupted_front(tmp_path, LONG_SETTINGS)  # meanwhile, on the node's other CPU
    wait_for(lambda: read_status(run_dir) == "COMPLETED", 420, "the run to complete across its allocations", out)
    wait_for(lambda: job.job_id not in (active_slurm_jobs() or set()), 60, "the job to leave the queue", out)

    # SLURM's signal ended every allocation but the last, within the limit; submitit took each as a
    # time-out and requeued the job, each requeue spending one of max_requeues. (SLURM may still call
    # the job FAILED: a check that signals it just as its process exits kills it after its result.)
    record = job_record(job.job_id)
    restarts = int(record["Restarts"])
    assert record["TimeLimit"] == "00:01:00" and restarts >= 1, record
    log = Path(job.paths.stdout).read_text()
    times = signal_times(log)
    assert len(times) == restarts and all(0 < t < 60 for t in times), times
    assert log.count("this job is timed-out") == restarts and "Bypassing signal SIGTERM" not in log.split("USR2")[0]
    countdown = submitit.helpers.DelayedSubmission.load(job.paths.submitted_pickle)._timeout_countdown
    assert countdown == MAX_REQUEUES - restarts

    notes = [json.loads(line) for line in (run_dir / REQUEUE_LOG).read_text().splitlines()]
    summary = json.loads((run_dir / "summary.json").read_text())
    resumed = summary["resumed"]
    # one note per signal taken while the run ran (not one that came as the job ended), one resume per
    # allocation that followed (unless it too was signalled before its first checkpoint)
    assert 1 <= len(resumed) <= len(notes) and restarts in (len(notes), len(notes) + 1)
    assert all(note["slurm_job_id"] and note["cause"] == "time limit" for note in notes), notes
    counts = [r["slurm_restart_count"] for r in resumed]
    assert counts == sorted(set(counts)) and counts[0] >= 1 and counts[-1] <= restarts
    assert all(r["from_step"] > 0 for r in resumed)
    assert summary["steps"] == 3 * 288
    assert summary["front"] == expected
