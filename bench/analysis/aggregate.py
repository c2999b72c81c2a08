"""One row per run, then mean and standard deviation over seeds, with every failed or missing run named.

The hypervolume is recomputed here from each run's per-ray test metrics against the dataset's fixed
reference point (design.md: it is never read back from the record, so a new reference point or
another of the dataset's hypervolume definitions needs no rerun). A run that did not complete keeps its
row, with the reason, and its group says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.records import Run, variant_labels
from bench.core.hypervolume import front_hypervolume
from bench.core.registry import DATASETS, load_all

RUN_COLUMNS = ["dataset", "method", "label", "variant", "seed", "run_id", "status", "usable", "kind", "points"]
RUN_COLUMNS += ["hypervolume", "steps", "train_seconds", "eval_seconds", "wall_seconds", "seconds_per_step"]
RUN_COLUMNS += ["commit", "threads", "device", "resumed"]


def provenance(summary: dict[str, Any]) -> dict[str, Any]:
    """Where a run's numbers come from: the commit and torch threads of the attempt that took step 0,
    the device, and how many times it resumed (each resume's own commit and threads are in its
    ``summary.json``). Records without these keys give blanks."""
    first = summary.get("first_attempt") or {}
    return {
        "commit": first.get("git_sha"),
        "threads": first.get("torch_threads"),
        "device": summary.get("device"),
        "resumed": len(summary.get("resumed") or []),
    }


def run_table(runs: list[Run], hv: str | None = None) -> pd.DataFrame:
    """Every run: its identity, status and, when usable, its test hypervolume and times. ``hv`` names
    the hypervolume (:meth:`bench.core.spec.DatasetSpec.hv_definition`; default: each dataset's default)."""
    load_all()
    labels = variant_labels(runs)
    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "dataset": run.dataset,
            "method": run.method,
            "label": labels.get(run.variant, run.method),
            "variant": run.variant,
            "seed": run.seed,
            "run_id": run.run_id,
            "status": run.status,
            "usable": run.usable,
        }
        if run.usable and run.dataset not in DATASETS:
            row.update(usable=False, status=f"unknown dataset {run.dataset!r}: no reference point")
        elif run.usable:
            summary, spec = run.summary or {}, DATASETS.get(run.dataset)
            row.update(
                kind=summary["kind"],
                points=len(summary["front"]),
                hypervolume=front_hypervolume(summary["front"], spec, spec.hv_definition(hv)),
                steps=summary["steps"],
                train_seconds=summary["train_seconds"],
                eval_seconds=summary["eval_seconds"],
                wall_seconds=summary["wall_seconds"],
                seconds_per_step=summary["seconds_per_step"],
                **provenance(summary),
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def expected_seeds(table: pd.DataFrame, seeds: Iterable[int] | None = None) -> dict[str, list[int]]:
    """Seeds each dataset should have: ``seeds`` when given, else every seed seen on that dataset."""
    if seeds is not None:
        wanted = sorted(set(seeds))
        return {d: wanted for d in table["dataset"].unique()}
    return {d: sorted(set(g["seed"])) for d, g in table.groupby("dataset")}


def seed_summary(table: pd.DataFrame, seeds: Iterable[int] | None = None) -> pd.DataFrame:
    """Per (dataset, label): hypervolume mean, standard deviation (ddof 1) and count over usable
    seeds, the seeds used, the runs that failed (with reasons) and the expected seeds with no run."""
    wanted = expected_seeds(table, seeds)
    rows = []
    for (dataset, label), group in table.groupby(["dataset", "label"], sort=True):
        good = group[group["usable"]].drop_duplicates("seed")
        bad = group[~group["usable"]]
        hv = good["hypervolume"].to_numpy(dtype=float)
        missing = sorted(set(wanted[dataset]) - set(group["seed"]))
        rows.append(
            {
                "dataset": dataset,
                "label": label,
                "method": group["method"].iloc[0],
                "kind": good["kind"].iloc[0] if len(good) else "",
                "hv_mean": float(hv.mean()) if len(hv) else np.nan,
                "hv_std": float(hv.std(ddof=1)) if len(hv) > 1 else np.nan,
                "n_seeds": len(hv),
                "seeds": " ".join(str(s) for s in sorted(good["seed"])),
                "failed": "; ".join(f"seed {r.seed}: {r.status}" for r in bad.itertuples()),
                "missing_seeds": " ".join(str(s) for s in missing),
                "seconds_per_step": float(good["seconds_per_step"].mean()) if len(good) else np.nan,
                "train_seconds": float(good["train_seconds"].mean()) if len(good) else np.nan,
                "wall_seconds": float(good["wall_seconds"].mean()) if len(good) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def mean_pm_std(mean: float, std: float, n: int, digits: int = 4) -> str:
    """``0.8386 ± 0.0021 (3)``; one seed shows no spread, no seed shows a dash."""
    if n == 0 or np.isnan(mean):
        return "–"
    if n == 1 or np.isnan(std):
        return f"{mean:.{digits}f} (1)"
    return f"{mean:.{digits}f} ± {std:.{digits}f} ({n})"


def cells(summary: pd.DataFrame, column: str, digits: int) -> list[str]:
    """``mean ± std (n)`` strings of ``column`` from its ``_mean`` and ``_std`` columns."""
    means, stds = summary[f"{column}_mean"], summary[f"{column}_std"]
    return [mean_pm_std(m, s, n, digits) for m, s, n in zip(means, stds, summary["n_seeds"], strict=True)]
