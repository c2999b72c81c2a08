"""The report's statistics over seeds on the test hypervolume, per dataset and computed once
(:attr:`bench.analysis.context.ReportContext.statistics`): bootstrap intervals and letter groups, the
Holm-corrected Welch tests of every pair, and the probability of improvement of the headline pairs
(:mod:`bench.analysis.statistics`); and each method's validation gain over its last 20% of training,
the budget rule of the ``tuned`` protocol (:func:`bench.analysis.tuning.last_gain`), so that a
finding whose losing method was still improving says so."""

from __future__ import annotations

import pandas as pd

from bench.analysis.statistics import improvements, pairwise, summary_table
from bench.analysis.tuning import last_gain
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


def statistics_by_dataset(counted: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """:func:`dataset_statistics` of each dataset of the counted runs (:func:`counted_values`), by name."""
    return {
        dataset: dataset_statistics(per_run[["label", "seed", VALUE]])
        for dataset, per_run in counted.groupby("dataset", sort=True)
    }


def validation_gains(curves: pd.DataFrame, counted: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, label): the mean over its counted runs of each run's fitted validation-HV gain over
    its last 20% of training, and how many runs had one (a run with fewer than 3 evaluations there has
    none). Validation curves only, as the tuning reads them."""
    runs = set(counted["run_id"])
    rows = []
    counted_curves = curves[curves["run_id"].isin(runs)]
    for (dataset, label, _), curve in counted_curves.groupby(["dataset", "label", "run_id"]):
        rows.append({"dataset": dataset, "label": label, "gain": last_gain(curve)[1]})
    table = pd.DataFrame(rows, columns=["dataset", "label", "gain"])
    return (
        table.dropna().groupby(["dataset", "label"], as_index=False).agg(gain=("gain", "mean"), runs=("gain", "size"))
    )
