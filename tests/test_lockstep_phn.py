"""PHN-LS and PHN-EPO step for step against the official hypernetworks and solvers.

The records (``tests/lockstep/phn-ls.json``, ``phn-epo.json``; ``tools/lockstep_phn.py``) hold what
the official ``ResnetHyper`` (chunked, AvivNavon/pareto-hypernetworks) and ``LeNetHyper`` (one head
per tensor, nik-dim/palora) computed with the official ``LinearScalarizationSolver`` / ``EPOSolver``
(cvxpy, GLPK), cross-entropy and Adam, on our MultiLeNet forward, from our seeded initial
hypernetwork, seeded batches and the rays our sampler draws. Here the same steps run through our
code only: ``method.train_rays`` at ``training_progress``, ``bench.loop.train_step`` (forward,
``method.backward``, Adam over ``method.param_groups``). Asserted: losses and parameter checksums
within rtol 1e-5 (reached: losses 1e-7; checksums bit-identical with one head per tensor and 4e-7
with chunks, whose official forward runs one chunk at a time), and the same EPO move at every step.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from bench.backbones import create_backbone
from bench.config import apply_overrides
from bench.fidelity import assert_close_checksum, checksum, load_record, seeded_batches
from bench.loop import train_step, training_progress
from bench.registry import DATASETS, METHODS

pytestmark = pytest.mark.slow  # steps the official code's recorded runs: the full suite, not the fast tier

RTOL = 1e-5
HPARAMS = ("chunk_size", "chunks", "chunk_embedding", "hidden")


def replay(name: str, variant: str) -> None:
    record = load_record(name)
    setup = record["setup"]
    official = record if variant == "chunked" else record[variant]
    spec = DATASETS.get(setup["dataset"])
    cls = METHODS.get(name)
    overrides = {k: v for k, v in setup[variant].items() if k in HPARAMS}
    method = cls(apply_overrides(cls.Hparams(), "method", {"alpha": setup["alpha"], **overrides}), spec)
    torch.manual_seed(setup["model_seed"])
    cnet = method.build(lambda **kw: create_backbone(setup["backbone"], spec, **kw))
    assert_close_checksum(checksum(cnet.parameters()), official["initial_checksum"], 1e-12, f"{name} {variant} init")

    optimizer = torch.optim.Adam(method.param_groups(cnet, setup["lr"]), lr=setup["lr"], weight_decay=0.0)
    steps = setup["steps"]
    raw = seeded_batches(
        spec.input_shape, tuple(o.outputs for o in spec.objectives), setup["batch_size"], steps, setup["batch_seed"]
    )
    generator = torch.Generator().manual_seed(setup["ray_seed"])
    for step, ((x, ys), expected) in enumerate(zip(raw, official["steps"], strict=True)):
        rays = method.train_rays(training_progress(step, steps), generator)
        assert torch.allclose(rays[0], torch.tensor(setup["rays"][step]), rtol=0, atol=1e-7)
        targets = dict(zip(spec.objective_names, ys, strict=True))
        moves_before = dict(getattr(method, "moves", {}))
        losses, loss = train_step(cnet, method, optimizer, x, targets, rays, spec.objectives)
        what = f"{name} {variant} step {step}"
        assert losses[0].tolist() == pytest.approx(expected["losses"], rel=RTOL), what
        assert loss.item() == pytest.approx(expected["loss"], rel=RTOL), what
        assert_close_checksum(checksum(cnet.parameters()), expected["checksum"], RTOL, what)
        if "move" in expected:
            moves: dict[str, Any] = dict(method.moves)
            changed = [m for m in moves if moves[m] != moves_before.get(m, 0)]
            assert changed == [expected["move"]], what


@pytest.mark.parametrize("variant", ["chunked", "unchunked"])
@pytest.mark.parametrize("name", ["phn-ls", "phn-epo"])
def test_phn_matches_the_official_hypernetwork_and_solver_step_for_step(name, variant):
    replay(name, variant)
