"""Every user mistake is one ``error:`` line and exit 2, before any run record exists; generated
settings and sweep specs never raise anything but a user error."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.benchmarks import profile
from bench.core.errors import UserError
from bench.core.registry import DATASETS, METHODS
from bench.sweep import command as sweep
from bench.sweep.spec import load_spec
from bench.train.command import main
from bench.train.config import SECTIONS, resolve


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.out + captured.err
    return lines[0]


def run_main(tmp_path: Path, *extra: str, out: Path | None = None) -> int:
    out = out if out is not None else tmp_path / "runs"
    return main(["--method", "palora", "--device", "cpu", "--no-progress", "--out", str(out), *extra])


@pytest.mark.parametrize(
    ("assignment", "names"),
    [
        ("train.lr=-1", "train.lr"),
        ("train.lr=nan", "train.lr"),
        ("train.weight_decay=-0.1", "train.weight_decay"),
        ("data.train_limit=-5", "data.train_limit"),
        ("train.val_samples=-1", "train.val_samples"),
        ("train.val_points_per_edge=1", "train.val_points_per_edge"),
        ("method.rank=1000000000", "method.rank=1000000000"),  # would allocate 200 GB
        ("method.rank=51", "1..50"),  # MultiLeNet's widest update has rank 50
        ("method.window=1000000000", "method.window"),  # 10^9 forwards per step
        ("method.eps=2", "method.eps"),  # negative ray weights
        ("method.mul=-5", "method.mul"),
        ("method.alpha=0", "method.alpha must be > 0"),  # adapters switched off
        ("method.alpha=nan", "expected a finite number"),
    ],
)
def test_bad_values_are_one_line_and_leave_no_record(assignment, names, tmp_path: Path, capsys):
    assert run_main(tmp_path, "--set", assignment) == 2
    assert names in one_error_line(capsys)
    assert not list((tmp_path / "runs").glob("*"))


def test_a_dirichlet_concentration_of_zero_is_one_line(tmp_path: Path, capsys):
    """p = 0 drew NaN rays, which crashed the ray histogram with a traceback."""
    assert run_main(tmp_path, "--set", "method.sampler=dirichlet", "--set", "method.p=0") == 2
    assert "method.p" in one_error_line(capsys)


def test_ragged_ls_rays_are_one_line(tmp_path: Path, capsys):
    argv = ["--method", "ls", "--device", "cpu", "--out", str(tmp_path), "--set", "method.rays=0.3,0.7;0.5"]
    assert main(argv) == 2
    assert "each ray needs 2 weights" in one_error_line(capsys)


def test_a_seed_beyond_64_bits_is_one_line(tmp_path: Path, capsys):
    assert run_main(tmp_path, "--seed", str(2**70)) == 2
    assert "--seed" in one_error_line(capsys)


def test_a_config_that_is_a_folder_is_one_line(tmp_path: Path, capsys):
    assert run_main(tmp_path, "--config", str(tmp_path)) == 2
    assert "is not a file" in one_error_line(capsys)


@pytest.mark.parametrize("where", ["file", "under-file", "proc"])
def test_an_unwritable_out_is_one_line(where, tmp_path: Path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    out = {"file": afile, "under-file": afile / "runs", "proc": Path("/proc/pfl-bench-runs")}[where]
    assert run_main(tmp_path, out=out) == 2
    assert "--out" in one_error_line(capsys)


def test_a_data_root_that_is_a_file_is_one_line(tmp_path: Path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert run_main(tmp_path, "--data-root", str(afile)) == 2
    assert "--data-root" in one_error_line(capsys)


def test_profile_refuses_a_negative_synthetic_size(capsys):
    assert profile.main(["--method", "palora", "--device", "cpu", "--synthetic", "-5"]) == 2
    assert "--synthetic" in one_error_line(capsys)


@pytest.mark.parametrize("table", ["set", "run", "cluster"])
def test_a_scalar_where_a_sweep_table_belongs_is_one_line(table, tmp_path: Path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(f'{table} = 3\n[grid]\nmethods = ["palora"]\ndatasets = ["multimnist-mini"]\n')
    assert sweep.main([str(spec), "--dry-run"]) == 2
    assert f"[{table}] must be a table" in one_error_line(capsys)


KEYS = [
    "train.epochs",
    "train.lr",
    "train.batch_size",
    "train.weight_decay",
    "train.val_samples",
    "train.val_points_per_edge",
    "train.ray_batching",
    "train.amp",
    "data.train_limit",
    "data.eval_limit",
    "model.backbone",
    "method.rank",
    "method.window",
    "method.rays",
    "method.stacking",
    "method.sampler",
    "method.eps",
    "method.mul",
    "method.alpha",
    "nonsense.key",
    "train.nonsense",
]
VALUES = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=12),
    st.sampled_from(["0.3,0.7;0.5", "1,0;0,1", "true", "vmap", "segnet", "", ";", "1e309"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(sorted(METHODS.names())),
    assignments=st.lists(st.tuples(st.sampled_from(KEYS), VALUES).map(lambda kv: f"{kv[0]}={kv[1]}"), max_size=4),
    seed=st.integers(-(2**70), 2**70),
)
def test_generated_settings_resolve_or_raise_a_user_error(method, assignments, seed):
    """What ``bench run`` does before a run directory exists: resolve the settings and build the method."""
    try:
        cfg = resolve(method, "multimnist-mini", seed, assignments=assignments)
        METHODS.get(cfg.method)(cfg.hparams, DATASETS.get(cfg.dataset))
    except UserError:
        pass


TABLE_VALUES = st.one_of(
    st.integers(-5, 5),
    st.text(max_size=6),
    st.lists(st.integers(-2, 2), max_size=3),
    st.dictionaries(st.sampled_from(["train.epochs", "method.rank", "x"]), st.integers(-2, 3), max_size=2),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    grid=st.dictionaries(st.sampled_from(["methods", "datasets", "seeds", "variants", "other"]), TABLE_VALUES),
    tables=st.dictionaries(st.sampled_from([*SECTIONS, "set", "cluster", "run", "grid2"]), TABLE_VALUES, max_size=3),
)
def test_generated_sweep_specs_load_or_raise_a_user_error(grid, tables, tmp_path: Path):
    import json

    def toml_value(value) -> str:
        if isinstance(value, dict):
            return "{" + ", ".join(f'"{k}" = {json.dumps(v)}' for k, v in value.items()) + "}"
        return json.dumps(value)

    lines = [f"{key} = {toml_value(value)}" for key, value in tables.items()]
    lines += ["[grid]", *[f"{key} = {toml_value(value)}" for key, value in grid.items()]]
    spec = tmp_path / "gen.toml"
    spec.write_text("\n".join(lines) + "\n")
    try:
        load_spec(spec).configs()
    except UserError:
        pass


def test_a_backbone_that_does_not_fit_the_data_is_one_line_before_any_record(tmp_path: Path, capsys):
    assert run_main(tmp_path, "--set", "model.backbone=segnet", "--set", "data.eval_limit=8") == 2
    line = one_error_line(capsys)
    assert line.startswith("error: model.backbone=segnet cannot run on multimnist-mini (")
    assert not list((tmp_path / "runs").glob("*"))


CLI_KEYS = [k for k in KEYS if not k.startswith(("data.", "train.epochs", "train.batch_size", "train.val_samples"))]
CLI_KEYS += ["train.eval_every", "method.p"]  # data sizes stay the smoke run's, so a valid run is one short step
CLI_VALUES = st.one_of(
    st.integers(-3, 12).map(str),
    st.sampled_from(["0", "1e-3", "-1e-3", "nan", "inf", "1e309", "true", "vmap", "bf16", "mlp", "segnet", "0.3,0.7"]),
    st.sampled_from(["0.3,0.7;0.5", "1,0;0,1", "", ";", "annealing", "dirichlet", "random", "x"]),
)
SMOKE = ["train.epochs=1", "train.max_steps=1", "train.batch_size=32", "data.train_limit=64", "data.eval_limit=32"]


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["palora", "pamal", "ls", "phn-epo", "cosmos", "mgda", "nash-mtl"]),
    assignments=st.lists(st.tuples(st.sampled_from(CLI_KEYS), CLI_VALUES), max_size=3),
)
def test_the_cli_exits_0_or_2_with_one_error_line_never_a_traceback(method, assignments, tmp_path_factory, capsys):
    """Generated ``--set`` values through ``bench run`` itself (a one-step run when they are valid)."""
    out = tmp_path_factory.mktemp("cli")
    sets = [f"{key}={value}" for key, value in assignments] + SMOKE
    argv = ["--method", method, "--device", "cpu", "--no-progress", "--out", str(out)]
    code = main([*argv, *[item for s in sets for item in ("--set", s)]])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    if code == 2:
        assert len(captured.err.strip().splitlines()) == 1 and captured.err.startswith("error: "), captured.err
        assert not list(out.glob("*")), "a user mistake left a run record"
    else:
        assert code in (0, 1), (code, captured.err)  # 1: a run that diverged (e.g. lr=inf), recorded FAILED
        if code == 1:
            assert "FAILED: diverged" in captured.err


def test_running_out_of_memory_while_building_is_one_line_before_any_record(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
):
    """Any size setting that no check catches: the allocator's failure becomes one line, exit 2."""
    from bench.train import runner
    from tests.test_memory import HOST_ALLOC

    def build_trial(*args, **kwargs):
        raise RuntimeError(HOST_ALLOC)

    monkeypatch.setattr(runner, "build_trial", build_trial)
    assert run_main(tmp_path) == 2
    line = one_error_line(capsys)
    assert "out of memory in host memory (asked for 186.3 GiB) building palora on multimnist-mini" in line
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
