"""Mini-batches for the loop and the evaluation, on the run's device.

Small datasets (the MNIST family, tabular sets) are moved to the device once and sliced per batch,
so data never bottlenecks a step. Image datasets come as a torch Dataset and are decoded by
DataLoader worker processes into pinned memory. Shuffling uses a dedicated ``torch.Generator``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from bench.spec import Batch, SplitData


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


class LoaderBatches:
    """Mini-batches from a map-style Dataset through a DataLoader (worker processes decode images),
    moved to ``device``; reshuffles on every pass when ``generator`` is set."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        device: torch.device,
        generator: torch.Generator | None = None,
        workers: int = 0,
    ) -> None:
        self.device = device
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=generator is not None,
            generator=generator,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
        )

    @property
    def num_samples(self) -> int:
        return len(self.loader.dataset)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        blocking = self.device.type != "cuda"
        for x, targets in self.loader:
            yield (
                x.to(self.device, non_blocking=not blocking),
                {k: v.to(self.device, non_blocking=not blocking) for k, v in targets.items()},
            )


Batches = TensorBatches | LoaderBatches


def make_batches(
    data: SplitData,
    batch_size: int,
    device: torch.device,
    generator: torch.Generator | None = None,
    limit: int = 0,
    workers: int = 0,
) -> Batches:
    """Batches over one split: tensors go to ``device`` once; a Dataset is read by ``workers`` processes.
    ``limit`` keeps the first samples only (smoke runs and tests)."""
    if isinstance(data, Dataset):
        if limit:
            data = Subset(data, range(min(limit, len(data))))
        return LoaderBatches(data, batch_size, device, generator, workers)
    x, targets = data
    if limit:
        x, targets = x[:limit], {k: v[:limit] for k, v in targets.items()}
    return TensorBatches(x.to(device), {k: v.to(device) for k, v in targets.items()}, batch_size, generator)
