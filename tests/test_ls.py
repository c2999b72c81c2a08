"""Linear scalarisation: one independent model per ray."""

import pytest
import torch

from bench.backbones import create_backbone
from bench.config import apply_overrides
from bench.errors import ConfigError
from bench.loop import compute_losses
from methods.ls import LinearScalarization, LSHparams
from tests.conftest import random_batch


def build(spec, **overrides):
    method = LinearScalarization(apply_overrides(LSHparams(), "method", overrides), spec)
    torch.manual_seed(0)
    return method, method.build(lambda **kw: create_backbone("multilenet", spec, **kw))


def test_one_model_per_eval_ray_by_default(mini_spec):
    method, cnet = build(mini_spec)
    assert len(cnet.members) == 11 and torch.equal(method.train_rays(0.1, torch.Generator()), mini_spec.eval_rays())
    x = torch.rand(4, 1, 28, 28)
    for k, ray in enumerate(method.eval_rays()):
        out, direct = cnet(x, ray), cnet.members[k](x)
        assert all(torch.equal(out[t], direct[t]) for t in out)
    assert cnet.inference_parameters() == 27450


def test_models_are_independent_and_weighted_by_their_ray(mini_spec):
    method, cnet = build(mini_spec, rays="1,0;0.5,0.5")
    x, targets = random_batch(mini_spec)
    rays = method.train_rays(0.5, torch.Generator())
    losses = compute_losses(cnet, x, targets, rays, mini_spec.objectives)
    method.backward(losses, rays, cnet)
    # model 0 has weight 0 on the second task: its second head gets exactly zero gradient
    assert all(torch.count_nonzero(p.grad) == 0 for p in cnet.members[0].heads["bottom-right"].parameters())
    # model 1's gradient equals that of its own scalarised loss alone
    alone = [
        torch.autograd.grad(
            0.5 * o.loss(cnet.members[1](x)[o.name], targets[o.name]),
            list(cnet.members[1].parameters()),
            allow_unused=True,
        )
        for o in mini_spec.objectives
    ]
    for p, g0, g1 in zip(cnet.members[1].parameters(), *alone, strict=True):
        expected = sum(g for g in (g0, g1) if g is not None)
        assert torch.allclose(p.grad, expected, atol=1e-6)


def test_a_single_ray_trains_one_model(mini_spec):
    method, cnet = build(mini_spec, rays="0.3,0.7")
    assert len(cnet.members) == 1 and method.eval_rays().tolist() == [[pytest.approx(0.3), pytest.approx(0.7)]]
    with pytest.raises(ValueError, match="no LS model"):
        cnet(torch.rand(2, 1, 28, 28), torch.tensor([0.5, 0.5]))


def test_rays_must_lie_on_the_simplex(mini_spec):
    with pytest.raises(ConfigError, match="sum to 1"):
        build(mini_spec, rays="0.3,0.3")
