"""Helpers the tests share: a tiny random dataset, batches, a method with its conditioned model (also
as a lockstep record's setup gives it), a few training steps, tiny run settings and seeded parameter
noise. Fixtures stay in conftest.py (pytest finds them there); these are plain functions:
``from tests.support import build_method``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.backbones import create_backbone
from bench.core.fidelity import spec_batches
from bench.core.registry import DATASETS, METHODS
from bench.core.spec import ConditionedNet, DatasetSpec, Method, MultiTaskNet
from bench.data.kit.objectives import classification
from bench.train.config import apply_overrides, resolve
from bench.train.loop import compute_losses
from bench.train.trial import make_optimizer

Batch = tuple[torch.Tensor, dict[str, torch.Tensor]]


def _random_split(num_tasks: int, n: int = 64):
    def load(root: Path, split: str):
        g = torch.Generator().manual_seed({"train": 0, "val": 1, "test": 2}[split])
        x = torch.rand(n, 1, 28, 28, generator=g)
        return x, {f"task{k}": torch.randint(10, (n,), generator=g) for k in range(num_tasks)}

    return load


def tiny_spec(num_tasks: int) -> DatasetSpec:
    """A random 28x28 dataset with ``num_tasks`` 10-class tasks (contract tests; no files)."""
    return DatasetSpec(
        name=f"tiny{num_tasks}",
        description="random tensors",
        input_shape=(1, 28, 28),
        objectives=tuple(classification(f"task{k}") for k in range(num_tasks)),
        backbone="multilenet",
        hv_reference=(1.0,) * num_tasks,
        load=_random_split(num_tasks),
        eval_points_per_edge=5 if num_tasks == 3 else 11,
    )


def random_batch(spec: DatasetSpec, n: int = 8) -> Batch:
    """Random 28x28 inputs and random 10-class targets for every objective of ``spec``, drawn from
    torch's global generator."""
    return torch.rand(n, 1, 28, 28), {k: torch.randint(10, (n,)) for k in spec.objective_names}


def train_batch(spec: DatasetSpec, n: int = 16) -> Batch:
    """The first ``n`` samples of ``spec``'s training split (loaded with no data root)."""
    x, targets = spec.load(None, "train")
    return x[:n], {k: v[:n] for k, v in targets.items()}


def backbone_maker(
    spec: DatasetSpec, backbone: str | None = None, options: Mapping[str, Any] | None = None
) -> Callable[..., MultiTaskNet]:
    """A ``make_backbone`` for :meth:`bench.core.spec.Method.build`: each call ``make_backbone(**kw)`` gives
    a fresh ``backbone`` (default ``spec.backbone``) with ``options`` (default ``spec.backbone_options``)
    and ``kw``."""
    name = backbone or spec.backbone
    fixed = dict(spec.backbone_options if options is None else options)

    def make_backbone(**kw: Any) -> MultiTaskNet:
        return create_backbone(name, spec, **fixed, **kw)

    return make_backbone


def build_method(
    method: str | type[Method],
    spec: DatasetSpec,
    *,
    seed: int | None = 0,
    hparams: Any = None,
    backbone: str | None = None,
    backbone_options: Mapping[str, Any] | None = None,
    make_backbone: Callable[..., MultiTaskNet] | None = None,
    device: str | torch.device = "cpu",
    **overrides: Any,
) -> tuple[Method, ConditionedNet]:
    """A method (a registered name or a class) for ``spec`` and the conditioned model it builds.

    The hyperparameters are ``hparams`` as given, or the class's defaults with ``overrides`` applied
    as ``method.<key>`` settings. torch's global generator is seeded with ``seed`` just before the
    build (``None``: left as it is). The backbones come from ``make_backbone``, by default
    :func:`backbone_maker` of ``spec``, ``backbone`` and ``backbone_options``. ``device`` is the
    method's device, which only picks an implementation: nothing moves."""
    cls = METHODS.get(method) if isinstance(method, str) else method
    if hparams is None:
        hparams = apply_overrides(cls.Hparams(), "method", overrides)
    elif overrides:
        raise TypeError("build_method takes hparams or method overrides, not both")
    instance = cls(hparams, spec, device=torch.device(device))
    make_backbone = make_backbone or backbone_maker(spec, backbone, backbone_options)
    if seed is not None:
        torch.manual_seed(seed)
    return instance, instance.build(make_backbone)


def build_preset(name: str, dataset: str = "multimnist-mini", **options: Any) -> tuple[Method, ConditionedNet]:
    """:func:`build_method` for registered method ``name`` on registered ``dataset``, with the
    dataset's preset hyperparameters (``resolve(name, dataset).hparams``); the method's ``spec`` is
    the dataset's."""
    return build_method(name, DATASETS.get(dataset), hparams=resolve(name, dataset).hparams, **options)


def build_for_record(
    method_name: str, setup: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> tuple[Method, ConditionedNet, torch.optim.Optimizer, DatasetSpec]:
    """Our method, model (seeded with ``setup["seed"]``, each backbone ``setup["backbone"]``) and Adam
    for a lockstep record's ``setup``, as ``bench.train.runner`` assembles them; the hyperparameters are the
    dataset's preset plus ``setup["overrides"]`` (where the record has some) and ``overrides``."""
    layered = {**setup.get("overrides", {}), **(overrides or {})}
    cfg = resolve(method_name, setup["dataset"], seed=setup["seed"], overrides=layered)
    spec = DATASETS.get(setup["dataset"])
    method, cnet = build_method(method_name, spec, hparams=cfg.hparams, seed=setup["seed"], backbone=setup["backbone"])
    return method, cnet, make_optimizer(cfg, method, cnet), spec


def record_batches(setup: Mapping[str, Any], spec: DatasetSpec) -> list[Batch]:
    """A lockstep record's ``setup["steps"]`` seeded batches for ``spec`` (:func:`bench.core.fidelity.spec_batches`)."""
    return spec_batches(spec, setup["batch_size"], setup["steps"], setup["data_seed"])


def train_steps(method: Method, cnet: ConditionedNet, spec: DatasetSpec, steps: int, seed: int = 0) -> list[float]:
    """``steps`` Adam steps (lr 1e-3) of ``method`` on :func:`train_batch` (16 samples), the rays drawn
    from a generator seeded with ``seed``; the loss of each step."""
    optimizer = torch.optim.Adam(method.param_groups(cnet, 1e-3), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    x, targets = train_batch(spec)
    losses_seen = []
    for step in range(steps):
        rays = method.train_rays((step + 1) / steps, generator)
        losses = compute_losses(cnet, x, targets, rays, spec.objectives)
        optimizer.zero_grad()
        losses_seen.append(method.backward(losses, rays, cnet).item())
        optimizer.step()
    return losses_seen


def tiny_settings(epochs: int = 2, batch_size: int = 64, train_limit: int = 256, eval_limit: int = 128) -> list[str]:
    """``--set`` assignments for a run of a few steps on a small slice of the data."""
    return [
        f"train.epochs={epochs}",
        f"train.batch_size={batch_size}",
        f"data.train_limit={train_limit}",
        f"data.eval_limit={eval_limit}",
    ]


def randomize(module: nn.Module, seed: int = 1, *, add: bool = False) -> None:
    """Move every parameter of ``module`` off its initial value: replace it by (``add``: add to it)
    N(0, 0.1^2) noise from a generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            noise = torch.randn(p.shape, generator=g) * 0.1
            if add:
                p.add_(noise)
            else:
                p.copy_(noise)
