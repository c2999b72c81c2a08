"""The start-up benchmark runs and reads ``-X importtime`` logs right (it asserts no time)."""

from __future__ import annotations

from pathlib import Path

from bench.benchmarks import startup

LOG = """import time: self [us] | cumulative | imported package
import time:       120 |        120 |   _io
import time:        80 |        200 | encodings
import time:      9000 |     900000 |     torch._C
import time:      5000 |    1000000 | torch
"""


def test_imported_modules_are_read_from_an_importtime_log():
    assert startup.imported_modules(LOG) == ["_io", "encodings", "torch._C", "torch"]


def test_a_listing_imports_no_heavy_package(monkeypatch):
    """The measurement itself, on the two commands that must stay light."""
    commands = {k: v for k, v in startup.COMMANDS.items() if k in ("python -m bench --help", "python -m bench list")}
    monkeypatch.setattr(startup, "COMMANDS", commands)
    rows = startup.measure(Path(startup.__file__).resolve().parents[2], repeats=1)
    assert [r["command"] for r in rows] == list(commands)
    for row in rows:
        assert row["exit"] == 0 and row["heavy"] == "none" and 0 < row["modules"] < 500, row
