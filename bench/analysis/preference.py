"""How well a front follows its preferences, and how it compares with single-task models (evaluation.md).

- **Controllability** of a weight-type ray (LS, PaLoRA, PaMaL, PHN-LS, COSMOS): more weight on task
  k should never give a higher error on task k. Per task, Spearman's rank correlation between
  lambda_k and task k's error along the evaluation grid (ideal -1; ``scipy.stats.spearmanr``), and
  the fraction of neighbouring rays, ordered by lambda_k, whose error on task k rises as lambda_k
  rises.
- **Preference alignment** (LibMOON's indicators; MOEA/D's PBI, Zhang and Li, IEEE TEC 2007): for an
  objective vector f and a preference direction d (unit), d1 = f . d is the projection on the
  direction and d2 = |f - d1 d| the distance to it; PBI = d1 + theta d2 (theta 5), and the angle
  between f and d in degrees. For a weight-type ray lambda the direction is lambda^-1, normalised:
  the exact-Pareto-optimal point of EPO (Mahapatra and Rajan, ICML 2020) has lambda_k f_k equal for
  every k, so f is parallel to 1 / lambda. A ray with a zero weight has no such direction (NaN).
- **Delta-p** against single-task models (Maninis et al., CVPR 2019; LibMTL):
  100 / T sum_k s_k (M_k - S_k) / S_k, with s_k = +1 where higher is better and -1 where lower is
  better, so that a positive value is better than the single-task models.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import spearmanr

PBI_THETA = 5.0


def controllability(rays: np.ndarray, errors: np.ndarray) -> dict[str, float]:
    """``rho_k``: Spearman's rho of lambda_k against task k's error over the grid [K, T] (NaN where
    either is constant); ``violations_k``: the fraction of neighbouring pairs (rays sorted by
    lambda_k) where lambda_k rises and the error rises too."""
    lam, err = np.asarray(rays, dtype=float), np.asarray(errors, dtype=float)
    if lam.shape != err.shape or lam.ndim != 2:
        raise ValueError(f"rays and errors must both be [K, T], got {lam.shape} and {err.shape}")
    out: dict[str, float] = {}
    for k in range(lam.shape[1]):
        w, e = lam[:, k], err[:, k]
        constant = np.ptp(w) == 0 or np.ptp(e) == 0
        out[f"rho_{k + 1}"] = math.nan if constant else float(spearmanr(w, e).statistic)
        order = np.argsort(w, kind="stable")
        rising = np.diff(w[order]) > 0
        worse = np.diff(e[order]) > 0
        out[f"violations_{k + 1}"] = float((rising & worse).sum() / rising.sum()) if rising.any() else math.nan
    return out


def preference_direction(ray: np.ndarray) -> np.ndarray:
    """The unit direction 1 / lambda of a weight-type ray (NaN where a weight is not positive)."""
    lam = np.asarray(ray, dtype=float)
    if np.any(lam <= 0):
        return np.full_like(lam, np.nan)
    inverse = 1.0 / lam
    return inverse / np.linalg.norm(inverse)


def pbi(point: np.ndarray, direction: np.ndarray, theta: float = PBI_THETA) -> float:
    """d1 + theta d2 of ``point`` against the unit ``direction``."""
    f, d = np.asarray(point, dtype=float), np.asarray(direction, dtype=float)
    d1 = float(f @ d)
    return d1 + theta * float(np.linalg.norm(f - d1 * d))


def angle_degrees(point: np.ndarray, direction: np.ndarray) -> float:
    """The angle between ``point`` and ``direction``, in degrees (NaN for a zero point)."""
    f, d = np.asarray(point, dtype=float), np.asarray(direction, dtype=float)
    norm = float(np.linalg.norm(f) * np.linalg.norm(d))
    if norm == 0 or not math.isfinite(norm):
        return math.nan
    return math.degrees(math.acos(max(-1.0, min(1.0, float(f @ d) / norm))))


def alignment(rays: np.ndarray, points: np.ndarray, theta: float = PBI_THETA) -> dict[str, float]:
    """Mean PBI and mean angle over the rays with a direction (every weight positive)."""
    directions = [preference_direction(r) for r in np.asarray(rays, dtype=float)]
    pairs = [(p, d) for p, d in zip(np.asarray(points, dtype=float), directions, strict=True) if np.isfinite(d).all()]
    if not pairs:
        return {"pbi": math.nan, "angle": math.nan}
    return {
        "pbi": float(np.mean([pbi(p, d, theta) for p, d in pairs])),
        "angle": float(np.mean([angle_degrees(p, d) for p, d in pairs])),
    }


def delta_p(metrics: np.ndarray, single_task: np.ndarray, higher_is_better: np.ndarray) -> np.ndarray:
    """Delta-p in percent of each row of ``metrics`` [N, T] against ``single_task`` [T]."""
    m = np.atleast_2d(np.asarray(metrics, dtype=float))
    s = np.asarray(single_task, dtype=float)
    sign = np.where(np.asarray(higher_is_better, dtype=bool), 1.0, -1.0)
    return 100.0 * (sign * (m - s) / s).mean(axis=1)
