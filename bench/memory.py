"""Peak memory of a phase: CUDA's peak-allocated counter on GPU, the process's peak RSS on CPU.

The CPU figure is the process-wide high-water mark (``ru_maxrss``), which cannot be reset, so a
later phase reports at least an earlier one's peak; the record names the kind of figure.
"""

from __future__ import annotations

import resource
import sys

import torch


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
