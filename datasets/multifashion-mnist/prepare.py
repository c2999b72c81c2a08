"""Prepare the ``multifashion-mnist`` dataset from the MNIST and the Fashion-MNIST IDX files.

    python datasets/multifashion-mnist/prepare.py [--mnist-dir DIR] [--fashion-dir DIR] [--data-root ROOT]
    python datasets/multifashion-mnist/prepare.py --download [--data-root ROOT]   # needs internet

Each set is four files: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
t10k-labels-idx1-ubyte (plain or ``.gz``). ``--mnist-dir`` copies MNIST's into ``ROOT/MNIST/raw`` and
``--fashion-dir`` Fashion-MNIST's into ``ROOT/FashionMNIST/raw`` (torchvision's layout); leave out a
flag whose files are already there (e.g. from datasets/multimnist/prepare.py or
datasets/multifashion/prepare.py). ``--download`` lets torchvision fetch both instead. Then the
tensors are generated and cached under ROOT (see datasets/multifashion-mnist/README.md). ROOT defaults
to ``$PFLBENCH_DATA``, else ``~/.cache/pfl-bench``. Errors the user can fix print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.data.idx import copy_image_set, download_image_set
from bench.data.multifashion import FASHION_URLS, fashion_raw_dir, prepare
from bench.data.multimnist import MNIST_URLS, cache_path, mnist_raw_dir
from bench.errors import UserError
from bench.runner import default_data_root

NAME = "multifashion-mnist"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Prepare the multifashion-mnist dataset from the MNIST and Fashion-MNIST IDX files."
    )
    parser.add_argument("--mnist-dir", type=Path, help="folder holding the 4 MNIST IDX files (plain or .gz)")
    parser.add_argument("--fashion-dir", type=Path, help="folder holding the 4 Fashion-MNIST IDX files (plain or .gz)")
    parser.add_argument("--download", action="store_true", help="download both with torchvision (needs internet)")
    parser.add_argument("--data-root", type=Path, help="data root (default: $PFLBENCH_DATA, else ~/.cache/pfl-bench)")
    args = parser.parse_args(argv)
    if args.download and (args.mnist_dir or args.fashion_dir):
        parser.error("--download cannot be combined with --mnist-dir or --fashion-dir")
    root: Path = (args.data_root or default_data_root()).expanduser()
    try:
        if args.download:
            download_image_set("MNIST", root, "--mnist-dir")
            download_image_set("FashionMNIST", root, "--fashion-dir")
        if args.mnist_dir:
            copy_image_set(args.mnist_dir.expanduser(), mnist_raw_dir(root), "MNIST", MNIST_URLS)
        if args.fashion_dir:
            copy_image_set(args.fashion_dir.expanduser(), fashion_raw_dir(root), "Fashion-MNIST", FASHION_URLS)
        existed = cache_path(root, NAME).is_file()
        path = prepare(root, NAME)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"MNIST files: {mnist_raw_dir(root)}")
    print(f"Fashion-MNIST files: {fashion_raw_dir(root)}")
    print(f"{NAME} cache ({'already there, kept; delete it to regenerate' if existed else 'generated'}): {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
