"""The MultiMNIST generator of the official code (nik-dim/palora ``src/datasets/multimnist.py``,
after Sabour et al. 2017 and Sener and Koltun 2018), vectorised.

Two digits go on a 36x36 canvas, one at rows/cols [0:28], the other at [6:34]; where they overlap
the pixel-wise maximum wins; the canvas is resized to 28x28 (bicubic with antialiasing, which is
what PIL's default ``Image.resize`` does on the official float image). Pixel values are in [0, 1]
before the resize, as after torchvision's ``ToTensor``. Each pair draws both source indices
uniformly from the pool and redraws while they coincide.
"""

from __future__ import annotations

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


def make_multimnist(
    images: Tensor, labels: Tensor, num_pairs: int, generator: torch.Generator, chunk: int = 8192
) -> tuple[Tensor, Tensor]:
    """Build ``num_pairs`` MultiMNIST samples from uint8 digits [N, 28, 28] and labels [N].

    Returns float images [num_pairs, 1, 28, 28] and labels [num_pairs, 2] (top-left, bottom-right).
    """
    left, right = draw_pairs(images.shape[0], num_pairs, generator)
    digits = images.float().div_(255.0)
    out = torch.empty(num_pairs, 1, 28, 28)
    for start in range(0, num_pairs, chunk):
        sl = slice(start, start + chunk)
        out[sl] = compose(digits[left[sl]], digits[right[sl]])
    return out, torch.stack([labels[left], labels[right]], dim=1).long()
