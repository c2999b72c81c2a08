"""Published numbers, stored as data with provenance under ``results/paper/*.csv`` (protocols.md).

Each CSV row is one number: ``source`` (who published it), ``reference`` (paper table or figure,
or repository@commit:path), ``dataset`` (our name), ``method`` (as published), ``seed`` (blank for
a mean over seeds), ``split``, ``ray_index`` (position on a published front; blank for a single
point), ``task`` (our objective name; blank for a whole-front number), ``metric``, ``value`` and,
optionally, ``std`` and ``note``.

Two views for the report: the published points in minimisation form (to draw beside our fronts),
and hypervolumes, either as published (``metric = hypervolume``) or computed by us from published
points against the dataset's fixed reference point (labelled so).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.hypervolume import hypervolume
from bench.core.spec import DatasetSpec

REQUIRED_COLUMNS: tuple[str, ...] = ("source", "reference", "dataset", "method", "seed", "split", "ray_index")
REQUIRED_COLUMNS += ("task", "metric", "value")
DEFAULT_DIRECTORY = Path(__file__).resolve().parents[2] / "results" / "paper"


def load_paper(directory: Path | None = None) -> pd.DataFrame:
    """Every ``*.csv`` under ``directory`` (default: the repository's ``results/paper``), concatenated.
    A missing folder gives an empty table; a file without the required columns is an error."""
    directory = Path(directory) if directory is not None else DEFAULT_DIRECTORY
    frames = []
    for path in sorted(directory.glob("*.csv")) if directory.is_dir() else []:
        frame = pd.read_csv(path, dtype={"task": str, "note": str}, keep_default_na=True)
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; every paper file needs {list(REQUIRED_COLUMNS)}")
        frames.append(frame.assign(file=path.name))
    if not frames:
        return pd.DataFrame(columns=[*REQUIRED_COLUMNS, "std", "note", "file"])
    return pd.concat(frames, ignore_index=True)


def paper_dataset(spec: DatasetSpec) -> str:
    return spec.paper_dataset or spec.name


def paper_points(paper: pd.DataFrame, spec: DatasetSpec, split: str = "test") -> pd.DataFrame:
    """Published per-task points for ``spec``'s hypervolume objectives, in minimisation form: one row
    per (source, method, seed, ray_index) with one column per objective; incomplete points dropped."""
    objectives = spec.hypervolume_objectives
    names = [o.name for o in objectives]
    rows = paper[(paper["dataset"] == paper_dataset(spec)) & (paper["split"] == split) & paper["task"].isin(names)]
    wanted = {(o.name, o.hv_metric) for o in objectives}
    rows = rows[[(t, m) in wanted for t, m in zip(rows["task"], rows["metric"], strict=True)]]
    if rows.empty:
        return pd.DataFrame(columns=["source", "reference", "method", "seed", "ray_index", *names])
    keys = ["source", "reference", "method", "seed", "ray_index"]
    points = rows.assign(seed=rows["seed"].fillna(-1), ray_index=rows["ray_index"].fillna(-1)).pivot_table(
        index=keys, columns="task", values="value", aggfunc="first"
    )
    points = points.reindex(columns=names).dropna().reset_index()
    for o in objectives:
        points[o.name] = [o.metric(o.hv_metric).to_minimization(v) for v in points[o.name]]
    return points


def paper_hypervolumes(paper: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Per published (source, method): hypervolume mean, std and seed count, either as published or
    computed here from the published points (each seed's points are one front) with our reference;
    ``kind`` says whether those points were a front or a single point (blank when published as is)."""
    names = [o.name for o in spec.hypervolume_objectives]
    rows = []
    reported = paper[(paper["dataset"] == paper_dataset(spec)) & (paper["metric"] == "hypervolume")]
    for r in reported.itertuples():
        std = getattr(r, "std", np.nan)
        rows.append(
            {
                "source": r.source,
                "reference": r.reference,
                "method": r.method,
                "hv_mean": float(r.value),
                "hv_std": float(std) if pd.notna(std) else np.nan,
                "n_seeds": np.nan,
                "kind": "",
                "how": "as published",
            }
        )
    points = paper_points(paper, spec)
    for (source, reference, method), group in points.groupby(["source", "reference", "method"], sort=True):
        per_seed = [hypervolume(g[names].to_numpy(float), spec.hv_reference) for _, g in group.groupby("seed")]
        rows.append(
            {
                "source": source,
                "reference": reference,
                "method": method,
                "hv_mean": float(np.mean(per_seed)),
                "hv_std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else np.nan,
                "n_seeds": len(per_seed),
                "kind": "front" if group["ray_index"].nunique() > 1 else "point",
                "how": "computed here from the published points",
            }
        )
    columns = ["source", "reference", "method", "kind", "hv_mean", "hv_std", "n_seeds", "how"]
    return pd.DataFrame(rows, columns=columns)
