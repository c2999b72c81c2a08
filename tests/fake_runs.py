"""Tiny run records in the exact on-disk format of :mod:`bench.train.runner`, for the report's tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.train.config import resolve
from bench.train.record import RunRecord


def accuracy_front(points: list[tuple[float, ...]], tasks: tuple[str, ...]) -> list[dict[str, Any]]:
    """A front whose k-th entry has the given accuracies (one per task), rays from e_last to e_first."""
    front = []
    n = len(points)
    for k, accuracies in enumerate(points):
        ray = [0.0] * len(tasks)
        if n == 1:
            ray = [1.0 / len(tasks)] * len(tasks)
        else:
            ray[0], ray[-1] = k / (n - 1), 1 - k / (n - 1)
        front.append(
            {
                "ray": ray,
                "metrics": {t: {"accuracy": a, "loss": 1.0 - a} for t, a in zip(tasks, accuracies, strict=True)},
            }
        )
    return front


def write_run(
    root: Path,
    method: str,
    seed: int,
    points: list[tuple[float, ...]],
    dataset: str = "multimnist-mini",
    tasks: tuple[str, ...] = ("top-left", "bottom-right"),
    status: str = "COMPLETED",
    parameters: dict[str, int] | None = None,
    curve: list[float] | None = None,
    epochs: int = 2,
    front: list[dict[str, Any]] | None = None,
    settings: tuple[str, ...] = (),
    train_ray_histogram: dict[str, Any] | None = None,
) -> Path:
    """One run directory like :func:`bench.train.runner.run_experiment` writes. ``curve``: the validation
    front at evaluation e is the test front with each accuracy scaled by ``curve[e]``. ``front``
    replaces the accuracy front made from ``points`` (for datasets with other metrics). ``settings``:
    more ``key=value`` assignments (a variant of the method). ``train_ray_histogram``: the summary's
    ``{"bins": B, "counts": {task: [B counts]}}`` (none when not given)."""
    cfg = resolve(method, dataset, seed=seed, assignments=[f"train.epochs={epochs}", *settings])
    record = RunRecord(root / cfg.run_id())
    record.write_config(cfg.to_dict(), "cpu")
    front = front or accuracy_front(points, tasks)
    for e, scale in enumerate(curve or [1.0]):
        rows = [
            {"ray_index": k, "ray": entry["ray"], "objective": t, "metric": m, "value": v * scale}
            for k, entry in enumerate(front)
            for t, metrics in entry["metrics"].items()
            for m, v in metrics.items()
        ]
        record.add_metrics(
            rows, step=10 * (e + 1), epoch=e + 1, split="val", time=3.0 * (e + 1), train_time=2.0 * (e + 1)
        )
    if status != "COMPLETED":
        record.set_status(status)
        return record.directory
    params = parameters or {"total": 100, "trainable": 100, "inference": 100, "single_model": 100}
    record.write_summary(
        {
            "run_id": record.directory.name,
            "method": method,
            "dataset": dataset,
            "seed": seed,
            "kind": "front" if len(front) > 1 else "point",
            "front": front,
            "hypervolume": -1.0,  # deliberately wrong: the report must recompute it
            "parameters": params,
            "training_state_bytes": {"parameters": 400, "gradients": 400, "optimizer_state": 808, "total": 1608},
            "steps": 10 * len(curve or [1.0]),
            "train_seconds": 2.0 * len(curve or [1.0]),
            "seconds_per_step": 0.2,
            "eval_seconds": 1.0,
            "wall_seconds": 3.0 * len(curve or [1.0]),
            "peak_memory_bytes": {"train": 2**30, "eval": 2**30, "kind": "process_peak_rss"},
            "device": "cpu",
        }
        | ({"train_ray_histogram": train_ray_histogram} if train_ray_histogram is not None else {})
    )
    record.set_status(status)
    return record.directory


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
