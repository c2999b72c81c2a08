"""The contract between the harness and every dataset, backbone and method.

Everything the training loop knows about a method is in :class:`Method`; everything it knows about
a model is :meth:`ConditionedNet.forward`; everything it knows about a dataset is
:class:`DatasetSpec`. Modelled on mlcommons/algorithmic-efficiency's ``spec.py``.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

Batch = tuple[Tensor, dict[str, Tensor]]
"""An input batch and one target tensor per objective name."""


@dataclasses.dataclass(frozen=True)
class Metric:
    """A metric of one objective over a split.

    By default ``fn(output, target)`` returns one value per sample (or per element) and the metric
    is their mean over the split. A dataset-level metric (mIoU, a median) sets ``finalize``: then
    ``fn`` returns a 1-D tensor of sufficient statistics (a confusion matrix, a histogram), which is
    summed over batches and turned into the value by ``finalize(sums)``.
    For the hypervolume a metric is put in minimisation form: ``best - value`` when higher is
    better (accuracy -> error), else ``value``.
    """

    name: str
    fn: Callable[[Tensor, Tensor], Tensor]
    higher_is_better: bool
    best: float = 0.0
    finalize: Callable[[Tensor], float] | None = None

    def statistics(self, output: Tensor, target: Tensor) -> Tensor:
        """What one batch adds to the split's running sums (float64, 1-D)."""
        values = self.fn(output, target).double()
        if self.finalize is not None:
            return values.reshape(-1)
        return torch.stack([values.sum(), values.new_tensor(float(values.numel()))])

    def value(self, sums: Tensor) -> float:
        """The metric from the split's summed statistics."""
        if self.finalize is not None:
            return float(self.finalize(sums))
        return float(sums[0] / sums[1])

    def to_minimization(self, value: float) -> float:
        return self.best - value if self.higher_is_better else value


@dataclasses.dataclass(frozen=True)
class Objective:
    """One task: its loss (mean over the batch), its metrics, the metric the hypervolume uses, and
    how many output channels its head produces (classes for classification, 1 for a regression)."""

    name: str
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    metrics: tuple[Metric, ...]
    hv_metric: str
    outputs: int = 1

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return self.loss_fn(output, target)

    def metric(self, name: str) -> Metric:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(f"objective {self.name!r} has no metric {name!r}")


@dataclasses.dataclass(frozen=True)
class HypervolumeDefinition:
    """A named hypervolume of a dataset: per coordinate an ``(objective, metric)`` pair, read from the
    per-ray test metrics and put in minimisation form (:meth:`Metric.to_minimization`), and the
    reference point in that form, one coordinate each. ``note`` says where the definition comes from."""

    name: str
    coordinates: tuple[tuple[str, str], ...]
    reference: tuple[float, ...]
    note: str = ""

    def __post_init__(self) -> None:
        if len(self.coordinates) != len(self.reference):
            raise ValueError(
                f"hypervolume {self.name!r}: {len(self.reference)} reference coordinates for "
                f"{len(self.coordinates)} (objective, metric) pairs"
            )

    def describe(self) -> str:
        """``(age huber, gender loss, race loss), reference (1.0, 1.0, 1.0)``."""
        on = ", ".join(f"{objective} {metric}" for objective, metric in self.coordinates)
        return f"({on}), reference {tuple(self.reference)}"


Split = Literal["train", "val", "test"]
SplitData = tuple[Tensor, dict[str, Tensor]] | Dataset
"""A split as tensors (small sets: moved to the device once) or as a map-style torch Dataset whose
items are ``(input, {objective: target})`` (image sets: decoded by DataLoader worker processes)."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its tasks, its default backbone and training protocol, and its fixed HV reference.

    ``load(root, split)`` returns the split (:data:`SplitData`); it raises
    :class:`bench.core.errors.MissingDataError` naming the missing files and the prepare command.
    ``train_defaults`` are dotted config keys (``train.epochs``) from the paper's protocol.
    ``hv_reference`` is in minimisation form, one coordinate per objective named in ``hv_objectives``
    (all objectives when empty: a 40-task front needs a declared subset), in objective order. With
    each objective's ``hv_metric`` they make the default hypervolume, named ``hv_name``; the report
    also shows each of ``hv_alternatives`` (:class:`HypervolumeDefinition`), e.g. the official
    code's definition beside ours.
    """

    name: str
    description: str
    input_shape: tuple[int, ...]
    objectives: tuple[Objective, ...]
    backbone: str
    hv_reference: tuple[float, ...]
    load: Callable[[Path, Split], SplitData]
    train_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    eval_points_per_edge: int = 11
    hv_objectives: tuple[str, ...] = ()
    backbone_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Keyword arguments for the default backbone's factory (e.g. an MLP's hidden sizes)."""
    paper_dataset: str = ""
    """The dataset whose published numbers the report shows beside this one's (default: itself);
    the report labels them with that name, so a reduced set is never passed off as the paper's."""
    hv_name: str = "default"
    """The name of the default hypervolume (e.g. ``official`` where it is the official code's)."""
    hv_note: str = ""
    """Where the default hypervolume comes from, for the report."""
    hv_alternatives: tuple[HypervolumeDefinition, ...] = ()
    """Other hypervolumes the report shows in tables of their own."""
    split_sizes: Mapping[str, int] = dataclasses.field(default_factory=dict)
    """Samples per split of the official data (``train``, ``val``, ``test``), so that a sweep can be
    planned where the files are not (:mod:`bench.sweep.plan`); empty: planning reads the files."""

    def __post_init__(self) -> None:
        unknown = set(self.hv_objectives) - set(self.objective_names)
        if unknown:
            raise ValueError(f"{self.name}: hv_objectives {sorted(unknown)} are not objectives")
        if len(self.hv_reference) != len(self.hypervolume_objectives):
            raise ValueError(
                f"{self.name}: hv_reference has {len(self.hv_reference)} coordinates for "
                f"{len(self.hypervolume_objectives)} hypervolume objectives"
            )
        names = [d.name for d in self.hv_definitions]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: hypervolume names {names} repeat")
        by_name = {o.name: o for o in self.objectives}
        for definition in self.hv_alternatives:
            for objective, metric in definition.coordinates:
                if objective not in by_name or metric not in {m.name for m in by_name[objective].metrics}:
                    raise ValueError(
                        f"{self.name}: hypervolume {definition.name!r} reads {objective!r} {metric!r}, "
                        "which is not a metric of an objective"
                    )

    @property
    def hv_default(self) -> HypervolumeDefinition:
        """The default hypervolume: each hypervolume objective's ``hv_metric``, against ``hv_reference``."""
        return HypervolumeDefinition(
            self.hv_name,
            tuple((o.name, o.hv_metric) for o in self.hypervolume_objectives),
            tuple(self.hv_reference),
            self.hv_note,
        )

    @property
    def hv_definitions(self) -> tuple[HypervolumeDefinition, ...]:
        """The default hypervolume, then the alternatives."""
        return (self.hv_default, *self.hv_alternatives)

    def hv_definition(self, name: str | None = None) -> HypervolumeDefinition:
        """The hypervolume named ``name`` (the default when None); a ValueError lists the valid names."""
        if name is None:
            return self.hv_default
        for definition in self.hv_definitions:
            if definition.name == name:
                return definition
        valid = ", ".join(d.name for d in self.hv_definitions)
        raise ValueError(f"{self.name} has no hypervolume {name!r}; valid: {valid}")

    @property
    def hypervolume_objectives(self) -> tuple[Objective, ...]:
        """The objectives the hypervolume is computed on (``hv_objectives``, else all)."""
        if not self.hv_objectives:
            return self.objectives
        return tuple(o for o in self.objectives if o.name in self.hv_objectives)

    @property
    def num_tasks(self) -> int:
        return len(self.objectives)

    @property
    def objective_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.objectives)

    def eval_rays(self) -> Tensor:
        from bench.core.rays import eval_grid

        return eval_grid(self.num_tasks, self.eval_points_per_edge)


class MultiTaskNet(nn.Module):
    """A shared encoder followed by one head per objective: ``forward(x) -> {objective: output}``."""

    layer_init: str = "pytorch"
    """How the factory initialised the Conv2d/Linear layers: ``pytorch`` (each layer's own
    ``reset_parameters``), or the factory's name for its scheme (see :mod:`bench.backbones.weights`)."""

    def __init__(self, encoder: nn.Module, heads: nn.ModuleDict) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = heads

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        z = self.encoder(x)
        return {name: head(z) for name, head in self.heads.items()}


class ConditionedNet(nn.Module):
    """A model that takes a preference ray: ``forward(x, ray[T]) -> {objective: output}``.

    The only model signature the training loop knows. What methods may rely on besides it:

    - :meth:`shared_parameters`: the parameters every task's loss reaches (gradient balancing,
      MGDA and the aggregators differentiate through them);
    - ``method_parameters``: where a method keeps learnable parameters of its own that are not part
      of the model (e.g. the log-variances of uncertainty weighting, Kendall et al. CVPR 2018). They
      are put there in :meth:`Method.build`, so they move with ``.to(device)``, reach the optimizer
      through the default :meth:`Method.param_groups` and the checkpoint through ``state_dict``
      (keys ``method_parameters.<name>``);
    - ``inference_parameters``: the parameters one ray needs at test time (e.g. the merged
      backbone for PaLoRA);
    - :attr:`batch_dependent_eval`: whether evaluation outputs depend on the batch (BatchNorm with
      batch statistics), so that the evaluation never splits a batch.
    """

    conditioning: str = "unconditioned"
    """How the ray enters the model; recorded with every run (``summary.json``'s ``conditioning``).
    Set by the class, or by the instance where its construction decides it (e.g. COSMOS's upsampled
    ray channels)."""
    vmaps_over_rays: bool = False
    """Whether ``forward`` may run under ``torch.func.vmap`` over rays: the ray only computes
    parameters or inputs, and ``forward`` has no side effects (``train.ray_batching = vmap``). Set
    by the class, or by the instance (PaLoRA's activations path registers hooks per call: no vmap)."""
    batches_rays: ClassVar[bool] = False
    """Whether :meth:`forward_rays` is the model's own fast path (e.g. K stacked models run as one
    vmapped model): the loop and the evaluation then run several rays through it in one call,
    whatever ``train.ray_batching`` says."""

    def __init__(self) -> None:
        super().__init__()
        self.method_parameters = nn.ParameterDict()
        """A method's own learnable parameters (empty unless the method adds some in ``build``)."""

    def forward(self, x: Tensor, ray: Tensor) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_rays(self, x: Tensor, rays: Tensor) -> dict[str, Tensor]:
        """The outputs for every ray of ``rays`` [R, T] at once, each [R, B, ...]: ``forward``
        vmapped over the rays (a ray-specific weight becomes a batched matmul or grouped conv)."""
        return torch.func.vmap(lambda ray: self(x, ray), randomness="different")(rays)

    def at_ray(self, ray: Tensor) -> Callable[[Tensor], dict[str, Tensor]]:
        """The model with ``ray`` fixed, for evaluation: ``at_ray(ray)(x) == self(x, ray)``. A model
        whose ray makes its parameters overrides it to make them once, not once per batch."""
        return lambda x: self(x, ray)

    def shared_parameters(self) -> list[nn.Parameter]:
        """The parameters that every task's loss reaches (the official ``shared_parameters``).
        Default: every trainable parameter outside ``method_parameters``, right for a model without
        task-specific parts; a model with per-task heads returns its encoder's (and whatever the
        method put inside the encoder, e.g. PaLoRA's encoder adapters)."""
        own = {id(p) for p in self.method_parameters.parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in own]

    def inference_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def batch_dependent_eval(self) -> bool:
        """Whether a sample's output in eval mode depends on the other samples of its batch. True when
        a BatchNorm layer keeps no running statistics, so it normalises with the batch's statistics in
        eval mode too (PHN's target, as the official ``ResNetTarget``'s ``F.batch_norm(...,
        training=True)``). The evaluation then runs every batch of ``train.eval_batch_size`` whole, on
        every device (:func:`bench.train.evaluate.forward_slice`). A model with another kind of batch
        dependence overrides this."""
        return any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is None and m.running_var is None
            for m in self.modules()
        )


@dataclasses.dataclass(frozen=True)
class NoHparams:
    """Hyperparameters of a method that has none."""


H = TypeVar("H")
"""A method's hyperparameter dataclass."""


MethodInfo = dict[str, str | int | float | bool | None]
"""What :meth:`Method.describe` reports for the run record (``summary.json``, ``method_info``): any
keys a method chooses (``models``, ``sampler``, ``window``, ...), each value a JSON scalar."""


class Method(Generic[H]):
    """A training method: a frozen hyperparameter dataclass plus hooks, each with a default.

    A method names its hyperparameters as the type argument, ``class PaLoRA(Method[PaLoRAHparams])``
    (fields: the ``method.*`` config keys; ``Literal[...]`` fields list their valid values), and
    overrides what it needs. ``Hparams`` is derived from that argument (:class:`NoHparams` without
    one). The loop calls, per step: ``train_rays`` -> one forward per ray ->
    ``backward(losses[R, T], rays[R, T], cnet)`` -> optimizer step.
    """

    Hparams: ClassVar[type[Any]] = NoHparams
    """The hyperparameter dataclass: the type argument of the generic base (set by ``__init_subclass__``)."""
    kind: ClassVar[Literal["front", "point"]] = "front"
    """``front``: evaluated on the dataset's ray grid; ``point``: one unconditioned solution."""

    hparams: H
    spec: DatasetSpec

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in cls.__dict__.get("__orig_bases__", ()):
            origin, args = typing.get_origin(base), typing.get_args(base)
            if isinstance(origin, type) and issubclass(origin, Method) and args and isinstance(args[0], type):
                if not dataclasses.is_dataclass(args[0]):
                    raise TypeError(f"{cls.__name__}: hyperparameters {args[0].__name__} must be a dataclass")
                cls.Hparams = args[0]

    def __init__(self, hparams: H, spec: DatasetSpec, *, device: torch.device = torch.device("cpu")) -> None:
        self.hparams = hparams
        self.spec = spec
        self.num_tasks = spec.num_tasks
        self.device = device
        """The device the run trains on: a method may pick the implementation that is fastest there
        (never one that computes something else). A subclass that overrides ``__init__`` takes
        ``device`` as a keyword and passes it on."""

    def build(self, make_backbone: Callable[..., MultiTaskNet]) -> ConditionedNet:
        """Turn freshly initialised backbone(s) into the ray-conditioned model. Each call of
        ``make_backbone(**kw)`` gives a new backbone; ``extra_inputs=n`` widens its input by n.
        Learnable parameters of the method itself go in the result's ``method_parameters``."""
        raise NotImplementedError

    def train_rays(self, progress: float, generator: torch.Generator) -> Tensor:
        """Rays [R, T] for the step at ``progress`` in (0, 1] (:func:`bench.train.loop.training_progress`)."""
        raise NotImplementedError

    def backward(self, losses: Tensor, rays: Tensor, cnet: ConditionedNet) -> Tensor:
        """Reduce losses [R, T] under rays [R, T] and back-propagate; returns the scalar loss."""
        loss = (rays * losses).sum()
        loss.backward()
        return loss.detach()

    def param_groups(self, cnet: ConditionedNet, lr: float) -> list[dict[str, Any]]:
        """The optimizer's parameter groups: every trainable parameter, ``method_parameters``
        included, once. An override must keep covering them all (a contract test checks it)."""
        return [{"params": [p for p in cnet.parameters() if p.requires_grad], "lr": lr}]

    def eval_rays(self) -> Tensor:
        return self.spec.eval_rays()

    def state_dict(self) -> dict[str, Any]:
        """State the method keeps outside the model (counters, an aggregator's memory)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got keys {sorted(state)}")

    def describe(self) -> MethodInfo:
        """Facts about this run's method for the record (:data:`MethodInfo`: JSON scalars by name)."""
        return {}
