"""A method with a learnable parameter of its own, written with the public contract only (the
README's "Adding a method" recipe): uncertainty weighting (Kendall, Gal and Cipolla, CVPR 2018,
Eq. 7 with s_k = log sigma_k^2), ``loss = sum_k exp(-s_k) L_k + s_k``. Its s lives in the
conditioned net's ``method_parameters``, so the default ``param_groups`` give it to the optimizer
and ``state_dict`` to the checkpoint."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor, nn

from bench.core.conditioning import UnconditionedNet
from bench.core.spec import ConditionedNet, DatasetSpec, Method, MultiTaskNet
from tests.support import build_method, tiny_spec, train_batch


@dataclasses.dataclass(frozen=True)
class UncertaintyHparams:
    init: float = 0.0
    """Initial log-variance s_k of every task."""


class UncertaintyWeighting(Method[UncertaintyHparams]):
    """Uncertainty weighting: loss = sum_k exp(-s_k) L_k + s_k with learned log-variances s."""

    kind = "point"

    def build(self, make_backbone: Callable[..., MultiTaskNet]) -> ConditionedNet:
        cnet = UnconditionedNet(make_backbone())
        cnet.method_parameters["log_variance"] = nn.Parameter(torch.full((self.num_tasks,), self.hparams.init))
        return cnet

    def train_rays(self, progress: float, generator: torch.Generator) -> Tensor:
        return torch.full((1, self.num_tasks), 1.0 / self.num_tasks)

    def eval_rays(self) -> Tensor:
        return self.train_rays(1.0, torch.Generator())

    def backward(self, losses: Tensor, rays: Tensor, cnet: ConditionedNet) -> Tensor:
        s = cnet.method_parameters["log_variance"]
        loss = (torch.exp(-s) * losses + s).sum()
        loss.backward()
        return loss.detach()


def task_losses(cnet: ConditionedNet, spec: DatasetSpec, rays: Tensor) -> Tensor:
    """losses [R, T] of the first 16 training samples (what the loop computes)."""
    x, targets = train_batch(spec)
    rows = []
    for ray in rays:
        out = cnet(x, ray)
        rows.append(torch.stack([o.loss(out[o.name], targets[o.name]) for o in spec.objectives]))
    return torch.stack(rows)


def test_a_method_parameter_trains_is_optimised_and_is_saved():
    spec = tiny_spec(2)
    method, cnet = build_method(UncertaintyWeighting, spec, seed=0, init="0.5")
    s = cnet.method_parameters["log_variance"]
    assert UncertaintyWeighting.Hparams is UncertaintyHparams and torch.equal(s, torch.full((2,), 0.5))
    optimizer = torch.optim.Adam(method.param_groups(cnet, 1e-2), lr=1e-2)
    assert any(p is s for group in optimizer.param_groups for p in group["params"])
    assert all(p is not s for p in cnet.shared_parameters())

    for step in range(2):
        rays = method.train_rays((step + 1) / 2, torch.Generator())
        losses = task_losses(cnet, spec, rays)
        optimizer.zero_grad()
        method.backward(losses, rays, cnet)
        if step == 0:  # d/ds_k [exp(-s_k) L_k + s_k] = 1 - exp(-s_k) L_k
            expected = 1 - torch.exp(-s.detach()) * losses[0].detach()
            torch.testing.assert_close(s.grad, expected)
        optimizer.step()
    assert not torch.equal(s.detach(), torch.full((2,), 0.5))

    state = copy.deepcopy(cnet.state_dict())
    assert torch.equal(state["method_parameters.log_variance"], s.detach())
    _, fresh = build_method(UncertaintyWeighting, spec, seed=1, init="0.5")
    fresh.load_state_dict(state)
    assert torch.equal(fresh.method_parameters["log_variance"], s)
