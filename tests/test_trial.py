"""One assembly path: ``bench run``, ``bench.train.loop.fit`` and ``bench profile`` all train the model
:func:`bench.train.trial.build_trial` builds, with the same step, so their parameters agree bitwise."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.core.registry import DATASETS
from bench.train import checkpoint
from bench.train.config import resolve
from bench.train.loop import fit
from bench.train.runner import run_experiment
from bench.train.stepper import PlainBackbone, Stepper
from bench.train.trial import build_trial, load_test_batches, parameter_counts

STEPS = 3
SETTINGS = ["train.batch_size=32", "data.train_limit=128", "data.eval_limit=32", f"train.max_steps={STEPS}"]


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", ["palora", "ls", "mgda"])
def test_the_profiled_step_is_the_trained_step(name: str, tmp_path: Path, data_root: Path):
    cfg = resolve(name, "multimnist-mini", seed=2, assignments=SETTINGS)
    trained = build_trial(cfg, data_root, "cpu", workers=0)
    fit(trained.learner, trained.train, trained.schedule, show_progress=False)

    profiled = Stepper(build_trial(cfg, data_root, "cpu", workers=0))
    for _ in range(STEPS):
        profiled.step()

    run = run_experiment(cfg, tmp_path, data_root, "cpu", show_progress=False, workers=0)
    assert run.summary["steps"] == STEPS
    recorded = torch.load(run.directory / checkpoint.FILENAME, weights_only=False)["model"]

    model = trained.cnet.state_dict()
    assert same_tensors(model, profiled.trial.cnet.state_dict())
    assert same_tensors(model, recorded)
    assert torch.equal(trained.learner.ray_generator.get_state(), profiled.trial.learner.ray_generator.get_state())
    moments = [s["exp_avg"] for s in trained.optimizer.state.values()]
    profiled_moments = [s["exp_avg"] for s in profiled.trial.optimizer.state.values()]
    assert all(torch.equal(a, b) for a, b in zip(moments, profiled_moments, strict=True))


def test_a_trial_is_seeded_by_its_config(data_root: Path):
    cfg = resolve("palora", "multimnist-mini", seed=0, assignments=SETTINGS)
    a, b = (build_trial(cfg, data_root, "cpu", workers=0) for _ in range(2))
    assert same_tensors(a.cnet.state_dict(), b.cnet.state_dict())
    assert torch.equal(next(iter(a.train))[0], next(iter(b.train))[0])
    other = build_trial(resolve("palora", "multimnist-mini", seed=1, assignments=SETTINGS), data_root, "cpu", workers=0)
    assert not same_tensors(a.cnet.state_dict(), other.cnet.state_dict())
    assert a.total_steps == a.schedule.epochs * len(a.train) and a.data_generator is a.train.generator
    counts = parameter_counts(a)
    assert counts["trainable"] == 30_880 and counts["inference"] == counts["single_model"] == 27_450


def test_validation_keeps_the_smaller_limit(data_root: Path):
    cfg = resolve("ls", "multimnist-mini", assignments=["data.eval_limit=64", "train.val_samples=40"])
    assert build_trial(cfg, data_root, "cpu", workers=0).val.num_samples == 40
    cfg = resolve("ls", "multimnist-mini", assignments=["data.eval_limit=24"])
    trial = build_trial(cfg, data_root, "cpu", workers=0)
    assert trial.val.num_samples == 24 and load_test_batches(trial).num_samples == 24


def test_the_method_is_built_for_the_trials_device(data_root: Path):
    cfg = resolve("ls", "multimnist-mini", assignments=SETTINGS)
    trial = build_trial(cfg, data_root, "cpu", workers=0)
    assert trial.method.device == trial.device == torch.device("cpu")
    elsewhere = PlainBackbone(DATASETS.get("multimnist-mini"), 1, device=torch.device("meta"))
    with pytest.raises(ValueError, match="built for meta, the trial runs on cpu"):
        build_trial(cfg, data_root, "cpu", workers=0, method=elsewhere)
