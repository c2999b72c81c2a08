"""The MultiMNIST generator of the official code (nik-dim/palora ``src/datasets/multimnist.py``,
after Sabour et al. 2017 and Sener and Koltun 2018), vectorised.

Two digits go on a 36x36 canvas, one at rows/cols [0:28], the other at [6:34]; where they overlap
the pixel-wise maximum wins; the canvas is resized to 28x28 (bicubic with antialiasing, which is
what PIL's default ``Image.resize`` does on the official float image). Pixel values are in [0, 1]
before the resize, as after torchvision's ``ToTensor``. Each pair draws both source indices
uniformly from the pool and redraws while they coincide.

Also here: :func:`make_multimnist_from_pools`, the same overlay with the two items drawn from two
different pools (``multifashion-mnist``: an MNIST digit top-left, a Fashion-MNIST item
bottom-right), and :func:`make_multimnist3`, the three-digit variant of the official code
(nik-dim/palora ``src/datasets/multimnist3digits.py``, ``create_new_sample``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def draw_pairs(pool_size: int, num_pairs: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Indices (left, right) into a pool of ``pool_size`` digits, never equal within a pair."""
    if pool_size < 2:
        raise ValueError(f"need at least 2 source digits, got {pool_size}")
    left = torch.randint(pool_size, (num_pairs,), generator=generator)
    right = torch.randint(pool_size, (num_pairs,), generator=generator)
    clash = left == right
    while clash.any():
        right[clash] = torch.randint(pool_size, (int(clash.sum()),), generator=generator)
        clash = left == right
    return left, right


def compose(left: Tensor, right: Tensor) -> Tensor:
    """Overlay digits [N, 28, 28] (values in [0, 1]) into MultiMNIST images [N, 1, 28, 28]."""
    n = left.shape[0]
    canvas = left.new_zeros(n, 36, 36)
    canvas[:, 0:28, 0:28] = left
    canvas[:, 6:34, 6:34] = torch.maximum(canvas[:, 6:34, 6:34], right)
    resized = F.interpolate(canvas.unsqueeze(1), size=(28, 28), mode="bicubic", antialias=True, align_corners=False)
    return resized


def _compose_chunks(composer: Callable[..., Tensor], pools: list[Tensor], indices: list[Tensor], chunk: int) -> Tensor:
    """``composer(pool_0[idx_0], pool_1[idx_1], ...)`` over chunks of the indices (bounded memory);
    the uint8 pools are scaled to [0, 1] first, as torchvision's ``ToTensor``."""
    scaled: dict[int, Tensor] = {}
    for images in pools:  # a pool passed twice is scaled once
        if id(images) not in scaled:
            scaled[id(images)] = images.float().div_(255.0)
    digits = [scaled[id(images)] for images in pools]
    num = indices[0].shape[0]
    out = torch.empty(num, 1, 28, 28)
    for start in range(0, num, chunk):
        sl = slice(start, start + chunk)
        out[sl] = composer(*(d[i[sl]] for d, i in zip(digits, indices, strict=True)))
    return out


def make_multimnist(
    images: Tensor, labels: Tensor, num_pairs: int, generator: torch.Generator, chunk: int = 8192
) -> tuple[Tensor, Tensor]:
    """Build ``num_pairs`` MultiMNIST samples from uint8 digits [N, 28, 28] and labels [N].

    Returns float images [num_pairs, 1, 28, 28] and labels [num_pairs, 2] (top-left, bottom-right).
    """
    left, right = draw_pairs(images.shape[0], num_pairs, generator)
    out = _compose_chunks(compose, [images, images], [left, right], chunk)
    return out, torch.stack([labels[left], labels[right]], dim=1).long()


def make_multimnist_from_pools(
    left_images: Tensor,
    left_labels: Tensor,
    right_images: Tensor,
    right_labels: Tensor,
    num_pairs: int,
    generator: torch.Generator,
    chunk: int = 8192,
) -> tuple[Tensor, Tensor]:
    """Build ``num_pairs`` MultiMNIST-style samples whose top-left item comes from one pool and whose
    bottom-right item comes from another (uint8 [N, 28, 28] each, with labels [N]).

    Each index is drawn uniformly from its own pool, independently (no redraw: the pools differ).
    Returns float images [num_pairs, 1, 28, 28] and labels [num_pairs, 2] (top-left, bottom-right).
    """
    if left_images.shape[0] < 1 or right_images.shape[0] < 1:
        raise ValueError("both pools need at least one image")
    left = torch.randint(left_images.shape[0], (num_pairs,), generator=generator)
    right = torch.randint(right_images.shape[0], (num_pairs,), generator=generator)
    out = _compose_chunks(compose, [left_images, right_images], [left, right], chunk)
    return out, torch.stack([left_labels[left], right_labels[right]], dim=1).long()


CANVAS3 = 42
"""Canvas side of the three-digit variant (the official default ``s=42``; no config overrides it)."""


def draw_triples(pool_size: int, num: int, generator: torch.Generator) -> Tensor:
    """Indices [num, 3] into a pool, three distinct per row: a row with a repeat is redrawn whole, as
    the official ``create_data_samples`` does (uniform over ordered triples of distinct digits)."""
    if pool_size < 3:
        raise ValueError(f"need at least 3 source digits, got {pool_size}")
    ids = torch.randint(pool_size, (num, 3), generator=generator)
    while True:
        clash = (ids[:, 0] == ids[:, 1]) | (ids[:, 0] == ids[:, 2]) | (ids[:, 1] == ids[:, 2])
        if not clash.any():
            return ids
        ids[clash] = torch.randint(pool_size, (int(clash.sum()), 3), generator=generator)


def canvas3(top_left: Tensor, top_right: Tensor, bottom: Tensor, size: int = CANVAS3) -> Tensor:
    """The ``size`` x ``size`` canvas [N, size, size] before the resize: digits [N, 28, 28] at rows
    0:28 cols 0:28 (top-left), rows 0:28 cols size-28:size (top-right) and rows size-28:size cols
    size//2-14:size//2+14 (bottom, centred); where they overlap the pixel-wise maximum wins."""
    n = top_left.shape[0]
    canvas = top_left.new_zeros(n, size, size)
    canvas[:, 0:28, 0:28] = top_left
    rows, cols = slice(size - 28, size), slice(size // 2 - 14, size // 2 + 14)
    canvas[:, rows, cols] = torch.maximum(canvas[:, rows, cols], bottom)
    cols = slice(size - 28, size)
    canvas[:, 0:28, cols] = torch.maximum(canvas[:, 0:28, cols], top_right)
    return canvas


def compose_three(top_left: Tensor, top_right: Tensor, bottom: Tensor, size: int = CANVAS3) -> Tensor:
    """Three digits [N, 28, 28] (values in [0, 1]) into MultiMNIST-3 images [N, 1, 28, 28].

    The canvas (:func:`canvas3`) is resized to 28x28 bilinearly without antialiasing: what the official
    ``torchvision.transforms.functional.resize(img, size=28)`` does on a tensor with the pinned
    torchvision 0.15.2 (its default ``antialias`` meant False for tensors; from torchvision 0.17 on
    the same call antialiases).
    """
    canvas = canvas3(top_left, top_right, bottom, size).unsqueeze(1)
    return F.interpolate(canvas, size=(28, 28), mode="bilinear", align_corners=False, antialias=False)


def make_multimnist3(
    images: Tensor, labels: Tensor, num: int, generator: torch.Generator, chunk: int = 8192
) -> tuple[Tensor, Tensor]:
    """Build ``num`` three-digit samples from uint8 digits [N, 28, 28] and labels [N].

    Returns float images [num, 1, 28, 28] and labels [num, 3] in the order (top-left, top-right, bottom).
    """
    ids = draw_triples(images.shape[0], num, generator)
    columns = list(ids.unbind(dim=1))
    out = _compose_chunks(compose_three, [images] * 3, columns, chunk)
    return out, labels[ids].long()
