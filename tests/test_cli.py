"""The command line: listing, one-line errors with exit 2, and a tiny full run."""

import subprocess
import sys
from pathlib import Path

import pytest

from bench.analysis.records import scan
from bench.core.registry import BACKBONES, DATASETS, METHODS
from bench.train.command import main


def run_main(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_every_registry(capsys):
    code, out, _ = run_main(capsys, "--list")
    assert code == 0
    for registry in (METHODS, DATASETS, BACKBONES):
        for name, description in registry.describe():
            assert f"  {name} " in out and description in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--method", "nope"], f"valid methods: {', '.join(METHODS.names())}"),
        (["--method", "palora", "--dataset", "nope"], f"valid datasets: {', '.join(DATASETS.names())}"),
        (["--method", "palora", "--workers", "-1"], "--workers must be >= 0"),
        (["--method", "palora", "--set", "train.epoch=1"], "valid keys: train.epochs"),
        (["--method", "palora", "--set", "train.epochs=x"], "expected int"),
        (["--method", "palora", "--device", "tpu"], "valid devices: auto, cpu, cuda"),
        (["--method", "palora", "--dataset", "multimnist", "--data-root", "/nonexistent"], "prepare.py"),
        ([], "--method is required"),
    ],
)
def test_user_mistakes_print_one_line_and_exit_2(capsys, argv, expected):
    code, out, err = run_main(capsys, *argv)
    assert code == 2
    assert expected in err and err.count("\n") == 1 and err.startswith("error: ")


def test_argparse_errors_are_one_line_too(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--method", "palora", "--seed", "zero"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid int value" in err


@pytest.mark.slow
def test_no_traceback_from_a_real_process(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--method", "palora", "--set", "method.rank=zero"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "error: method.rank: expected int, got 'zero'"


@pytest.mark.slow
def test_tiny_run_prints_the_front_and_hypervolume_last(capsys, tmp_path: Path, data_root: Path):
    code, out, _ = run_main(
        capsys,
        "--method",
        "palora",
        "--out",
        str(tmp_path),
        "--data-root",
        str(data_root),
        "--device",
        "cpu",
        "--no-progress",
        "--set",
        "train.epochs=1",
        "--set",
        "data.train_limit=128",
        "--set",
        "data.eval_limit=64",
    )
    assert code == 0
    lines = out.strip().splitlines()
    assert sum(line.startswith("  ray=(") for line in lines) == 11
    assert lines[-1].startswith("hypervolume=") and 0.0 <= float(lines[-1].split("=")[1]) <= 1.0


def test_a_completed_run_is_not_trained_again_unless_forced_and_force_keeps_its_record(
    capsys, tmp_path: Path, data_root: Path
):
    tiny = ["--method", "ls", "--out", str(tmp_path), "--data-root", str(data_root), "--device", "cpu"]
    tiny += ["--no-progress", "--set", "train.epochs=1", "--set", "data.train_limit=64", "--set", "data.eval_limit=32"]
    assert run_main(capsys, *tiny)[0] == 0
    [run] = [p for p in tmp_path.iterdir() if p.is_dir()]
    first = (run / "summary.json").read_text()
    stamp = (run / "summary.json").stat().st_mtime_ns

    code, out, _ = run_main(capsys, *tiny)
    assert code == 0 and out.startswith(f"already completed: {run} (nothing trained; --force trains it again")
    assert out.strip().splitlines()[-1].startswith("hypervolume=")
    assert (run / "summary.json").stat().st_mtime_ns == stamp and not (run / "attempts").exists()

    code, out, _ = run_main(capsys, *tiny, "--force")
    assert code == 0 and f"the completed record is kept in {run / 'attempts' / '1'}" in out
    assert (run / "attempts" / "1" / "summary.json").read_text() == first
    assert {p.name for p in (run / "attempts" / "1").iterdir()} >= {"config.json", "metrics.jsonl", "status"}
    assert (run / "status").read_text().strip() == "COMPLETED"
    assert (run / "summary.json").stat().st_mtime_ns != stamp
    assert [r.run_id for r in scan(tmp_path)] == [run.name]  # a kept attempt is not a run of its own

    assert run_main(capsys, *tiny, "--force", "--resume")[2].startswith("error: --force trains the run again")


HEAVY = ("torchjd", "cvxpy", "torchvision")
PROBE = """
import runpy, sys
sys.argv = {argv!r}
try:
    runpy.run_module({module!r}, run_name="__main__")
except SystemExit as done:
    code = done.code
print("LOADED", sorted(m for m in {heavy!r} if m in sys.modules), code, file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("module", "argv", "code"),
    [
        ("bench", ["list"], 0),
        ("bench.run", ["--list"], 0),
        ("bench.run", ["--help"], 0),
        ("bench.train.command", ["--method", "paloraa"], 2),
        ("bench", ["run", "--method", "paloraa"], 2),
        ("bench", ["--help"], 0),
    ],
)
def test_listing_help_and_name_mistakes_import_no_heavy_package(tmp_path: Path, module: str, argv: list, code: int):
    """The registries answer from bench/core/catalog.py: no method, dataset or backbone module is imported."""
    script = PROBE.format(argv=[module, *argv], module=module, heavy=HEAVY)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert proc.stderr.strip().splitlines()[-1] == f"LOADED [] {code}", proc.stderr


def test_bench_list_prints_whole_descriptions(capsys):
    from bench.__main__ import main as bench_main

    assert bench_main(["list"]) == 0
    out = capsys.readouterr().out
    assert "(28x28 inputs; C is the objective's outputs). extra_inputs adds input channels" in out
    assert main(["--list"]) == 0 and capsys.readouterr().out == out
    assert bench_main(["list", "datasets"]) == 0
    listed = capsys.readouterr().out
    assert listed.startswith("datasets:\n") and "methods:" not in listed and "  sarcos " in listed


@pytest.mark.parametrize("argv", [["nope"], ["list", "models"], []])
def test_bench_command_mistakes_are_one_line(capsys, argv: list):
    from bench.__main__ import main as bench_main

    assert bench_main(argv) == 2
    err = capsys.readouterr().err
    if argv:
        assert err.startswith("error: ") and err.count("\n") == 1 and "valid" in err
    else:
        assert err.startswith("usage: python -m bench {run,sweep,status,report,tune,profile,prepare,list}")


def help_of(capsys, main_function, argv: list) -> str:
    with pytest.raises(SystemExit) as done:
        main_function([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_help_is_plain_text_and_marks_required_options(capsys):
    from bench.__main__ import main as bench_main
    from bench.analysis import report
    from bench.data.kit import preparation
    from bench.sweep import command as sweep

    texts = {
        "run": help_of(capsys, main, []),
        "sweep": help_of(capsys, sweep.main, []),
        "status": help_of(capsys, sweep.main, ["status"]),
        "report": help_of(capsys, report.main, []),
        "prepare celeba": help_of(capsys, preparation.main, ["celeba"]),
        "prepare multimnist": help_of(capsys, preparation.main, ["multimnist"]),
    }
    assert bench_main(["--help"]) == 0 and preparation.main(["--help"]) == 0
    texts["bench"], texts["prepare"] = capsys.readouterr().out.split("usage: python -m bench prepare")
    for name, text in texts.items():
        for markup in ("``", ":func:", ":class:", ":mod:", ":meth:"):
            assert markup not in text, f"{name} --help shows {markup}"
    assert "usage: python -m bench.run --method METHOD" in texts["run"] and "required:\n  --method" in texts["run"]
    assert "required:\n  --source DIR" in texts["prepare celeba"]
    assert "(--source DIR | --download)" in texts["prepare multimnist"] and "--mnist-dir" in texts["prepare multimnist"]
    assert "  nyuv2 " in texts["prepare"]


def test_bench_dispatches_to_each_command(capsys, tmp_path: Path):
    from bench.__main__ import COMMANDS
    from bench.__main__ import main as bench_main

    assert set(COMMANDS) == {"run", "sweep", "status", "report", "tune", "profile", "prepare", "list"}
    assert bench_main(["run", "--method", "palora", "--workers", "-1"]) == 2
    assert capsys.readouterr().err.startswith("error: --workers must be >= 0")
    assert bench_main(["status", str(tmp_path / "missing.toml")]) == 2
    assert bench_main(["sweep", str(tmp_path / "missing.toml")]) == 2
    assert bench_main(["report", "--runs", str(tmp_path / "nowhere")]) == 2
    assert bench_main(["tune", str(tmp_path / "missing-tune.toml"), "--runs", ".", "--out", "."]) == 2
    assert bench_main(["prepare", "nope"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 5 and all(line.startswith("error: ") for line in err)
    assert f"valid datasets: {', '.join(DATASETS.names())}" in err[-1]
    with pytest.raises(SystemExit) as done:
        bench_main(["run", "--help"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("usage: python -m bench run --method")


@pytest.mark.parametrize(
    ("text", "seeds"), [("0-4", [0, 1, 2, 3, 4]), ("0,1,2", [0, 1, 2]), ("0-2,5", [0, 1, 2, 5]), ("3 1 3", [3, 1])]
)
def test_seeds_take_ranges_and_lists_in_every_command(text: str, seeds: list[int]):
    from bench.core.cli import parse_seeds

    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "0-x", "1,,-", "4-2"])
def test_bad_seeds_are_one_error(text: str):
    from bench.core.cli import parse_seeds
    from bench.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"give seeds such as 0-4, 0,1,2 or 0-2,5"):
        parse_seeds(text)
