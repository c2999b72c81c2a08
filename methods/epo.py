"""The Exact Pareto Optimal search direction (Mahapatra and Rajan, ICML 2020, "Multi-Task Learning
with User Preferences: Gradient Descent with Controlled Ascent in Pareto Optimization", Sec. 4).

Given the task losses l, the Gram matrix C = G G^T of their gradients and a preference ray r,
``epo_weights`` solves the small linear programme of the paper's Eq. 22-25 (the ``ExactParetoLP``
of the reference code, dbmptr/EPOSearch, as used by PHN-EPO) with ``scipy.optimize.linprog``:
- if the weighted losses r * l are not balanced (non-uniformity mu > eps), the *balance* LP moves
  towards the ray: maximise alpha . (C a) with a the adjustment direction, keeping descent on the
  task(s) whose r_k l_k is largest and no ascent where it is not needed;
- otherwise the *dominance* LP descends on all tasks: maximise 1^T C alpha with C alpha >= 0 and
  alpha . (C a) >= min(max(C a), 0).
When the LP that applies is infeasible, alpha = r / sum(r), as the official PHN ``EPO.get_weighted_loss``
does (AvivNavon/pareto-hypernetworks ``phn/solvers.py``: ``get_alpha`` is called without ``relax``,
so its relaxed dominance LP never runs).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog


def non_uniformity(weighted: np.ndarray) -> float:
    """mu(r * l): the KL divergence of the normalised weighted losses from uniform (Eq. 12)."""
    l_hat = weighted / weighted.sum()
    l_hat = l_hat[l_hat > np.finfo(l_hat.dtype).eps]
    return float(np.sum(l_hat * np.log(l_hat * len(weighted))))


def adjustments(losses: np.ndarray, ray: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """r * l, its non-uniformity mu, and the adjustment a = r * (log(m * l_hat) - mu) (Eq. 15)."""
    weighted = ray * losses
    l_hat = weighted / weighted.sum()
    mu = non_uniformity(weighted)
    return weighted, mu, ray * (np.log(np.maximum(l_hat, 1e-300) * len(losses)) - mu)


def _simplex_lp(objective: np.ndarray, rows: list[np.ndarray], bounds: list[float]) -> np.ndarray | None:
    """argmax objective . alpha over the simplex with rows . alpha >= bounds; None if infeasible."""
    m = len(objective)
    a_ub = -np.array(rows) if rows else None
    b_ub = -np.array(bounds) if rows else None
    result = linprog(
        -objective, A_ub=a_ub, b_ub=b_ub, A_eq=np.ones((1, m)), b_eq=[1.0], bounds=[(0, None)] * m, method="highs"
    )
    return result.x if result.status == 0 else None


def epo_weights(losses: np.ndarray, gram: np.ndarray, ray: np.ndarray, eps: float = 1e-4) -> tuple[np.ndarray, str]:
    """Simplex weights alpha of the EPO direction and which move produced them: ``balance``,
    ``dominance`` or ``fallback`` (that LP was infeasible: alpha = the normalised ray, as the
    official PHN ``EPO`` does)."""
    losses, gram, ray = (np.asarray(v, dtype=np.float64) for v in (losses, gram, ray))
    weighted, mu, a = adjustments(losses, ray)
    ca = gram @ a
    if mu > eps:
        favoured = ca > 0
        rhs = ca.copy()
        if favoured.any():
            rhs[favoured] = -np.inf
            rhs[weighted == weighted.max()] = 0.0
        else:
            rhs[:] = 0.0
        keep = np.isfinite(rhs)
        alpha = _simplex_lp(ca, list(gram[keep]), list(rhs[keep]))
        move = "balance"
    else:
        alpha = _simplex_lp(gram.sum(axis=0), [ca, *gram], [min(ca.max(), 0.0), *np.zeros(len(ray))])
        move = "dominance"
    if alpha is None:
        return ray / ray.sum(), "fallback"
    return alpha, move
