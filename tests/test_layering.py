"""The floors hold: every module of ``bench`` and ``methods`` lives in a folder whose floor says what it
may import, and nothing imports a floor above its own.

Lowest first: ``bench.core`` (the contract and the kit plug-ins share); ``bench.data.kit`` and
``bench.data.formats`` (what dataset modules share); the plug-ins (datasets, backbones, methods);
``bench.train`` (one run); ``bench.sweep`` and ``bench.analysis`` (many runs, and what is read from
them); ``bench.benchmarks`` (measurements); the entry modules (``python -m bench``, ``bench.run``,
``bench.report``, ``bench.profile``, ``bench.sweep.__main__``), which only dispatch. A module may import
its own floor and every floor below it. Imports are read from the source (every ``import`` statement,
also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FLOORS: dict[str, int] = {
    "bench.core": 0,
    "bench.data.kit": 1,
    "bench.data.formats": 2,
    "bench.data": 3,
    "bench.backbones": 3,
    "methods": 4,
    "bench.train": 5,
    "bench.sweep": 6,
    "bench.analysis": 6,
    "bench.benchmarks": 7,
}
"""folder (package) -> its floor; the longest folder that contains a module is its folder."""
ENTRY_MODULES = {"bench", "bench.__main__", "bench.run", "bench.report", "bench.profile", "bench.sweep.__main__"}
ENTRY_FLOOR = 8
SIDE_BY_SIDE = {("bench.sweep", "bench.analysis"), ("bench.analysis", "bench.sweep")}
"""Folders on one floor that must not import each other either."""


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def folder_of(module: str) -> str:
    """The floor's folder of ``module`` (the entry modules are their own folder)."""
    if module in ENTRY_MODULES:
        return module
    matches = [folder for folder in FLOORS if module == folder or module.startswith(folder + ".")]
    if not matches:
        raise AssertionError(f"{module} is in no floor's folder: add its folder to FLOORS")
    return max(matches, key=len)


def floor_of(module: str) -> int:
    return ENTRY_FLOOR if module in ENTRY_MODULES else FLOORS[folder_of(module)]


def imports(path: Path) -> set[str]:
    """The bench and methods modules ``path`` imports: ``from a import b`` counts ``a.b`` where that is
    a module, else ``a``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.split(".")[0] in ("bench", "methods")}


FILES = {module_name(p): p for folder in ("bench", "methods") for p in (ROOT / folder).rglob("*.py")}
MODULES = set(FILES)
GRAPH = {module: imports(path) for module, path in FILES.items()}


def test_the_graph_is_read():
    assert "bench.train.runner" in GRAPH["bench.sweep.job"] and "bench.train.trial" in GRAPH["bench.train.runner"]
    assert "bench.core.spec" in GRAPH["methods.palora"]
    assert len(GRAPH) > 80


def test_every_module_is_in_a_floor():
    for module in FILES:
        floor_of(module)


def test_the_rule_catches_an_upward_import():
    assert floor_of("bench.core.spec") < floor_of("bench.train.runner") < floor_of("bench.benchmarks.profile")
    assert floor_of("bench.data.kit.dense") < floor_of("bench.data.formats.mtan_npy") < floor_of("bench.data.nyuv2")


@pytest.mark.parametrize("module", sorted(FILES))
def test_no_import_points_up(module: str):
    own, folder = floor_of(module), folder_of(module)
    upward = sorted(
        imported
        for imported in GRAPH[module]
        if imported in MODULES | set(FLOORS)
        and (floor_of(imported) > own or (folder, folder_of(imported)) in SIDE_BY_SIDE)
    )
    assert upward == [], f"{module} (floor {own}) imports {upward} from a floor above or beside it"


@pytest.mark.parametrize("module", sorted(ENTRY_MODULES - {"bench", "bench.__main__"}))
def test_entry_modules_only_dispatch(module: str):
    """A ``python -m`` entry is a few lines that call a floor's ``main``; nothing imports it."""
    assert len(FILES[module].read_text().splitlines()) <= 10
    importers = sorted(m for m, imported in GRAPH.items() if module in imported)
    assert importers == [], f"{module} is an entry module, imported by {importers}"
