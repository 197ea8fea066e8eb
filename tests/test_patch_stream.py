"""Batches drawn in worker processes (the GPU path) match the in-process sampler's contract."""

import itertools

import numpy as np
import pytest
from synthetic import blobs

from napari_unet.errors import UserInputError
from napari_unet.functionals.data import TrainingImage, prepare
from napari_unet.functionals.normalisation import Normalisation
from napari_unet.nn.patch_stream import batches
from napari_unet.nn.training import TrainConfig


def _prepared():
    image, labels = blobs(96, n=10)
    return [prepare(TrainingImage.from_instances(image[None], labels), Normalisation(), margin=16)]


def _draw(workers: int, seed: int, count: int = 6) -> list[np.ndarray]:
    stream = batches(_prepared(), 32, 3, np.random.default_rng(seed), seed, workers)
    drawn = [b.image for b in itertools.islice(stream, count)]
    stream.close()
    return drawn


def test_worker_processes_draw_full_batches_reproducibly():
    first = _draw(workers=2, seed=5)
    assert all(b.shape == (3, 1, 32, 32) for b in first)
    assert not np.array_equal(first[0], first[1])  # the two workers draw different patches
    again = _draw(workers=2, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    other = _draw(workers=2, seed=6)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_no_workers_keeps_drawing_in_process_with_the_given_generator():
    stream = batches(_prepared(), 32, 2, np.random.default_rng(0), None, 0)
    batch = next(stream)
    assert batch.image.shape == (2, 1, 32, 32) and batch.distance.shape == (2, 32, 32)


def test_loader_workers_must_be_a_sensible_count():
    with pytest.raises(UserInputError, match="loader workers"):
        TrainConfig(loader_workers=-1)
