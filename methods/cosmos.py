"""COSMOS: conditioned one-shot multi-objective search (Ruchte and Grabocka, ICDM 2021; arXiv 2103.13392).

The ray enters through the input (official ``Upsampler``: ruchtem/cosmos
``methods/cosmos/cosmos.py``, nik-dim/palora and nik-dim/pamal ``models/factory/cosmos/upsampler.py``):
appended as T features to a vector, and to an image as the T channels of a learned upsampler
(:class:`RayUpsampler`); the first layer of the backbone gets T more inputs. One ray per step from
Dirichlet(alpha). Loss (paper Eq. 3): ``sum_k ray_k L_k - mu * cos(ray, L)`` with
mu = ``reg_coefficient``; the cosine term pulls the loss vector towards the ray's direction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.core.conditioning import RayChannelsNet
from bench.core.errors import ConfigError
from bench.core.rays import RaySampler
from bench.core.registry import METHODS
from bench.core.spec import ConditionedNet, DatasetSpec, Method, MethodInfo, MultiTaskNet


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


class RayUpsampler(nn.Module):
    """The ray [T] as T channels of H x W: ConvTranspose2d(T, T, 4) (1x1 -> 4x4), ReLU,
    ConvTranspose2d(T, T, 6, stride 2, padding 1) (-> 10x10), ReLU, nearest-neighbour Upsample to
    H x W; no biases, PyTorch's default initialisation (official ``Upsampler.transposed_cnn``)."""

    def __init__(self, num_tasks: int, size: tuple[int, int]) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(num_tasks, num_tasks, kernel_size=4, stride=1, padding=0, bias=False),
            nn.ReLU(),
            nn.ConvTranspose2d(num_tasks, num_tasks, kernel_size=6, stride=2, padding=1, bias=False),
            nn.ReLU(),
            nn.Upsample(size=tuple(size), mode="nearest"),
        )

    def forward(self, ray: Tensor) -> Tensor:
        """[T] -> [T, H, W], the same for every sample of a batch."""
        weight = cast(nn.ConvTranspose2d, self.layers[0]).weight
        return self.layers(ray.to(weight.dtype).view(1, -1, 1, 1))[0]


@METHODS.register("cosmos")
class COSMOS(Method[COSMOSHparams]):
    """COSMOS: the ray appended to the input; linear loss minus mu times cos(ray, losses)."""

    kind = "front"

    def __init__(
        self, hparams: COSMOSHparams, spec: DatasetSpec, *, device: torch.device = torch.device("cpu")
    ) -> None:
        super().__init__(hparams, spec, device=device)
        self.sampler = RaySampler("dirichlet", self.num_tasks, 1, p=hparams.alpha)

    def build(self, make_backbone: Callable[..., MultiTaskNet]) -> RayChannelsNet:
        """The backbone with T more inputs; for images, with the ray upsampler (official
        ``COSMOS.configure_model``: 3-dimensional inputs are images, 1-dimensional ones vectors)."""
        shape = self.spec.input_shape
        if len(shape) not in (1, 3):
            raise ConfigError(
                f"cosmos needs vector (C,) or image (C, H, W) inputs, dataset {self.spec.name!r} has {shape}"
            )
        net = make_backbone(extra_inputs=self.num_tasks)
        return RayChannelsNet(net, RayUpsampler(self.num_tasks, shape[1:]) if len(shape) == 3 else None)

    def train_rays(self, progress: float, generator: torch.Generator) -> Tensor:
        return self.sampler.sample(progress, generator)

    def backward(self, losses: Tensor, rays: Tensor, cnet: ConditionedNet) -> Tensor:
        loss = cosmos_loss(losses, rays, self.hparams.reg_coefficient)
        loss.backward()
        return loss.detach()

    def describe(self) -> MethodInfo:
        upsampled = len(self.spec.input_shape) == 3
        return {
            "models": 1,
            "reg_coefficient": self.hparams.reg_coefficient,
            "extra_input_channels": self.num_tasks,
            "ray_upsampler_parameters": (4 * 4 + 6 * 6) * self.num_tasks**2 if upsampled else 0,
        }
