"""Base of the single-point MTL baselines (MGDA, the torchjd aggregators): one unconditioned model.

The ray plays no role: training and evaluation both use the uniform ray only so that the loop's
``losses[R, T]`` has one row, and the run is recorded with ``kind = "point"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor

from bench.core.conditioning import UnconditionedNet
from bench.core.spec import Method, MultiTaskNet

H = TypeVar("H")


class SinglePointMethod(Method[H]):
    """An unconditioned model trained by a method-specific ``backward`` over the T task losses."""

    kind = "point"

    def build(self, make_backbone: Callable[..., MultiTaskNet]) -> UnconditionedNet:
        return UnconditionedNet(make_backbone())

    def uniform_ray(self) -> Tensor:
        return torch.full((1, self.num_tasks), 1.0 / self.num_tasks)

    def train_rays(self, progress: float, generator: torch.Generator) -> Tensor:
        return self.uniform_ray()

    def eval_rays(self) -> Tensor:
        return self.uniform_ray()
