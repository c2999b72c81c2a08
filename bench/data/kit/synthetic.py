"""Random data shaped like a dataset, for profiling where the real files are absent (a GPU machine
without CelebA or Cityscapes): inputs of the spec's ``input_shape``, and per objective a target that
its loss accepts, shaped from the backbone's output. Timing only: nothing learnable is in it.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from bench.core.errors import UserError
from bench.core.spec import DatasetSpec, MultiTaskNet, Objective


def fits(objective: Objective, out: Tensor, target: Tensor) -> bool:
    """Whether the objective's loss and metrics take ``target`` cleanly (no error, no warning, finite)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sample = out[:1].detach(), target[:1]
            if not torch.isfinite(objective.loss(*sample)):
                return False
            for metric in objective.metrics:
                metric.statistics(*sample)
            return True
    except (RuntimeError, ValueError, IndexError, UserWarning):
        return False


def target_for(objective: Objective, out: Tensor, n: int, g: torch.Generator) -> Tensor:
    """The first target the objective's loss and metrics take cleanly (no error, no warning, finite):
    class labels shaped as ``out`` without its channel dimension (when there are several classes), a
    float target of the output's shape (depth, normals), or one without the channel dimension; failing
    those, one with a channel more, every value in [0.5, 1.5) (UTKFace's age target ``[z, std]``)."""
    candidates = [torch.rand((n, *out.shape[1:]), generator=g), torch.rand((n, *out.shape[2:]), generator=g)]
    if objective.outputs > 1:
        candidates.insert(0, torch.randint(objective.outputs, (n, *out.shape[2:]), generator=g))
    for target in candidates:
        if fits(objective, out, target):
            return target
    paired = torch.rand((n, out.shape[1] + 1, *out.shape[2:]), generator=g) + 0.5
    if fits(objective, out, paired):
        return paired
    raise UserError(
        f"no synthetic target fits objective {objective.name!r} (output {tuple(out.shape)}): "
        "its target has a layout of its own; profile this dataset on its real files"
    )


def synthetic_split(
    spec: DatasetSpec, backbone: MultiTaskNet, n: int, seed: int = 0
) -> tuple[Tensor, dict[str, Tensor]]:
    """``n`` random samples shaped like ``spec``'s (inputs uniform in [0, 1))."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *spec.input_shape), generator=g)
    with torch.no_grad():
        outs = backbone.eval()(x[:2])
    targets = {o.name: target_for(o, outs[o.name], n, g) for o in spec.objectives}
    return x, targets
