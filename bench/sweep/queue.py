"""One queue for a local sweep's workers: each worker walks the same list of runs and takes the next
run no other worker has claimed, so a worker that finishes early takes more runs instead of idling
while another works through a fixed share of long ones.

A claim is an empty file ``<queue>/<run id>`` created with ``O_EXCL`` (atomic on a local disk); the
queue is a folder of its own per submission (``<out>/_sweep/queue/<time>-<random>``), so a sweep run
again starts with no claims and resumes what an earlier one left. Two sweeps on the same folder at
once still never train one run twice: the run's own lock (:mod:`bench.train.lock`) sees to that.

The list is ordered longest first (:func:`longest_first`), the classic rule for dealing jobs of
unequal length to parallel workers: the last runs to start are the short ones, so no worker is left
alone with a long run at the end while the others have nothing to do.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from bench.train.config import RunConfig

QUEUES = "_sweep/queue"


def new_queue(out: Path) -> Path:
    """A fresh, empty queue folder under ``out`` for one submission's workers."""
    (out / QUEUES).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%dT%H%M%S-"), dir=out / QUEUES))


def claim(queue: Path, run_id: str) -> bool:
    """Claim ``run_id`` in ``queue`` for this worker: True if no worker had claimed it."""
    try:
        os.close(os.open(queue / run_id, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    return True


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one under another user counts)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:  # alive, under another user
        pass
    return True


def local_worker_alive(pid: int) -> bool:
    """Whether ``pid`` on this host is a live submitit local worker. Its command line must name
    submitit, so a pid the system has reused since is not taken for it (where ``/proc`` is absent,
    any live process counts)."""
    if not process_alive(pid):
        return False
    if not Path("/proc/self").exists():
        return True
    try:
        return b"submitit" in Path(f"/proc/{pid}/cmdline").read_bytes()  # empty for a zombie
    except OSError:
        return False


def waiting(entry: dict, run_id: str) -> str:
    """Why ``run_id`` still waits in a running local sweep: its submission ``entry`` (``jobs.json``)
    names a queue on this host that no worker has taken the run from yet, and some of the entry's
    workers are alive. '' otherwise (taken, the workers gone, another host, or not local)."""
    if entry.get("cluster") != "local" or entry.get("host") != socket.gethostname() or not entry.get("queue"):
        return ""
    queue = Path(entry["queue"])
    if not queue.is_dir() or (queue / run_id).exists():
        return ""
    live = [job for job in str(entry.get("job_id", "")).split(", ") if job.isdigit() and local_worker_alive(int(job))]
    return f"queued in the running local sweep (job {', '.join(live)})" if live else ""


def remove_queue(queue: Path) -> None:
    """Remove a queue once every worker that shared it has ended."""
    shutil.rmtree(queue, ignore_errors=True)


STEP_COSTS = Path(__file__).resolve().parents[2] / "results" / "performance.csv"
"""Each method's median step time on one dataset (``python -m bench.benchmarks.performance``): the
relative cost of a run whose configuration has no completed record yet."""


def step_costs(path: Path = STEP_COSTS) -> dict[str, float]:
    """Method -> median step milliseconds from ``path`` ({} when it is absent or unreadable)."""
    try:
        with open(path, newline="") as f:
            return {row["method"]: float(row["step_ms_median"]) for row in csv.DictReader(f)}
    except (OSError, KeyError, ValueError):
        return {}


def longest_first(
    todo: list[RunConfig], directories: Iterable[Path], costs: dict[str, float] | None = None
) -> list[RunConfig]:
    """``todo`` ordered longest first (ties keep grid order). A run's length is the mean wall time of
    its configuration's COMPLETED runs among ``directories`` (other seeds,
    :func:`bench.sweep.plan.configuration_key`); else its method's step cost (``costs``, default
    :func:`step_costs`) times its epochs, in seconds at the ratio the completed runs show (or, with
    none, ranked among the other such runs ahead of those with records). Runs of methods with no
    step cost lead, in grid order: any of them may be long."""
    from bench.sweep.plan import completed_by_configuration, configuration_key  # the planner's records

    costs = step_costs() if costs is None else costs
    completed = completed_by_configuration(directories)
    walls = {key: sum(s["wall_seconds"] for s in summaries) / len(summaries) for key, summaries in completed.items()}
    ratios = []  # seconds per (step millisecond x epoch), from each configuration with records
    for configuration, wall in walls.items():
        identity = json.loads(configuration)
        method, epochs = identity.get("method"), identity.get("train", {}).get("epochs")
        if costs.get(method) and epochs:
            ratios.append(wall / (costs[method] * epochs))
    scale = sorted(ratios)[len(ratios) // 2] if ratios else None

    def order(k: int) -> tuple[int, float, int]:
        cfg = todo[k]
        if (wall := walls.get(configuration_key(cfg.to_dict()))) is not None:
            return (2, -wall, k)
        if cfg.method not in costs:
            return (0, 0.0, k)
        relative = costs[cfg.method] * cfg.train.epochs
        return (2, -relative * scale, k) if scale is not None else (1, -relative, k)

    return [todo[k] for k in sorted(range(len(todo)), key=order)]
