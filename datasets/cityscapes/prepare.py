"""Prepare ``cityscapes`` from MTAN's preprocessed Cityscapes (128x256 ``.npy`` files).

    python datasets/cityscapes/prepare.py --source DIR_OR_ZIP [--source ...] [--data-root ROOT] [--copy] [--force]

Download MTAN's archive (https://www.dropbox.com/sh/gaw6vh6qusoyms6/AADwWi0Tp3E3M4B2xzeGlsEna?dl=0,
linked from https://github.com/lorenmt/mtan), then point ``--source`` at the extracted folder or at
the zip. The ``train`` and ``val`` folders found inside (each holding image/, label_7/, depth/) are
symlinked into ``ROOT/cityscapes/`` (``--copy`` copies them; a zip is extracted there). The files are
then checked (same sample numbers in every folder, consistent shapes). ROOT defaults to
``$PFLBENCH_DATA``, else ``~/.cache/pfl-bench``. Errors the user can fix print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.data.cityscapes import LAYOUT
from bench.data.mtan_npy import prepare
from bench.errors import UserError
from bench.runner import default_data_root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Prepare cityscapes from MTAN's preprocessed .npy archive.")
    parser.add_argument(
        "--source", type=Path, action="append", required=True, help="extracted folder or zip (repeatable)"
    )
    parser.add_argument("--data-root", type=Path, help="data root (default: $PFLBENCH_DATA, else ~/.cache/pfl-bench)")
    parser.add_argument("--copy", action="store_true", help="copy the folders instead of symlinking them")
    parser.add_argument("--force", action="store_true", help="replace existing train/val folders under the root")
    args = parser.parse_args(argv)
    root: Path = (args.data_root or default_data_root()).expanduser()
    try:
        counts = prepare(LAYOUT, root, args.source, copy=args.copy, force=args.force)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for split, count in counts.items():
        note = "" if count == LAYOUT.expected[split] else f" (the MTAN archive has {LAYOUT.expected[split]})"
        print(f"{LAYOUT.directory(root) / split}: {count} samples{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
