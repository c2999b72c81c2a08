"""Linear scalarisation: one independent unconditioned model per fixed ray (spec/methods.md ``ls``).

Model k minimises ``ray_k . L``. A run trains one model per ray of ``method.rays`` (default: the
dataset's evaluation grid), so that it yields a front like every PFL method. The models are trained
in lockstep over the same batches: their parameters, gradients and Adam states are disjoint, so
this equals K separate trainings with shared data order, and it needs K models in memory (the
record says so). A sweep can split the rays over jobs: ``--set method.rays=0.3,0.7`` trains one model.

``method.stacking`` picks how the K models run. ``loop`` (:class:`Ensemble`): K modules, one forward
each. ``vmap`` (:class:`StackedEnsemble`): every parameter stacked as one [K, *shape] tensor and one
``torch.func.vmap`` over ``torch.func.functional_call`` of a parameter-free backbone, so one forward
and one backward train all K (Adam is elementwise: one Adam over the stacks equals K Adams).
vmap cannot update BatchNorm running statistics, so ``auto`` (default) stacks only backbones without
them (MultiLeNet, MLP), and only on an accelerator: on CPU the stacked MultiLeNet's grouped
convolutions are ~2x slower than the loop (H200: 2.4x faster; ``results/performance*.md``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from bench.core.conditioning import FunctionalTarget, parameter_key, tracked_batchnorm
from bench.core.errors import ConfigError
from bench.core.registry import METHODS
from bench.core.spec import ConditionedNet, DatasetSpec, Method, MethodInfo, MultiTaskNet


@dataclasses.dataclass(frozen=True)
class LSHparams:
    """``rays``: the fixed loss weights, one model each; empty means the dataset's evaluation grid.
    ``stacking``: ``auto``, ``vmap`` (stacked parameters, one vmapped forward) or ``loop`` (K modules)."""

    rays: tuple[tuple[float, ...], ...] = ()
    stacking: Literal["auto", "vmap", "loop"] = "auto"


class _PerRayModels(ConditionedNet):
    """K models, model k trained for ``rays[k]``; maps rays to members."""

    conditioning = "one-model-per-ray"
    rays: Tensor
    """The members' rays [K, T] (a buffer: it moves with the model)."""

    def __init__(self, rays: Tensor) -> None:
        super().__init__()
        self.register_buffer("rays", rays.clone())
        self._rays_cpu = rays.clone().cpu()

    def member_indices(self, rays: Tensor) -> list[int]:
        """The member trained for each ray of ``rays`` [R, T]; ValueError for a ray none was trained for."""
        rays = rays.detach().cpu().to(self._rays_cpu.dtype).reshape(-1, self._rays_cpu.shape[1])
        hits = torch.isclose(rays[:, None], self._rays_cpu[None], atol=1e-6).all(dim=2)  # [R, K]
        found = hits.any(dim=1)
        if not found.all():
            ray = rays[int((~found).nonzero()[0])]
            raise ValueError(f"no LS model was trained for ray {ray.tolist()}; trained rays: {self._rays_cpu.tolist()}")
        return hits.int().argmax(dim=1).tolist()  # the first matching member

    def member_index(self, ray: Tensor) -> int:
        return self.member_indices(ray)[0]


class Ensemble(_PerRayModels):
    """K independent backbones, one per ray; ``forward(x, ray)`` runs the member trained for ``ray``."""

    def __init__(self, members: list[MultiTaskNet], rays: Tensor) -> None:
        super().__init__(rays)
        self.members = nn.ModuleList(members)

    def forward(self, x: Tensor, ray: Tensor) -> dict[str, Tensor]:
        return self.members[self.member_index(ray)](x)

    def at_ray(self, ray: Tensor) -> Callable[[Tensor], dict[str, Tensor]]:
        """The member trained for ``ray``, found once."""
        return self.members[self.member_index(ray)]

    def inference_parameters(self) -> int:
        return sum(p.numel() for p in self.members[0].parameters())


class StackedEnsemble(_PerRayModels):
    """The K backbones' parameters stacked [K, *shape] (``stacked``, keyed by ``parameter_key``) and
    run by ``vmap`` over ``functional_call`` of one parameter-free copy (``target``). Buffers are the
    first member's, shared: only for backbones without tracked BatchNorm statistics."""

    batches_rays = True

    def __init__(self, members: list[MultiTaskNet], rays: Tensor) -> None:
        super().__init__(rays)
        if name := tracked_batchnorm(members[0]):
            raise ValueError(f"cannot stack models with {name} running statistics under vmap")
        per_member = [dict(m.named_parameters()) for m in members]
        self.target = FunctionalTarget(members[0])
        self.target.take_initial()  # member 0's values: stacked below with the others
        self.names = list(self.target.shapes)
        self.stacked = nn.ParameterDict(
            {
                parameter_key(name): nn.Parameter(torch.stack([p[name].detach() for p in per_member]))
                for name in self.names
            }
        )

    def member_parameters(self, k: int) -> dict[str, Tensor]:
        """Member k's parameters (views of the stacks) by their backbone names."""
        return {name: self.stacked[parameter_key(name)][k] for name in self.names}

    def forward(self, x: Tensor, ray: Tensor) -> dict[str, Tensor]:
        return self.target(self.member_parameters(self.member_index(ray)), x)

    def forward_rays(self, x: Tensor, rays: Tensor) -> dict[str, Tensor]:
        """Each ray's member on ``x`` in one vmapped call: outputs [R, B, ...]."""
        index = self.member_indices(rays)
        stacks = {name: self.stacked[parameter_key(name)] for name in self.names}
        if index != list(range(len(self._rays_cpu))):  # a subset or another order: gather those members
            chosen = torch.tensor(index, device=self.rays.device)
            stacks = {name: stack.index_select(0, chosen) for name, stack in stacks.items()}
        return torch.func.vmap(lambda params: self.target(params, x), randomness="different")(stacks)

    def at_ray(self, ray: Tensor) -> Callable[[Tensor], dict[str, Tensor]]:
        """The member trained for ``ray``, its parameters sliced once."""
        params = self.member_parameters(self.member_index(ray))
        return lambda x: self.target(params, x)

    def inference_parameters(self) -> int:
        return self.target.numel()


@METHODS.register("ls")
class LinearScalarization(Method[LSHparams]):
    """Linear scalarisation: one independent model per fixed ray (loss = ray . losses)."""

    kind = "front"

    def __init__(self, hparams: LSHparams, spec: DatasetSpec, *, device: torch.device = torch.device("cpu")) -> None:
        super().__init__(hparams, spec, device=device)
        if hparams.rays:
            if any(len(ray) != self.num_tasks for ray in hparams.rays):
                raise ConfigError(f"method.rays: each ray needs {self.num_tasks} weights, got {list(hparams.rays)}")
            rays = torch.tensor(hparams.rays, dtype=torch.get_default_dtype())
            if (rays < 0).any() or not torch.allclose(rays.sum(1), torch.ones(len(rays)), atol=1e-6):
                raise ConfigError(f"method.rays: weights must be >= 0 and sum to 1, got {list(hparams.rays)}")
            self.rays = rays
        else:
            self.rays = spec.eval_rays()
        self.stacking: str = hparams.stacking
        """The path that ran (``vmap`` or ``loop``) once :meth:`build` has chosen it."""

    def build(self, make_backbone: Callable[[], MultiTaskNet]) -> Ensemble | StackedEnsemble:
        members = [make_backbone() for _ in range(len(self.rays))]
        batchnorm = tracked_batchnorm(members[0])
        if self.hparams.stacking == "vmap" and batchnorm:
            raise ConfigError(
                f"method.stacking=vmap cannot stack LS models whose backbone has {batchnorm} layers "
                "(vmap cannot update their running statistics); use method.stacking=loop"
            )
        stack = self.hparams.stacking == "vmap" or (self.hparams.stacking == "auto" and self.device.type != "cpu")
        self.stacking = "vmap" if stack and not batchnorm else "loop"
        if self.stacking == "loop":
            return Ensemble(members, self.rays)
        return StackedEnsemble(members, self.rays)

    def train_rays(self, progress: float, generator: torch.Generator) -> Tensor:
        return self.rays

    def eval_rays(self) -> Tensor:
        return self.rays

    def describe(self) -> MethodInfo:
        return {"models": len(self.rays), "memory_models": len(self.rays), "stacking": self.stacking}
