"""The archive of a report's run records (``results/``): every table and figure regenerates from it
alone, without ``runs/``, and a referee can audit every front point.

- ``fronts.csv``: one row per (dataset, protocol, method, seed, ray) of every usable run: its identity,
  label, commit, ``ray_index``, one ``ray_<task>`` column per ray weight and one ``<task>_<metric>``
  column per test metric (blank where the run's dataset has no such task or metric). Floats are written
  in their shortest exact form and read back bit for bit.
- ``runs.jsonl``: one line per run, usable or not: run_id, protocol, status, config and summary. There a
  summary's ``front`` holds no number, only the file that does and the front's layout (its tasks in ray
  order, each with its metrics in the order the run wrote them), so ``fronts.csv`` is the one source of
  the fronts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from bench.analysis.records import Run, variant_labels
from bench.core import atomic
from bench.core.errors import ConfigError

FRONTS = "fronts.csv"
RUNS = "runs.jsonl"
WRITE_IT = "write it with `python -m bench report --runs DIR --out results/`"
IDENTITY = ["dataset", "protocol", "method", "label", "seed", "run_id", "commit", "ray_index"]
Layout = dict[str, list[str]]


def value_columns(layout: Layout) -> list[str]:
    """The ``ray_<task>`` columns of a layout, then its ``<task>_<metric>`` columns."""
    return [f"ray_{t}" for t in layout] + [f"{t}_{m}" for t, metrics in layout.items() for m in metrics]


def layout_of(run: Run) -> Layout:
    """The tasks of a usable run's front in ray order, each with its metric names in written order."""
    front = (run.summary or {})["front"]
    layout = {task: list(values) for task, values in front[0]["metrics"].items()}
    columns = value_columns(layout)
    if len(set(columns) | set(IDENTITY)) != len(columns) + len(IDENTITY):
        raise ValueError(f"run {run.run_id}: its task and metric names give clashing columns {columns}")
    for entry in front:
        if len(entry["ray"]) != len(layout) or {t: list(v) for t, v in entry["metrics"].items()} != layout:
            raise ValueError(f"run {run.run_id}: front entries differ in rays, tasks or metrics")
    return layout


def front_rows(run: Run, layout: Layout, identity: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per ray of a usable run's front."""
    return [
        {
            **identity,
            "ray_index": k,
            **{f"ray_{t}": w for t, w in zip(layout, entry["ray"], strict=True)},
            **{f"{t}_{m}": entry["metrics"][t][m] for t, metrics in layout.items() for m in metrics},
        }
        for k, entry in enumerate((run.summary or {})["front"])
    ]


def fronts_and_lines(runs: list[Run], protocol_of: Callable[[Run], str]) -> tuple[pd.DataFrame, list[str]]:
    """``fronts.csv`` as a frame and the lines of ``runs.jsonl``; ``protocol_of`` names each run's
    protocol."""
    labels = variant_labels(runs)
    rows, lines = [], []
    rays: dict[str, None] = {}  # the column names, in first-seen order
    values: dict[str, None] = {}
    for run in runs:
        summary, protocol = run.summary, protocol_of(run)
        if run.usable and summary is not None:
            layout = layout_of(run)
            rays |= {f"ray_{t}": None for t in layout}
            values |= dict.fromkeys(value_columns(layout)[len(layout) :])
            commit = (summary.get("first_attempt") or {}).get("git_sha") or ""
            identity: dict[str, Any] = {"dataset": run.dataset, "protocol": protocol, "method": run.method}
            identity |= {"label": labels[run.variant], "seed": run.seed, "run_id": run.run_id, "commit": commit}
            rows += front_rows(run, layout, identity)
            summary = {**summary, "front": {"file": FRONTS, "tasks": layout}}
        line = {"run_id": run.run_id, "protocol": protocol, "status": run.status, "config": run.config}
        lines.append(json.dumps(line | {"summary": summary}) + "\n")
    return pd.DataFrame(rows, columns=[*IDENTITY, *rays, *values]), lines


def write_archive(fronts: pd.DataFrame, lines: list[str], folder: Path) -> list[Path]:
    """``folder/fronts.csv`` and ``folder/runs.jsonl`` (:func:`fronts_and_lines`), each written atomically."""
    folder = Path(folder)
    atomic.write_text(folder / FRONTS, fronts.to_csv(index=False))
    atomic.write_text(folder / RUNS, "".join(lines))
    return [folder / FRONTS, folder / RUNS]


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The records of ``runs.jsonl``, each checked: a run id, a protocol, a status, a config and a
    summary (or null)."""
    if not path.is_file():
        raise ConfigError(f"{path} not found: the archive lists its runs there; {WRITE_IT}")
    lines = []
    for n, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError as err:
            raise ConfigError(f"{path} line {n} is not JSON ({err}); {WRITE_IT} again") from None
        if not (
            isinstance(line, dict)
            and all(isinstance(line.get(key), str) for key in ("run_id", "protocol", "status"))
            and isinstance(line.get("config"), dict)
            and (line.get("summary") is None or isinstance(line["summary"], dict))
            and "summary" in line
        ):
            raise ConfigError(
                f"{path} line {n} is not a run's record (run_id, protocol, status, config, summary); {WRITE_IT} again"
            )
        lines.append(line)
    return lines


def read_protocols(folder: Path) -> dict[str, str]:
    """Each archived run's protocol as it was recorded when the archive was written."""
    return {line["run_id"]: line["protocol"] for line in read_lines(Path(folder) / RUNS)}


def read_fronts(path: Path) -> pd.DataFrame:
    """``fronts.csv`` with blank cells as NaN and every other text kept as written."""
    if not path.is_file():
        raise ConfigError(f"{path} not found: the archive keeps every front point there; {WRITE_IT}")
    fronts = pd.read_csv(path, dtype={"run_id": str}, keep_default_na=False, na_values=[""])
    if absent := [column for column in IDENTITY if column not in fronts.columns]:
        raise ConfigError(f"{path} has no column {', '.join(absent)}; {WRITE_IT} again")
    return fronts


def rebuild_front(rows: pd.DataFrame, layout: Layout, where: str) -> list[dict[str, Any]]:
    """A run's front, as the run wrote it, from its rows of ``fronts.csv``."""
    rows = rows.sort_values("ray_index")
    columns = value_columns(layout)
    if not len(rows) or rows["ray_index"].tolist() != list(range(len(rows))):
        raise ConfigError(f"{where}: rays {rows['ray_index'].tolist()}, expected 0 to n-1; {WRITE_IT} again")
    if not set(columns) <= set(rows.columns) or rows[columns].isna().any(axis=None):
        raise ConfigError(f"{where}: a blank or missing cell among {columns}; {WRITE_IT} again")
    return [
        {
            "ray": [float(row[f"ray_{t}"]) for t in layout],
            "metrics": {t: {m: float(row[f"{t}_{m}"]) for m in metrics} for t, metrics in layout.items()},
        }
        for row in rows.to_dict("records")
    ]


def read_archive(folder: Path) -> list[Run]:
    """The runs of an archive, in the order written, with their fronts back in their summaries; each
    run's ``directory`` is ``folder/archive/<run_id>``, which holds nothing (no ``metrics.jsonl``)."""
    folder = Path(folder)
    lines, fronts = read_lines(folder / RUNS), read_fronts(folder / FRONTS)
    groups = {str(run_id): rows for run_id, rows in fronts.groupby("run_id", sort=False)}
    pointed = {line["run_id"] for line in lines if isinstance((line["summary"] or {}).get("front"), dict)}
    if stray := sorted(set(groups) - pointed):
        raise ConfigError(f"{folder / FRONTS} has rows of runs {folder / RUNS} has no front for: {stray}")
    runs = []
    for line in lines:
        summary = line["summary"]
        if line["run_id"] in pointed:
            where = f"{folder / FRONTS}, run {line['run_id']}"
            tasks = summary["front"].get("tasks")
            if not isinstance(tasks, dict) or not all(isinstance(m, list) for m in tasks.values()):
                raise ConfigError(f"{folder / RUNS}, run {line['run_id']}: its front names no tasks; {WRITE_IT} again")
            rows = groups.get(line["run_id"], fronts.iloc[:0])
            summary = {**summary, "front": rebuild_front(rows, tasks, where)}
        runs.append(Run(folder / "archive" / line["run_id"], line["config"], line["status"], summary))
    return runs
