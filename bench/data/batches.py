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
        drop_last: bool = False,
    ) -> None:
        self.inputs = inputs
        self.targets = targets
        self.batch_size = batch_size
        self.generator = generator
        self.drop_last = drop_last

    @property
    def num_samples(self) -> int:
        return self.inputs.shape[0]

    def __len__(self) -> int:
        full, rest = divmod(self.num_samples, self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def __iter__(self) -> Iterator[Batch]:
        n = self.num_samples
        if self.generator is not None:
            order = torch.randperm(n, generator=self.generator).to(self.inputs.device)
        for b in range(len(self)):
            sl = slice(b * self.batch_size, min((b + 1) * self.batch_size, n))
            if self.generator is None:
                yield self.inputs[sl], {k: v[sl] for k, v in self.targets.items()}
            else:
                idx = order[sl]
                yield self.inputs[idx], {k: v[idx] for k, v in self.targets.items()}
