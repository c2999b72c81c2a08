"""Preference rays: training samplers and evaluation grids (spec/methods.md, "Shared pieces").

Samplers follow the official PaLoRA code (nik-dim/palora, ``src/callbacks/methods/utils/samplers.py``);
every random draw takes a ``torch.Generator`` so that a resumed run draws the same rays.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math

import torch
from torch import Tensor

from bench.core.errors import ConfigError

log = logging.getLogger(__name__)

SAMPLERS = ("annealing", "annealing_dirichlet", "dirichlet", "fixed")


def simplex_lattice(num_tasks: int, divisions: int) -> Tensor:
    """All rays whose coordinates are multiples of 1/divisions: C(divisions + T - 1, T - 1) points.

    For T = 2 the first coordinate runs from 1 down to 0; for T = 3 this is the triangular lattice.
    """
    points = [c for c in itertools.product(range(divisions, -1, -1), repeat=num_tasks) if sum(c) == divisions]
    return torch.tensor(points, dtype=torch.float64).div_(divisions).to(torch.get_default_dtype())


def eval_grid(num_tasks: int, points_per_edge: int = 11) -> Tensor:
    """The evaluation grid: T=2 -> 11 rays (lambda_1 = linspace(0, 1, 11)); T=3 -> 66-ray lattice;
    T>=4 -> the T vertices plus the uniform ray."""
    if num_tasks == 2:
        first = torch.linspace(0.0, 1.0, points_per_edge)
        return torch.stack([first, 1.0 - first], dim=1)
    if num_tasks == 3:
        return simplex_lattice(3, points_per_edge - 1)
    vertices = torch.eye(num_tasks)
    uniform = torch.full((1, num_tasks), 1.0 / num_tasks)
    return torch.cat([vertices, uniform])


def fixed_rays(num_tasks: int, window: int, eps: float) -> Tensor:
    """``window`` evenly spaced rays: T=2 -> lambda_1 = linspace(eps, 1 - eps, R); T=3 -> the largest
    triangular lattice with at most R points (as the official code adjusts ``num``)."""
    if num_tasks == 2:
        first = torch.linspace(eps, 1.0 - eps, window)
        return torch.stack([first, 1.0 - first], dim=1)
    if num_tasks == 3:
        divisions = max(1, int((-1 + math.sqrt(-1 + 8 * window)) / 2))
        return simplex_lattice(3, divisions)
    raise ConfigError(f"the fixed ray sampler supports 2 or 3 tasks, got {num_tasks}")


def interior_rays(num_tasks: int, window: int, eps: float) -> Tensor:
    """The annealing schedule's base rays, every weight >= ``eps``: T=2 -> the fixed rays
    (lambda_1 = linspace(eps, 1 - eps, R)); T=3 -> the fixed lattice moved inside the simplex,
    ``eps + (1 - 3 eps) * lattice``, the T=2 construction in three dimensions."""
    if num_tasks == 3:
        return eps + (1.0 - num_tasks * eps) * fixed_rays(num_tasks, window, eps)
    return fixed_rays(num_tasks, window, eps)


def annealing_rays(num_tasks: int, window: int, progress: float, mul: float, eps: float) -> Tensor:
    """PaLoRA's deterministic schedule (paper Sec. 3.3): base rays raised to the power
    ``mul * progress`` and renormalised, so they start at the uniform ray and spread towards the
    vertices as training goes on. The base rays have no zero weight (:func:`interior_rays`): a zero
    stays zero under any power, and the {0, 1/2, 1} lattice of T = 3 would never move."""
    rays = interior_rays(num_tasks, window, eps).pow(mul * progress)
    return rays / rays.sum(dim=1, keepdim=True)


def sample_gamma_log(concentration: Tensor, generator: torch.Generator) -> Tensor:
    """log of Gamma(concentration, 1) samples, by Marsaglia and Tsang (2000) with the a < 1 boost
    Gamma(a) = Gamma(a + 1) * U^(1/a), kept in log space so tiny concentrations do not underflow."""
    alpha = concentration.double()
    boosted = alpha + 1.0
    d = boosted - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    result = torch.empty_like(alpha)
    pending = torch.ones_like(alpha, dtype=torch.bool)
    while pending.any():
        idx = pending.nonzero(as_tuple=True)
        x = torch.randn(idx[0].shape, generator=generator, dtype=torch.float64)
        u = torch.rand(idx[0].shape, generator=generator, dtype=torch.float64)
        v = (1.0 + c[idx] * x) ** 3
        ok = v > 0
        log_v = torch.log(torch.where(ok, v, torch.ones_like(v)))
        accept = ok & (torch.log(u) < 0.5 * x * x + d[idx] - d[idx] * v + d[idx] * log_v)
        accepted = tuple(i[accept] for i in idx)
        result[accepted] = torch.log(d[accepted]) + log_v[accept]
        pending[accepted] = False
    u = torch.rand(alpha.shape, generator=generator, dtype=torch.float64).clamp_min(1e-300)
    return result + torch.log(u) / alpha


def dirichlet_rays(num_tasks: int, window: int, concentration: float, generator: torch.Generator) -> Tensor:
    """``window`` rays ~ Dirichlet(concentration * 1_T), normalised in log space (softmax of log-gammas)."""
    log_gamma = sample_gamma_log(torch.full((window, num_tasks), float(concentration)), generator)
    return torch.softmax(log_gamma, dim=1).to(torch.get_default_dtype())


@dataclasses.dataclass(frozen=True)
class RaySampler:
    """A named training-ray sampler: ``sample(progress, generator) -> Tensor[window, T]``."""

    name: str
    num_tasks: int
    window: int
    p: float = 1.0
    mul: float = 5.0
    eps: float = 0.01

    def __post_init__(self) -> None:
        if self.name not in SAMPLERS:
            raise ConfigError(f"unknown ray sampler {self.name!r}; valid ray samplers: {', '.join(SAMPLERS)}")
        if self.window < 1:
            raise ConfigError(f"the ray window must be >= 1, got {self.window}")
        if not self.p > 0:  # NaN too
            raise ConfigError(f"method.p (the Dirichlet concentration) must be > 0, got {self.p}")
        if not 0 <= self.mul < float("inf"):
            raise ConfigError(f"method.mul (the annealing exponent scale) must be >= 0, got {self.mul}")
        if not 0 <= self.eps < 1 / self.num_tasks:
            raise ConfigError(
                f"method.eps (the smallest ray weight) must be in [0, 1/{self.num_tasks}) for {self.num_tasks} tasks, "
                f"got {self.eps}"
            )
        if self.name in ("annealing", "fixed") and self.window < 2:
            raise ConfigError(f"the {self.name} sampler needs a window of at least 2 rays, got {self.window}")
        if self.name == "annealing" and self.num_tasks > 3:
            log.warning("annealing sampler has no lattice for %d tasks; using annealing_dirichlet", self.num_tasks)

    def sample(self, progress: float, generator: torch.Generator) -> Tensor:
        name = self.name
        if name == "annealing" and self.num_tasks > 3:
            name = "annealing_dirichlet"
        if name == "annealing":
            return annealing_rays(self.num_tasks, self.window, progress, self.mul, self.eps)
        if name == "fixed":
            return fixed_rays(self.num_tasks, self.window, self.eps)
        if name == "dirichlet":
            return dirichlet_rays(self.num_tasks, self.window, self.p, generator)
        return dirichlet_rays(self.num_tasks, self.window, self.p * (1.0 - progress) + 0.001, generator)
