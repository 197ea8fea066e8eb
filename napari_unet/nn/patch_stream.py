"""Training batches drawn in worker processes, so a fast GPU is not left waiting on patch sampling.

On a GPU the network's step takes a few milliseconds while drawing and augmenting a batch on
one CPU core takes tens: with `workers` processes the batches are drawn in parallel and
queued ahead. With no workers (the default, and always on the CPU, where the network is the
slow part) batches come from the calling thread, as before.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from napari_unet.functionals.data import Batch, PatchSampler, PreparedImage

PREFETCH_PER_WORKER = 4


class _PatchStream(IterableDataset):
    """An endless stream of batches; each worker draws from its own seeded generator."""

    def __init__(self, images: list[PreparedImage], patch_size: int, batch_size: int, seed: int | None) -> None:
        self.images, self.patch_size, self.batch_size, self.seed = images, patch_size, batch_size, seed

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        rng = np.random.default_rng(None if self.seed is None else [self.seed, worker])
        sampler = PatchSampler(self.images, self.patch_size, rng=rng)
        while True:
            yield sampler.sample(self.batch_size)


def batches(
    images: list[PreparedImage], patch_size: int, batch_size: int, rng: np.random.Generator,
    seed: int | None, workers: int = 0,
) -> Iterator[Batch]:
    """Endless training batches: from `workers` processes when > 0, else drawn here with `rng`."""
    if workers <= 0:
        sampler = PatchSampler(images, patch_size, rng=rng)
        while True:
            yield sampler.sample(batch_size)
    loader = DataLoader(
        _PatchStream(images, patch_size, batch_size, seed),
        batch_size=None,  # each item is already a batch
        num_workers=workers,
        prefetch_factor=PREFETCH_PER_WORKER,
        collate_fn=_as_is,
    )
    yield from loader


def _as_is(batch: Batch) -> Batch:
    """Keep the numpy batch as drawn (the training step makes the tensors)."""
    return batch

