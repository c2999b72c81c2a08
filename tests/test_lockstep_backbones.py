"""Lockstep of PaLoRA and PaMaL on the real backbones: ResNet-18 (UTKFace) and SegNet (Cityscapes).

Each record ``tests/lockstep/<method>-<backbone>.json`` holds what the official code computed from our
initial weights on fixed seeded batches, with BatchNorm in train mode: the per-step losses [R, T], the
rays, a checksum of the parameters, one of the step's update and one of the BatchNorm running statistics
after every step, and every layer's ``num_batches_tracked``. It is produced by ``python
tools/official_lockstep.py --official <checkout of nik-dim/palora> --method NAME --backbone BACKBONE``
(``tools/lockstep_backbones.py``): PaLoRA through nik-dim/palora's trainer, PaMaL through nik-dim/pamal's
(the nik-dim/palora PaMaL cannot run the UTKFace and Cityscapes presets, FIDELITY.md). Here the same
steps run through our code only, with the dataset's preset (``bench/presets/<dataset>.toml``) on a
small input (the record's ``setup.input_shape``).

The records also hold the per-layer distribution (std, mean, excess kurtosis) of the freshly built
official models, with the method's layer rewrite and without; :func:`test_initialisation_matches_official`
compares ours by distribution (the random streams differ).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from bench.core.fidelity import assert_close, checksum, load_record, lockstep_precision
from bench.core.registry import DATASETS, METHODS
from bench.core.spec import ConditionedNet, DatasetSpec, Method, MultiTaskNet
from bench.train.config import resolve
from bench.train.loop import StepOptions, train_step, training_progress
from bench.train.trial import backbone_factory, make_optimizer

RECORDS = ("palora-resnet18", "pamal-resnet18", "palora-segnet", "pamal-segnet")
AGE_STD = 19.9
"""The age std the UTKFace target carries next to z ([z, std]); the loss reads z only."""
MIN_ELEMENTS = 32
"""Tensors with fewer elements (the heads' biases) are left out of the initialisation comparison."""
IGNORE_FRACTION = 0.1
"""About this share of segmentation pixels is -1 (ignored) and of depth pixels 0 (invalid)."""


def spec_for(setup: dict[str, Any]) -> DatasetSpec:
    """The dataset's spec on the record's small input shape."""
    return dataclasses.replace(DATASETS.get(setup["dataset"]), input_shape=tuple(setup["input_shape"]))


def build_ours(
    method_name: str, setup: dict[str, Any], overrides: dict[str, Any] | None = None
) -> tuple[Method, ConditionedNet, torch.optim.Optimizer, DatasetSpec]:
    """Our method, model (seeded with ``setup["seed"]``) and Adam as ``bench.train.runner`` assembles them:
    the dataset's preset plus ``overrides``, on :func:`spec_for`."""
    cfg = resolve(method_name, setup["dataset"], seed=setup["seed"], overrides=overrides or {})
    spec = spec_for(setup)
    method = METHODS.get(method_name)(cfg.hparams, spec)
    torch.manual_seed(setup["seed"])
    cnet = method.build(backbone_factory(spec, cfg.model, Path(".")))
    return method, cnet, make_optimizer(cfg, method, cnet), spec


def fresh_backbone(setup: dict[str, Any]) -> MultiTaskNet:
    """The dataset's backbone as a plain baseline gets it (seeded with ``setup["seed"]``)."""
    cfg = resolve("ls", setup["dataset"], seed=setup["seed"])
    torch.manual_seed(setup["seed"])
    return backbone_factory(spec_for(setup), cfg.model, Path("."))()


def batches(setup: dict[str, Any]) -> list[tuple[Tensor, dict[str, Tensor]]]:
    """``setup["steps"]`` seeded batches shaped for the dataset: UTKFace age ``[z, std]`` (z ~ N(0, 1)),
    gender and race labels; Cityscapes segmentation labels in -1..6 (-1 ignored) and disparity in
    [0, 0.5) with about a tenth of the pixels 0 (invalid)."""
    spec = spec_for(setup)
    n, shape = setup["batch_size"], tuple(setup["input_shape"])
    gen = torch.Generator().manual_seed(setup["data_seed"])
    out = []
    for _ in range(setup["steps"]):
        x = torch.rand((n, *shape), generator=gen)
        if setup["dataset"] == "utkface":
            z = torch.randn(n, generator=gen)
            targets = {
                "age": torch.stack([z, torch.full_like(z, AGE_STD)], dim=1),
                "gender": torch.randint(0, 2, (n,), generator=gen),
                "race": torch.randint(0, 5, (n,), generator=gen),
            }
        elif setup["dataset"] == "cityscapes":
            classes = spec.objectives[0].outputs
            labels = torch.randint(0, classes, (n, *shape[1:]), generator=gen)
            labels[torch.rand(labels.shape, generator=gen) < IGNORE_FRACTION] = -1
            depth = torch.rand((n, 1, *shape[1:]), generator=gen) * 0.5
            depth[torch.rand(depth.shape, generator=gen) < IGNORE_FRACTION] = 0.0
            targets = {"segmentation": labels, "depth": depth}
        else:
            raise ValueError(f"no lockstep batches for dataset {setup['dataset']!r}")
        out.append((x, targets))
    return out


def running_statistics(module: nn.Module) -> dict[str, Tensor]:
    """The BatchNorm running means and variances of ``module``, by buffer name."""
    return {name: b for name, b in module.named_buffers() if name.endswith(("running_mean", "running_var"))}


def batches_tracked(module: nn.Module) -> list[int]:
    return sorted(int(b) for name, b in module.named_buffers() if name.endswith("num_batches_tracked"))


def update_checksum(now: Iterable[Tensor], before: Iterable[Tensor]) -> dict[str, float]:
    """Sum of |update| and of update^2 over every parameter element, the update being ``now - before``.

    Compared at every step besides the parameters' checksum: a step moves each parameter by about the
    learning rate, so on these large models (up to 75M elements at lr 1e-4) a change to the step is a
    small part of the parameters' checksum but all of this one. Its signed sum is left out: it cancels
    to a small number, which rounding alone moves by ~1e-11 relative (deep BatchNorm networks after a
    few Adam steps; tests/lockstep/SPREAD.md)."""
    sums = checksum([a.detach() - b for a, b in zip(now, before, strict=True)])
    return {"abs": sums["abs"], "sq": sums["sq"]}


def layer_statistics(t: Tensor) -> dict[str, float]:
    """Per-tensor distribution summary: element count, mean, std and excess kurtosis (0 when constant)."""
    t = t.detach().double().flatten()
    mean, std = float(t.mean()), float(t.std()) if t.numel() > 1 else 0.0
    kurtosis = float(((t - mean) ** 4).mean() / std**4 - 3) if std > 0 else 0.0
    return {"numel": t.numel(), "mean": mean, "std": std, "kurtosis": kurtosis}


def replay(record: dict[str, Any]) -> ConditionedNet:
    """Run the recorded steps with our code, asserting t, rays, losses, the reduced loss, the
    parameters and the BatchNorm running statistics at every step, and every tensor after the last."""
    setup = record["setup"]
    method, cnet, optimizer, spec = build_ours(setup["method"], setup)
    assert_close(checksum(cnet.parameters()), record["initial_checksum"], "initial weights (re-record if init changed)")
    generator = torch.Generator().manual_seed(setup["seed"])
    annealed = method.hparams.sampler == "annealing"
    for k, ((x, targets), step) in enumerate(zip(batches(setup), record["steps"], strict=True)):
        progress = training_progress(k, setup["total_steps"])
        if "t" in step:
            assert_close(progress, step["t"], f"step {k + 1} t")
        if annealed:  # deterministic: ours computed and compared
            rays = method.train_rays(progress, generator)
            assert_close(rays, step["rays"], f"step {k + 1} rays")
        else:  # the official draws (torch's global generator), fed
            rays = torch.tensor(step["rays"])
        checked_step(cnet, method, optimizer, (x, targets), rays, spec, step, k)
    return cnet


def checked_step(
    cnet: ConditionedNet,
    method: Method,
    optimizer: torch.optim.Optimizer,
    batch: tuple[Tensor, dict[str, Tensor]],
    rays: Tensor,
    spec: DatasetSpec,
    step: dict[str, Any],
    k: int,
    batch_norm: bool = True,
) -> None:
    """Our training step ``k`` against the record's: losses, the reduced loss, the parameters and the
    step's update; with ``batch_norm`` also the running statistics and ``num_batches_tracked``."""
    before = [p.detach().clone() for p in cnet.parameters()]
    losses, loss = train_step(cnet, method, optimizer, *batch, rays, spec.objectives, StepOptions())
    assert_close(losses, step["losses"], f"step {k + 1} losses")
    assert_close(loss, step["loss"], f"step {k + 1} scalarised loss")
    assert_close(checksum(cnet.parameters()), step["checksum"], f"step {k + 1} parameters")
    assert_close(update_checksum(cnet.parameters(), before), step["update"], f"step {k + 1} parameters' update")
    del before
    if batch_norm:
        assert_close(
            checksum(running_statistics(cnet).values()),
            step["buffers"],
            f"step {k + 1} parameters' state: BatchNorm running statistics",
        )
        assert batches_tracked(cnet) == step["batches_tracked"]


THREAD_CASES = [(name, threads) for name in RECORDS for threads in ((1, 2) if name == "palora-resnet18" else (2,))]
"""Each record under 2 torch threads (CI's count); the cheapest also under 1. The small-model lockstep
tests replay every record under both."""


@pytest.mark.slow
@pytest.mark.parametrize(("name", "lockstep"), THREAD_CASES, indirect=["lockstep"])
def test_matches_official(name: str, lockstep: None):
    replay(load_record(name))


@pytest.mark.parametrize("name", RECORDS)
def test_preset_is_the_official_config(name: str):
    """Our dataset preset equals the official experiment config the record ran (PaLoRA's Cityscapes
    window aside: the official num 1 cannot run the annealing sampler, FIDELITY.md)."""
    record = load_record(name)
    setup = record["setup"]
    cfg = resolve(setup["method"], setup["dataset"])
    for key, value in setup["preset_checks"].items():
        expected = pytest.approx(value) if isinstance(value, float) else value
        assert getattr(cfg.hparams, key) == expected, key
    assert cfg.train.lr == pytest.approx(setup["lr"])


@pytest.mark.slow  # builds the model in float64 (up to 13 s for SegNet)
@pytest.mark.parametrize("name", RECORDS)
def test_learning_rate_groups_match_official(name: str):
    record = load_record(name)
    with lockstep_precision():
        _, _, optimizer, _ = build_ours(record["setup"]["method"], record["setup"])
    ours: dict[str, int] = {}
    for group in optimizer.param_groups:
        key = repr(float(group["lr"]))
        ours[key] = ours.get(key, 0) + sum(p.numel() for p in group["params"])
    assert ours == record["official_lr_numel"]


def assert_same_distribution(ours: Tensor, official: dict[str, float], what: str) -> None:
    """``ours`` and an official tensor drawn from the same init (n >= :data:`MIN_ELEMENTS` elements): equal
    when constant; otherwise mean and std within 6 / sqrt(n) (in units of the official std; each sample
    statistic's error is at most 0.71 / sqrt(n) for a uniform or normal init), and the excess kurtosis
    within 0.5 when n >= 4096 (a uniform init has -1.2, a normal 0)."""
    mine = layer_statistics(ours)
    n, std = official["numel"], official["std"]
    assert mine["numel"] == n, what
    if n < MIN_ELEMENTS:  # a head's few biases: too few values to compare a spread
        return
    if std == 0:
        assert mine["std"] == 0 and mine["mean"] == official["mean"], f"{what}: {mine} != {official}"
        return
    tolerance = 6 / math.sqrt(n)
    assert abs(mine["std"] / std - 1) <= tolerance, f"{what}: std {mine['std']:.4g}, official {std:.4g}"
    assert abs(mine["mean"] - official["mean"]) <= tolerance * std, f"{what}: mean {mine['mean']:.4g}, {official}"
    if n >= 4096:
        assert abs(mine["kurtosis"] - official["kurtosis"]) <= 0.5, f"{what}: {mine}, official {official}"


@pytest.mark.slow  # builds the model in float64 (up to 13 s for SegNet)
@pytest.mark.parametrize("name", RECORDS)
def test_initialisation_matches_official(name: str):
    """Our freshly built model (the method's layer rewrite included) has the official per-layer init
    distributions; for PaLoRA also the plain backbone, as every baseline gets it."""
    record = load_record(name)
    setup = record["setup"]
    with lockstep_precision():
        _, cnet, _, _ = build_ours(setup["method"], setup)
        plain = fresh_backbone(setup) if "backbone" in record["initialisation"] else None
    params = dict(cnet.named_parameters())
    method = record["initialisation"]["method"]
    assert set(method) == set(params)
    for key, official in method.items():
        slices = [params[key]] if len(official) == 1 else list(params[key])
        for k, (mine, stats) in enumerate(zip(slices, official, strict=True)):
            assert_same_distribution(mine, stats, f"{key}[{k}]")
    if plain is not None:
        plain_params = dict(plain.named_parameters())
        backbone = record["initialisation"]["backbone"]
        assert set(plain_params) == set(backbone)
        for key, (official,) in backbone.items():
            assert_same_distribution(plain_params[key], official, f"plain {key}")


def test_pamal_records_exercise_the_official_order_regulariser():
    """In each PaMaL record the official trainer added its order regulariser at some step (the replay
    then matches the reduced loss with ``regulariser = "official"``, the presets' setting)."""
    for name in RECORDS:
        record = load_record(name)
        if record["setup"]["method"] == "pamal":
            assert record["setup"]["preset_checks"]["regulariser"] == "official"
            assert any(step["regulariser"] > 1e-6 for step in record["steps"]), name


def test_pamal_members_keep_their_own_running_statistics_unused():
    """nik-dim/pamal's ``SubspaceBatchNorm2d`` deep-copies the layer per member, buffers included, but
    normalises with its own running statistics: the members' stay at (0, 1), as ours has none."""
    for name in RECORDS:
        record = load_record(name)
        if record["setup"]["method"] == "pamal":
            assert record["official_member_running_statistics_unchanged"] is True
