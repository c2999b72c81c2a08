"""COSMOS: the ray as input channels and the cosine-penalised loss."""

import math

import pytest
import torch

from bench.backbones import create_backbone
from methods.cosmos import COSMOS, COSMOSHparams, cosmos_loss
from tests.conftest import tiny_spec


def build(num_tasks: int = 2, **hparams):
    spec = tiny_spec(num_tasks)
    method = COSMOS(COSMOSHparams(**hparams), spec)
    torch.manual_seed(0)
    return method, method.build(lambda **kw: create_backbone("multilenet", spec, **kw))


def test_penalty_equals_the_hand_computed_cosine_term():
    losses = torch.tensor([[2.0, 1.0]])
    rays = torch.tensor([[0.25, 0.75]])
    linear = 0.25 * 2.0 + 0.75 * 1.0
    cosine = (0.25 * 2.0 + 0.75 * 1.0) / (math.hypot(2.0, 1.0) * math.hypot(0.25, 0.75))
    assert cosmos_loss(losses, rays, mu=8.0).item() == pytest.approx(linear - 8.0 * cosine, abs=1e-6)
    assert cosmos_loss(losses, rays, mu=0.0).item() == pytest.approx(linear, abs=1e-6)


def test_penalty_is_smallest_when_the_losses_point_along_the_ray():
    rays = torch.tensor([[0.3, 0.7]])
    aligned, skewed = torch.tensor([[0.3, 0.7]]) * 2, torch.tensor([[0.7, 0.3]]) * 2
    assert (
        cosmos_loss(aligned, rays, 1.0) - (rays * aligned).sum()
        < cosmos_loss(skewed, rays, 1.0) - (rays * skewed).sum()
    )


@pytest.mark.parametrize("num_tasks", [2, 3])
def test_ray_enters_as_constant_input_channels(num_tasks):
    _, cnet = build(num_tasks)
    first = cnet.net.encoder[0]
    assert first.in_channels == 1 + num_tasks
    x = torch.rand(3, 1, 28, 28)
    ray = torch.softmax(torch.randn(num_tasks), 0)
    manual = torch.cat([x, ray.view(1, -1, 1, 1).expand(3, -1, 28, 28)], dim=1)
    out, expected = cnet(x, ray), cnet.net(manual)
    assert all(torch.equal(out[k], expected[k]) for k in expected)
    other = cnet(x, torch.roll(ray, 1))
    assert not torch.allclose(out["task0"], other["task0"])


def test_memory_is_one_model_plus_t_input_channels():
    """A 5x5 conv with 10 filters gains 10 * 5 * 5 * T weights; nothing else changes."""
    _, cnet = build(2)
    assert sum(p.numel() for p in cnet.parameters()) == 27450 + 10 * 25 * 2
