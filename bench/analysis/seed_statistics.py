"""The report's statistics over seeds on the test hypervolume, per dataset and computed once
(:attr:`bench.analysis.context.ReportContext.statistics`): bootstrap intervals and letter groups, the
Holm-corrected Welch tests of every pair, and the probability of improvement of the headline pairs
(:mod:`bench.analysis.statistics`)."""

from __future__ import annotations

import pandas as pd

from bench.analysis.statistics import improvements, pairwise, summary_table
from bench.core.registry import DATASETS

HEADLINE = (("palora", "pamal"), ("palora", "ls"), ("phn-ls", "palora"))
"""The pairs whose probability of improvement the report gives (PaLoRA's claims against PaMaL and LS;
PHN-LS's collapsed front against PaLoRA), where both ran."""
VALUE = "hypervolume"


def counted_values(table: pd.DataFrame) -> pd.DataFrame:
    """The usable runs' hypervolumes on registered datasets, one per (dataset, label, seed)."""
    usable = table[table["usable"] & table["dataset"].map(lambda d: d in DATASETS)]
    return usable.drop_duplicates(["dataset", "label", "seed"])


def dataset_statistics(per_run: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(summary with intervals and groups, every pair's test, headline improvements) of one dataset's
    ``label``, ``seed`` and hypervolume columns; the pairwise tests run once for the groups and the table."""
    pairs = pairwise(per_run, VALUE)
    labels = set(per_run["label"])
    headline = [(a, b) for a, b in HEADLINE if a in labels and b in labels]
    return summary_table(per_run, VALUE, pairs=pairs), pairs, improvements(per_run, VALUE, headline)


def statistics_by_dataset(table: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """:func:`dataset_statistics` of each registered dataset of the run table, sorted by name."""
    return {
        dataset: dataset_statistics(per_run[["label", "seed", VALUE]])
        for dataset, per_run in counted_values(table).groupby("dataset", sort=True)
    }
