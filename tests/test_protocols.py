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


def test_the_tuned_selection_validates_every_ray_the_test_front_has():
    """The selection reads the tables' hypervolume on validation data: the tuned budget validates the
    whole evaluation grid (a coarser grid meeting the 11-ray grid keeps only 0, 1/2 and 1 of 5 points)."""
    from bench.core.rays import eval_grid
    from bench.core.registry import DATASETS
    from bench.train.evaluate import validation_rays

    for spec_path in sorted((ROOT / "slurm").glob("*-tune.toml")):
        for config in load_spec(spec_path).configs():
            spec = DATASETS.get(config.dataset)
            grid = eval_grid(spec.num_tasks, spec.eval_points_per_edge)
            validated = validation_rays(grid, spec.num_tasks, config.train.val_points_per_edge)
            assert validated.shape == grid.shape == (11, 2), (spec_path, config.method)
    grid = eval_grid(2, 11)
    assert validation_rays(grid, 2, 5).tolist() == [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]  # the trap
