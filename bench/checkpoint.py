"""Checkpoints that resume a run exactly: model, optimizer, scheduler, method state, the loop's
position and accumulators, and every random state (the ray and data generators, torch's global CPU
and CUDA generators, numpy's and Python's). Written atomically to ``<run>/checkpoint.pt``.

On CPU a run resumed from any checkpoint ends with the same metrics as one never interrupted
(tests/test_resume.py). A DataLoader's worker processes restart their own random streams, so image
datasets with random augmentation resume with the same batches but fresh augmentation draws.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import atomic
from bench.loop import LoopState
from bench.spec import ConditionedNet, Method

FILENAME = "checkpoint.pt"
VERSION = 1


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
    """Write the checkpoint of this moment (``runner``: the runner's own accumulators)."""
    path = Path(directory) / FILENAME
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


def load(directory: Path) -> dict[str, Any] | None:
    """The checkpoint in ``directory``, or None when there is none."""
    path = Path(directory) / FILENAME
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {state.get('version')}, this code reads {VERSION}")
    return state


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
