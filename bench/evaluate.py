"""Evaluation of a conditioned model over a grid of rays: every metric of every objective, per ray.

Each metric sums its per-batch statistics over the split (:meth:`bench.spec.Metric.statistics`),
so means, confusion-matrix mIoU and histogram medians are all exact over the whole split.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from bench.spec import Batch, ConditionedNet, DatasetSpec


@torch.no_grad()
def evaluate(cnet: ConditionedNet, loader: Iterable[Batch], rays: Tensor, spec: DatasetSpec) -> list[dict[str, Any]]:
    """Each metric of each objective over the split, for each ray: one row per (ray, objective, metric)."""
    was_training = cnet.training
    cnet.eval()
    keys = [(o, m) for o in spec.objectives for m in o.metrics]
    sums: list[list[Tensor]] | None = None
    for x, targets in loader:
        batch = []
        for ray in rays:
            out = cnet(x, ray)
            batch.append([m.statistics(out[o.name], targets[o.name]) for o, m in keys])
        sums = (
            batch
            if sums is None
            else [[a + b for a, b in zip(s, t, strict=True)] for s, t in zip(sums, batch, strict=True)]
        )
    cnet.train(was_training)
    if sums is None:
        raise ValueError("evaluation split is empty")
    values = [[m.value(stat.cpu()) for (_, m), stat in zip(keys, per_ray, strict=True)] for per_ray in sums]
    return [
        {
            "ray_index": r,
            "ray": [round(v, 6) for v in ray.tolist()],
            "objective": o.name,
            "metric": m.name,
            "value": values[r][j],
        }
        for r, ray in enumerate(rays.cpu())
        for j, (o, m) in enumerate(keys)
    ]


def front(rows: list[dict[str, Any]], spec: DatasetSpec) -> list[dict[str, Any]]:
    """Per ray: the ray and every objective's metrics, from evaluation rows."""
    by_ray: dict[int, dict[str, Any]] = {}
    for row in rows:
        entry = by_ray.setdefault(row["ray_index"], {"ray": row["ray"], "metrics": {}})
        entry["metrics"].setdefault(row["objective"], {})[row["metric"]] = row["value"]
    return [by_ray[i] for i in sorted(by_ray)]
