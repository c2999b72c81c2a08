"""Prepare the ``multifashion`` dataset from the four standard Fashion-MNIST IDX files.

    python datasets/multifashion/prepare.py [--fashion-dir DIR] [--data-root ROOT]
    python datasets/multifashion/prepare.py --download [--data-root ROOT]   # needs internet

``--fashion-dir`` copies train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
t10k-labels-idx1-ubyte (each plain or ``.gz``) from DIR into ``ROOT/FashionMNIST/raw`` (torchvision's
layout); without it they come from ``/usr/share/datasets/fashion-mnist`` where Debian's package
``dataset-fashion-mnist`` puts them (``apt-get install dataset-fashion-mnist``), or are expected in
place already. ``--download`` lets ``torchvision.datasets.FashionMNIST`` fetch them instead. Then the
MultiFashion tensors are generated and cached under ROOT (see datasets/multifashion/README.md). ROOT
defaults to ``$PFLBENCH_DATA``, else ``~/.cache/pfl-bench``. Errors the user can fix print one line and
exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.data import prepare_cli
from bench.data.idx import copy_image_set, download_image_set
from bench.data.multifashion import DEBIAN_FASHION_DIR, FASHION_URLS, default_fashion_dir, fashion_raw_dir, prepare
from bench.data.multimnist import cache_path

NAME = "multifashion"


def main(argv: list[str] | None = None) -> int:
    cli = prepare_cli.parser("Prepare the multifashion dataset from the Fashion-MNIST IDX files.")
    source = cli.add_mutually_exclusive_group()
    source.add_argument(
        "--fashion-dir",
        type=Path,
        help=f"folder holding the 4 Fashion-MNIST IDX files, plain or .gz (default: {DEBIAN_FASHION_DIR} if complete)",
    )
    source.add_argument("--download", action="store_true", help="download Fashion-MNIST with torchvision (internet)")

    def work(args: argparse.Namespace, root: Path) -> list[str]:
        if args.download:
            download_image_set("FashionMNIST", root, "--fashion-dir")
        elif (source := default_fashion_dir(args.fashion_dir)) is not None:
            copy_image_set(source, fashion_raw_dir(root), "Fashion-MNIST", FASHION_URLS)
        existed = cache_path(root, NAME).is_file()
        path = prepare(root, NAME)
        return [f"Fashion-MNIST files: {fashion_raw_dir(root)}", prepare_cli.cache_line(NAME, path, existed)]

    return prepare_cli.run(cli, argv, work)


if __name__ == "__main__":
    sys.exit(main())
