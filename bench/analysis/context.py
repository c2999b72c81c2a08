"""What every section of the report reads: the runs (from run records or from an archive), the tables
derived from them once, and where the report writes. A section (:mod:`bench.analysis.section`) takes
this and nothing else."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import pandas as pd

from bench.analysis.aggregate import run_table, seed_summary
from bench.analysis.archive import fronts_and_lines
from bench.analysis.convergence import time_to_fraction_table
from bench.analysis.footprint import footprint_table
from bench.analysis.paper import load_paper
from bench.analysis.records import Run
from bench.analysis.seed_statistics import counted_values, statistics_by_dataset, validation_gains
from bench.core.registry import DATASETS


@dataclasses.dataclass
class ReportContext:
    """The report's inputs. ``source`` says where the runs came from (``--runs runs/``, ``--archive
    results/``); ``curves`` is the validation hypervolume of every evaluation (the convergence table)."""

    source: str
    out: Path
    runs: list[Run]
    curves: pd.DataFrame
    protocol_of: Callable[[Run], str]
    paper_dir: Path | None = None
    seeds: list[int] | None = None
    duplicates: list[Run] = dataclasses.field(default_factory=list)
    """Usable runs of a dataset, variant and seed already counted (the first by run id is)."""
    missing: list[str] = dataclasses.field(default_factory=list)
    """Runs the report's ``--spec`` asks for that have no record."""

    def __post_init__(self) -> None:
        """The curves carry the labels the tables give their runs."""
        labels = dict(zip(self.table["run_id"], self.table["label"], strict=True))
        self.curves = self.curves.assign(label=self.curves["run_id"].map(labels))

    @property
    def tables_dir(self) -> Path:
        return self.out / "tables"

    @property
    def figures_dir(self) -> Path:
        return self.out / "figures"

    @cached_property
    def table(self) -> pd.DataFrame:
        """One row per run (:func:`bench.analysis.aggregate.run_table`) with its protocol."""
        protocols = {run.run_id: self.protocol_of(run) for run in self.runs}
        table = run_table(self.runs)
        table.insert(1, "protocol", table["run_id"].map(protocols))
        return table

    @cached_property
    def summary(self) -> pd.DataFrame:
        return seed_summary(self.table, self.seeds)

    @cached_property
    def counted(self) -> pd.DataFrame:
        """The usable runs on registered datasets, one per (dataset, label, seed)."""
        return counted_values(self.table)

    @cached_property
    def statistics(self) -> dict[str, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
        """Per dataset: the test hypervolume's summary with intervals and groups, every pair's test and
        the headline improvements (:func:`bench.analysis.seed_statistics.dataset_statistics`)."""
        return statistics_by_dataset(self.counted)

    @cached_property
    def validation_gains(self) -> pd.DataFrame:
        """Per (dataset, label): the counted runs' mean validation gain over their last 20% of training
        (:func:`bench.analysis.seed_statistics.validation_gains`)."""
        return validation_gains(self.curves, self.counted)

    @cached_property
    def archive(self) -> tuple[pd.DataFrame, list[str]]:
        """``fronts.csv`` as a frame and the lines of ``runs.jsonl`` (:func:`bench.analysis.archive.fronts_and_lines`):
        every usable run's test front, one row per ray, labelled as the tables label it."""
        return fronts_and_lines(self.runs, self.protocol_of)

    @property
    def fronts(self) -> pd.DataFrame:
        return self.archive[0]

    @cached_property
    def footprint(self) -> pd.DataFrame:
        return footprint_table(self.runs)

    @cached_property
    def to95(self) -> pd.DataFrame:
        return time_to_fraction_table(self.curves)

    @cached_property
    def paper(self) -> pd.DataFrame:
        return load_paper(self.paper_dir)

    @cached_property
    def datasets(self) -> list[str]:
        """The registered datasets the runs are on, sorted."""
        return sorted(d for d in self.table["dataset"].unique() if d in DATASETS)

    @cached_property
    def protocols(self) -> list[str]:
        """The protocols of the usable runs, sorted."""
        return sorted(set(self.table.loc[self.table["usable"], "protocol"]))
