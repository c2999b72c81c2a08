"""The budget rule's probe (spec/evaluation.md, "Tuning without peeking"): a method whose selected trial
had not plateaued by the end of the shared budget (:func:`bench.analysis.tuning.budget_violations`) is
trained again at :data:`PROBE_FACTOR` times the budget, on the tuning seeds, with its selected settings;
its validation curve shows what the shared budget withheld from the method. The tuned protocol uses
Adam without a schedule, so where the method's rays ignore the training progress the probe's first
epochs are the trial's, bit for bit, and the probe continues from the trial (``train.extend_shorter``,
:mod:`bench.train.extend`); an annealing ray sampler stretches with the run, and its probe trains from
the start. Validation only, as the selection: the probe's value and gain come from
:func:`bench.analysis.tuning.last_gain`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.records import Run
from bench.analysis.tuning import PLATEAU_GAIN, budget_violations, spec_text, stage_rows
from bench.train.grid import Grid

PROBE_FACTOR = 2
"""A probe trains for this many times the shared budget's epochs."""
PROBE_COLUMNS = ["dataset", "method", "settings", "budget_epochs", "probe_epochs", "seeds", "budget_val_hv"]
PROBE_COLUMNS += ["probe_val_hv", "difference", "probe_gain", "probe_plateaued", "probe_settings", "run_ids"]


def probe_settings(grid: Grid, dataset: str, method: str, settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` (a selected trial's) at :data:`PROBE_FACTOR` times the epochs they train for."""
    epochs = grid.config(method, dataset, grid.seeds[0], settings).train.epochs
    return {**settings, "train.epochs": PROBE_FACTOR * epochs}


def probe_table(runs: list[Run], grid: Grid, selection: pd.DataFrame) -> pd.DataFrame:
    """One row per final selected trial that had not plateaued: its validation HV over the last 20% of
    the budget, and its probe's over the last 20% of the probe (NaN until every seed's probe is done)."""
    by_id = {run.run_id: run for run in runs}
    short = budget_violations(selection)
    rows = []
    for trial in short[short["complete"]].itertuples():
        settings = json.loads(trial.settings)
        probe = probe_settings(grid, trial.dataset, trial.method, settings)
        seeds = stage_rows(grid, by_id, trial.dataset, trial.method, 3, [probe])
        done = seeds[seeds["val_hv"].notna()]
        every = len(done) == len(seeds)
        value = float(done["val_hv"].mean()) if every else np.nan
        gain = float(done["gain"].mean()) if every else np.nan
        rows.append(
            {
                "dataset": trial.dataset,
                "method": trial.method,
                "settings": trial.settings,
                "budget_epochs": probe["train.epochs"] // PROBE_FACTOR,
                "probe_epochs": probe["train.epochs"],
                "seeds": " ".join(str(s) for s in sorted(done["seed"])),
                "budget_val_hv": trial.val_hv,
                "probe_val_hv": value,
                "difference": value - trial.val_hv,
                "probe_gain": gain,
                "probe_plateaued": bool(gain < PLATEAU_GAIN) if every else None,
                "probe_settings": json.dumps(probe, sort_keys=True),
                "run_ids": " ".join(seeds["run_id"]),
            }
        )
    return pd.DataFrame(rows, columns=PROBE_COLUMNS)


def probe_display(probes: pd.DataFrame) -> pd.DataFrame:
    """The probes' readable form."""

    def number(value: float, sign: bool = False) -> str:
        return "–" if value != value else (f"{value:+.4f}" if sign else f"{value:.4f}")

    return pd.DataFrame(
        {
            "dataset": probes["dataset"],
            "method": probes["method"],
            "settings": [", ".join(f"{k}={v}" for k, v in json.loads(s).items()) for s in probes["settings"]],
            "epochs": [f"{b} → {p}" for b, p in zip(probes["budget_epochs"], probes["probe_epochs"], strict=True)],
            "validation HV at the budget": [number(v) for v in probes["budget_val_hv"]],
            "at the probe": [number(v) for v in probes["probe_val_hv"]],
            "difference": [number(v, sign=True) for v in probes["difference"]],
            "probe's last-20% gain": [number(v, sign=True) for v in probes["probe_gain"]],
        }
    )


def probe_spec_text(grid: Grid, placement: dict[str, Any], probes: pd.DataFrame, source: str) -> str | None:
    """The sweep spec of the probes (None when no final choice broke the budget rule)."""
    if probes.empty:
        return None
    methods = [m for m in grid.methods if m in set(probes["method"])]
    per_method = {
        probe.method: dict(grid.per_method.get(probe.method, {}))
        | json.loads(probe.probe_settings)
        | {"train.extend_shorter": True}
        for probe in probes.itertuples()
    }
    header = [
        f"The budget rule's probes, written by `python -m bench tune {source}`: each method whose",
        f"selected trial still gained {PLATEAU_GAIN} or more over its last 20% (tables/tuning.md), at its",
        f"selected settings for {PROBE_FACTOR}x the budget's epochs (bench/analysis/budget_probe.py).",
        "A probe whose method's rays ignore the training progress continues from its trial",
        "(train.extend_shorter: the same run, bit for bit, for only the new epochs).",
        "Do not edit: rerun bench tune.",
    ]
    return spec_text(header, grid, placement, methods, list(grid.seeds), per_method)
