"""The shared part of PaLoRA, PaMaL and PaDoRA: a window of sampled rays per step and one
scalarised loss (nik-dim/palora ``src/callbacks/methods/``: ``PaLoRA``, ``PaMaL``, ``PaDoRA`` and
their ``_GB`` variants, which share the sampler settings and ``get_weighted_loss``).

:class:`WindowHparams` holds the sampler fields and the inner method; :class:`WindowedFrontMethod`
draws the rays (:class:`bench.core.rays.RaySampler`) and back-propagates
:func:`methods.gradients.scalarised_loss` plus the method's :meth:`~WindowedFrontMethod.regularised`.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, TypeVar

import torch
from torch import Tensor

from bench.core.errors import ConfigError
from bench.core.rays import RaySampler
from bench.core.spec import ConditionedNet, DatasetSpec, Method, MethodInfo
from methods.gradients import scalarised_loss

MAX_WINDOW = 1024
"""The most rays one step may take: a step runs the model once per ray (the presets use 1 to 6)."""

SamplerName = Literal["annealing", "annealing_dirichlet", "dirichlet", "fixed"]
"""The samplers of :mod:`bench.core.rays` (``SAMPLERS``)."""


@dataclasses.dataclass(frozen=True)
class WindowHparams:
    """The ray-window fields (the official ``method.sampler`` settings) and the inner method."""

    window: int = 2
    """Rays per step."""
    sampler: SamplerName = "annealing"
    p: float = 1.0
    """Dirichlet concentration of the ``dirichlet`` samplers."""
    mul: float = 5.0
    """Exponent scale of the ``annealing`` schedule (rays ** (mul * progress))."""
    eps: float = 0.01
    """Smallest weight of the ``annealing`` and ``fixed`` base rays."""
    inner_method: Literal["gb", "gradnorm", "ls"] = "ls"
    """``ls``: linear scalarisation; ``gb`` / ``gradnorm``: gradient-balanced
    (:func:`methods.gradients.scalarised_loss`); a method may narrow the choices."""

    def __post_init__(self) -> None:
        if not 1 <= self.window <= MAX_WINDOW:
            raise ConfigError(
                f"method.window must be in 1..{MAX_WINDOW} (a step runs the model once per ray), got {self.window}"
            )


W = TypeVar("W", bound=WindowHparams)


class WindowedFrontMethod(Method[W]):
    """A front method trained on a window of sampled rays with a scalarised loss."""

    kind = "front"

    def __init__(self, hparams: W, spec: DatasetSpec, *, device: torch.device = torch.device("cpu")) -> None:
        super().__init__(hparams, spec, device=device)
        h = hparams
        self.sampler = RaySampler(h.sampler, self.num_tasks, h.window, p=h.p, mul=h.mul, eps=h.eps)

    def train_rays(self, progress: float, generator: torch.Generator) -> Tensor:
        return self.sampler.sample(progress, generator)

    def backward(self, losses: Tensor, rays: Tensor, cnet: ConditionedNet) -> Tensor:
        loss = scalarised_loss(losses, rays, cnet, self.hparams.inner_method)
        loss = self.regularised(loss, losses, rays, cnet)
        loss.backward()
        return loss.detach()

    def regularised(self, loss: Tensor, losses: Tensor, rays: Tensor, cnet: ConditionedNet) -> Tensor:
        """``loss`` with the method's regulariser added (default: none)."""
        return loss

    def describe(self) -> MethodInfo:
        return {"sampler": self.sampler.name, "window": self.sampler.window}
