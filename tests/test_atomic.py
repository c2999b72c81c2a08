"""Atomic writes: the whole file or the old one, never half, with the usual file mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bench.core import atomic


def test_written_files_get_the_usual_mode(tmp_path: Path):
    mask = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "a.txt", "hello")
        atomic.write_bytes(tmp_path / "b.bin", b"\x00\x01")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path):
    atomic.write_json(tmp_path / "c.json", {"v": 1})

    def write_half_then_fail(f):
        f.write(b'{"v": 2')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic._atomic(tmp_path / "c.json", write_half_then_fail)
    assert atomic.read_json(tmp_path / "c.json") == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]
