"""PaLoRA's own properties (spec/methods.md, palora)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.train.loop import compute_losses
from methods.palora import LowRankAdapters, PaLoRA
from tests.support import build_method, random_batch, randomize, tiny_spec


def test_zero_b_gives_the_backbone_for_every_ray(mini_spec):
    _, cnet = build_method(PaLoRA, mini_spec)
    x = torch.rand(8, 1, 28, 28)
    plain = cnet.net(x)
    for ray in torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.3, 0.7]]):
        out = cnet(x, ray)
        assert all(torch.equal(out[k], plain[k]) for k in plain)


def test_vertex_ray_merges_that_tasks_adapter(mini_spec):
    _, cnet = build_method(PaLoRA, mini_spec, rank=2, alpha=3.0)
    randomize(cnet.adapters)
    weights = dict(cnet.net.named_parameters())
    for k in range(2):
        merged = cnet.merged_weights(torch.eye(2)[k])
        for name, key in cnet.adapted.items():
            a = cnet.adapters[key]
            delta = (a.B[k] @ a.A[k]).view(weights[name].shape) * (3.0 / 2)
            assert torch.allclose(merged[name], weights[name] + delta, atol=1e-6), name


def test_merged_weight_is_affine_in_the_ray(mini_spec):
    _, cnet = build_method(PaLoRA, mini_spec)
    randomize(cnet.adapters)
    ray = torch.tensor([0.3, 0.7])
    merged = cnet.merged_weights(ray)
    vertices = [cnet.merged_weights(torch.eye(2)[k]) for k in range(2)]
    for name in merged:
        assert torch.allclose(merged[name], 0.3 * vertices[0][name] + 0.7 * vertices[1][name], atol=1e-6)


def test_model_at_vertex_equals_backbone_with_adapter_k_merged_by_hand(mini_spec):
    _, cnet = build_method(PaLoRA, mini_spec)
    randomize(cnet.adapters)
    x = torch.rand(6, 1, 28, 28)
    for k in range(2):
        by_hand = copy.deepcopy(cnet.net)
        with torch.no_grad():
            for name, module in by_hand.named_modules():
                if isinstance(module, (nn.Linear, nn.Conv2d)):
                    a = cnet.adapters[name.replace(".", "__")]
                    module.weight += (a.B[k] @ a.A[k]).view(module.weight.shape) * a.scaling
        expected, out = by_hand(x), cnet(x, torch.eye(2)[k])
        assert all(torch.allclose(out[t], expected[t], atol=1e-5) for t in out)


def test_merged_linear_equals_the_official_activation_path():
    """Official PaLinear: W x + b + s sum_k ray_k (x A_k^T) B_k^T; ours merges the weight first."""
    layer = nn.Linear(7, 5)
    adapters = LowRankAdapters(layer, num_tasks=3, rank=2, alpha=1.0)
    with torch.no_grad():
        adapters.B.normal_()
    x, ray = torch.randn(4, 7), torch.tensor([0.2, 0.5, 0.3])
    official = F.linear(x, layer.weight, layer.bias) + adapters.scaling * sum(
        ray[k] * (x @ adapters.A[k].T @ adapters.B[k].T) for k in range(3)
    )
    merged = F.linear(x, layer.weight + adapters.delta(ray), layer.bias)
    assert torch.allclose(merged, official, atol=1e-5)


def test_conv_adapter_uses_loralib_layout():
    conv = nn.Conv2d(10, 20, kernel_size=5)
    adapters = LowRankAdapters(conv, num_tasks=2, rank=3, alpha=1.0)
    assert adapters.A.shape == (2, 3 * 5, 10 * 5) and adapters.B.shape == (2, 20 * 5, 3 * 5)
    assert adapters.delta(torch.tensor([0.5, 0.5])).shape == conv.weight.shape


def test_adapter_of_a_zero_weight_task_gets_zero_gradient(mini_spec):
    method, cnet = build_method(PaLoRA, mini_spec)
    randomize(cnet.adapters)
    x, targets = random_batch(mini_spec)
    rays = torch.tensor([[1.0, 0.0]])
    method.backward(compute_losses(cnet, x, targets, rays, mini_spec.objectives), rays, cnet)
    for key, a in cnet.adapters.items():
        assert torch.count_nonzero(a.A.grad[1]) == 0 and torch.count_nonzero(a.B.grad[1]) == 0
        if not key.startswith("heads__bottom-right"):  # the unweighted task's head plays no part
            assert torch.count_nonzero(a.B.grad[0]) > 0, key


def test_adapter_learning_rate_is_lr_times_tasks():
    for num_tasks in (2, 3):
        spec = tiny_spec(num_tasks)
        method, cnet = build_method(PaLoRA, spec)
        groups = {g["name"]: g for g in method.param_groups(cnet, 1e-3)}
        assert groups["adapters"]["lr"] == pytest.approx(1e-3 * num_tasks)
        assert groups["backbone"]["lr"] == pytest.approx(1e-3)
        method_off, cnet_off = build_method(PaLoRA, spec, reweight_lr=False)
        assert all(g["lr"] == 1e-3 for g in method_off.param_groups(cnet_off, 1e-3))
        n_grouped = sum(p.numel() for g in groups.values() for p in g["params"])
        assert n_grouped == sum(p.numel() for p in cnet.parameters())


def test_backbone_is_trained_too(mini_spec):
    method, cnet = build_method(PaLoRA, mini_spec)
    before = {n: p.detach().clone() for n, p in cnet.net.named_parameters()}
    optimizer = torch.optim.Adam(method.param_groups(cnet, 1e-3))
    x, targets = random_batch(mini_spec)
    rays = method.train_rays(0.5, torch.Generator())
    method.backward(compute_losses(cnet, x, targets, rays, mini_spec.objectives), rays, cnet)
    optimizer.step()
    assert all(not torch.equal(before[n], p) for n, p in cnet.net.named_parameters())


@pytest.mark.parametrize("rank", [1, 4])
def test_parameter_count_matches_the_formula(mini_spec, rank):
    """Adapters add r*T*(in+out) per Linear and r*k*k*T*(in+out) per k x k Conv2d (spec/methods.md)."""
    _, cnet = build_method(PaLoRA, mini_spec, rank=rank)
    backbone = sum(p.numel() for p in cnet.net.parameters())
    assert backbone == 27450  # MultiLeNet: 260 + 5020 + 16050 encoder, 2 x (2550 + 510) heads
    layers = [("conv", 1, 10, 5), ("conv", 10, 20, 5), ("linear", 320, 50, 1)] + 2 * [
        ("linear", 50, 50, 1),
        ("linear", 50, 10, 1),
    ]
    expected = sum(rank * k * k * 2 * (i + o) for _, i, o, k in layers)
    assert sum(p.numel() for p in cnet.adapters.parameters()) == expected
    assert cnet.inference_parameters() == backbone
    if rank == 1:
        assert expected == 3430


def test_default_sampler_is_the_annealing_schedule(mini_spec):
    method, _ = build_method(PaLoRA, mini_spec)
    rays = method.train_rays(1.0, torch.Generator())
    eps = 0.01
    assert rays.shape == (2, 2)
    assert rays[0, 0].item() == pytest.approx(eps**5 / (eps**5 + (1 - eps) ** 5), rel=1e-4)


def test_gradient_balancing_and_cosine_penalty_run(mini_spec):
    method, cnet = build_method(PaLoRA, mini_spec, inner_method="gb", reg_coefficient=0.5)
    randomize(cnet.adapters)
    x, targets = random_batch(mini_spec)
    rays = torch.tensor([[0.4, 0.6]])
    losses = compute_losses(cnet, x, targets, rays, mini_spec.objectives)
    # official shared_parameters after lorafy_model: the encoder's layers with their lora_A / lora_B
    encoder_adapters = [p for key, a in cnet.adapters.items() if key.startswith("encoder__") for p in a.parameters()]
    shared = list(cnet.net.encoder.parameters()) + encoder_adapters
    norms = []
    for k in range(2):
        grads = torch.autograd.grad(losses[0, k], shared, retain_graph=True)
        norms.append(torch.sqrt(sum((g**2).sum() for g in grads)))
    from methods.palora import cosine_penalty

    expected = sum(rays[0, k] * losses[0, k] / (norms[k] + 1e-3) for k in range(2)) + 0.5 * cosine_penalty(cnet)
    loss = method.backward(losses, rays, cnet)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("num_tasks", [2, 3])
def test_adapter_activations_path_equals_merged_weights(num_tasks):
    """Both ways of running PaLoRA (adapter_path merged / activations) give the same outputs and gradients."""
    spec = tiny_spec(num_tasks)
    nets = []
    for path in ("merged", "activations"):
        _, cnet = build_method(PaLoRA, spec, rank=2, alpha=3.0, adapter_path=path)
        randomize(cnet.adapters)
        nets.append(cnet)
    merged, activations = nets
    assert activations.conditioning == "linear-activations+conv-merged" and not activations.vmaps_over_rays
    assert set(activations.adapted) == {"encoder.0.weight", "encoder.3.weight"}  # the two convs
    x, _ = random_batch(spec, n=8)
    ray = torch.softmax(torch.arange(num_tasks, dtype=torch.float), 0)
    grads = []
    outs = []
    for cnet in nets:
        out = cnet(x, ray)
        sum((v * (i + 1)).sum() for i, v in enumerate(out.values())).backward()
        outs.append(out)
        grads.append({n: p.grad for n, p in cnet.named_parameters()})
    for name in outs[0]:
        torch.testing.assert_close(outs[1][name], outs[0][name], rtol=1e-5, atol=1e-5)
        assert not torch.equal(outs[0][name], merged.net(x)[name])  # the adapters did act
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-5)


def test_activations_path_keeps_no_ray_between_calls():
    """The Linear adapters' hooks hold the ray of one call only: none is left on the model after a
    call, whether it returned or raised, and two rays in turn give each its own output."""
    spec = tiny_spec(2)
    _, cnet = build_method(PaLoRA, spec, rank=2, adapter_path="activations")
    randomize(cnet.adapters)
    x, _ = random_batch(spec, n=4)
    rays = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    outputs = [cnet(x, ray) for ray in rays]
    assert not any(m._forward_hooks for m in cnet.net.modules()) and not hasattr(cnet, "ray")
    with pytest.raises(RuntimeError):
        cnet(x[:, :, :5], rays[0])  # a wrong input size fails inside the backbone
    assert not any(m._forward_hooks for m in cnet.net.modules())
    for ray, out in zip(rays, outputs, strict=True):
        again = cnet(x, ray)
        assert all(torch.equal(again[k], out[k]) for k in out)
    assert not torch.equal(outputs[0]["task0"], outputs[1]["task0"])
