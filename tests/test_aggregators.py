"""The torchjd aggregator methods: known values from each paper on simple Jacobians, and the step."""

import pytest
import torch

from bench.core.registry import METHODS
from bench.train.config import apply_overrides
from bench.train.loop import compute_losses
from tests.support import build_method, random_batch, tiny_spec

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
    method, cnet = build_method("mean", spec)
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


def step_gradients(name: str, **hparams):
    """One step of method ``name`` on a tiny MultiLeNet: the method, the per-task shared Jacobian
    rows [T, P], each head's own-loss gradients, and the gradients the step left on the heads."""
    spec = tiny_spec(2)
    method, cnet = build_method(name, spec, **hparams)
    x, targets = random_batch(spec, 16)
    rays = method.train_rays(0.5, torch.Generator())
    losses = compute_losses(cnet, x, targets, rays, spec.objectives)
    shared, heads = cnet.shared_parameters(), cnet.task_parameters()
    rows = [torch.autograd.grad(losses[0, k], shared, retain_graph=True) for k in range(2)]
    jacobian = torch.stack([torch.cat([g.flatten() for g in row]) for row in rows])
    own = [torch.autograd.grad(losses[0, k], heads[k], retain_graph=True) for k in range(2)]
    method.backward(losses, rays, cnet)
    return method, jacobian, own, [[p.grad for p in params] for params in heads]


@pytest.mark.parametrize("name", ["pcgrad", "cagrad"])
@pytest.mark.slow
def test_pcgrad_and_cagrad_heads_get_their_own_loss_gradient(name):
    # nik-dim/pamal weight_methods.py: PCGrad sets the heads' grads to grad(sum_k L_k); CAGrad's
    # per-loss backward() calls accumulate into the heads: both give head k the gradient of L_k.
    _, _, own, got = step_gradients(name)
    for k in range(2):
        for g, expected in zip(got[k], own[k], strict=True):
            assert torch.allclose(g, expected, atol=1e-6)


def test_imtl_g_heads_get_the_weighted_loss_gradient():
    # official IMTL-G: alpha = [1 - sum(a), a], a = g_1 U^T (D U^T)^-1 with D = g_1 - g_{2..T} and
    # U the same rows of unit gradients; the weighted loss sum_k alpha_k L_k gives head k alpha_k grad L_k.
    _, jacobian, own, got = step_gradients("imtl-g")
    units = jacobian / jacobian.norm(dim=1, keepdim=True)
    d, u = jacobian[0] - jacobian[1:], units[0] - units[1:]
    a = (jacobian[0] @ u.T) @ torch.inverse(d @ u.T)
    alpha = torch.cat([1 - a.sum().reshape(1), a])
    for k in range(2):
        for g, expected in zip(got[k], own[k], strict=True):
            assert torch.allclose(g, alpha[k] * expected, rtol=1e-4, atol=1e-7)


def test_nash_mtl_heads_get_the_unclipped_alpha_times_their_gradient():
    method, jacobian, own, got = step_gradients("nash-mtl")
    alpha = torch.as_tensor(method.aggregator.weighting.prvs_alpha, dtype=torch.float32)
    # alpha is the Nash bargaining solution: G^T G alpha = 1 / alpha (Navon et al. 2022, Eq. 3)
    assert torch.allclose((jacobian @ jacobian.T) @ alpha, 1 / alpha, rtol=1e-3)
    assert (jacobian.T @ alpha).norm() > 1.0  # the shared update is clipped, the heads' weights are not
    for k in range(2):
        for g, expected in zip(got[k], own[k], strict=True):
            assert torch.allclose(g, alpha[k] * expected, rtol=1e-5, atol=1e-7)
