"""Per-task gradients shared by the methods that look at them (MGDA, PHN-EPO, PaLoRA/PaMaL/PaDoRA
balancing), and the scalarised loss of the windowed front methods."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from bench.core.spec import ConditionedNet


def task_gradients(task_losses: Tensor, inputs: Sequence[Tensor]) -> Iterator[tuple[Tensor | None, ...]]:
    """Each task loss's gradients w.r.t. ``inputs`` (None for an input it does not reach); the graph is kept."""
    for loss in task_losses:
        yield torch.autograd.grad(loss, inputs, retain_graph=True, allow_unused=True)


def task_jacobian(task_losses: Tensor, inputs: Sequence[Tensor]) -> Tensor:
    """[T, n]: the gradient of each task loss w.r.t. ``inputs``, flattened (the graph is kept)."""
    rows = []
    for grads in task_gradients(task_losses, inputs):
        rows.append(
            torch.cat(
                [(g if g is not None else torch.zeros_like(x)).flatten() for g, x in zip(grads, inputs, strict=True)]
            )
        )
    return torch.stack(rows)


def task_gradient_norms(task_losses: Tensor, inputs: Sequence[Tensor]) -> Tensor:
    """[T]: ||grad L_k|| w.r.t. all of ``inputs`` for each task loss, detached (the graph is kept): the
    row norms of :func:`task_jacobian` as the norm of the per-tensor norms, without building the
    [T, n] Jacobian (on ResNet-18 or SegNet ensembles, gigabytes and most of a step's copying)."""
    norms = []
    for loss, grads in zip(task_losses, task_gradients(task_losses, inputs), strict=True):
        parts = [g.detach().norm() for g in grads if g is not None]
        norms.append(torch.linalg.vector_norm(torch.stack(parts)) if parts else loss.new_zeros(()).detach())
    return torch.stack(norms)


def gradient_balanced(losses: Tensor, rays: Tensor, shared: Sequence[Tensor]) -> Tensor:
    """sum_r sum_k lambda_rk L_rk / (||grad_shared L_rk|| + 1e-3), the norms treated as constants
    (official ``PaLoRA_GB`` / ``PaMaL_GB.get_weighted_loss``: PaLoRA's ``gb``, PaMaL's ``gradnorm``)."""
    total = losses.new_zeros(())
    for task_losses, ray in zip(losses, rays, strict=True):
        norms = task_gradient_norms(task_losses, shared)
        total = total + (ray * task_losses / (norms + 1e-3)).sum()
    return total


def scalarised_loss(losses: Tensor, rays: Tensor, cnet: ConditionedNet, inner_method: str) -> Tensor:
    """One window's loss before any regulariser: ``ls``: sum_r sum_k lambda_rk L_rk (official
    ``get_weighted_loss``); ``gb`` / ``gradnorm``: :func:`gradient_balanced` over
    ``cnet.shared_parameters()`` (PaLoRA's and PaDoRA's name, PaMaL's name, for one rule)."""
    if inner_method in ("gb", "gradnorm"):
        return gradient_balanced(losses, rays, cnet.shared_parameters())
    if inner_method == "ls":
        return (rays * losses).sum()
    raise ValueError(f"unknown inner method {inner_method!r}; valid: gb, gradnorm, ls")
