"""A run's protocol comes from its recorded config: the preset unchanged is ``official``, the shared
tuning budget is ``tuned``, anything else ``custom``; the budget is the tuning spec's."""

from __future__ import annotations

from pathlib import Path

from bench.analysis.protocols import TUNED_BUDGET, protocol_of
from bench.analysis.records import read_run
from bench.sweep.spec import load_spec
from bench.train.config import NOT_IDENTITY, resolve
from tests.fake_runs import write_run

ROOT = Path(__file__).resolve().parents[1]


def test_protocol_of_a_recorded_run(tmp_path: Path):
    preset_epochs = resolve("mean", "multimnist-mini", 0).train.epochs
    official = write_run(tmp_path, "mean", 0, [(0.8, 0.8)], epochs=preset_epochs)
    custom = write_run(tmp_path, "mean", 0, [(0.8, 0.8)], epochs=preset_epochs, settings=("train.lr=0.007",))
    budget = tuple(f"{key}={value}" for key, value in TUNED_BUDGET.items() if key != "train.epochs")
    tuned = write_run(
        tmp_path, "mean", 0, [(0.8, 0.8)], epochs=TUNED_BUDGET["train.epochs"], settings=(*budget, "train.lr=0.01")
    )
    short = write_run(tmp_path, "mean", 0, [(0.8, 0.8)], epochs=2, settings=budget)
    assert [protocol_of(read_run(d)) for d in (official, custom, tuned, short)] == [
        "official",
        "custom",
        "tuned",
        "custom",
    ]


def test_the_tuned_budget_is_the_tuning_specs_shared_settings():
    for spec in sorted((ROOT / "slurm").glob("*-tune*.toml")):  # stage one, stage two, the tuned grid
        settings = {k: v for k, v in load_spec(spec).settings.items() if k not in NOT_IDENTITY}
        assert settings == TUNED_BUDGET, spec
    assert (ROOT / "slurm" / "multifashion-tune.toml").is_file()
