"""The ``tuned`` protocol's selection (spec/evaluation.md, "Tuning without peeking").

Per (dataset, method), the trial configuration with the highest *validation* hypervolume, where a
run's validation HV is the mean of its evaluations over the last :data:`LAST_FRACTION` of training
(one epoch's value moves by about 0.005 on MultiFashion's 2,000-pair validation subset), averaged over
the tuning seeds. Only the validation curves are read (:func:`bench.analysis.convergence.hypervolume_curve`:
the ``val`` rows of ``metrics.jsonl``); a run's test front (``summary.json``) and its test rows are
never touched, so no test number can reach a choice.

Budget rule: a configuration has *plateaued* when its validation hypervolume gained less than
:data:`PLATEAU_GAIN` over the last :data:`LAST_FRACTION` of training, the gain read off a least-squares
line through the evaluations of that stretch (slope times its length), not off two noisy end points.
The tuning table reports every trial's gain.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.convergence import hypervolume_curve
from bench.analysis.records import Run, variant_settings
from bench.core.registry import DATASETS, load_all

PLATEAU_GAIN = 0.003
"""Largest validation-HV gain over the last :data:`LAST_FRACTION` of training of a plateaued run."""
LAST_FRACTION = 0.2

TRIAL_COLUMNS = ["dataset", "method", "variant", "settings", "seed", "run_id", "status", "evaluations"]
TRIAL_COLUMNS += ["final_step", "val_hv", "gain"]


def last_gain(curve: pd.DataFrame) -> tuple[float, float]:
    """(mean validation HV, fitted gain) over the last :data:`LAST_FRACTION` of one run's steps: the
    evaluations at or after 80% of the final step. The gain is NaN with fewer than 3 of them."""
    final_step = float(curve["step"].max())
    last = curve[curve["step"] >= (1 - LAST_FRACTION) * final_step]
    mean = float(last["hypervolume"].mean())
    if len(last) < 3:
        return mean, np.nan
    slope = np.polyfit(last["step"].to_numpy(float), last["hypervolume"].to_numpy(float), 1)[0]
    return mean, float(slope * LAST_FRACTION * final_step)


def trial_table(runs: list[Run]) -> pd.DataFrame:
    """One row per tuning run: its settings (those that differ between the method's trials), status,
    validation HV and gain over the last 20% (:func:`last_gain`); NaN for a run that did not complete
    or has no curve."""
    load_all()
    settings = variant_settings(runs)
    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "dataset": run.dataset,
            "method": run.method,
            "variant": run.variant,
            "settings": json.dumps(settings.get(run.variant, {}), sort_keys=True),
            "seed": run.seed,
            "run_id": run.run_id,
            "status": run.status,
            "evaluations": 0,
            "final_step": np.nan,
            "val_hv": np.nan,
            "gain": np.nan,
        }
        curve = hypervolume_curve(run) if run.usable and run.dataset in DATASETS else pd.DataFrame()
        if not curve.empty:
            value, gain = last_gain(curve)
            row.update(evaluations=len(curve), final_step=float(curve["step"].max()), val_hv=value, gain=gain)
        rows.append(row)
    return pd.DataFrame(rows, columns=TRIAL_COLUMNS)


def select(trials: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, method, settings): mean validation HV and gain over the seeds that completed, and
    ``selected`` on each method's best. ``complete``: every trial of the method completed, so the
    choice is final; a method with a trial still running or failed is marked provisional."""
    rows = []
    for (dataset, method), group in trials.groupby(["dataset", "method"], sort=True):
        complete = bool(group["val_hv"].notna().all())
        for (variant, settings), trial in group.groupby(["variant", "settings"], sort=False):
            done = trial[trial["val_hv"].notna()]
            rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "variant": variant,
                    "settings": settings,
                    "seeds": " ".join(str(s) for s in sorted(done["seed"])),
                    "val_hv": float(done["val_hv"].mean()) if len(done) else np.nan,
                    "gain": float(done["gain"].mean()) if len(done) else np.nan,
                    "failed": "; ".join(
                        f"seed {r.seed}: {r.status}" for r in trial[trial["val_hv"].isna()].itertuples()
                    ),
                    "complete": complete,
                }
            )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    best = table.groupby(["dataset", "method"])["val_hv"].transform("max")
    table["selected"] = table["val_hv"].notna() & (table["val_hv"] == best)
    duplicate = table[table["selected"]].duplicated(["dataset", "method"], keep="first")
    table.loc[duplicate[duplicate].index, "selected"] = False  # a tie keeps the first trial listed
    table["plateaued"] = table["gain"] < PLATEAU_GAIN
    return table


def selected_settings(selection: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Each method's selected settings (dotted keys), for the methods whose choice is final."""
    chosen = selection[selection["selected"] & selection["complete"]]
    return {row.method: json.loads(row.settings) for row in chosen.itertuples()}


def display(selection: pd.DataFrame) -> pd.DataFrame:
    """The tuning table's readable form: one row per trial, the selected one marked."""

    def shown(settings: str) -> str:
        return ", ".join(f"{k}={v}" for k, v in json.loads(settings).items()) or "(preset)"

    return pd.DataFrame(
        {
            "dataset": selection["dataset"],
            "method": selection["method"],
            "settings": [shown(s) for s in selection["settings"]],
            "seeds": selection["seeds"],
            "validation HV": [f"{v:.4f}" if v == v else "–" for v in selection["val_hv"]],
            "last-20% gain": [f"{g:+.4f}" if g == g else "–" for g in selection["gain"]],
            "selected": [
                "yes" if s and c else ("provisional" if s else "")
                for s, c in zip(selection["selected"], selection["complete"], strict=True)
            ],
        }
    )


def tuned_spec_text(base: dict[str, Any], selection: pd.DataFrame, seeds: list[int], source: str) -> str:
    """A sweep spec (TOML) of the ``tuned`` grid: the tuning spec ``base`` (its ``[set]`` and
    ``[cluster]``) with each method at its selected settings (``[per_method.<name>]``) and ``seeds``.
    Only methods whose choice is final are listed."""
    chosen = selected_settings(selection)
    methods = [m for m in base["grid"]["methods"] if m in chosen]
    lines = [
        f"# The `tuned` grid, written by `python -m bench.tune {source}` from validation only:",
        "# each method at the trial settings with the highest validation hypervolume over the last 20%",
        "# (results/tables/tuning.md). Do not edit: rerun bench.tune.",
        "[grid]",
        f"methods = {json.dumps(methods)}",
        f"datasets = {json.dumps(base['grid']['datasets'])}",
        f"seeds = {json.dumps(seeds)}",
        "",
        "[set]",
        *(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in base.get("set", {}).items()),
    ]
    for table in ("cluster", "run"):
        if base.get(table):
            lines += ["", f"[{table}]", *(f"{k} = {json.dumps(v)}" for k, v in base[table].items())]
    for method in methods:
        if chosen[method]:
            lines += ["", f"[per_method.{json.dumps(method)}]"]
            lines += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in chosen[method].items()]
    return "\n".join(lines) + "\n"
