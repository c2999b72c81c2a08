"""Lockstep of COSMOS against the official nik-dim/pamal trainer (MultiMNIST setting).

``tests/lockstep/cosmos.json`` holds what the official code computed (``Upsampler`` around
``SharedBottom(MultiLeNetR, MultiLeNetO)``, ``MultiSolutionTrainer`` with the ``Cosmos`` weight method,
Adam) from our initial weights on fixed seeded batches: the rays it drew, the per-step losses, the
scalarised loss and a checksum of its parameters after every step. It is produced by ``python
tools/official_lockstep.py --official <checkout of nik-dim/pamal> --method cosmos``
(``tools/lockstep_cosmos.py``, which says why nik-dim/pamal). Here the same steps run through our
code only: the MultiMNIST preset of ``bench/presets/multimnist.toml``, :func:`bench.train.loop.train_step`
(forward with the ray upsampler, ``backward``) and the optimizer from ``param_groups``. The official
rays are Dirichlet draws from torch's global generator, which our sampler does not use: they are fed
from the record, and our sampler is checked against the same Dirichlet by its moments.
"""

from __future__ import annotations

import pytest
import torch

from bench.core.fidelity import assert_close, checksum, load_record
from bench.train.config import resolve
from bench.train.loop import StepOptions, train_step, training_progress
from tests.support import build_for_record, record_batches

# Steps the official code's recorded runs (the full suite, not the fast tier), in float64 under 1 and 2 threads.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("lockstep")]


def test_preset_is_the_official_multimnist_config():
    """``cosmos.yaml`` of the official MultiMNIST experiment: lamda 8, Dirichlet alpha 1, Adam lr 1e-3."""
    record = load_record("cosmos")
    cfg = resolve("cosmos", "multimnist")
    for key, value in record["setup"]["preset_checks"].items():
        assert getattr(cfg.hparams, key) == pytest.approx(value), key
    assert cfg.train.lr == record["setup"]["lr"]


@pytest.mark.parametrize("ray_batching", ["sequential", "vmap"])
def test_cosmos_matches_official(ray_batching: str):
    record = load_record("cosmos")
    setup = record["setup"]
    method, cnet, optimizer, spec = build_for_record("cosmos", setup)
    assert_close(checksum(cnet.parameters()), record["initial_checksum"], "initial weights")
    options = StepOptions.from_names(ray_batching, "off")
    generator = torch.Generator().manual_seed(setup["seed"])
    for k, ((x, targets), step) in enumerate(zip(record_batches(setup, spec), record["steps"], strict=True)):
        drawn = method.train_rays(training_progress(k, setup["total_steps"]), generator)
        assert drawn.shape == (1, 2) and drawn.sum().item() == pytest.approx(1.0)
        rays = torch.tensor(step["rays"])
        losses, loss = train_step(cnet, method, optimizer, x, targets, rays, spec.objectives, options)
        assert_close(losses, step["losses"], f"step {k + 1} losses")
        assert_close(loss.item(), step["loss"], f"step {k + 1} loss")
        assert_close(checksum(cnet.parameters()), step["checksum"], f"step {k + 1} parameters")
    params = dict(cnet.named_parameters())
    assert set(params) == set(record["final_tensors"])
    for name, sums in record["final_tensors"].items():
        assert_close(checksum([params[name]]), sums, f"final {name}")


def test_rays_follow_the_official_dirichlet():
    """Official ``Dirichlet(ones(2) * alpha).sample()`` with alpha = 1: lambda_1 ~ U(0, 1), mean 1/2,
    variance 1/12; our sampler draws from its own generator with the same law."""
    method, _, _, _ = build_for_record("cosmos", load_record("cosmos")["setup"])
    generator = torch.Generator().manual_seed(0)
    first = torch.cat([method.train_rays(1.0, generator)[:, 0] for _ in range(2000)])
    assert first.mean().item() == pytest.approx(0.5, abs=0.02)
    assert first.var().item() == pytest.approx(1 / 12, abs=0.006)
