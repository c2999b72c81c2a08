"""The report: seed aggregation with failed and missing runs, footprint ratios, convergence, tables
(snapshot), figures and the CLI, all from tiny run records in the runner's exact format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.analysis.aggregate import mean_pm_std, run_table, seed_summary
from bench.analysis.convergence import hypervolume_curve, time_to_fraction
from bench.analysis.footprint import footprint_table
from bench.analysis.records import scan, variant_labels
from bench.analysis.report import build_report, main
from bench.analysis.sections_tables import hypervolume_display
from bench.analysis.tables import latex, markdown
from bench.core.errors import ConfigError
from bench.train.config import identity_of
from tests.fake_runs import write_run

# errors (0.1, 0.5), (0.2, 0.2), (0.5, 0.1) vs (1, 1): 0.1*0.5 + 0.3*0.8 + 0.5*0.9 = 0.74
PALORA_FRONT = [(0.9, 0.5), (0.8, 0.8), (0.5, 0.9)]
# errors (0.1, 0.4), (0.4, 0.1): 0.3*0.6 + 0.6*0.9 = 0.72
PAMAL_FRONT = [(0.9, 0.6), (0.6, 0.9)]
# single points: HV = product of the accuracies: 0.72, 0.64, 0.56 -> mean 0.64, sample std 0.08
MEAN_POINTS = {0: (0.9, 0.8), 1: (0.8, 0.8), 2: (0.7, 0.8)}


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for seed, point in MEAN_POINTS.items():
        write_run(root, "mean", seed, [point])
    palora = {"total": 110, "trainable": 110, "inference": 100, "single_model": 100}
    pamal = {"total": 200, "trainable": 200, "inference": 100, "single_model": 100}
    for seed in (0, 2):
        write_run(root, "palora", seed, PALORA_FRONT, parameters=palora, curve=[0.5, 0.9, 1.0])
    write_run(root, "palora", 1, PALORA_FRONT, status="FAILED: RuntimeError: boom")
    for seed in (0, 1):  # seed 2 missing
        write_run(root, "pamal", seed, PAMAL_FRONT, parameters=pamal)
    return root


def test_runs_table_says_which_commit_threads_and_device_made_each_run(tmp_path: Path):
    import json

    resumed = write_run(tmp_path, "palora", 0, PALORA_FRONT)
    summary = json.loads((resumed / "summary.json").read_text())
    summary["first_attempt"] = {"git_sha": "abc1234", "torch_threads": 2}
    summary["resumed"] = [{"git_sha": "def5678", "torch_threads": 4}, {"git_sha": "def5678", "torch_threads": 4}]
    (resumed / "summary.json").write_text(json.dumps(summary))
    write_run(tmp_path, "pamal", 0, PAMAL_FRONT)  # a record without the keys
    table = run_table(scan(tmp_path)).set_index("method")
    assert table.loc["palora", ["commit", "threads", "device", "resumed"]].tolist() == ["abc1234", 2, "cpu", 2]
    assert pd.isna(table.loc["pamal", "commit"]) and table.loc["pamal", "resumed"] == 0


def test_hypervolume_is_recomputed_and_every_run_is_listed(runs_dir: Path):
    table = run_table(scan(runs_dir)).set_index(["method", "seed"])
    assert len(table) == 8
    assert table.loc[("palora", 0), "hypervolume"] == pytest.approx(0.74, abs=1e-12)  # the record says -1
    assert table.loc[("pamal", 1), "hypervolume"] == pytest.approx(0.72, abs=1e-12)
    assert table.loc[("mean", 2), "hypervolume"] == pytest.approx(0.56, abs=1e-12)
    assert not table.loc[("palora", 1), "usable"]
    assert table.loc[("palora", 1), "status"] == "FAILED: RuntimeError: boom"


def test_seed_aggregation_names_failed_and_missing_seeds(runs_dir: Path):
    summary = seed_summary(run_table(scan(runs_dir))).set_index("label")
    assert summary.loc["mean", "hv_mean"] == pytest.approx(0.64, abs=1e-12)
    assert summary.loc["mean", "hv_std"] == pytest.approx(0.08, abs=1e-12)
    assert summary.loc["mean", "n_seeds"] == 3
    assert summary.loc["palora", "n_seeds"] == 2 and summary.loc["palora", "seeds"] == "0 2"
    assert summary.loc["palora", "failed"] == "seed 1: FAILED: RuntimeError: boom"
    assert summary.loc["pamal", "missing_seeds"] == "2" and summary.loc["pamal", "failed"] == ""
    assert summary.loc["mean", "missing_seeds"] == ""
    explicit = seed_summary(run_table(scan(runs_dir)), seeds=[0, 1, 2, 3]).set_index("label")
    assert explicit.loc["mean", "missing_seeds"] == "3" and explicit.loc["pamal", "missing_seeds"] == "2 3"


def test_a_seed_recorded_twice_is_counted_once_everywhere_and_named(runs_dir: Path, tmp_path: Path):
    import shutil

    first = next(d for d in sorted(runs_dir.iterdir()) if d.name.startswith("mean_") and "_s0_" in d.name)
    shutil.copytree(first, runs_dir / f"{first.name}-copy")
    out = tmp_path / "report"
    build_report(runs_dir, out, None, None)
    report = (out / "REPORT.md").read_text()
    assert f"- multimnist-mini, mean, seed 0: `{first.name}-copy` left out, `{first.name}` counted" in report
    statistics = pd.read_csv(out / "tables" / "statistics.csv").set_index("label")
    assert statistics.loc["mean", "n"] == 3 and statistics.loc["mean", "mean"] == pytest.approx(0.64, abs=1e-12)
    fronts = pd.read_csv(out / "fronts.csv")
    assert set(fronts.loc[fronts["label"] == "mean", "run_id"]) == {
        d.name for d in runs_dir.iterdir() if d.name.startswith("mean_") and not d.name.endswith("-copy")
    }


def test_report_of_a_spec_takes_its_runs_and_names_the_missing_ones(runs_dir: Path, tmp_path: Path, capsys):
    spec = tmp_path / "pick.toml"
    spec.write_text("[grid]\nmethods = ['mean', 'pamal']\ndatasets = ['multimnist-mini']\nseeds = [0, 1, 2]\n"
                    "[set]\n'train.epochs' = 2\n")  # fmt: skip
    out = tmp_path / "report"
    build_report(runs_dir, out, None, None, spec=spec)
    table = pd.read_csv(out / "tables" / "runs.csv")
    assert sorted(set(table["method"])) == ["mean", "pamal"] and len(table) == 5
    report = (out / "REPORT.md").read_text()
    assert "- no run record for multimnist-mini, pamal, seed 2: `pamal_multimnist-mini_s2_" in report
    assert f"--spec {spec}" in report.splitlines()[2]
    with pytest.raises(ConfigError, match="--protocol tuned also takes every tuning trial"):
        build_report(runs_dir, tmp_path / "other", None, None, protocol="tuned")
    assert main(["--runs", str(runs_dir), "--spec", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith("error: sweep spec")


def test_mean_pm_std_formats():
    assert mean_pm_std(0.64, 0.08, 3) == "0.6400 ± 0.0800 (3)"
    assert mean_pm_std(0.5, float("nan"), 1) == "0.5000 (1)"
    assert mean_pm_std(float("nan"), float("nan"), 0) == "–"


def test_hypervolume_table_snapshot(runs_dir: Path):
    groups = {("multimnist-mini", "palora"): "a", ("multimnist-mini", "pamal"): "ab"}
    _, lettered = hypervolume_display(seed_summary(run_table(scan(runs_dir))), groups)
    assert lettered["multimnist-mini"].tolist() == [
        "0.7400 ± 0.0000 (2) a",
        "0.7200 ± 0.0000 (2) ab",
        "0.6400 ± 0.0800 (3)",
    ]
    _, display = hypervolume_display(seed_summary(run_table(scan(runs_dir))))
    assert markdown(display) == (
        "| method | kind | multimnist-mini |\n"
        "|---|---|---|\n"
        "| palora | front | 0.7400 ± 0.0000 (2) |\n"
        "| pamal | front | 0.7200 ± 0.0000 (2) |\n"
        "| mean | point | 0.6400 ± 0.0800 (3) |\n"
    )
    tex = latex(display, "Test hypervolume", "tab:hv")
    assert r"mean & point & 0.6400 $\pm$ 0.0800 (3) \\" in tex
    assert r"method & kind & multimnist-mini \\" in tex


def test_missing_cells_are_dashes_in_markdown_and_latex():
    frame = pd.DataFrame({"a": [1.5, np.nan], "b": ["x", None]})
    assert markdown(frame).splitlines()[2:] == ["| 1.5 | x |", "| – | – |"]
    assert r"1.5 & x \\" in latex(frame, "c", "t") and r"-- & -- \\" in latex(frame, "c", "t")


def test_latex_escapes_specials():
    display = pd.DataFrame({"method": ["a_b & c%"], "x": ["1 × 2 – 3"]})
    assert r"a\_b \& c\% & 1 $\times$ 2 -- 3 \\" in latex(display, "c", "l")


def test_footprint_overheads(runs_dir: Path):
    table = footprint_table(scan(runs_dir)).set_index("label")
    assert table.loc["palora", "x_single"] == pytest.approx(1.1)
    assert table.loc["palora", "overhead"] == pytest.approx(0.1)
    assert table.loc["pamal", "overhead"] == pytest.approx(1.0)
    assert table.loc["palora", "pamal_ratio"] == pytest.approx(10.0)  # PaMaL adds 10x what PaLoRA adds
    assert table.loc["pamal", "pamal_ratio"] == pytest.approx(1.0)
    assert np.isnan(table.loc["mean", "pamal_ratio"])  # adds nothing: no ratio
    assert table.loc["mean", "state_bytes"] == 1608


def test_convergence_curve_and_time_to_95_percent(runs_dir: Path):
    run = next(r for r in scan(runs_dir) if r.method == "palora" and r.usable)
    curve = hypervolume_curve(run)
    assert list(curve["step"]) == [10, 20, 30] and list(curve["train_time"]) == [2.0, 4.0, 6.0]
    assert curve["hypervolume"].iloc[-1] == pytest.approx(0.74, abs=1e-12)
    # accuracies scaled by 0.5: errors (0.55, 0.75), (0.6, 0.6), (0.75, 0.55) -> 0.05*0.25 + 0.15*0.4 + 0.25*0.45
    assert curve["hypervolume"].iloc[0] == pytest.approx(0.05 * 0.25 + 0.15 * 0.4 + 0.25 * 0.45, abs=1e-12)
    synthetic = pd.DataFrame(
        {
            "step": [1, 2, 3, 4],
            "train_time": [1.0, 2.0, 3.0, 4.0],
            "wall_time": [2.0, 4.0, 6.0, 8.0],
            "hypervolume": [0.2, 0.5, 0.96, 1.0],
        }
    )
    assert time_to_fraction(synthetic) == {"step": 3.0, "train_time": 3.0, "wall_time": 6.0}
    assert np.isnan(time_to_fraction(synthetic.assign(hypervolume=0.0))["step"])


def test_variants_of_one_method_get_their_settings_in_the_label(tmp_path: Path):
    write_run(tmp_path, "mean", 0, [(0.9, 0.9)], epochs=2)
    write_run(tmp_path, "mean", 0, [(0.8, 0.8)], epochs=3)
    labels = sorted(variant_labels(scan(tmp_path)).values())
    assert labels == ["mean (train.epochs=2)", "mean (train.epochs=3)"]
    # a key at the value that records made before it existed ran at is left out of the identity; the
    # label still names that value
    write_run(tmp_path / "pamal", "pamal", 0, PAMAL_FRONT, settings=("method.regulariser=official",))
    write_run(tmp_path / "pamal", "pamal", 0, PAMAL_FRONT, settings=("method.regulariser=paper",))
    runs = scan(tmp_path / "pamal")
    (paper,) = [r for r in runs if r.config["method_hparams"]["regulariser"] == "paper"]
    assert "regulariser" not in identity_of(paper.config)["method_hparams"]
    assert sorted(variant_labels(runs).values()) == ["pamal (regulariser=official)", "pamal (regulariser=paper)"]


def test_unreadable_and_unfinished_records_are_reported_not_dropped(tmp_path: Path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    write_run(tmp_path, "mean", 0, [(0.9, 0.9)], status="RUNNING")
    statuses = sorted(r.status.split(":")[0] for r in scan(tmp_path))
    assert statuses == ["RUNNING", "UNREADABLE"]


@pytest.mark.slow
def test_report_writes_tables_figures_and_names_problems(runs_dir: Path, tmp_path: Path):
    write_run(
        runs_dir,
        "palora",
        0,
        [(0.9, 0.5, 0.7), (0.6, 0.8, 0.8), (0.5, 0.6, 0.9)],
        dataset="multimnist3",
        tasks=("top-left", "top-right", "bottom"),
        curve=[0.8, 1.0],
    )
    out = tmp_path / "results"
    stats = build_report(runs_dir, out, None, None)
    assert stats["runs"] == 9 and stats["usable"] == 8
    for name in ("hypervolume", "memory", "time"):
        for ext in ("csv", "md", "tex"):
            assert (out / "tables" / f"{name}.{ext}").stat().st_size > 0
    two_tasks = ("attainment", "preference")  # drawn for two objectives only
    for dataset, drawn in (("multimnist-mini", two_tasks), ("multimnist3", ())):
        for figure in (*drawn, "convergence", "memory", "hv_vs_overhead"):
            for ext in ("png", "pdf"):
                assert (out / "figures" / dataset / f"{figure}.{ext}").stat().st_size > 1000, (dataset, figure)
    assert not (out / "figures" / "multimnist3" / "attainment.png").exists()
    report = (out / "REPORT.md").read_text()
    # every figure shown with its caption, naming its dataset
    assert "![attainment](figures/multimnist-mini/attainment.png)" in report
    assert "*multimnist-mini, custom protocol, seeds 0, 1, 2: empirical attainment" in report  # 2 epochs: custom
    assert "*multimnist3: validation hypervolume (reference point (1.0, 1.0, 1.0))" in report
    assert "a proxy of the tables' test hypervolume, evaluated on 3 of the 11 test rays, 1000 validation" in report
    assert "evaluated on 6 of the 66 test rays" in report  # multimnist3: vertices and edge midpoints
    captions = [line for line in report.splitlines() if line.startswith("*") and line.endswith("*")]
    assert len(captions) >= 5 and all(c.endswith(".*") and not c.endswith("..*") for c in captions), captions
    # statistics, then findings last
    assert "## Statistics over seeds" in report and report.rstrip().splitlines()[-1].startswith("- ")
    assert report.index("## Findings") > report.index("## Files")
    assert "- multimnist-mini: " in report.split("## Findings")[1]
    assert (out / "fronts.csv").is_file() and (out / "runs.jsonl").is_file()
    assert "seed 1): FAILED: RuntimeError: boom" in report
    assert "multimnist-mini, pamal: no run record for seed(s) 2" in report
    assert "| palora | front | 0.7400 ± 0.0000 (2) a |" in report
    assert "## Front metrics" in report and "the non-dominated union of the test fronts" in report
    assert (out / "tables" / "front-metrics.csv").is_file()
    runs = pd.read_csv(out / "tables" / "runs.csv")
    assert len(runs) == 9 and runs["usable"].sum() == 8


def utkface_front(entries: list[tuple[float, float, float, float, float]]) -> list[dict]:
    """A UTKFace front from (age huber, gender accuracy, gender CE, race accuracy, race CE) per ray."""
    return [
        {
            "ray": [1.0 - k, 0.0, float(k)],
            "metrics": {
                "age": {"huber": huber, "mae": 0.5, "mse": 0.5, "mae_original": 5.0},
                "gender": {"accuracy": g_acc, "loss": g_ce},
                "race": {"accuracy": r_acc, "loss": r_ce},
            },
        }
        for k, (huber, g_acc, g_ce, r_acc, r_ce) in enumerate(entries)
    ]


# official (huber, gender CE, race CE) vs (1, 1, 1); the second point's race CE 1.7 is outside:
# seed 0: 0.7 * 0.8 * 0.5 = 0.28, seed 1: 0.8 * 0.9 * 0.6 = 0.432 -> 0.356 ± 0.1075
# errors (huber, 1 - accuracies): seed 0: 0.7 * 0.9 * 0.8 = 0.504, seed 1: 0.8 * 0.95 * 0.85 = 0.646 -> 0.575
UTKFACE_FRONTS = {
    0: [(0.3, 0.9, 0.2, 0.8, 0.5), (0.6, 0.7, 0.4, 0.6, 1.7)],
    1: [(0.2, 0.95, 0.1, 0.85, 0.4), (0.6, 0.7, 0.4, 0.6, 1.7)],
}


@pytest.mark.slow
def test_report_shows_the_default_and_each_alternative_hypervolume(runs_dir: Path, tmp_path: Path):
    for seed, entries in UTKFACE_FRONTS.items():
        write_run(runs_dir, "palora", seed, [], dataset="utkface", front=utkface_front(entries))
    utk = [run for run in scan(runs_dir) if run.dataset == "utkface"]
    official = run_table(utk).set_index("seed")["hypervolume"]
    errors = run_table(utk, "errors").set_index("seed")["hypervolume"]
    assert official.to_dict() == pytest.approx({0: 0.28, 1: 0.432}, abs=1e-12)
    assert errors.to_dict() == pytest.approx({0: 0.504, 1: 0.646}, abs=1e-12)

    out = tmp_path / "results"
    build_report(runs_dir, out, None, None)
    main_table = pd.read_csv(out / "tables" / "hypervolume.csv").set_index(["dataset", "label"])
    assert main_table.loc[("utkface", "palora"), "hv_mean"] == pytest.approx(0.356, abs=1e-12)
    assert main_table.loc[("multimnist-mini", "palora"), "hv_mean"] == pytest.approx(0.74, abs=1e-12)
    alternative = pd.read_csv(out / "tables" / "hypervolume-utkface-errors.csv").set_index("label")
    assert alternative.loc["palora", "hv_mean"] == pytest.approx(0.575, abs=1e-12)
    assert alternative.loc["palora", "n_seeds"] == 2
    assert not list((out / "tables").glob("hypervolume-multimnist-mini-*"))  # one definition: no extra table
    report = (out / "REPORT.md").read_text()
    assert "multimnist-mini (1.0, 1.0), utkface `official` (age huber, gender loss, race loss), reference" in report
    assert "#### utkface: `errors`" in report
    assert "On (age huber, gender accuracy, race accuracy), reference (1.0, 1.0, 1.0)." in report
    assert "| palora | front | 0.7400 ± 0.0000 (2) a | 0.3560 ± 0.1075 (2) a |" in report  # multimnist-mini, utkface
    assert "| palora | front | 0.5750 ± 0.1004 (2) |" in report
    assert "- utkface `official` (the default): The official definition: pymoo HV on (huber/age" in report


def test_report_of_single_definition_datasets_has_no_alternative_section(runs_dir: Path, tmp_path: Path):
    out = tmp_path / "results"
    build_report(runs_dir, out, None, None)
    report = (out / "REPORT.md").read_text()
    assert "against each dataset's fixed reference point: multimnist-mini (1.0, 1.0)." in report
    assert "Other hypervolume definitions" not in report
    assert sorted(p.name for p in (out / "tables").glob("hypervolume*")) == [
        "hypervolume.csv",
        "hypervolume.md",
        "hypervolume.tex",
    ]


def test_cli_reports_and_rejects_bad_input(runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["--runs", str(runs_dir), "--out", str(tmp_path / "r"), "--paper", str(tmp_path / "none")]) == 0
    assert "7/8 usable runs" in capsys.readouterr().out
    assert main(["--runs", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --runs") and "is not a folder" in err[0]
    (tmp_path / "empty").mkdir()
    assert main(["--runs", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert "no run records under" in capsys.readouterr().err
    (tmp_path / "garbage" / "r1").mkdir(parents=True)
    (tmp_path / "garbage" / "r1" / "config.json").write_text("garbage\n")
    assert main(["--runs", str(tmp_path / "garbage"), "--out", str(tmp_path / "r")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: none of the 1 run record(s)") and "r1: UNREADABLE: config.json" in line
    assert main(["--runs", str(runs_dir), "--seeds", "0,x"]) == 2
    assert "--seeds" in capsys.readouterr().err


GARBAGE = [
    ("config.json", "[1, 2]"),
    ("config.json", '{"config": 3}'),
    ("config.json", "\x00\x01garbage"),
    ("summary.json", '{"front": 3}'),
    ("summary.json", '[{"ray": [1, 0]}]'),
    ("summary.json", '{"front": [{"ray": [1, 0], "metrics": {"a": {"accuracy": "high"}}}]}'),
    ("summary.json", '{"front": [{"ray": [1, 0], "metrics": {"a": {"accuracy": NaN}}}]}'),
]
"""A record file each, garbled in a way the reader must name instead of raising."""


def mean_seed_0(runs_dir: Path) -> Path:
    return next(p for p in runs_dir.iterdir() if p.name.startswith("mean_") and "_s0_" in p.name)


@pytest.mark.parametrize(("name", "text"), GARBAGE)
def test_a_garbage_record_is_read_as_unreadable_naming_its_file(name, text, runs_dir: Path):
    broken = mean_seed_0(runs_dir)
    (broken / name).write_text(text)
    (run,) = [run for run in scan(runs_dir) if run.directory == broken]
    assert run.status.startswith(f"UNREADABLE: {name} (") and not run.usable
    assert sum(run.usable for run in scan(runs_dir)) == 6  # the other seven less palora's FAILED seed 1


@pytest.mark.slow
def test_garbage_records_are_reported_unreadable_not_a_traceback(runs_dir: Path, tmp_path: Path, capsys):
    """One report over every kind of garbage at once: it completes and names each broken run."""
    import shutil

    for k, (name, text) in enumerate(GARBAGE):
        copy = runs_dir / f"broken-{k}"
        shutil.copytree(mean_seed_0(runs_dir), copy)
        (copy / name).write_text(text)
    assert main(["--runs", str(runs_dir), "--out", str(tmp_path / "out")]) == 0
    assert f"report: 7/{8 + len(GARBAGE)} usable runs" in capsys.readouterr().out
    report = (tmp_path / "out" / "REPORT.md").read_text()
    for k, (name, _) in enumerate(GARBAGE):
        (line,) = [line for line in report.splitlines() if f"broken-{k}" in line]
        assert f"UNREADABLE: {name}" in line, line


def test_report_out_that_is_a_file_is_one_line(runs_dir: Path, tmp_path: Path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["--runs", str(runs_dir), "--out", str(afile)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --out {afile} is a file; give the folder to write the report in"
    ]


def test_without_out_the_report_goes_to_a_fresh_folder_and_results_is_untouched(
    runs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.chdir(tmp_path)
    committed = tmp_path / "results" / "REPORT.md"
    committed.parent.mkdir()
    committed.write_text("committed report")
    paper = ["--paper", str(tmp_path / "none")]
    assert main(["--runs", str(runs_dir), *paper]) == 0
    assert main(["--runs", str(runs_dir), *paper]) == 0
    reports = sorted((tmp_path / "reports").iterdir())
    assert len(reports) == 2 and all((r / "REPORT.md").is_file() for r in reports)
    assert committed.read_text() == "committed report"
    assert f"-> reports/{reports[-1].name}/REPORT.md" in capsys.readouterr().out


@pytest.mark.slow
def test_report_regenerates_from_its_archive_alone(runs_dir: Path, tmp_path: Path):
    """A report's tables and its REPORT.md (but for the line that says how and when it was made) come
    back the same from its archive (fronts.csv, runs.jsonl, the curves) with the run records gone."""
    first, second = tmp_path / "first", tmp_path / "second"
    build_report(runs_dir, first, None, None)
    moved = tmp_path / "gone"
    runs_dir.rename(moved)
    stats = build_report(None, second, None, None, archive=first)
    assert stats["runs"] == 8 and stats["usable"] == 7
    tables = sorted(p.relative_to(first) for p in (first / "tables").iterdir())
    assert tables == sorted(p.relative_to(second) for p in (second / "tables").iterdir()) and len(tables) > 10
    for name in tables:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    for name in ("fronts.csv", "runs.jsonl"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    figures = sorted(p.relative_to(first) for p in (first / "figures").rglob("*.pdf"))
    assert figures == sorted(p.relative_to(second) for p in (second / "figures").rglob("*.pdf"))
    for name in figures:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name

    def body(folder: Path) -> list[str]:
        return [line for line in (folder / "REPORT.md").read_text().splitlines() if not line.startswith("Generated")]

    assert body(first) == body(second)
    (first / "runs.jsonl").unlink()
    with pytest.raises(ConfigError, match="runs.jsonl not found"):
        build_report(None, tmp_path / "third", None, None, archive=first)


def test_an_archive_keeps_each_runs_recorded_protocol_and_refuses_a_broken_line(runs_dir: Path, tmp_path: Path):
    import json

    first = tmp_path / "first"
    build_report(runs_dir, first, None, None)
    lines = [json.loads(line) for line in (first / "runs.jsonl").read_text().splitlines()]
    assert {line["protocol"] for line in lines} == {"custom"}  # 2 epochs: not the preset
    for line in lines:
        if line["run_id"].startswith("pamal_"):
            line["protocol"] = "official"
    (first / "runs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    build_report(None, tmp_path / "official", None, None, archive=first, protocol="official")
    table = pd.read_csv(tmp_path / "official" / "tables" / "runs.csv")
    assert set(table["method"]) == {"pamal"} and set(table["protocol"]) == {"official"}
    (first / "runs.jsonl").write_text((first / "runs.jsonl").read_text() + '{"run_id": "x"}\n')
    with pytest.raises(ConfigError, match=r"line \d+ is not a run's record"):
        build_report(None, tmp_path / "broken", None, None, archive=first)
