"""Run records: one directory per run, every file written atomically (design.md, "Run record").

``config.json`` (resolved config, git SHA, package versions, device), ``metrics.jsonl`` (long
format: step, epoch, split, ray, objective, metric, value, time; ``split`` ``train`` rows hold the
training losses, without a ray), ``summary.json`` and ``status`` (RUNNING, COMPLETED or FAILED:
reason). A completed record trained again on request is kept whole under ``attempts/<n>/`` of the
same directory (:func:`keep_completed_attempt`). ``tensorboard/`` holds the same scalars for
TensorBoard when the run asks for it (:class:`TensorBoardSink`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.core import atomic
from bench.core.errors import UserError

SCHEMA_VERSION = 1
ATTEMPTS = "attempts"
"""The folder of a run directory that holds earlier, completed attempts (never scanned as runs)."""
PACKAGES = ("torch", "torchvision", "numpy", "pandas", "pymoo", "mlxtend")
METRICS = "metrics.jsonl"
TENSORBOARD = "tensorboard"
"""The folder of a run directory that :class:`TensorBoardSink` writes."""
LOG_SINKS = ("tensorboard",)
"""What ``bench run --log`` accepts, besides metrics.jsonl, which every run writes."""


def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def module_sources(modules: dict[str, str]) -> dict[str, dict[str, str]]:
    """For each role (``method``, ``dataset``, ``backbone``) the module that registers it, its file and
    the SHA-256 of that file: the record says which code made it, also for a plug-in outside the
    checkout that git does not see, and a sweep can tell a run made by other code."""
    out = {}
    for role, module in modules.items():
        spec = importlib.util.find_spec(module) if module else None
        path = Path(spec.origin) if spec is not None and spec.origin else None
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path is not None and path.is_file() else ""
        out[role] = {"module": module, "file": str(path or ""), "sha256": digest}
    return out


def recorded_sources(directory: Path) -> dict[str, Any]:
    """The ``source`` of a run record's ``config.json`` (empty where the record holds none)."""
    path = Path(directory) / "config.json"
    try:
        return json.loads(path.read_text()).get("source") or {}
    except (OSError, ValueError, AttributeError):
        return {}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


class RunRecord:
    """Writer for one run directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._metric_lines: list[str] = []
        self._unwritten = False

    def write_config(self, config: dict[str, Any], device: str, source: dict[str, Any] | None = None) -> None:
        """``source``: :func:`module_sources` of the method, dataset and backbone modules the run uses."""
        atomic.write_json(
            self.directory / "config.json",
            {
                "schema_version": SCHEMA_VERSION,
                "config": config,
                "git_sha": git_sha(),
                "packages": package_versions(),
                "device": device,
                "argv": sys.argv,
                "source": source or {},
            },
        )

    def add_metrics(self, rows: list[dict[str, Any]], *, defer: bool = False, **common: Any) -> None:
        """Append rows (each merged with ``common``) and rewrite ``metrics.jsonl`` atomically; with
        ``defer`` the file is rewritten only at the next :meth:`flush` or undeferred call."""
        self._metric_lines.extend(json.dumps({**common, **row}) for row in rows)
        self._unwritten = True
        if not defer:
            self.flush()

    def flush(self) -> None:
        """Rewrite ``metrics.jsonl`` with every row, if some are not written yet."""
        if self._unwritten:
            atomic.write_text(self.directory / METRICS, "\n".join(self._metric_lines) + "\n")
        self._unwritten = False

    @property
    def metric_count(self) -> int:
        return len(self._metric_lines)

    def keep_metrics(self, count: int) -> None:
        """Resume: take back the first ``count`` rows already on disk (those a checkpoint covers);
        later rows, written after that checkpoint, are dropped and will be written again."""
        path = self.directory / METRICS
        lines = path.read_text().splitlines() if path.is_file() else []
        if len(lines) < count:
            raise ValueError(f"{path} has {len(lines)} rows, the checkpoint expects at least {count}")
        self._metric_lines, self._unwritten = lines[:count], False
        atomic.write_text(path, "".join(line + "\n" for line in self._metric_lines))

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic.write_json(self.directory / "summary.json", {"schema_version": SCHEMA_VERSION, **summary})

    def set_status(self, status: str) -> None:
        atomic.write_text(self.directory / "status", status.strip() + "\n")


def read_status(directory: Path) -> str | None:
    path = Path(directory) / "status"
    return path.read_text().strip() if path.is_file() else None


def completed_summary(directory: Path) -> dict[str, Any] | None:
    """The summary of a COMPLETED run, or None when the run is not (yet) completed."""
    path = Path(directory) / "summary.json"
    if read_status(directory) != "COMPLETED" or not path.is_file():
        return None
    return json.loads(path.read_text())


def keep_completed_attempt(directory: Path, keep: tuple[str, ...] = ()) -> Path:
    """Move every file of a run directory except ``keep`` (and earlier attempts) into the next free
    ``attempts/<n>/`` (n = 1, 2, ...), so that training the run again loses nothing; returns it."""
    directory = Path(directory)
    n = 1
    while (directory / ATTEMPTS / str(n)).exists():
        n += 1
    target = directory / ATTEMPTS / str(n)
    target.mkdir(parents=True)
    for path in directory.iterdir():
        if path.name not in (ATTEMPTS, *keep):
            os.replace(path, target / path.name)
    return target


def last_metric_row(directory: Path, tail_bytes: int = 16384) -> dict[str, Any] | None:
    """The last row of a run's ``metrics.jsonl`` (reading only its end), or None without one."""
    try:
        with open(Path(directory) / METRICS, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - tail_bytes))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "step" in row:
            return row
    return None


def check_log_sink(name: str) -> None:
    """A :class:`UserError` unless the log sink ``name`` ('' for none) can be written here."""
    if not name:
        return
    if name not in LOG_SINKS:
        raise UserError(f"unknown log {name!r}; valid: {', '.join(LOG_SINKS)}")
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        raise UserError(
            "--log tensorboard needs the tensorboard package, which is not installed: pip install tensorboard"
        ) from None


class TensorBoardSink:
    """Scalars for TensorBoard under ``<run>/tensorboard/`` (``torch.utils.tensorboard``). Events at
    or after ``purge_step`` that an interrupted attempt wrote are hidden, as a resumed run writes them again."""

    def __init__(self, directory: Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(Path(directory) / TENSORBOARD), purge_step=purge_step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.writer.close()
