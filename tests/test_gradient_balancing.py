"""Gradient balancing (methods/gradients.py) with the weights worked out by hand on a one-layer encoder.

Official rule (nik-dim/palora ``src/callbacks/methods/palora.py`` ``PaLoRA_GB.get_weighted_loss``,
``pamal.py`` ``PaMaL_GB``; nik-dim/pamal ``src/methods/pamal_weight_methods.py``
``PamalGradientNormalization``): per ray, loss = sum_t ray_t L_t / (||grad_shared L_t|| + 1e-3), the
norms constants, the shared parameters being the model's ``shared_parameters()`` after the method
rebuilt it: PaLoRA's encoder with its ``lora_A`` / ``lora_B``, PaMaL's encoder members.

Model: z = x W(ray)^T + b (encoder, Linear 3 -> 4), y_t = z h_t^T + c_t (heads), L_t = mean (y_t - t_t)^2.
With G_t = dL_t/dz = 2 (y_t - t_t) h_t / N, D_t = dL_t/dW(ray) = G_t^T x, dL_t/db = sum_n G_t:
- PaLoRA, W(ray) = W + s sum_k ray_k B_k A_k: dL_t/dB_k = s ray_k D_t A_k^T, dL_t/dA_k = s ray_k B_k^T D_t.
- PaMaL, W(ray) = sum_k ray_k W_k (b likewise): dL_t/dW_k = ray_k D_t, dL_t/db_k = ray_k dL_t/db.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from bench.core.spec import DatasetSpec, MultiTaskNet
from bench.data.kit.objectives import regression
from methods.palora import PaLoRA
from methods.pamal import PaMaL
from tests.support import build_method

SPEC = DatasetSpec("linear", "random", (3,), (regression("a"), regression("b")), "mlp", (1.0, 1.0), None)
RAYS = torch.tensor([[0.3, 0.7], [0.8, 0.2]], dtype=torch.float64)
EPS = 1e-3  # the official xi


def tiny_net() -> MultiTaskNet:
    return MultiTaskNet(nn.Linear(3, 4), nn.ModuleDict({"a": nn.Linear(4, 1), "b": nn.Linear(4, 1)})).double()


def data() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(2, 5, generator=g, dtype=torch.float64)


def losses_of(cnet: nn.Module, x: Tensor, targets: Tensor) -> Tensor:
    rows = []
    for ray in RAYS:
        out = cnet(x, ray)
        rows.append(torch.stack([((out[k][:, 0] - targets[t]) ** 2).mean() for t, k in enumerate(("a", "b"))]))
    return torch.stack(rows)


def encoder_terms(w: Tensor, b: Tensor, heads: list[tuple[Tensor, Tensor]], x: Tensor, targets: Tensor):
    """Per task: (L_t, D_t = dL_t/dW, dL_t/db) for the encoder weight ``w`` in use, by hand."""
    z = x @ w.T + b
    out = []
    for (h, c), t in zip(heads, targets, strict=True):
        y = z @ h.T + c
        g = 2 * (y[:, 0] - t)[:, None] / len(x)
        grad_z = g * h  # [N, 4]
        out.append((((y[:, 0] - t) ** 2).mean(), grad_z.T @ x, grad_z.sum(0)))
    return out


def test_palora_gb_norm_includes_the_encoder_adapters():
    method, cnet = build_method(PaLoRA, SPEC, make_backbone=tiny_net, inner_method="gb", rank=2, alpha=3.0)
    cnet = cnet.double()
    adapters = cnet.adapters["encoder"]
    with torch.no_grad():
        adapters.B.copy_(torch.randn(adapters.B.shape, generator=torch.Generator().manual_seed(1)))
    x, targets = data()
    loss = method.backward(losses_of(cnet, x, targets), RAYS, cnet)

    w, b = cnet.net.encoder.weight.detach(), cnet.net.encoder.bias.detach()
    a_k, b_k, s = adapters.A.detach(), adapters.B.detach(), 3.0 / 2
    heads = [(cnet.net.heads[k].weight.detach(), cnet.net.heads[k].bias.detach()) for k in ("a", "b")]
    expected, expected_without_adapters, grad_w = 0.0, 0.0, torch.zeros_like(w)
    for ray in RAYS:
        w_ray = w + s * sum(ray[k] * b_k[k] @ a_k[k] for k in range(2))
        for t, (task_loss, d, db) in enumerate(encoder_terms(w_ray, b, heads, x, targets)):
            adapter_sq = sum(
                ((s * ray[k] * d @ a_k[k].T) ** 2).sum() + ((s * ray[k] * b_k[k].T @ d) ** 2).sum() for k in range(2)
            )
            backbone_sq = (d**2).sum() + (db**2).sum()
            expected += ray[t] * task_loss / ((backbone_sq + adapter_sq).sqrt() + EPS)
            expected_without_adapters += ray[t] * task_loss / (backbone_sq.sqrt() + EPS)
            grad_w += ray[t] / ((backbone_sq + adapter_sq).sqrt() + EPS) * d
    assert loss.item() == pytest.approx(float(expected), rel=1e-10)
    assert abs(float(expected) / float(expected_without_adapters) - 1) > 0.05  # the adapters do count
    torch.testing.assert_close(cnet.net.encoder.weight.grad, grad_w, rtol=1e-10, atol=1e-12)


def test_pamal_gradnorm_norm_is_over_the_encoder_members():
    """The official shared parameters are every member of the encoder's subspace layers, so a task's
    norm is ||ray|| times the norm of its gradient on the combined encoder."""
    method, cnet = build_method(PaMaL, SPEC, make_backbone=tiny_net, inner_method="gradnorm", window=2)
    cnet = cnet.double()
    x, targets = data()
    loss = method.backward(losses_of(cnet, x, targets), RAYS, cnet)

    member = [cnet.member(k) for k in range(2)]
    expected, grad_w0 = 0.0, torch.zeros(4, 3, dtype=torch.float64)
    for ray in RAYS:
        mix = {n: sum(ray[k] * member[k][n].detach() for k in range(2)) for n in member[0]}
        heads = [(mix[f"heads.{k}.weight"], mix[f"heads.{k}.bias"]) for k in ("a", "b")]
        terms = encoder_terms(mix["encoder.weight"], mix["encoder.bias"], heads, x, targets)
        for t, (task_loss, d, db) in enumerate(terms):
            norm = ray.norm() * ((d**2).sum() + (db**2).sum()).sqrt()
            expected += ray[t] * task_loss / (norm + EPS)
            grad_w0 += ray[t] / (norm + EPS) * ray[0] * d
    assert loss.item() == pytest.approx(float(expected), rel=1e-10)
    torch.testing.assert_close(cnet.members["encoder__weight"].grad[0], grad_w0, rtol=1e-10, atol=1e-12)
