"""ResNet-18 encoders from torchvision with one linear head per objective.

- ``resnet18``: torchvision's ResNet-18 blocks with the stem and pooling of the official PaLoRA
  code (nik-dim/palora ``src/models/factory/resnet.py``, after Sener and Koltun 2018): conv 3x3
  stride 1, no max-pool, and a 4x4 average pool, so a 64x64 input gives an 8x8 map pooled to
  2x2x512 = 2,048 features, as the official heads ``Linear(2048, C)`` expect. Every layer has PyTorch's
  default init, as the official ``ResNetEncoder`` (which has no init code) has for every method:
  torchvision's kaiming-normal(fan_out) init of the convolutions is replaced by each one's
  ``reset_parameters`` (kaiming-uniform, a = sqrt 5); BatchNorm is (1, 0) in both.
- ``resnet18-imagenet``: torchvision's ResNet-18 unchanged (7x7 stride-2 stem, max-pool, global
  average pool -> 512 features, torchvision's init), the one that takes ImageNet weights
  (``--set model.weights=imagenet``).

Each head is one linear map from the features to the objective's ``outputs``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from bench.backbones.weights import load_state
from bench.core.errors import ConfigError
from bench.core.registry import BACKBONES
from bench.core.spec import DatasetSpec, MultiTaskNet


def _check_image_input(name: str, spec: DatasetSpec) -> int:
    if len(spec.input_shape) != 3:
        raise ConfigError(f"backbone {name} expects images [C, H, W], dataset {spec.name!r} has {spec.input_shape}")
    return spec.input_shape[0]


def _load_encoder_weights(encoder: torchvision.models.ResNet, path: Path, in_channels: int) -> None:
    """Load a torchvision ResNet-18 state dict (its ``fc`` is dropped); extra input channels of
    ``conv1`` beyond the file's (COSMOS's ray channels) start at zero."""
    state = {k: v for k, v in load_state(path).items() if not k.startswith("fc.")}
    conv1 = state.get("conv1.weight")
    if conv1 is not None and conv1.shape[1] < in_channels:
        padded = torch.zeros(conv1.shape[0], in_channels, *conv1.shape[2:], dtype=conv1.dtype)
        padded[:, : conv1.shape[1]] = conv1
        state["conv1.weight"] = padded
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ConfigError(f"model.weights: {path} does not fit a torchvision ResNet-18 encoder: {err}") from None


def _resnet18(spec: DatasetSpec, small_stem: bool, extra_inputs: int, weights: Path | None) -> MultiTaskNet:
    in_channels = _check_image_input("resnet18", spec) + extra_inputs
    encoder = torchvision.models.resnet18(weights=None)
    height, width = spec.input_shape[1:]
    features = 512
    if small_stem:
        if height % 32 or width % 32:
            raise ConfigError(
                f"backbone resnet18 needs image sides divisible by 32, dataset {spec.name!r} has {spec.input_shape}"
            )
        encoder.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        encoder.maxpool = nn.Identity()
        encoder.avgpool = nn.AvgPool2d(4)
        features = 512 * (height // 32) * (width // 32)
        for module in encoder.modules():
            if isinstance(module, nn.Conv2d):
                module.reset_parameters()
    elif in_channels != 3:
        encoder.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    encoder.fc = nn.Identity()
    if weights is not None:
        if small_stem:
            raise ConfigError(
                "backbone resnet18 has the official 3x3 small-image stem, which ImageNet weights (7x7 conv1) do "
                "not fit; use --set model.backbone=resnet18-imagenet to start from them"
            )
        _load_encoder_weights(encoder, Path(weights), in_channels)
    heads = nn.ModuleDict({o.name: nn.Linear(features, o.outputs) for o in spec.objectives})
    net = MultiTaskNet(encoder, heads)
    if not small_stem:
        net.layer_init = "torchvision" if weights is None else "pretrained"
    return net


@BACKBONES.register("resnet18")
def resnet18(spec: DatasetSpec, extra_inputs: int = 0, weights: Path | None = None) -> MultiTaskNet:
    """ResNet-18 (torchvision) with the official 3x3 small-image stem, a linear head per task."""
    return _resnet18(spec, small_stem=True, extra_inputs=extra_inputs, weights=weights)


@BACKBONES.register("resnet18-imagenet")
def resnet18_imagenet(spec: DatasetSpec, extra_inputs: int = 0, weights: Path | None = None) -> MultiTaskNet:
    """ResNet-18 (torchvision) with its ImageNet stem, takes ImageNet weights; a linear head per task."""
    return _resnet18(spec, small_stem=False, extra_inputs=extra_inputs, weights=weights)
