"""Objective builders shared by datasets: classification, binary attributes and regression.

Dense-prediction objectives (segmentation, depth, surface normals) are in :mod:`bench.data.kit.dense`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from bench.core.spec import Metric, Objective


def _accuracy(output: Tensor, target: Tensor) -> Tensor:
    return (output.argmax(dim=1) == target).float()


def _cross_entropy_per_sample(output: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(output, target, reduction="none")


def _cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(output, target)


def classification(name: str, num_classes: int = 10, hv_metric: str = "accuracy") -> Objective:
    """A classification task on logits [N, C]: cross-entropy loss, accuracy and CE; the hypervolume
    coordinate is ``hv_metric``: the error 1 - accuracy, or ``"loss"`` (the test cross-entropy)."""
    return Objective(
        name=name,
        loss_fn=_cross_entropy,
        metrics=(
            Metric("accuracy", _accuracy, higher_is_better=True, best=1.0),
            Metric("loss", _cross_entropy_per_sample, higher_is_better=False),
        ),
        hv_metric=hv_metric,
        outputs=num_classes,
    )


def _binary_accuracy(output: Tensor, target: Tensor) -> Tensor:
    return ((output.squeeze(1) > 0) == (target > 0.5)).float()


def _bce_per_sample(output: Tensor, target: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(output.squeeze(1), target.float(), reduction="none")


def _bce(output: Tensor, target: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(output.squeeze(1), target.float())


def binary(name: str) -> Objective:
    """A binary task on one logit [N, 1] and 0/1 targets: BCE-with-logits loss, accuracy (HV on error) and BCE."""
    return Objective(
        name=name,
        loss_fn=_bce,
        metrics=(
            Metric("accuracy", _binary_accuracy, higher_is_better=True, best=1.0),
            Metric("loss", _bce_per_sample, higher_is_better=False),
        ),
        hv_metric="accuracy",
        outputs=1,
    )


def _squared_error(output: Tensor, target: Tensor) -> Tensor:
    return (output.squeeze(1) - target) ** 2


def _absolute_error(output: Tensor, target: Tensor) -> Tensor:
    return (output.squeeze(1) - target).abs()


def _mse(output: Tensor, target: Tensor) -> Tensor:
    return F.mse_loss(output.squeeze(1), target)


def _huber_per_sample(output: Tensor, target: Tensor, delta: float = 1.0) -> Tensor:
    return F.huber_loss(output.squeeze(1), target, reduction="none", delta=delta)


def _huber(output: Tensor, target: Tensor) -> Tensor:
    return F.huber_loss(output.squeeze(1), target, delta=1.0)


def regression(name: str, loss: str = "mse", hv_metric: str = "mse") -> Objective:
    """A scalar regression on outputs [N, 1] and float targets [N].

    ``loss``: ``mse`` or ``huber`` (delta 1, on the standardised target). Metrics: ``mse`` and ``mae``
    (and ``huber``), each on the target as stored.
    """
    if loss not in ("mse", "huber"):
        raise ValueError(f"unknown regression loss {loss!r}; valid: huber, mse")
    metrics = [
        Metric("mse", _squared_error, higher_is_better=False),
        Metric("mae", _absolute_error, higher_is_better=False),
    ]
    if loss == "huber":
        metrics.append(Metric("huber", _huber_per_sample, higher_is_better=False))
    loss_fn = _mse if loss == "mse" else _huber
    return Objective(name=name, loss_fn=loss_fn, metrics=tuple(metrics), hv_metric=hv_metric, outputs=1)
