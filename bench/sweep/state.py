"""The state of a sweep's runs, read from each run's own record (``status``, ``config.json``,
``worker.json``, ``metrics.jsonl``, ``summary.json``) and from ``<out>/_sweep/jobs.json``, which
says where each run was submitted: pending, running (epoch and step), completed (test hypervolume)
or failed (the reason), with SLURM's queue (``squeue``) or a running local sweep's queue
(:mod:`bench.sweep.queue`) deciding whether a run not yet started, or left by a dead worker, still
waits. ``python -m bench.sweep status`` prints it for a spec's runs or any folder of runs.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.core import atomic
from bench.sweep.job import worker_alive, worker_gone
from bench.sweep.queue import waiting
from bench.sweep.spec import SweepSpec
from bench.train.config import RunConfig
from bench.train.record import ATTEMPTS, completed_summary, last_metric_row, read_status
from bench.train.runner import summary_hypervolume

JOBS_FILE = "_sweep/jobs.json"


def active_slurm_jobs() -> set[str] | None:
    """Ids of the SLURM jobs (array tasks expanded) still queued or running; None without squeue."""
    if shutil.which("squeue") is None:
        return None
    try:
        probe = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return set(probe.stdout.split()) if probe.returncode == 0 else None


def run_state(
    out: Path, cfg: RunConfig, job: str | None = None, active: set[str] | None = None, waits: str = ""
) -> tuple[str, str]:
    """:func:`directory_state` of the run's directory under ``out``."""
    return directory_state(out / cfg.run_id(), job, active, waits)


def directory_state(
    directory: Path, job: str | None = None, active: set[str] | None = None, waits: str = ""
) -> tuple[str, str]:
    """(state, detail) from the run's record: pending, running, completed or failed (with reason).
    With the run's SLURM ``job`` and the ``active`` job ids, a RUNNING record whose job has left
    the queue is reported as failed (killed without a word), and a queued run as pending; without
    a SLURM job, a RUNNING record whose worker process on this host is gone is failed too. ``waits``
    (:func:`local_wait`) says that a running local sweep has yet to take the run: it is pending
    whatever an earlier attempt left, unless a live worker is running it now."""
    status = read_status(directory)
    queued = job is not None and active is not None and job in active
    if status == "COMPLETED":
        return "completed", ""
    gone = worker_gone(directory) if status == "RUNNING" and job is None else ""
    if waits and (status != "RUNNING" or gone):
        return "pending", waits
    if status is None or (status.startswith("FAILED") and queued):
        return "pending", f"queued as job {job}" if queued else ""
    if status == "RUNNING":
        if gone:
            return "failed", gone
        if job is not None and active is not None and not queued:
            return "failed", f"RUNNING in its record, but job {job} has left the queue (killed? see its log)"
        known = active is not None or (job is None and worker_alive(directory))
        return "running", "RUNNING" if known else "RUNNING (or its job died: see the scheduler)"
    return "failed", status


def read_jobs(out: Path) -> dict[str, Any]:
    path = out / JOBS_FILE
    return atomic.read_json(path) if path.is_file() else {}


def describe(cfg: RunConfig) -> str:
    return f"{cfg.method} on {cfg.dataset}, seed {cfg.seed}"


def slurm_job(jobs: dict[str, Any], cfg: RunConfig | str) -> str | None:
    """The SLURM job of a run (its config or run id) in ``jobs`` (:func:`read_jobs`), or None."""
    entry = jobs.get(cfg if isinstance(cfg, str) else cfg.run_id(), {})
    return entry.get("job_id") if entry.get("cluster") == "slurm" else None


def local_wait(jobs: dict[str, Any], cfg: RunConfig | str) -> str:
    """:func:`bench.sweep.queue.waiting` for a run (its config or run id) in ``jobs``."""
    run_id = cfg if isinstance(cfg, str) else cfg.run_id()
    return waiting(jobs.get(run_id, {}), run_id)


def queue_for(jobs: dict[str, Any], configs: list[RunConfig]) -> set[str] | None:
    """Ask squeue only when some run was submitted to SLURM (squeue takes ~10 s to fail without a
    controller)."""
    return active_slurm_jobs() if any(slurm_job(jobs, cfg) for cfg in configs) else None


def progress_detail(directory: Path, epochs: Any) -> str:
    """Where a running run is: the epoch and step of the last row of its ``metrics.jsonl`` (written at
    each evaluation and checkpoint) and how long ago that was."""
    row = last_metric_row(directory)
    if row is None:
        return "no step recorded yet"
    try:
        age = f" (recorded {time.time() - (directory / 'metrics.jsonl').stat().st_mtime:.0f} s ago)"
    except OSError:
        age = ""
    return f"epoch {row.get('epoch', '?')}/{epochs}, step {row['step']}{age}"


def completed_detail(directory: Path) -> str:
    """A completed run's test hypervolume (:func:`bench.train.runner.summary_hypervolume`)."""
    try:
        summary = completed_summary(directory)
        return f"test HV {summary_hypervolume(summary or {}):.6f}"
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"test HV unavailable ({type(err).__name__}: {err})"


def state_detail(directory: Path, state: str, detail: str, epochs: Any) -> str:
    """``detail`` of :func:`directory_state`, with a running run's progress or a completed run's HV."""
    if state == "running":
        return f"{detail}, {progress_detail(directory, epochs)}"
    if state == "completed":
        return completed_detail(directory)
    return detail


def print_states(rows: list[tuple[Path, str, str, str, str]], listed: tuple[str, ...]) -> None:
    """The counts, then a section per state of ``listed``: one line per run (directory, description,
    state, detail, job: empty when unknown)."""
    counts = Counter(state for _, _, state, _, _ in rows)
    print("  " + ", ".join(f"{name} {counts.get(name, 0)}" for name in ("pending", "running", "completed", "failed")))
    for wanted in listed:
        lines = [(d, what, detail, job) for d, what, state, detail, job in rows if state == wanted]
        if lines:
            print(f"{wanted}:")
        for directory, what, detail, job in lines:
            print(f"  {directory.name} ({what}{f'; job {job}' if job else ''})" + (f": {detail}" if detail else ""))


def status(spec: SweepSpec, out: Path) -> int:
    configs = spec.configs()
    jobs = read_jobs(out)
    active = queue_for(jobs, configs)
    rows = []
    for cfg in configs:
        directory = out / cfg.run_id()
        state, detail = directory_state(directory, slurm_job(jobs, cfg), active, local_wait(jobs, cfg))
        job = jobs.get(cfg.run_id(), {}).get("job_id", "not submitted by this sweep")
        rows.append((directory, describe(cfg), state, state_detail(directory, state, detail, cfg.train.epochs), job))
    print(f"sweep {spec.name}: {len(configs)} runs in {out}")
    print_states(rows, ("failed", "running", "completed"))
    return 0


def run_directories(folder: Path) -> list[Path]:
    """Every run directory (a folder with a ``config.json``) under ``folder``, at any depth; earlier
    attempts kept in ``<run>/attempts/`` are not runs of their own."""
    found = [p.parent for p in folder.rglob("config.json")]
    return sorted(d for d in found if not (d.parent.name == ATTEMPTS and d.name.isdigit()))


def recorded_run(directory: Path) -> tuple[str, Any]:
    """A run directory's description and epochs, from its ``config.json`` ('?' where unreadable)."""
    try:
        config = atomic.read_json(directory / "config.json")["config"]
        return f"{config['method']} on {config['dataset']}, seed {config['seed']}", config["train"]["epochs"]
    except (OSError, ValueError, KeyError, TypeError):
        return "config.json unreadable", "?"


def folder_status(folder: Path) -> int:
    """``status`` of every run directory under ``folder`` (whatever made them)."""
    jobs = read_jobs(folder)
    directories = run_directories(folder)
    slurm = [job for d in directories if (job := slurm_job(jobs, d.name))]
    active = active_slurm_jobs() if slurm else None
    rows = []
    for directory in directories:
        state, detail = directory_state(
            directory, slurm_job(jobs, directory.name), active, local_wait(jobs, directory.name)
        )
        what, epochs = recorded_run(directory)
        job = jobs.get(directory.name, {}).get("job_id", "")
        rows.append((directory, what, state, state_detail(directory, state, detail, epochs), job))
    print(f"{folder}: {len(directories)} runs")
    print_states(rows, ("failed", "running", "completed", "pending"))
    return 0
