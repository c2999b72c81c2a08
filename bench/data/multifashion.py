"""MultiFashion and MultiFashion+MNIST: the MultiMNIST recipe with Fashion-MNIST items.

- ``multifashion``: two Fashion-MNIST items (tasks ``top-left``, ``bottom-right``), built exactly as
  ``multimnist`` (:func:`bench.data.multimnist.build_from_arrays`) from the Fashion-MNIST IDX files in
  torchvision's layout ``<root>/FashionMNIST/raw``.
- ``multifashion-mnist``: an MNIST digit at the top-left (task ``digit``) and a Fashion-MNIST item at
  the bottom-right (task ``item``), each drawn from its own pool
  (:func:`bench.data.kit.multimnist_generator.make_multimnist_from_pools`); needs ``<root>/MNIST/raw`` too.

The official PaLoRA/PaMaL code names MultiFashion (``configs/general/data/multifashion.yaml``) but ships
no generator for it; this follows its MultiMNIST generator (nik-dim/palora ``src/datasets/multimnist.py``)
and the positions of spec/protocols.md. Splits as ``multimnist``: 60k pairs from the training images cut
50k / 10k into train / val with seed 0, 10k test pairs from the test images. Cached under the data root.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from torch import Tensor

from bench.core.errors import MissingDataError, UserError
from bench.core.registry import register_dataset
from bench.core.spec import Split
from bench.data.formats.idx import copy_image_set, download_image_set, find_image_set, read_image_set
from bench.data.kit import prepare_cli
from bench.data.kit.multimnist_generator import make_multimnist_from_pools
from bench.data.kit.preparation import Option, prepares
from bench.data.multimnist import (
    GENERATION_SEED,
    MNIST_URLS,
    SplitTensors,
    build_from_arrays,
    build_splits,
    cache_path,
    cached_splits,
    load_cached,
    mnist_raw_dir,
    multimnist_spec,
)

FASHION_TASKS = ("top-left", "bottom-right")
MIXED_TASKS = ("digit", "item")
"""``multifashion-mnist``: the MNIST digit (top-left) and the Fashion-MNIST item (bottom-right)."""
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's and Ubuntu's package ``dataset-fashion-mnist`` installs the four original IDX files."""
FASHION_URLS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ (linked from "
    "https://github.com/zalandoresearch/fashion-mnist; or torchvision.datasets.FashionMNIST(root, download=True) "
    f"on a machine with internet; or, on Debian/Ubuntu, `apt-get install dataset-fashion-mnist`, which puts them in "
    f"{DEBIAN_FASHION_DIR})"
)


def fashion_raw_dir(root: Path) -> Path:
    """Where the Fashion-MNIST IDX files live: torchvision's layout, ``<root>/FashionMNIST/raw``."""
    return Path(root) / "FashionMNIST" / "raw"


def default_fashion_dir(given: Path | None) -> Path | None:
    """The folder to copy Fashion-MNIST from: ``given``, else Debian's package folder if it holds the
    four files, else None (the files must already be under the data root)."""
    if given is not None:
        return given.expanduser()
    if not find_image_set(DEBIAN_FASHION_DIR)[1]:
        return DEBIAN_FASHION_DIR
    return None


def _listing(folder: Path, missing: list[str]) -> str:
    return f"missing in {folder}: " + ", ".join(f"{m}[.gz]" for m in missing)


def missing_message(root: Path, dataset: str, missing_mnist: list[str], missing_fashion: list[str]) -> str:
    """One paragraph naming every missing file, where to get it, and the prepare command of ``dataset``."""
    sets, places, sources, flags = [], [], [], []
    if missing_mnist:
        sets.append("MNIST")
        places.append(_listing(mnist_raw_dir(root), missing_mnist))
        sources.append(f"MNIST from {MNIST_URLS}")
        flags.append("--mnist-dir <folder with the 4 MNIST files>")
    if missing_fashion:
        sets.append("Fashion-MNIST")
        places.append(_listing(fashion_raw_dir(root), missing_fashion))
        sources.append(f"Fashion-MNIST from {FASHION_URLS}")
        flags.append(f"[--fashion-dir <folder with the 4 Fashion-MNIST files; default {DEBIAN_FASHION_DIR}>]")
    message = (
        f"dataset '{dataset}' needs the {' and the '.join(sets)} IDX files; {'; '.join(places)}. "
        f"Get {' and '.join(sources)}, then run: python datasets/{dataset}/prepare.py {' '.join(flags)} "
        f"--data-root {root}"
    )
    if dataset == "multifashion-mnist":
        message += (
            " (a set already in place is reused and its flag can be left out, e.g. MNIST copied by "
            "datasets/multimnist/prepare.py or Fashion-MNIST by datasets/multifashion/prepare.py)"
        )
    return message


def read_sources(root: Path, dataset: str, mnist: bool, fashion: bool) -> dict[str, dict[str, np.ndarray]]:
    """The IDX arrays of the sets ``dataset`` needs (keys ``mnist``, ``fashion``); one MissingDataError
    names every missing file of both."""
    missing_mnist = find_image_set(mnist_raw_dir(root))[1] if mnist else []
    missing_fashion = find_image_set(fashion_raw_dir(root))[1] if fashion else []
    if missing_mnist or missing_fashion:
        raise MissingDataError(missing_message(root, dataset, missing_mnist, missing_fashion))
    arrays = {}
    if mnist:
        arrays["mnist"] = read_image_set(mnist_raw_dir(root), "MNIST")
    if fashion:
        arrays["fashion"] = read_image_set(fashion_raw_dir(root), "Fashion-MNIST")
    return arrays


def build_multifashion(root: Path, seed: int = GENERATION_SEED) -> SplitTensors:
    """``multifashion`` from ``<root>/FashionMNIST/raw``: the ``multimnist`` construction on items."""
    return build_from_arrays(read_sources(root, "multifashion", mnist=False, fashion=True)["fashion"], seed)


def build_mixed(
    mnist: dict[str, np.ndarray], fashion: dict[str, np.ndarray], seed: int = GENERATION_SEED
) -> SplitTensors:
    """``multifashion-mnist`` splits: per part, as many (digit, item) pairs as MNIST images (60k train,
    split 50k / 10k into train / val; 10k test); each pair draws its digit from the MNIST pool and its
    item from the Fashion-MNIST pool of the same part."""
    return build_splits(make_multimnist_from_pools, [mnist, fashion], seed)


def build_multifashion_mnist(root: Path, seed: int = GENERATION_SEED) -> SplitTensors:
    """``multifashion-mnist`` from ``<root>/MNIST/raw`` and ``<root>/FashionMNIST/raw``."""
    arrays = read_sources(root, "multifashion-mnist", mnist=True, fashion=True)
    return build_mixed(arrays["mnist"], arrays["fashion"], seed)


BUILDERS = {"multifashion": build_multifashion, "multifashion-mnist": build_multifashion_mnist}


def load_multifashion(root: Path, split: Split) -> tuple[Tensor, dict[str, Tensor]]:
    return load_cached(cache_path(root, "multifashion"), build_multifashion, FASHION_TASKS, split)


def load_multifashion_mnist(root: Path, split: Split) -> tuple[Tensor, dict[str, Tensor]]:
    return load_cached(cache_path(root, "multifashion-mnist"), build_multifashion_mnist, MIXED_TASKS, split)


def prepare(root: Path, name: str) -> Path:
    """Build and cache ``name`` (``multifashion`` or ``multifashion-mnist``) from the IDX files under ``root``."""
    path = cache_path(root, name)
    cached_splits(path, BUILDERS[name])
    return path


MULTIFASHION = register_dataset(
    multimnist_spec(
        "multifashion",
        "MultiFashion from the Fashion-MNIST IDX files: top-left and bottom-right item (2 tasks)",
        load_multifashion,
        FASHION_TASKS,
    )
)
MULTIFASHION_MNIST = register_dataset(
    multimnist_spec(
        "multifashion-mnist",
        "MultiFashion+MNIST: MNIST digit top-left (task digit), Fashion-MNIST item bottom-right (task item)",
        load_multifashion_mnist,
        MIXED_TASKS,
    )
)


FASHION_HELP = f"folder holding the 4 Fashion-MNIST IDX files, plain or .gz (default: {DEBIAN_FASHION_DIR} if complete)"


@prepares(
    "multifashion",
    options=[
        Option(("--source", "--fashion-dir"), FASHION_HELP, group="fashion"),
        Option(("--download",), "download Fashion-MNIST with torchvision (internet)", kind="switch", group="fashion"),
    ],
)
def prepare_multifashion(args: argparse.Namespace, root: Path) -> list[str]:
    """Copy the four Fashion-MNIST IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte,
    t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; each plain or .gz) into ROOT/FashionMNIST/raw
    (torchvision's layout). Without --source they come from /usr/share/datasets/fashion-mnist, where
    Debian's package dataset-fashion-mnist puts them (apt-get install dataset-fashion-mnist), or are
    expected in place already; --download lets torchvision fetch them instead. Then the MultiFashion
    tensors are generated and cached under ROOT."""
    if args.download:
        download_image_set("FashionMNIST", root, "--fashion-dir")
    elif (source := default_fashion_dir(args.source)) is not None:
        copy_image_set(source, fashion_raw_dir(root), "Fashion-MNIST", FASHION_URLS)
    existed = cache_path(root, "multifashion").is_file()
    path = prepare(root, "multifashion")
    return [f"Fashion-MNIST files: {fashion_raw_dir(root)}", prepare_cli.cache_line("multifashion", path, existed)]


@prepares(
    "multifashion-mnist",
    options=[
        Option(("--mnist-dir",), "folder holding the 4 MNIST IDX files (plain or .gz)"),
        Option(("--fashion-dir",), FASHION_HELP),
        Option(("--download",), "download both with torchvision (needs internet)", kind="switch"),
    ],
)
def prepare_multifashion_mnist(args: argparse.Namespace, root: Path) -> list[str]:
    """Copy the four MNIST IDX files (--mnist-dir) into ROOT/MNIST/raw and the four Fashion-MNIST
    ones (--fashion-dir, by default /usr/share/datasets/fashion-mnist, Debian's
    dataset-fashion-mnist, when present) into ROOT/FashionMNIST/raw, or let torchvision download
    both (--download); leave out a flag whose files are already there (e.g. from the multimnist or
    multifashion preparation). Then the tensors are generated and cached under ROOT."""
    if args.download and (args.mnist_dir or args.fashion_dir):
        raise UserError("--download cannot be combined with --mnist-dir or --fashion-dir")
    if args.download:
        download_image_set("MNIST", root, "--mnist-dir")
        download_image_set("FashionMNIST", root, "--fashion-dir")
    if args.mnist_dir:
        copy_image_set(args.mnist_dir.expanduser(), mnist_raw_dir(root), "MNIST", MNIST_URLS)
    if not args.download and (fashion := default_fashion_dir(args.fashion_dir)) is not None:
        copy_image_set(fashion, fashion_raw_dir(root), "Fashion-MNIST", FASHION_URLS)
    existed = cache_path(root, "multifashion-mnist").is_file()
    path = prepare(root, "multifashion-mnist")
    return [
        f"MNIST files: {mnist_raw_dir(root)}",
        f"Fashion-MNIST files: {fashion_raw_dir(root)}",
        prepare_cli.cache_line("multifashion-mnist", path, existed),
    ]
