"""Evaluation of a conditioned model over a grid of rays: every metric of every objective, per ray.

Each metric sums its per-batch statistics over the split (:meth:`bench.core.spec.Metric.statistics`),
so means, confusion-matrix mIoU and histogram medians are all exact over the whole split.

What makes it cheap, none of which changes a number: each ray's model is made once per evaluation
(:meth:`bench.core.spec.ConditionedNet.at_ray`: PaLoRA's merged weights, PaMaL's weighted sum, PHN's
hypernetwork output) rather than once per batch; ``torch.inference_mode``; on CPU the forward runs
in slices of :data:`CPU_FORWARD_SLICE` samples, whose activations stay in cache (COSMOS's full-grid
pass over 5,000 MultiLeNet samples: 1.68 s in slices of 1,024, 1.31 s in slices of 256, bitwise the
same outputs), and the outputs are put back together before the statistics, so these are computed
as before; on CPU, 2x2 max pools as maxima of strided views (:func:`cpu_max_pools`). Slicing
keeps each sample's output only for a model whose samples do not interact: a model that normalises
with its batch's statistics in evaluation (:attr:`bench.core.spec.ConditionedNet.batch_dependent_eval`,
PHN on ResNet-18 and SegNet) runs each batch of ``train.eval_batch_size`` whole on every device, so
CPU and GPU give the same front.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeGuard

import torch
from torch import Tensor, nn

from bench.core.rays import eval_grid
from bench.core.spec import Batch, ConditionedNet, DatasetSpec

CPU_FORWARD_SLICE = 256
"""Samples per forward on CPU (0: the whole batch). Only the compute is sliced, not the batch."""
BOUND_BYTES_BUDGET = 1 << 30
"""At most this many bytes of per-ray weights are made at once; more rays take another pass over the data."""


def forward_slice(device: torch.device, batch_dependent: bool = False) -> int:
    """Samples per forward (0: the whole batch): :data:`CPU_FORWARD_SLICE` on CPU, the whole batch
    elsewhere; the whole batch on every device for a model whose outputs depend on the batch
    (:attr:`bench.core.spec.ConditionedNet.batch_dependent_eval`: PHN's batch-statistics BatchNorm), which
    so sees the batches of ``train.eval_batch_size`` on CPU and GPU alike."""
    return CPU_FORWARD_SLICE if device.type == "cpu" and not batch_dependent else 0


def sliced(
    model: Callable[[Tensor], dict[str, Tensor]], x: Tensor, size: int, sample_dim: int = 0
) -> dict[str, Tensor]:
    """``model(x)``, computed ``size`` samples at a time (all at once when ``size`` is 0 or larger);
    the outputs' samples lie along ``sample_dim`` (1 for [R, B, ...] outputs of several rays)."""
    if not size or x.shape[0] <= size:
        return model(x)
    parts = [model(x[i : i + size]) for i in range(0, x.shape[0], size)]
    return {name: torch.cat([p[name] for p in parts], dim=sample_dim) for name in parts[0]}


def _max_of_four(pool: nn.MaxPool2d) -> Callable[[Tensor], Tensor]:
    """``pool`` (2x2, stride 2) as the maximum of row pairs, then of column pairs: the same values (a
    maximum is exact; NaN propagates as in ATen's pooling), 10-17x faster than ATen's CPU pooling,
    which also computes the argmax indices. Odd sizes go to the module's own pooling."""
    own = type(pool).forward.__get__(pool)

    def forward(x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[-1] % 2 or x.shape[-2] % 2:
            return own(x)
        rows = torch.maximum(x[..., 0::2, :], x[..., 1::2, :])
        return torch.maximum(rows[..., 0::2], rows[..., 1::2])

    return forward


def _plain_two_by_two(module: nn.Module) -> TypeGuard[nn.MaxPool2d]:
    if not isinstance(module, nn.MaxPool2d) or module.return_indices or module.ceil_mode:
        return False
    return (
        all(value in (2, (2, 2)) for value in (module.kernel_size, module.stride or module.kernel_size))
        and module.padding in (0, (0, 0))
        and module.dilation in (1, (1, 1))
    )


@contextlib.contextmanager
def cpu_max_pools(cnet: nn.Module) -> Iterator[None]:
    """While evaluating on CPU, each 2x2 max pool of ``cnet`` runs as :func:`_max_of_four`; its own
    forward is back on exit, so training (which needs the argmax for its gradient) never sees it."""
    pools: list[nn.MaxPool2d] = [m for m in cnet.modules() if _plain_two_by_two(m)]
    try:
        for pool in pools:
            pool.forward = _max_of_four(pool)  # type: ignore[method-assign, assignment]
        yield
    finally:
        for pool in pools:
            pool.__dict__.pop("forward", None)


def batched_rays(cnet: ConditionedNet, device: torch.device) -> bool:
    """Whether the group's rays run in one ``forward_rays`` call: for models whose own fast path it is
    (:attr:`bench.core.spec.ConditionedNet.batches_rays`, LS's stacked members), on an accelerator; on
    CPU each ray runs alone (a vmapped MultiLeNet's grouped convolutions are slower there)."""
    return cnet.batches_rays and device.type != "cpu"


def ray_groups(cnet: ConditionedNet, rays: Tensor) -> list[Tensor]:
    """``rays`` in groups whose per-ray weights fit :data:`BOUND_BYTES_BUDGET` together."""
    per_ray = max(1, cnet.inference_parameters() * 4)
    size = max(1, BOUND_BYTES_BUDGET // per_ray)
    return [rays[i : i + size] for i in range(0, rays.shape[0], size)]


def validation_rays(eval_rays: Tensor, num_tasks: int, points_per_edge: int) -> Tensor:
    """The rays validated during training (``train.val_points_per_edge``): those of ``eval_rays``
    on the coarser grid with ``points_per_edge`` points per edge; all of them when that is 0 or
    when none lies on it (custom LS rays, T >= 4, a single-point method's uniform ray)."""
    if points_per_edge <= 0:
        return eval_rays
    coarse = eval_grid(num_tasks, points_per_edge).to(eval_rays)
    on_grid = torch.isclose(eval_rays[:, None, :], coarse[None], atol=1e-6).all(-1).any(-1)
    return eval_rays[on_grid] if on_grid.any() else eval_rays


def _batch_statistics(outs: list[dict[str, Tensor]], targets: dict[str, Tensor], keys: list) -> list[list[Tensor]]:
    return [[m.statistics(out[o.name], targets[o.name]) for o, m in keys] for out in outs]


def _ray_sums(
    cnet: ConditionedNet, loader: Iterable[Batch], rays: Tensor, keys: list, batch_dependent: bool
) -> list[list[Tensor]]:
    """Per ray, each (objective, metric)'s statistics summed over the split."""
    sums: list[list[Tensor]] = []
    for group in ray_groups(cnet, rays):
        group_sums: list[list[Tensor]] | None = None
        all_rays = functools.partial(cnet.forward_rays, rays=group)  # outputs [R, B, ...]
        models = None if batched_rays(cnet, group.device) else [cnet.at_ray(ray) for ray in group]
        for x, targets in loader:
            size = forward_slice(x.device, batch_dependent)
            if models is None:  # the model runs several rays in one call ([R, B, ...] outputs)
                stacked = sliced(all_rays, x, size, sample_dim=1)
                outs = [{name: out[r] for name, out in stacked.items()} for r in range(group.shape[0])]
            else:
                outs = [sliced(model, x, size) for model in models]
            batch = _batch_statistics(outs, targets, keys)
            group_sums = (
                batch
                if group_sums is None
                else [[a + b for a, b in zip(s, t, strict=True)] for s, t in zip(group_sums, batch, strict=True)]
            )
        if group_sums is None:
            raise ValueError("evaluation split is empty")
        sums += group_sums
    return sums


@torch.inference_mode()
def evaluate(cnet: ConditionedNet, loader: Iterable[Batch], rays: Tensor, spec: DatasetSpec) -> list[dict[str, Any]]:
    """Each metric of each objective over the split, for each ray: one row per (ray, objective, metric)."""
    was_training = cnet.training
    cnet.eval()
    keys = [(o, m) for o in spec.objectives for m in o.metrics]
    layout = cpu_max_pools(cnet) if rays.device.type == "cpu" else contextlib.nullcontext()
    try:
        with layout:
            sums = _ray_sums(cnet, loader, rays, keys, cnet.batch_dependent_eval)
    finally:
        cnet.train(was_training)
    values = [[m.value(stat.cpu()) for (_, m), stat in zip(keys, per_ray, strict=True)] for per_ray in sums]
    return [
        {
            "ray_index": r,
            "ray": [round(v, 6) for v in ray.tolist()],
            "objective": o.name,
            "metric": m.name,
            "value": values[r][j],
        }
        for r, ray in enumerate(rays.cpu())
        for j, (o, m) in enumerate(keys)
    ]


def front(rows: list[dict[str, Any]], spec: DatasetSpec) -> list[dict[str, Any]]:
    """Per ray: the ray and every objective's metrics, from evaluation rows."""
    by_ray: dict[int, dict[str, Any]] = {}
    for row in rows:
        entry = by_ray.setdefault(row["ray_index"], {"ray": row["ray"], "metrics": {}})
        entry["metrics"].setdefault(row["objective"], {})[row["metric"]] = row["value"]
    return [by_ray[i] for i in sorted(by_ray)]
