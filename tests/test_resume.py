"""Checkpoint and resume: a run interrupted at any checkpoint and resumed ends exactly like one that
never stopped (CPU), for methods with every kind of state (ray sampler, global RNG, aggregator)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from bench.data.kit.batches import LoaderBatches, TensorBatches
from bench.train import checkpoint
from bench.train.config import resolve
from bench.train.record import read_status
from bench.train.runner import run_experiment

SETTINGS = [
    "train.epochs=3",
    "train.batch_size=64",
    "data.train_limit=640",
    "data.eval_limit=256",
    "train.checkpoint_every=4",
    "train.log_every=3",
]  # 10 steps per epoch: checkpoints at steps 4, 8, 10 (epoch end), 12, ...; train loss rows at 3, 6, 9, ...


class Interrupt(Exception):
    pass


def interrupt_after(monkeypatch: pytest.MonkeyPatch, saves: int) -> None:
    """Make the ``saves``-th checkpoint save the last thing the run does."""
    original = checkpoint.save
    count = {"n": 0}

    def save_then_stop(*args, **kwargs):
        path = original(*args, **kwargs)
        count["n"] += 1
        if count["n"] == saves:
            raise Interrupt(f"stopped after checkpoint {saves}")
        return path

    monkeypatch.setattr(checkpoint, "save", save_then_stop)


def metric_rows(directory: Path) -> list[dict]:
    rows = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in ("time", "train_time")} for row in rows]


@pytest.mark.parametrize(
    ("method", "saves"),
    [("palora", 2), ("palora", 3), ("pcgrad", 4), ("phn-epo", 2), ("nash-mtl", 2)],
    ids=["palora-mid-epoch", "palora-epoch-end", "pcgrad-global-rng", "phn-epo-moves", "nash-mtl-state"],
)
@pytest.mark.slow
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path: Path, monkeypatch, method: str, saves: int):
    cfg = resolve(method, "multimnist-mini", seed=3, assignments=SETTINGS)
    straight = run_experiment(cfg, tmp_path / "straight", device="cpu", show_progress=False)

    with monkeypatch.context() as patch:
        interrupt_after(patch, saves)
        with pytest.raises(Interrupt):
            run_experiment(cfg, tmp_path / "broken", device="cpu", show_progress=False)
    directory = tmp_path / "broken" / cfg.run_id()
    assert read_status(directory).startswith("FAILED: Interrupt")
    resumed = run_experiment(cfg, tmp_path / "broken", device="cpu", show_progress=False, resume=True)

    expected_step = {2: 8, 3: 10, 4: 12}[saves]
    assert [r["from_step"] for r in resumed.summary["resumed"]] == [expected_step]
    assert read_status(directory) == "COMPLETED"
    assert resumed.summary["front"] == straight.summary["front"]  # exactly, every metric of every ray
    assert resumed.summary["steps"] == straight.summary["steps"] == 30
    assert resumed.summary["train_ray_histogram"] == straight.summary["train_ray_histogram"]
    assert resumed.summary["method_info"] == straight.summary["method_info"]
    assert metric_rows(directory) == metric_rows(straight.directory)
    assert sum(row["split"] == "train" for row in metric_rows(directory)) == 10 * 3  # 2 tasks and the total


def test_resume_of_a_completed_run_does_nothing(tmp_path: Path):
    cfg = resolve("ls", "multimnist-mini", assignments=[*SETTINGS, "train.epochs=1", "method.rays=0.5,0.5"])
    first = run_experiment(cfg, tmp_path, device="cpu", show_progress=False)
    mtime = (first.directory / "summary.json").stat().st_mtime_ns
    again = run_experiment(cfg, tmp_path, device="cpu", show_progress=False, resume=True)
    assert again.skipped and {k: v for k, v in again.summary.items() if k != "schema_version"} == first.summary
    assert (first.directory / "summary.json").stat().st_mtime_ns == mtime


def test_resume_without_a_checkpoint_starts_over(tmp_path: Path):
    cfg = resolve("ls", "multimnist-mini", assignments=[*SETTINGS, "train.epochs=1", "method.rays=0.5,0.5"])
    result = run_experiment(cfg, tmp_path, device="cpu", show_progress=False, resume=True)
    assert not result.skipped and result.summary["resumed"] == [] and result.summary["steps"] == 10


def test_fresh_start_clears_an_earlier_attempt(tmp_path: Path):
    cfg = resolve("ls", "multimnist-mini", assignments=[*SETTINGS, "train.epochs=1", "method.rays=0.5,0.5"])
    first = run_experiment(cfg, tmp_path, device="cpu", show_progress=False)
    assert (first.directory / checkpoint.FILENAME).is_file()
    (first.directory / "error.log").write_text("old")
    run_experiment(cfg, tmp_path, device="cpu", show_progress=False)
    assert not (first.directory / "error.log").exists()
    assert len(metric_rows(first.directory)) == len(metric_rows(tmp_path / cfg.run_id()))


@pytest.mark.parametrize("kind", ["tensors", "loader"])
def test_an_epoch_replayed_from_its_start_state_skips_to_the_same_batches(kind: str):
    x = torch.arange(50, dtype=torch.float32).unsqueeze(1)
    targets = {"t": torch.arange(50)}
    generator = torch.Generator().manual_seed(0)
    if kind == "tensors":
        batches = TensorBatches(x, targets, 8, generator)
    else:
        dataset = TensorDataset(x, targets["t"])
        dataset_dict = [(x[i], {"t": targets["t"][i]}) for i in range(len(dataset))]
        batches = LoaderBatches(dataset_dict, 8, torch.device("cpu"), generator)
    list(batches.epoch())  # one epoch, so the replay is not of the first
    start = generator.get_state()
    full = [b[0].flatten().tolist() for b in batches.epoch()]
    generator.set_state(start)
    tail = [b[0].flatten().tolist() for b in batches.epoch(skip=3)]
    assert tail == full[3:] and len(full) == 7
    assert sorted(v for batch in full for v in batch) == list(range(50))


@pytest.mark.slow
def test_a_resumed_run_records_the_code_and_threads_of_every_attempt(tmp_path: Path, monkeypatch):
    """A run resumed on other code is a mix: the first attempt's commit and threads are kept through
    the checkpoint, and each resume notes its own."""
    cfg = resolve("palora", "multimnist-mini", seed=3, assignments=SETTINGS)
    with monkeypatch.context() as patch:
        patch.setattr("bench.train.runner.git_sha", lambda: "aaaa")
        interrupt_after(patch, 2)
        with pytest.raises(Interrupt):
            run_experiment(cfg, tmp_path, device="cpu", show_progress=False)
    monkeypatch.setattr("bench.train.runner.git_sha", lambda: "bbbb")
    summary = run_experiment(cfg, tmp_path, device="cpu", show_progress=False, resume=True).summary
    threads = torch.get_num_threads()
    assert summary["first_attempt"] == {"git_sha": "aaaa", "torch_threads": threads}
    (resumed,) = summary["resumed"]
    assert resumed["git_sha"] == "bbbb" and resumed["torch_threads"] == threads and resumed["from_step"] > 0
