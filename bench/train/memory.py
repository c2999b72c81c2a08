"""Peak memory of a phase: CUDA's peak-allocated counter on GPU, the process's peak RSS on CPU.

On Linux the CPU high-water mark is reset at the start of a phase (``/proc/self/clear_refs``, after
``malloc_trim`` hands freed heap back to the OS), so each phase reports its own peak; elsewhere it is
the process-wide ``ru_maxrss``, and a later phase reports at least an earlier one's peak. The record
names the kind of figure. :func:`training_state_bytes` counts the bytes of parameters, gradients and
optimizer state; :func:`step_peak_bytes` measures what one call adds at its peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import re
import resource
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import Tensor


def peak_kind(device: torch.device) -> str:
    return "cuda_max_memory_allocated" if device.type == "cuda" else "process_peak_rss"


CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")


def _proc_status_bytes(key: str) -> int | None:
    """``VmRSS`` (resident now) or ``VmHWM`` (its high-water mark) of this process, in bytes (Linux)."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs ldconfig), or None elsewhere."""
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


def _trim_heap() -> None:
    """Give freed heap pages back to the OS (glibc), so resident memory is what is live."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def reset_cpu_peak() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0); False where that is not possible."""
    _trim_heap()
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _proc_status_bytes("VmHWM") is not None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset_cpu_peak()


def read_peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    hwm = _proc_status_bytes("VmHWM")
    if hwm is not None:
        return hwm
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def step_peak_bytes(device: torch.device, step: Callable[[], object]) -> tuple[int, str]:
    """What ``step()`` adds to memory at its peak, over what was allocated (CUDA) or resident (CPU)
    before it, and the kind of figure. On CPU without a resettable peak (not Linux) it is -1."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before), "cuda_peak_allocated_growth"
    if not reset_cpu_peak():
        step()
        return -1, "unavailable"
    before = _proc_status_bytes("VmRSS") or 0
    step()
    return int((_proc_status_bytes("VmHWM") or 0) - before), "peak_rss_growth"


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


def out_of_memory(err: BaseException) -> str | None:
    """One line for a failed allocation (host ``MemoryError`` or allocator error, CUDA out of memory),
    naming the size asked for when the allocator says it; None for any other error."""
    text = str(err)
    host = isinstance(err, RuntimeError) and "can't allocate memory" in text
    if not (isinstance(err, (MemoryError, torch.OutOfMemoryError)) or host):
        return None
    asked = re.search(r"allocate (\d+) bytes", text) or re.search(r"allocate ([\d.]+ [KMGT]iB)", text)
    size = asked.group(1) if asked else ""
    if size.isdigit():
        size = f"{int(size) / 2**30:.1f} GiB"
    where = "on the GPU" if isinstance(err, torch.OutOfMemoryError) else "in host memory"
    return f"out of memory {where}" + (f" (asked for {size})" if size else "")
