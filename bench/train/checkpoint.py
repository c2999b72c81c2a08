"""Checkpoints that resume a run exactly: model, optimizer, scheduler, method state, the loop's
position and accumulators, and every random state (the ray and data generators, torch's global CPU
and CUDA generators, numpy's and Python's). Written atomically to ``<run>/checkpoint.pt``.

On CPU a run resumed from any checkpoint ends with the same metrics as one never interrupted
(tests/test_resume.py). A DataLoader's worker processes restart their own random streams, so image
datasets with random augmentation resume with the same batches but fresh augmentation draws.
"""

from __future__ import annotations

import dataclasses
import os
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.core import atomic
from bench.core.spec import ConditionedNet, Method
from bench.train.loop import LoopState

FILENAME = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
"""The checkpoint before the latest, kept so that a damaged latest one never blocks a run."""
VERSION = 1
KEYS = ("version", "model", "optimizer", "scheduler", "method", "rng", "loop", "runner")


@dataclasses.dataclass
class Trainables:
    """What a checkpoint saves and restores, besides the loop state."""

    cnet: ConditionedNet
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    method: Method
    ray_generator: torch.Generator
    data_generator: torch.Generator
    device: torch.device


def global_rng_states(device: torch.device) -> dict[str, Any]:
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_global_rng_states(states: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


def save(directory: Path, parts: Trainables, loop: LoopState, runner: dict[str, Any]) -> Path:
    """Write the checkpoint of this moment (``runner``: the runner's own accumulators); the one it
    replaces becomes :data:`PREVIOUS`."""
    path = Path(directory) / FILENAME
    if path.is_file():
        os.replace(path, Path(directory) / PREVIOUS)
    atomic.torch_save(
        path,
        {
            "version": VERSION,
            "model": parts.cnet.state_dict(),
            "optimizer": parts.optimizer.state_dict(),
            "scheduler": parts.scheduler.state_dict() if parts.scheduler is not None else None,
            "method": parts.method.state_dict(),
            "rng": {
                "ray": parts.ray_generator.get_state(),
                "data": parts.data_generator.get_state(),
                **global_rng_states(parts.device),
            },
            "loop": dataclasses.asdict(loop),
            "runner": runner,
        },
    )
    return path


def read(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``; ValueError saying why it cannot be one (truncated, empty, not a
    checkpoint, missing parts, another version).

    ``torch.save`` writes a zip archive; anything else is refused before unpickling, because torch's
    legacy unpickler can allocate without bound on arbitrary bytes."""
    if not zipfile.is_zipfile(path):
        raise ValueError("not a torch checkpoint archive (truncated, empty or overwritten)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file is a damaged checkpoint
        raise ValueError(f"unreadable ({type(err).__name__}: {str(err).strip()[:80]})") from err
    if not isinstance(state, dict):
        raise ValueError(f"not a checkpoint (a {type(state).__name__})")
    if missing := [key for key in KEYS if key not in state]:
        raise ValueError(f"not a checkpoint of this harness (no {', '.join(missing)})")
    if state["version"] != VERSION:
        raise ValueError(f"checkpoint version {state['version']!r}, this code reads {VERSION}")
    return state


def fits(state: dict[str, Any], parts: Trainables) -> None:
    """ValueError unless ``state`` holds this run's model and optimizer (names, shapes, groups)."""
    ours = parts.cnet.state_dict()
    theirs = state["model"]
    if not isinstance(theirs, dict) or set(theirs) != set(ours):
        raise ValueError("its model is not this run's (other parameter names: another method or backbone)")
    if bad := [k for k, v in ours.items() if not isinstance(theirs[k], torch.Tensor) or theirs[k].shape != v.shape]:
        raise ValueError(f"its model is not this run's ({bad[0]} has another shape)")
    groups = state["optimizer"].get("param_groups", []) if isinstance(state["optimizer"], dict) else []
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in parts.optimizer.param_groups]:
        raise ValueError("its optimizer is not this run's (other parameter groups)")


def load(directory: Path, parts: Trainables) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The newest checkpoint in ``directory`` that is sound and fits ``parts`` (the latest, else the
    previous), or None; and each checkpoint passed over (file name -> why it is damaged)."""
    passed_over = {}
    for name in (FILENAME, PREVIOUS):
        path = Path(directory) / name
        if not path.is_file():
            continue
        try:
            state = read(path)
            fits(state, parts)
        except ValueError as err:
            passed_over[name] = str(err)
            continue
        return state, passed_over
    return None, passed_over


def exists(directory: Path) -> bool:
    return any((Path(directory) / name).is_file() for name in (FILENAME, PREVIOUS))


def restore(state: dict[str, Any], parts: Trainables) -> tuple[LoopState, dict[str, Any]]:
    """Put every saved state back; returns the loop state and the runner's accumulators."""
    parts.cnet.load_state_dict(state["model"])
    parts.optimizer.load_state_dict(state["optimizer"])
    if parts.scheduler is not None and state["scheduler"] is not None:
        parts.scheduler.load_state_dict(state["scheduler"])
    parts.method.load_state_dict(state["method"])
    parts.ray_generator.set_state(state["rng"]["ray"])
    parts.data_generator.set_state(state["rng"]["data"])
    set_global_rng_states(state["rng"], parts.device)
    return LoopState(**state["loop"]), state["runner"]
