"""The machine a run lands on: data root, torch device, DataLoader workers.

The lowest layer of ``bench``: it imports only :mod:`bench.core.errors`, so anything (the runner, the
profiler, dataset preparation, the CLI) can import it without pulling in the training stack.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from bench.core.errors import ConfigError


def default_data_root() -> Path:
    """``$PFLBENCH_DATA``, else ``$XDG_CACHE_HOME/pfl-bench`` (``~/.cache/pfl-bench``)."""
    if os.environ.get("PFLBENCH_DATA"):
        return Path(os.environ["PFLBENCH_DATA"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "pfl-bench"


def check_device_name(name: str) -> None:
    """Refuse a device name that is none of ``auto``, ``cpu``, ``cuda``, ``cuda:I`` (whether the
    device is present is for the machine that runs it: :func:`resolve_device`)."""
    if name not in ("auto", "cpu", "cuda") and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise ConfigError(f"unknown device {name!r}; valid devices: auto, cpu, cuda, cuda:<index>")


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:I``."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    # cuda or cuda:I
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available here; use --device cpu or auto")
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return device


def default_workers() -> int:
    """DataLoader worker processes for image datasets: one per core, at most 8, one core left free."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host() -> str:
    """CPU model, cores, memory and OS of this machine."""
    memory = ""
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        memory = f", {next(int(line.split()[1]) for line in meminfo if 'MemTotal' in line) / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    return f"{cpu_model()}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}"


def machine(device: torch.device) -> str:
    """The machine in words: CPU model, cores and threads, the GPU if used, torch's version."""
    threads = torch.get_num_threads()
    words = f"{cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__} with {threads} threads"
    if device.type == "cuda":
        words = f"{torch.cuda.get_device_name(device)}; host {words}"
    return words
