"""The one training loop. It knows the contract (rays, ConditionedNet, Method hooks), never a method.

Per step (:meth:`Learner.step`): ``rays = method.train_rays(progress)``, one forward per ray giving
``losses[R, T]``, ``method.backward(losses, rays, cnet)``, one optimizer step. ``progress`` is
:func:`training_progress`. :func:`fit` runs the steps over epochs (:class:`Schedule`) and calls out
through :class:`LoopHooks` to evaluate, checkpoint and log the training losses (:class:`LossSums`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from tqdm.auto import tqdm

from bench.core.errors import Diverged
from bench.core.spec import ConditionedNet, Method, Objective
from bench.data.kit.batches import Batches, LoaderBatches

if TYPE_CHECKING:
    from bench.train.config import TrainConfig

RAY_HISTOGRAM_BINS = 10
DIVERGENCE_CHECK_EVERY = 50
"""On an accelerator the loop reads its non-finite-loss flag every this many steps (and before every
checkpoint and evaluation), so that it never waits for the device at each step; on CPU every step."""


AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclasses.dataclass(frozen=True)
class StepOptions:
    """How a training step runs (``train.ray_batching``, ``train.amp``); the results it computes are
    the same up to floating-point rounding."""

    batch_rays: bool = False
    """All rays in one ``cnet.forward_rays`` (vmap) instead of one forward per ray."""
    amp: torch.dtype | None = None
    """The autocast dtype of the forward and the losses (None: float32)."""

    @classmethod
    def from_names(cls, ray_batching: str, amp: str) -> StepOptions:
        return cls(batch_rays=ray_batching == "vmap", amp=AMP_DTYPES[amp])


def compute_losses(
    cnet: ConditionedNet,
    x: Tensor,
    targets: dict[str, Tensor],
    rays: Tensor,
    objectives: Sequence[Objective],
    options: StepOptions = StepOptions(),
) -> Tensor:
    """losses[R, T]: each objective's batch-mean loss under each ray, in the parameters' dtype (float32
    under autocast too; float64 in the lockstep replays)."""
    with torch.autocast(x.device.type, dtype=options.amp or torch.float32, enabled=options.amp is not None):
        if options.batch_rays or cnet.batches_rays:
            outs = cnet.forward_rays(x, rays)
            per_ray = [{name: out[r] for name, out in outs.items()} for r in range(rays.shape[0])]
        else:
            per_ray = [cnet(x, ray) for ray in rays]
        rows = [torch.stack([o.loss(out[o.name], targets[o.name]) for o in objectives]) for out in per_ray]
    losses = torch.stack(rows)
    return losses.float() if options.amp is not None else losses


def train_step(
    cnet: ConditionedNet,
    method: Method,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    targets: dict[str, Tensor],
    rays: Tensor,
    objectives: Sequence[Objective],
    options: StepOptions = StepOptions(),
) -> tuple[Tensor, Tensor]:
    """One optimizer step under ``rays`` [R, T]; returns (losses [R, T], the reduced loss)."""
    losses = compute_losses(cnet, x, targets, rays, objectives, options)
    optimizer.zero_grad(set_to_none=True)
    loss = method.backward(losses, rays, cnet)
    optimizer.step()
    return losses, loss


class DivergenceWatch:
    """Notes the first step whose loss is not finite, on the device (no host sync), and raises
    :class:`bench.core.errors.Diverged` when asked to :meth:`check`."""

    def __init__(self, device: torch.device, steps_per_epoch: int) -> None:
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self.steps_per_epoch = steps_per_epoch
        self.every = 1 if device.type == "cpu" else DIVERGENCE_CHECK_EVERY

    def note(self, step: int, losses: Tensor, loss: Tensor) -> None:
        finite = torch.isfinite(loss).all() & torch.isfinite(losses).all()
        self.first_bad.masked_fill_((self.first_bad < 0) & ~finite, step)

    def check(self) -> None:
        step = int(self.first_bad)
        if step >= 0:
            epoch = (step - 1) // max(self.steps_per_epoch, 1) + 1
            raise Diverged(f"diverged: non-finite loss at step {step} (epoch {epoch})")


class LossSums:
    """Running sums, on the device, of each task's loss (mean over the step's rays) and of the method's
    reduced loss: row 0 since the last :meth:`LoopHooks.log_train`, row 1 since the last evaluation.
    Read only when taken, so a step adds no host sync."""

    LOG, EVAL = 0, 1

    def __init__(self, tasks: int, device: torch.device, sums: list[list[float]], steps: list[int]) -> None:
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self.sums = torch.zeros(2, tasks + 1, dtype=dtype, device=device)
        self.steps = list(steps) if steps else [0, 0]
        if sums:
            self.sums.copy_(torch.tensor(sums, dtype=dtype))

    def add(self, losses: Tensor, loss: Tensor) -> None:
        dtype = self.sums.dtype
        self.sums += torch.cat([losses.detach().mean(0).to(dtype), loss.detach().reshape(1).to(dtype)])
        self.steps = [n + 1 for n in self.steps]

    def take(self, row: int) -> list[float]:
        """The means of ``row`` over its steps (task losses, then the reduced loss); resets it."""
        means = (self.sums[row] / max(self.steps[row], 1)).tolist()
        self.sums[row].zero_()
        self.steps[row] = 0
        return means

    def keep(self, state: LoopState) -> None:
        """Copy the sums into ``state`` (for a checkpoint)."""
        state.loss_sums, state.loss_steps = self.sums.tolist(), list(self.steps)


@dataclasses.dataclass
class LoopState:
    """Where the loop is, and everything it accumulated: what a checkpoint needs to resume it.

    ``epoch`` is the current epoch and ``batch`` the batches of it already trained; ``epoch_data_rng``
    is the data generator's state when that epoch began (its shuffle is replayed on resume)."""

    epoch: int = 0
    batch: int = 0
    steps: int = 0
    train_seconds: float = 0.0
    ray_histogram: list[list[int]] = dataclasses.field(default_factory=list)
    epoch_data_rng: Tensor | None = None
    loss_sums: list[list[float]] = dataclasses.field(default_factory=list)
    """:class:`LossSums` (empty: zeros); ``loss_steps`` its step counts."""
    loss_steps: list[int] = dataclasses.field(default_factory=list)


def training_progress(steps_done: int, total_steps: int) -> float:
    """The annealing time t of the step after ``steps_done`` steps, as the official trainer computes
    it: its step counter is ticked before the ray is drawn and ``t = (counter + 1) / total``, so the
    first step draws at 2 / total and the last ones at 1 (nik-dim/palora ``base_trainer.py``, ``t``)."""
    return min(1.0, (steps_done + 2) / total_steps)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How long :func:`fit` trains and when it calls out (``train.*`` of the run's config)."""

    epochs: int
    eval_every: int = 1
    """Evaluate after every this many epochs (and after the last)."""
    max_steps: int = 0
    """Stop after this many steps (0: train every epoch)."""
    checkpoint_every: int = 0
    """Checkpoint every this many steps (0: only after each epoch)."""
    log_every: int = 0
    """Call ``hooks.log_train`` every this many steps, and after the last (0: never)."""

    @classmethod
    def from_config(cls, train: TrainConfig) -> Schedule:
        return cls(train.epochs, train.eval_every, train.max_steps, train.checkpoint_every, train.log_every)


@dataclasses.dataclass
class Learner:
    """What a training step touches, and the step itself: :meth:`step` is the step :func:`fit` takes
    and the one ``bench.benchmarks.profile`` times. ``scheduler`` (if any) is stepped once per epoch by :func:`fit`."""

    cnet: ConditionedNet
    method: Method
    optimizer: torch.optim.Optimizer
    objectives: Sequence[Objective]
    ray_generator: torch.Generator
    options: StepOptions = StepOptions()
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    device: torch.device = dataclasses.field(init=False)
    """Where the model's parameters are (the rays go there)."""

    def __post_init__(self) -> None:
        self.device = next(self.cnet.parameters()).device

    def step(self, x: Tensor, targets: dict[str, Tensor], progress: float) -> tuple[Tensor, Tensor, Tensor]:
        """Draw the rays at ``progress`` (:func:`training_progress`) and take one optimizer step under
        them; returns (the rays as drawn, losses [R, T], the reduced loss)."""
        rays = self.method.train_rays(progress, self.ray_generator)
        losses, loss = train_step(
            self.cnet, self.method, self.optimizer, x, targets, rays.to(self.device), self.objectives, self.options
        )
        return rays, losses, loss


class LoopHooks:
    """What :func:`fit` calls out to; each hook does nothing unless a subclass overrides it."""

    def evaluate(self, epoch: int, step: int, train_seconds: float, train_loss: float = math.nan) -> None:
        """After epoch ``epoch`` (from 0) when it is one to evaluate; ``step``: steps so far;
        ``train_seconds``: training time so far, evaluations excluded; ``train_loss``: the mean
        reduced loss of the steps since the last evaluation."""

    def log_train(self, step: int, epoch: int, losses: dict[str, float]) -> None:
        """Every ``schedule.log_every`` steps and after the last: the mean over the steps since the
        last call of each task's loss and of the reduced loss (key ``total``); ``epoch`` from 1."""

    def checkpoint(self, state: LoopState) -> None:
        """Every ``schedule.checkpoint_every`` steps within an epoch, and after each epoch."""


def shuffle_generator(batches: Batches) -> torch.Generator | None:
    """The generator that shuffles ``batches`` (None when they are not shuffled)."""
    if isinstance(batches, LoaderBatches):
        return batches.sampler.generator if batches.sampler is not None else None
    return batches.generator


def fit(
    learner: Learner,
    batches: Batches,
    schedule: Schedule,
    hooks: LoopHooks | None = None,
    state: LoopState | None = None,
    show_progress: bool = True,
) -> LoopState:
    """Train ``learner`` on ``batches`` for ``schedule.epochs`` (or ``schedule.max_steps``), calling
    ``hooks.evaluate`` at each evaluation and ``hooks.checkpoint`` at each checkpoint; step the
    learner's scheduler (if any) once per epoch. From ``state`` (a checkpoint's) the loop continues
    where it stopped, replaying the interrupted epoch's shuffle from the batches' generator. A
    non-finite loss raises :class:`bench.core.errors.Diverged` naming its step (:class:`DivergenceWatch`)."""
    hooks = hooks if hooks is not None else LoopHooks()
    epochs, max_steps = schedule.epochs, schedule.max_steps
    data_generator = shuffle_generator(batches)
    total_steps = epochs * len(batches)
    state = state if state is not None else LoopState()
    histogram = torch.zeros(len(learner.objectives), RAY_HISTOGRAM_BINS, dtype=torch.long)
    if state.ray_histogram:
        histogram += torch.tensor(state.ray_histogram, dtype=torch.long)

    def sync_clock(started: float) -> float:
        if learner.device.type == "cuda":
            torch.cuda.synchronize(learner.device)
        now = time.perf_counter()
        state.train_seconds += now - started
        state.ray_histogram = histogram.tolist()
        meter.keep(state)
        return now

    watch = DivergenceWatch(learner.device, len(batches))
    meter = LossSums(len(learner.objectives), learner.device, state.loss_sums, state.loss_steps)
    names = [o.name for o in learner.objectives] + ["total"]

    def log_train(epoch: int) -> None:
        watch.check()  # the losses are read anyway: never log a diverged run's NaNs as its last losses
        hooks.log_train(state.steps, epoch + 1, dict(zip(names, meter.take(LossSums.LOG), strict=True)))

    learner.cnet.train()
    done = bool(max_steps and state.steps >= max_steps)
    while state.epoch < epochs and not done:
        epoch = state.epoch
        if data_generator is not None:
            if state.batch == 0:
                state.epoch_data_rng = data_generator.get_state()
            elif state.epoch_data_rng is not None:
                data_generator.set_state(state.epoch_data_rng)
        started = time.perf_counter()
        bar = tqdm(
            batches.epoch(skip=state.batch),
            desc=f"epoch {epoch + 1}/{epochs}",
            total=len(batches),
            initial=state.batch,
            disable=None if show_progress else True,  # None: off when not a terminal
            leave=False,
            dynamic_ncols=True,
        )
        for x, targets in bar:
            rays, losses, loss = learner.step(x, targets, training_progress(state.steps, total_steps))
            # the small offset keeps grid values such as 0.2 (stored as 0.19999...) in their own bin
            bins = (rays * RAY_HISTOGRAM_BINS + 1e-6).long().clamp_(max=RAY_HISTOGRAM_BINS - 1)
            histogram.scatter_add_(1, bins.T, torch.ones_like(bins.T))
            state.steps += 1
            state.batch += 1
            watch.note(state.steps, losses, loss)
            meter.add(losses, loss)
            if state.steps % watch.every == 0:
                watch.check()
            if schedule.log_every and state.steps % schedule.log_every == 0:
                log_train(epoch)
            if not bar.disable and (state.steps % 10 == 0 or state.steps == 1):
                task_losses = losses.detach().mean(0).tolist()
                per_task = {o.name: f"{v:.3f}" for o, v in zip(learner.objectives, task_losses, strict=True)}
                bar.set_postfix(loss=f"{loss.item():.3f}", **per_task)
            done = bool(max_steps and state.steps >= max_steps)
            if done:
                break
            every = schedule.checkpoint_every
            if every and state.steps % every == 0 and state.batch < len(batches):
                started = sync_clock(started)
                watch.check()  # never save a diverged model as a checkpoint
                hooks.checkpoint(state)
        sync_clock(started)
        watch.check()
        if learner.scheduler is not None:
            learner.scheduler.step()
        if schedule.log_every and meter.steps[LossSums.LOG] and (epoch + 1 == epochs or done):
            log_train(epoch)  # the last steps, fewer than log_every
        if (epoch + 1) % schedule.eval_every == 0 or epoch + 1 == epochs or done:
            train_loss = meter.take(LossSums.EVAL)[-1]
            hooks.evaluate(epoch, state.steps, state.train_seconds, train_loss)
        state.epoch, state.batch = epoch + 1, 0
        meter.keep(state)
        hooks.checkpoint(state)
    state.ray_histogram = histogram.tolist()
    return state
