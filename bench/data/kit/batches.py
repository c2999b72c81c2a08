"""Mini-batches for the loop and the evaluation, on the run's device.

Small datasets (the MNIST family, tabular sets) are moved to the device once and sliced per batch,
so data never bottlenecks a step. Image datasets come as a torch Dataset and are decoded by
DataLoader worker processes into pinned memory. Shuffling uses a dedicated ``torch.Generator``, and
``epoch(skip)`` starts a pass ``skip`` batches in, so a run resumed mid-epoch from the generator's
state at the start of that epoch sees exactly the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from bench.core.spec import Batch, SplitData


def dataset_length(dataset: Dataset) -> int:
    """The number of items of a map-style Dataset (a split's; torch's ``Dataset`` does not declare ``__len__``)."""
    if not isinstance(dataset, Sized):
        raise TypeError(f"{type(dataset).__name__} has no __len__: a split's Dataset must be map-style with a length")
    return len(dataset)


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
        return self.epoch()

    def epoch(self, skip: int = 0) -> Iterator[Batch]:
        """One pass (a fresh shuffle when ``generator`` is set), starting after ``skip`` batches."""
        order = None
        if self.generator is not None:
            order = torch.randperm(self.num_samples, generator=self.generator).to(self.inputs.device)
        for start in range(skip * self.batch_size, self.num_samples, self.batch_size):
            index: slice | Tensor = slice(start, start + self.batch_size)
            if order is not None:
                index = order[index]
            yield self.inputs[index], {k: v[index] for k, v in self.targets.items()}


class SkippableShuffle(Sampler[int]):
    """A fresh permutation of ``range(n)`` per pass, drawn from ``generator``; the next pass starts
    ``skip`` items in (then ``skip`` resets)."""

    def __init__(self, n: int, generator: torch.Generator) -> None:
        self.n = n
        self.generator = generator
        self.skip = 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.n, generator=self.generator)[self.skip :]
        self.skip = 0
        return iter(order.tolist())


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
        self.batch_size = batch_size
        # ``generator`` only shuffles (one draw per pass), so restoring its state replays a pass's
        # order exactly. Worker seeds come from a generator of their own: persistent workers draw
        # theirs once per process, which would otherwise shift the shuffles of a resumed run.
        # (A resumed run's workers restart their augmentation streams: same batches, fresh draws.)
        self.sampler = SkippableShuffle(dataset_length(dataset), generator) if generator is not None else None
        worker_seeds = torch.Generator().manual_seed(generator.initial_seed() + 1) if generator is not None else None
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            generator=worker_seeds,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
        )

    @property
    def num_samples(self) -> int:
        return dataset_length(self.loader.dataset)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        return self.epoch()

    def epoch(self, skip: int = 0) -> Iterator[Batch]:
        """One pass starting after ``skip`` batches (a shuffled pass skips by its sampler; an
        unshuffled one by reading past them)."""
        if self.sampler is not None:
            self.sampler.skip = skip * self.batch_size
            return self._batches(self.loader, 0)
        return self._batches(self.loader, skip)

    def _batches(self, loader: DataLoader, skip: int) -> Iterator[Batch]:
        blocking = self.device.type != "cuda"
        for i, (x, targets) in enumerate(loader):
            if i < skip:
                continue
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
            data = Subset(data, range(min(limit, dataset_length(data))))
        return LoaderBatches(data, batch_size, device, generator, workers)
    x, targets = data
    if limit:
        x, targets = x[:limit], {k: v[:limit] for k, v in targets.items()}
    return TensorBatches(x.to(device), {k: v.to(device) for k, v in targets.items()}, batch_size, generator)
