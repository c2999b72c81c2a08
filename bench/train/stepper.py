"""A built trial taking timed training steps, and the plain backbone it is compared with: the kit
that ``bench.benchmarks.profile`` and the sweep planner (:mod:`bench.sweep.plan`) time runs with."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from bench.core.spec import Batch, DatasetSpec, Method, NoHparams
from bench.train.config import RunConfig
from bench.train.evaluate import evaluate
from bench.train.loop import training_progress
from bench.train.memory import step_peak_bytes
from bench.train.trial import Trial
from methods.single_point import SinglePointMethod


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def endless(batches: Any) -> Iterator[Batch]:
    while True:
        yield from batches


class PlainBackbone(SinglePointMethod[NoHparams]):
    """The backbone trained plainly: one unconditioned model; each step runs ``rays`` forwards of
    the same batch with uniform loss weights (as many as the profiled method's rays per step)."""

    def __init__(self, spec: DatasetSpec, rays: int, *, device: torch.device = torch.device("cpu")) -> None:
        super().__init__(NoHparams(), spec, device=device)
        self.rays = rays

    def train_rays(self, progress: float, generator: torch.Generator) -> Tensor:
        return torch.full((self.rays, self.num_tasks), 1.0 / self.num_tasks)


def rays_per_step(method: Method) -> int:
    return int(method.train_rays(0.5, torch.Generator().manual_seed(0)).shape[0])


class Stepper:
    """A built :class:`bench.train.trial.Trial` taking timed training steps (its learner's step, at the
    annealing time of the run's schedule) and an evaluation pass."""

    def __init__(self, trial: Trial, synthetic: bool = False) -> None:
        self.trial, self.synthetic = trial, synthetic
        self.batches = endless(trial.train)
        self.done = 0
        trial.cnet.train()

    def step(self) -> tuple[float, float]:
        """One training step: (seconds, seconds of it spent waiting for the batch)."""
        device = self.trial.device
        sync(device)
        start = time.perf_counter()
        x, targets = next(self.batches)
        sync(device)
        fetched = time.perf_counter()
        self.trial.learner.step(x, targets, training_progress(self.done, self.trial.total_steps))
        self.done += 1
        sync(device)
        return time.perf_counter() - start, fetched - start

    def step_peak(self) -> tuple[int, str]:
        """What one training step adds to memory at its peak (:func:`bench.train.memory.step_peak_bytes`)."""
        return step_peak_bytes(self.trial.device, self.step)

    def evaluation_seconds(self) -> float:
        trial = self.trial
        sync(trial.device)
        start = time.perf_counter()
        evaluate(trial.cnet, trial.val, trial.eval_rays, trial.spec)
        sync(trial.device)
        return time.perf_counter() - start


def with_train(cfg: RunConfig, **changes: Any) -> RunConfig:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **changes))
