"""Batches from tensors that live on the device: no DataLoader, no worker processes.

Small datasets (the MNIST family) are moved to the device once and sliced per batch, so data never
bottlenecks a step. Shuffling uses a dedicated ``torch.Generator`` for reproducible resumes.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from bench.spec import Batch


class TensorBatches:
    """Iterate (inputs, targets) mini-batches over tensors; reshuffles on every pass when ``generator`` is set."""

    def __init__(
        self,
        inputs: Tensor,
        targets: dict[str, Tensor],
        batch_size: int,
        generator: torch.Generator | None = None,
    ) -> None:
        self.inputs = inputs
        self.targets = targets
        self.batch_size = batch_size
        self.generator = generator

    @property
    def num_samples(self) -> int:
        return self.inputs.shape[0]

    def __len__(self) -> int:
        return -(-self.num_samples // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        order = None
        if self.generator is not None:
            order = torch.randperm(self.num_samples, generator=self.generator).to(self.inputs.device)
        for start in range(0, self.num_samples, self.batch_size):
            index = slice(start, start + self.batch_size)
            if order is not None:
                index = order[index]
            yield self.inputs[index], {k: v[index] for k, v in self.targets.items()}
