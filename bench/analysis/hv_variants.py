"""Hypervolumes that see a whole front, beside HV at the dataset's fixed reference (evaluation.md).

All points are in minimisation form [N, M] (errors or losses).

- **Single-task box.** From the single-task ends (the points of models trained for one task alone,
  e.g. LS members at one-hot rays, pooled over seeds): the ideal point z* is the per-objective
  minimum over the ends and the nadir z^nad the per-objective maximum.
- **Data-driven reference** r = z^nad + margin (z^nad - z*), with margin 0.1 by default.
- **Normalised HV** = HV(points; r) / prod_k (r_k - z*_k): the share of the box [z*, r] the front
  dominates; 1 for a point at the ideal, above 1 where the front improves on the single-task ends.
- **Loss-space HV**: HV of the per-task test losses against (2, 2), as PHN (Navon et al., ICLR 2021)
  and COSMOS (Ruchte and Grabocka, ICDM 2021; ruchtem/cosmos ``plotting/plotting.py``) report it on
  the MultiMNIST family.
- **HV gain over the best point** = HV(front) - max_i HV({p_i}): what the front adds to its own best
  single model; 0 for a collapsed front.
"""

from __future__ import annotations

import numpy as np

from bench.core.hypervolume import hypervolume

LOSS_REFERENCE = (2.0, 2.0)
"""PHN's and COSMOS's reference point for the per-task cross-entropy losses (two tasks)."""
DEFAULT_MARGIN = 0.1


def single_task_box(ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ideal, nadir) of the single-task ends [K, M]: the per-objective minimum and maximum."""
    pts = np.asarray(ends, dtype=float)
    if pts.ndim != 2 or len(pts) == 0:
        raise ValueError(f"single-task ends must be a non-empty [K, M] array, got shape {pts.shape}")
    return pts.min(axis=0), pts.max(axis=0)


def data_driven_reference(ideal: np.ndarray, nadir: np.ndarray, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """r = nadir + margin (nadir - ideal)."""
    ideal, nadir = np.asarray(ideal, dtype=float), np.asarray(nadir, dtype=float)
    return nadir + margin * (nadir - ideal)


def normalised_hypervolume(points: np.ndarray, ideal: np.ndarray, reference: np.ndarray) -> float:
    """HV(points; reference) / prod(reference - ideal); NaN where the box is empty along an objective."""
    box = np.asarray(reference, dtype=float) - np.asarray(ideal, dtype=float)
    if np.any(box <= 0):
        return float("nan")
    return hypervolume(points, reference) / float(np.prod(box))


def loss_hypervolume(losses: np.ndarray, reference: tuple[float, ...] = LOSS_REFERENCE) -> float:
    """HV of per-task losses [N, M] against ``reference`` (default (2, 2))."""
    return hypervolume(losses, reference)


def hv_gain_over_best_point(points: np.ndarray, reference: np.ndarray) -> float:
    """HV(points) - the largest HV of one of its points alone."""
    pts = np.asarray(points, dtype=float)
    best = max((hypervolume(p[None, :], reference) for p in pts), default=0.0)
    return hypervolume(pts, reference) - best
