"""Hypervolume of a front against a dataset's fixed reference point, with pymoo (protocols.md).

Points are put in minimisation form first (accuracy -> error = 1 - accuracy); a point that does not
strictly dominate the reference point contributes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pymoo.indicators.hv import HV

from bench.spec import DatasetSpec


def hypervolume(points: np.ndarray | Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Hypervolume dominated by ``points`` (minimisation, shape [N, M]) and bounded by ``reference``."""
    pts = np.asarray(points, dtype=float)
    ref = np.asarray(reference, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != ref.shape[0]:
        raise ValueError(f"points must be [N, {ref.shape[0]}], got shape {pts.shape}")
    inside = pts[(pts < ref).all(axis=1)]
    if inside.shape[0] == 0:
        return 0.0
    return float(HV(ref_point=ref)(inside))


def minimization_points(front: list[dict[str, Any]], spec: DatasetSpec) -> np.ndarray:
    """[N, M] points from a front (see :func:`bench.evaluate.front`): the HV metric of each of the
    spec's hypervolume objectives, minimised."""
    rows = []
    for entry in front:
        row = []
        for objective in spec.hypervolume_objectives:
            metric = objective.metric(objective.hv_metric)
            row.append(metric.to_minimization(entry["metrics"][objective.name][objective.hv_metric]))
        rows.append(row)
    return np.asarray(rows, dtype=float)


def front_hypervolume(front: list[dict[str, Any]], spec: DatasetSpec) -> float:
    return hypervolume(minimization_points(front, spec), spec.hv_reference)
