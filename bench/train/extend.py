"""A longer run continued from a completed shorter one (``train.extend_shorter``): when a run has no
checkpoint of its own and a COMPLETED run in the same folder has the same config but fewer epochs,
the new run starts from that run's last checkpoint (taken after its last epoch's validation) and its
records up to there, instead of from step 0.

This equals training the longer run from the start, bit for bit, exactly when nothing a step does
depends on how many epochs the run has: the optimizer's schedule counts epochs (``train.lr_step``),
not the run's length, and the data order and the ray draws come from generators the checkpoint
restores. What can depend on the length is the method's ray sampler, which is given the training
progress (step / total steps): PaLoRA's, PaDoRA's and PaMaL's annealing schedules stretch with the
run. So a run continues only when its method draws the same rays at every progress
(:func:`rays_ignore_progress`); otherwise it trains from the start, and says why.
``tests/test_extend.py`` checks the equality on whole runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from bench.core import atomic
from bench.core.registry import METHODS
from bench.core.spec import DatasetSpec
from bench.train import checkpoint
from bench.train.config import RunConfig, identity_of, without_keys
from bench.train.record import METRICS, completed_summary

PROBES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
"""The training progress values at which a method's ray draws are compared."""


def rays_ignore_progress(cfg: RunConfig, spec: DatasetSpec) -> bool:
    """Whether a fresh instance of the run's method draws the same rays, from the same generator
    state, at every progress of :data:`PROBES` (a fresh one: the run's own method is not touched)."""
    method = METHODS.get(cfg.method)(cfg.hparams, spec)
    draws = [method.train_rays(p, torch.Generator().manual_seed(0)) for p in PROBES]
    return all(torch.equal(draws[0], d) for d in draws[1:])


def length_free(config: dict[str, Any]) -> dict[str, Any]:
    """A config's identity (:func:`bench.train.config.identity_of`) without its epochs."""
    return without_keys(identity_of(config), ("train.epochs",))


def shorter_sibling(folder: Path, cfg: RunConfig) -> Path | None:
    """The COMPLETED run under ``folder`` with ``cfg``'s config but fewer epochs (the longest such),
    with a final checkpoint; None when there is none. Neither run may stop early (``train.max_steps``)."""
    if cfg.train.max_steps:
        return None
    wanted, best, best_epochs = length_free(cfg.to_dict()), None, 0
    for directory in sorted(folder.glob(f"{cfg.method}_{cfg.dataset}_s{cfg.seed}_*")):
        if directory.name == cfg.run_id() or completed_summary(directory) is None:
            continue
        try:
            config = json.loads((directory / "config.json").read_text())["config"]
        except (OSError, ValueError, KeyError):
            continue
        train = config.get("train", {})
        epochs = int(train.get("epochs", 0))
        if train.get("max_steps") or not best_epochs < epochs < cfg.train.epochs:
            continue
        if length_free(config) == wanted and (directory / checkpoint.FILENAME).is_file():
            best, best_epochs = directory, epochs
    return best


def continue_from_shorter(directory: Path, cfg: RunConfig, spec: DatasetSpec) -> tuple[dict[str, Any] | None, str]:
    """Put the shorter sibling's last checkpoint and records into ``directory`` (a run with no
    checkpoint), when the run may continue from it. Returns the note for the run's ``resumed`` entry
    (None when it starts from step 0) and a line saying what was done, or why not."""
    source = shorter_sibling(directory.parent, cfg)
    if source is None:
        return None, ""
    if not rays_ignore_progress(cfg, spec):
        why = f"{cfg.method}'s ray draws depend on the training progress, which a longer run stretches"
        return None, f"trains from step 0, not from {source.name}: {why}"
    directory.mkdir(parents=True, exist_ok=True)
    for name in (checkpoint.FILENAME, METRICS):
        atomic.write_bytes(directory / name, (source / name).read_bytes())
    (directory / checkpoint.PREVIOUS).unlink(missing_ok=True)
    epochs = int(json.loads((source / "config.json").read_text())["config"]["train"]["epochs"])
    note = {"continued_from": source.name, "continued_from_epochs": epochs}
    return note, f"continues from {source.name} after its epoch {epochs} (train.extend_shorter)"
