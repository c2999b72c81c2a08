"""CelebA: 40 binary face attributes from the aligned-and-cropped images (40 tasks).

Reads the official release in torchvision's layout, ``<root>/celeba/``: ``img_align_celeba/``
(000001.jpg ... 202599.jpg, 178x218), ``list_attr_celeba.txt`` (line 1: the number of images, line 2:
the 40 attribute names, then ``<file> <40 values of -1/1>``) and ``list_eval_partition.txt``
(``<file> <0|1|2>`` = train / val / test). Re-implements the raw-file path of the official code
(nik-dim/palora ``src/datasets/celeba.py``, ``CustomCelebA`` over ``torchvision.datasets.CelebA``;
nik-dim/pamal ``src/datasets/celeba.py``): labels ``(a + 1) / 2`` (-1 -> 0, 1 -> 1), images resized to
64x64 (no crop, no normalisation, no augmentation) and scaled to [0, 1]. Each attribute is a
2-class task (the official head is ``Linear(2048, 2)`` with cross-entropy). The annotations are parsed
once per root and process (pandas), the JPEGs are decoded by DataLoader workers.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from bench.core.errors import MissingDataError, UserError
from bench.core.registry import register_dataset
from bench.core.spec import DatasetSpec, Split
from bench.data.kit.objectives import classification
from bench.data.kit.preparation import Option, link_or_copy, prepares

NAME = "celeba"
ATTRIBUTES = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)
"""The 40 attributes in the order of the official ``list_attr_celeba.txt`` header."""
HV_ATTRIBUTES = ("Attractive", "Male", "Smiling")
"""The hypervolume's objectives: three near-balanced attributes (see the data card)."""
IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
SPLIT_CODES: Mapping[str, int] = {"train": 0, "val": 1, "test": 2}
OFFICIAL_SIZES: Mapping[str, int] = {"train": 162770, "val": 19867, "test": 19962}
IMAGE_SIZE = 64
URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
PREPARE = "python datasets/celeba/prepare.py --source DIR --data-root {root}"


def data_dir(root: Path) -> Path:
    """Where the CelebA files live: ``<root>/celeba`` (torchvision's layout)."""
    return Path(root) / NAME


def how_to_get(root: Path) -> str:
    return (
        f"Download 'Align&Cropped Images' (img_align_celeba.zip), 'Anno' ({ATTR_FILE}) and 'Eval' "
        f"({PARTITION_FILE}) from {URL} into one folder DIR, then run: {PREPARE.format(root=root)}"
    )


def missing_message(root: Path, missing: Sequence[Path]) -> str:
    shown = ", ".join(f"{p}/" if p.name == IMAGE_DIR else str(p) for p in missing)
    return f"dataset 'celeba' needs the CelebA files; missing: {shown}. " + how_to_get(root)


def load_image(path: str | Path) -> Tensor:
    """A face as float32 [3, 64, 64] in [0, 1]: RGB, PIL bilinear resize to 64x64, /255
    (the official ``Resize((64, 64))`` + ``ToTensor()``)."""
    with Image.open(path) as img:
        small = img.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    pixels = np.asarray(small, dtype=np.uint8).transpose(2, 0, 1).copy()
    return torch.from_numpy(pixels).float().div_(255)


@dataclasses.dataclass(frozen=True)
class Annotations:
    """Every image of the release: file names, 0/1 attributes [N, 40] and partition codes [N]."""

    names: np.ndarray
    attributes: np.ndarray
    partition: np.ndarray


def _read_header(path: Path) -> tuple[int, list[str]]:
    with open(path) as f:
        count_line, names_line = f.readline(), f.readline()
    try:
        count = int(count_line.strip())
    except ValueError:
        raise MissingDataError(
            f"{path}: line 1 should be the number of images, found {count_line.strip()[:60]!r}; "
            f"this is not the official {ATTR_FILE}. " + how_to_get(path.parent.parent)
        ) from None
    return count, names_line.split()


def _read_table(path: Path, skiprows: int = 0) -> pd.DataFrame:
    """A whitespace-separated table whose first column is a file name (pandas' C parser)."""
    try:
        return pd.read_csv(path, sep=r"\s+", skiprows=skiprows, header=None, dtype={0: str})
    except (pd.errors.ParserError, ValueError) as err:
        reason = " ".join(str(err).split())
        raise MissingDataError(f"{path} is not in the official format ({reason}); re-download it") from None


def read_attributes(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """File names and 0/1 attributes [N, 40] (int8) from ``list_attr_celeba.txt``; checks the header."""
    count, header = _read_header(path)
    if tuple(header) != ATTRIBUTES:
        pairs = zip(header, ATTRIBUTES, strict=False)  # a short header is reported by its length
        differ = [f"{i + 1}: {a!r} (expected {b!r})" for i, (a, b) in enumerate(pairs) if a != b]
        raise MissingDataError(
            f"{path}: line 2 should name the 40 standard CelebA attributes (5_o_Clock_Shadow ... Young) in order; "
            f"found {len(header)} names"
            + (f", differing at {'; '.join(differ[:3])}" if differ else "")
            + ". Use the official file. "
            + how_to_get(path.parent.parent)
        )
    table = _read_table(path, skiprows=2)
    if table.shape[1] != 41:
        raise MissingDataError(f"{path}: rows should be '<file> <40 values>', found {table.shape[1] - 1} values")
    values = table.iloc[:, 1:].to_numpy()
    bad = ~((values == 1) | (values == -1))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise MissingDataError(
            f"{path}: attribute values should be -1 or 1, found '{values[row, col]}' for {ATTRIBUTES[col]} of "
            f"{table.iat[row, 0]}; re-download it"
        )
    if len(table) != count:
        raise MissingDataError(f"{path}: line 1 says {count} images but the file lists {len(table)}; re-download it")
    return table[0].to_numpy(dtype=str), ((values.astype(np.int64) + 1) // 2).astype(np.int8)


def read_partition(path: Path, names: np.ndarray) -> np.ndarray:
    """Partition codes (0 train, 1 val, 2 test) for ``names`` from ``list_eval_partition.txt``."""
    table = _read_table(path)
    if table.shape[1] != 2 or not table[1].isin(tuple(SPLIT_CODES.values())).all():
        raise MissingDataError(f"{path}: rows should be '<file> <0|1|2>'; re-download the official file")
    files, codes = table[0].to_numpy(dtype=str), table[1].to_numpy(dtype=np.int8)
    if np.array_equal(files, names):
        return codes
    lookup = pd.Series(codes, index=files)
    absent = ~pd.Index(names).isin(lookup.index)
    if absent.any():
        raise MissingDataError(
            f"{path} has no split for {int(absent.sum())} images of {ATTR_FILE} "
            f"(e.g. {', '.join(names[absent][:3])}); use the official files of one release"
        )
    return lookup.loc[names].to_numpy(dtype=np.int8)


def check_images(folder: Path, names: np.ndarray, root: Path) -> None:
    """Every annotated image must be in ``folder`` (one directory listing, not one stat per file)."""
    present = set(os.listdir(folder))
    absent = [n for n in names if n not in present]
    if absent:
        raise MissingDataError(
            f"{len(absent)} of the {len(names)} images listed in {ATTR_FILE} are missing from {folder} "
            f"(e.g. {', '.join(absent[:3])}); extract the whole img_align_celeba.zip. " + how_to_get(root)
        )


def _stamp(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=4)
def _cached_annotations(
    attr: tuple[str, int, int], part: tuple[str, int, int], images: tuple[str, int, int]
) -> Annotations:
    """Parsed once per (files, modification times): the key changes when a file is replaced."""
    folder = Path(images[0])
    names, attributes = read_attributes(Path(attr[0]))
    partition = read_partition(Path(part[0]), names)
    check_images(folder, names, folder.parent.parent)
    return Annotations(names, attributes, partition)


def read_annotations(root: Path) -> Annotations:
    """The parsed annotations of ``<root>/celeba`` (cached), or a MissingDataError naming what is missing."""
    folder = data_dir(root)
    paths = (folder / ATTR_FILE, folder / PARTITION_FILE, folder / IMAGE_DIR)
    missing = [p for p in (paths[2], *paths[:2]) if not (p.is_dir() if p.name == IMAGE_DIR else p.is_file())]
    if missing:
        raise MissingDataError(missing_message(root, missing))
    return _cached_annotations(*(_stamp(p) for p in paths))


class CelebAFaces(Dataset):
    """One split: ``(image [3, 64, 64] in [0, 1], {attribute: 0/1 int64})`` per item.

    Holds numpy arrays only (no file handles), so it pickles cheaply to DataLoader workers.
    """

    def __init__(self, folder: Path, names: np.ndarray, attributes: np.ndarray) -> None:
        self.folder = str(folder)
        self.names = names
        self.attributes = attributes

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        image = load_image(os.path.join(self.folder, self.names[index]))
        labels = torch.from_numpy(self.attributes[index].astype(np.int64))
        return image, dict(zip(ATTRIBUTES, labels, strict=True))


def load(root: Path, split: Split) -> CelebAFaces:
    """Split ``split`` of the official partition under ``<root>/celeba``."""
    ann = read_annotations(root)
    keep = ann.partition == SPLIT_CODES[split]
    return CelebAFaces(data_dir(root) / IMAGE_DIR, ann.names[keep], ann.attributes[keep])


def mean_error(entry: Mapping[str, Any]) -> float:
    """Mean error (1 - accuracy) over the 40 attributes of one front entry (``summary["front"][i]``)."""
    return float(np.mean([1.0 - entry["metrics"][a]["accuracy"] for a in ATTRIBUTES]))


CELEBA = register_dataset(
    DatasetSpec(
        name="celeba",
        description="CelebA aligned faces, 40 binary attributes (40 tasks), official partition; needs the files",
        input_shape=(3, IMAGE_SIZE, IMAGE_SIZE),
        objectives=tuple(classification(a, num_classes=2) for a in ATTRIBUTES),
        backbone="resnet18",
        hv_reference=(1.0, 1.0, 1.0),
        hv_objectives=HV_ATTRIBUTES,
        load=load,
        split_sizes=OFFICIAL_SIZES,
        train_defaults={
            "train.epochs": 100,
            "train.batch_size": 256,
            "train.lr": 1e-3,
            "train.eval_batch_size": 512,
            "train.eval_every": 1,  # celeba.yaml validate_every_n 1
        },
    )
)


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
    assert images is not None  # else it is in ``missing``
    target = data_dir(root)
    target.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, path in found.items():
        if path is not None and path.resolve() != (target / name).resolve():
            shutil.copyfile(path, target / name)
    if images.is_dir():
        lines.append(link_or_copy(images, target / IMAGE_DIR, copy))
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


@prepares(
    NAME,
    options=[
        Option(
            ("--source",),
            f"folder with {IMAGE_DIR}/ or {IMAGE_DIR}.zip, {ATTR_FILE}, {PARTITION_FILE}",
            required=True,
        ),
        Option(("--copy",), "copy an image folder instead of symlinking it", kind="switch"),
    ],
)
def prepare_entry(args: argparse.Namespace, root: Path) -> list[str]:
    """Put the official CelebA files under ROOT/celeba (torchvision's layout) and check them. The
    source folder holds img_align_celeba/ (the extracted folder) or img_align_celeba.zip, plus
    list_attr_celeba.txt and list_eval_partition.txt (also found in its Img/, Anno/ and Eval/
    subfolders, the layout of the official Google Drive): the text files are copied, the zip is
    extracted, a folder is symlinked (--copy copies its 202,599 files). Then the annotations are
    parsed, every listed image is checked, and the split sizes are printed."""
    return prepare(args.source.expanduser(), root, args.copy)
