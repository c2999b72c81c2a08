"""Multi-layer perceptrons for tabular data (official nik-dim/palora ``src/models/factory/mlp.py``).

Encoder: Linear -> ReLU for each hidden size; head per objective: Linear -> ReLU for each of
``head_hidden`` then Linear -> the objective's ``outputs`` (with no ``head_hidden``, one linear map,
as the official SARCOS ``decoder_specs: [1]``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from bench.core.errors import ConfigError
from bench.core.registry import BACKBONES
from bench.core.spec import DatasetSpec, MultiTaskNet


def perceptron(sizes: Sequence[int], last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if last_activation or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@BACKBONES.register("mlp")
def mlp(
    spec: DatasetSpec,
    hidden: Sequence[int] = (256, 256, 256),
    head_hidden: Sequence[int] = (),
    extra_inputs: int = 0,
) -> MultiTaskNet:
    """MLP encoder (ReLU after every hidden layer) with a small MLP or linear head per task."""
    if len(spec.input_shape) != 1:
        raise ConfigError(f"backbone mlp expects feature vectors [F], dataset {spec.name!r} has {spec.input_shape}")
    if not hidden:
        raise ConfigError("backbone mlp needs at least one hidden layer")
    encoder = perceptron([spec.input_shape[0] + extra_inputs, *hidden], last_activation=True)
    heads = nn.ModuleDict(
        {o.name: perceptron([hidden[-1], *head_hidden, o.outputs], last_activation=False) for o in spec.objectives}
    )
    return MultiTaskNet(encoder, heads)
