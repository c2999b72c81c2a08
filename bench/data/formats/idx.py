"""Reader and writer for the IDX format of the MNIST files (http://yann.lecun.com/exdb/mnist/).

An IDX file is a big-endian header (two zero bytes, a type code, the number of dimensions, then
one uint32 per dimension) followed by the raw array. torchvision stores MNIST in this format under
``<root>/MNIST/raw`` and Fashion-MNIST under ``<root>/FashionMNIST/raw``, gzipped or not, with the
same four file names (:data:`IMAGE_SET_FILES`); the image-set helpers below serve both.
"""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np

from bench.core.errors import CorruptDataError, MissingDataError, UserError

IMAGE_SET_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
"""The four files of MNIST and of Fashion-MNIST (each plain or ``.gz``), by role."""

_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain) into a numpy array of its stored shape."""
    fix = "replace it with the original file (see the dataset's data card) and run its prepare command again"
    try:
        with _open(path) as f:
            data = f.read()
    except (OSError, EOFError) as err:  # a truncated or damaged .gz
        raise CorruptDataError(f"{path} cannot be read ({type(err).__name__}: {err}); {fix}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise CorruptDataError(f"{path} is not an IDX file (bad magic number {data[:4]!r}); {fix}")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise CorruptDataError(f"{path} is truncated inside its header; {fix}")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    body = data[4 + 4 * ndim :]
    if len(body) != expected:
        raise CorruptDataError(
            f"{path}: header says shape {shape} ({expected} bytes) but the file holds {len(body)} bytes; {fix}"
        )
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8/int8 array as an IDX file (gzipped when the name ends in ``.gz``)."""
    array = np.ascontiguousarray(array)
    header = bytes([0, 0, _CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def find_plain_or_gz(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or, failing that, ``folder/stem.gz`` (the plain file wins, as in torchvision)."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_image_set(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """The files of :data:`IMAGE_SET_FILES` found in ``folder`` (by role) and the stems that are missing."""
    found = {role: find_plain_or_gz(folder, stem) for role, stem in IMAGE_SET_FILES.items()}
    missing = [IMAGE_SET_FILES[role] for role, path in found.items() if path is None]
    return {role: path for role, path in found.items() if path is not None}, missing


def read_image_set(folder: Path, what: str) -> dict[str, np.ndarray]:
    """The four arrays (uint8 images [N, 28, 28] and labels [N] for train and test) of a complete
    MNIST-layout folder; call :func:`find_image_set` first to report missing files your own way."""
    found, missing = find_image_set(folder)
    if missing:
        raise MissingDataError(f"{what} files missing in {folder}: {', '.join(f'{m}[.gz]' for m in missing)}")
    arrays = {role: read_idx(path) for role, path in found.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (images.shape[0],):
            raise MissingDataError(
                f"{what} {part} files in {folder} have shapes {images.shape} and {labels.shape}; "
                "expected [N, 28, 28] images and [N] labels. Re-download them."
            )
    return arrays


def copy_image_set(source: Path, target: Path, what: str, url: str) -> Path:
    """Copy the four files of an MNIST-layout set (``what``: "MNIST", "Fashion-MNIST") from
    ``source`` into ``target``, which it returns; a missing file raises naming it and ``url``."""
    if not source.is_dir():
        raise MissingDataError(f"{source} is not a directory (expected the folder with the 4 {what} IDX files)")
    found, missing = find_image_set(source)
    if missing:
        raise MissingDataError(
            f"missing in {source}: {', '.join(f'{m}[.gz]' for m in missing)}; "
            f"get the {what} IDX files (plain or .gz) from {url}"
        )
    target.mkdir(parents=True, exist_ok=True)
    if target.resolve() == source.resolve():
        return target
    for role, path in found.items():
        stem = IMAGE_SET_FILES[role]
        # The reader prefers the plain file, so drop a stale copy of the other kind first.
        (target / (stem if path.name.endswith(".gz") else f"{stem}.gz")).unlink(missing_ok=True)
        shutil.copyfile(path, target / path.name)
    return target


def download_image_set(dataset_class: str, root: Path, folder_flag: str) -> None:
    """Fetch ``torchvision.datasets.<dataset_class>`` ("MNIST", "FashionMNIST") into
    ``root/<dataset_class>/raw`` (machines with internet only); a failure says to use ``folder_flag``."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, dataset_class)
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except (OSError, RuntimeError) as err:
        reason = " ".join(str(err).split())
        raise UserError(
            f"downloading {dataset_class} failed ({reason}); "
            f"get the files by hand and pass their folder with {folder_flag}"
        ) from err
