"""Peak memory of a phase: CUDA's peak-allocated counter on GPU, the process's peak RSS on CPU.

The CPU figure is the process-wide high-water mark (``ru_maxrss``), which cannot be reset, so a
later phase reports at least an earlier one's peak; the record names the kind of figure.
:func:`training_state_bytes` counts the bytes of parameters, gradients and optimizer state.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterable

import torch
from torch import Tensor


def peak_kind(device: torch.device) -> str:
    return "cuda_max_memory_allocated" if device.type == "cuda" else "process_peak_rss"


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def read_peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def tensor_bytes(tensors: Iterable[Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def training_state_bytes(module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes held by the training state, counted from the live tensors: every parameter, every
    gradient currently allocated (one per trainable parameter after a step), and every tensor in the
    optimizer's state (Adam: two moments per trainable parameter and a step counter)."""
    parameters = tensor_bytes(module.parameters())
    gradients = tensor_bytes(p.grad for p in module.parameters() if p.grad is not None)
    optimizer_state = tensor_bytes(
        v for state in optimizer.state.values() for v in state.values() if isinstance(v, Tensor)
    )
    return {
        "parameters": parameters,
        "gradients": gradients,
        "optimizer_state": optimizer_state,
        "total": parameters + gradients + optimizer_state,
    }
