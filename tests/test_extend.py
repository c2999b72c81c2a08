"""A longer run continued from a completed shorter one (bench.train.extend) equals the longer run
trained from the start, bit for bit; a method whose ray draws follow the training progress trains
from the start instead; only a run of the same config with fewer epochs is taken."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.core.registry import DATASETS
from bench.train.config import resolve
from bench.train.extend import rays_ignore_progress, shorter_sibling
from bench.train.runner import run_experiment

SMALL = {"data.train_limit": 128, "data.eval_limit": 64, "train.batch_size": 64, "train.checkpoint_every": 1}


def run(out: Path, data_root: Path, method: str, epochs: int, **extra: Any) -> Any:
    cfg = resolve(method, "multimnist-mini", 0, overrides={**SMALL, "train.epochs": epochs, **extra})
    return run_experiment(cfg, out, data_root, "cpu", show_progress=False, resume=True)


def rows(directory: Path, split: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time", "train_time")} for r in lines if r["split"] == split]


def test_a_continued_run_equals_the_run_trained_from_the_start(tmp_path: Path, data_root: Path, capsys):
    fresh = run(tmp_path / "fresh", data_root, "ls", 3)
    run(tmp_path / "grid", data_root, "ls", 2)
    capsys.readouterr()
    continued = run(tmp_path / "grid", data_root, "ls", 3, **{"train.extend_shorter": True})
    assert continued.directory.name == fresh.directory.name  # the option is not part of the run id
    assert "continues from ls_multimnist-mini_s0_" in capsys.readouterr().out
    (note,) = continued.summary["resumed"]
    assert note["continued_from"] != continued.directory.name and note["continued_from_epochs"] == 2
    assert note["from_step"] == 2 * 2  # 2 steps an epoch
    assert continued.summary["front"] == fresh.summary["front"]  # bit for bit
    for split in ("val", "test"):
        assert rows(continued.directory, split) == rows(fresh.directory, split), split
    # the training-loss log alone differs: it keeps the shorter run's row after its last step (the mean
    # since the row before), so the next row is the mean from there
    steps, fresh_steps = ([r["step"] for r in rows(d, "train")] for d in (continued.directory, fresh.directory))
    assert set(fresh_steps) == {6} and steps == [4] * len(fresh_steps) + fresh_steps
    assert continued.summary["steps"] == fresh.summary["steps"] == 3 * 2


def test_a_method_whose_rays_follow_the_progress_trains_from_the_start(tmp_path: Path, data_root: Path, capsys):
    run(tmp_path, data_root, "palora", 1)
    capsys.readouterr()
    longer = run(tmp_path, data_root, "palora", 2, **{"train.extend_shorter": True})
    assert "trains from step 0, not from palora_multimnist-mini_s0_" in capsys.readouterr().out
    assert longer.summary["resumed"] == [] and longer.summary["steps"] == 2 * 2
    without = run(tmp_path / "plain", data_root, "palora", 2)
    assert longer.summary["front"] == without.summary["front"]


def test_only_a_shorter_run_of_the_same_config_is_taken(tmp_path: Path, data_root: Path):
    one, two = (run(tmp_path, data_root, "ls", e).directory for e in (1, 2))
    run(tmp_path, data_root, "ls", 1, **{"train.lr": 0.01})  # another config: never taken

    def config(epochs: int, **extra: Any) -> Any:
        return resolve("ls", "multimnist-mini", 0, overrides={**SMALL, "train.epochs": epochs, **extra})

    assert shorter_sibling(tmp_path, config(3)) == two  # the longest shorter one
    assert shorter_sibling(tmp_path, config(2)) == one  # never itself
    assert shorter_sibling(tmp_path, config(1)) is None
    assert shorter_sibling(tmp_path, config(3, **{"train.max_steps": 5})) is None  # cut short: not a prefix


@pytest.mark.parametrize(
    ("method", "ignores"),
    [("ls", True), ("phn-ls", True), ("cosmos", True), ("mgda", True), ("palora", False), ("pamal", False)],
)
def test_which_methods_draw_rays_regardless_of_progress(method: str, ignores: bool):
    """On MultiMNIST's presets: Dirichlet and fixed rays ignore it; the annealing schedules follow it."""
    cfg = resolve(method, "multimnist-mini", 0)
    assert rays_ignore_progress(cfg, DATASETS.get("multimnist-mini")) is ignores
