"""Prepare the real ``multimnist`` dataset from the four standard MNIST IDX files.

    python datasets/multimnist/prepare.py --mnist-dir DIR [--data-root ROOT]
    python datasets/multimnist/prepare.py --download [--data-root ROOT]   # needs internet

``--mnist-dir`` copies train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
t10k-labels-idx1-ubyte (each plain or ``.gz``) from DIR into ``ROOT/MNIST/raw`` (torchvision's layout);
``--download`` lets ``torchvision.datasets.MNIST`` fetch them there instead. Then the MultiMNIST
tensors are generated and cached under ROOT (see datasets/multimnist/README.md). ROOT defaults to
``$PFLBENCH_DATA``, else ``~/.cache/pfl-bench``. Errors the user can fix print one line and exit 2.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from bench.data import prepare_cli
from bench.data.multimnist import MNIST_FILES, cache_path, find_mnist_file, mnist_raw_dir, prepare
from bench.errors import MissingDataError, UserError


def copy_mnist(source: Path, root: Path) -> Path:
    """Copy the four MNIST files from ``source`` into ``mnist_raw_dir(root)``, which it returns."""
    if not source.is_dir():
        raise MissingDataError(f"--mnist-dir {source} is not a directory")
    lookup = {stem: find_mnist_file(source, stem) for stem in MNIST_FILES.values()}
    found = {stem: path for stem, path in lookup.items() if path is not None}
    missing = [f"{stem}[.gz]" for stem in lookup if stem not in found]
    if missing:
        raise MissingDataError(
            f"missing in {source}: {', '.join(missing)}; get the MNIST IDX files (plain or .gz) from "
            "https://ossci-datasets.s3.amazonaws.com/mnist/ or http://yann.lecun.com/exdb/mnist/"
        )
    target = mnist_raw_dir(root)
    target.mkdir(parents=True, exist_ok=True)
    if target.resolve() == source.resolve():
        return target
    for stem, path in found.items():
        # The loader prefers the plain file, so drop a stale copy of the other kind first.
        (target / (stem if path.name.endswith(".gz") else f"{stem}.gz")).unlink(missing_ok=True)
        shutil.copyfile(path, target / path.name)
    return target


def download_mnist(root: Path) -> None:
    """Fetch MNIST with torchvision into ``root/MNIST/raw`` (machines with internet only)."""
    from torchvision.datasets import MNIST

    try:
        for train in (True, False):
            MNIST(str(root), train=train, download=True)
    except (OSError, RuntimeError) as err:
        reason = " ".join(str(err).split())
        raise UserError(f"downloading MNIST failed ({reason}); copy the files by hand and use --mnist-dir") from err


def main(argv: list[str] | None = None) -> int:
    cli = prepare_cli.parser("Prepare the real multimnist dataset from the MNIST IDX files.")
    source = cli.add_mutually_exclusive_group(required=True)
    source.add_argument("--mnist-dir", type=Path, help="folder holding the 4 MNIST IDX files (plain or .gz)")
    source.add_argument("--download", action="store_true", help="download MNIST with torchvision (needs internet)")

    def work(args: argparse.Namespace, root: Path) -> list[str]:
        if args.download:
            download_mnist(root)
        else:
            copy_mnist(args.mnist_dir.expanduser(), root)
        existed = cache_path(root, "multimnist").is_file()
        path = prepare(root)
        return [f"MNIST files: {mnist_raw_dir(root)}", prepare_cli.cache_line("multimnist", path, existed)]

    return prepare_cli.run(cli, argv, work)


if __name__ == "__main__":
    sys.exit(main())
