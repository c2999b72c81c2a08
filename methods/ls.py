"""Linear scalarisation: one independent unconditioned model per fixed ray (spec/methods.md ``ls``).

Model k minimises ``ray_k . L``. A run trains one model per ray of ``method.rays`` (default: the
dataset's evaluation grid), so that it yields a front like every PFL method. The models are trained
in lockstep over the same batches: their parameters, gradients and Adam states are disjoint, so
this equals K separate trainings with shared data order, and it needs K models in memory (the
record says so). A sweep can split the rays over jobs: ``--set method.rays=0.3,0.7`` trains one model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from bench.errors import ConfigError
from bench.registry import METHODS
from bench.spec import ConditionedNet, Method, MultiTaskNet


@dataclasses.dataclass(frozen=True)
class LSHparams:
    """``rays``: the fixed loss weights, one model each; empty means the dataset's evaluation grid."""

    rays: tuple[tuple[float, ...], ...] = ()


class Ensemble(ConditionedNet):
    """K independent backbones, one per ray; ``forward(x, ray)`` runs the member trained for ``ray``."""

    path = "one-model-per-ray"

    def __init__(self, members: list[MultiTaskNet], rays: Tensor) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.register_buffer("rays", rays.clone())
        self._rays_cpu = rays.clone().cpu()

    def member_index(self, ray: Tensor) -> int:
        hits = torch.isclose(self._rays_cpu, ray.detach().cpu().to(self._rays_cpu.dtype), atol=1e-6).all(dim=1)
        if not hits.any():
            raise ValueError(f"no LS model was trained for ray {ray.tolist()}; trained rays: {self._rays_cpu.tolist()}")
        return int(hits.nonzero()[0])

    def forward(self, x: Tensor, ray: Tensor) -> dict[str, Tensor]:
        return self.members[self.member_index(ray)](x)

    def inference_parameters(self) -> int:
        return sum(p.numel() for p in self.members[0].parameters())


@METHODS.register("ls")
class LinearScalarization(Method):
    """Linear scalarisation: one independent model per fixed ray (loss = ray . losses)."""

    Hparams: ClassVar[type] = LSHparams
    kind = "front"

    def __init__(self, hparams: LSHparams, spec: Any) -> None:
        super().__init__(hparams, spec)
        if hparams.rays:
            rays = torch.tensor(hparams.rays, dtype=torch.float32)
            if rays.ndim != 2 or rays.shape[1] != self.num_tasks:
                raise ConfigError(f"method.rays: each ray needs {self.num_tasks} weights, got {list(hparams.rays)}")
            if (rays < 0).any() or not torch.allclose(rays.sum(1), torch.ones(len(rays)), atol=1e-6):
                raise ConfigError(f"method.rays: weights must be >= 0 and sum to 1, got {list(hparams.rays)}")
            self.rays = rays
        else:
            self.rays = spec.eval_rays()

    def build(self, make_backbone: Callable[[], MultiTaskNet]) -> Ensemble:
        return Ensemble([make_backbone() for _ in range(len(self.rays))], self.rays)

    def train_rays(self, progress: float, generator: torch.Generator) -> Tensor:
        return self.rays

    def eval_rays(self) -> Tensor:
        return self.rays

    def describe(self) -> dict[str, Any]:
        return {"models": len(self.rays), "memory_models": len(self.rays)}
