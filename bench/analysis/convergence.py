"""Convergence: the hypervolume of the validation front at every evaluation, against step and time,
and the time a run takes to reach a fraction (95%) of its final hypervolume.

Times come from ``metrics.jsonl``: ``train_time`` (seconds spent training, evaluations excluded) and
``time`` (wall clock since the run started, data loading and evaluations included).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis.records import Run, variant_labels
from bench.core.hypervolume import front_hypervolume
from bench.core.registry import DATASETS, load_all
from bench.train.evaluate import front

CURVE_COLUMNS = ["dataset", "label", "method", "kind", "seed", "run_id", "step", "epoch", "train_time", "wall_time"]
CURVE_COLUMNS += ["hypervolume"]


def hypervolume_curve(run: Run) -> pd.DataFrame:
    """One row per validation evaluation of ``run``: step, epoch, times and hypervolume."""
    metrics = run.metrics
    if metrics.empty or "split" not in metrics:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    spec = DATASETS.get(run.dataset)
    val = metrics[metrics["split"] == "val"]
    rows = []
    for step, group in val.groupby("step", sort=True):
        records = group.to_dict("records")
        rows.append(
            {
                "step": int(step),
                "epoch": int(group["epoch"].iloc[0]),
                "train_time": float(group["train_time"].iloc[0]) if "train_time" in group else np.nan,
                "wall_time": float(group["time"].iloc[0]),
                "hypervolume": front_hypervolume(front(records, spec), spec),
            }
        )
    return pd.DataFrame(rows)


def convergence_table(runs: list[Run]) -> pd.DataFrame:
    """The curves of every usable run on a registered dataset, in long format."""
    load_all()
    labels = variant_labels(runs)
    curves = []
    for run in runs:
        if not run.usable or run.dataset not in DATASETS:
            continue
        curve = hypervolume_curve(run)
        if curve.empty:
            continue
        kind = (run.summary or {}).get("kind", "")
        ident = {"dataset": run.dataset, "label": labels[run.variant], "method": run.method, "kind": kind}
        curves.append(curve.assign(**ident, seed=run.seed, run_id=run.run_id))
    if not curves:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(curves, ignore_index=True)[CURVE_COLUMNS]


def time_to_fraction(curve: pd.DataFrame, fraction: float = 0.95) -> dict[str, float]:
    """The first evaluation whose hypervolume reaches ``fraction`` of the final one (the last
    evaluation's): its step, training seconds and wall seconds. NaN when the final one is not positive."""
    curve = curve.sort_values("step")
    final = float(curve["hypervolume"].iloc[-1]) if len(curve) else np.nan
    if not final > 0:
        return {"step": np.nan, "train_time": np.nan, "wall_time": np.nan}
    reached = curve[curve["hypervolume"] >= fraction * final].iloc[0]
    return {"step": float(reached["step"]), "train_time": reached["train_time"], "wall_time": reached["wall_time"]}


def time_to_fraction_table(curves: pd.DataFrame, fraction: float = 0.95) -> pd.DataFrame:
    """Per (dataset, label): mean over seeds of the step and times to ``fraction`` of the final HV."""
    per_run = [
        {"dataset": d, "label": lab, "seed": s, **time_to_fraction(g, fraction)}
        for (d, lab, s), g in curves.groupby(["dataset", "label", "seed"], sort=True)
    ]
    if not per_run:
        return pd.DataFrame(columns=["dataset", "label", "step", "train_time", "wall_time"])
    table = pd.DataFrame(per_run)
    return table.groupby(["dataset", "label"], as_index=False)[["step", "train_time", "wall_time"]].mean()
