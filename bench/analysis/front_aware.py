"""Per run, the metrics that see a whole front (:mod:`bench.analysis.hv_variants`,
:mod:`bench.analysis.preference`), read from the run records' test fronts.

The single-task ends are the points, at one-hot rays, of the runs of ``reference_method`` (LS by
default: its members at e_k are models trained for task k alone), pooled over seeds. From them come
the ideal point and nadir of the data-driven reference, and the single-task error of each task for
delta-p (its mean over seeds). Without such runs those columns are NaN and the note says why.
Controllability and alignment are computed for ``front`` runs only: a single-point method's rays
are not preferences.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis import hv_variants as hv
from bench.analysis import preference as pref
from bench.analysis.aggregate import cells
from bench.analysis.front_metrics import front_metric_summary
from bench.analysis.records import Run, variant_labels
from bench.analysis.tables import markdown, write_table
from bench.core.hypervolume import hypervolume, minimization_points
from bench.core.registry import DATASETS
from bench.core.spec import DatasetSpec

REFERENCE_METHOD = "ls"
COLUMNS = {
    "hv": "HV (fixed reference)",
    "hv_normalised": "normalised HV (data-driven reference)",
    "hv_loss": "loss HV (2, 2)",
    "hv_gain": "HV gain over best point",
    "delta_p_best": "Δp best ray %",
    "delta_p_mean": "Δp mean over rays %",
}
"""Per-run columns shown in the report, with their titles (controllability and alignment follow)."""


def one_hot_task(ray: list[float]) -> int | None:
    """k where ``ray`` is e_k, else None."""
    nonzero = [k for k, w in enumerate(ray) if w != 0.0]
    return nonzero[0] if len(nonzero) == 1 and ray[nonzero[0]] == 1.0 else None


@dataclasses.dataclass(frozen=True)
class SingleTaskModels:
    """What the single-task ends give every run of a dataset: the box of the data-driven reference
    and each task's single-task error (mean over the ends of that task)."""

    ends: int
    ideal: np.ndarray
    reference: np.ndarray
    errors: np.ndarray


def single_task_models(
    runs: list[Run], spec: DatasetSpec, reference_method: str = REFERENCE_METHOD
) -> SingleTaskModels | None:
    """From the minimisation-form points of ``reference_method``'s usable runs at one-hot rays,
    pooled over seeds; None without such points."""
    points, tasks = [], []
    for run in runs:
        if run.usable and run.summary is not None and run.dataset == spec.name and run.method == reference_method:
            for entry, point in zip(run.summary["front"], minimization_points(run.summary["front"], spec), strict=True):
                task = one_hot_task(entry["ray"])
                if task is not None:
                    points.append(point)
                    tasks.append(task)
    if not points:
        return None
    ends, of_task = np.asarray(points, dtype=float), np.asarray(tasks)
    ideal, nadir = hv.single_task_box(ends)
    errors = [ends[of_task == k, k].mean() if (of_task == k).any() else math.nan for k in range(ends.shape[1])]
    return SingleTaskModels(len(ends), ideal, hv.data_driven_reference(ideal, nadir), np.asarray(errors))


def losses_of(front: list[dict[str, Any]], spec: DatasetSpec) -> np.ndarray | None:
    """[N, T] per-task test losses of a front; None unless every objective records a ``loss``."""
    names = [o.name for o in spec.objectives]
    if any("loss" not in front[0]["metrics"][name] for name in names):
        return None
    return np.asarray([[entry["metrics"][name]["loss"] for name in names] for entry in front], dtype=float)


def run_metrics(run: Run, spec: DatasetSpec, single: SingleTaskModels | None) -> dict[str, float]:
    """Every front-aware metric of one run (see the module docstring)."""
    front = run.summary["front"] if run.summary is not None else []
    points = minimization_points(front, spec)
    rays = np.asarray([entry["ray"] for entry in front], dtype=float)
    reference = np.asarray(spec.hv_default.reference, dtype=float)
    out = {"hv": hypervolume(points, reference), "hv_gain": hv.hv_gain_over_best_point(points, reference)}
    losses = losses_of(front, spec)
    out["hv_loss"] = hv.loss_hypervolume(losses) if losses is not None and spec.num_tasks == 2 else math.nan
    out["hv_normalised"] = out["delta_p_best"] = out["delta_p_mean"] = math.nan
    if single is not None and points.shape[1] == len(single.ideal):
        out["hv_normalised"] = hv.normalised_hypervolume(points, single.ideal, single.reference)
        if np.all(single.errors > 0):  # NaN (a task without its end) compares False
            deltas = pref.delta_p(points, single.errors, np.zeros(len(single.errors), dtype=bool))
            out["delta_p_best"], out["delta_p_mean"] = float(deltas.max()), float(deltas.mean())
    is_front = run.summary is not None and run.summary.get("kind") == "front" and len(rays) > 1
    if is_front and points.shape[1] == rays.shape[1]:
        out |= pref.controllability(rays, points) | pref.alignment(rays, points)
    return out


def front_aware_table(
    runs: list[Run], spec: DatasetSpec, reference_method: str = REFERENCE_METHOD
) -> tuple[pd.DataFrame, str]:
    """One row per usable run of ``spec`` (label, kind, seed, every metric), and a line saying where
    the single-task ends came from."""
    single = single_task_models(runs, spec, reference_method)
    labels = variant_labels(runs)
    rows = [
        {"label": labels[run.variant], "kind": run.summary["kind"], "seed": run.seed, **run_metrics(run, spec, single)}
        for run in runs
        if run.usable and run.summary is not None and run.dataset == spec.name
    ]
    if single is None:
        note = f"{spec.name}: no {reference_method} run with one-hot rays, so no normalised HV and no Δp"
    else:
        note = (
            f"{spec.name}: single-task ends from {single.ends} one-hot {reference_method} members; ideal "
            f"{np.round(single.ideal, 4).tolist()}, data-driven reference {np.round(single.reference, 4).tolist()} "
            f"(nadir + {hv.DEFAULT_MARGIN} × (nadir − ideal))"
        )
    return pd.DataFrame(rows), note


DIGITS = {"delta_p_best": 2, "delta_p_mean": 2, "angle": 1, "pbi": 3}
"""Digits shown per column (others: 4)."""


def front_aware_section(runs: list[Run], datasets: list[str], tables_dir: Path) -> tuple[list[Path], list[str]]:
    """``tables/front-aware.{csv,md,tex}`` (per run in the CSV, mean ± std over seeds in the others) and
    the REPORT.md section that defines every column; nothing without usable runs."""
    per_run, displays, notes = [], [], []
    for dataset in datasets:
        if dataset not in DATASETS:
            continue
        table, note = front_aware_table(runs, DATASETS.get(dataset))
        if table.empty:
            continue
        per_run.append(table.assign(dataset=dataset))
        notes.append(note)
        summary = front_metric_summary(table)
        metric_columns = [c for c in table.columns if c not in ("label", "kind", "seed")]
        display = pd.DataFrame({"dataset": dataset, "method": summary["label"], "kind": summary["kind"]})
        for column in metric_columns:
            display[COLUMNS.get(column, column)] = cells(summary, column, DIGITS.get(column, 4))
        displays.append(display.sort_values(["kind", "method"]))
    if not per_run:
        return [], []
    raw = pd.concat(per_run, ignore_index=True)
    shown = pd.concat(displays, ignore_index=True).fillna("–")
    caption = "Front-aware metrics per method, mean ± std over seeds (number of seeds)"
    files = write_table(raw, shown, tables_dir, "front-aware", caption)
    lines = [
        "## Front-aware metrics",
        "",
        "Beside HV at the fixed reference, on the same test fronts in minimisation form: normalised HV, the "
        "share of the box between the ideal point and a data-driven reference (the nadir of the single-task "
        f"ends plus {hv.DEFAULT_MARGIN} of the box) that the front dominates (above 1 where a front beats "
        "the single-task ends); loss HV, on the per-task test losses against (2, 2) as PHN and COSMOS report "
        "it; HV gain over best point, HV(front) − HV(its best point alone), 0 for a collapsed front; Δp, the "
        "mean relative error difference to the single-task models in percent (positive is better), for the "
        "best ray and over all rays; rho_k, Spearman's correlation of λ_k with task k's error along the ray "
        "grid (−1 is a perfectly controllable front; NaN where the errors do not move; near +1 the ray "
        "names the direction of the losses instead, as COSMOS's cosine penalty rewards, and the front is "
        "traced in the opposite order); violations_k, the "
        "share of neighbouring rays where more weight on task k gives a higher task-k error; pbi and angle, "
        "the PBI value (θ = 5) and angle in degrees of each point against its ray's direction 1/λ, over "
        "the rays without a zero weight. Single-task ends:",
        "",
        *[f"- {note}" for note in notes],
        "",
        markdown(shown),
    ]
    return files, lines
