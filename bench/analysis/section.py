"""A section of the report: its REPORT.md lines, the files it wrote (each with what it holds) and the
findings it supports. The report (:mod:`bench.analysis.report`) is a list of functions that each take
the :class:`~bench.analysis.context.ReportContext` and build one section."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from bench.analysis.context import ReportContext


@dataclasses.dataclass
class Section:
    lines: list[str] = dataclasses.field(default_factory=list)
    """Markdown, headed by its own ``##`` title (none: the section has nothing to show)."""
    files: list[tuple[list[Path], str]] = dataclasses.field(default_factory=list)
    """(paths written, what they hold), listed under REPORT.md's "Files"."""
    findings: list[str] = dataclasses.field(default_factory=list)
    """Sentences the section's tests support; REPORT.md ends with them."""


SectionBuilder = Callable[[ReportContext], Section]
