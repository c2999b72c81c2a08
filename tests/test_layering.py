"""The layering holds: nothing imports a module above it. From the top: the entry points (the
``python -m bench ...`` commands), the sweep's job and planner, the runner and the profiler's stepper,
the trial builder and the loop;
below them the plug-ins (methods, datasets, backbones, analysis), which import none of those.
Imports are read from the source (every ``import`` statement, also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {
    "bench.__main__",
    "bench.run",
    "bench.sweep",
    "bench.report",
    "bench.profile",
    "bench.performance",
    "bench.performance_quick",
    "bench.performance_real_shape",
    "bench.memory_claim",
    "bench.startup",
    "bench.overhead",
}
IMPORTED_ONLY_BY = {
    "bench.sweep_job": {"bench.sweep"},
    "bench.plan": {"bench.sweep", "bench.performance_real_shape"},
    "bench.runner": ENTRY_POINTS | {"bench.sweep_job"},
    "bench.stepper": ENTRY_POINTS | {"bench.plan"},
    "bench.trial": ENTRY_POINTS | {"bench.runner", "bench.stepper", "bench.plan"},
    "bench.loop": ENTRY_POINTS | {"bench.runner", "bench.stepper", "bench.trial", "bench.checkpoint"},
}
"""module -> the only modules that may import it (besides entry points, which may import entry points)."""
PLUGIN_PACKAGES = ("methods.", "bench.data.", "bench.backbones.", "bench.analysis.")


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def imports(path: Path) -> set[str]:
    """The bench and methods modules ``path`` imports (``from a import b`` counts ``a`` and ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.split(".")[0] in ("bench", "methods")}


GRAPH = {module_name(p): imports(p) for folder in ("bench", "methods") for p in (ROOT / folder).rglob("*.py")}


def test_the_graph_is_read():
    assert "bench.runner" in GRAPH["bench.sweep_job"] and "bench.trial" in GRAPH["bench.runner"]
    assert len(GRAPH) > 80


@pytest.mark.parametrize("module", sorted(ENTRY_POINTS))
def test_only_entry_points_import_an_entry_point(module: str):
    importers = sorted(m for m, imported in GRAPH.items() if module in imported and m not in ENTRY_POINTS)
    assert importers == [], f"{module} is an entry point, imported by {importers}"


@pytest.mark.parametrize("module", sorted(IMPORTED_ONLY_BY))
def test_the_harness_is_imported_only_from_above(module: str):
    allowed = IMPORTED_ONLY_BY[module]
    importers = sorted(m for m, imported in GRAPH.items() if module in imported and m != module and m not in allowed)
    assert importers == [], f"{module} sits above {importers}, which import it"


def test_plugins_import_no_part_of_the_harness():
    harness = ENTRY_POINTS | set(IMPORTED_ONLY_BY)
    wrong = {m: sorted(GRAPH[m] & harness) for m in GRAPH if m.startswith(PLUGIN_PACKAGES) and GRAPH[m] & harness}
    assert wrong == {}
