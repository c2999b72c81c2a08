"""PHN's hypernetwork (names, shapes, parameter count, chunks, initialisation, ray dependence), its
target's batch statistics, and the EPO linear programmes."""

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from torch import nn

from bench.backbones import create_backbone
from bench.core.errors import ConfigError
from bench.core.spec import MultiTaskNet
from bench.train.loop import compute_losses
from methods.epo import adjustments, epo_weights
from methods.phn import PHNEPO, PHNLS, PHNNet
from tests.support import build_method, random_batch, tiny_spec


@pytest.mark.parametrize("chunk_size", [0, 1000])
@pytest.mark.parametrize("num_tasks", [2, 3])
def test_generated_parameters_have_the_targets_names_and_shapes(num_tasks, chunk_size):
    spec = tiny_spec(num_tasks)
    _, cnet = build_method(PHNLS, spec, chunk_size=chunk_size)
    reference = {n: p.shape for n, p in create_backbone("multilenet", spec).named_parameters()}
    generated = cnet.hyper(torch.full((num_tasks,), 1.0 / num_tasks))
    assert {n: t.shape for n, t in generated.items()} == reference
    assert list(cnet.target.parameters()) == []  # the target holds no trainable copy


def test_outputs_change_with_the_ray_and_match_a_plain_net_with_the_generated_weights():
    spec = tiny_spec(2)
    _, cnet = build_method(PHNLS, spec)
    x = torch.rand(5, 1, 28, 28)
    a, b = torch.tensor([0.9, 0.1]), torch.tensor([0.2, 0.8])
    out_a, out_b = cnet(x, a), cnet(x, b)
    assert not torch.allclose(out_a["task0"], out_b["task0"])
    plain = create_backbone("multilenet", spec)
    plain.load_state_dict({n: t.detach() for n, t in cnet.hyper(a).items()})
    expected = plain(x)
    assert all(torch.allclose(out_a[k], expected[k], atol=1e-5) for k in expected)


def test_hypernetwork_parameter_count_matches_the_architecture():
    """MLP T->100->100->100 plus a Linear(100, numel) head per target tensor: 101 x 27,450 + 20,500."""
    _, cnet = build_method(PHNLS, tiny_spec(2))
    mlp = (2 * 100 + 100) + 2 * (100 * 100 + 100)
    assert sum(p.numel() for p in cnet.parameters()) == mlp + 101 * 27450 == 2_792_950
    assert cnet.inference_parameters() == 27450
    _, chunked = build_method(PHNLS, tiny_spec(2), chunk_size=1000, chunk_embedding=8)
    # ray embedding 2x32 (no bias), 105 chunk embeddings of 8 (the official fixed count), MLP
    # (32+8)->100->100->100, bias-free head 100->1000 (the official num_ws x w_dim rows)
    chunked_mlp = (40 * 100 + 100) + 2 * (100 * 100 + 100)
    expected = 2 * 32 + 105 * 8 + chunked_mlp + 100 * 1000
    assert sum(p.numel() for p in chunked.parameters()) == expected


def test_chunked_hypernetwork_starts_like_the_official_resnet_hyper():
    """Ray embedding, chunk embeddings and head ~N(0, 0.1), the head without bias (official
    ``ResnetHyper``/``SegNetHyper``: ``normal_(std=0.1)``, ``F.linear(rep, weight=w)``)."""
    _, cnet = build_method(PHNLS, tiny_spec(2), chunk_size=5000, chunk_embedding=64)
    hyper = cnet.hyper
    assert hyper.chunk_head.bias is None and hyper.ray_embedding.bias is None
    for weight in (hyper.ray_embedding.weight, hyper.chunk_embeddings, hyper.chunk_head.weight):
        assert abs(weight.mean().item()) < 0.02
        assert weight.std().item() == pytest.approx(0.1, rel=0.15)
    assert hyper.chunk_head.weight.std().item() == pytest.approx(0.1, rel=0.01)  # 500,000 draws


def test_a_fixed_number_of_chunks_of_which_the_target_uses_the_first():
    """30 chunks of 1,000 for 27,450 parameters: chunks 0-27 are used (27 only for 450 values), the
    last two are discarded, so their embeddings get no gradient; too few chunks is a config error."""
    spec = tiny_spec(2)
    _, cnet = build_method(PHNLS, spec, chunk_size=1000, chunks=30, chunk_embedding=8)
    hyper = cnet.hyper
    assert hyper.chunk_embeddings.shape == (30, 8) and hyper.used_chunks == 28
    x, targets = random_batch(spec, 4)
    losses = compute_losses(cnet, x, targets, torch.tensor([[0.3, 0.7]]), spec.objectives)
    losses.sum().backward()
    moved = hyper.chunk_embeddings.grad.abs().sum(dim=1)
    assert (moved[:28] > 0).all() and (moved[28:] == 0).all()
    with pytest.raises(ConfigError, match="method.chunks >= 28"):
        build_method(PHNLS, spec, chunk_size=1000, chunks=27)


def _bn_net() -> MultiTaskNet:
    encoder = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())
    heads = nn.ModuleDict({"task0": nn.Linear(4 * 26 * 26, 3), "task1": nn.Linear(4 * 26 * 26, 2)})
    return MultiTaskNet(encoder, heads)


def test_target_batchnorm_normalises_with_batch_statistics_in_evaluation():
    """The official ``ResNetTarget`` calls ``F.batch_norm(..., training=True)`` with fresh buffers:
    evaluation uses the batch's statistics, and nothing is accumulated across steps."""
    torch.manual_seed(0)
    cnet = PHNNet(_bn_net(), num_tasks=2, hidden=8, chunk_size=0, chunk_embedding=8).eval()
    assert not any("running" in name or "batches" in name for name in cnet.state_dict())
    x, ray = torch.rand(6, 1, 28, 28), torch.tensor([0.4, 0.6])
    with torch.no_grad():
        out = cnet(x, ray)
        plain = _bn_net().train()  # a module in training mode normalises with batch statistics
        plain.load_state_dict({n: t for n, t in cnet.hyper(ray).items()}, strict=False)
        expected = plain(x)
        alone = cnet(x[:2], ray)
    assert all(torch.allclose(out[k], expected[k], atol=1e-5) for k in expected)
    assert not torch.allclose(out["task0"][:2], alone["task0"], atol=1e-3)  # depends on the batch


def test_chunks_depend_on_the_ray_differently():
    """Each chunk's ray dependence goes through the MLP with its own embedding, so two chunks do not
    move by the same amount when the ray changes (a linear read-out of [mlp(ray); e_c] would)."""
    _, cnet = build_method(PHNLS, tiny_spec(2), chunk_size=1000, chunk_embedding=8)
    hyper = cnet.hyper
    a, b = torch.tensor([0.9, 0.1]), torch.tensor([0.2, 0.8])
    flat = [torch.cat([t.flatten() for t in hyper(r).values()]) for r in (a, b)]
    change = (flat[0] - flat[1])[: 2 * 1000].view(2, 1000)
    assert not torch.allclose(change[0], change[1], atol=1e-6)


def test_training_rays_are_one_dirichlet_draw_per_step():
    method, _ = build_method(PHNLS, tiny_spec(2), alpha=0.2)
    rays = torch.cat([method.train_rays(0.5, torch.Generator().manual_seed(s)) for s in range(400)])
    assert rays.shape == (400, 2) and torch.allclose(rays.sum(1), torch.ones(400))
    # Dirichlet(0.2, 0.2): mass near the vertices, mean 1/2
    assert (rays[:, 0] < 0.1).float().mean() > 0.3 and abs(rays[:, 0].mean() - 0.5) < 0.08


def test_epo_balance_move_descends_on_the_task_furthest_above_the_ray():
    # r = (0.8, 0.2), l = (1, 1): r*l = (0.8, 0.2) is not balanced and task 0 is the one to reduce
    alpha, move = epo_weights(np.array([1.0, 1.0]), np.eye(2), np.array([0.8, 0.2]))
    assert move == "balance" and np.allclose(alpha, [1.0, 0.0])


def test_epo_dominance_move_maximises_common_descent():
    # r*l balanced -> maximise 1^T C alpha = 1.5 alpha_0 + 2.5 alpha_1 subject to C alpha >= 0
    alpha, move = epo_weights(np.array([1.0, 1.0]), np.array([[1.0, 0.5], [0.5, 2.0]]), np.array([0.5, 0.5]))
    assert move == "dominance" and np.allclose(alpha, [0.0, 1.0])


def test_epo_adjustment_known_value():
    weighted, mu, a = adjustments(np.array([1.0, 1.0]), np.array([0.8, 0.2]))
    expected_mu = 0.8 * np.log(1.6) + 0.2 * np.log(0.4)
    assert mu == pytest.approx(expected_mu)
    assert np.allclose(a, [0.8 * (np.log(1.6) - expected_mu), 0.2 * (np.log(0.4) - expected_mu)])


def test_epo_infeasible_dominance_lp_falls_back_to_the_normalised_ray():
    """r = 1/3, l = (1, 1, 1.01): mu = 1.1e-5 <= eps, so the dominance LP applies; C a has a
    positive entry, so it asks alpha . C a >= 0 together with C alpha >= 0, which no simplex point
    meets here. The official ``EPO`` then uses alpha = r / sum(r) (its ``get_alpha`` returns None)."""
    losses, ray = np.array([1.0, 1.0, 1.01]), np.full(3, 1.0 / 3)
    jacobian = np.array([[-1.0, -1.0], [-1.0, 1.0], [0.0, -1.0]])
    gram = jacobian @ jacobian.T
    _, mu, a = adjustments(losses, ray)
    assert mu < 1e-4 and (gram @ a).max() > 0
    # the best alpha . C a under C alpha >= 0 on the simplex is negative: the LP is infeasible
    best = linprog(-(gram @ a), A_ub=-gram, b_ub=np.zeros(3), A_eq=np.ones((1, 3)), b_eq=[1.0], bounds=[(0, None)] * 3)
    assert best.status == 0 and -best.fun < -5e-6  # -7.3e-6
    alpha, move = epo_weights(losses, gram, ray)
    assert move == "fallback" and np.allclose(alpha, ray / ray.sum())
    alpha, move = epo_weights(losses, gram, 3 * ray)  # an unnormalised ray is normalised
    assert move == "fallback" and np.allclose(alpha, [1 / 3, 1 / 3, 1 / 3])


@pytest.mark.parametrize("seed", range(10))
def test_epo_direction_never_increases_a_loss_it_must_not(seed):
    """Dominance moves keep C alpha >= 0 (no task ascends); balance moves keep descent on the task with
    the largest r_k l_k. Checked on random Gram matrices, losses and rays."""
    rng = np.random.default_rng(seed)
    jacobian = rng.normal(size=(3, 6))
    gram = jacobian @ jacobian.T
    ray = rng.dirichlet(np.ones(3))
    losses = rng.uniform(0.5, 2.0, size=3)
    alpha, move = epo_weights(losses, gram, ray)
    assert alpha.min() >= -1e-9 and alpha.sum() == pytest.approx(1.0)
    descent = gram @ alpha
    if move == "balance":
        assert descent[np.argmax(ray * losses)] >= -1e-9
    elif move == "dominance":
        assert descent.min() >= -1e-9


def test_phn_epo_step_weights_the_losses_by_t_times_the_lp_solution():
    spec = tiny_spec(2)
    method, cnet = build_method(PHNEPO, spec)
    x, targets = random_batch(spec, 16)
    rays = method.train_rays(0.5, torch.Generator().manual_seed(1))
    losses = compute_losses(cnet, x, targets, rays, spec.objectives)
    params = list(cnet.hyper.parameters())
    grads = [torch.autograd.grad(losses[0, k], params, retain_graph=True) for k in range(2)]
    flat = torch.stack([torch.cat([g.flatten() for g in grads[k]]) for k in range(2)]).double()
    alpha, _ = epo_weights(losses.detach()[0].double().numpy(), (flat @ flat.T).numpy(), rays[0].numpy())
    loss = method.backward(losses, rays, cnet)
    assert sum(method.moves.values()) == 1
    assert loss.item() == pytest.approx(float(2 * (alpha * losses.detach()[0].numpy()).sum()), rel=1e-5)
    head = cnet.hyper.ray_mlp[0].weight
    index = params.index(head)
    expected = 2 * (alpha[0] * grads[0][index] + alpha[1] * grads[1][index])
    assert torch.allclose(head.grad, expected.float(), atol=1e-6)
