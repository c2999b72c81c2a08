"""PHN-LS on the real ResNet-18 (UTKFace-shaped input) step for step against the official code.

The record ``tests/lockstep/phn-ls-resnet18.json`` holds what nik-dim/pamal's UTKFace PHN computed
(``HyperModel``: the chunked ``ResnetHyper`` and the functional ``ResNetTarget`` with batch-statistics
BatchNorm; ``MultiSolutionTrainer`` with ``HypernetMethod``'s ``LinearScalarizationSolver``,
``UTKFaceMultiTaskLoss`` and Adam) from our initial hypernetwork on seeded batches, in float64. It is
produced by ``python tools/official_lockstep.py --official <checkout of nik-dim/pamal> --method phn-ls
--backbone resnet18`` (``tools/lockstep_phn_backbones.py``, which says why nik-dim/pamal and what was
adapted for the 32x32 input). Here the same steps run through our code only: the preset's model
(``bench/presets/utkface.toml``), the official rays fed, ``bench.train.loop.train_step``. Asserted within
``bench.core.fidelity.RTOL``: the initial hypernetwork, every generated target tensor at the first step (by
name: the order in which the chunks fill the tensors), per step the losses, the scalarised loss, the
parameters and the step's update, and every hypernetwork tensor after the last step.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from bench.core.fidelity import assert_close, checksum, load_record, lockstep_precision
from bench.core.spec import ConditionedNet
from bench.train.config import resolve
from tests.test_lockstep_backbones import batches, build_ours, checked_step

NAME = "phn-ls-resnet18"


def replay(record: dict[str, Any]) -> ConditionedNet:
    setup = record["setup"]
    method, cnet, optimizer, spec = build_ours(setup["method"], setup)
    assert_close(
        checksum(cnet.parameters()), record["initial_checksum"], "initial hypernetwork (re-record if init changed)"
    )
    for k, ((x, targets), step) in enumerate(zip(batches(setup), record["steps"], strict=True)):
        rays = torch.tensor(step["rays"])  # the official trainer's Dirichlet draws, fed
        if k == 0:
            with torch.no_grad():
                generated = cnet.hyper(rays[0])
            assert list(generated) == list(record["generated_first_step"])
            for name, expected in record["generated_first_step"].items():
                assert_close(checksum([generated[name]]), expected, f"step 1 generated {name}")
            del generated
        checked_step(cnet, method, optimizer, (x, targets), rays, spec, step, k, batch_norm=False)
    params = dict(cnet.named_parameters())
    assert set(params) == {f"hyper.{n}" for n in record["final_tensors"]}
    for name, expected in record["final_tensors"].items():
        assert_close(checksum([params[f"hyper.{name}"]]), expected, f"final {name}")
    return cnet


@pytest.mark.slow
@pytest.mark.parametrize("lockstep", [2], indirect=True)  # CI's threads, as the other backbone records
def test_phn_ls_resnet18_matches_official(lockstep: None):
    replay(load_record(NAME))


def test_preset_is_the_official_config():
    """Our UTKFace phn-ls preset has the official ``method/phn.yaml`` (alpha, the linear solver) and the
    official ``ResnetHyper``'s sizes; the lr is the experiment's."""
    record = load_record(NAME)
    setup = record["setup"]
    assert setup["official_config"]["method"]["solver"] == "linear" and setup["method"] == "phn-ls"
    cfg = resolve(setup["method"], setup["dataset"])
    for key, value in setup["preset_checks"].items():
        expected = pytest.approx(value) if isinstance(value, float) else value
        assert getattr(cfg.hparams, key) == expected, key
    assert cfg.train.lr == pytest.approx(setup["lr"])


def test_hypernetwork_has_the_official_size():
    """Our preset's hypernetwork has the official ray embedding and parameter count, and its target the
    official parameter count and chunks used (on the record's input)."""
    record = load_record(NAME)
    official = record["official_architecture"]
    with lockstep_precision():
        _, cnet, _, _ = build_ours(record["setup"]["method"], record["setup"])
    hyper = cnet.hyper
    assert hyper.ray_embedding.out_features == official["ray_embedding"]
    assert sum(p.numel() for p in hyper.parameters()) == official["hypernetwork_numel"]
    assert cnet.target.numel() == official["target_numel"]
    assert hyper.used_chunks == official["chunks_used"]


def test_official_resnet_hypernetwork_is_palora_s():
    """The record ran nik-dim/pamal's ``phn_resnet.py``, the same syntax tree as nik-dim/palora's (the
    file FIDELITY.md cites)."""
    comparison = load_record(NAME)["official_phn_resnet_against_palora"]
    assert comparison is not None and comparison["same_syntax_tree"] is True
