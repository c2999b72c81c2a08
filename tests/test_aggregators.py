"""The torchjd aggregator methods: known values from each paper on simple Jacobians, and the step."""

import pytest
import torch

from bench.backbones import create_backbone
from bench.config import apply_overrides
from bench.loop import compute_losses
from bench.registry import METHODS
from tests.conftest import random_batch, tiny_spec

ORTHONORMAL = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
CONFLICTING = torch.tensor([[1.0, 0.0], [-0.5, 1.0]])


def aggregate(name: str, jacobian: torch.Tensor, **hparams) -> torch.Tensor:
    cls = METHODS.get(name)
    method = cls(apply_overrides(cls.Hparams(), "method", hparams), tiny_spec(jacobian.shape[0]))
    return method.aggregator(jacobian)


@pytest.mark.parametrize(
    "name, hparams, expected",
    [
        ("mean", {}, [0.5, 0.5]),
        ("pcgrad", {}, [1.0, 1.0]),  # no conflict: nothing is projected, the gradients are summed
        ("cagrad", {"c": 0.4}, [0.7, 0.7]),  # d = g0 + c ||g0|| g_w / ||g_w|| with g_w = g0: (1 + c) g0
        ("nash-mtl", {"max_norm": 0.0}, [1.0, 1.0]),  # G alpha = 1 / alpha gives alpha_k = 1 / ||g_k|| = 1
        ("imtl-g", {}, [0.5, 0.5]),
        ("aligned-mtl", {}, [0.5, 0.5]),  # already orthogonal with equal norms: nothing to align
        ("upgrad", {}, [0.5, 0.5]),  # no conflict: every projection is the identity
        ("dualproj", {}, [0.5, 0.5]),
    ],
)
def test_orthogonal_equal_norm_gradients(name, hparams, expected):
    assert torch.allclose(aggregate(name, ORTHONORMAL, **hparams), torch.tensor(expected), atol=1e-4)


def test_nash_mtl_clips_the_update_norm():
    assert torch.allclose(aggregate("nash-mtl", ORTHONORMAL, max_norm=1.0), torch.full((2,), 2**-0.5), atol=1e-4)


def test_pcgrad_projects_each_gradient_off_the_other_when_they_conflict():
    # g1' = g1 - (g1.g2 / |g2|^2) g2 = (0.8, 0.4); g2' = g2 - (g2.g1 / |g1|^2) g1 = (0, 1)
    assert torch.allclose(aggregate("pcgrad", CONFLICTING), torch.tensor([0.8, 1.4]), atol=1e-6)


@pytest.mark.parametrize("name", ["upgrad", "dualproj"])
def test_dual_cone_aggregators_do_not_conflict_with_any_task(name):
    update = aggregate(name, CONFLICTING)
    assert (CONFLICTING @ update >= -1e-6).all()
    assert update.norm() > 0.1


def test_imtl_g_update_has_equal_projections_on_every_unit_gradient():
    update = aggregate("imtl-g", CONFLICTING)
    units = CONFLICTING / CONFLICTING.norm(dim=1, keepdim=True)
    projections = units @ update
    assert torch.allclose(projections[0], projections[1], atol=1e-5)


def test_mean_step_gives_the_mean_shared_gradient_and_each_head_its_own_gradient():
    spec = tiny_spec(2)
    method = METHODS.get("mean")(METHODS.get("mean").Hparams(), spec)
    torch.manual_seed(0)
    cnet = method.build(lambda **kw: create_backbone("multilenet", spec, **kw))
    x, targets = random_batch(spec, 16)
    rays = method.train_rays(0.5, torch.Generator())
    losses = compute_losses(cnet, x, targets, rays, spec.objectives)
    shared, heads = cnet.shared_parameters(), cnet.task_parameters()
    shared_grads = [torch.autograd.grad(losses[0, k], shared, retain_graph=True) for k in range(2)]
    head_grads = [torch.autograd.grad(losses[0, k], heads[k], retain_graph=True) for k in range(2)]
    method.backward(losses, rays, cnet)
    for i, p in enumerate(shared):
        assert torch.allclose(p.grad, (shared_grads[0][i] + shared_grads[1][i]) / 2, atol=1e-6)
    for k in range(2):
        for p, g in zip(heads[k], head_grads[k], strict=True):
            assert torch.allclose(p.grad, g, atol=1e-6)
