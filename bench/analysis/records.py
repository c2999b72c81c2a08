"""Read run records (design.md, "Run record"): every run directory under a folder, finished or not.

A run directory is any folder holding a ``config.json``. A run is *usable* when its status is
COMPLETED and its ``summary.json`` can be read; every other run is kept with the reason, so the
report lists it instead of dropping it silently.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from bench.train.config import ADDED_LATER, identity_of
from bench.train.record import ATTEMPTS, read_status


@dataclasses.dataclass(frozen=True)
class Run:
    """One run directory as the report sees it."""

    directory: Path
    config: dict[str, Any]
    status: str
    summary: dict[str, Any] | None

    @property
    def run_id(self) -> str:
        return self.directory.name

    @property
    def method(self) -> str:
        return str(self.config.get("method", "?"))

    @property
    def dataset(self) -> str:
        return str(self.config.get("dataset", "?"))

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", -1))

    @property
    def usable(self) -> bool:
        return self.status == "COMPLETED" and self.summary is not None

    @property
    def variant(self) -> str:
        """Hash of the resolved config without the seed: runs that differ only by seed share it."""
        rest = {k: v for k, v in identity_of(self.config).items() if k != "seed"}
        return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:10]

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """``metrics.jsonl`` in long format (empty when the run wrote none)."""
        path = self.directory / "metrics.jsonl"
        if not path.is_file():
            return pd.DataFrame()
        return pd.read_json(path, lines=True)


def read_run(directory: Path) -> Run:
    """The record in ``directory``; an unreadable file gives a run whose status says why."""
    directory = Path(directory)
    try:
        config = json.loads((directory / "config.json").read_text())["config"]
        if not isinstance(config, dict) or not all(isinstance(config.get(k), str) for k in ("method", "dataset")):
            raise ValueError("no method and dataset names")
    except (OSError, ValueError, KeyError, TypeError) as err:
        return Run(directory, {}, f"UNREADABLE: config.json ({type(err).__name__}: {err})", None)
    status = read_status(directory) or "NO STATUS (never started or killed before writing one)"
    summary = None
    if status == "COMPLETED":
        try:
            summary = json.loads((directory / "summary.json").read_text())
            if problem := summary_problem(summary):
                raise ValueError(problem)
        except (OSError, ValueError) as err:
            status, summary = f"UNREADABLE: summary.json ({type(err).__name__}: {err})", None
    return Run(directory, config, status, summary)


def summary_problem(summary: Any) -> str | None:
    """What makes ``summary`` unusable by the report (not a dict, no per-ray front of numbers), or None."""
    if not isinstance(summary, dict):
        return f"a {type(summary).__name__}, not a summary"
    front = summary.get("front")
    if not isinstance(front, list) or not front:
        return "no front"
    for entry in front:
        metrics = entry.get("metrics") if isinstance(entry, dict) else None
        if not isinstance(metrics, dict) or not all(
            isinstance(values, dict) and all(isinstance(v, (int, float)) for v in values.values())
            for values in metrics.values()
        ):
            return "a front entry without numeric metrics"
        if not all(math.isfinite(v) for values in metrics.values() for v in values.values()):
            return f"a non-finite metric at ray {entry.get('ray')}"
    return None


def is_kept_attempt(directory: Path) -> bool:
    """True for ``<run>/attempts/<n>``: an earlier attempt kept inside its run's directory."""
    return directory.parent.name == ATTEMPTS and directory.name.isdigit()


def scan(runs: Path) -> list[Run]:
    """Every run directory under ``runs`` (at any depth), sorted by dataset, method, seed, id; the
    earlier attempts a forced rerun keeps (``<run>/attempts/<n>/``) are not runs of their own."""
    runs = Path(runs)
    found = [read_run(path.parent) for path in runs.rglob("config.json") if not is_kept_attempt(path.parent)]
    return sorted(found, key=lambda r: (r.dataset, r.method, r.seed, r.run_id))


def flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"epochs": 10}}`` -> ``{"train.epochs": 10}``."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_config(value, f"{name}."))
        else:
            out[name] = value
    return out


def settable(key: str) -> str:
    """A record's config key as ``--set`` takes it: ``method_hparams.window`` -> ``method.window``."""
    return "method." + key.removeprefix("method_hparams.") if key.startswith("method_hparams.") else key


def variant_settings(runs: list[Run]) -> dict[str, dict[str, Any]]:
    """Per variant: the settings that tell it apart from the other variants its method ran with on the
    same dataset, by the dotted key ``--set`` takes (``train.lr``, ``method.window``); empty for a
    method's only variant."""
    by_method: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for run in runs:
        flat = {k: v for k, v in flat_config(identity_of(run.config)).items() if k != "seed"}
        by_method.setdefault((run.dataset, run.method), {})[run.variant] = flat
    settings: dict[str, dict[str, Any]] = {}
    for variants in by_method.values():
        keys = sorted({k for flat in variants.values() for k in flat})
        differing = [
            k for k in keys if len({json.dumps(flat.get(k, ADDED_LATER.get(k))) for flat in variants.values()}) > 1
        ]
        for variant, flat in variants.items():
            settings[variant] = {settable(k): flat.get(k, ADDED_LATER.get(k)) for k in differing}
    return settings


def variant_labels(runs: list[Run]) -> dict[str, str]:
    """A readable label per variant: the method's name, plus the settings that tell its variants
    apart when one method ran with several configurations on the same dataset."""
    method_of = {run.variant: run.method for run in runs}
    labels = {}
    for variant, settings in variant_settings(runs).items():
        shown = ", ".join(f"{k.removeprefix('method.')}={v}" for k, v in settings.items())
        labels[variant] = f"{method_of[variant]} ({shown})" if shown else method_of[variant]
    return labels
