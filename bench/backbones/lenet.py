"""MultiLeNet: the MultiMNIST backbone of Sener and Koltun (2018), as in the official PaLoRA code
(nik-dim/palora ``src/models/factory/lenet.py``: ``MultiLeNetR`` encoder, ``MultiLeNetO`` heads).

Encoder: conv(C->10, 5) -> maxpool 2 -> ReLU -> conv(10->20, 5) -> maxpool 2 -> ReLU -> flatten
(320) -> linear 50 -> ReLU. Head per task: linear 50->50 -> ReLU -> linear 50->10 (logits; the
official head applies log_softmax and an NLL loss, which equals our cross-entropy on logits).
"""

from __future__ import annotations

from torch import nn

from bench.core.errors import ConfigError
from bench.core.registry import BACKBONES
from bench.core.spec import DatasetSpec, MultiTaskNet


def multilenet_encoder(in_channels: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, 10, kernel_size=5),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Conv2d(10, 20, kernel_size=5),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(320, 50),
        nn.ReLU(),
    )


def multilenet_head(num_classes: int = 10) -> nn.Sequential:
    return nn.Sequential(nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, num_classes))


@BACKBONES.register("multilenet")
def multilenet(spec: DatasetSpec, extra_inputs: int = 0) -> MultiTaskNet:
    """MultiLeNet: 2 convs + linear 50 shared encoder, a 50-50-C head per task (28x28 inputs; C is
    the objective's ``outputs``). ``extra_inputs`` adds input channels (COSMOS's ray channels)."""
    if len(spec.input_shape) != 3 or spec.input_shape[1:] != (28, 28):
        raise ConfigError(f"backbone multilenet expects 28x28 images, dataset {spec.name!r} has {spec.input_shape}")
    heads = nn.ModuleDict({o.name: multilenet_head(o.outputs) for o in spec.objectives})
    return MultiTaskNet(multilenet_encoder(spec.input_shape[0] + extra_inputs), heads)
