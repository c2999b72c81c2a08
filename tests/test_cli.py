"""The command line: listing, one-line errors with exit 2, and a tiny full run."""

import subprocess
import sys
from pathlib import Path

import pytest

from bench.run import main


def run_main(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_every_registry(capsys):
    code, out, _ = run_main(capsys, "--list")
    assert code == 0
    for name in ("ls", "palora", "multimnist-mini", "multimnist", "multilenet"):
        assert f"  {name} " in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--method", "nope"],
            "valid methods: aligned-mtl, cagrad, cosmos, dualproj, imtl-g, ls, mean, mgda, mgda-ub, nash-mtl, palora",
        ),
        (["--method", "palora", "--dataset", "nope"], "multimnist, multimnist-mini"),
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


def test_no_traceback_from_a_real_process(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--method", "palora", "--set", "method.rank=zero"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "error: method.rank: expected int, got 'zero'"


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
