"""The evaluation's fast path gives bitwise the numbers of the plain one: each ray's model made once,
inference mode, CPU forward slices, ray groups; and the validation ray subset."""

from __future__ import annotations

import pytest
import torch

from bench import evaluate as evaluation
from bench.data.batches import make_batches
from bench.evaluate import evaluate, validation_rays
from bench.rays import eval_grid
from bench.registry import METHODS
from bench.spec import ConditionedNet, DatasetSpec
from tests.conftest import random_batch
from tests.test_method_contract import make, train_steps


def plain_evaluate(cnet: ConditionedNet, batches, rays: torch.Tensor, spec: DatasetSpec) -> list[dict]:
    """The reference: every batch, every ray, ``cnet(x, ray)`` on the whole batch, under no_grad."""
    keys = [(o, m) for o in spec.objectives for m in o.metrics]
    sums = None
    cnet.eval()
    with torch.no_grad():
        for x, targets in batches:
            batch = [[m.statistics(cnet(x, ray)[o.name], targets[o.name]) for o, m in keys] for ray in rays]
            sums = (
                batch
                if sums is None
                else [[a + b for a, b in zip(s, t, strict=True)] for s, t in zip(sums, batch, strict=True)]
            )
    cnet.train()
    return [m.value(stat) for per_ray in sums for (_, m), stat in zip(keys, per_ray, strict=True)]


@pytest.mark.parametrize("name", METHODS.names())
def test_at_ray_is_the_model_at_that_ray(name, spec):
    method, cnet = make(name, spec)
    train_steps(method, cnet, spec, 2)  # adapters, members and hypernetwork away from their init
    cnet.eval()
    x, _ = random_batch(spec, 8)
    with torch.no_grad():
        for ray in method.eval_rays()[:3]:
            fixed, direct = cnet.at_ray(ray)(x), cnet(x, ray)
            for key in direct:
                assert torch.equal(fixed[key], direct[key]), (name, key)


FAST_CASES = {
    "palora": {},
    "pamal": {},
    "phn-ls": {},
    "cosmos": {},
    "ls-loop": {"stacking": "loop"},
    "ls-stacked": {"stacking": "vmap"},
    "mean": {},
}


@pytest.mark.parametrize("case", FAST_CASES)
def test_fast_evaluation_equals_the_plain_loop_bitwise(case, spec, monkeypatch: pytest.MonkeyPatch):
    method, cnet = make(case.removesuffix("-loop").removesuffix("-stacked"), spec, **FAST_CASES[case])
    train_steps(method, cnet, spec, 2)
    monkeypatch.setattr(evaluation, "CPU_FORWARD_SLICE", 16)  # 40-sample batches: slices of 16, 16, 8
    x, targets = random_batch(spec, 120)
    rays = method.eval_rays()
    expected = plain_evaluate(cnet, make_batches((x, targets), 40, torch.device("cpu")), rays, spec)
    rows = evaluate(cnet, make_batches((x, targets), 40, torch.device("cpu")), rays, spec)
    assert [r["value"] for r in rows] == expected
    assert len(rows) == len(rays) * sum(len(o.metrics) for o in spec.objectives)
    assert cnet.training  # the evaluation restores the training mode


def test_rays_in_several_groups_give_the_same_rows(spec, monkeypatch: pytest.MonkeyPatch):
    method, cnet = make("palora", spec)
    train_steps(method, cnet, spec, 2)
    x, targets = random_batch(spec, 32)
    rays = method.eval_rays()
    whole = evaluate(cnet, make_batches((x, targets), 16, torch.device("cpu")), rays, spec)
    monkeypatch.setattr(evaluation, "BOUND_BYTES_BUDGET", 3 * cnet.inference_parameters() * 4)
    assert len(evaluation.ray_groups(cnet, rays)) == -(-len(rays) // 3)
    assert evaluate(cnet, make_batches((x, targets), 16, torch.device("cpu")), rays, spec) == whole


def test_validation_rays_are_the_coarse_grid_inside_the_evaluation_grid():
    two = eval_grid(2, 11)
    assert validation_rays(two, 2, 3).tolist() == [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]
    assert validation_rays(two, 2, 6).shape[0] == 6  # lambda_1 in {0, 0.2, ..., 1}
    assert torch.equal(validation_rays(two, 2, 0), two)
    three = eval_grid(3, 11)
    coarse = validation_rays(three, 3, 3)
    assert coarse.shape[0] == 6 and torch.allclose(coarse.sum(1), torch.ones(6))
    assert set(map(tuple, (coarse * 2).round().int().tolist())) == {
        (2, 0, 0),
        (0, 2, 0),
        (0, 0, 2),
        (1, 1, 0),
        (1, 0, 1),
        (0, 1, 1),
    }


def test_validation_rays_fall_back_to_every_ray_when_none_is_on_the_coarse_grid():
    custom = torch.tensor([[0.3, 0.7], [0.9, 0.1]])  # LS with rays of its own
    assert torch.equal(validation_rays(custom, 2, 3), custom)
    uniform3 = torch.full((1, 3), 1 / 3)  # a single-point method on three tasks
    assert torch.equal(validation_rays(uniform3, 3, 3), uniform3)
    uniform2 = torch.full((1, 2), 0.5)
    assert torch.equal(validation_rays(uniform2, 2, 3), uniform2)
    many = eval_grid(5, 11)  # T >= 4: the vertices and the uniform ray, whatever the points per edge
    assert torch.equal(validation_rays(many, 5, 3), many)


def test_stacked_members_evaluated_in_one_vmapped_call_agree_to_rounding(spec, monkeypatch: pytest.MonkeyPatch):
    """On an accelerator LS's stacked members run all rays in one ``forward_rays``; forced here on CPU."""
    method, cnet = make("ls", spec, stacking="vmap")
    train_steps(method, cnet, spec, 2)
    x, targets = random_batch(spec, 64)
    rays = method.eval_rays().flip(0)[::2]  # a subset in another order: members gathered
    expected = plain_evaluate(cnet, make_batches((x, targets), 32, torch.device("cpu")), rays, spec)
    monkeypatch.setattr(evaluation, "batched_rays", lambda cnet, device: cnet.batches_rays)
    rows = evaluate(cnet, make_batches((x, targets), 32, torch.device("cpu")), rays, spec)
    assert [r["ray"] for r in rows][:: sum(len(o.metrics) for o in spec.objectives)] == [
        [round(v, 6) for v in ray] for ray in rays.tolist()
    ]
    assert [r["value"] for r in rows] == pytest.approx(expected, rel=1e-6, abs=1e-7)
