"""SARCOS robot-arm inverse dynamics: 7 joint torques from 21 inputs (7 regression tasks).

Re-implements the official PaLoRA data code (nik-dim/palora ``src/datasets/sarcos.py``, ``get_data``;
MIT license), no code copied:

- ``<root>/sarcos/sarcos_inv.mat`` (variable ``sarcos_inv``, [44484, 28]) and ``sarcos_inv_test.mat``
  (``sarcos_inv_test``, [4449, 28]), MATLAB v5 files read with ``scipy.io.loadmat`` and cast to float32;
  columns 0..20 are the inputs (7 joint positions, velocities, accelerations), 21..27 the 7 torques;
- validation: the **first 4,448 rows** of ``sarcos_inv`` (no shuffle), train: the rest; test: the test file;
- inputs are not normalised; each torque is divided by the 90% quantile of that column over the train
  part (signed values, no centring), on train, val and test alike, so that the official hypervolume
  reference point (1, 5, 1, 1, 10, 10, 1) on the per-task MSEs applies (``_sarcos.py``).
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.io import loadmat
from scipy.io.matlab import MatReadError
from torch import Tensor

from bench.core.errors import MissingDataError
from bench.core.registry import register_dataset
from bench.core.spec import DatasetSpec, Split
from bench.data.kit.objectives import regression
from bench.data.kit.preparation import Option, prepares

URL = "http://www.gaussianprocess.org/gpml/data/"
FILES = {"train": ("sarcos_inv.mat", "sarcos_inv"), "test": ("sarcos_inv_test.mat", "sarcos_inv_test")}
"""Split -> (file name, MATLAB variable name)."""
NUM_INPUTS = 21
NUM_TORQUES = 7
VAL_ROWS = 4448
"""The official validation split: the first 4,448 rows of sarcos_inv."""
QUANTILE = 0.9
TASKS = tuple(f"torque{k + 1}" for k in range(NUM_TORQUES))
HV_REFERENCE = (1.0, 5.0, 1.0, 1.0, 10.0, 10.0, 1.0)
"""The official reference point on the per-task MSEs of the scaled torques (``_sarcos.py`` L37)."""

SplitTensors = dict[str, tuple[Tensor, dict[str, Tensor]]]


def sarcos_dir(root: Path) -> Path:
    return Path(root) / "sarcos"


def missing_message(root: Path, missing: list[str]) -> str:
    return (
        f"dataset 'sarcos' needs the SARCOS inverse-dynamics files; missing in {sarcos_dir(root)}: "
        + ", ".join(missing)
        + f". Get sarcos_inv.mat and sarcos_inv_test.mat from {URL}, then run: "
        f"python datasets/sarcos/prepare.py --source <folder with the two .mat files> --data-root {root}"
    )


def source_files(root: Path) -> dict[str, Path]:
    """The two .mat files under ``<root>/sarcos``, or a MissingDataError naming what is missing."""
    paths = {split: sarcos_dir(root) / name for split, (name, _) in FILES.items()}
    missing = [path.name for path in paths.values() if not path.is_file()]
    if missing:
        raise MissingDataError(missing_message(root, missing))
    return paths


def read_mat(path: Path, variable: str) -> np.ndarray:
    """The [N, 28] float32 matrix ``variable`` of a MATLAB v5 file, validated."""
    try:
        contents = loadmat(path)
    except (
        MatReadError,
        OSError,
        ValueError,
        NotImplementedError,
        TypeError,
    ) as err:  # v7.3 (HDF5) files raise NotImplementedError
        reason = " ".join(str(err).split())
        raise MissingDataError(
            f"cannot read {path} as a MATLAB v5 file ({reason}); download the original from {URL}"
        ) from None
    if variable not in contents:
        found = sorted(k for k in contents if not k.startswith("__"))
        raise MissingDataError(
            f"{path} has no variable {variable!r} (found: {', '.join(found) or 'none'}); "
            f"download the original from {URL}"
        )
    data = np.asarray(contents[variable])
    if data.ndim != 2 or data.shape[1] != NUM_INPUTS + NUM_TORQUES or not np.issubdtype(data.dtype, np.number):
        raise MissingDataError(
            f"{path}: variable {variable!r} has shape {data.shape} ({data.dtype}), expected a numeric "
            f"[N, {NUM_INPUTS + NUM_TORQUES}] matrix (21 inputs, then 7 torques); download the original from {URL}"
        )
    return data.astype(np.float32)


def build_splits(train: np.ndarray, test: np.ndarray, path: Path | None = None) -> SplitTensors:
    """Split and scale as the official ``get_data``: val = first 4,448 rows, torques / train 90% quantile."""
    if len(train) <= VAL_ROWS:
        raise MissingDataError(
            f"{path or 'sarcos_inv'} has {len(train)} rows; the official split needs more than {VAL_ROWS} "
            f"(the first {VAL_ROWS} are the validation set; the GPML file has 44,484). Download it from {URL}"
        )
    parts = {"train": train[VAL_ROWS:], "val": train[:VAL_ROWS], "test": test}
    scale = np.quantile(parts["train"][:, NUM_INPUTS:], q=QUANTILE, axis=0)
    splits: SplitTensors = {}
    for split, data in parts.items():
        x = torch.from_numpy(np.ascontiguousarray(data[:, :NUM_INPUTS]))
        y = torch.from_numpy((data[:, NUM_INPUTS:] / scale).astype(np.float32, copy=False))
        splits[split] = (x, {task: y[:, k].contiguous() for k, task in enumerate(TASKS)})
    return splits


def file_stamp(paths: dict[str, Path]) -> str:
    return repr([(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in paths.values()])


@functools.lru_cache(maxsize=2)
def _splits(root: Path, stamp: str) -> SplitTensors:
    paths = source_files(root)
    arrays = {split: read_mat(paths[split], variable) for split, (_, variable) in FILES.items()}
    return build_splits(arrays["train"], arrays["test"], paths["train"])


def load_sarcos(root: Path, split: Split) -> tuple[Tensor, dict[str, Tensor]]:
    root = Path(root)
    return _splits(root, file_stamp(source_files(root)))[split]


def prepare(root: Path) -> dict[str, Any]:
    """Read and validate both files under ``<root>/sarcos``; returns the split sizes and torque scales."""
    _splits.cache_clear()
    paths = source_files(root)
    arrays = {split: read_mat(paths[split], variable) for split, (_, variable) in FILES.items()}
    splits = build_splits(arrays["train"], arrays["test"], paths["train"])
    scale = np.quantile(arrays["train"][VAL_ROWS:, NUM_INPUTS:], q=QUANTILE, axis=0)
    return {"sizes": {split: len(x) for split, (x, _) in splits.items()}, "scale": scale.tolist()}


EXPECTED_ROWS = {"train": 44484, "test": 4449}


def copy_files(source: Path, root: Path) -> Path:
    """Copy the two .mat files from ``source`` into ``ROOT/sarcos``, which it returns."""
    if not source.is_dir():
        raise MissingDataError(f"--source {source} is not a directory; give the folder holding the two .mat files")
    names = [name for name, _ in FILES.values()]
    missing = [name for name in names if not (source / name).is_file()]
    if missing:
        raise MissingDataError(f"missing in {source}: {', '.join(missing)}; download them from {URL}")
    target = sarcos_dir(root)
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (source / name).resolve() != (target / name).resolve():
            tmp = target / f".{name}.tmp"
            shutil.copyfile(source / name, tmp)
            tmp.replace(target / name)
    return target


@prepares(
    "sarcos", options=[Option(("--source",), "folder holding sarcos_inv.mat and sarcos_inv_test.mat", required=True)]
)
def prepare_entry(args: argparse.Namespace, root: Path) -> list[str]:
    """Copy the two GPML .mat files (sarcos_inv.mat, sarcos_inv_test.mat) into ROOT/sarcos and
    validate them (variables, shapes, the split); there is no cache, the loader reads the files."""
    folder = copy_files(args.source.expanduser(), root)
    info = prepare(root)
    sizes = info["sizes"]
    total = {"train": sizes["train"] + sizes["val"], "test": sizes["test"]}
    if total != EXPECTED_ROWS:
        print(
            f"warning: the GPML files have {EXPECTED_ROWS['train']} / {EXPECTED_ROWS['test']} rows, these have "
            f"{total['train']} / {total['test']}; results will not be comparable with the paper",
            file=sys.stderr,
        )
    return [
        f"sarcos files: {folder}",
        f"rows: train {sizes['train']}, val {sizes['val']}, test {sizes['test']}",
        "torque scales (train 90% quantiles): " + ", ".join(f"{s:.4g}" for s in info["scale"]),
    ]


SARCOS = register_dataset(
    DatasetSpec(
        name="sarcos",
        description="SARCOS robot-arm inverse dynamics: 7 joint torques from 21 inputs (7 regression tasks)",
        input_shape=(NUM_INPUTS,),
        objectives=tuple(regression(task, loss="mse", hv_metric="mse") for task in TASKS),
        backbone="mlp",
        backbone_options={"hidden": (256, 256, 256)},  # official configs/experiment/sarcos/sarcos.yaml
        hv_reference=HV_REFERENCE,
        load=load_sarcos,
        # official sarcos.yaml (Adam 1e-4, 100 epochs) and configs/general/data/sarcos.yaml (batch 512)
        train_defaults={
            "train.epochs": 100,
            "train.batch_size": 512,
            "train.lr": 1e-4,
            "train.eval_batch_size": 8192,
            "train.eval_every": 10,
        },  # sarcos.yaml validate_every_n 10
    )
)
