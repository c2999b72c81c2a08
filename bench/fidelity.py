"""Lockstep records: what the official code computed, stored as numbers, and how ours is compared.

A lockstep record (``tests/lockstep/<method>.json``) holds, for fixed initial weights and fixed
batches, the official implementation's per-step losses and a parameter checksum after each step.
It is produced by ``python tools/official_lockstep.py --official DIR --method NAME`` from a checkout
of the official repository loaded at run time; no official code is stored here. The initial weights
and batches come from seeded generators on our side, so a test can rebuild them without the official
code and replay the steps with our implementation.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from bench.atomic import read_json, write_json
from bench.spec import DatasetSpec

RECORDS = Path(__file__).resolve().parent.parent / "tests" / "lockstep"
SCHEMA = 1


def checksum(tensors: Iterable[Tensor]) -> dict[str, float]:
    """Order-independent summary of a set of tensors: sum, sum of |x| and sum of x^2 (float64)."""
    total = absolute = squares = torch.zeros((), dtype=torch.float64)
    for t in tensors:
        t = t.detach().double()
        total = total + t.sum()
        absolute = absolute + t.abs().sum()
        squares = squares + t.square().sum()
    return {"sum": float(total), "abs": float(absolute), "sq": float(squares)}


def seeded_batches(
    input_shape: tuple[int, ...], num_classes: tuple[int, ...], batch_size: int, steps: int, seed: int
) -> list[tuple[Tensor, list[Tensor]]]:
    """``steps`` fixed classification batches: inputs ~ U[0, 1), one label tensor per task."""
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(steps):
        x = torch.rand((batch_size, *input_shape), generator=gen)
        ys = [torch.randint(0, c, (batch_size,), generator=gen) for c in num_classes]
        batches.append((x, ys))
    return batches


def spec_batches(spec: DatasetSpec, batch_size: int, steps: int, seed: int) -> list[tuple[Tensor, dict[str, Tensor]]]:
    """:func:`seeded_batches` shaped for ``spec``: its input shape, each objective's class count, and
    the targets keyed by objective name, as the training loop takes them."""
    raw = seeded_batches(spec.input_shape, tuple(o.outputs for o in spec.objectives), batch_size, steps, seed)
    return [(x, dict(zip(spec.objective_names, ys, strict=True))) for x, ys in raw]


def record_path(method: str) -> Path:
    return RECORDS / f"{method}.json"


def write_record(method: str, record: dict[str, Any]) -> Path:
    """Store a record with the schema version; the caller fills ``official`` (repo, commit) and ``steps``."""
    for key in ("official", "produced_by", "setup", "steps"):
        if key not in record:
            raise ValueError(f"lockstep record for {method} lacks {key!r}")
    path = record_path(method)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"schema": SCHEMA, "method": method, **record})
    return path


def load_record(method: str) -> dict[str, Any]:
    record = read_json(record_path(method))
    if record.get("schema") != SCHEMA:
        raise ValueError(f"{record_path(method)}: schema {record.get('schema')!r}, expected {SCHEMA}")
    return record


def assert_close_checksum(ours: dict[str, float], theirs: dict[str, float], rtol: float, what: str) -> None:
    """Raise AssertionError naming the first checksum field that differs by more than ``rtol``."""
    for key, expected in theirs.items():
        got = ours[key]
        if abs(got - expected) > rtol * max(1.0, abs(expected)):
            raise AssertionError(f"{what}: checksum {key} {got!r} != official {expected!r} (rtol {rtol})")


def load_file_module(name: str, path: Path) -> ModuleType:
    """Import the Python file ``path`` as module ``name`` (an official checkout's file, a lockstep
    producer, a dataset's prepare script)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"error: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
