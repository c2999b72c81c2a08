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

import sys

from bench.data.cityscapes import LAYOUT
from bench.data.mtan_npy import prepare_main


def main(argv: list[str] | None = None) -> int:
    return prepare_main(LAYOUT, argv)


if __name__ == "__main__":
    sys.exit(main())
