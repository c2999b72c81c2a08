"""Prepare the ``multifashion-mnist`` dataset from the MNIST and the Fashion-MNIST IDX files.

    python datasets/multifashion-mnist/prepare.py [--mnist-dir DIR] [--fashion-dir DIR] [--data-root ROOT]
    python datasets/multifashion-mnist/prepare.py --download [--data-root ROOT]   # needs internet

Each set is four files: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
t10k-labels-idx1-ubyte (plain or ``.gz``). ``--mnist-dir`` copies MNIST's into ``ROOT/MNIST/raw`` and
``--fashion-dir`` Fashion-MNIST's into ``ROOT/FashionMNIST/raw`` (torchvision's layout; by default from
``/usr/share/datasets/fashion-mnist``, Debian's ``dataset-fashion-mnist``, when present); leave out a
flag whose files are already there (e.g. from datasets/multimnist/prepare.py or
datasets/multifashion/prepare.py). ``--download`` lets torchvision fetch both instead. Then the
tensors are generated and cached under ROOT (see datasets/multifashion-mnist/README.md). ROOT defaults
to ``$PFLBENCH_DATA``, else ``~/.cache/pfl-bench``. Errors the user can fix print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.data import prepare_cli
from bench.data.idx import copy_image_set, download_image_set
from bench.data.multifashion import DEBIAN_FASHION_DIR, FASHION_URLS, default_fashion_dir, fashion_raw_dir, prepare
from bench.data.multimnist import MNIST_URLS, cache_path, mnist_raw_dir

NAME = "multifashion-mnist"


def main(argv: list[str] | None = None) -> int:
    cli = prepare_cli.parser("Prepare the multifashion-mnist dataset from the MNIST and Fashion-MNIST IDX files.")
    cli.add_argument("--mnist-dir", type=Path, help="folder holding the 4 MNIST IDX files (plain or .gz)")
    cli.add_argument(
        "--fashion-dir",
        type=Path,
        help=f"folder holding the 4 Fashion-MNIST IDX files, plain or .gz (default: {DEBIAN_FASHION_DIR} if complete)",
    )
    cli.add_argument("--download", action="store_true", help="download both with torchvision (needs internet)")

    def work(args: argparse.Namespace, root: Path) -> list[str]:
        if args.download and (args.mnist_dir or args.fashion_dir):
            cli.error("--download cannot be combined with --mnist-dir or --fashion-dir")
        if args.download:
            download_image_set("MNIST", root, "--mnist-dir")
            download_image_set("FashionMNIST", root, "--fashion-dir")
        if args.mnist_dir:
            copy_image_set(args.mnist_dir.expanduser(), mnist_raw_dir(root), "MNIST", MNIST_URLS)
        if not args.download and (fashion := default_fashion_dir(args.fashion_dir)) is not None:
            copy_image_set(fashion, fashion_raw_dir(root), "Fashion-MNIST", FASHION_URLS)
        existed = cache_path(root, NAME).is_file()
        path = prepare(root, NAME)
        return [
            f"MNIST files: {mnist_raw_dir(root)}",
            f"Fashion-MNIST files: {fashion_raw_dir(root)}",
            prepare_cli.cache_line(NAME, path, existed),
        ]

    return prepare_cli.run(cli, argv, work)


if __name__ == "__main__":
    sys.exit(main())
