"""Shared fixtures: a data root with the embedded dataset, tiny specs for 2 and 3 tasks, CPU by default."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from bench.core.fidelity import lockstep_precision
from bench.core.registry import DATASETS, load_all
from bench.core.spec import DatasetSpec
from tests.support import tiny_spec

load_all()


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh data root (the embedded dataset is generated into it on first use)."""
    return tmp_path_factory.mktemp("pfl-data")


THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2
"""Torch threads a test starts with: one per xdist worker process (pyproject's ``-n 2`` on 2 cores),
so that two workers never oversubscribe the cores; two in a single process."""


@pytest.fixture(autouse=True)
def _isolated_data_env(monkeypatch: pytest.MonkeyPatch, data_root: Path) -> None:
    monkeypatch.setenv("PFLBENCH_DATA", str(data_root))
    torch.set_num_threads(min(THREADS, torch.get_num_threads()))


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def lockstep(request: pytest.FixtureRequest) -> Iterator[None]:
    """A lockstep replay's conditions: float64 as the official run was recorded
    (:func:`bench.core.fidelity.lockstep_precision`), under 1 and under 2 torch threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(request.param)
    try:
        with lockstep_precision():
            yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(params=[2, 3], ids=["2tasks", "3tasks"])
def spec(request: pytest.FixtureRequest) -> DatasetSpec:
    return tiny_spec(request.param)


@pytest.fixture
def mini_spec() -> DatasetSpec:
    return DATASETS.get("multimnist-mini")


def file_rank(items: list[pytest.Item]) -> dict[str, int]:
    """Each test file's place in the run: files with ``slurm`` tests first (they mostly wait on the
    scheduler), then files with ``slow`` tests, then the rest. The xdist workers take whole files in
    this order, longest first, so no long file is left to one worker at the end."""
    rank: dict[str, int] = {}
    for item in items:
        mine = 0 if item.get_closest_marker("slurm") else 1 if item.get_closest_marker("slow") else 2
        path = item.nodeid.split("::")[0]
        rank[path] = min(mine, rank.get(path, 2))
    return rank


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order files by :func:`file_rank` (a stable sort: tests keep their order within a file), and
    skip tests marked ``gpu`` when no CUDA device is visible."""
    rank = file_rank(items)
    items.sort(key=lambda item: rank[item.nodeid.split("::")[0]])
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none visible)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
