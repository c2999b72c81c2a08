"""The ``tuned`` protocol's selection reads validation only, picks each method's best trial, applies the
budget rule, and writes a tuned grid spec that the sweep runs as selected."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bench.analysis.records import scan
from bench.analysis.tuning import (
    PLATEAU_GAIN,
    budget_violations,
    display,
    last_gain,
    select,
    selected_settings,
    stage_two,
    trial_table,
)
from bench.analysis.tuning_cli import main
from bench.core.errors import ConfigError
from bench.sweep.spec import load_spec
from bench.train.grid import Grid
from tests.fake_runs import write_run

POINTS = [(0.9, 0.5), (0.8, 0.8), (0.5, 0.9)]
LRS = (0.001, 0.003, 0.01)
CURVES = {
    0.001: [0.5 + 0.04 * e for e in range(1, 11)],  # still rising: 0.82, 0.86, 0.90 over the last 20%
    0.003: [0.8, 0.9, 0.95, 0.98, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],  # plateaued, highest
    0.01: [0.9, 0.92, 0.93] + [0.93] * 7,  # plateaued lower
}
"""Validation accuracy scale per evaluation (steps 10..100): lr 3e-3 ends highest on validation."""


SPEC = Grid(
    path=Path("toy-tune.toml"),
    methods=("palora", "mean"),
    datasets=("multimnist-mini",),
    seeds=(0,),
    variants=tuple({"train.lr": lr} for lr in LRS),
    settings={"train.epochs": 10},
    per_method={},
)


def write_trials(root: Path, method: str = "palora", seeds: tuple[int, ...] = (0,)) -> dict[float, list[Path]]:
    """One run per (lr, seed) whose validation curve is :data:`CURVES`; the test front is then made the
    *reverse* of the validation order (lr 1e-2 best on test), so a selection that peeked would differ."""
    dirs: dict[float, list[Path]] = {}
    for lr in LRS:
        for seed in seeds:
            d = write_run(root, method, seed, POINTS, curve=CURVES[lr], epochs=10, settings=(f"train.lr={lr}",))
            summary = json.loads((d / "summary.json").read_text())
            test_scale = {0.001: 0.5, 0.003: 0.6, 0.01: 1.0}[lr]
            for entry in summary["front"]:
                for metrics in entry["metrics"].values():
                    metrics["accuracy"] *= test_scale
            (d / "summary.json").write_text(json.dumps(summary))
            dirs.setdefault(lr, []).append(d)
    return dirs


def write_stage_two(root: Path, scale: float = 1.0) -> None:
    """PaLoRA's stage two at the selected lr 3e-3: windows 3 and 4, validation curves ending at ``scale``."""
    for window in (3, 4):
        curve = [c * scale for c in CURVES[0.003]]
        write_run(
            root, "palora", 0, POINTS, curve=curve, epochs=10, settings=("train.lr=0.003", f"method.window={window}")
        )


def test_last_gain_is_the_mean_and_fitted_rise_over_the_last_20_percent():
    steps = np.arange(10, 101, 10)
    linear = pd.DataFrame({"step": steps, "hypervolume": steps / 1000})
    mean, gain = last_gain(linear)
    assert mean == pytest.approx(0.09) and gain == pytest.approx(0.001 * 0.2 * 100)  # 0.001 a step over 80-100
    assert last_gain(linear.iloc[::-1]) == pytest.approx((mean, gain))  # row order does not matter
    # a flat curve with epoch-to-epoch noise of +-0.005: two end points would differ by 0.01
    noisy = pd.DataFrame({"step": steps, "hypervolume": 0.7 + 0.005 * (-1.0) ** np.arange(10)})
    assert abs(noisy["hypervolume"].iloc[-1] - noisy["hypervolume"].iloc[-3]) == pytest.approx(0.0, abs=1e-12)
    assert abs(noisy["hypervolume"].iloc[-1] - noisy["hypervolume"].iloc[-2]) == pytest.approx(0.01)
    assert abs(last_gain(noisy)[1]) < 0.003 + 1e-12
    assert pd.isna(last_gain(linear.iloc[:4])[1])  # steps 40 only in the last 20%: no line through one point


def test_selection_picks_the_best_validation_trial_not_the_best_test_trial(tmp_path: Path):
    write_trials(tmp_path)
    spec = dataclasses.replace(SPEC, methods=("palora",))
    trials = trial_table(scan(tmp_path), spec)
    # stage one done: stage two asks for PaLoRA's windows 3 and 4 at the selected lr, not yet run
    second = trials[trials["stage"] == 2]
    assert [json.loads(t) for t in second["settings"]] == [
        {"method.window": 3, "train.lr": 0.003},
        {"method.window": 4, "train.lr": 0.003},
    ]
    assert (second["status"] == "NOT RUN").all()
    selection = select(trials)
    chosen = selection[selection["selected"]]
    assert len(chosen) == 1 and json.loads(chosen["settings"].iloc[0]) == {"train.lr": 0.003}
    assert not selection["complete"].any()  # provisional until stage two has run
    # the validation value that chose it: HV of the validation front over the last evaluations, errors
    # (0.1, 0.5), (0.2, 0.2), (0.5, 0.1) against (1, 1): 0.1 * 0.5 + 0.3 * 0.8 + 0.5 * 0.9
    assert chosen["val_hv"].iloc[0] == pytest.approx(0.74)
    assert chosen["val_hv"].iloc[0] > selection.loc[~selection["selected"], "val_hv"].max()

    write_stage_two(tmp_path, scale=0.99)
    selection = select(trial_table(scan(tmp_path), spec))
    assert selection["complete"].all() and len(selection) == 5
    assert json.loads(selection.loc[selection["selected"], "settings"].iloc[0]) == {"train.lr": 0.003}
    assert stage_two("pcgrad", 0.003) == [{"train.lr": 0.0015}, {"train.lr": 0.006}]
    assert stage_two("phn-ls", 0.01) == [
        {"train.lr": 0.01, "method.alpha": 0.2},
        {"train.lr": 0.01, "method.alpha": 0.5},
    ]


class Poisoned(dict):
    """A summary any read of which fails: the test front must never reach the selection."""

    def __getitem__(self, key: Any) -> Any:
        raise AssertionError(f"the selection read summary[{key!r}]")

    def get(self, key: Any, default: Any = None) -> Any:
        raise AssertionError(f"the selection read summary.get({key!r})")


def test_no_test_metric_reaches_the_selection(tmp_path: Path):
    """Poisoned test data (summary.json unreadable, test rows in metrics.jsonl that favour another
    trial) leave the selection exactly as the clean records give it."""
    write_trials(tmp_path)
    clean = select(trial_table(scan(tmp_path), SPEC))
    for run_dir in tmp_path.iterdir():
        rows = [
            {"step": 100, "epoch": 10, "split": "test", "ray_index": k, "ray": [0.5, 0.5], "objective": task,
             "metric": "accuracy", "value": 1.0 if "0.01" in (run_dir / "config.json").read_text() else 0.0}
            for k in range(3) for task in ("top-left", "bottom-right")
        ]  # fmt: skip
        with (run_dir / "metrics.jsonl").open("a") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
    runs = [dataclasses.replace(run, summary=Poisoned(run.summary or {})) for run in scan(tmp_path)]
    assert all(run.usable for run in runs)
    pd.testing.assert_frame_equal(select(trial_table(runs, SPEC)), clean)


def test_a_failure_on_the_test_split_changes_no_choice(tmp_path: Path):
    """A NaN test metric in the selected trial's summary (the record turns UNREADABLE) and a divergence
    on the test split in another trial leave every value, outcome and choice as the clean records give."""
    dirs = write_trials(tmp_path)
    clean = select(trial_table(scan(tmp_path), SPEC))
    chosen = dirs[0.003][0]
    summary = json.loads((chosen / "summary.json").read_text())
    summary["front"][0]["metrics"]["top-left"]["accuracy"] = float("nan")
    (chosen / "summary.json").write_text(json.dumps(summary))
    (dirs[0.001][0] / "status").write_text("FAILED: diverged: non-finite test accuracy of top-left at ray [1.0, 0.0]\n")
    runs = scan(tmp_path)
    assert {run.status.split(":")[0] for run in runs if run.method == "palora"} == {"COMPLETED", "UNREADABLE", "FAILED"}
    poisoned = select(trial_table(runs, SPEC))
    pd.testing.assert_frame_equal(poisoned.drop(columns="not_usable"), clean.drop(columns="not_usable"))


def test_budget_rule_and_provisional_choices(tmp_path: Path):
    write_trials(tmp_path)
    write_run(tmp_path, "mean", 0, [(0.8, 0.8)], curve=CURVES[0.01], epochs=10, settings=("train.lr=0.001",))
    diverged = "FAILED: diverged: non-finite loss at step 7 (epoch 1)"
    write_run(tmp_path, "mean", 0, [(0.8, 0.8)], epochs=10, settings=("train.lr=0.003",), status=diverged)
    selection = select(trial_table(scan(tmp_path), SPEC)).set_index(["method", "settings"])
    assert selection.loc[("palora", '{"train.lr": 0.001}'), "gain"] > PLATEAU_GAIN  # still rising
    assert not selection.loc[("palora", '{"train.lr": 0.001}'), "plateaued"]
    assert selection.loc[("palora", '{"train.lr": 0.01}'), "gain"] == pytest.approx(0.0, abs=1e-12)
    assert selection.loc[("palora", '{"train.lr": 0.01}'), "plateaued"]
    failed = selection.loc[("mean", '{"train.lr": 0.003}')]
    assert failed["not_usable"] == f"seed 0: {diverged}" and not failed["selected"]
    assert selection.loc[("mean", '{"train.lr": 0.01}'), "not_usable"] == "seed 0: NOT RUN"
    assert not selection.loc["mean", "complete"].any() and set(selection.loc["mean", "stage"]) == {1}
    # the lr 1e-2 trial run: stage one has an outcome everywhere (a divergence is one) and stage two follows
    write_run(tmp_path, "mean", 0, [(0.7, 0.7)], curve=CURVES[0.01], epochs=10, settings=("train.lr=0.01",))
    trials = trial_table(scan(tmp_path), SPEC)
    second = trials[(trials["method"] == "mean") & (trials["stage"] == 2)]
    assert [json.loads(t) for t in second["settings"]] == [{"train.lr": 0.0005}, {"train.lr": 0.002}]
    assert selected_settings(select(trials)) == {}  # nothing final before stage two has run


def test_a_selected_trial_still_rising_breaks_the_budget_rule_and_is_named(tmp_path: Path, capsys):
    write_trials(tmp_path)  # palora: lr 3e-3 selected, plateaued
    write_run(tmp_path, "mean", 0, [(0.8, 0.8)], curve=CURVES[0.001], epochs=10, settings=("train.lr=0.001",))
    selection = select(trial_table(scan(tmp_path), SPEC))
    short = budget_violations(selection)
    assert list(short["method"]) == ["mean"] and short["gain"].iloc[0] > PLATEAU_GAIN  # its only run, rising
    shown = display(selection).set_index(["method", "settings"])["plateaued"]
    assert shown[("mean", "train.lr=0.001")] == "no" and shown[("palora", "train.lr=0.003")] == "yes"
    assert shown[("mean", "train.lr=0.01")] == "–"  # not run
    spec = tmp_path / "toy-tune.toml"
    spec.write_text(
        "[grid]\nmethods = ['palora', 'mean']\ndatasets = ['multimnist-mini']\nseeds = [0]\n"
        "variants = [{'train.lr' = 0.001}, {'train.lr' = 0.003}, {'train.lr' = 0.01}]\n[set]\n'train.epochs' = 10\n"
    )
    assert main([str(spec), "--runs", str(tmp_path), "--out", str(tmp_path / "tables")]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    rule = "  budget rule not met (selected, still gaining 0.003 or more over the last 20%)"
    assert line == f"{rule}: mean {short['gain'].iloc[0]:+.4f}"


def staircase_hv(scale: float) -> float:
    """HV at (1, 1) of :data:`POINTS` (accuracies) scaled by ``scale``, as errors: the area of the
    staircase the three points dominate, summed strip by strip (independent of pymoo)."""
    errors = sorted((1 - scale * a, 1 - scale * b) for a, b in POINTS)
    area, ceiling = 0.0, 1.0
    for k, (x, y) in enumerate(errors):
        right = errors[k + 1][0] if k + 1 < len(errors) else 1.0
        ceiling = min(ceiling, y)
        area += (right - x) * (1.0 - ceiling)
    return area


def test_a_final_choice_still_rising_gets_a_budget_probe_at_twice_the_epochs(tmp_path: Path, capsys):
    """PaLoRA's stage two beats lr 3e-3 with a curve still rising at the budget's end: bench tune writes
    the probe's spec (the selected settings at 20 epochs), and once the probe ran, its validation HV
    over its own last 20% beside the budget's, read from validation only."""
    runs = tmp_path / "runs"
    write_trials(runs)
    rising = [1.2 * c for c in CURVES[0.001]]  # last 20%: 0.984, 1.032, 1.08; above lr 3e-3's 1.0
    for window in (3, 4):
        settings = ("train.lr=0.003", f"method.window={window}")
        write_run(runs, "palora", 0, POINTS, curve=rising, epochs=10, settings=settings)
    spec = tmp_path / "toy-tune.toml"
    spec.write_text(
        "[grid]\nmethods = ['palora']\ndatasets = ['multimnist-mini']\nseeds = [0]\n"
        "variants = [{'train.lr' = 0.001}, {'train.lr' = 0.003}, {'train.lr' = 0.01}]\n"
        "[set]\n'train.epochs' = 10\n"
    )
    argv = [str(spec), "--runs", str(runs), "--out", str(tmp_path / "tables")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "budget rule not met" in out and "budget probe of palora at 20 epochs: not run yet" in out
    probe = load_spec(tmp_path / "toy-tune-budget.toml").configs()
    assert [(c.method, c.train.lr, c.hparams.window, c.train.epochs) for c in probe] == [("palora", 0.003, 3, 20)]
    assert probe[0].train.extend_shorter  # continues from its trial where the method allows it
    # the probe: the trial's 10 evaluations, then 10 more levelling off at 1.1
    curve = rising + [1.1] * 10
    d = write_run(runs, "palora", 0, POINTS, curve=curve, epochs=20, settings=("train.lr=0.003", "method.window=3"))
    assert d.name == probe[0].run_id()
    summary = json.loads((d / "summary.json").read_text())
    for entry in summary["front"]:  # a test front far better than anything: it must not show anywhere
        for metrics in entry["metrics"].values():
            metrics["accuracy"] = 0.99
    (d / "summary.json").write_text(json.dumps(summary))
    assert main(argv) == 0
    table = pd.read_csv(tmp_path / "tables" / "budget-probes.csv").iloc[0]
    assert (table["budget_epochs"], table["probe_epochs"]) == (10, 20)
    # closed forms: the probe's last 20% all at scale 1.1, the budget's last 20% at rising[7:]
    assert table["probe_val_hv"] == pytest.approx(staircase_hv(1.1))
    assert table["budget_val_hv"] == pytest.approx(np.mean([staircase_hv(c) for c in rising[7:]]))
    assert table["difference"] == pytest.approx(table["probe_val_hv"] - table["budget_val_hv"])
    assert table["probe_gain"] == pytest.approx(0.0, abs=1e-9) and bool(table["probe_plateaued"])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("  budget probe of palora at 20 epochs: validation HV ") and "over 10 epochs" in line


def test_tune_command_writes_the_table_and_specs_the_sweep_runs_as_selected(tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    write_trials(runs)
    spec = tmp_path / "toy-tune.toml"
    spec.write_text(
        "[grid]\nmethods = ['palora']\ndatasets = ['multimnist-mini']\nseeds = [0]\n"
        "variants = [{'train.lr' = 0.001}, {'train.lr' = 0.003}, {'train.lr' = 0.01}]\n"
        "[set]\n'train.epochs' = 10\n'train.extend_shorter' = true\n[cluster]\nruns_per_gpu = 2\n"
    )
    argv = [str(spec), "--runs", str(runs), "--out", str(tmp_path / "tables"), "--seeds", "0-4"]
    assert main(argv) == 0
    assert "0 method(s) selected" in capsys.readouterr().out and not (tmp_path / "toy-tuned.toml").exists()
    second = load_spec(tmp_path / "toy-tune-2.toml")  # stage two, as the sweep will run it
    assert [(c.train.lr, c.hparams.window, c.train.epochs) for c in second.configs()] == [
        (0.003, 3, 10),
        (0.003, 4, 10),
    ]
    assert second.cluster.runs_per_gpu == 2 and all(c.train.extend_shorter for c in second.configs())
    write_stage_two(runs, scale=1.01)  # windows 3 and 4 tie, a little above lr 3e-3 alone
    assert main(argv) == 0
    assert "1 method(s) selected" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "tables" / "tuning.csv")
    assert table["selected"].sum() == 1 and len(table) == 5 and (tmp_path / "tables" / "tuning.md").is_file()
    tuned = load_spec(tmp_path / "toy-tuned.toml")
    assert tuned.methods == ("palora",) and tuned.seeds == (0, 1, 2, 3, 4)
    configs = tuned.configs()
    assert [(c.train.lr, c.hparams.window) for c in configs] == [(0.003, 3)] * 5  # the first of the tie
    assert all(c.train.extend_shorter for c in configs)  # the tuning spec's [set], passed on
    # the tuned grid's seed 0 is the tuning trial itself: same config, same run id, not trained again
    assert configs[0].run_id() in {d.name for d in runs.iterdir()}


def test_tune_command_rejects_bad_input_in_one_line(tmp_path: Path, capsys):
    assert main([str(tmp_path / "nope-tune.toml"), "--runs", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: tuning spec")
    spec = tmp_path / "grid.toml"
    spec.write_text("[grid]\nmethods = ['ls']\ndatasets = ['multimnist-mini']\n")
    assert main([str(spec), "--runs", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "ends in -tune" in capsys.readouterr().err
    tune = tmp_path / "toy-tune.toml"
    tune.write_text("[grid]\nmethods = ['ls']\ndatasets = ['multimnist-mini']\n")
    assert main([str(tune), "--runs", str(tmp_path), "--out", str(tmp_path), "--seeds", "a-b"]) == 2
    assert capsys.readouterr().err.startswith("error: --seeds 'a-b': give seeds such as 0-4")


def test_per_method_settings_sit_between_set_and_variants(tmp_path: Path):
    spec = tmp_path / "s.toml"
    spec.write_text(
        "[grid]\nmethods = ['ls', 'palora']\ndatasets = ['multimnist-mini']\n"
        "variants = [{}, {'train.epochs' = 3}]\n"
        "[set]\n'train.lr' = 0.002\n'train.epochs' = 1\n"
        "[per_method.palora]\n'train.lr' = 0.005\n'train.epochs' = 2\n"
    )
    got = [(c.method, c.train.lr, c.train.epochs) for c in load_spec(spec).configs()]
    assert got == [("ls", 0.002, 1), ("ls", 0.002, 3), ("palora", 0.005, 2), ("palora", 0.005, 3)]
    spec.write_text(spec.read_text() + "variants = [{'method.window' = 3}, {'method.window' = 4}]\n")
    got = [(c.method, c.train.epochs, getattr(c.hparams, "window", None)) for c in load_spec(spec).configs()]
    assert got == [("ls", 1, None), ("ls", 3, None), ("palora", 2, 3), ("palora", 2, 4)]  # its own variants
    spec.write_text(spec.read_text().replace("variants = [{'method.window' = 3}", "variants = [3"))
    with pytest.raises(ConfigError, match=r"\[per_method.palora\] variants must be a list of tables"):
        load_spec(spec)
    spec.write_text(
        spec.read_text()
        .replace("[per_method.palora]", "[per_method.pamal]")
        .replace("variants = [3", "variants = [{'method.window' = 3}")
    )
    with pytest.raises(ConfigError, match=r"\[per_method\] names pamal, not in \[grid\] methods"):
        load_spec(spec)
    spec.write_text("[grid]\nmethods = ['ls']\ndatasets = ['multimnist-mini']\n[per_method]\nls = 3\n")
    with pytest.raises(ConfigError, match=r"\[per_method.ls\] must be a table"):
        load_spec(spec)


def test_a_derived_spec_no_record_supports_is_removed_not_left_stale(tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    write_trials(runs)
    spec = tmp_path / "toy-tune.toml"
    text = (
        "[grid]\nmethods = ['palora']\ndatasets = ['multimnist-mini']\nseeds = [0]\n"
        "variants = [{'train.lr' = 0.001}, {'train.lr' = 0.003}, {'train.lr' = 0.01}]\n[set]\n'train.epochs' = 10\n"
    )
    spec.write_text(text)
    argv = [str(spec), "--runs", str(runs), "--out", str(tmp_path / "tables")]
    assert main(argv) == 0 and (tmp_path / "toy-tune-2.toml").is_file()
    spec.write_text(text.replace("'train.epochs' = 10", "'train.epochs' = 12"))  # the trials no longer match
    capsys.readouterr()
    assert main(argv) == 0
    assert not (tmp_path / "toy-tune-2.toml").exists()
    assert f"removed, as no record supports it now: {tmp_path / 'toy-tune-2.toml'}" in capsys.readouterr().out
    (tmp_path / "tables" / "budget-probes.md").write_text("| an old probe |\n")  # from records now gone
    assert main(argv) == 0 and not (tmp_path / "tables" / "budget-probes.md").exists()
