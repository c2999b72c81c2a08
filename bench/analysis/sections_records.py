"""The report's record files: every run with its status and recomputed hypervolume (``runs.csv``), the
validation curves (``convergence.csv``) and the archive (``fronts.csv``, ``runs.jsonl``) from which
``bench report --archive`` regenerates every table and figure without the run records."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.analysis.archive import write_archive
from bench.analysis.context import ReportContext
from bench.analysis.section import Section
from bench.core.atomic import write_text
from bench.core.errors import ConfigError

CURVES = Path("tables") / "convergence.csv"
"""The validation curves, relative to a report's folder (part of its archive)."""


def records_section(ctx: ReportContext) -> Section:
    runs_csv, curves_csv = ctx.tables_dir / "runs.csv", ctx.out / CURVES
    write_text(runs_csv, ctx.table.to_csv(index=False))
    write_text(curves_csv, ctx.curves.to_csv(index=False))
    archive = write_archive(*ctx.archive, ctx.out)
    return Section(
        files=[
            ([runs_csv], "every run record found, with its protocol, status, recomputed hypervolume and provenance"),
            ([curves_csv], "validation hypervolume at every evaluation of every run"),
            (
                archive,
                "the archive: every test front point (one row per run and ray, with the run id and commit) and "
                "every run's config, status and summary; `python -m bench report --archive DIR` regenerates "
                "this report from it and the curves alone",
            ),
        ]
    )


def read_curves(folder: Path) -> pd.DataFrame:
    """An archive's validation curves (``tables/convergence.csv``)."""
    path = Path(folder) / CURVES
    if not path.is_file():
        raise ConfigError(
            f"{path} not found: an archive keeps its validation curves there; write it with "
            "`python -m bench report --runs DIR --out FOLDER`"
        )
    return pd.read_csv(path, dtype={"run_id": str, "label": str})
