"""A method kept outside the checkout ($PFLBENCH_METHODS), and the source hashes every record keeps."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.train.config import resolve
from bench.train.record import module_sources
from bench.train.runner import run_modules

PLUGIN = '''"""Linear scalarisation with the scalarised loss halved: a plug-in kept outside the checkout."""

from methods.ls import LinearScalarization
from bench.core.registry import METHODS


@METHODS.register("half-ls")
class HalfLS(LinearScalarization):
    """LS with every loss halved (a plug-in)."""

    def backward(self, losses, rays, cnet):
        return super().backward(losses * 0.5, rays, cnet)
'''


def bench(args: list[str], folders: list[Path], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PFLBENCH_METHODS": os.pathsep.join(str(f) for f in folders)}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    folder = tmp_path / "my_methods"
    folder.mkdir()
    (folder / "half_ls.py").write_text(PLUGIN)
    return folder


def test_a_method_outside_the_checkout_is_listed_and_a_clash_or_missing_folder_is_a_warning(
    plugin: Path, tmp_path: Path
):
    (plugin / "ls.py").write_text('"""A file named like a built-in method module."""\n')
    done = bench(["list", "methods"], [plugin, tmp_path / "absent"], tmp_path)
    assert done.returncode == 0
    assert "  half-ls " in done.stdout and "LS with every loss halved (a plug-in)." in done.stdout
    assert f"warning: {plugin / 'ls.py'} is skipped: its name clashes with" in done.stderr
    assert f"names {tmp_path / 'absent'}, which is not a folder; skipped" in done.stderr
    assert "half-ls" not in bench(["list", "methods"], [], tmp_path).stdout


@pytest.mark.slow
def test_a_plugin_method_trains_and_its_record_names_the_file_and_hash(plugin: Path, tmp_path: Path):
    tiny = ["--set", "train.epochs=1", "--set", "data.train_limit=64", "--set", "data.eval_limit=32"]
    done = bench(
        ["run", "--method", "half-ls", "--device", "cpu", "--no-progress", "--out", "runs", *tiny], [plugin], tmp_path
    )
    assert done.returncode == 0, done.stderr
    [config] = (tmp_path / "runs").glob("*/config.json")
    source = json.loads(config.read_text())["source"]
    plugin_file = plugin / "half_ls.py"
    assert source["method"] == {
        "module": "methods.half_ls",
        "file": str(plugin_file),
        "sha256": hashlib.sha256(plugin_file.read_bytes()).hexdigest(),
    }
    assert (
        source["dataset"]["module"] == "bench.data.multimnist"
        and source["backbone"]["module"] == "bench.backbones.lenet"
    )


def test_module_sources_hash_the_files_a_run_uses():
    sources = module_sources(run_modules(resolve("palora", "multimnist-mini")))
    assert [sources[role]["module"] for role in ("method", "dataset", "backbone")] == [
        "methods.palora",
        "bench.data.multimnist",
        "bench.backbones.lenet",
    ]
    path = Path(sources["method"]["file"])
    assert path.name == "palora.py" and sources["method"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert run_modules(resolve("ls", "multimnist-mini", overrides={"model.backbone": "mlp"}))["backbone"] == (
        "bench.backbones.mlp"
    )
