"""COSMOS: conditioned one-shot multi-objective search (Ruchte and Grabocka, ICDM 2021; arXiv 2103.13392).

The ray enters through the input: T constant channels holding ray_k are appended to an image (the
first convolution gets T more input channels), or T features to a vector (official
``Upsampler`` in ruchtem/cosmos and nik-dim/palora ``callbacks/methods/cosmos.py``). One ray per step
from Dirichlet(alpha). Loss (paper Eq. 3): ``sum_k ray_k L_k - mu * cos(ray, L)`` with
mu = ``reg_coefficient``; the cosine term pulls the loss vector towards the ray's direction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.conditioning import RayChannelsNet
from bench.errors import ConfigError
from bench.rays import RaySampler
from bench.registry import METHODS
from bench.spec import ConditionedNet, Method, MultiTaskNet


@dataclasses.dataclass(frozen=True)
class COSMOSHparams:
    """``alpha``: Dirichlet concentration of the rays; ``reg_coefficient``: mu of the cosine term
    (8 on MultiMNIST in the PaLoRA presets, 1 on CelebA, Cityscapes, NYUv2, UTKFace)."""

    alpha: float = 1.0
    reg_coefficient: float = 1.0

    def __post_init__(self) -> None:
        if self.alpha <= 0:
            raise ConfigError(f"method.alpha must be > 0, got {self.alpha}")


def cosmos_loss(losses: Tensor, rays: Tensor, mu: float) -> Tensor:
    """sum_r [ ray_r . L_r - mu * cos(ray_r, L_r) ] for losses and rays [R, T]."""
    return ((rays * losses).sum(dim=1) - mu * F.cosine_similarity(losses, rays.to(losses.dtype), dim=1)).sum()


@METHODS.register("cosmos")
class COSMOS(Method):
    """COSMOS: the ray appended to the input; linear loss minus mu times cos(ray, losses)."""

    Hparams: ClassVar[type] = COSMOSHparams
    kind = "front"

    def __init__(self, hparams: COSMOSHparams, spec: Any) -> None:
        super().__init__(hparams, spec)
        self.sampler = RaySampler("dirichlet", self.num_tasks, 1, p=hparams.alpha)

    def build(self, make_backbone: Callable[..., MultiTaskNet]) -> RayChannelsNet:
        return RayChannelsNet(make_backbone(extra_inputs=self.num_tasks))

    def train_rays(self, progress: float, generator: torch.Generator) -> Tensor:
        return self.sampler.sample(progress, generator)

    def backward(self, losses: Tensor, rays: Tensor, cnet: ConditionedNet) -> Tensor:
        loss = cosmos_loss(losses, rays, self.hparams.reg_coefficient)
        loss.backward()
        return loss.detach()

    def describe(self) -> dict[str, Any]:
        return {"models": 1, "reg_coefficient": self.hparams.reg_coefficient, "extra_input_channels": self.num_tasks}
