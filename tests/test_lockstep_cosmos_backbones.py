"""Lockstep of COSMOS on the real ResNet-18 (UTKFace) against the official nik-dim/pamal trainer.

``tests/lockstep/cosmos-resnet18.json`` holds what the official code computed (``Upsampler`` around
``UtkFaceResnet(in_channels=6)``, ``MultiSolutionTrainer`` with the ``Cosmos`` weight method, Adam) from our
initial weights on fixed seeded batches, with BatchNorm in train mode: the ray it drew, the per-task losses,
the scalarised loss, and checksums of the parameters, of the step's update and of the BatchNorm running
statistics after every step, with every layer's ``num_batches_tracked``. It is produced by ``python
tools/official_lockstep.py --official <checkout of nik-dim/pamal> --method cosmos --backbone resnet18``
(``tools/lockstep_cosmos_backbones.py``, which lists the harness adaptations: the 32x32 input's
``Linear(512, C)`` heads and upsampler size). Here the same steps run through our code only: the UTKFace
preset of ``bench/presets/utkface.toml`` on the record's small input, :func:`bench.train.loop.train_step` and the
optimizer from ``param_groups``. The official rays are Dirichlet draws from torch's global generator, which
our sampler does not use: they are fed from the record (``tests/test_lockstep_cosmos.py`` checks our
sampler's law).

The record also holds the per-layer distribution of the freshly built official model; on this backbone the
widened first convolution has PyTorch's default init on both sides, so every tensor is compared.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from bench.core.fidelity import assert_close, checksum, load_record, lockstep_precision
from bench.core.spec import ConditionedNet
from bench.train.config import resolve
from bench.train.loop import training_progress
from tests.test_lockstep_backbones import (
    assert_same_distribution,
    batches,
    build_ours,
    checked_step,
)

NAME = "cosmos-resnet18"


def replay(record: dict[str, Any]) -> ConditionedNet:
    """Run the recorded steps with our code, feeding the official rays and asserting the losses, the
    scalarised loss, the parameters, the step's update and the BatchNorm running statistics at every step.
    Sequential rays only: ``train.ray_batching = vmap`` refuses a model with tracked BatchNorm statistics
    (``bench.core.conditioning.ray_batching_problem``)."""
    setup = record["setup"]
    method, cnet, optimizer, spec = build_ours(setup["method"], setup)
    assert_close(checksum(cnet.parameters()), record["initial_checksum"], "initial weights (re-record if init changed)")
    generator = torch.Generator().manual_seed(setup["seed"])
    for k, ((x, targets), step) in enumerate(zip(batches(setup), record["steps"], strict=True)):
        drawn = method.train_rays(training_progress(k, setup["total_steps"]), generator)
        assert drawn.shape == (1, spec.num_tasks)
        rays = torch.tensor(step["rays"])  # the official draws (torch's global generator), fed
        checked_step(cnet, method, optimizer, (x, targets), rays, spec, step, k)
    return cnet


@pytest.mark.slow
@pytest.mark.parametrize("lockstep", [2], indirect=True)  # CI's threads, as the other backbone records
def test_cosmos_resnet18_matches_official(lockstep: None):
    replay(load_record(NAME))


def test_preset_is_the_official_utkface_config():
    """``configs/experiment/utkface/method/cosmos.yaml`` of nik-dim/pamal (lamda 1, alpha 1) and the
    experiment's Adam lr 1e-3 are our UTKFace COSMOS preset."""
    setup = load_record(NAME)["setup"]
    cfg = resolve("cosmos", setup["dataset"])
    for key, value in setup["preset_checks"].items():
        assert getattr(cfg.hparams, key) == pytest.approx(value), key
    assert cfg.train.lr == pytest.approx(setup["lr"])


def test_learning_rate_groups_match_official():
    """One Adam group over every parameter, the upsampler's included (official ``model.parameters()``)."""
    record = load_record(NAME)
    with lockstep_precision():
        _, _, optimizer, _ = build_ours(record["setup"]["method"], record["setup"])
    ours: dict[str, int] = {}
    for group in optimizer.param_groups:
        key = repr(float(group["lr"]))
        ours[key] = ours.get(key, 0) + sum(p.numel() for p in group["params"])
    assert ours == record["official_lr_numel"]


def test_initialisation_matches_official():
    """Our freshly built COSMOS model (widened first convolution and upsampler included) has the official
    per-layer init distributions (``tests.test_lockstep_backbones.assert_same_distribution``)."""
    record = load_record(NAME)
    with lockstep_precision():
        _, cnet, _, _ = build_ours(record["setup"]["method"], record["setup"])
    params = dict(cnet.named_parameters())
    official = record["initialisation"]["method"]
    assert set(official) == set(params)
    for key, (stats,) in official.items():
        assert_same_distribution(params[key], stats, key)
