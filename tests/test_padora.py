"""PaDoRA's own properties (methods/padora.py): the backbone at initialisation, LoRA's and DoRA's
closed forms for one layer as peft computes them on activations, the learning-rate groups."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.core.errors import ConfigError
from bench.train.config import apply_overrides, resolve
from methods.padora import PaDoRA, PaDoRAHparams, PeftAdapters
from tests.support import build_method, randomize, tiny_spec


@pytest.mark.parametrize("kind", ["lora", "dora"])
def test_initial_adapters_give_the_backbone_for_every_ray(mini_spec, kind):
    _, cnet = build_method(PaDoRA, mini_spec, peft=kind)
    x = torch.rand(8, 1, 28, 28)
    plain = cnet.net(x)
    for ray in torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.3, 0.7]]):
        out = cnet(x, ray)
        assert all(torch.allclose(out[k], plain[k], atol=1e-6) for k in plain)


def test_lora_linear_equals_peft_activations():
    """peft ``lora.Linear``: W x + b + sum_k (B_k A_k x) * s_k with s_k = (alpha / r) ray_k."""
    layer = nn.Linear(7, 5)
    adapters = PeftAdapters(layer, num_tasks=3, rank=2, alpha=3.0, dora=False)
    randomize(adapters, add=True)
    x, ray = torch.randn(4, 7), torch.tensor([0.2, 0.5, 0.3])
    peft = layer(x) + sum((x @ adapters.A[k].T @ adapters.B[k].T) * (1.5 * ray[k]) for k in range(3))
    merged = F.linear(x, adapters.weight_at(layer.weight, ray), layer.bias)
    assert torch.allclose(merged, peft, atol=1e-5)


def test_lora_conv_is_a_kernel_conv_then_a_1x1_conv():
    """peft ``lora.Conv2d``: A_k is a conv with the layer's kernel, stride and padding, B_k a 1x1 conv."""
    conv = nn.Conv2d(3, 6, kernel_size=3, stride=2, padding=1)
    adapters = PeftAdapters(conv, num_tasks=2, rank=2, alpha=2.0, dora=False)
    assert adapters.A.shape == (2, 2, 3 * 3 * 3) and adapters.B.shape == (2, 6, 2)
    randomize(adapters, add=True)
    x, ray = torch.randn(2, 3, 9, 9), torch.tensor([0.4, 0.6])
    peft = conv(x)
    for k in range(2):
        low = F.conv2d(x, adapters.A[k].view(2, 3, 3, 3), stride=2, padding=1)
        peft = peft + F.conv2d(low, adapters.B[k].view(6, 2, 1, 1)) * ray[k]
    merged = F.conv2d(x, adapters.weight_at(conv.weight, ray), conv.bias, stride=2, padding=1)
    assert torch.allclose(merged, peft, atol=1e-5)


@pytest.mark.parametrize("layer", [nn.Linear(6, 4), nn.Conv2d(2, 4, kernel_size=3)], ids=["linear", "conv"])
def test_dora_equals_peft_activations(layer):
    """peft 0.13 DoRA, per adapter: (c_k - 1) W x + c_k s_k B_k A_k x, c_k = m_k / ||W + s_k B_k A_k||_c."""
    adapters = PeftAdapters(layer, num_tasks=3, rank=2, alpha=2.0, dora=True)
    randomize(adapters, add=True)
    ray = torch.tensor([0.6, 0.0, 0.4])
    x = torch.randn(3, 6) if isinstance(layer, nn.Linear) else torch.randn(3, 2, 7, 7)
    op = F.linear if isinstance(layer, nn.Linear) else F.conv2d
    view = (1, -1) if isinstance(layer, nn.Linear) else (1, -1, 1, 1)
    expected = op(x, layer.weight, layer.bias)
    for k in range(3):
        delta = (adapters.B[k] @ adapters.A[k]).view_as(layer.weight) * ray[k]
        c = (adapters.magnitude[k] / (layer.weight + delta).flatten(1).norm(dim=1)).view(view)
        expected = expected + (c - 1) * op(x, layer.weight) + c * op(x, delta)
    merged = op(x, adapters.weight_at(layer.weight, ray), layer.bias)
    assert torch.allclose(merged, expected, atol=1e-5)


def test_dora_magnitude_of_a_task_at_ray_zero_still_rescales_the_rows():
    layer = nn.Linear(5, 3)
    adapters = PeftAdapters(layer, num_tasks=2, rank=1, alpha=1.0, dora=True)
    randomize(adapters, add=True)
    norms = layer.weight.norm(dim=1, keepdim=True)
    lora_weight = layer.weight + adapters.B[0] @ adapters.A[0]
    c0 = adapters.magnitude[0].unsqueeze(1) / lora_weight.norm(dim=1, keepdim=True)
    c1 = adapters.magnitude[1].unsqueeze(1) / norms
    expected = layer.weight + (c0 * lora_weight - layer.weight) + (c1 - 1) * layer.weight
    got = adapters.weight_at(layer.weight, torch.tensor([1.0, 0.0]))
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, lora_weight, atol=1e-3)


def test_dora_norm_gets_no_gradient():
    """DoRA Sec. 4.3: ||W + s B A||_c is a constant, so d W(ray) / d m_k = (W + s_k B_k A_k) / ||.||_c."""
    layer = nn.Linear(4, 3)
    adapters = PeftAdapters(layer, num_tasks=2, rank=1, alpha=1.0, dora=True)
    randomize(adapters, add=True)
    ray = torch.tensor([0.3, 0.7])
    adapters.weight_at(layer.weight, ray).sum().backward()
    for k in range(2):
        direction = layer.weight + ray[k] * adapters.B[k] @ adapters.A[k]
        expected = (direction / direction.norm(dim=1, keepdim=True)).sum(1)
        assert torch.allclose(adapters.magnitude.grad[k], expected.detach(), atol=1e-6)


def test_every_parameter_at_lr_unless_reweight_lr():
    spec = tiny_spec(3)
    method, cnet = build_method(PaDoRA, spec, peft="dora")
    groups = method.param_groups(cnet, 1e-3)
    assert all(g["lr"] == 1e-3 for g in groups)
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in cnet.parameters())
    method, cnet = build_method(PaDoRA, spec, reweight_lr=True)
    lrs = {g["name"]: g["lr"] for g in method.param_groups(cnet, 1e-3)}
    assert lrs == {"backbone": 1e-3, "adapters": pytest.approx(3e-3)}


def test_shared_parameters_are_the_encoder_with_its_adapters(mini_spec):
    _, cnet = build_method(PaDoRA, mini_spec, peft="dora")
    shared = {id(p) for p in cnet.shared_parameters()}
    encoder = [*cnet.net.encoder.parameters(), *cnet.adapters["encoder__0"].parameters()]
    assert all(id(p) in shared for p in encoder)
    assert not any(id(p) in shared for p in cnet.adapters["heads__top-left__0"].parameters())
    assert len(shared) == len(list(cnet.net.encoder.parameters())) + 3 * 3  # A, B, m of 3 encoder layers


def test_inference_model_is_the_plain_backbone(mini_spec):
    _, cnet = build_method(PaDoRA, mini_spec, peft="dora")
    randomize(cnet.adapters, add=True)
    x, ray = torch.rand(4, 1, 28, 28), torch.tensor([0.25, 0.75])
    assert cnet.inference_parameters() == sum(p.numel() for p in cnet.net.parameters())
    fast, plain = cnet.at_ray(ray)(x), cnet(x, ray)
    assert all(torch.equal(fast[k], plain[k]) for k in plain)


def test_unknown_settings_list_the_valid_ones():
    with pytest.raises(ConfigError, match="valid: lora, dora"):
        apply_overrides(PaDoRAHparams(), "method", {"peft": "loha"})
    with pytest.raises(ConfigError, match="valid: gb, ls"):
        apply_overrides(PaDoRAHparams(), "method", {"inner_method": "lb"})


def test_presets_follow_the_official_configs():
    assert resolve("padora", "multimnist3").hparams == PaDoRAHparams(window=1, sampler="annealing_dirichlet")
    assert resolve("padora", "nyuv2").hparams.window == 3
    assert resolve("padora", "multimnist-mini").hparams == PaDoRAHparams()
