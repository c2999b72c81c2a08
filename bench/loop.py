"""The one training loop. It knows the contract (rays, ConditionedNet, Method hooks), never a method.

Per step: ``rays = method.train_rays(progress)``, one forward per ray giving ``losses[R, T]``,
``method.backward(losses, rays, cnet)``, one optimizer step. ``progress = (step + 1) / total_steps``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from bench.data.batches import Batches
from bench.spec import ConditionedNet, Method, Objective

RAY_HISTOGRAM_BINS = 10


def compute_losses(
    cnet: ConditionedNet, x: Tensor, targets: dict[str, Tensor], rays: Tensor, objectives: Sequence[Objective]
) -> Tensor:
    """losses[R, T]: each objective's batch-mean loss under each ray."""
    rows = []
    for ray in rays:
        out = cnet(x, ray)
        rows.append(torch.stack([o.loss(out[o.name], targets[o.name]) for o in objectives]))
    return torch.stack(rows)


@dataclasses.dataclass
class LoopStats:
    steps: int = 0
    train_seconds: float = 0.0
    ray_histogram: list[list[int]] = dataclasses.field(default_factory=list)


def fit(
    cnet: ConditionedNet,
    method: Method,
    optimizer: torch.optim.Optimizer,
    loader: Batches,
    objectives: Sequence[Objective],
    epochs: int,
    ray_generator: torch.Generator,
    on_epoch_end: Callable[[int, int, float], None],
    eval_every: int = 1,
    max_steps: int = 0,
    show_progress: bool = True,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> LoopStats:
    """Train for ``epochs`` (or ``max_steps``); call ``on_epoch_end(epoch, step, train_seconds)`` at
    each evaluation (``train_seconds``: training time so far, evaluations excluded); step ``scheduler``
    (if any) once per epoch."""
    device = next(cnet.parameters()).device
    total_steps = epochs * len(loader)
    stats = LoopStats()
    histogram = torch.zeros(len(objectives), RAY_HISTOGRAM_BINS, dtype=torch.long)
    cnet.train()
    for epoch in range(epochs):
        start = time.perf_counter()
        bar = tqdm(
            loader,
            desc=f"epoch {epoch + 1}/{epochs}",
            disable=None if show_progress else True,  # None: off when not a terminal
            leave=False,
            dynamic_ncols=True,
        )
        for x, targets in bar:
            rays = method.train_rays((stats.steps + 1) / total_steps, ray_generator)
            # the small offset keeps grid values such as 0.2 (stored as 0.19999...) in their own bin
            bins = (rays * RAY_HISTOGRAM_BINS + 1e-6).long().clamp_(max=RAY_HISTOGRAM_BINS - 1)
            histogram.scatter_add_(1, bins.T, torch.ones_like(bins.T))
            rays = rays.to(device)
            losses = compute_losses(cnet, x, targets, rays, objectives)
            optimizer.zero_grad(set_to_none=True)
            loss = method.backward(losses, rays, cnet)
            optimizer.step()
            stats.steps += 1
            if stats.steps % 10 == 0 or stats.steps == 1:
                task_losses = losses.detach().mean(0).tolist()
                per_task = {o.name: f"{v:.3f}" for o, v in zip(objectives, task_losses, strict=True)}
                bar.set_postfix(loss=f"{loss.item():.3f}", **per_task)
            if max_steps and stats.steps >= max_steps:
                break
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        stats.train_seconds += time.perf_counter() - start
        if scheduler is not None:
            scheduler.step()
        done = bool(max_steps and stats.steps >= max_steps)
        if (epoch + 1) % eval_every == 0 or epoch + 1 == epochs or done:
            on_epoch_end(epoch, stats.steps, stats.train_seconds)
        if done:
            break
    stats.ray_histogram = histogram.tolist()
    return stats
