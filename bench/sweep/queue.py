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

import os
import shutil
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


def remove_queue(queue: Path) -> None:
    """Remove a queue once every worker that shared it has ended."""
    shutil.rmtree(queue, ignore_errors=True)


def longest_first(todo: list[RunConfig], directories: Iterable[Path]) -> list[RunConfig]:
    """``todo`` with the runs of unknown length first (in grid order: any of them may be long), then
    the others by the mean wall time of their configuration's COMPLETED runs among ``directories``
    (other seeds, :func:`bench.sweep.plan.configuration_key`), longest first; ties keep grid order."""
    from bench.sweep.plan import completed_by_configuration, configuration_key  # the planner's records

    walls = {
        key: sum(s["wall_seconds"] for s in summaries) / len(summaries)
        for key, summaries in completed_by_configuration(directories).items()
    }
    known = [walls.get(configuration_key(cfg.to_dict())) for cfg in todo]
    order = sorted(range(len(todo)), key=lambda k: (known[k] is not None, -(known[k] or 0.0), k))
    return [todo[k] for k in order]
