"""Prepare ``celeba`` from the official CelebA files.

    python datasets/celeba/prepare.py --source DIR [--data-root ROOT] [--copy]

DIR holds ``img_align_celeba/`` (the extracted folder) or ``img_align_celeba.zip``, plus
``list_attr_celeba.txt`` and ``list_eval_partition.txt`` (also found in DIR's ``Img/``, ``Anno/`` and
``Eval/`` subfolders, the layout of the official Google Drive). They go to ``ROOT/celeba/``
(torchvision's layout): the two text files are copied, the zip is extracted, and a folder is
symlinked (``--copy`` copies its 202,599 files instead). Then the annotations are parsed, every
listed image is checked, and the split sizes are printed. ROOT defaults to ``$PFLBENCH_DATA``, else
``~/.cache/pfl-bench``. Errors the user can fix print one line and exit 2. See datasets/celeba/README.md.
"""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np

from bench.data import prepare_cli
from bench.data.celeba import (
    ATTR_FILE,
    ATTRIBUTES,
    HV_ATTRIBUTES,
    IMAGE_DIR,
    OFFICIAL_SIZES,
    PARTITION_FILE,
    SPLIT_CODES,
    URL,
    data_dir,
    read_annotations,
)
from bench.errors import MissingDataError, UserError

SUBFOLDERS = ("", "Anno", "Eval", "Img")


def find(source: Path, name: str) -> Path | None:
    for sub in SUBFOLDERS:
        candidate = source / sub / name
        if candidate.exists():
            return candidate
    return None


def find_images(source: Path) -> Path | None:
    """The image folder (or a nested ``img_align_celeba/img_align_celeba``, as some mirrors ship it)
    or ``img_align_celeba.zip``."""
    folder = find(source, IMAGE_DIR)
    if folder is not None and folder.is_dir() and (folder / IMAGE_DIR).is_dir():
        return folder / IMAGE_DIR
    return folder or find(source, f"{IMAGE_DIR}.zip")


def extract_zip(archive: Path, target: Path) -> int:
    """Extract the JPEGs of ``archive`` flat into ``target`` (by base name: no path from the archive
    is trusted), skipping those already there with the same size; returns how many were written."""
    target.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = info.filename.rsplit("/", 1)[-1]
                if info.is_dir() or not name.lower().endswith(".jpg") or name.startswith("."):
                    continue
                out = target / name
                if out.is_file() and out.stat().st_size == info.file_size:
                    continue
                with zf.open(info) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                written += 1
    except zipfile.BadZipFile as err:
        raise UserError(f"{archive} is not a valid zip file ({err}); download it again from {URL}") from None
    return written


def place_folder(source: Path, target: Path, copy: bool) -> str:
    """Symlink ``target`` to ``source`` (or copy its files); returns what was done."""
    if target.resolve() == source.resolve():
        return f"{target} already holds the images"
    if target.is_symlink():
        target.unlink()
    elif target.exists() and not copy:
        raise UserError(f"{target} already exists and is not a link; remove it, or rerun with --copy to fill it")
    if not copy:
        target.symlink_to(source.resolve(), target_is_directory=True)
        return f"linked {target} -> {source.resolve()} (keep that folder, or rerun with --copy)"
    target.mkdir(parents=True, exist_ok=True)
    copied = 0
    for path in source.iterdir():
        out = target / path.name
        if path.is_file() and not (out.is_file() and out.stat().st_size == path.stat().st_size):
            shutil.copyfile(path, out)
            copied += 1
    return f"copied {copied} files into {target}"


def prepare(source: Path, root: Path, copy: bool = False) -> list[str]:
    """Put the files of ``source`` under ``root/celeba`` and validate them; returns report lines."""
    if not source.is_dir():
        raise MissingDataError(f"--source {source} is not a directory")
    found = {name: find(source, name) for name in (ATTR_FILE, PARTITION_FILE)}
    images = find_images(source)
    missing = [name for name, path in found.items() if path is None]
    if images is None:
        missing.insert(0, f"{IMAGE_DIR}/ or {IMAGE_DIR}.zip")
    if missing:
        raise MissingDataError(
            f"missing in {source}: {', '.join(missing)}; download 'Align&Cropped Images', 'Anno' and 'Eval' from {URL}"
        )
    target = data_dir(root)
    target.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, path in found.items():
        if path is not None and path.resolve() != (target / name).resolve():
            shutil.copyfile(path, target / name)
    if images.is_dir():
        lines.append(place_folder(images, target / IMAGE_DIR, copy))
    else:
        if (target / IMAGE_DIR).is_symlink():
            (target / IMAGE_DIR).unlink()
        lines.append(f"extracted {extract_zip(images, target / IMAGE_DIR)} images from {images}")
    ann = read_annotations(root)
    sizes = {split: int((ann.partition == code).sum()) for split, code in SPLIT_CODES.items()}
    lines.append(
        f"celeba ready in {target}: {len(ann.names)} images, " + ", ".join(f"{s} {n}" for s, n in sizes.items())
    )
    if sizes != dict(OFFICIAL_SIZES):
        lines.append(f"note: the official partition has {', '.join(f'{s} {n}' for s, n in OFFICIAL_SIZES.items())}")
    train = ann.attributes[ann.partition == SPLIT_CODES["train"]]
    if len(train):
        rates = ", ".join(f"{a} {train[:, ATTRIBUTES.index(a)].mean():.1%}" for a in HV_ATTRIBUTES)
        lines.append(f"positive rate in train of the hypervolume attributes: {rates}")
        lines.append(f"mean positive rate over the 40 attributes: {float(np.mean(train)):.1%}")
    return lines


def main(argv: list[str] | None = None) -> int:
    cli = prepare_cli.parser("Prepare the celeba dataset from the official CelebA files.")
    cli.add_argument(
        "--source", type=Path, required=True, help=f"folder with {IMAGE_DIR}/ or .zip, {ATTR_FILE}, {PARTITION_FILE}"
    )
    cli.add_argument("--copy", action="store_true", help="copy an image folder instead of symlinking it")
    return prepare_cli.run(cli, argv, lambda args, root: prepare(args.source.expanduser(), root, args.copy))


if __name__ == "__main__":
    sys.exit(main())
