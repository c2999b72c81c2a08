"""Prepare the ``census`` datasets from the UCI Census-Income (KDD) files.

    python datasets/census/prepare.py --source PATH [--data-root ROOT]

PATH is a folder holding ``census-income.data`` and ``census-income.test`` (each plain or ``.gz``),
or an archive from https://archive.ics.uci.edu/dataset/117/census+income+kdd (``census.tar.gz``, or
the site's ``.zip`` that wraps it), or a folder holding such an archive. The two files are copied or
extracted into ``ROOT/census/``, parsed once into ``ROOT/census/census-parsed-v1.pt`` and checked: the
feature widths must be the official code's (468 for ``census``, 477 for ``census-income-marital``).
ROOT defaults to ``$PFLBENCH_DATA``, else ``~/.cache/pfl-bench``. Errors the user can fix print one
line and exit 2. See datasets/census/README.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import IO

from bench.data import prepare_cli
from bench.data.census import FILES, NUM_FEATURES, URL, census_dir, find_file, prepare
from bench.errors import MissingDataError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
WANTED = tuple(FILES.values())


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _write(stream: IO[bytes], target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "wb") as out:
        shutil.copyfileobj(stream, out)
    tmp.replace(target)


def _member_name(name: str) -> str | None:
    """The file a member provides (``census-income.data`` or ``.test``, plain or .gz), or None."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base if base in WANTED or base.removesuffix(".gz") in WANTED else None


def _extract_tar(fileobj: IO[bytes] | None, path: Path | None, target: Path, found: dict[str, Path]) -> None:
    with tarfile.open(name=path, fileobj=fileobj, mode="r|*") as tar:
        for member in tar:
            base = _member_name(member.name)
            stream = tar.extractfile(member) if member.isfile() and base else None
            if stream is not None and base is not None and base.removesuffix(".gz") not in found:
                _write(stream, target / base)
                found[base.removesuffix(".gz")] = target / base


def extract(archive: Path, target: Path, found: dict[str, Path]) -> None:
    """Extract the census files from a tar(.gz) or a zip (holding the files or a tar.gz) into ``target``."""
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    base = _member_name(info.filename)
                    if base is not None and base.removesuffix(".gz") not in found:
                        with zf.open(info) as stream:
                            _write(stream, target / base)
                        found[base.removesuffix(".gz")] = target / base
                    elif info.filename.lower().endswith((".tar.gz", ".tgz", ".tar")):
                        with zf.open(info) as stream:
                            _extract_tar(stream, None, target, found)
        else:
            _extract_tar(None, archive, target, found)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise MissingDataError(f"cannot read archive {archive} ({err}); re-download it from {URL}") from None


def gather(source: Path, root: Path) -> Path:
    """Copy or extract ``census-income.data`` and ``.test`` from ``source`` into ``ROOT/census``."""
    if not source.exists():
        raise MissingDataError(f"--source {source} does not exist; give the folder or archive with the census files")
    target = census_dir(root)
    target.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    if is_archive(source):
        extract(source, target, found)
    elif source.is_dir():
        for name in WANTED:
            path = find_file(source, name)
            if path is None:
                continue
            if path.resolve() != (target / path.name).resolve():
                shutil.copyfile(path, target / path.name)
            found[name] = target / path.name
        for archive in sorted(p for p in source.iterdir() if is_archive(p)):
            if len(found) < len(WANTED):
                extract(archive, target, found)
    else:
        raise MissingDataError(f"--source {source} is neither a folder nor an archive ({', '.join(ARCHIVE_SUFFIXES)})")
    missing = [name for name in WANTED if name not in found]
    if missing:
        raise MissingDataError(
            f"missing in {source}: {', '.join(f'{m}[.gz]' for m in missing)} (as files or inside census.tar.gz "
            f"or the UCI zip); download them from {URL}"
        )
    if not (source.is_dir() and source.resolve() == target.resolve()):
        for name, path in found.items():  # the loader prefers the plain file: drop a stale copy of the other kind
            other = path.with_name(name if path.name.endswith(".gz") else f"{name}.gz")
            if other != path:
                other.unlink(missing_ok=True)
    return target


def main(argv: list[str] | None = None) -> int:
    cli = prepare_cli.parser("Prepare the census datasets from the UCI Census-Income (KDD) files.")
    cli.add_argument(
        "--source",
        type=Path,
        required=True,
        help="folder with census-income.data/.test (plain or .gz) or census.tar.gz / the UCI zip, or that archive",
    )

    def work(args: argparse.Namespace, root: Path) -> list[str]:
        folder = gather(args.source.expanduser(), root)
        info = prepare(root)
        wrong = {name: width for name, width in info["widths"].items() if width != NUM_FEATURES[name]}
        if wrong:
            raise MissingDataError(
                "the census files give "
                + ", ".join(
                    f"{width} features for {name} (expected {NUM_FEATURES[name]})" for name, width in wrong.items()
                )
                + f"; they are not the UCI Census-Income (KDD) release: re-download them from {URL}"
            )
        sizes = info["sizes"]
        return [
            f"census files: {folder}",
            f"parsed cache: {info['cache']}",
            f"rows: train {sizes['train']}, val {sizes['val']}, test {sizes['test']}",
            "features: " + ", ".join(f"{name} {width}" for name, width in info["widths"].items()),
        ]

    return prepare_cli.run(cli, argv, work)


if __name__ == "__main__":
    sys.exit(main())
