"""The callable a sweep submits: it runs its runs one after another, each resumed from its own last
checkpoint, so a requeued job (preemption, time-out, ``scontrol requeue``) loses at most the steps
since that checkpoint and never repeats a finished run.

It is a ``submitit.helpers.Checkpointable``: on SLURM's signal (preemption or the time limit
approaching) submitit calls :meth:`SweepJob.checkpoint`, which notes the request in the running
runs' directories and resubmits the same call; the resubmitted job resumes from the checkpoints.

With ``pack = N`` (``[cluster] runs_per_gpu`` on SLURM) the job starts N worker processes on its GPU,
each with its share of the job's CPUs and its share of the runs. The job's own process only waits
for them, so it is always there to take SLURM's signal and requeue the job for all N runs, and a run
that crashes, or a worker killed outright, leaves the other workers running (see :meth:`_run_pack`).

Before each run the worker writes ``worker.json`` into the run's directory: host, pid, torch
threads, DataLoader workers, visible GPUs and the start and end times, so ``status`` can tell a
RUNNING run whose worker process is gone, and one can see which runs shared a GPU.

The job's log (SLURM's, or a local worker's) gets a line when each run starts, the run's line per
evaluation (:mod:`bench.train.runner`), and one when it ends: its test hypervolume and run directory, or
why it failed. Every line after the first starts with the run id.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import submitit
import torch

from bench.core import atomic
from bench.core.errors import RunFailed
from bench.sweep.queue import claim, process_alive
from bench.train.config import RunConfig
from bench.train.lock import RunLocked
from bench.train.record import RunRecord, read_status
from bench.train.runner import run_experiment, summary_hypervolume

REQUEUE_LOG = "requeues.jsonl"
WORKER_FILE = "worker.json"
POLL_S = 0.5  # seconds between looks at a packed job's worker processes
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables that cap the threads of a worker (and of the processes it starts)."""


def use_cpus(cpus: int, workers: int) -> int:
    """Give this process ``cpus`` torch threads (0: leave them as they are); returns the DataLoader
    workers to use: ``workers``, or when it is -1, one per CPU but one, at most 8."""
    if not cpus:
        return workers
    torch.set_num_threads(cpus)
    for name in THREAD_VARS:
        os.environ[name] = str(cpus)
    return min(8, cpus - 1) if workers < 0 else workers


@contextlib.contextmanager
def thread_env(threads: int) -> Iterator[None]:
    """Set the thread variables to ``threads`` (0: leave them) while processes are started, so a
    worker's OpenMP is capped from its first import; restores them after."""
    saved = {name: os.environ.get(name) for name in THREAD_VARS}
    if threads:
        os.environ.update({name: str(threads) for name in THREAD_VARS})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def write_worker_note(directory: Path, **fields: Any) -> None:
    """Merge ``fields`` into the run's ``worker.json``."""
    path = directory / WORKER_FILE
    note = atomic.read_json(path) if path.is_file() else {}
    atomic.write_json(path, {**note, **fields})


def start_note(workers: int) -> dict[str, Any]:
    """Who runs the run now: host, pid, threads, DataLoader workers, GPUs, start time."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "dataloader_workers": workers,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "started": time.time(),
        "ended": None,
    }


def worker_pid(directory: Path) -> int | None:
    """The pid of a RUNNING run's worker process on this host, from its ``worker.json``; None when
    it cannot be told (another host, no note, or the worker ended the run)."""
    try:
        note = atomic.read_json(directory / WORKER_FILE)
    except (OSError, ValueError):
        return None
    if note.get("ended") is not None or note.get("host") != socket.gethostname() or not note.get("pid"):
        return None
    return int(note["pid"])


def worker_alive(directory: Path) -> bool | None:
    """Whether a RUNNING run's worker process, on this host, is alive: False when it has exited
    without ending the run, None when that cannot be told (:func:`worker_pid`)."""
    pid = worker_pid(directory)
    return None if pid is None else process_alive(pid)


def worker_gone(directory: Path) -> str:
    """Why a RUNNING run's worker is known to be dead (:func:`worker_alive` False); '' otherwise."""
    pid = worker_pid(directory)
    if pid is None or process_alive(pid):
        return ""
    return f"RUNNING in its record, but its worker process {pid} is gone (killed?); run the sweep again"


def mark_lost(directory: Path, reason: str) -> bool:
    """Record FAILED with ``reason`` for a run left RUNNING by a worker that died; True if marked."""
    if read_status(directory) != "RUNNING":
        return False
    RunRecord(directory).set_status(f"FAILED: {reason}; run the sweep again to resume it")
    return True


class SweepJob(submitit.helpers.Checkpointable):
    """Run ``configs`` under ``out`` (one after another, or ``pack`` at a time in worker processes);
    returns each run's final status line."""

    def __init__(self) -> None:
        self.current: Path | None = None
        self.requeuing = False
        self.children: list[tuple[subprocess.Popen, list[RunConfig]]] = []
        self.out: Path | None = None
        self.log = ""

    def __call__(
        self,
        configs: list[RunConfig],
        out: str,
        data_root: str,
        device: str,
        workers: int,
        threads: int = 0,
        pack: int = 1,
        log: str = "",
        queue: str = "",
    ) -> list[dict[str, Any]]:
        """``threads``: CPU threads for this job (0: ``SLURM_CPUS_PER_TASK`` if set, else torch's
        default); with ``pack`` > 1 they are shared among the ``pack`` worker processes. ``log``:
        a run's extra log sink (``tensorboard``; see :func:`bench.train.runner.run_experiment`).
        ``queue``: a folder of claims shared with other workers given the same runs
        (:mod:`bench.sweep.queue`); this job then runs only the runs it claims first."""
        cpus = threads or int(os.environ.get("SLURM_CPUS_PER_TASK", "0"))
        self.requeuing, self.out, self.log = False, Path(out), log
        if pack > 1:
            return self._run_pack(configs, out, data_root, device, workers, cpus, pack)
        results, failures = self.run_each(configs, out, data_root, device, use_cpus(cpus, workers), queue)
        if failures:
            raise RuntimeError(f"{len(failures)} of {len(configs)} runs failed: " + "; ".join(failures))
        return results

    def run_each(
        self, configs: list[RunConfig], out: str, data_root: str, device: str, workers: int, queue: str = ""
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Run ``configs`` in order (with a ``queue``, those no other worker claimed first); a failing
        run is recorded as FAILED and the next one runs. Returns the results and one line per failure."""
        results, failures = [], []
        for cfg in configs:
            if queue and not claim(Path(queue), cfg.run_id()):
                continue  # another worker has it
            self.current = Path(out) / cfg.run_id()
            try:
                results.append(self._run_one(cfg, self.current, data_root, device, workers))
            except RunLocked as err:  # another live process trains it: leave it to that one
                print(f"skipped: {err}", flush=True)
            except Exception as err:  # its record says FAILED and why; the job's other runs go on
                if self.requeuing:  # raised by submitit's requeue inside its signal handler: let it end the job
                    raise
                reason = str(err) if isinstance(err, RunFailed) else f"{type(err).__name__}: {err}"
                # a run failing before its record exists (missing data, a bad method setting) gets one too
                RunRecord(self.current).set_status(f"FAILED: {reason}")
                failures.append(f"{cfg.run_id()}: {reason}")
                print(f"{cfg.run_id()}: FAILED: {reason}", flush=True)
        self.current = None
        return results, failures

    def _run_one(self, cfg: RunConfig, directory: Path, data_root: str, device: str, workers: int) -> dict[str, Any]:
        noted = read_status(directory) != "COMPLETED"
        print(f"run {cfg.run_id()} ({cfg.method} on {cfg.dataset}, seed {cfg.seed}) in {directory}", flush=True)
        if noted:
            directory.mkdir(parents=True, exist_ok=True)
            write_worker_note(directory, **start_note(workers))
        result = run_experiment(
            cfg,
            directory.parent,
            Path(data_root) if data_root else None,
            device,
            show_progress=False,
            workers=None if workers < 0 else workers,
            resume=True,
            log=self.log,
        )
        if noted:
            write_worker_note(directory, ended=time.time())
        print(end_line(cfg.run_id(), result.summary, result.skipped, directory), flush=True)
        return {"run_id": cfg.run_id(), "skipped": result.skipped, "steps": result.summary["steps"]}

    def _run_pack(
        self, configs: list[RunConfig], out: str, data_root: str, device: str, workers: int, cpus: int, pack: int
    ) -> list[dict[str, Any]]:
        """Run ``configs`` in ``pack`` worker processes at once, each with ``cpus // pack`` threads.

        Why processes started here rather than ``pack`` SLURM tasks (submitit ``tasks_per_node``):
        submitit lets only the task of global rank 0 checkpoint and requeue, so once that task's run
        had finished a preemption would requeue nobody and lose the other runs; and srun may end a
        whole step when one task fails (``KillOnBadExit``, a task killed by a signal). Here this
        process stays until every worker is done, takes the signal, notes it in every running run and
        requeues the job; the workers ignore SIGTERM and USR2 and are killed with the job, and each
        run resumes from its own checkpoint."""
        share = max(1, (cpus or os.cpu_count() or 1) // pack)
        env = {**os.environ, **{name: str(share) for name in THREAD_VARS}}
        for k in range(pack):
            if chunk := configs[k::pack]:
                job = (chunk, out, data_root, device, workers, share, self.log)
                self.children.append((start_worker(job, env), chunk))
        try:
            failures = self._wait_children(Path(out))
        finally:  # on a requeue (SystemExit from submitit's handler) or any error, no worker outlives us
            for child, _ in self.children:
                if child.poll() is None:
                    child.kill()
                child.wait()
            self.children = []
        if failures:
            raise RuntimeError(f"{len(failures)} of {len(configs)} runs failed: " + "; ".join(failures))
        return [{"run_id": cfg.run_id(), "status": read_status(Path(out) / cfg.run_id())} for cfg in configs]

    def _wait_children(self, out: Path) -> list[str]:
        """Wait for every worker; one that dies leaves its RUNNING run marked FAILED at once, with
        how it died. Returns one line per run that did not complete."""
        waiting, failures = list(self.children), []
        while waiting:
            time.sleep(POLL_S)
            for child, chunk in [w for w in waiting if w[0].poll() is not None]:
                waiting.remove((child, chunk))
                code = child.returncode
                how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
                for cfg in chunk:
                    mark_lost(out / cfg.run_id(), f"its worker process {child.pid} {how}")
                    state = read_status(out / cfg.run_id())
                    if state != "COMPLETED":
                        failures.append(f"{cfg.run_id()}: {state or 'never started (its worker died)'}")
        return failures

    def running_dirs(self) -> list[Path]:
        """The directories of the runs in progress in this job (for the requeue note)."""
        if self.current is not None:
            return [self.current]
        if self.out is None:
            return []
        dirs = [self.out / cfg.run_id() for child, chunk in self.children if child.poll() is None for cfg in chunk]
        return [d for d in dirs if read_status(d) == "RUNNING"]

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on SLURM's signal: note it in the running runs, resubmit the same call."""
        self.requeuing = True
        job_id = os.environ.get("SLURM_JOB_ID")
        clock = slurm_clock(job_id) if job_id else None
        cause = requeue_cause(*clock) if clock else "preemption or time limit"
        note = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "signal": f"USR2 ({cause}); requeued by submitit",
            "cause": cause,
            "slurm_job_id": job_id,
            "slurm_seconds_run": clock[0] if clock else None,
            "slurm_time_limit_s": clock[1] if clock else None,
        }
        for directory in self.running_dirs():
            if directory.is_dir():
                with open(directory / REQUEUE_LOG, "a") as f:
                    f.write(json.dumps(note) + "\n")
        # a fresh callable: this one holds worker processes, which cannot be pickled
        return submitit.helpers.DelayedSubmission(type(self)(), *args, **kwargs)


def slurm_seconds(text: str) -> float | None:
    """SLURM's ``[D-][HH:]MM:SS`` as seconds (None for ``UNLIMITED`` or anything else)."""
    days, _, clock = text.strip().rpartition("-")
    parts = clock.split(":")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts) or (days and not days.isdigit()):
        return None
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return seconds + 86400 * int(days or 0)


def slurm_clock(job_id: str) -> tuple[float, float] | None:
    """(seconds this allocation has run, the job's time limit in seconds) from ``squeue``, or None."""
    try:
        command = ["squeue", "-h", "-j", job_id, "-o", "%M %l"]
        shown = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = shown.stdout.split()
    if shown.returncode != 0 or len(fields) != 2:
        return None
    used, limit = slurm_seconds(fields[0]), slurm_seconds(fields[1])
    return (used, limit) if used is not None and limit is not None else None


def requeue_cause(seconds_run: float, time_limit_s: float) -> str:
    """Which of submitit's two paths a USR2 takes: a time-out once the job has run
    min(0.8 limit, limit - 10 min) (``SignalHandler.has_timed_out``), else a preemption."""
    return "time limit" if seconds_run >= min(0.8 * time_limit_s, time_limit_s - 600) else "preemption"


def start_worker(job: tuple, env: dict[str, str]) -> subprocess.Popen:
    """Start ``python -m bench.sweep.job`` on ``job`` (the arguments of :func:`pack_worker`), sent
    pickled on its stdin: a fresh interpreter that imports nothing of the caller's ``__main__``."""
    child = subprocess.Popen([sys.executable, "-m", "bench.sweep.job"], stdin=subprocess.PIPE, env=env)
    assert child.stdin is not None
    child.stdin.write(pickle.dumps(job))
    child.stdin.close()
    return child


def end_line(run_id: str, summary: dict[str, Any], skipped: bool, directory: Path) -> str:
    """The log's last line of a run: its test hypervolume (:func:`bench.train.runner.summary_hypervolume`)
    and where its record is."""
    done = "already completed (nothing trained)" if skipped else f"completed in {summary['wall_seconds']:.1f} s"
    return f"{run_id}: {done}, {summary['steps']} steps, test_hv {summary_hypervolume(summary):.6f}, record {directory}"


def pack_worker(
    configs: list[RunConfig], out: str, data_root: str, device: str, workers: int, threads: int, log: str = ""
) -> None:
    """One worker process of a packed job: its runs in order, on ``threads`` CPU threads. SLURM's
    SIGTERM and USR2 are for the job's process, which requeues; this one ignores them."""
    for sig in (signal.SIGTERM, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    job = SweepJob()
    job.log = log
    _, failures = job.run_each(configs, out, data_root, device, use_cpus(threads, workers))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    pack_worker(*pickle.load(sys.stdin.buffer))
