"""The callable a sweep submits: it runs its runs one after another, each resumed from its own last
checkpoint, so a requeued job (preemption, time-out, ``scontrol requeue``) loses at most the steps
since that checkpoint and never repeats a finished run.

It is a ``submitit.helpers.Checkpointable``: on SLURM's signal (preemption or the time limit
approaching) submitit calls :meth:`SweepJob.checkpoint`, which notes the request in the current
run's directory and resubmits the same call; the resubmitted job resumes from the checkpoints.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import submitit
import torch

from bench.config import RunConfig
from bench.runner import run_experiment

REQUEUE_LOG = "requeues.jsonl"


class SweepJob(submitit.helpers.Checkpointable):
    """Run ``configs`` in order under ``out``; returns each run's final status line."""

    def __init__(self) -> None:
        self.current: Path | None = None
        self.requeuing = False

    def __call__(
        self, configs: list[RunConfig], out: str, data_root: str, device: str, workers: int
    ) -> list[dict[str, Any]]:
        cpus = int(os.environ.get("SLURM_CPUS_PER_TASK", "0"))
        if cpus:  # use the CPUs the job was given, not the node's
            torch.set_num_threads(cpus)
            workers = min(8, cpus - 1) if workers < 0 else workers
        self.requeuing = False
        results, failures = [], []
        for cfg in configs:
            self.current = Path(out) / cfg.run_id()
            try:
                result = run_experiment(
                    cfg,
                    Path(out),
                    Path(data_root) if data_root else None,
                    device,
                    show_progress=False,
                    workers=None if workers < 0 else workers,
                    resume=True,
                )
            except Exception as err:  # its record says FAILED and why; the job's other runs go on
                if self.requeuing:  # raised by submitit's requeue inside its signal handler: let it end the job
                    raise
                failures.append(f"{cfg.run_id()}: {type(err).__name__}: {err}")
                continue
            results.append({"run_id": cfg.run_id(), "skipped": result.skipped, "steps": result.summary["steps"]})
        self.current = None
        if failures:
            raise RuntimeError(f"{len(failures)} of {len(configs)} runs failed: " + "; ".join(failures))
        return results

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on SLURM's signal: note it in the running run, resubmit the same call."""
        self.requeuing = True
        if self.current is not None and self.current.is_dir():
            note = {
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "signal": "USR2 (preemption or time limit); requeued by submitit",
                "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            }
            with open(self.current / REQUEUE_LOG, "a") as f:
                f.write(json.dumps(note) + "\n")
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)
