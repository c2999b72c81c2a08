"""Prepare ``nyuv2`` from MTAN's preprocessed NYUv2 (288x384 ``.npy`` files).

    python datasets/nyuv2/prepare.py --source DIR_OR_ZIP [--source ...] [--data-root ROOT] [--copy] [--force]

Download MTAN's archive (https://www.dropbox.com/sh/86nssgwm6hm3vkb/AACrnUQ4GxpdrBbLjb6n-mWNa?dl=0,
linked from https://github.com/lorenmt/mtan), then point ``--source`` at the extracted folder or at
the zip. The ``train`` and ``val`` folders found inside (each holding image/, label/, depth/, normal/) are
symlinked into ``ROOT/nyuv2/`` (``--copy`` copies them; a zip is extracted there). The files are
then checked (same sample numbers in every folder, consistent shapes). The two zips the official
PaLoRA code fetches with gdown (``train.zip`` and ``val.zip``, each holding one split's folders)
work too: ``--source train.zip --source val.zip``. ROOT defaults to
``$PFLBENCH_DATA``, else ``~/.cache/pfl-bench``. Errors the user can fix print one line and exit 2.
"""

from __future__ import annotations

import sys

from bench.data.mtan_npy import prepare_main
from bench.data.nyuv2 import LAYOUT


def main(argv: list[str] | None = None) -> int:
    return prepare_main(LAYOUT, argv)


if __name__ == "__main__":
    sys.exit(main())
