"""The archive in ``results/``: ``fronts.csv`` and ``runs.jsonl`` give back the runs the report reads,
exactly, so every table regenerates without ``runs/``; every front point is one auditable row."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.analysis.aggregate import run_table
from bench.analysis.archive import FRONTS, RUNS, fronts_and_lines, read_archive, write_archive
from bench.analysis.footprint import footprint_table
from bench.analysis.front_aware import front_aware_table
from bench.analysis.protocols import protocol_of
from bench.analysis.records import Run, scan
from bench.core.errors import ConfigError
from bench.core.registry import DATASETS
from tests.fake_runs import write_run

THREE = ("top-left", "top-right", "bottom")
# awkward floats (no short decimal form) to show that values survive the CSV bit for bit
PALORA_FRONT = [(0.9, 0.1 + 0.2), (2 / 3, 0.7), (0.30000000000000004 / 3, 0.9)]
PALORA3_FRONT = [(0.9, 0.5, 1 / 7), (0.8, 0.8, 0.8), (0.5, 0.9, 0.61)]


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    """Two datasets (2 and 3 tasks, sharing "top-left"), a front method (palora, with a variant pair on
    epochs) and a single-point one (mean), two seeds, one failed run and one run with a commit."""
    root = tmp_path / "runs"
    palora = {"total": 110, "trainable": 110, "inference": 100, "single_model": 100}
    for seed in (0, 1):
        write_run(root, "palora", seed, PALORA_FRONT, parameters=palora)
        write_run(root, "mean", seed, [(0.8, 0.7 + seed / 30)])
    write_run(root, "palora", 0, PALORA_FRONT[:2], epochs=3)
    write_run(root, "palora", 2, PALORA_FRONT, status="FAILED: RuntimeError: boom")
    committed = write_run(root, "palora", 0, PALORA3_FRONT, dataset="multimnist3", tasks=THREE, parameters=palora)
    write_run(root, "mean", 0, [(0.8, 0.7, 0.6)], dataset="multimnist3", tasks=THREE)
    summary = json.loads((committed / "summary.json").read_text())
    summary["first_attempt"] = {"git_sha": "abc1234", "torch_threads": 2}
    (committed / "summary.json").write_text(json.dumps(summary))
    return root


def archived(runs_dir: Path, tmp_path: Path) -> tuple[list[Run], Path]:
    out = tmp_path / "results"
    assert write_archive(*fronts_and_lines(scan(runs_dir), protocol_of), out) == [out / FRONTS, out / RUNS]
    return read_archive(out), out


def test_the_archive_gives_back_every_run_and_the_tables_made_from_them(runs_dir: Path, tmp_path: Path):
    original = scan(runs_dir)
    back, out = archived(runs_dir, tmp_path)
    assert [r.run_id for r in back] == [r.run_id for r in original]
    for old, new in zip(original, back, strict=True):
        assert (new.config, new.status, new.summary) == (old.config, old.status, old.summary)
        assert json.dumps(new.summary) == json.dumps(old.summary)  # key order too, floats bit for bit
        assert new.directory == out / "archive" / old.run_id and new.metrics.empty
    pd.testing.assert_frame_equal(run_table(back), run_table(original))
    pd.testing.assert_frame_equal(footprint_table(back), footprint_table(original))
    for dataset in ("multimnist-mini", "multimnist3"):
        spec = DATASETS.get(dataset)
        (new_table, new_note), (old_table, old_note) = front_aware_table(back, spec), front_aware_table(original, spec)
        pd.testing.assert_frame_equal(new_table, old_table)
        assert new_note == old_note


def test_fronts_csv_has_one_row_per_ray_of_each_usable_run(runs_dir: Path, tmp_path: Path):
    out = tmp_path / "results"
    write_archive(*fronts_and_lines(scan(runs_dir), lambda run: f"p-{run.dataset}"), out)
    fronts = pd.read_csv(out / FRONTS, dtype={"run_id": str, "commit": str}, keep_default_na=False, na_values=[""])
    identity = ["dataset", "protocol", "method", "label", "seed", "run_id", "commit", "ray_index"]
    rays = ["ray_top-left", "ray_bottom-right", "ray_top-right", "ray_bottom"]
    metrics = [f"{t}_{m}" for t in ("top-left", "bottom-right", "top-right", "bottom") for m in ("accuracy", "loss")]
    assert list(fronts.columns) == identity + rays + metrics
    per_run = fronts.groupby("run_id").size().to_dict()
    usable = {r.run_id: len((r.summary or {})["front"]) for r in scan(runs_dir) if r.usable}
    assert per_run == usable and sum(usable.values()) == 3 + 3 + 2 + 1 + 1 + 3 + 1
    assert not fronts.duplicated(["dataset", "protocol", "method", "label", "seed", "ray_index"]).any()
    three = fronts[(fronts["dataset"] == "multimnist3") & (fronts["method"] == "palora")].set_index("ray_index")
    assert three.loc[0, ["ray_top-left", "ray_top-right", "ray_bottom"]].tolist() == [0.0, 0.0, 1.0]
    assert three.loc[0, "bottom_accuracy"] == 1 / 7 and three.loc[0, "bottom_loss"] == 1 - 1 / 7
    assert three["ray_bottom-right"].isna().all() and set(three["commit"]) == {"abc1234"}
    assert fronts.loc[fronts["dataset"] == "multimnist-mini", "commit"].isna().all()
    assert set(three["protocol"]) == {"p-multimnist3"} and set(three["label"]) == {"palora"}
    labels = set(fronts.loc[fronts["dataset"] == "multimnist-mini", "label"])
    assert labels == {"mean", "palora (train.epochs=2)", "palora (train.epochs=3)"}
    assert set(fronts.loc[fronts["method"] == "mean", "ray_top-left"]) == {0.5, 1 / 3}


@pytest.mark.parametrize("name", [FRONTS, RUNS])
def test_a_missing_archive_file_is_named_with_how_to_write_it(runs_dir: Path, tmp_path: Path, name: str):
    out = tmp_path / "results"
    write_archive(*fronts_and_lines(scan(runs_dir), protocol_of), out)
    (out / name).unlink()
    with pytest.raises(ConfigError, match=rf"{name} not found.*python -m bench report --runs DIR --out results/"):
        read_archive(out)


def test_a_lost_front_row_is_an_error_not_a_shorter_front(runs_dir: Path, tmp_path: Path):
    out = tmp_path / "results"
    write_archive(*fronts_and_lines(scan(runs_dir), protocol_of), out)
    text = pd.read_csv(out / FRONTS, dtype=str, keep_default_na=False)
    lost = (text["dataset"] == "multimnist3") & (text["method"] == "palora") & (text["ray_index"] == "1")
    text[~lost].to_csv(out / FRONTS, index=False)
    with pytest.raises(ConfigError, match=r"fronts\.csv, run palora_multimnist3\w+: rays \[0, 2\], expected 0 to n-1"):
        read_archive(out)


def test_a_failed_run_is_listed_with_its_status_and_has_no_front_rows(runs_dir: Path, tmp_path: Path):
    back, out = archived(runs_dir, tmp_path)
    failed = [r for r in scan(runs_dir) if not r.usable]
    assert len(failed) == 1
    lines = {line["run_id"]: line for line in map(json.loads, (out / RUNS).read_text().splitlines())}
    assert len(lines) == len(back) == 8
    assert lines[failed[0].run_id]["status"] == "FAILED: RuntimeError: boom"
    assert lines[failed[0].run_id]["summary"] is None
    assert failed[0].run_id not in set(pd.read_csv(out / FRONTS, dtype={"run_id": str})["run_id"])
    assert [r.status for r in back if not r.usable] == ["FAILED: RuntimeError: boom"]
    pointers = [line["summary"]["front"] for line in lines.values() if line["summary"] is not None]
    assert pointers and all(set(front) == {"file", "tasks"} for front in pointers)  # no number: it lives in the CSV
    assert pointers[-1]["tasks"] == {t: ["accuracy", "loss"] for t in THREE}
    assert repr(1 / 7) not in (out / RUNS).read_text() and repr(1 / 7) in (out / FRONTS).read_text()
