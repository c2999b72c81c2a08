"""COSMOS: the ray through the upsampler as input channels (features for vectors) and the cosine-penalised loss."""

import dataclasses
import math

import pytest
import torch

from methods.cosmos import COSMOS, RayUpsampler, cosmos_loss
from tests.support import build_method, tiny_spec


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


COUNTS = torch.tensor([1.0, 2, 2, 3, 3, 3, 3, 2, 2, 1])
"""How many (input, kernel) position pairs of ConvTranspose2d(kernel 6, stride 2, padding 1) reach
each of the 10 outputs from a 4x4 input, along one axis: o + 1 = 2 i + k, 0 <= i < 4, 0 <= k < 6."""


def test_upsampler_maps_a_ray_to_known_channels():
    """Identity-per-channel kernels of ones: layer 1 gives ray_k on 4x4, layer 2 ray_k * c_i * c_j on
    10x10, and nearest upsampling to 28x28 reads source row floor(r * 10 / 28)."""
    up = RayUpsampler(2, (28, 28))
    with torch.no_grad():
        for conv in (up.layers[0], up.layers[2]):
            conv.weight.zero_()
            conv.weight[0, 0] = 1.0
            conv.weight[1, 1] = 1.0
    ray = torch.tensor([0.25, 0.75])
    out = up(ray)
    assert out.shape == (2, 28, 28)
    source = torch.arange(28) * 10 // 28
    grid = torch.outer(COUNTS[source], COUNTS[source])
    assert torch.allclose(out, ray.view(2, 1, 1) * grid)
    assert out[1, 27, 27].item() == pytest.approx(0.75) and out[0, 10, 10].item() == pytest.approx(0.25 * 9)
    assert up(torch.tensor([1.0, 0.0]))[1].abs().max().item() == 0.0


@pytest.mark.parametrize("num_tasks", [2, 3])
def test_ray_enters_images_through_the_learned_upsampler(num_tasks):
    _, cnet = build_method(COSMOS, tiny_spec(num_tasks))
    first = cnet.net.encoder[0]
    assert first.in_channels == 1 + num_tasks and cnet.conditioning == "input-channels-upsampled"
    up = cnet.ray_map
    assert [type(m).__name__ for m in up.layers] == ["ConvTranspose2d", "ReLU", "ConvTranspose2d", "ReLU", "Upsample"]
    assert up.layers[0].bias is None and up.layers[2].bias is None and up.layers[4].mode == "nearest"
    assert (up.layers[2].kernel_size, up.layers[2].stride, up.layers[2].padding) == ((6, 6), (2, 2), (1, 1))
    x = torch.rand(3, 1, 28, 28)
    ray = torch.softmax(torch.randn(num_tasks), 0)
    channels = up(ray)
    assert channels.shape == (num_tasks, 28, 28)
    manual = torch.cat([x, channels.expand(3, -1, -1, -1)], dim=1)
    out, expected = cnet(x, ray), cnet.net(manual)
    assert all(torch.equal(out[k], expected[k]) for k in expected)
    other = cnet(x, torch.roll(ray, 1))
    assert not torch.allclose(out["task0"], other["task0"])
    assert not torch.allclose(up(torch.roll(ray, 1)), channels)


def test_ray_enters_vectors_as_plain_features():
    """Official ``Upsampler`` on 1-dimensional inputs: the ray concatenated, no upsampler."""
    spec = dataclasses.replace(tiny_spec(2), input_shape=(21,), backbone="mlp")
    _, cnet = build_method(COSMOS, spec, backbone_options={"hidden": (16,)})
    assert cnet.ray_map is None and cnet.conditioning == "input-channels"
    x, ray = torch.rand(4, 21), torch.tensor([0.2, 0.8])
    out, expected = cnet(x, ray), cnet.net(torch.cat([x, ray.expand(4, 2)], dim=1))
    assert all(torch.equal(out[k], expected[k]) for k in expected)
    assert sum(p.numel() for p in cnet.parameters()) == (23 * 16 + 16) + 2 * (16 * 10 + 10)


def test_upsampler_trains_is_saved_and_is_made_once_for_evaluation():
    method, cnet = build_method(COSMOS, tiny_spec(2))
    names = {
        name
        for group in method.param_groups(cnet, 1e-3)
        for name, p in cnet.named_parameters()
        if any(p is q for q in group["params"])
    }
    assert {"ray_map.layers.0.weight", "ray_map.layers.2.weight"} <= names
    assert {"ray_map.layers.0.weight", "ray_map.layers.2.weight"} <= set(cnet.state_dict())
    ray = torch.tensor([0.6, 0.4])
    calls = []
    cnet.ray_map.register_forward_hook(lambda *_: calls.append(1))
    model = cnet.at_ray(ray)
    x = torch.rand(4, 1, 28, 28)
    first, second = model(x), model(x[:2])
    assert len(calls) == 1
    assert torch.equal(first["task1"], cnet(x, ray)["task1"])
    assert torch.allclose(second["task1"], first["task1"][:2], atol=1e-6)


def test_memory_is_one_model_plus_t_input_channels_plus_the_upsampler():
    """A 5x5 conv with 10 filters gains 10 * 5 * 5 * T weights; the upsampler has (4^2 + 6^2) T^2."""
    method, cnet = build_method(COSMOS, tiny_spec(2))
    assert sum(p.numel() for p in cnet.ray_map.parameters()) == 16 * 4 + 36 * 4
    assert sum(p.numel() for p in cnet.parameters()) == 27450 + 10 * 25 * 2 + 208
    assert method.describe()["ray_upsampler_parameters"] == 208
