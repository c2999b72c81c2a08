"""Objective builders shared by datasets."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from bench.spec import Metric, Objective


def _accuracy(output: Tensor, target: Tensor) -> Tensor:
    return (output.argmax(dim=1) == target).float()


def _cross_entropy_per_sample(output: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(output, target, reduction="none")


def _cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(output, target)


def classification(name: str) -> Objective:
    """A classification task on logits: cross-entropy loss, accuracy (HV on error = 1 - acc) and CE."""
    return Objective(
        name=name,
        loss_fn=_cross_entropy,
        metrics=(
            Metric("accuracy", _accuracy, higher_is_better=True, best=1.0),
            Metric("loss", _cross_entropy_per_sample, higher_is_better=False),
        ),
        hv_metric="accuracy",
    )
