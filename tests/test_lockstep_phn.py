"""PHN-LS and PHN-EPO step for step against the official hypernetworks and solvers.

The records (``tests/lockstep/phn-ls.json``, ``phn-epo.json``; ``tools/lockstep_phn.py``) hold what
the official ``ResnetHyper`` (chunked, AvivNavon/pareto-hypernetworks) and ``LeNetHyper`` (one head
per tensor, nik-dim/palora) computed with the official ``LinearScalarizationSolver`` / ``EPOSolver``
(cvxpy, GLPK), cross-entropy and Adam, on our MultiLeNet forward, from our seeded initial
hypernetwork, seeded batches and the rays our sampler draws. Here the same steps run through our
code only: ``method.train_rays`` at ``training_progress``, ``bench.train.loop.train_step`` (forward,
``method.backward``, Adam over ``method.param_groups``), in float64 as recorded. Asserted: rays,
losses and parameter checksums within ``bench.core.fidelity.RTOL`` (the spread reached is in
``tests/lockstep/SPREAD.md``), and the same EPO move at every step.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from bench.core.fidelity import assert_close, checksum, load_record, seeded_batches
from bench.core.registry import DATASETS
from bench.train.loop import train_step, training_progress
from tests.support import build_method

# Steps the official code's recorded runs (the full suite, not the fast tier), in float64 under 1 and 2 threads.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("lockstep")]

HPARAMS = ("chunk_size", "chunks", "chunk_embedding", "hidden")


def replay(name: str, variant: str) -> None:
    record = load_record(name)
    setup = record["setup"]
    official = record if variant == "chunked" else record[variant]
    spec = DATASETS.get(setup["dataset"])
    overrides = {k: v for k, v in setup[variant].items() if k in HPARAMS}
    method, cnet = build_method(
        name, spec, seed=setup["model_seed"], backbone=setup["backbone"], alpha=setup["alpha"], **overrides
    )
    assert_close(checksum(cnet.parameters()), official["initial_checksum"], f"{name} {variant} init")

    optimizer = torch.optim.Adam(method.param_groups(cnet, setup["lr"]), lr=setup["lr"], weight_decay=0.0)
    steps = setup["steps"]
    raw = seeded_batches(
        spec.input_shape, tuple(o.outputs for o in spec.objectives), setup["batch_size"], steps, setup["batch_seed"]
    )
    generator = torch.Generator().manual_seed(setup["ray_seed"])
    for step, ((x, ys), expected) in enumerate(zip(raw, official["steps"], strict=True)):
        rays = method.train_rays(training_progress(step, steps), generator)
        assert_close(rays[0], setup["rays"][step], f"{name} {variant} step {step} ray")
        targets = dict(zip(spec.objective_names, ys, strict=True))
        moves_before = dict(getattr(method, "moves", {}))
        losses, loss = train_step(cnet, method, optimizer, x, targets, rays, spec.objectives)
        what = f"{name} {variant} step {step}"
        assert_close(losses[0], expected["losses"], f"{what} losses")
        assert_close(loss.item(), expected["loss"], f"{what} loss")
        assert_close(checksum(cnet.parameters()), expected["checksum"], f"{what} parameters")
        if "move" in expected:
            moves: dict[str, Any] = dict(method.moves)
            changed = [m for m in moves if moves[m] != moves_before.get(m, 0)]
            assert changed == [expected["move"]], what


@pytest.mark.parametrize("variant", ["chunked", "unchunked"])
@pytest.mark.parametrize("name", ["phn-ls", "phn-epo"])
def test_phn_matches_the_official_hypernetwork_and_solver_step_for_step(name, variant):
    replay(name, variant)
