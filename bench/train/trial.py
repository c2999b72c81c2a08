"""The one assembly: a resolved :class:`bench.train.config.RunConfig` becomes a ready :class:`Trial`.

``bench run`` (through :mod:`bench.train.runner`), :mod:`bench.benchmarks.profile` and
:mod:`bench.benchmarks.performance` all build through :func:`build_trial`, so what is profiled is
what is trained: the same batches, seeding, model, step options, optimizer, scheduler and ray
generator. The order of the random draws is part
of the contract (a run's numbers depend on it): the training batches are shuffled by a generator
seeded with ``seed``; the model is built right after ``torch.manual_seed(seed)``; the training rays
come from a generator seeded with ``seed + 1``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bench.backbones import create_backbone, resolve_weights
from bench.core.conditioning import ray_batching_problem
from bench.core.env import default_data_root, default_workers, resolve_device
from bench.core.errors import ConfigError
from bench.core.registry import BACKBONES, DATASETS, METHODS
from bench.core.spec import ConditionedNet, DatasetSpec, Method, MultiTaskNet, Split, SplitData
from bench.data.kit.batches import Batches, make_batches
from bench.train import checkpoint
from bench.train.config import ModelConfig, RunConfig
from bench.train.evaluate import validation_rays
from bench.train.loop import Learner, Schedule, StepOptions, shuffle_generator


def make_optimizer(cfg: RunConfig, method: Method, cnet: ConditionedNet) -> torch.optim.Optimizer:
    """Adam over the method's parameter groups (the protocol of every dataset here)."""
    return torch.optim.Adam(
        method.param_groups(cnet, cfg.train.lr), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
    )


def step_options(cfg: RunConfig, cnet: ConditionedNet) -> StepOptions:
    """The step's ray batching and autocast dtype from ``cfg.train``; compiles ``cnet`` in place
    when ``train.compile`` (its parameter names, and so its checkpoints, are unchanged)."""
    if cfg.train.ray_batching == "vmap" and (problem := ray_batching_problem(cnet)):
        raise ConfigError(
            f"train.ray_batching=vmap cannot run {cfg.method} on {cfg.dataset}: {problem}; "
            "use train.ray_batching=sequential"
        )
    if cfg.train.compile:
        cnet.compile()
    return StepOptions.from_names(cfg.train.ray_batching, cfg.train.amp)


def backbone_factory(spec: DatasetSpec, model: ModelConfig, root: Path) -> Callable[..., MultiTaskNet]:
    """``make_backbone(**kw)`` for :meth:`bench.core.spec.Method.build`: a fresh backbone (the dataset's
    unless ``model.backbone`` names another), its encoder initialised from ``model.weights`` when
    set (resolved now, so a missing file fails before training)."""
    name = model.backbone or spec.backbone
    options = dict(spec.backbone_options) if name == spec.backbone else {}
    BACKBONES.get(name)
    weights_path = resolve_weights(model.weights, name, root) if model.weights else None

    def make_backbone(**kwargs: Any) -> MultiTaskNet:
        if weights_path is not None:
            kwargs["weights"] = weights_path
        return create_backbone(name, spec, **options, **kwargs)

    return make_backbone


def check_backbone_runs(
    cfg: RunConfig, spec: DatasetSpec, method: Method, make_backbone: Callable[..., MultiTaskNet], val: Batches
) -> None:
    """ConfigError unless another backbone (``model.backbone``) builds and runs on two of the
    dataset's samples: found before a run directory exists, not after training started. Under a
    forked RNG, on CPU, so the run's own seeding is untouched."""
    x, _ = next(iter(val))
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            cnet = method.build(make_backbone).eval()
            cnet(x[:2].cpu(), method.eval_rays()[0])
    except Exception as err:  # noqa: BLE001 - any failure here means the backbone does not fit the data
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"model.backbone={cfg.model.backbone} cannot run on {spec.name} ({first}); "
            f"{spec.name}'s own backbone is {spec.backbone}"
        ) from None


def single_model_parameters(make_backbone: Callable[..., MultiTaskNet]) -> int:
    """Parameters of one plain backbone with its heads: the unit of the memory-overhead ratios
    (PaLoRA paper, Sec. 5). Built under a forked RNG so counting leaves the run's seeding untouched."""
    with torch.random.fork_rng(devices=[]):
        return sum(p.numel() for p in make_backbone().parameters())


def validation_limit(cfg: RunConfig) -> int:
    """Validation samples: the smaller of ``data.eval_limit`` and ``train.val_samples`` that is set."""
    return min((n for n in (cfg.data.eval_limit, cfg.train.val_samples) if n > 0), default=0)


@dataclasses.dataclass(kw_only=True)
class Trial:
    """One run, assembled and ready to train: what ``bench run`` trains and ``bench profile`` times."""

    cfg: RunConfig
    spec: DatasetSpec
    method: Method
    device: torch.device
    root: Path
    workers: int
    make_backbone: Callable[..., MultiTaskNet]
    train: Batches
    """Training batches, shuffled by a generator seeded with ``cfg.seed``."""
    val: Batches
    """Validation batches (:func:`validation_limit` samples)."""
    learner: Learner
    """Model, method, optimizer, scheduler, ray generator and step options: the training step."""
    schedule: Schedule
    eval_rays: Tensor
    """The method's evaluation grid, on ``device`` (the test front)."""
    val_rays: Tensor
    """The rays evaluated on ``val`` after each evaluated epoch (a subset of ``eval_rays``)."""

    @property
    def cnet(self) -> ConditionedNet:
        return self.learner.cnet

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.learner.optimizer

    @property
    def total_steps(self) -> int:
        """Steps of the whole schedule (every epoch): the denominator of the annealing time."""
        return self.schedule.epochs * len(self.train)

    @property
    def data_generator(self) -> torch.Generator:
        """The generator that shuffles the training batches."""
        generator = shuffle_generator(self.train)
        if generator is None:
            raise ValueError("training batches must be shuffled by a generator")
        return generator


def trial_trainables(trial: Trial) -> checkpoint.Trainables:
    """What a checkpoint of ``trial`` saves and restores, besides the loop state."""
    learner = trial.learner
    return checkpoint.Trainables(
        learner.cnet,
        learner.optimizer,
        learner.scheduler,
        trial.method,
        learner.ray_generator,
        trial.data_generator,
        trial.device,
    )


def load_test_batches(trial: Trial) -> Batches:
    """``trial``'s test split (``data.eval_limit`` samples), loaded when asked: after training."""
    return load_batches(
        trial.spec,
        trial.root,
        "test",
        batch_size=trial.cfg.train.eval_batch_size,
        limit=trial.cfg.data.eval_limit,
        device=trial.device,
        generator=None,
        workers=trial.workers,
    )


def parameter_counts(trial: Trial) -> dict[str, int]:
    """Total, trainable and inference parameters of ``trial``'s model, and those of one plain backbone."""
    cnet = trial.cnet
    return {
        "total": sum(p.numel() for p in cnet.parameters()),
        "trainable": sum(p.numel() for p in cnet.parameters() if p.requires_grad),
        "inference": cnet.inference_parameters(),
        "single_model": single_model_parameters(trial.make_backbone),
    }


def load_batches(
    spec: DatasetSpec,
    root: Path,
    split: Split,
    *,
    batch_size: int,
    limit: int,
    device: torch.device,
    generator: torch.Generator | None,
    workers: int,
    data: SplitData | None = None,
) -> Batches:
    """Batches over ``split`` of ``spec`` read from ``root`` (or over ``data`` in its place)."""
    return make_batches(
        data if data is not None else spec.load(root, split), batch_size, device, generator, limit, workers
    )


def build_trial(
    cfg: RunConfig,
    data_root: Path | None = None,
    device: torch.device | str = "auto",
    workers: int | None = None,
    *,
    method: Method | None = None,
    data: SplitData | None = None,
) -> Trial:
    """Assemble ``cfg``'s run: data first (a missing dataset fails before anything is built), then
    the model under ``torch.manual_seed(cfg.seed)``, its step options, optimizer and scheduler.

    ``data_root``: default :func:`bench.core.env.default_data_root`; ``device``: a name for
    :func:`bench.core.env.resolve_device`, or a device; ``workers``: DataLoader processes for image
    datasets (default :func:`bench.core.env.default_workers`). ``method``: a method object to train in
    place of ``cfg.method``'s (the profiler's plain backbone), built for ``device`` (else a
    ValueError); ``data``: samples standing in for the train and validation splits (the profiler's
    synthetic data), so no file is read. Only the modules of this run's method, dataset and
    backbone are imported (:mod:`bench.core.registry`)."""
    spec: DatasetSpec = DATASETS.get(cfg.dataset)
    device = resolve_device(device) if isinstance(device, str) else device
    if method is None:
        method = METHODS.get(cfg.method)(cfg.hparams, spec, device=device)
    elif method.device != device:
        raise ValueError(f"{type(method).__name__} was built for {method.device}, the trial runs on {device}")
    root = Path(data_root) if data_root is not None else default_data_root()
    workers = default_workers() if workers is None else workers

    data_generator = torch.Generator().manual_seed(cfg.seed)
    train = load_batches(
        spec,
        root,
        "train",
        batch_size=cfg.train.batch_size,
        limit=cfg.data.train_limit,
        device=device,
        generator=data_generator,
        workers=workers,
        data=data,
    )
    val = load_batches(
        spec,
        root,
        "val",
        batch_size=cfg.train.eval_batch_size,
        limit=validation_limit(cfg),
        device=device,
        generator=None,
        workers=workers,
        data=data,
    )
    make_backbone = backbone_factory(spec, cfg.model, root)
    if cfg.model.backbone and cfg.model.backbone != spec.backbone:
        check_backbone_runs(cfg, spec, method, make_backbone, val)

    torch.manual_seed(cfg.seed)
    cnet = method.build(make_backbone).to(device)
    options = step_options(cfg, cnet)
    optimizer = make_optimizer(cfg, method, cnet)
    scheduler = None
    if cfg.train.lr_step:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, cfg.train.lr_step, cfg.train.lr_gamma)
    ray_generator = torch.Generator().manual_seed(cfg.seed + 1)
    learner = Learner(cnet, method, optimizer, spec.objectives, ray_generator, options, scheduler)
    eval_rays = method.eval_rays().to(device)
    val_rays = validation_rays(eval_rays, spec.num_tasks, cfg.train.val_points_per_edge)
    return Trial(
        cfg=cfg,
        spec=spec,
        method=method,
        device=device,
        root=root,
        workers=workers,
        make_backbone=make_backbone,
        train=train,
        val=val,
        learner=learner,
        schedule=Schedule.from_config(cfg.train),
        eval_rays=eval_rays,
        val_rays=val_rays,
    )
