"""Whole runs of each method on a tiny slice of the embedded dataset, and their records."""

import json
from pathlib import Path

import pytest

from bench.core.hypervolume import front_hypervolume
from bench.core.registry import DATASETS, METHODS
from bench.train import loop
from bench.train.config import resolve
from bench.train.runner import run_experiment
from tests.support import tiny_settings

TINY = tiny_settings()


@pytest.mark.parametrize("name", METHODS.names())
@pytest.mark.slow
def test_tiny_run_writes_a_complete_record(name, tmp_path: Path, data_root: Path):
    cfg = resolve(name, "multimnist-mini", seed=0, assignments=TINY)
    result = run_experiment(cfg, tmp_path, data_root, "cpu", show_progress=False)
    run_dir = result.directory
    assert run_dir.name == cfg.run_id()
    assert (run_dir / "status").read_text().strip() == "COMPLETED"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["method"] == name and config["device"] == "cpu"
    assert config["packages"]["torch"] and "git_sha" in config
    summary = json.loads((run_dir / "summary.json").read_text())
    spec = DATASETS.get("multimnist-mini")
    points = 11 if METHODS.get(name).kind == "front" else 1  # a single-point method reports one point
    assert summary["kind"] == METHODS.get(name).kind
    assert len(summary["front"]) == points and summary["steps"] == 2 * 4
    assert "hypervolume" not in summary  # computed from the front, never stored
    assert 0.0 <= front_hypervolume(summary["front"], spec) <= 1.0
    assert summary["hv_reference"] == [1.0, 1.0]
    assert summary["parameters"]["trainable"] >= summary["parameters"]["inference"] > 0
    assert summary["peak_memory_bytes"]["train"] > 0 and summary["wall_seconds"] > 0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # 2 val evaluations (the 3-point grid, or 1 point) + 1 test evaluation (11 rays or 1 point),
    # each x 2 tasks x 2 metrics
    per_eval = points * 4
    val_points = 3 if points == 11 else 1
    assert sum(r["split"] == "val" for r in rows) == 2 * val_points * 4
    val_rays = {tuple(r["ray"]) for r in rows if r["split"] == "val"}
    assert val_rays <= {tuple(r["ray"]) for r in rows if r["split"] == "test"}
    assert sum(r["split"] == "test" for r in rows) == per_eval
    assert {r["epoch"] for r in rows if r["split"] == "val"} == {1, 2}
    # 8 steps, fewer than train.log_every: one row per task and the total, after the last step
    assert [(r["step"], r["objective"]) for r in rows if r["split"] == "train"] == [
        (8, "top-left"),
        (8, "bottom-right"),
        (8, "total"),
    ]
    assert not list(run_dir.glob("*.tmp"))


def test_same_seed_same_record(tmp_path: Path, data_root: Path):
    cfg = resolve("palora", "multimnist-mini", seed=5, assignments=[*TINY, "train.epochs=1"])
    a = run_experiment(cfg, tmp_path / "a", data_root, "cpu", show_progress=False).summary
    b = run_experiment(cfg, tmp_path / "b", data_root, "cpu", show_progress=False).summary
    assert a["front"] == b["front"]


def test_max_steps_stops_early(tmp_path: Path, data_root: Path):
    cfg = resolve("palora", "multimnist-mini", assignments=[*TINY, "train.max_steps=3"])
    summary = run_experiment(cfg, tmp_path, data_root, "cpu", show_progress=False).summary
    assert summary["steps"] == 3


def test_a_crash_marks_the_run_failed(tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("bench.train.runner.fit", boom)
    assert loop.fit is not boom
    cfg = resolve("ls", "multimnist-mini", assignments=TINY)
    with pytest.raises(RuntimeError):
        run_experiment(cfg, tmp_path, data_root, "cpu", show_progress=False)
    run_dir = tmp_path / cfg.run_id()
    assert (run_dir / "status").read_text().strip() == "FAILED: RuntimeError: boom"
    assert "boom" in (run_dir / "error.log").read_text()


def test_ray_histogram_counts_every_training_ray(tmp_path: Path, data_root: Path):
    cfg = resolve("ls", "multimnist-mini", assignments=[*TINY, "train.epochs=1"])
    summary = run_experiment(cfg, tmp_path, data_root, "cpu", show_progress=False).summary
    counts = summary["train_ray_histogram"]["counts"]
    steps = summary["steps"]
    # the 11 grid rays, once per step: one per bin of width 0.1, two (0.9 and 1.0) in the last bin
    assert counts["top-left"] == [steps] * 9 + [2 * steps]
    assert counts["bottom-right"] == [steps] * 9 + [2 * steps]
