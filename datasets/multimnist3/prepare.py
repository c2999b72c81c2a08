"""Prepare the ``multimnist3`` dataset (three digits, three tasks) from the four MNIST IDX files.

    python datasets/multimnist3/prepare.py --mnist-dir DIR [--data-root ROOT]
    python datasets/multimnist3/prepare.py --download [--data-root ROOT]   # needs internet

``--mnist-dir`` copies train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
t10k-labels-idx1-ubyte (each plain or ``.gz``) from DIR into ``ROOT/MNIST/raw`` (torchvision's layout;
the same files as ``multimnist``); ``--download`` lets ``torchvision.datasets.MNIST`` fetch them there
instead. Then the MultiMNIST-3 tensors are generated and cached under ROOT (see
datasets/multimnist3/README.md). ROOT defaults to ``$PFLBENCH_DATA``, else ``~/.cache/pfl-bench``.
Errors the user can fix print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.data import prepare_cli
from bench.data.idx import copy_image_set, download_image_set
from bench.data.multimnist import MNIST_URLS, mnist_raw_dir
from bench.data.multimnist3 import NAME, cache_file, prepare


def main(argv: list[str] | None = None) -> int:
    cli = prepare_cli.parser("Prepare the multimnist3 dataset from the MNIST IDX files.")
    source = cli.add_mutually_exclusive_group(required=True)
    source.add_argument("--mnist-dir", type=Path, help="folder holding the 4 MNIST IDX files (plain or .gz)")
    source.add_argument("--download", action="store_true", help="download MNIST with torchvision (needs internet)")

    def work(args: argparse.Namespace, root: Path) -> list[str]:
        if args.download:
            download_image_set("MNIST", root, "--mnist-dir")
        else:
            copy_image_set(args.mnist_dir.expanduser(), mnist_raw_dir(root), "MNIST", MNIST_URLS)
        existed = cache_file(root).is_file()
        path = prepare(root)
        return [f"MNIST files: {mnist_raw_dir(root)}", prepare_cli.cache_line(NAME, path, existed)]

    return prepare_cli.run(cli, argv, work)


if __name__ == "__main__":
    sys.exit(main())
