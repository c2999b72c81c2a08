"""Logs where runs happen: the training-loss rows of metrics.jsonl (against the losses of every
step), the plain progress lines of a sweep worker's log, `bench status` of a runs folder, and the
TensorBoard sink (read back with tensorboard's EventAccumulator)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from bench.core.hypervolume import front_hypervolume
from bench.core.registry import DATASETS
from bench.sweep.command import main as sweep_main
from bench.sweep.job import SweepJob
from bench.train.command import main as run_main
from bench.train.config import resolve
from bench.train.evaluate import front
from bench.train.loop import Learner
from bench.train.record import RunRecord
from bench.train.runner import run_experiment, summary_hypervolume
from tests.test_resume import Interrupt, interrupt_after, metric_rows

SETTINGS = [
    "train.epochs=2",
    "train.batch_size=64",
    "data.train_limit=640",
    "data.eval_limit=128",
    "method.rays=0.5,0.5",
    "train.log_every=3",
    "train.checkpoint_every=4",
]  # 10 steps per epoch: train rows at steps 3, 6, ..., 18 and 20 (the last 2 steps)
NAMES = ["top-left", "bottom-right", "total"]
SPEC = DATASETS.get("multimnist-mini")


def rows_of(directory: Path, split: str) -> list[dict]:
    rows = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == split]


def spy_steps(monkeypatch: pytest.MonkeyPatch) -> list[list[float]]:
    """Each step's task losses (mean over its rays) and reduced loss, as the learner returns them."""
    seen: list[list[float]] = []
    original = Learner.step

    def step(self, x, targets, progress):
        rays, losses, loss = original(self, x, targets, progress)
        seen.append([*losses.detach().mean(0).tolist(), float(loss)])
        return rays, losses, loss

    monkeypatch.setattr(Learner, "step", step)
    return seen


def test_train_rows_are_interval_means_and_each_evaluation_prints_one_line(tmp_path: Path, monkeypatch, capsys):
    seen = spy_steps(monkeypatch)
    cfg = resolve("ls", "multimnist-mini", seed=0, assignments=SETTINGS)
    result = run_experiment(cfg, tmp_path, device="cpu", show_progress=False)
    assert len(seen) == 20
    train = rows_of(result.directory, "train")
    ends = [3, 6, 9, 12, 15, 18, 20]
    assert [(r["step"], r["epoch"], r["objective"]) for r in train] == [
        (end, 1 if end <= 10 else 2, name) for end in ends for name in NAMES
    ]
    assert all(set(r) == {"step", "epoch", "split", "metric", "objective", "value", "time"} for r in train)
    assert {r["metric"] for r in train} == {"loss"}
    for k, end in enumerate(ends):
        start = ends[k - 1] if k else 0
        expected = [sum(step[j] for step in seen[start:end]) / (end - start) for j in range(3)]
        assert [r["value"] for r in train[3 * k : 3 * k + 3]] == pytest.approx(expected, abs=1e-12)

    val = rows_of(result.directory, "val")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(cfg.run_id())]
    assert len(lines) == 2
    for epoch, line in enumerate(lines, start=1):
        step = 10 * epoch
        hv = front_hypervolume(front([r for r in val if r["step"] == step], SPEC), SPEC)
        loss = sum(s[2] for s in seen[step - 10 : step]) / 10
        head = f"{cfg.run_id()}: epoch {epoch}/2 step {step} train_loss {loss:.4f} val_hv {hv:.4f} "
        assert line.startswith(head) and re.fullmatch(r"\(\d+\.\d s\)", line.removeprefix(head)), line


def test_log_every_zero_writes_no_train_rows(tmp_path: Path):
    cfg = resolve("ls", "multimnist-mini", assignments=[*SETTINGS, "train.epochs=1", "train.log_every=0"])
    assert cfg.run_id() == resolve("ls", "multimnist-mini", assignments=SETTINGS[:-2] + ["train.epochs=1"]).run_id()
    result = run_experiment(cfg, tmp_path, device="cpu", show_progress=False)
    assert rows_of(result.directory, "train") == [] and len(rows_of(result.directory, "val")) == 4


def test_a_resumed_run_writes_the_same_train_rows_and_tensorboard_events(tmp_path: Path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = resolve("ls", "multimnist-mini", seed=1, assignments=SETTINGS)
    straight = run_experiment(cfg, tmp_path / "straight", device="cpu", show_progress=False, log="tensorboard")
    with monkeypatch.context() as patch:
        interrupt_after(patch, 2)  # at step 8, inside the interval 7..9
        with pytest.raises(Interrupt):
            run_experiment(cfg, tmp_path / "broken", device="cpu", show_progress=False, log="tensorboard")
    resumed = run_experiment(cfg, tmp_path / "broken", None, "cpu", False, resume=True, log="tensorboard")
    assert [r["from_step"] for r in resumed.summary["resumed"]] == [8]
    assert metric_rows(resumed.directory) == metric_rows(straight.directory)
    assert len(rows_of(resumed.directory, "train")) == 7 * 3

    events = EventAccumulator(str(resumed.directory / "tensorboard"))
    events.Reload()
    total = {r["step"]: r["value"] for r in rows_of(resumed.directory, "train") if r["objective"] == "total"}
    scalars = events.Scalars("train/loss/total")
    assert [e.step for e in scalars] == sorted(total)  # the interrupted attempt's steps 9+ are purged
    assert [e.value for e in scalars] == pytest.approx([total[e.step] for e in scalars], rel=1e-6)
    assert [e.step for e in events.Scalars("val/hypervolume")] == [10, 20]
    val = [r for r in rows_of(resumed.directory, "val") if r["step"] == 20 and r["ray"] == [0.5, 0.5]]
    accuracy = next(r["value"] for r in val if r["objective"] == "top-left" and r["metric"] == "accuracy")
    assert events.Scalars("val/top-left/accuracy/ray_0.50_0.50")[-1].value == pytest.approx(accuracy, rel=1e-6)
    test_hv = events.Scalars("test/hypervolume")
    assert [e.step for e in test_hv] == [20] and test_hv[0].value == pytest.approx(summary_hypervolume(resumed.summary))


def test_without_tensorboard_log_tensorboard_is_one_error_line(tmp_path: Path, monkeypatch, capsys):
    for name in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    out = tmp_path / "runs"
    args = ["--method", "ls", "--device", "cpu", "--out", str(out), "--no-progress", "--log", "tensorboard"]
    assert run_main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "pip install tensorboard" in err
    assert not out.exists()


def test_a_sweep_worker_logs_each_run_start_epochs_and_end(tmp_path: Path, capsys):
    cfg = resolve("ls", "multimnist-mini", seed=0, assignments=[*SETTINGS, "train.epochs=1"])
    directory = tmp_path / cfg.run_id()
    results, failures = SweepJob().run_each([cfg], str(tmp_path), "", "cpu", 0)
    assert results == [{"run_id": cfg.run_id(), "skipped": False, "steps": 10}] and failures == []
    summary = json.loads((directory / "summary.json").read_text())
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"run {cfg.run_id()} (ls on multimnist-mini, seed 0) in {directory}"
    assert lines[1].startswith(f"{cfg.run_id()}: epoch 1/1 step 10 train_loss ")
    end = f"10 steps, test_hv {summary_hypervolume(summary):.6f}, record {directory}"
    assert lines[2] == f"{cfg.run_id()}: completed in {summary['wall_seconds']:.1f} s, {end}" and len(lines) == 3
    SweepJob().run_each([cfg], str(tmp_path), "", "cpu", 0)
    assert capsys.readouterr().out.splitlines()[1] == f"{cfg.run_id()}: already completed (nothing trained), {end}"


def test_status_of_a_runs_folder_and_of_a_spec(tmp_path: Path, monkeypatch, capsys):
    folder = tmp_path / "grid"
    cfgs = [resolve("ls", "multimnist-mini", seed=s, assignments=SETTINGS) for s in range(3)]
    done = run_experiment(cfgs[0], folder, device="cpu", show_progress=False)
    shutil.copytree(done.directory, done.directory / "attempts" / "1", ignore=shutil.ignore_patterns("attempts"))
    for cfg in cfgs[1:]:
        with monkeypatch.context() as patch:
            interrupt_after(patch, 2)
            with pytest.raises(Interrupt):
                run_experiment(cfg, folder / "nested", device="cpu", show_progress=False)
    RunRecord(folder / "nested" / cfgs[2].run_id()).set_status("RUNNING")
    (folder / "nested" / "empty-run").mkdir()
    (folder / "nested" / "empty-run" / "config.json").write_text("{}")
    capsys.readouterr()

    assert sweep_main(["status", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    hv = f"{summary_hypervolume(done.summary):.6f}"
    assert lines[:8] == [
        f"{folder}: 4 runs",
        "  pending 1, running 1, completed 1, failed 1",
        "failed:",
        f"  {cfgs[1].run_id()} (ls on multimnist-mini, seed 1): FAILED: Interrupt: stopped after checkpoint 2",
        "running:",
        lines[5],
        "completed:",
        f"  {cfgs[0].run_id()} (ls on multimnist-mini, seed 0): test HV {hv}",
    ]
    running = f"  {cfgs[2].run_id()} (ls on multimnist-mini, seed 2): RUNNING (or its job died: see the scheduler), "
    assert re.fullmatch(re.escape(running + "epoch 1/2, step 6 (recorded ") + r"\d+ s ago\)", lines[5]), lines[5]
    assert lines[8:] == ["pending:", "  empty-run (config.json unreadable)"]

    spec = tmp_path / "s.toml"
    spec.write_text(
        '[grid]\nmethods = ["ls"]\ndatasets = ["multimnist-mini"]\nseeds = [0]\n[set]\n'
        + "\n".join(f'"{key}" = {value}' for key, value in (i.split("=") for i in SETTINGS if "rays" not in i))
        + '\n"method.rays" = [[0.5, 0.5]]\n'
    )
    assert sweep_main(["status", str(spec), "--out", str(folder)]) == 0
    text = capsys.readouterr().out
    what = "ls on multimnist-mini, seed 0; job not submitted by this sweep"
    assert text.splitlines()[2:4] == ["completed:", f"  {cfgs[0].run_id()} ({what}): test HV {hv}"]
