"""The two named protocols a run can belong to (spec/evaluation.md, "Tuning without peeking").

- ``official``: the dataset's protocol and the method's preset, unchanged (the authors' settings, for
  reproduction): the run's identity is that of ``bench run --method M --dataset D --seed S``.
- ``tuned``: the benchmark's fair comparison: the shared budget :data:`TUNED_BUDGET` (the ``[set]`` of
  ``slurm/*-tune.toml``), each method at the settings ``bench tune`` selected on validation.
- ``custom``: anything else (an ablation, a setting given by hand).
"""

from __future__ import annotations

from typing import Any

from bench.analysis.records import Run, flat_config
from bench.core.errors import ConfigError
from bench.train.config import ADDED_LATER, identity_of, resolve

TUNED_BUDGET: dict[str, Any] = {"train.epochs": 60, "train.val_points_per_edge": 0, "train.val_samples": 2000}
"""The settings every ``tuned`` run shares: one epoch budget, validated each epoch on the whole evaluation
grid (every ray the test front has) of the same 2,000 validation pairs, so that the selection reads the
tables' hypervolume on validation data."""
PROTOCOLS = ("official", "tuned", "custom")


def protocol_of(run: Run) -> str:
    """``official``, ``tuned`` or ``custom`` (module docstring) from the run's recorded config."""
    identity = identity_of(run.config)
    try:
        preset = identity_of(resolve(run.method, run.dataset, run.seed).to_dict())
    except (ConfigError, KeyError, ValueError):
        preset = None
    if identity == preset:
        return "official"
    flat = flat_config(identity)
    shared = all(flat.get(key, ADDED_LATER.get(key)) == value for key, value in TUNED_BUDGET.items())
    return "tuned" if shared else "custom"
