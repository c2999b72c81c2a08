"""Prepare ``utkface`` from the "Aligned&Cropped Faces" release of UTKFace.

    python datasets/utkface/prepare.py --source UTKFace.tar.gz [--data-root ROOT]
    python datasets/utkface/prepare.py --source path/to/UTKFace [--data-root ROOT] [--copy]

``--source`` is the archive (``.tar.gz``, ``.tgz``, ``.tar`` or ``.zip``; the images inside its
``UTKFace/`` folder, or at its top level, are extracted) or the extracted folder of images (or a
folder that contains ``UTKFace/``), which is symlinked (``--copy`` copies it). The images go to
``ROOT/utkface/UTKFace/``; then they are listed and parsed, and the usable count, the skipped
(malformed) names and the split sizes are printed. ROOT defaults to ``$PFLBENCH_DATA``, else
``~/.cache/pfl-bench``. Errors the user can fix print one line and exit 2. See datasets/utkface/README.md.
"""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from bench.data import prepare_cli
from bench.data.utkface import (
    IMAGE_DIR,
    IMAGE_SUFFIXES,
    OFFICIAL_FILES,
    OFFICIAL_USABLE,
    SPLITS,
    URL,
    image_dir,
    read_faces,
    split_lengths,
)
from bench.errors import MissingDataError, UserError

ARCHIVES = (".tar.gz", ".tgz", ".tar", ".zip")


def _wanted(member: str) -> str | None:
    """The base name of an image directly inside a ``UTKFace/`` folder or at the archive's top level."""
    parts = [p for p in member.split("/") if p not in ("", ".")]
    if not parts or parts[-1].startswith(".") or not parts[-1].lower().endswith(IMAGE_SUFFIXES):
        return None
    if len(parts) == 1 or parts[-2] == IMAGE_DIR:
        return parts[-1]
    return None


def _members(archive: Path) -> Iterator[tuple[str, int, IO[bytes]]]:
    """(base name, size, stream) of each wanted image of a tar or zip archive."""
    if archive.name.lower().endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = None if info.is_dir() else _wanted(info.filename)
                if name is not None:
                    with zf.open(info) as stream:
                        yield name, info.file_size, stream
        return
    with tarfile.open(archive) as tf:
        for info in tf:
            name = _wanted(info.name) if info.isfile() else None
            stream = tf.extractfile(info) if name is not None else None
            if name is not None and stream is not None:
                with stream:
                    yield name, info.size, stream


def extract(archive: Path, target: Path) -> int:
    """Extract the images flat into ``target`` (by base name: no path from the archive is trusted),
    skipping those already there with the same size; returns how many were written."""
    target.mkdir(parents=True, exist_ok=True)
    written = seen = 0
    try:
        for name, size, stream in _members(archive):
            seen += 1
            out = target / name
            if out.is_file() and out.stat().st_size == size:
                continue
            with open(out, "wb") as dst:
                shutil.copyfileobj(stream, dst)
            written += 1
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise UserError(f"cannot read {archive} ({err}); download it again from {URL}") from None
    if not seen:
        raise MissingDataError(f"{archive} has no images in a {IMAGE_DIR}/ folder or at its top level; expected {URL}")
    return written


def place_folder(source: Path, target: Path, copy: bool) -> str:
    """Symlink ``target`` to ``source`` (or copy its images); returns what was done."""
    if target.resolve() == source.resolve():
        return f"{target} already holds the images"
    if target.is_symlink():
        target.unlink()
    elif target.exists() and not copy:
        raise UserError(f"{target} already exists and is not a link; remove it, or rerun with --copy to fill it")
    target.parent.mkdir(parents=True, exist_ok=True)
    if not copy:
        target.symlink_to(source.resolve(), target_is_directory=True)
        return f"linked {target} -> {source.resolve()} (keep that folder, or rerun with --copy)"
    target.mkdir(exist_ok=True)
    copied = 0
    for path in source.iterdir():
        out = target / path.name
        if path.is_file() and not (out.is_file() and out.stat().st_size == path.stat().st_size):
            shutil.copyfile(path, out)
            copied += 1
    return f"copied {copied} files into {target}"


def prepare(source: Path, root: Path, copy: bool = False) -> list[str]:
    """Put the images of ``source`` in ``root/utkface/UTKFace`` and validate them; returns report lines."""
    target = image_dir(root)
    if source.is_file():
        if not source.name.lower().endswith(ARCHIVES):
            raise UserError(f"--source {source}: expected a folder or a {', '.join(ARCHIVES)} archive")
        if target.is_symlink():
            target.unlink()
        lines = [f"extracted {extract(source, target)} images from {source}"]
    elif source.is_dir():
        folder = source / IMAGE_DIR if (source / IMAGE_DIR).is_dir() else source
        if not any(f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith(".") for f in os.listdir(folder)):
            raise MissingDataError(f"--source {folder} holds no images; expected the 'Aligned&Cropped Faces' of {URL}")
        lines = [place_folder(folder, target, copy)]
    else:
        raise MissingDataError(f"--source {source} does not exist; download 'Aligned&Cropped Faces' from {URL}")
    faces = read_faces(root)
    total = len(faces.names) + len(faces.skipped)
    sizes = split_lengths(len(faces.names))
    lines.append(
        f"utkface ready in {target}: {len(faces.names)} usable of {total} images; "
        + ", ".join(f"{s} {n}" for s, n in zip(SPLITS, sizes, strict=True))
        + f"; age mean {faces.age_mean:.3f}, std {faces.age_std:.3f} years"
    )
    if faces.skipped:
        lines.append(f"skipped {len(faces.skipped)} malformed names: {', '.join(faces.skipped[:10])}")
    if total != OFFICIAL_FILES or len(faces.names) != OFFICIAL_USABLE:
        lines.append(
            f"note: the official release has {OFFICIAL_FILES} images, {OFFICIAL_USABLE} with well-formed names"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    cli = prepare_cli.parser("Prepare the utkface dataset (Aligned&Cropped Faces).")
    cli.add_argument("--source", type=Path, required=True, help="UTKFace.tar.gz (or .zip), or the UTKFace folder")
    cli.add_argument("--copy", action="store_true", help="copy a source folder instead of symlinking it")
    return prepare_cli.run(cli, argv, lambda args, root: prepare(args.source.expanduser(), root, args.copy))


if __name__ == "__main__":
    sys.exit(main())
