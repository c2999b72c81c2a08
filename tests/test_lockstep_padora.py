"""PaDoRA in lockstep with the official code: ``tests/lockstep/padora.json`` holds what nik-dim/palora's
``PaDoRA`` / ``PaDoRA_GB`` on peft computed from our initial weights and batches
(``tools/lockstep_padora.py``); here our loop replays the same steps without the official code.

The official rays (``AnnealingDirichletSampler``, one per step, torch's global generator) are read
from the record and fed to ``bench.loop.train_step``; the official ``t`` of each step is checked
against ``bench.loop.training_progress``. Losses agree to ``LOSS_RTOL`` (2e-7 reached) and parameter
checksums to ``CHECKSUM_RTOL`` (2e-6 reached: Adam's normalised steps carry float32 rounding).
"""

import pytest
import torch

from bench.backbones import create_backbone
from bench.config import apply_overrides
from bench.fidelity import assert_close_checksum, checksum, load_record, seeded_batches
from bench.loop import train_step, training_progress
from bench.registry import DATASETS
from methods.padora import PaDoRA, PaDoRAHparams

pytestmark = pytest.mark.slow  # steps the official code's recorded runs: the full suite, not the fast tier

RECORD = load_record("padora")
SETUP = RECORD["setup"]
LOSS_RTOL = 1e-6
CHECKSUM_RTOL = 1e-5


def build(case: dict) -> PaDoRA:
    spec = DATASETS.get(case["dataset"])
    overrides = {"window": SETUP["window"], "sampler": SETUP["sampler"], "p": SETUP["p"], **case["hparams"]}
    return PaDoRA(apply_overrides(PaDoRAHparams(), "method", overrides), spec)


@pytest.mark.parametrize("name", sorted(RECORD["cases"]))
def test_padora_matches_the_official_steps(name):
    case = RECORD["cases"][name]
    method = build(case)
    spec = method.spec
    torch.manual_seed(case["init_seed"])
    cnet = method.build(lambda **kw: create_backbone(spec.backbone, spec, **kw))
    assert_close_checksum(checksum(cnet.parameters()), case["initial_checksum"], 1e-12, f"{name} initial weights")
    optimizer = torch.optim.Adam(method.param_groups(cnet, SETUP["lr"]), lr=SETUP["lr"])
    steps = case["steps"]
    batches = seeded_batches(
        spec.input_shape, (10,) * spec.num_tasks, SETUP["batch_size"], len(steps), SETUP["data_seed"]
    )
    assert method.train_rays(0.5, torch.Generator().manual_seed(0)).shape == (1, spec.num_tasks)
    for index, ((x, ys), official) in enumerate(zip(batches, steps, strict=True)):
        assert training_progress(index, len(steps)) == pytest.approx(official["t"], abs=1e-12)
        rays = torch.tensor([official["ray"]])
        targets = dict(zip(spec.objective_names, ys, strict=True))
        losses, _ = train_step(cnet, method, optimizer, x, targets, rays, spec.objectives)
        assert losses[0].tolist() == pytest.approx(official["losses"], rel=LOSS_RTOL), f"{name} step {index}"
        assert_close_checksum(checksum(cnet.parameters()), official["checksum"], CHECKSUM_RTOL, f"{name} step {index}")


def test_record_covers_lora_dora_and_gradient_balancing():
    cases = RECORD["cases"]
    assert RECORD["steps"] == cases["lora"]["steps"]
    assert {c["hparams"].get("peft", "lora") for c in cases.values()} == {"lora", "dora"}
    assert {c["hparams"].get("inner_method", "ls") for c in cases.values()} == {"ls", "gb"}
    assert SETUP["peft"] == "0.13.2" and RECORD["official"]["repo"] == "nik-dim/palora"
