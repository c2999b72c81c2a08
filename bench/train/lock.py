"""One writer per run directory: an OS lock (``fcntl.flock``) on ``<run>/.lock``, held while the run
trains and released by the kernel when its process ends (``kill -9`` leaves no stale lock)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from bench.core.errors import UserError

LOCK_NAME = ".lock"


class RunLocked(UserError):
    """Another live process holds the run's lock: the run is already running."""


@contextlib.contextmanager
def run_lock(directory: Path) -> Iterator[None]:
    """Hold ``directory``'s run lock for the block; :class:`RunLocked` naming the holder's pid if taken."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunLocked(f"run {directory.name} is already running (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
