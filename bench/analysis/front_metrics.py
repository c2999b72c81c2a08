"""Front metrics beyond the hypervolume, on points in minimisation form [N, M].

- IGD+ (Ishibuchi et al., EMO 2015; pymoo ``IGDPlus``): mean over the reference front's points of
  the distance to the nearest front point, counting only where the front is worse. 0 when the front
  covers the reference; weakly Pareto compliant.
- Spacing (Schott 1995; pymoo ``SpacingIndicator``): std of each non-dominated point's city-block
  distance to its nearest neighbour. 0 for evenly spaced points.
- Spread Δ (Deb et al., NSGA-II, IEEE TEC 2002, Eq. 1), two objectives: with the non-dominated points
  sorted along the first objective, consecutive distances d_i, their mean d̄, and d_f, d_l the
  distances from the reference front's extreme points to the front's end points,
  Δ = (d_f + d_l + Σ|d_i − d̄|) / (d_f + d_l + (N − 1) d̄). 0 for an even front reaching both extremes.
- Span of each objective over the non-dominated points, and their number.

The reference front of a dataset is the non-dominated union of every method's seed-fronts
(:func:`reference_front`), so it is a statement about this comparison, not about the true front.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from pymoo.indicators.igd_plus import IGDPlus
from pymoo.indicators.spacing import SpacingIndicator


def non_dominated(points: np.ndarray) -> np.ndarray:
    """The distinct rows of ``points`` that no other row dominates (minimisation), sorted."""
    pts = np.unique(np.asarray(points, dtype=float).reshape(len(points), -1), axis=0)
    keep = [i for i, p in enumerate(pts) if not np.any(np.all(pts <= p, axis=1) & np.any(pts < p, axis=1))]
    return pts[keep]


def reference_front(fronts: Iterable[np.ndarray]) -> np.ndarray:
    """The non-dominated union of ``fronts`` (each [N_i, M])."""
    stacked = [np.asarray(f, dtype=float) for f in fronts if len(f)]
    if not stacked:
        raise ValueError("no points to build a reference front from")
    return non_dominated(np.concatenate(stacked))


def igd_plus(points: np.ndarray, reference: np.ndarray) -> float:
    return float(IGDPlus(np.asarray(reference, dtype=float))(np.asarray(points, dtype=float)))


def spacing(points: np.ndarray) -> float:
    """Schott's spacing of the non-dominated points; NaN with fewer than two."""
    front = non_dominated(points)
    if len(front) < 2:
        return math.nan
    return float(SpacingIndicator()(front))


def spread(points: np.ndarray, reference: np.ndarray) -> float:
    """Deb's Δ for two objectives (module docstring); NaN for other dimensions."""
    front = non_dominated(points)
    ref = non_dominated(reference)
    if front.shape[1] != 2:
        return math.nan
    front = front[np.argsort(front[:, 0], kind="stable")]
    ref = ref[np.argsort(ref[:, 0], kind="stable")]
    d_first = float(np.linalg.norm(front[0] - ref[0]))
    d_last = float(np.linalg.norm(front[-1] - ref[-1]))
    gaps = np.linalg.norm(np.diff(front, axis=0), axis=1)
    mean_gap = float(gaps.mean()) if len(gaps) else 0.0
    denominator = d_first + d_last + len(gaps) * mean_gap
    if denominator == 0.0:
        return 0.0
    return (d_first + d_last + float(np.abs(gaps - mean_gap).sum())) / denominator


def front_metrics(points: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """IGD+, spacing, spread, the number of non-dominated points and the span of each objective."""
    front = non_dominated(points)
    out = {
        "igd_plus": igd_plus(points, reference),
        "spacing": spacing(points),
        "spread": spread(points, reference),
        "non_dominated": float(len(front)),
    }
    for k, span in enumerate(front.max(axis=0) - front.min(axis=0)):
        out[f"span_{k + 1}"] = float(span)
    return out


def front_metric_tables(points: pd.DataFrame, objectives: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Per run (label, kind, seed) of ``points`` (one row per ray, the ``objectives`` columns in
    minimisation form, as ``bench.analysis.report.front_points`` gives): :func:`front_metrics` against the
    reference front of every run in ``points``. Returns the per-run table and the reference front."""
    reference = reference_front([points[objectives].to_numpy()])
    rows = []
    for (label, kind, seed), run in points.groupby(["label", "kind", "seed"], sort=True):
        metrics = front_metrics(run[objectives].to_numpy(), reference)
        spans = {f"span_{name}": metrics.pop(f"span_{k + 1}") for k, name in enumerate(objectives)}
        rows.append({"label": label, "kind": kind, "seed": seed, **metrics, **spans})
    return pd.DataFrame(rows), reference


def front_metric_summary(per_run: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std over seeds of every metric column, per (label, kind)."""
    columns = [c for c in per_run.columns if c not in ("label", "kind", "seed")]
    grouped = per_run.groupby(["label", "kind"], sort=True)[columns]
    means, stds = grouped.mean(), grouped.std(ddof=1)
    out = means.add_suffix("_mean").join(stds.add_suffix("_std"))
    out["n_seeds"] = grouped.size()
    return out.reset_index()
