"""UTKFace: age (regression), gender and race (classification) from aligned-and-cropped faces (3 tasks).

Reads ``<root>/utkface/UTKFace/``, the "Aligned&Cropped Faces" release, whose file names carry the
labels: ``[age]_[gender]_[race]_[date&time].jpg.chip.jpg`` (age 0-116; gender 0 male, 1 female;
race 0-4 = White, Black, Asian, Indian, Others). Re-implements the official loader (nik-dim/palora
``src/datasets/utkface.py``, identical in nik-dim/pamal): the images in sorted file-name order (as
``ImageFolder`` lists them), labels from ``name.split(".")[0].split("_")[:3]``, age z-scored with the
mean and unbiased std of the whole dataset (before the split), a 70/10/20 split by
``random_split`` with integer lengths ``int(0.7 N)``, ``int(0.1 N)``, rest and
``torch.Generator().manual_seed(42)``, images resized to 64x64 in [0, 1] (no normalisation).
Unlike the official loader, files whose names lack a field are skipped (and reported), not fatal.

The age target is ``[z, std]`` per sample: the loss and metrics read the standardised age ``z``;
``mae_original`` multiplies the error by the dataset's std, so it reports years without a
registration-time constant (the std is only known once the files are read).

Hypervolume: the default (``official``) is the official one, on the test Huber age loss and the gender
and race cross-entropies, reference (1, 1, 1); ``errors`` puts gender and race as 1 - accuracy.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import shutil
import tarfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, cast

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from bench.core.errors import MissingDataError, UserError
from bench.core.registry import register_dataset
from bench.core.spec import DatasetSpec, HypervolumeDefinition, Metric, Objective, Split
from bench.data.celeba import load_image
from bench.data.kit.objectives import classification, regression
from bench.data.kit.preparation import Option, link_or_copy, prepares

log = logging.getLogger(__name__)

NAME = "utkface"
IMAGE_DIR = "UTKFace"
IMAGE_SIZE = 64
SPLIT_FRACTIONS = (0.7, 0.1)  # train, val; test is the rest (official SPLIT = [0.7, 0.1, 0.2])
SPLIT_SEED = 42
SPLITS = ("train", "val", "test")
NUM_RACES = 5
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""The extensions torchvision's ImageFolder lists (compared in lower case)."""
OFFICIAL_FILES, OFFICIAL_USABLE = 23708, 23705
URL = "https://susanqq.github.io/UTKFace/"
PREPARE = "python datasets/utkface/prepare.py --source UTKFace.tar.gz --data-root {root}"


def image_dir(root: Path) -> Path:
    return Path(root) / NAME / IMAGE_DIR


def how_to_get(root: Path) -> str:
    return (
        f"Download 'Aligned&Cropped Faces' (UTKFace.tar.gz) from {URL}, then run: {PREPARE.format(root=root)} "
        "(--source also takes the extracted UTKFace folder)"
    )


def parse_name(name: str) -> tuple[int, int, int] | None:
    """(age, gender, race) from ``[age]_[gender]_[race]_[date&time].jpg...``, or None when malformed
    (a missing or non-integer field, gender not 0/1, race not 0-4)."""
    fields = name.split(".")[0].split("_")
    if len(fields) != 4 or not all(f.isascii() and f.isdigit() for f in fields[:3]):
        return None
    age, gender, race = (int(f) for f in fields[:3])
    if gender not in (0, 1) or race >= NUM_RACES:
        return None
    return age, gender, race


def split_lengths(n: int) -> list[int]:
    """The official integer lengths: ``int(0.7 n)``, ``int(0.1 n)``, and the rest for test."""
    train, val = int(n * SPLIT_FRACTIONS[0]), int(n * SPLIT_FRACTIONS[1])
    return [train, val, n - train - val]


def split_indices(n: int, seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """Indices of each split, as ``random_split(range(n), split_lengths(n), Generator().manual_seed(seed))``."""
    indices = cast("Dataset[int]", range(n))  # random_split takes any sized sequence; it only permutes indices
    parts = torch.utils.data.random_split(indices, split_lengths(n), generator=torch.Generator().manual_seed(seed))
    return {split: np.asarray(part.indices, dtype=np.int64) for split, part in zip(SPLITS, parts, strict=True)}


@dataclasses.dataclass(frozen=True)
class Faces:
    """Every usable image (sorted names), its labels, the age statistics and the skipped names."""

    names: np.ndarray
    age_z: np.ndarray
    gender: np.ndarray
    race: np.ndarray
    age_mean: float
    age_std: float
    skipped: tuple[str, ...]
    splits: Mapping[str, np.ndarray]


def scan(folder: Path) -> Faces:
    """List, parse and split the images of ``folder`` (hidden files and non-images are ignored)."""
    files = sorted(f for f in os.listdir(folder) if not f.startswith(".") and f.lower().endswith(IMAGE_SUFFIXES))
    names, labels, skipped = [], [], []
    for f in files:
        parsed = parse_name(f)
        if parsed is None:
            skipped.append(f)
        else:
            names.append(f)
            labels.append(parsed)
    root = folder.parent.parent
    if not names:
        raise MissingDataError(
            f"{folder} holds no image named [age]_[gender]_[race]_[date&time].jpg "
            f"({len(files)} images, {len(skipped)} with other names). " + how_to_get(root)
        )
    if skipped:
        shown = ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        log.warning("utkface: skipped %d of %d images with malformed names: %s", len(skipped), len(files), shown)
    table = np.asarray(labels, dtype=np.int64)
    ages = torch.tensor(table[:, 0], dtype=torch.float32)
    mean, std = ages.mean(), ages.std()  # float32, unbiased: as the official loader
    if not std > 0:
        raise MissingDataError(f"{folder}: every usable image has age {int(table[0, 0])}; the age std is 0")
    splits = split_indices(len(names))
    empty = [s for s in SPLITS if len(splits[s]) == 0]
    if empty:
        raise MissingDataError(
            f"{folder} has only {len(names)} usable images: the 70/10/20 split leaves {', '.join(empty)} empty"
        )
    return Faces(
        names=np.asarray(names, dtype=str),
        age_z=((ages - mean) / std).numpy(),
        gender=table[:, 1],
        race=table[:, 2],
        age_mean=float(mean),
        age_std=float(std),
        skipped=tuple(skipped),
        splits=splits,
    )


@functools.lru_cache(maxsize=4)
def _cached_scan(folder: str, mtime_ns: int) -> Faces:
    """Scanned once per folder and modification time (adding or removing a file changes it)."""
    return scan(Path(folder))


def read_faces(root: Path) -> Faces:
    """The parsed ``<root>/utkface/UTKFace`` (cached), or a MissingDataError naming the folder."""
    folder = image_dir(root)
    if not folder.is_dir():
        raise MissingDataError(
            f"dataset 'utkface' needs the image folder {folder}, which is missing. " + how_to_get(root)
        )
    return _cached_scan(str(folder), folder.stat().st_mtime_ns)


class UTKFaces(Dataset):
    """One split: ``(image [3, 64, 64] in [0, 1], {"age": [z, std] float32, "gender": int64, "race": int64})``.

    ``skipped``: the malformed file names left out of the dataset. Holds numpy arrays only, so it
    pickles cheaply to DataLoader workers.
    """

    def __init__(self, folder: Path, faces: Faces, indices: np.ndarray) -> None:
        self.folder = str(folder)
        self.names = faces.names[indices]
        self.age = np.stack([faces.age_z[indices], np.full(len(indices), faces.age_std, np.float32)], axis=1)
        self.gender = faces.gender[indices]
        self.race = faces.race[indices]
        self.age_mean, self.age_std = faces.age_mean, faces.age_std
        self.skipped = faces.skipped

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        image = load_image(os.path.join(self.folder, self.names[index]))
        return image, {
            "age": torch.from_numpy(self.age[index].copy()),
            "gender": torch.tensor(self.gender[index]),
            "race": torch.tensor(self.race[index]),
        }


def load(root: Path, split: Split) -> UTKFaces:
    faces = read_faces(root)
    return UTKFaces(image_dir(root), faces, faces.splits[split])


def _on_standardised(fn: Callable[[Tensor, Tensor], Tensor], output: Tensor, target: Tensor) -> Tensor:
    return fn(output, target[:, 0])


def _years_error(output: Tensor, target: Tensor) -> Tensor:
    return (output.squeeze(1) - target[:, 0]).abs() * target[:, 1]


def age_objective() -> Objective:
    """``regression("age", loss="huber", hv_metric="huber")`` on the ``z`` column of the ``[z, std]``
    target, plus ``mae_original`` (years) = |output - z| * std."""
    base = regression("age", loss="huber", hv_metric="huber")
    metrics = tuple(dataclasses.replace(m, fn=functools.partial(_on_standardised, m.fn)) for m in base.metrics)
    return dataclasses.replace(
        base,
        loss_fn=functools.partial(_on_standardised, base.loss_fn),
        metrics=(*metrics, Metric("mae_original", _years_error, higher_is_better=False)),
    )


HV_REFERENCE = (1.0, 1.0, 1.0)
HV_OFFICIAL_NOTE = (
    "The official definition: pymoo HV on (huber/age, loss/gender, loss/race) with reference (1, 1, 1) "
    "(nik-dim/palora src/callbacks/utils/pareto_front_visualizer3d.py, compute_hypervolume and the UTKFace pairs)."
)
HV_ERRORS = HypervolumeDefinition(
    name="errors",
    coordinates=(("age", "huber"), ("gender", "accuracy"), ("race", "accuracy")),
    reference=HV_REFERENCE,
    note="Ours: gender and race as errors (1 - accuracy), bounded by 1 as every accuracy objective here; "
    "the 5-class race cross-entropy at chance (ln 5 = 1.61) lies outside the official reference.",
)


UTKFACE = register_dataset(
    DatasetSpec(
        name="utkface",
        description="UTKFace aligned faces: age (Huber), gender, race (3 tasks), 70/10/20 split; needs the files",
        input_shape=(3, IMAGE_SIZE, IMAGE_SIZE),
        objectives=(
            age_objective(),
            classification("gender", 2, hv_metric="loss"),
            classification("race", NUM_RACES, hv_metric="loss"),
        ),
        backbone="resnet18",
        hv_reference=HV_REFERENCE,
        hv_name="official",
        hv_note=HV_OFFICIAL_NOTE,
        hv_alternatives=(HV_ERRORS,),
        load=load,
        split_sizes=dict(zip(("train", "val", "test"), split_lengths(OFFICIAL_USABLE), strict=True)),
        train_defaults={
            "train.epochs": 100,
            "train.batch_size": 128,
            "train.lr": 1e-3,
            "train.eval_batch_size": 512,
            "train.eval_every": 20,
        },
        eval_points_per_edge=11,
    )
)


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
        for member in tf:
            name = _wanted(member.name) if member.isfile() else None
            extracted = tf.extractfile(member) if name is not None else None
            if name is not None and extracted is not None:
                with extracted:
                    yield name, member.size, extracted


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
        lines = [link_or_copy(folder, target, copy)]
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


@prepares(
    NAME,
    options=[
        Option(("--source",), "UTKFace.tar.gz (or .zip), or the UTKFace folder", required=True),
        Option(("--copy",), "copy a source folder instead of symlinking it", kind="switch"),
    ],
)
def prepare_entry(args: argparse.Namespace, root: Path) -> list[str]:
    """Put the "Aligned&Cropped Faces" of UTKFace in ROOT/utkface/UTKFace and check them. The source
    is the archive (.tar.gz, .tgz, .tar or .zip; the images in its UTKFace/ folder or at its top level
    are extracted) or the extracted folder (or a folder holding UTKFace/), which is symlinked (--copy
    copies it). Then the images are listed and parsed, and the usable count, the skipped (malformed)
    names and the split sizes are printed."""
    return prepare(args.source.expanduser(), root, args.copy)
