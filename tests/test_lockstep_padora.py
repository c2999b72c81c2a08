"""PaDoRA in lockstep with the official code: ``tests/lockstep/padora.json`` holds what nik-dim/palora's
``PaDoRA`` / ``PaDoRA_GB`` on peft computed from our initial weights and batches
(``tools/lockstep_padora.py``); here our loop replays the same steps without the official code.

The official rays (``AnnealingDirichletSampler``, one per step, torch's global generator) are read
from the record and fed to ``bench.train.loop.train_step``; the official ``t`` of each step is checked
against ``bench.train.loop.training_progress``. Losses and parameter checksums agree to
``bench.core.fidelity.RTOL`` (float64 on both sides; the spread reached is in ``tests/lockstep/SPREAD.md``).
"""

import pytest
import torch

from bench.core.fidelity import assert_close, checksum, load_record, seeded_batches
from bench.core.registry import DATASETS
from bench.train.loop import train_step, training_progress
from methods.padora import PaDoRA
from tests.support import build_method

# Steps the official code's recorded runs (the full suite, not the fast tier), in float64 under 1 and 2 threads.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("lockstep")]

RECORD = load_record("padora")
SETUP = RECORD["setup"]


@pytest.mark.parametrize("name", sorted(RECORD["cases"]))
def test_padora_matches_the_official_steps(name):
    case = RECORD["cases"][name]
    spec = DATASETS.get(case["dataset"])
    overrides = {"window": SETUP["window"], "sampler": SETUP["sampler"], "p": SETUP["p"], **case["hparams"]}
    method, cnet = build_method(PaDoRA, spec, seed=case["init_seed"], **overrides)
    assert_close(checksum(cnet.parameters()), case["initial_checksum"], f"{name} initial weights")
    optimizer = torch.optim.Adam(method.param_groups(cnet, SETUP["lr"]), lr=SETUP["lr"])
    steps = case["steps"]
    batches = seeded_batches(
        spec.input_shape, (10,) * spec.num_tasks, SETUP["batch_size"], len(steps), SETUP["data_seed"]
    )
    assert method.train_rays(0.5, torch.Generator().manual_seed(0)).shape == (1, spec.num_tasks)
    for index, ((x, ys), official) in enumerate(zip(batches, steps, strict=True)):
        assert_close(training_progress(index, len(steps)), official["t"], f"{name} step {index} t")
        rays = torch.tensor([official["ray"]])
        targets = dict(zip(spec.objective_names, ys, strict=True))
        losses, _ = train_step(cnet, method, optimizer, x, targets, rays, spec.objectives)
        assert_close(losses[0], official["losses"], f"{name} step {index} losses")
        assert_close(checksum(cnet.parameters()), official["checksum"], f"{name} step {index} parameters")


def test_record_covers_lora_dora_and_gradient_balancing():
    cases = RECORD["cases"]
    assert RECORD["steps"] == cases["lora"]["steps"]
    assert {c["hparams"].get("peft", "lora") for c in cases.values()} == {"lora", "dora"}
    assert {c["hparams"].get("inner_method", "ls") for c in cases.values()} == {"ls", "gb"}
    assert SETUP["peft"] == "0.13.2" and RECORD["official"]["repo"] == "nik-dim/palora"
