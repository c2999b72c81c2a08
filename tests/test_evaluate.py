"""The evaluation's fast path gives bitwise the numbers of the plain one: each ray's model made once,
inference mode, CPU forward slices, ray groups; a model whose outputs depend on the batch (PHN's
batch-statistics BatchNorm) is never sliced; and the validation ray subset."""

from __future__ import annotations

import pytest
import torch

from bench.core.rays import eval_grid
from bench.core.registry import DATASETS, METHODS, load_all
from bench.core.spec import Batch, ConditionedNet, DatasetSpec, Method
from bench.data.kit.batches import make_batches
from bench.data.kit.dense import depth, segmentation
from bench.data.kit.objectives import classification
from bench.train import evaluate as evaluation
from bench.train.config import resolve
from bench.train.evaluate import evaluate, validation_rays
from tests.support import build_method, random_batch, train_steps


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
    method, cnet = build_method(name, spec)
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


def record_slices(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ``size`` of every :func:`bench.train.evaluate.sliced` call the evaluation makes from now on."""
    sizes: list[int] = []
    real = evaluation.sliced

    def spy(model, x, size, sample_dim=0):
        sizes.append(size)
        return real(model, x, size, sample_dim)

    monkeypatch.setattr(evaluation, "sliced", spy)
    return sizes


@pytest.mark.parametrize("case", FAST_CASES)
def test_fast_evaluation_equals_the_plain_loop_bitwise(case, spec, monkeypatch: pytest.MonkeyPatch):
    method, cnet = build_method(case.removesuffix("-loop").removesuffix("-stacked"), spec, **FAST_CASES[case])
    train_steps(method, cnet, spec, 2)
    monkeypatch.setattr(evaluation, "CPU_FORWARD_SLICE", 16)  # 40-sample batches: slices of 16, 16, 8
    x, targets = random_batch(spec, 120)
    rays = method.eval_rays()
    expected = plain_evaluate(cnet, make_batches((x, targets), 40, torch.device("cpu")), rays, spec)
    sizes = record_slices(monkeypatch)
    rows = evaluate(cnet, make_batches((x, targets), 40, torch.device("cpu")), rays, spec)
    assert not cnet.batch_dependent_eval and sizes and set(sizes) == {16}  # an ordinary model: sliced on CPU
    assert [r["value"] for r in rows] == expected
    assert len(rows) == len(rays) * sum(len(o.metrics) for o in spec.objectives)
    assert cnet.training  # the evaluation restores the training mode


def _phn_with_batchnorm(backbone: str) -> tuple[DatasetSpec, Method, ConditionedNet, Batch]:
    """PHN-LS over a small SegNet (Cityscapes' two dense tasks, stage widths of 4) or a ResNet-18 (two
    classification tasks) on 32x32 images, whose BatchNorm uses batch statistics in evaluation too,
    and 16 random samples."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 32, 32, generator=g)
    if backbone == "segnet":
        objectives = (segmentation("segmentation", 3), depth("depth"))
        targets = {
            "segmentation": torch.randint(-1, 3, (16, 32, 32), generator=g),
            "depth": torch.rand(16, 1, 32, 32, generator=g) * (torch.rand(16, 1, 32, 32, generator=g) > 0.1),
        }
        options, chunk_size = {"filters": (4, 4, 4, 4, 4)}, 1_000
    else:
        objectives = (classification("a", 2), classification("b", 5))
        targets = {"a": torch.randint(2, (16,), generator=g), "b": torch.randint(5, (16,), generator=g)}
        options, chunk_size = {}, 200_000
    spec = DatasetSpec("batchnorm", "random 32x32 images", (3, 32, 32), objectives, backbone, (1.0, 1.0), load=None)
    method, cnet = build_method("phn-ls", spec, backbone_options=options, chunk_size=chunk_size)
    return spec, method, cnet, (x, targets)


@pytest.mark.parametrize("backbone", ["segnet", pytest.param("resnet18", marks=pytest.mark.slow)])
def test_a_batch_dependent_model_is_evaluated_on_whole_batches_on_every_device(
    backbone, monkeypatch: pytest.MonkeyPatch
):
    """PHN's target normalises with the batch's statistics in evaluation (official ``ResNetTarget``),
    so its front depends on how the split is batched: the CPU evaluation must not cut the batches of
    ``train.eval_batch_size`` into forward slices. CPU slicing on, slicing off (the accelerator's
    path) and the plain loop over whole batches give bitwise the same rows; slicing it would not."""
    spec, method, cnet, data = _phn_with_batchnorm(backbone)
    assert cnet.batch_dependent_eval
    rays = method.eval_rays()[[2, 7]]
    cpu = torch.device("cpu")
    monkeypatch.setattr(evaluation, "CPU_FORWARD_SLICE", 3)  # batches of 8 would be sliced 3, 3, 2
    sizes = record_slices(monkeypatch)
    rows = evaluate(cnet, make_batches(data, 8, cpu), rays, spec)
    assert sizes and set(sizes) == {0}  # every batch whole
    values = [r["value"] for r in rows]
    assert all(v == v for v in values)  # no NaN, so == below compares numbers
    assert values == plain_evaluate(cnet, make_batches(data, 8, cpu), rays, spec)
    monkeypatch.setattr(evaluation, "CPU_FORWARD_SLICE", 0)  # slicing disabled: what a GPU runs
    assert evaluate(cnet, make_batches(data, 8, cpu), rays, spec) == rows
    monkeypatch.setattr(evaluation, "forward_slice", lambda device, batch_dependent=False: 3)  # the guard removed
    assert [r["value"] for r in evaluate(cnet, make_batches(data, 8, cpu), rays, spec)] != values


def test_batch_dependence_is_read_from_the_model():
    """Batch statistics make a model batch-dependent; BatchNorm with running statistics (every other
    method on SegNet) and models without BatchNorm do not."""
    _, _, phn, _ = _phn_with_batchnorm("segnet")
    assert phn.batch_dependent_eval and evaluation.forward_slice(torch.device("cpu"), True) == 0
    spec = DatasetSpec(
        "dense", "random", (3, 32, 32), (segmentation("s", 3), depth("d")), "segnet", (1.0, 1.0), load=None
    )
    for name in ("mean", "pamal", "palora"):
        _, cnet = build_method(name, spec, seed=None, backbone_options={"filters": (4, 4, 4, 4, 4)})
        assert not cnet.batch_dependent_eval, name
    assert evaluation.forward_slice(torch.device("cpu")) == evaluation.CPU_FORWARD_SLICE


OFFICIAL_EVAL_BATCH = {"utkface": 512, "celeba": 512, "cityscapes": 8, "nyuv2": 2}
"""nik-dim/palora @ f9e8210 ``BaseDataModule``: ``valid_batch_size`` (UTKFace, CelebA), else the training
batch (Cityscapes, NYUv2). PHN's batch-statistics BatchNorm sees these batches (FIDELITY.md)."""


def test_eval_batch_sizes_are_the_official_ones_on_batchnorm_backbones():
    """Every dataset on a BatchNorm backbone declares its evaluation batch; the official ones match."""
    load_all()
    batchnorm = ("resnet18", "resnet18-imagenet", "segnet")
    for name in DATASETS.names():
        if DATASETS.get(name).backbone in batchnorm:
            assert "train.eval_batch_size" in DATASETS.get(name).train_defaults, name
    for name, size in OFFICIAL_EVAL_BATCH.items():
        assert DATASETS.get(name).backbone in batchnorm, name
        assert resolve("phn-ls", name).train.eval_batch_size == size, name


def test_rays_in_several_groups_give_the_same_rows(spec, monkeypatch: pytest.MonkeyPatch):
    method, cnet = build_method("palora", spec)
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
    method, cnet = build_method("ls", spec, stacking="vmap")
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


def test_cpu_max_pools_give_the_pooling_values_and_leave_training_untouched():
    """The evaluation's 2x2 max pools (maxima of strided views) equal ATen's pooling value for value:
    with ties (a flat background), NaN, -inf and odd sizes (the module's own pooling); on exit the
    module's own forward is back, whose argmax indices training differentiates through."""
    pool, other = torch.nn.MaxPool2d(2), torch.nn.MaxPool2d(3, stride=2, padding=1)  # ResNet's stays as is
    net = torch.nn.Sequential(pool, other)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 12, 10, generator=g)
    x[:, :, :6, :6] = 0.25
    x[0, 0, 0, 1], x[1, 2, 5, 7], x[2, 1, 3, 3] = float("nan"), float("-inf"), float("inf")
    odd = torch.randn(2, 3, 7, 9, generator=g)
    expected = [torch.nn.functional.max_pool2d(t, 2) for t in (x, odd)]
    with evaluation.cpu_max_pools(net):
        assert "forward" in vars(pool) and "forward" not in vars(other)
        got = [pool(t) for t in (x, odd)]
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
    assert "forward" not in vars(pool)
