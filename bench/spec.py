"""The contract between the harness and every dataset, backbone and method.

Everything the training loop knows about a method is in :class:`Method`; everything it knows about
a model is :meth:`ConditionedNet.forward`; everything it knows about a dataset is
:class:`DatasetSpec`. Modelled on mlcommons/algorithmic-efficiency's ``spec.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

Batch = tuple[Tensor, dict[str, Tensor]]
"""An input batch and one target tensor per objective name."""


@dataclasses.dataclass(frozen=True)
class Metric:
    """A per-sample metric, averaged over a split.

    ``fn(output, target)`` returns one value per sample. For the hypervolume a metric is put in
    minimisation form: ``best - value`` when higher is better (accuracy -> error), else ``value``.
    """

    name: str
    fn: Callable[[Tensor, Tensor], Tensor]
    higher_is_better: bool
    best: float = 0.0

    def to_minimization(self, value: float) -> float:
        return self.best - value if self.higher_is_better else value


@dataclasses.dataclass(frozen=True)
class Objective:
    """One task: its loss (mean over the batch), its metrics, and the metric the hypervolume uses."""

    name: str
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    metrics: tuple[Metric, ...]
    hv_metric: str

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return self.loss_fn(output, target)

    def metric(self, name: str) -> Metric:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(f"objective {self.name!r} has no metric {name!r}")


Split = Literal["train", "val", "test"]


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its tasks, its default backbone and training protocol, and its fixed HV reference.

    ``load(root, split)`` returns the whole split as tensors (inputs, targets per objective); it
    raises :class:`bench.errors.MissingDataError` naming the missing files and the prepare command.
    ``train_defaults`` are dotted config keys (``train.epochs``) from the paper's protocol.
    ``hv_reference`` is in minimisation form, one coordinate per objective, in objective order.
    """

    name: str
    description: str
    input_shape: tuple[int, ...]
    objectives: tuple[Objective, ...]
    backbone: str
    hv_reference: tuple[float, ...]
    load: Callable[[Path, Split], tuple[Tensor, dict[str, Tensor]]]
    train_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    eval_points_per_edge: int = 11

    @property
    def num_tasks(self) -> int:
        return len(self.objectives)

    @property
    def objective_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.objectives)

    def eval_rays(self) -> Tensor:
        from bench.rays import eval_grid

        return eval_grid(self.num_tasks, self.eval_points_per_edge)


class MultiTaskNet(nn.Module):
    """A shared encoder followed by one head per objective: ``forward(x) -> {objective: output}``."""

    def __init__(self, encoder: nn.Module, heads: nn.ModuleDict) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = heads

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        z = self.encoder(x)
        return {name: head(z) for name, head in self.heads.items()}


class ConditionedNet(nn.Module):
    """A model that takes a preference ray: ``forward(x, ray[T]) -> {objective: output}``.

    The only model signature the training loop knows. ``inference_parameters`` counts the
    parameters one ray needs at test time (e.g. the merged backbone for PaLoRA).
    """

    path: ClassVar[str] = "unconditioned"
    """How the ray enters the model; recorded with every run."""

    def forward(self, x: Tensor, ray: Tensor) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def inference_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


@dataclasses.dataclass(frozen=True)
class NoHparams:
    """Hyperparameters of a method that has none."""


class Method:
    """A training method: a frozen hyperparameter dataclass plus hooks, each with a default.

    Subclasses set ``Hparams`` (a frozen dataclass whose fields are the ``method.*`` config keys)
    and override what they need. The loop calls, per step: ``train_rays`` -> one forward per ray
    -> ``backward(losses[R, T], rays[R, T], cnet)`` -> optimizer step.
    """

    Hparams: ClassVar[type] = NoHparams
    kind: ClassVar[Literal["front", "point"]] = "front"
    """``front``: evaluated on the dataset's ray grid; ``point``: one unconditioned solution."""

    def __init__(self, hparams: Any, spec: DatasetSpec) -> None:
        self.hparams = hparams
        self.spec = spec
        self.num_tasks = spec.num_tasks

    def build(self, make_backbone: Callable[..., MultiTaskNet]) -> ConditionedNet:
        """Turn freshly initialised backbone(s) into the ray-conditioned model. Each call of
        ``make_backbone(**kw)`` gives a new backbone; ``extra_inputs=n`` widens its input by n."""
        raise NotImplementedError

    def train_rays(self, progress: float, generator: torch.Generator) -> Tensor:
        """Rays [R, T] for the step at ``progress`` = (step + 1) / total_steps."""
        raise NotImplementedError

    def backward(self, losses: Tensor, rays: Tensor, cnet: ConditionedNet) -> Tensor:
        """Reduce losses [R, T] under rays [R, T] and back-propagate; returns the scalar loss."""
        loss = (rays * losses).sum()
        loss.backward()
        return loss.detach()

    def param_groups(self, cnet: ConditionedNet, lr: float) -> list[dict[str, Any]]:
        return [{"params": [p for p in cnet.parameters() if p.requires_grad], "lr": lr}]

    def eval_rays(self) -> Tensor:
        return self.spec.eval_rays()

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got keys {sorted(state)}")

    def describe(self) -> dict[str, Any]:
        """Facts about this run's method for the record (memory model, number of models...)."""
        return {}
