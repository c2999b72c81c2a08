"""Lockstep records: what the official code computed, stored as numbers, and how ours is compared.

A lockstep record (``tests/lockstep/<method>.json``) holds, for fixed initial weights and fixed
batches, the official implementation's per-step losses and a parameter checksum after each step.
It is produced by ``python tools/official_lockstep.py --official DIR --method NAME`` from a checkout
of the official repository loaded at run time; no official code is stored here. The initial weights
and batches come from seeded generators on our side, so a test can rebuild them without the official
code and replay the steps with our implementation.

Both sides run in float64 (:func:`lockstep_precision`): the official code builds its modules and takes
its steps under ``torch.set_default_dtype(torch.float64)``, and so does the replay. In float32 the
rounding of one machine's kernels (thread count, AVX2 against AVX-512) reached 1.4e-5 relative after
a few Adam steps, as large as the tolerance; in float64 it stays many orders below any logic change.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from bench.core.atomic import read_json, write_json
from bench.core.spec import DatasetSpec

RECORDS = Path(__file__).resolve().parents[2] / "tests" / "lockstep"
SCHEMA = 2
"""2: recorded and replayed in float64 (1: float32)."""
DTYPE = torch.float64
"""The default dtype of both sides of every lockstep: models, batches, rays and optimizer state."""


@contextlib.contextmanager
def lockstep_precision() -> Iterator[None]:
    """Run the block with :data:`DTYPE` as torch's default dtype, restoring the previous one after."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(DTYPE)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


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
    write_json(path, {"schema": SCHEMA, "method": method, "dtype": str(DTYPE).removeprefix("torch."), **record})
    return path


def load_record(method: str) -> dict[str, Any]:
    record = read_json(record_path(method))
    if record.get("schema") != SCHEMA:
        raise ValueError(f"{record_path(method)}: schema {record.get('schema')!r}, expected {SCHEMA}")
    return record


RTOL = 1e-10
"""Every lockstep quantity (losses, scalarised loss, rays, simplex weights, annealing time, checksum
fields) agrees with the official record to this difference relative to ``max(1, |official|)``. The
rule: at least 100x the worst difference measured on any record under 1 and 2 threads and with this
machine's, generic ATen and SSE4.2-only MKL kernels, and at most a tenth of the smallest difference a
logic change reaches (``tools/lockstep_spread.py`` measures both into ``tests/lockstep/SPREAD.md``;
``tests/test_fidelity.py`` holds the tolerance to that rule)."""


def relative_difference(ours: Any, official: Any) -> float:
    """The largest ``|ours - official| / max(1, |official|)`` over the elements of two numbers,
    nested lists or tensors of the same shape (or over the fields of two checksums)."""
    if isinstance(official, dict):
        return max(relative_difference(ours[key], value) for key, value in official.items())
    a = torch.as_tensor(ours, dtype=torch.float64).detach()
    b = torch.as_tensor(official, dtype=torch.float64).detach()
    if a.shape != b.shape:
        raise AssertionError(f"shape {tuple(a.shape)} != official {tuple(b.shape)}")
    if a.numel() == 0:
        return 0.0
    return float(((a - b).abs() / b.abs().clamp_min(1.0)).max())


def assert_close(ours: Any, official: Any, what: str, rtol: float = RTOL) -> None:
    """Raise AssertionError naming ``what`` when :func:`relative_difference` exceeds ``rtol``."""
    difference = relative_difference(ours, official)
    if not difference <= rtol:  # NaN fails too
        raise AssertionError(
            f"{what}: differs from the official record by {difference:.3g} (> {rtol:g})\n"
            f"ours:     {ours!r}\nofficial: {official!r}"
        )


def load_file_module(name: str, path: Path) -> ModuleType:
    """Import the Python file ``path`` as module ``name`` (an official checkout's file, a lockstep
    producer, a dataset's prepare script)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"error: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
