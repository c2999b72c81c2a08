"""The MTAN preprocessed scene-understanding layout (Cityscapes, NYUv2): one ``.npy`` per sample and task.

Layout (lorenmt/mtan README; read by nik-dim/palora ``src/datasets/{cityscapes2,nyuv2}.py``):
``<dataset dir>/{train,val}/<folder>/<i>.npy`` for i = 0..N-1, with ``image`` (H, W, 3) in [0, 1],
a label folder (H, W) with classes 0..C-1 and -1 for unlabelled pixels, ``depth`` (H, W, 1) with 0
for invalid pixels and, for NYUv2, ``normal`` (H, W, 3) unit vectors (all zero where invalid).

This module holds what both datasets share: the file scan and its checks, the map-style Dataset
(each item is read with ``np.load`` in the DataLoader worker), the official splits, the train-time
augmentation and the preparation of a user's download. The resolution is read from the files.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from bench.core.errors import CorruptDataError, MissingDataError, UserError
from bench.data.kit.preparation import Option, prepares

Kind = Literal["label", "depth", "normal"]
ScaleMode = Literal["crop_resize", "resize_crop"]
SCALES = (1.0, 1.2, 1.5)
SPLIT_DIRS = ("train", "val")
DTYPE_KINDS: Mapping[str, str] = {"image": "f", "label": "fiu", "depth": "f", "normal": "f"}
"""numpy dtype kinds accepted per folder kind: floats, and integers too for labels."""
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


@dataclasses.dataclass(frozen=True)
class Layout:
    """One MTAN-format dataset: its folder under the data root, the task folders, the official
    sizes, how the train folder is split into train/val, and where users get it."""

    name: str
    tasks: tuple[tuple[str, str, Kind], ...]
    """(objective name, folder, kind) per task, in objective order."""
    expected: Mapping[str, int]
    """Samples the official archive holds per split folder (only reported, never required)."""
    train_fraction: tuple[int, int]
    """(train, train + val): the official train/val cut of the train folder (2500/2975, 700/795)."""
    split_seed: int
    image_scale: float = 1.0
    image_shift: float = 0.0
    """Inputs are ``image * image_scale + image_shift`` (NYUv2 in PaLoRA: [0, 1] -> [-1, 1])."""
    scale_mode: ScaleMode = "crop_resize"
    """How the train-time random scale is applied: ``crop_resize`` (:func:`scale_crop`, PaLoRA's
    Cityscapes) or ``resize_crop`` (:func:`resize_crop`, PaLoRA's NYUv2)."""
    urls: tuple[str, ...] = ()
    archive: str = "the MTAN archive"
    """What users download, in words (e.g. "MTAN's Cityscapes 128x256 archive")."""

    @property
    def folders(self) -> tuple[str, ...]:
        return ("image", *(folder for _, folder, _ in self.tasks))

    def directory(self, root: Path) -> Path:
        return Path(root) / self.name

    def prepare_command(self, root: Path | str = "ROOT") -> str:
        return f"python datasets/{self.name}/prepare.py --source <extracted folder or .zip> --data-root {root}"


def train_val_indices(layout: Layout, count: int) -> tuple[list[int], list[int]]:
    """The official cut of the ``count`` train-folder samples: a seeded ``torch.randperm``, the first
    ``round(count * train / total)`` for training (2500 of 2975 for Cityscapes, as ``random_split``
    with ``manual_seed(42)``; 700 of 795 for NYUv2 with ``manual_seed(795)``), the rest for validation."""
    train, total = layout.train_fraction
    order = torch.randperm(count, generator=torch.Generator().manual_seed(layout.split_seed)).tolist()
    cut = round(count * train / total)
    return order[:cut], order[cut:]


def _npy_names(folder: Path) -> set[str]:
    return {name for name in os.listdir(folder) if name.endswith(".npy")}


def missing_message(layout: Layout, root: Path, missing: Sequence[str]) -> str:
    links = " or ".join(layout.urls)
    return (
        f"dataset {layout.name!r} needs the MTAN preprocessed .npy files; missing: {', '.join(missing)}. "
        f"Download {layout.archive} ({links}, linked from https://github.com/lorenmt/mtan), extract it, then run: "
        f"{layout.prepare_command(root)}"
    )


def scan(layout: Layout, root: Path) -> dict[str, int]:
    """Samples per split folder, after checking every task folder is there and holds ``0.npy`` ..
    ``(N-1).npy`` like ``image``, and that every file is whole and of the right dtype and shape
    (:func:`check_files`)."""
    base = layout.directory(root)
    missing: list[str] = []
    for split in SPLIT_DIRS:
        folder = base / split
        if not folder.is_dir():
            missing.append(f"{folder}/{{{','.join(layout.folders)}}}/")
            continue
        missing += [f"{folder / name}/" for name in layout.folders if not (folder / name).is_dir()]
    if missing:
        raise MissingDataError(missing_message(layout, root, missing))
    counts = {}
    for split in SPLIT_DIRS:
        folder = base / split
        names = _npy_names(folder / "image")
        count = len(names)
        expected = {f"{i}.npy" for i in range(count)}
        if count == 0 or names != expected:
            raise MissingDataError(
                f"{folder / 'image'} should hold 0.npy .. N-1.npy, found {count} .npy files"
                + ("" if count == 0 else f" (e.g. missing {sorted(expected - names)[:3]})")
                + f"; re-extract the archive and run: {layout.prepare_command(root)}"
            )
        for name in layout.folders[1:]:
            other = _npy_names(folder / name)
            if other != expected:
                lacking = sorted(expected - other, key=lambda s: int(s[:-4]))[:3]
                raise MissingDataError(
                    f"{folder / name} has {len(other)} .npy files but {folder / 'image'} has {count}"
                    + (f" (missing e.g. {', '.join(lacking)})" if lacking else "")
                    + f"; re-extract the archive and run: {layout.prepare_command(root)}"
                )
        check_files(layout, folder, count, root)
        counts[split] = count
    return counts


def damaged_fix(layout: Layout, root: Path) -> str:
    """What to do about a damaged file."""
    return f"re-extract the archive (or download it again) and run: {layout.prepare_command(root)}"


def npy_header(path: Path, fix: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype a .npy file declares, after checking it can be read, is a .npy file and
    holds all the bytes they call for; a :class:`CorruptDataError` naming it and ``fix`` when not."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise CorruptDataError(f"{path} is empty; {fix}")
            version = np.lib.format.read_magic(f)
            if version not in HEADER_READERS:
                raise ValueError(f"unsupported .npy format version {version}")
            shape, _, dtype = HEADER_READERS[version](f)
            offset = f.tell()
    except (OSError, ValueError, SyntaxError) as err:
        raise CorruptDataError(f"{path} is not a readable .npy file ({err}); {fix}") from None
    expected = offset + math.prod(shape) * dtype.itemsize
    if not dtype.hasobject and size < expected:
        raise CorruptDataError(f"{path} is truncated: {size} bytes, {expected} expected for {dtype} {shape}; {fix}")
    return shape, dtype


def npy_shape(path: Path, kind: str, fix: str) -> tuple[int, ...]:
    """The shape of a whole .npy file (:func:`npy_header`) of the dtype ``kind`` calls for."""
    shape, dtype = npy_header(path, fix)
    if dtype.hasobject or dtype.kind not in DTYPE_KINDS[kind]:
        expected = "float or integer" if kind == "label" else "float"
        raise CorruptDataError(f"{path} has dtype {dtype}, expected {expected}; {fix}")
    return shape


def check_files(layout: Layout, folder: Path, count: int, root: Path) -> tuple[int, int]:
    """Read the header of every sample's file in ``folder``: each must be a whole .npy file of a
    numeric dtype and of the shape its folder calls for, (H, W) being that of ``image/0.npy``.
    Returns (H, W)."""
    fix = damaged_fix(layout, root)
    first = folder / "image" / "0.npy"
    shape0 = npy_shape(first, "image", fix)
    if len(shape0) != 3 or shape0[2] != 3:
        raise MissingDataError(f"{first} has shape {shape0}, expected (H, W, 3); {fix}")
    height, width = shape0[:2]
    wanted = {
        "image": ((height, width, 3),),
        "label": ((height, width), (height, width, 1)),
        "depth": ((height, width, 1), (height, width)),
        "normal": ((height, width, 3),),
    }
    for name, kind in (("image", "image"), *((name, kind) for _, name, kind in layout.tasks)):
        for index in range(count):
            path = folder / name / f"{index}.npy"
            shape = npy_shape(path, kind, fix)
            if shape not in wanted[kind]:
                raise MissingDataError(
                    f"{path} has shape {shape}, expected {' or '.join(map(str, wanted[kind]))} "
                    f"to match {first} {shape0}; {fix}"
                )
    return height, width


def load_npy(path: Path, fix: str) -> np.ndarray:
    """``np.load`` of one sample's file; one damaged since :func:`scan` is named, with ``fix``, in a
    :class:`CorruptDataError`."""
    try:
        return np.load(path)
    except (OSError, ValueError, EOFError) as err:
        raise CorruptDataError(f"{path} cannot be read ({err}); {fix}") from None


def read_task(path: Path, kind: Kind, fix: str) -> Tensor:
    """One task array as a tensor: label int64 [H, W]; depth float [1, H, W]; normal float [3, H, W]
    (``fix``: what to do if the file is damaged)."""
    array = load_npy(path, fix)
    if kind == "label":
        if array.ndim == 3:
            array = array[..., 0]
        return torch.from_numpy(array.astype(np.int64))
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, -1, 0), dtype=np.float32))


def scale_crop(
    image: Tensor, targets: dict[str, Tensor], kinds: Mapping[str, Kind], scale: float, top: int, left: int
) -> tuple[Tensor, dict[str, Tensor]]:
    """Crop the (H / scale, W / scale) window at (top, left) and resize it back to (H, W): image
    bilinear (align_corners=True), labels, depth and normals nearest; depth is divided by ``scale``
    (MTAN ``RandomScaleCrop``, PaLoRA ``RandomScaleCropCityScapes``)."""
    height, width = image.shape[-2:]
    h, w = int(height / scale), int(width / scale)
    window = (slice(top, top + h), slice(left, left + w))
    image = F.interpolate(
        image[None, :, window[0], window[1]], size=(height, width), mode="bilinear", align_corners=True
    )[0]
    out = {}
    for name, target in targets.items():
        kind = kinds[name]
        if kind == "label":
            crop = target[None, None, window[0], window[1]].float()
            out[name] = F.interpolate(crop, size=(height, width), mode="nearest")[0, 0].long()
        else:
            resized = F.interpolate(target[None, :, window[0], window[1]], size=(height, width), mode="nearest")[0]
            out[name] = resized / scale if kind == "depth" else resized
    return image, out


def resize_crop(
    image: Tensor, targets: dict[str, Tensor], kinds: Mapping[str, Kind], scale: float, top: int, left: int
) -> tuple[Tensor, dict[str, Tensor]]:
    """Resize the whole sample to (int(H scale), int(W scale)) and crop (H, W) at (top, left): the
    image bilinear (align_corners=False, antialiased: torchvision's ``resize``), labels, depth and
    normals nearest; depth is divided by ``scale`` (official NYUv2 ``DataTransform``, nik-dim/palora
    ``src/datasets/nyuv2.py`` after lorenmt/auto-lambda ``create_dataset.py``). Scale 1 is the identity."""
    height, width = image.shape[-2:]
    size = (int(height * scale), int(width * scale))
    rows, cols = slice(top, top + height), slice(left, left + width)

    def resized(tensor: Tensor, mode: str) -> Tensor:
        if size == (height, width):  # torchvision's resize returns the input unchanged
            return tensor
        extra = {"align_corners": False, "antialias": True} if mode == "bilinear" else {}
        return F.interpolate(tensor[None], size=size, mode=mode, **extra)[0]

    image = resized(image, "bilinear")[:, rows, cols]
    out = {}
    for name, target in targets.items():
        kind = kinds[name]
        if kind == "label":
            out[name] = resized(target[None].float(), "nearest")[0, rows, cols].long()
        else:
            crop = resized(target, "nearest")[:, rows, cols]
            out[name] = crop / scale if kind == "depth" else crop
    return image, out


def hflip(image: Tensor, targets: dict[str, Tensor], kinds: Mapping[str, Kind]) -> tuple[Tensor, dict[str, Tensor]]:
    """Horizontal flip of everything; a normal's x component changes sign."""
    out = {}
    for name, target in targets.items():
        flipped = target.flip(-1)
        if kinds[name] == "normal":
            flipped = flipped.clone()
            flipped[0] = -flipped[0]
        out[name] = flipped
    return image.flip(-1), out


def augment(
    image: Tensor,
    targets: dict[str, Tensor],
    kinds: Mapping[str, Kind],
    scales: Sequence[float] = SCALES,
    mode: ScaleMode = "crop_resize",
) -> tuple[Tensor, dict[str, Tensor]]:
    """Random scale (a scale from ``scales``, a uniform window: :func:`scale_crop` or, for
    ``resize_crop``, :func:`resize_crop`) then a horizontal flip with probability 1/2. Draws from
    torch's global generator, which PyTorch seeds in each DataLoader worker from the loader's generator."""
    height, width = image.shape[-2:]
    scale = scales[int(torch.randint(len(scales), ()))]
    if mode == "resize_crop":
        h, w = int(height * scale), int(width * scale)
        top, left = int(torch.randint(h - height + 1, ())), int(torch.randint(w - width + 1, ()))
        image, targets = resize_crop(image, targets, kinds, scale, top, left)
    else:
        h, w = int(height / scale), int(width / scale)
        top, left = int(torch.randint(height - h + 1, ())), int(torch.randint(width - w + 1, ()))
        image, targets = scale_crop(image, targets, kinds, scale, top, left)
    if torch.rand(()) < 0.5:
        image, targets = hflip(image, targets, kinds)
    return image, targets


class NpyScenes(Dataset):
    """Samples ``indices`` of one split folder: ``(image [3, H, W] float32, {objective: target})``.
    Each item is read from its ``.npy`` files on access (in DataLoader workers); picklable."""

    def __init__(self, layout: Layout, folder: Path, indices: Sequence[int], augment: bool = False) -> None:
        self.layout = layout
        self.folder = Path(folder)
        self.indices = list(indices)
        self.augment = augment
        self.fix = damaged_fix(layout, self.folder.parent.parent)
        """What to do about a file damaged since :func:`scan` (the root is two levels up)."""

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Tensor, dict[str, Tensor]]:
        index = self.indices[i]
        fix = self.fix
        array = load_npy(self.folder / "image" / f"{index}.npy", fix)
        image = torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, -1, 0), dtype=np.float32))
        tasks = self.layout.tasks
        targets = {name: read_task(self.folder / folder / f"{index}.npy", kind, fix) for name, folder, kind in tasks}
        if self.augment:
            kinds = {name: kind for name, _, kind in self.layout.tasks}
            image, targets = augment(image, targets, kinds, mode=self.layout.scale_mode)
        if self.layout.image_scale != 1.0 or self.layout.image_shift != 0.0:
            image = image * self.layout.image_scale + self.layout.image_shift
        return image, targets


def load_split(layout: Layout, root: Path, split: str) -> NpyScenes:
    """train / val: the official cut of the ``train`` folder (train augmented); test: the ``val`` folder."""
    counts = scan(layout, root)
    base = layout.directory(root)
    if split == "test":
        return NpyScenes(layout, base / "val", range(counts["val"]))
    train, val = train_val_indices(layout, counts["train"])
    if split == "train":
        return NpyScenes(layout, base / "train", train, augment=True)
    if split == "val":
        return NpyScenes(layout, base / "train", val)
    raise ValueError(f"unknown split {split!r}; valid: train, val, test")


# --- preparation of a user's download -----------------------------------------------------------


def _find_split_dirs(layout: Layout, sources: Sequence[Path]) -> dict[str, Path]:
    """The ``train`` and ``val`` folders (each holding ``image/``) inside the sources, up to 4 levels deep."""
    found: dict[str, list[Path]] = {split: [] for split in SPLIT_DIRS}
    for source in sources:
        candidates = [source]
        for depth in range(4):
            level = (
                [c for parent in candidates for c in sorted(parent.iterdir()) if c.is_dir()] if depth else candidates
            )
            for folder in level:
                if folder.name in found and (folder / "image").is_dir():
                    found[folder.name].append(folder)
            candidates = level
    result = {}
    for split, folders in found.items():
        unique = sorted({f.resolve() for f in folders})
        if not unique:
            raise MissingDataError(
                f"no '{split}' folder holding image/ found in {', '.join(map(str, sources))}; expected the extracted "
                f"MTAN archive with {split}/{{{','.join(layout.folders)}}}/ (download: {' or '.join(layout.urls)})"
            )
        if len(unique) > 1:
            raise UserError(
                f"several '{split}' folders in the sources: {', '.join(map(str, unique))}; pass one --source"
            )
        result[split] = unique[0]
    return result


def _extract(archive: Path, into: Path) -> Path:
    if not zipfile.is_zipfile(archive):
        raise UserError(f"--source {archive} is neither a folder nor a zip archive")
    target = Path(tempfile.mkdtemp(prefix=".extract-", dir=into))
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(target)
    # An archive of one split's contents (e.g. PaLoRA's train.zip holding image/, label/...) becomes <stem>/.
    if (target / "image").is_dir() and archive.stem in SPLIT_DIRS:
        inner = target / archive.stem
        inner.mkdir()
        for child in list(target.iterdir()):
            if child != inner:
                child.rename(inner / child.name)
    return target


def prepare(
    layout: Layout, root: Path, sources: Sequence[Path], copy: bool = False, force: bool = False
) -> dict[str, int]:
    """Put the ``train`` and ``val`` folders found in ``sources`` (folders or zip archives) at
    ``<root>/<name>/{train,val}``: zips are extracted, folders are symlinked (copied with ``copy``).
    Returns the validated sample counts."""
    base = layout.directory(root)
    base.mkdir(parents=True, exist_ok=True)
    staging: list[Path] = []
    try:
        folders = []
        for source in sources:
            source = Path(source).expanduser()
            if source.is_dir():
                folders.append(source)
            elif source.is_file():
                staging.append(_extract(source, base).resolve())
                folders.append(staging[-1])
            else:
                raise MissingDataError(f"--source {source} does not exist; pass the extracted MTAN folder or its .zip")
        splits = _find_split_dirs(layout, folders)
        for split, folder in splits.items():
            target = base / split
            if target.is_symlink() or target.exists():
                if target.resolve() == folder.resolve():
                    continue
                if not force:
                    raise UserError(f"{target} already exists; pass --force to replace it with {folder}")
                if target.is_symlink() or target.is_file():
                    target.unlink()
                else:
                    shutil.rmtree(target)
            if any(folder.is_relative_to(s) for s in staging):
                folder.rename(target)
            elif copy:
                shutil.copytree(folder, target)
            else:
                target.symlink_to(folder.resolve(), target_is_directory=True)
    finally:
        for path in staging:
            shutil.rmtree(path, ignore_errors=True)
    return scan(layout, root)


SOURCE_OPTIONS = (
    Option(("--source",), "extracted folder or zip (repeatable)", kind="paths", required=True),
    Option(("--copy",), "copy the folders instead of symlinking them", kind="switch"),
    Option(("--force",), "replace existing train/val folders under the root", kind="switch"),
)


def declare_prepare(layout: Layout, note: str = "") -> None:
    """Declare the prepare entry of an MTAN-format dataset: link or extract the user's folders or
    zips under the root (:func:`prepare`), check them, print each split's size. ``note``: one more
    sentence for its help."""

    def work(args: argparse.Namespace, root: Path) -> list[str]:
        counts = prepare(layout, root, args.source, copy=args.copy, force=args.force)
        return [
            f"{layout.directory(root) / split}: {count} samples"
            + ("" if count == layout.expected[split] else f" (the MTAN archive has {layout.expected[split]})")
            for split, count in counts.items()
        ]

    work.__doc__ = (
        f"Put the train and val folders of {layout.archive} ({' or '.join(layout.urls)}, linked from "
        f"https://github.com/lorenmt/mtan) under ROOT/{layout.name}: each --source is the extracted folder or "
        "a zip; the train/ and val/ folders found inside are symlinked (--copy copies them), a zip is "
        "extracted. Then the files are checked (the same sample numbers in every folder, consistent shapes)."
        + (f" {note}" if note else "")
    )
    prepares(layout.name, options=SOURCE_OPTIONS)(work)
