"""Lockstep of PaLoRA, PaMaL, LS and MGDA against the official nik-dim/palora trainer.

Each record ``tests/lockstep/<method>.json`` holds what the official code computed (its trainer,
its modules, its sampler and optimizer groups) from our initial weights on fixed seeded batches:
the per-step losses [R, T], the rays it drew and a checksum of its parameters after every step. It
is produced by ``python tools/official_lockstep.py --official <checkout of nik-dim/palora> --method
NAME`` (``tools/lockstep_palora.py``). Here the same steps run through our code only: the method's
``train_rays`` at :func:`bench.train.loop.training_progress`, :func:`bench.train.loop.train_step` (forward,
``backward``) and the optimizer from ``param_groups``, with the MultiMNIST preset of
``bench/presets/multimnist.toml``. The annealing sampler is deterministic, so our rays are asserted
equal to the official ones rather than fed from the record.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from bench.core.fidelity import assert_close, checksum, load_record
from bench.core.spec import ConditionedNet, Method
from bench.train.config import resolve
from bench.train.loop import StepOptions, train_step, training_progress
from methods.min_norm import min_norm_weights
from tests.support import build_for_record, record_batches

# Steps the official code's recorded runs (the full suite, not the fast tier), in float64 under 1 and 2 threads.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("lockstep")]


def replay(
    method_name: str,
    setup: dict[str, Any],
    steps: list[dict[str, Any]],
    initial: dict[str, float],
    overrides: dict[str, Any] | None = None,
    options: StepOptions | None = None,
) -> tuple[Method, ConditionedNet]:
    """Run the recorded steps with our code, asserting rays, losses and checksums at every step."""
    method, cnet, optimizer, spec = build_for_record(method_name, setup, overrides)
    assert_close(checksum(cnet.parameters()), initial, "initial weights (re-record if init changed)")
    generator = torch.Generator().manual_seed(setup["seed"])
    for k, ((x, targets), step) in enumerate(zip(record_batches(setup, spec), steps, strict=True)):
        rays = method.train_rays(training_progress(k, setup["total_steps"]), generator)
        if "rays" in step:
            assert_close(rays, step["rays"], f"step {k + 1} rays")
        losses, _ = train_step(cnet, method, optimizer, x, targets, rays, spec.objectives, options or StepOptions())
        assert_close(losses, step["losses"], f"step {k + 1} losses")
        assert_close(checksum(cnet.parameters()), step["checksum"], f"step {k + 1} parameters")
    return method, cnet


def assert_final_tensors(cnet: ConditionedNet, expected: dict[str, dict[str, float]]) -> None:
    params = dict(cnet.named_parameters())
    assert set(params) == set(expected)
    for name, sums in expected.items():
        assert_close(checksum([params[name]]), sums, f"final {name}")


@pytest.mark.parametrize("method_name", ["palora", "pamal"])
def test_preset_is_the_official_multimnist_config(method_name: str):
    """Our preset equals the official experiment config (bar the documented window of PaLoRA)."""
    record = load_record(method_name)
    hparams = resolve(method_name, "multimnist").hparams
    for key, value in record["setup"]["preset_checks"].items():
        expected = pytest.approx(value) if isinstance(value, float) else value
        assert getattr(hparams, key) == expected, key
    assert resolve(method_name, "multimnist").train.lr == record["setup"]["lr"]


@pytest.mark.parametrize("method_name", ["palora", "pamal"])
def test_learning_rate_groups_match_official(method_name: str):
    """PaLoRA's adapters at lr * T (official ``configure_param_groups`` with ``reweight_lr``); PaMaL one lr."""
    record = load_record(method_name)
    _, _, optimizer, _ = build_for_record(method_name, record["setup"])
    ours: dict[str, int] = {}
    for group in optimizer.param_groups:
        key = repr(float(group["lr"]))
        ours[key] = ours.get(key, 0) + sum(p.numel() for p in group["params"])
    assert ours == record["official_lr_numel"]


@pytest.mark.parametrize(
    ("adapter_path", "ray_batching"),
    [("merged", "sequential"), ("activations", "sequential"), ("merged", "vmap")],
)
def test_palora_matches_official(adapter_path: str, ray_batching: str):
    record = load_record("palora")
    options = StepOptions.from_names(ray_batching, "off")
    _, cnet = replay(
        "palora",
        record["setup"],
        record["steps"],
        record["initial_checksum"],
        {"method.adapter_path": adapter_path},
        options,
    )
    assert_final_tensors(cnet, record["final_tensors"])


@pytest.mark.parametrize("ray_batching", ["sequential", "vmap"])
def test_pamal_matches_official(ray_batching: str):
    record = load_record("pamal")
    options = StepOptions.from_names(ray_batching, "off")
    _, cnet = replay("pamal", record["setup"], record["steps"], record["initial_checksum"], options=options)
    assert_final_tensors(cnet, record["final_tensors"])


def test_pamal_repository_agrees_with_the_palora_repository():
    """nik-dim/pamal's subspace modules and trainer, fed the same rays, took bit-identical steps."""
    record = load_record("pamal")
    other = record["pamal_repository"]
    assert [step["losses"] for step in other["steps"]] == [step["losses"] for step in record["steps"]]
    assert [step["checksum"] for step in other["steps"]] == [step["checksum"] for step in record["steps"]]


@pytest.mark.parametrize("stacking", ["loop", "vmap"])
def test_ls_members_match_official_single_ray_runs(stacking: str):
    """Each LS member equals the official one-model LinearScalarization run at its ray."""
    record = load_record("ls")
    setup = record["setup"]
    method, cnet, optimizer, spec = build_for_record("ls", setup, {"method.stacking": stacking})
    assert method.stacking == stacking

    def member(k: int) -> list[Tensor]:
        if stacking == "vmap":
            return list(cnet.member_parameters(k).values())
        return list(cnet.members[k].parameters())

    for k, sums in enumerate(record["initial_member_checksums"]):
        assert_close(checksum(member(k)), sums, f"member {k} initial weights")
    generator = torch.Generator().manual_seed(setup["seed"])
    for k, ((x, targets), step) in enumerate(zip(record_batches(setup, spec), record["steps"], strict=True)):
        rays = method.train_rays(training_progress(k, setup["total_steps"]), generator)
        assert_close(rays, step["rays"], f"step {k + 1} rays")
        losses, _ = train_step(cnet, method, optimizer, x, targets, rays, spec.objectives)
        assert_close(losses, step["losses"], f"step {k + 1} losses")
        for m, sums in enumerate(step["member_checksums"]):
            assert_close(checksum(member(m)), sums, f"step {k + 1} member {m}")


MGDA_VARIANTS = ("default", "mgda-ub", "normalize=loss")
"""The official callback's default (params shared, normalization none), params rep (our ``mgda-ub``)
and normalization loss (our ``method.normalize=loss``)."""


def replay_mgda(variant: str) -> tuple[list[Tensor], list[dict[str, Any]], list[Tensor]]:
    """Our MGDA over the recorded steps; returns (our simplex weights, official steps, our checksums)."""
    record = load_record("mgda")
    assert set(record["variants"]) == set(MGDA_VARIANTS[1:])
    run = record if variant == "default" else record["variants"][variant]
    setup = record["setup"]
    method, cnet, optimizer, spec = build_for_record(run["method"], setup, run["overrides"])
    assert_close(checksum(cnet.parameters()), record["initial_checksum"], "initial weights")
    found: list[Tensor] = []
    solver = method.weights

    def weights(task_losses: Tensor, net: ConditionedNet) -> Tensor:
        found.append(solver(task_losses, net))
        return found[-1]

    method.weights = weights  # type: ignore[method-assign]
    generator = torch.Generator().manual_seed(setup["seed"])
    ours = []
    for k, ((x, targets), step) in enumerate(zip(record_batches(setup, spec), run["steps"], strict=True)):
        rays = method.train_rays(training_progress(k, setup["total_steps"]), generator)
        losses, _ = train_step(cnet, method, optimizer, x, targets, rays, spec.objectives)
        ours.append(checksum(cnet.parameters()))
        assert_close(losses, step["losses"], f"step {k + 1} losses")
    return found, run["steps"], ours


@pytest.mark.parametrize("variant", MGDA_VARIANTS)
def test_mgda_matches_official(variant: str):
    """Our simplex weights equal the official min-norm weights / T at every step, and our step
    (T * sum_k alpha_k L_k, as the official ``sol * num_tasks``) follows the official run."""
    found, steps, ours = replay_mgda(variant)
    for k, (weights, step, sums) in enumerate(zip(found, steps, ours, strict=True)):
        assert_close(weights, step["weights"], f"step {k + 1} simplex weights")
        assert_close(sums, step["checksum"], f"step {k + 1} parameters")


def test_min_norm_edge_is_exact_where_official_clips():
    """Deliberate difference: when one gradient's projection dominates (g1.g2 >= g1.g1) the
    official ``_min_norm_element_from2`` returns gamma 0.999 (0.001 for the mirror case); ours the
    exact minimiser 1 (0). The lockstep steps never reach that case (``official_solver_clipped``)."""
    gram = torch.tensor([[1.0, 2.0], [2.0, 5.0]], dtype=torch.float64)
    assert min_norm_weights(gram).tolist() == [1.0, 0.0]
    assert min_norm_weights(gram.flip(0, 1)).tolist() == [0.0, 1.0]
    record = load_record("mgda")
    assert not any(run["official_solver_clipped"] for run in (record, *record["variants"].values()))
