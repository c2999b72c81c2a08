"""PaMaL's own properties (spec/methods.md, pamal)."""

import math

import pytest
import torch

from bench.backbones import create_backbone
from bench.core.conditioning import parameter_key
from bench.core.errors import ConfigError
from bench.core.registry import DATASETS
from bench.train.config import apply_overrides, resolve
from bench.train.loop import compute_losses
from methods.pamal import PaMaL, PaMaLHparams, PaMaLNet, order_penalty
from tests.support import build_method, random_batch, tiny_spec


def plain_net_with(cnet: PaMaLNet, params: dict[str, torch.Tensor], num_tasks: int):
    net = create_backbone("multilenet", tiny_spec(num_tasks))
    net.load_state_dict({name: t.detach() for name, t in params.items()})
    return net


@pytest.mark.parametrize("num_tasks", [2, 3])
def test_network_at_a_vertex_equals_that_member(num_tasks):
    _, cnet = build_method(PaMaL, tiny_spec(num_tasks))
    x = torch.rand(6, 1, 28, 28)
    for k in range(num_tasks):
        ray = torch.eye(num_tasks)[k]
        member = plain_net_with(cnet, cnet.member(k), num_tasks)
        out, expected = cnet(x, ray), member(x)
        assert all(torch.allclose(out[name], expected[name], atol=1e-6) for name in expected)


def test_members_are_independently_initialised_unless_told_otherwise():
    _, cnet = build_method(PaMaL, tiny_spec(2))
    assert not torch.equal(cnet.member(0)["encoder.0.weight"], cnet.member(1)["encoder.0.weight"])
    _, same = build_method(PaMaL, tiny_spec(2), reinit=False)
    assert all(torch.equal(same.member(0)[n], same.member(1)[n]) for n in same.names)


def test_parameters_are_the_convex_combination_of_the_members():
    _, cnet = build_method(PaMaL, tiny_spec(3))
    ray = torch.tensor([0.2, 0.5, 0.3])
    combined = cnet.combined(ray)
    for name in cnet.names:
        expected = sum(ray[k] * cnet.member(k)[name] for k in range(3))
        assert torch.allclose(combined[name], expected, atol=1e-6)


@pytest.mark.parametrize("num_tasks", [2, 3])
def test_parameter_count_is_t_times_the_backbone(num_tasks):
    """Memory = T x model (spec/methods.md): 2 x 27,450 on MultiLeNet with 2 tasks."""
    _, cnet = build_method(PaMaL, tiny_spec(num_tasks))
    backbone = sum(p.numel() for p in create_backbone("multilenet", tiny_spec(num_tasks)).parameters())
    assert sum(p.numel() for p in cnet.parameters()) == num_tasks * backbone
    assert cnet.inference_parameters() == backbone
    if num_tasks == 2:
        assert backbone == 27450 and num_tasks * backbone == 54900


def test_member_of_a_zero_weight_task_gets_no_gradient():
    spec = tiny_spec(2)
    method, cnet = build_method(PaMaL, tiny_spec(2))
    x, targets = random_batch(spec, 8)
    rays = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    method.backward(compute_losses(cnet, x, targets, rays, spec.objectives), rays, cnet)
    for name in cnet.names:
        grad = cnet.members[parameter_key(name)].grad
        assert grad[1].abs().max() == 0, name
        assert (grad[0].abs().max() > 0) == (not name.startswith("heads.task1")), name


def test_order_penalty_known_value():
    rays = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]])
    # task 0 sorted by ray_0 descending: losses 1.0, 0.8, 1.2 -> decreases (0.2, 0)
    # task 1 sorted by ray_1 descending (rows 2, 1, 0): losses 0.5, 0.7, 0.6 -> decreases (0, 0.1)
    losses = torch.tensor([[1.0, 0.6], [0.8, 0.7], [1.2, 0.5]])
    expected = math.log((math.exp(0.2) + 1) / 2) + math.log((1 + math.exp(0.1)) / 2)
    assert order_penalty(losses, rays).item() == pytest.approx(expected, abs=1e-6)
    ordered = torch.tensor([[0.5, 1.0], [0.7, 0.7], [1.0, 0.5]])  # every loss grows as its weight shrinks
    assert order_penalty(ordered, rays).item() == pytest.approx(0.0, abs=1e-7)


def test_default_window_and_sampler_are_the_multimnist_preset():
    method, _ = build_method(PaMaL, tiny_spec(2))
    rays = method.train_rays(0.5, torch.Generator().manual_seed(0))
    assert rays.shape == (4, 2) and method.sampler.name == "annealing"


WINDOW_RAYS = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]])
# task 0 sorted by ray_0 descending (rows 0, 1, 2): losses 1.0, 0.8, 1.2 -> diffs (-0.2, +0.4)
# task 1 sorted by ray_1 descending (rows 2, 1, 0): losses 0.5, 0.7, 0.6 -> diffs (+0.2, -0.1)
WINDOW_LOSSES = torch.tensor([[1.0, 0.6], [0.8, 0.7], [1.2, 0.5]])


@pytest.mark.parametrize(
    ("regulariser", "expected"),
    [
        # relu(-diff): decreases (0.2, 0) and (0, 0.1), divisor W - 1 = 2
        ("paper", math.log((math.exp(0.2) + 1) / 2) + math.log((1 + math.exp(0.1)) / 2)),
        # relu(diff) as nik-dim/pamal multi_forward_ensemble_trainer.py: increases (0, 0.4) and (0.2, 0),
        # divided by num - 1 (the window, not T - 1)
        ("official", math.log((1 + math.exp(0.4)) / 2) + math.log((math.exp(0.2) + 1) / 2)),
        ("none", 0.0),
    ],
)
def test_order_penalty_known_values_of_each_regulariser(regulariser, expected):
    assert order_penalty(WINDOW_LOSSES, WINDOW_RAYS, regulariser).item() == pytest.approx(expected, abs=1e-6)


def test_official_divisor_is_the_window_minus_one():
    """Four rays on 2 tasks: the official divides by num - 1 = 3 (nik-dim/palora's unused
    ``MultiForwardRegularizationLoss`` divides by T - 1 = 1 instead)."""
    rays = torch.tensor([[0.8, 0.2], [0.6, 0.4], [0.4, 0.6], [0.2, 0.8]])
    losses = torch.tensor([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [1.3, 2.0]])  # task 0 rises by 0.3 once
    expected = math.log((2 + math.exp(0.3)) / 3) + math.log(3 / 3)
    assert order_penalty(losses, rays, "official").item() == pytest.approx(expected, abs=1e-6)


def test_the_official_sign_penalises_the_order_the_paper_asks_for():
    """nik-dim/pamal takes relu(diff) of the losses sorted by the task's weight, descending: it
    penalises a loss that grows as its weight shrinks, the order PaMaL Sec. 3.2 asks for. On an
    ordering that honours "more weight on task k never gives a higher loss k" the paper's penalty is
    zero and the official one is not; on the reversed window the reverse."""
    honoured = torch.tensor([[0.5, 1.0], [0.7, 0.7], [1.0, 0.5]])
    violated = honoured.flip(0)  # more weight, higher loss, for both tasks
    assert order_penalty(honoured, WINDOW_RAYS, "paper").item() == pytest.approx(0.0, abs=1e-7)
    assert order_penalty(violated, WINDOW_RAYS, "official").item() == pytest.approx(0.0, abs=1e-7)
    assert order_penalty(honoured, WINDOW_RAYS, "official").item() > 0.1
    assert order_penalty(honoured, WINDOW_RAYS, "official").item() == pytest.approx(
        order_penalty(violated, WINDOW_RAYS, "paper").item()
    )
    for losses in (honoured, violated, WINDOW_LOSSES):  # official(L) = paper(-L): relu(diff) vs relu(-diff)
        assert order_penalty(losses, WINDOW_RAYS, "official").item() == pytest.approx(
            order_penalty(-losses, WINDOW_RAYS, "paper").item()
        )


@pytest.mark.parametrize("regulariser", ["paper", "official", "none"])
def test_regularised_loss_adds_the_chosen_penalty_and_none_leaves_it_unchanged(regulariser):
    method, cnet = build_method(PaMaL, tiny_spec(2), reg_coefficient=1.0, regulariser=regulariser)
    loss = torch.tensor(10.0)
    expected = 10.0 + order_penalty(WINDOW_LOSSES, WINDOW_RAYS, regulariser).item()
    out = method.regularised(loss, WINDOW_LOSSES, WINDOW_RAYS, cnet)
    assert out.item() == pytest.approx(expected)
    if regulariser == "none":
        assert out is loss
        big, _ = build_method(PaMaL, tiny_spec(2), reg_coefficient=100.0, regulariser="none")
        assert big.regularised(loss, WINDOW_LOSSES, WINDOW_RAYS, cnet) is loss


def test_regulariser_setting_is_validated_with_the_valid_choices():
    assert PaMaLHparams().regulariser == "paper"
    with pytest.raises(ConfigError, match="valid: official, paper, none"):
        apply_overrides(PaMaLHparams(), "method", {"regulariser": "offical"})
    with pytest.raises(ConfigError, match="valid: official, paper, none"):
        PaMaLHparams(regulariser="sign")
    with pytest.raises(ConfigError, match="valid: official, paper, none"):
        order_penalty(WINDOW_LOSSES, WINDOW_RAYS, "relu")


PRESET_REGULARISER = {
    # nik-dim/pamal's trainer produced the published PaMaL numbers (its presets: gradnorm, Dirichlet windows)
    "utkface": "official",
    "cityscapes": "official",
    "celeba": "official",
    "census": "official",
    "census-income-marital": "official",
    # the preset comes from nik-dim/palora, whose trainer adds no regulariser
    "sarcos": "none",
    "nyuv2": "none",
    "multimnist": "none",
    "multimnist-mini": "none",
    "multimnist3": "none",
    "multifashion": "none",
    "multifashion-mnist": "none",
}


def test_every_regulariser_rule_names_a_dataset():
    assert set(PRESET_REGULARISER) <= set(DATASETS.names())


@pytest.mark.parametrize("dataset", DATASETS.names())
def test_each_preset_follows_the_regulariser_of_the_code_behind_its_numbers(dataset):
    """A dataset without published numbers (a new one) keeps the method's default."""
    expected = PRESET_REGULARISER.get(dataset, PaMaLHparams().regulariser)
    assert resolve("pamal", dataset, seed=0).hparams.regulariser == expected


@pytest.mark.parametrize(("dataset", "p"), [("utkface", 2.0), ("celeba", 2.0), ("cityscapes", 7.0)])
def test_pamal_follows_nik_dim_pamal_where_the_palora_code_cannot_run(dataset, p):
    """The PaLoRA repository's get_method raises on inner_method gradnorm; nik-dim/pamal draws each
    window ray from a plain Dirichlet(p)."""
    cfg = resolve("pamal", dataset)
    hp = cfg.hparams
    assert (hp.sampler, hp.p, hp.window, hp.inner_method, hp.reg_coefficient) == ("dirichlet", p, 3, "gradnorm", 1.0)
