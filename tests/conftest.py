"""Shared fixtures: a data root with the embedded dataset, tiny specs for 2 and 3 tasks, CPU by default."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from bench.data.objectives import classification
from bench.fidelity import lockstep_precision
from bench.registry import DATASETS, load_all
from bench.spec import DatasetSpec

load_all()


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh data root (the embedded dataset is generated into it on first use)."""
    return tmp_path_factory.mktemp("pfl-data")


@pytest.fixture(autouse=True)
def _isolated_data_env(monkeypatch: pytest.MonkeyPatch, data_root: Path) -> None:
    monkeypatch.setenv("PFLBENCH_DATA", str(data_root))
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def lockstep(request: pytest.FixtureRequest) -> Iterator[None]:
    """A lockstep replay's conditions: float64 as the official run was recorded
    (:func:`bench.fidelity.lockstep_precision`), under 1 and under 2 torch threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(request.param)
    try:
        with lockstep_precision():
            yield
    finally:
        torch.set_num_threads(threads)


def _random_split(num_tasks: int, n: int = 64):
    def load(root: Path, split: str):
        g = torch.Generator().manual_seed({"train": 0, "val": 1, "test": 2}[split])
        x = torch.rand(n, 1, 28, 28, generator=g)
        return x, {f"task{k}": torch.randint(10, (n,), generator=g) for k in range(num_tasks)}

    return load


def tiny_spec(num_tasks: int) -> DatasetSpec:
    """A random 28x28 dataset with ``num_tasks`` 10-class tasks (contract tests; no files)."""
    return DatasetSpec(
        name=f"tiny{num_tasks}",
        description="random tensors",
        input_shape=(1, 28, 28),
        objectives=tuple(classification(f"task{k}") for k in range(num_tasks)),
        backbone="multilenet",
        hv_reference=(1.0,) * num_tasks,
        load=_random_split(num_tasks),
        eval_points_per_edge=5 if num_tasks == 3 else 11,
    )


@pytest.fixture(params=[2, 3], ids=["2tasks", "3tasks"])
def spec(request: pytest.FixtureRequest) -> DatasetSpec:
    return tiny_spec(request.param)


@pytest.fixture
def mini_spec() -> DatasetSpec:
    return DATASETS.get("multimnist-mini")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` when no CUDA device is visible."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none visible)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def random_batch(spec: DatasetSpec, n: int = 8) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Random 28x28 inputs and random 10-class targets for every objective of ``spec``."""
    return torch.rand(n, 1, 28, 28), {k: torch.randint(10, (n,)) for k in spec.objective_names}
