"""Evaluation of a conditioned model over a grid of rays: every metric of every objective, per ray."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from bench.spec import Batch, ConditionedNet, DatasetSpec


@torch.no_grad()
def evaluate(cnet: ConditionedNet, loader: Iterable[Batch], rays: Tensor, spec: DatasetSpec) -> list[dict[str, Any]]:
    """Mean of each per-sample metric over the split, for each ray: one row per (ray, objective, metric)."""
    was_training = cnet.training
    cnet.eval()
    keys = [(o, m) for o in spec.objectives for m in o.metrics]
    sums: Tensor | None = None
    count = 0
    for x, targets in loader:
        batch_sums = []
        for ray in rays:
            out = cnet(x, ray)
            batch_sums.append(torch.stack([m.fn(out[o.name], targets[o.name]).double().sum() for o, m in keys]))
        stacked = torch.stack(batch_sums)
        sums = stacked if sums is None else sums + stacked
        count += x.shape[0]
    cnet.train(was_training)
    if sums is None:
        raise ValueError("evaluation split is empty")
    means = (sums / count).cpu().tolist()
    return [
        {
            "ray_index": r,
            "ray": [round(v, 6) for v in ray.tolist()],
            "objective": o.name,
            "metric": m.name,
            "value": means[r][j],
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
