"""Damaged data files are one error line naming the file and the fix; a damaged derived cache is
rebuilt from its sources."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core.errors import CorruptDataError
from bench.data import multimnist
from bench.data.formats.idx import IMAGE_SET_FILES, read_idx, write_idx
from bench.train.command import main


def idx_file(tmp_path: Path) -> Path:
    path = tmp_path / "t.idx"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_idx(path, np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))
    return path


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("magic", "is not an IDX file (bad magic number"),
        ("body", "header says shape (2, 3, 4) (24 bytes) but the file holds 20 bytes"),
        ("header", "is truncated inside its header"),
        ("gzip", "cannot be read"),
        ("empty", "is not an IDX file"),
    ],
)
def test_a_damaged_idx_file_names_itself_and_the_fix(how, message, tmp_path: Path):
    path = idx_file(tmp_path)
    data = path.read_bytes()
    if how == "magic":
        path.write_bytes(b"\x01\x02" + data[2:])
    elif how == "body":
        path.write_bytes(data[:-4])
    elif how == "header":
        path.write_bytes(data[:9])
    elif how == "gzip":
        path = tmp_path / "t.idx.gz"
        path.write_bytes(gzip.compress(data)[:-10])
    else:
        path.write_bytes(b"")
    with pytest.raises(CorruptDataError, match="run its prepare command again") as info:
        read_idx(path)
    assert str(path) in str(info.value) and message in str(info.value)
    assert read_idx(idx_file(tmp_path / "fresh")).shape == (2, 3, 4)


def test_bench_run_on_a_damaged_idx_file_prints_one_line(tmp_path: Path, capsys):
    raw = multimnist.mnist_raw_dir(tmp_path / "data")
    raw.mkdir(parents=True)
    for stem in IMAGE_SET_FILES.values():
        (raw / stem).write_bytes(b"garbage, not IDX")
    argv = ["--method", "palora", "--dataset", "multimnist", "--device", "cpu"]
    assert main([*argv, "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "runs")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "is not an IDX file" in line
    assert not list((tmp_path / "runs").glob("*"))


@pytest.mark.parametrize("garbage", [b"", b"\x00" * 100, b"PK\x03\x04 truncated zip"])
def test_a_damaged_mini_cache_is_rebuilt_from_its_source(garbage, data_root: Path, tmp_path: Path, capsys):
    fresh = multimnist.load_mini(data_root, "val")  # builds the cache in the session's data root
    path = multimnist.cache_path(tmp_path, "multimnist-mini")
    path.parent.mkdir(parents=True)
    path.write_bytes(garbage)
    multimnist.cached_splits.cache_clear()
    x, targets = multimnist.load_mini(tmp_path, "val")
    assert "is damaged" in capsys.readouterr().err
    assert torch.equal(x, fresh[0]) and all(torch.equal(targets[k], fresh[1][k]) for k in targets)
    assert torch.load(path, weights_only=True).keys() >= {"train", "val", "test"}
