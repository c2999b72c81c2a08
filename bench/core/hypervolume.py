"""Hypervolume of a front against a dataset's fixed reference point, with pymoo (protocols.md).

Points are put in minimisation form first (accuracy -> error = 1 - accuracy); a point that does not
strictly dominate the reference point contributes nothing. Which metric each coordinate reads and the
reference point are a :class:`bench.core.spec.HypervolumeDefinition`: the dataset's default one unless named.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pymoo.indicators.hv import HV

from bench.core.spec import DatasetSpec, HypervolumeDefinition


def hypervolume(points: np.ndarray | Sequence[Sequence[float]], reference: np.ndarray | Sequence[float]) -> float:
    """Hypervolume dominated by ``points`` (minimisation, shape [N, M]) and bounded by ``reference``."""
    pts = np.asarray(points, dtype=float)
    ref = np.asarray(reference, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != ref.shape[0]:
        raise ValueError(f"points must be [N, {ref.shape[0]}], got shape {pts.shape}")
    inside = pts[(pts < ref).all(axis=1)]
    if inside.shape[0] == 0:
        return 0.0
    return float(HV(ref_point=ref)(inside))


def minimization_points(
    front: list[dict[str, Any]], spec: DatasetSpec, definition: HypervolumeDefinition | None = None
) -> np.ndarray:
    """[N, M] points from a front (see :func:`bench.train.evaluate.front`): each coordinate's metric of
    ``definition`` (default: the spec's default hypervolume), minimised."""
    definition = definition or spec.hv_default
    objectives = {o.name: o for o in spec.objectives}
    read = [(name, objectives[name].metric(metric)) for name, metric in definition.coordinates]
    rows = [[m.to_minimization(entry["metrics"][name][m.name]) for name, m in read] for entry in front]
    return np.asarray(rows, dtype=float).reshape(len(rows), len(read))


def front_hypervolume(
    front: list[dict[str, Any]], spec: DatasetSpec, definition: HypervolumeDefinition | None = None
) -> float:
    """The hypervolume of ``definition`` (default: the spec's default) of a front."""
    definition = definition or spec.hv_default
    return hypervolume(minimization_points(front, spec, definition), definition.reference)
