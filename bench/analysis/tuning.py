"""The ``tuned`` protocol's selection (spec/evaluation.md, "Tuning without peeking").

Per (dataset, method), the trial configuration with the highest *validation* hypervolume, where a
run's validation HV is the mean of its evaluations over the last :data:`LAST_FRACTION` of training
(one epoch's value moves by about 0.005 on MultiFashion's 2,000-pair validation subset), averaged over
the tuning seeds. Only the validation curves are read (:func:`bench.analysis.convergence.hypervolume_curve`:
the ``val`` rows of ``metrics.jsonl``), whatever a run's status or summary say: its test front, its test
rows and a failure on the test split never reach a choice.

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
from bench.analysis.records import Run
from bench.core.registry import DATASETS, load_all
from bench.train.grid import Grid

PLATEAU_GAIN = 0.003
"""Largest validation-HV gain over the last :data:`LAST_FRACTION` of training of a plateaued run."""
LAST_FRACTION = 0.2

STAGE_TWO_KNOBS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "phn-ls": ("method.alpha", (0.2, 0.5)),
    "phn-epo": ("method.alpha", (0.2, 0.5)),
    "cosmos": ("method.reg_coefficient", (2.0, 32.0)),
    "palora": ("method.window", (3, 4)),
    "padora": ("method.window", (3, 4)),
    "pamal": ("method.window", (2, 3)),
}
"""Stage two for the methods whose papers tune a knob of their own: two more values of it (the preset's
is stage one's) at the learning rate stage one selected. PHN's Dirichlet alpha (0.2 in Navon et al.
2021), COSMOS's cosine penalty (Ruchte and Grabocka 2021), the ray window of PaLoRA, PaDoRA and PaMaL."""
LR_REFINEMENT = (0.5, 2.0)
"""Stage two for every other method, so each method gets the same five trials: the selected learning
rate halved and doubled."""

TRIAL_COLUMNS = ["dataset", "method", "stage", "settings", "seed", "run_id", "status", "outcome", "evaluations"]
TRIAL_COLUMNS += ["final_step", "val_hv", "gain"]


def stage_two(method: str, lr: float) -> list[dict[str, Any]]:
    """A method's two stage-two trials around stage one's learning rate ``lr``."""
    if method in STAGE_TWO_KNOBS:
        key, values = STAGE_TWO_KNOBS[method]
        return [{"train.lr": lr, key: value} for value in values]
    return [{"train.lr": float(f"{lr * factor:.3g}")} for factor in LR_REFINEMENT]


def is_divergence(status: str) -> bool:
    """A run stopped by a non-finite training loss or validation metric: an outcome of its setting. A
    non-finite *test* metric is not one (the test split never reaches the selection)."""
    return "diverged" in status and "non-finite test" not in status


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


def trial_row(run: Run | None, identity: dict[str, Any]) -> dict[str, Any]:
    """One trial run's row from its validation curve alone (``metrics.jsonl``, whatever its status or
    summary say): the value and gain (:func:`last_gain`) once the curve reaches the run's last epoch;
    ``outcome`` when it does, or when training or validation diverged."""
    row = {**identity, "status": "NOT RUN", "outcome": False, "evaluations": 0}
    row |= {"final_step": np.nan, "val_hv": np.nan, "gain": np.nan}
    if run is None:
        return row
    curve = hypervolume_curve(run) if run.dataset in DATASETS else pd.DataFrame()
    epochs = int(run.config.get("train", {}).get("epochs", -1))
    complete = not curve.empty and int(curve["epoch"].max()) == epochs
    row.update(status=run.status, outcome=complete or is_divergence(run.status), evaluations=len(curve))
    if complete:
        value, gain = last_gain(curve)
        row.update(final_step=float(curve["step"].max()), val_hv=value, gain=gain)
    return row


def stage_rows(
    grid: Grid, by_id: dict[str, Run], dataset: str, method: str, stage: int, trials: list[dict[str, Any]]
) -> pd.DataFrame:
    """The rows of one stage's trials of a method, every seed."""
    rows = []
    for trial in trials:
        for seed in grid.seeds:
            run_id = grid.config(method, dataset, seed, trial).run_id()
            identity = {"dataset": dataset, "method": method, "stage": stage}
            identity |= {"settings": json.dumps(trial, sort_keys=True), "seed": seed, "run_id": run_id}
            rows.append(trial_row(by_id.get(run_id), identity))
    return pd.DataFrame(rows, columns=TRIAL_COLUMNS)


def trial_table(runs: list[Run], grid: Grid) -> pd.DataFrame:
    """One row per (trial, seed) the tuning asks for: stage one's, the tuning spec's ``grid`` for every
    method, and stage two's (:func:`stage_two`) for each method whose stage one has an outcome on every
    trial. Runs are found by the run ids the sweep gives them."""
    load_all()
    by_id = {run.run_id: run for run in runs}
    parts = []
    for dataset in grid.datasets:
        for method in grid.methods:
            first = stage_rows(grid, by_id, dataset, method, 1, [dict(v) for v in grid.variants_of(method)])
            parts.append(first)
            if first["outcome"].all() and first["val_hv"].notna().any():
                best = json.loads(first.groupby("settings", sort=False)["val_hv"].mean().idxmax())
                lr = grid.config(method, dataset, grid.seeds[0], best).train.lr
                parts.append(stage_rows(grid, by_id, dataset, method, 2, stage_two(method, lr)))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=TRIAL_COLUMNS)


def select(trials: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, method, trial): mean validation HV and gain over the seeds that completed, and
    ``selected`` on each method's best. ``complete``: both stages have an outcome on every trial, so the
    choice is final; otherwise it is provisional."""
    rows = []
    for (dataset, method), group in trials.groupby(["dataset", "method"], sort=False):
        complete = bool(group["outcome"].all()) and set(group["stage"]) == {1, 2}
        for (stage, settings), trial in group.groupby(["stage", "settings"], sort=False):
            done = trial[trial["val_hv"].notna()]
            every = len(done) == len(trial)  # a value needs every seed: one that diverged gives none
            rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "stage": stage,
                    "settings": settings,
                    "seeds": " ".join(str(s) for s in sorted(done["seed"])),
                    "val_hv": float(done["val_hv"].mean()) if every else np.nan,
                    "gain": float(done["gain"].mean()) if every else np.nan,
                    "not_usable": "; ".join(
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


def budget_violations(selection: pd.DataFrame) -> pd.DataFrame:
    """The selected trials (final or provisional) that had not plateaued: the budget rule asks for a
    budget under which every method's selected configuration has."""
    chosen = selection[selection["selected"]]
    return chosen[chosen["gain"].notna() & ~chosen["plateaued"]]


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
            "stage": selection["stage"],
            "settings": [shown(s) for s in selection["settings"]],
            "seeds": selection["seeds"],
            "validation HV": [f"{v:.4f}" if v == v else "–" for v in selection["val_hv"]],
            "last-20% gain": [f"{g:+.4f}" if g == g else "–" for g in selection["gain"]],
            "plateaued": [
                "–" if g != g else ("yes" if p else "no")
                for g, p in zip(selection["gain"], selection["plateaued"], strict=True)
            ],
            "selected": [
                "yes" if s and c else ("provisional" if s else "")
                for s, c in zip(selection["selected"], selection["complete"], strict=True)
            ],
        }
    )


def toml_value(value: Any) -> str:
    """A TOML scalar, or an inline table of scalars, from JSON's spelling (TOML shares it for these)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def spec_text(
    header: list[str],
    grid: Grid,
    placement: dict[str, Any],
    methods: list[str],
    seeds: list[int],
    per_method: dict[str, dict[str, Any]],
) -> str:
    """A sweep spec over the tuning spec's ``grid`` (its datasets and ``[set]``) and ``placement`` (its
    ``[cluster]`` and ``[run]`` tables as written), for ``methods`` and ``seeds``, each method with its
    ``[per_method]`` table (settings, and ``variants`` where a method has trials of its own)."""
    lines = [*(f"# {line}" for line in header), "[grid]", f"methods = {json.dumps(methods)}"]
    lines += [f"datasets = {json.dumps(list(grid.datasets))}", f"seeds = {json.dumps(seeds)}", "", "[set]"]
    lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in grid.settings.items()]
    for table in ("cluster", "run"):
        if placement.get(table):
            lines += ["", f"[{table}]", *(f"{k} = {toml_value(v)}" for k, v in placement[table].items())]
    for method in methods:
        if per_method.get(method):
            lines += ["", f"[per_method.{json.dumps(method)}]"]
            for key, value in per_method[method].items():
                shown = "[" + ", ".join(map(toml_value, value)) + "]" if key == "variants" else toml_value(value)
                lines.append(f"{json.dumps(key) if key != 'variants' else key} = {shown}")
    return "\n".join(lines) + "\n"


def stage_two_spec_text(grid: Grid, placement: dict[str, Any], trials: pd.DataFrame, source: str) -> str | None:
    """The sweep spec of stage two: each method whose stage one is done, with its two stage-two trials
    as its own variants (None while no method's stage one is done)."""
    second = trials[trials["stage"] == 2]
    methods = [m for m in grid.methods if m in set(second["method"])]
    if not methods:
        return None
    per_method = {
        m: dict(grid.per_method.get(m, {}))
        | {"variants": [json.loads(t) for t in dict.fromkeys(second.loc[second["method"] == m, "settings"])]}
        for m in methods
    }
    header = [
        f"Stage two of the `tuned` protocol, written by `python -m bench tune {source}`: at the learning",
        "rate stage one selected on validation, two values of a method's own knob, or that rate halved",
        "and doubled (bench/analysis/tuning.py). Do not edit: rerun bench tune.",
    ]
    return spec_text(header, grid, placement, methods, list(grid.seeds), per_method)


def tuned_spec_text(
    grid: Grid, placement: dict[str, Any], selection: pd.DataFrame, seeds: list[int], source: str
) -> str:
    """A sweep spec (TOML) of the ``tuned`` grid: the tuning spec's ``grid`` with each method whose choice
    is final at its selected settings (``[per_method.<name>]``), on ``seeds``."""
    chosen = selected_settings(selection)
    methods = [m for m in grid.methods if m in chosen]
    header = [
        f"The `tuned` grid, written by `python -m bench tune {source}` from validation only:",
        "each method at the trial with the highest validation hypervolume over the last 20% of training",
        "(tables/tuning.md). Do not edit: rerun bench tune.",
    ]
    per_method = {m: dict(grid.per_method.get(m, {})) | chosen[m] for m in methods}
    return spec_text(header, grid, placement, methods, seeds, per_method)
