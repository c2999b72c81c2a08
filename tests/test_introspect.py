"""Introspection: ``bench list METHOD``, ``bench run ... --print-config`` and name suggestions."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from bench.__main__ import main as bench_main
from bench.core.errors import did_you_mean
from bench.core.registry import METHODS
from bench.train.command import main as run_main
from bench.train.config import resolve
from bench.train.introspect import field_docs, fields, print_config_lines


@dataclasses.dataclass(frozen=True)
class _Base:
    size: int = 3
    """How many.

    Second paragraph."""


@dataclasses.dataclass(frozen=True)
class _Settings(_Base):
    kind: Literal["a", "b"] = "b"
    undocumented: float = 0.5
    rays: tuple[float, ...] = (0.2, 0.8)
    """The rays."""


def test_field_docs_and_fields_read_the_source_including_the_bases():
    assert field_docs(_Settings) == {"size": "How many. Second paragraph.", "rays": "The rays."}
    rows = {row["name"]: row for row in fields(_Settings)}
    assert rows["kind"]["allowed"] == ("a", "b") and rows["kind"]["default"] == "b"
    assert rows["size"]["type"] == "int" and rows["undocumented"]["doc"] == ""
    assert rows["rays"]["type"] == "tuple[float, ...]" and rows["rays"]["default"] == (0.2, 0.8)


def test_fields_calls_a_default_factory_and_names_a_field_without_a_default():
    @dataclasses.dataclass(frozen=True)
    class Factory:
        weights: list[float] = dataclasses.field(default_factory=lambda: [0.5, 0.5])

    @dataclasses.dataclass(frozen=True)
    class Required:
        rank: int

    assert fields(Factory)[0]["default"] == [0.5, 0.5]
    with pytest.raises(TypeError, match=r"Required\.rank has no default"):
        fields(Required)


def test_bench_list_method_prints_every_setting_with_type_default_choices_and_doc(capsys):
    assert bench_main(["list", "palora"]) == 0
    out = capsys.readouterr().out
    hparams = METHODS.get("palora").Hparams
    names = [f.name for f in dataclasses.fields(hparams)]
    assert [line.split()[0] for line in out.splitlines() if line.startswith("  method.")] == [
        f"method.{n}" for n in names
    ]
    assert "  method.rank  int = 1\n      Rank r of each task's adapter pair" in out
    assert (
        "  method.sampler  choice = 'annealing'\n      one of: annealing, annealing_dirichlet, dirichlet, fixed" in out
    )


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_can_be_listed(method: str, capsys):
    assert bench_main(["list", method]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{method}: ")
    assert out.count("\n  method.") == len(dataclasses.fields(METHODS.get(method).Hparams))


def test_print_config_names_the_layer_of_every_setting_and_trains_nothing(tmp_path: Path, capsys):
    config = tmp_path / "mine.toml"
    config.write_text("[train]\nlr = 0.01\nbatch_size = 64\n")
    out_dir = tmp_path / "runs"
    argv = ["--method", "palora", "--dataset", "multifashion", "--config", str(config), "--out", str(out_dir)]
    assert run_main([*argv, "--set", "train.batch_size=32", "--print-config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    cfg = resolve("palora", "multifashion", 0, config, ["train.batch_size=32"])
    assert lines[0] == f"run {cfg.run_id()}: method palora, dataset multifashion, seed 0"
    table = {line.split()[0]: line.split(None, 2)[1:] for line in lines[1:]}
    assert table["train.batch_size"] == ["32", "--set"]
    assert table["train.lr"] == ["0.01", f"--config {config}"]
    assert table["train.epochs"] == ["10", "dataset protocol (multifashion)"]
    assert table["method.rank"] == ["1", "preset (bench/presets/multimnist.toml[palora])"]  # multifashion extends it
    assert table["train.weight_decay"] == ["0.0", "default"]
    assert len(table) == len(print_config_lines(cfg, config, ["train.batch_size=32"])) - 1
    assert not out_dir.exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--method", "palra"], "unknown method 'palra' (did you mean 'palora'?); valid methods:"),
        (["run", "--method", "ls", "--dataset", "multimnst"], "(did you mean 'multimnist'?)"),
        (
            ["run", "--method", "ls", "--set", "train.epoch=2"],
            "unknown key 'train.epoch' (did you mean 'train.epochs'?)",
        ),
        (["run", "--method", "ls", "--set", "trian.lr=2"], "unknown key 'trian.lr' (did you mean 'train.lr'?)"),
        (["rnu"], "unknown command 'rnu' (did you mean 'run'?)"),
        (["list", "methds"], "cannot list methds (did you mean 'methods'?)"),
    ],
)
def test_mistyped_names_suggest_the_closest_valid_one(argv: list[str], expected: str, capsys):
    assert bench_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1


def test_no_suggestion_when_nothing_is_close():
    assert did_you_mean("zzzz", ["palora", "pamal"]) == ""
