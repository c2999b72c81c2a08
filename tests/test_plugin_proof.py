"""A plug-in is one file: a copy of the checkout with one new method file and one new dataset file,
and no other edit, passes the fast tests that take their lists from the registries: every test case
named after either plug-in (the method and dataset contracts, the CLI, evaluation, the step options)
and the whole of the files whose tests read a registry's full list inside one test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core.catalog import PLUGIN_ENV

ROOT = Path(__file__).resolve().parent.parent
LEFT_OUT_EVERYWHERE = shutil.ignore_patterns("__pycache__", "*.egg-info", ".*_cache", ".hypothesis")
LEFT_OUT_AT_THE_ROOT = {".git", ".venv", "runs", "reports", "data", "build", "dist"}


def left_out(folder: str, names: list[str]) -> set[str]:
    """What the copy leaves out: version control, the environment, run records, data, caches."""
    ignored = set(LEFT_OUT_EVERYWHERE(folder, names))
    return ignored | (LEFT_OUT_AT_THE_ROOT & set(names) if Path(folder) == ROOT else set())


METHOD = '''"""COSMOS with its losses scaled by a learned factor: a method plug-in of one file."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from bench.core.registry import METHODS
from bench.core.spec import ConditionedNet, MethodInfo, MultiTaskNet
from methods.cosmos import COSMOS


@METHODS.register("half-cosmos")
class HalfCOSMOS(COSMOS):
    """COSMOS with its losses scaled by exp(-s), s a learned scalar starting at ln 2 (halved); the
    forward never reads s, so only the method's backward gives it a gradient."""

    def build(self, make_backbone: Callable[..., MultiTaskNet]) -> ConditionedNet:
        cnet = super().build(make_backbone)
        cnet.method_parameters["log_scale"] = nn.Parameter(torch.tensor(math.log(2.0)))
        return cnet

    def backward(self, losses: Tensor, rays: Tensor, cnet: ConditionedNet) -> Tensor:
        return super().backward(losses * torch.exp(-cnet.method_parameters["log_scale"]), rays, cnet)

    def describe(self) -> MethodInfo:
        return {**super().describe(), "loss_scale_learned": True}
'''

DATASET = '''"""A tiny synthetic image set of two tasks, built in memory: a dataset plug-in of one file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from bench.core.registry import register_dataset
from bench.core.spec import DatasetSpec, Split
from bench.data.kit.objectives import classification

SIZES = {"train": 256, "val": 64, "test": 64}


def load(root: Path, split: Split) -> tuple[Tensor, dict[str, Tensor]]:
    """Random 28x28 images; ``left``: is the left half brighter, ``top``: is the top half brighter."""
    generator = torch.Generator().manual_seed(list(SIZES).index(split))
    x = torch.rand(SIZES[split], 1, 28, 28, generator=generator)
    left = x[..., :14].mean((1, 2, 3)) > x[..., 14:].mean((1, 2, 3))
    top = x[..., :14, :].mean((1, 2, 3)) > x[..., 14:, :].mean((1, 2, 3))
    return x, {"left": left.long(), "top": top.long()}


TINY_SHAPES = register_dataset(
    DatasetSpec(
        name="tiny-shapes",
        description="Tiny synthetic 28x28 images: which half is brighter, left-right and top-bottom (2 tasks)",
        input_shape=(1, 28, 28),
        objectives=(classification("left", 2), classification("top", 2)),
        backbone="multilenet",
        hv_reference=(1.0, 1.0),
        load=load,
        split_sizes=SIZES,
        train_defaults={"train.epochs": 1, "train.batch_size": 64},
    )
)
'''

READ_WHOLE_REGISTRIES = (
    "test_cli.py",
    "test_evaluate.py",
    "test_figures.py",
    "test_registry.py",
    "test_user_errors.py",
    "test_paper_data.py",
)
"""Test files with tests that loop over ``METHODS.names()`` or ``DATASETS.names()`` in one body."""

PLUGINS = {"methods/half_cosmos.py": METHOD, "bench/data/tiny_shapes.py": DATASET}
"""The new files, by their path in the checkout."""


def plugged_copy(folder: Path) -> Path:
    """A copy of the checkout under ``folder`` with the two plug-in files added, nothing else changed."""
    copy = folder / "checkout"
    shutil.copytree(ROOT, copy, ignore=left_out)
    for path, source in PLUGINS.items():
        assert not (copy / path).exists(), path
        (copy / path).write_text(source)
    return copy


def run_in(copy: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python *args`` in ``copy``, importing its ``bench``, ``methods`` and ``tests``."""
    env = {key: value for key, value in os.environ.items() if key != PLUGIN_ENV}
    env["PYTHONPATH"] = str(copy)
    return subprocess.run([sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_one_new_method_file_and_one_new_dataset_file_pass_the_fast_tests(tmp_path: Path):
    copy = plugged_copy(tmp_path)
    listed = run_in(copy, "-m", "bench", "list", timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "  half-cosmos " in listed.stdout and "  tiny-shapes " in listed.stdout
    # one pytest: the fast cases named after a plug-in, and every fast test of the files that loop over
    # a whole registry (-k matches a test's module file name too)
    chosen = " or ".join(("half-cosmos", "tiny-shapes", *READ_WHOLE_REGISTRIES))
    fast = ("-m", "pytest", "-q", "-n", "0", "-m", "not slow", "-p", "no:cacheprovider", "-rA", "-k", chosen)
    result = run_in(copy, *fast, timeout=1800)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = [line for line in result.stdout.splitlines() if line.startswith("PASSED")]
    for plugin in ("half-cosmos", "tiny-shapes"):
        assert sum(plugin in line for line in passed) >= 4, (plugin, passed)  # tiny-shapes has 4 cases
    for name in READ_WHOLE_REGISTRIES:
        assert any(line.startswith(f"PASSED tests/{name}::") for line in passed), (name, passed)
