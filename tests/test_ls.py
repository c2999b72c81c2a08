"""Linear scalarisation: one independent model per ray, looped (Ensemble) or stacked (StackedEnsemble)."""

import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call

from bench.core.conditioning import parameter_key
from bench.core.errors import ConfigError
from bench.train.loop import compute_losses
from methods.ls import Ensemble, StackedEnsemble
from tests.support import build_method, random_batch

STACKINGS = pytest.mark.parametrize("stacking", ["loop", "vmap"])


def member_module(cnet: Ensemble | StackedEnsemble, k: int) -> nn.Module:
    """A module that runs member k's architecture (given its parameters by functional_call)."""
    return cnet.members[k] if isinstance(cnet, Ensemble) else cnet.target.net


def member_params(cnet: Ensemble | StackedEnsemble, k: int) -> dict[str, Tensor]:
    if isinstance(cnet, Ensemble):
        return dict(cnet.members[k].named_parameters())
    return cnet.member_parameters(k)


def member_grads(cnet: Ensemble | StackedEnsemble, k: int) -> dict[str, Tensor]:
    if isinstance(cnet, Ensemble):
        return {name: p.grad for name, p in cnet.members[k].named_parameters()}
    return {name: cnet.stacked[parameter_key(name)].grad[k] for name in cnet.names}


def number_of_members(cnet: Ensemble | StackedEnsemble) -> int:
    return len(cnet.members) if isinstance(cnet, Ensemble) else len(next(iter(cnet.stacked.values())))


@STACKINGS
def test_one_model_per_eval_ray_by_default(mini_spec, stacking):
    method, cnet = build_method("ls", mini_spec, stacking=stacking)
    assert number_of_members(cnet) == 11 and method.describe()["stacking"] == stacking
    assert torch.equal(method.train_rays(0.1, torch.Generator()), mini_spec.eval_rays())
    x = torch.rand(4, 1, 28, 28)
    for k, ray in enumerate(method.eval_rays()):
        out, direct = cnet(x, ray), functional_call(member_module(cnet, k), member_params(cnet, k), (x,))
        assert all(torch.equal(out[t], direct[t]) for t in out)
    assert cnet.inference_parameters() == 27450


@STACKINGS
def test_models_are_independent_and_weighted_by_their_ray(mini_spec, stacking):
    method, cnet = build_method("ls", mini_spec, rays="1,0;0.5,0.5", stacking=stacking)
    x, targets = random_batch(mini_spec)
    rays = method.train_rays(0.5, torch.Generator())
    losses = compute_losses(cnet, x, targets, rays, mini_spec.objectives)
    method.backward(losses, rays, cnet)
    # model 0 has weight 0 on the second task: its second head gets exactly zero gradient
    zero_head = {n: g for n, g in member_grads(cnet, 0).items() if n.startswith("heads.bottom-right.")}
    assert zero_head and all(torch.count_nonzero(g) == 0 for g in zero_head.values())
    # model 1's gradient equals that of its own scalarised loss alone
    leaves = {n: p.detach().clone().requires_grad_() for n, p in member_params(cnet, 1).items()}
    out = functional_call(member_module(cnet, 1), leaves, (x,))
    loss = sum(0.5 * o.loss(out[o.name], targets[o.name]) for o in mini_spec.objectives)
    alone = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True))
    for name, grad in member_grads(cnet, 1).items():
        assert torch.allclose(grad, alone[name], atol=1e-6), name


@STACKINGS
def test_a_single_ray_trains_one_model(mini_spec, stacking):
    method, cnet = build_method("ls", mini_spec, rays="0.3,0.7", stacking=stacking)
    assert number_of_members(cnet) == 1 and method.eval_rays().tolist() == [[pytest.approx(0.3), pytest.approx(0.7)]]
    with pytest.raises(ValueError, match="no LS model"):
        cnet(torch.rand(2, 1, 28, 28), torch.tensor([0.5, 0.5]))


def test_rays_must_lie_on_the_simplex(mini_spec):
    with pytest.raises(ConfigError, match="sum to 1"):
        build_method("ls", mini_spec, rays="0.3,0.3")
