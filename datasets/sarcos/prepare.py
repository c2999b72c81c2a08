"""Prepare the ``sarcos`` dataset from the two GPML .mat files.

    python datasets/sarcos/prepare.py --source DIR [--data-root ROOT]

DIR holds ``sarcos_inv.mat`` and ``sarcos_inv_test.mat`` from http://www.gaussianprocess.org/gpml/data/
(MATLAB v5, variables ``sarcos_inv`` [44484, 28] and ``sarcos_inv_test`` [4449, 28]). They are copied
into ``ROOT/sarcos/`` and validated (variables, shapes, the split); there is no cache, the loader
reads the files directly. ROOT defaults to ``$PFLBENCH_DATA``, else ``~/.cache/pfl-bench``. Errors the
user can fix print one line and exit 2. See datasets/sarcos/README.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from bench.data import prepare_cli
from bench.data.sarcos import FILES, URL, prepare, sarcos_dir
from bench.errors import MissingDataError

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


def main(argv: list[str] | None = None) -> int:
    cli = prepare_cli.parser("Prepare the sarcos dataset from sarcos_inv.mat and sarcos_inv_test.mat.")
    cli.add_argument("--source", type=Path, required=True, help="folder holding sarcos_inv.mat and sarcos_inv_test.mat")

    def work(args: argparse.Namespace, root: Path) -> list[str]:
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

    return prepare_cli.run(cli, argv, work)


if __name__ == "__main__":
    sys.exit(main())
