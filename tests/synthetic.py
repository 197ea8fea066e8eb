"""Synthetic images with known objects, shared by core tests."""

from __future__ import annotations

import numpy as np
from skimage.draw import disk


def blobs(size: int = 128, n: int = 30, radius: tuple[int, int] = (5, 9), seed: int = 0, noise: float = 0.3):
    """A noisy image of non-overlapping bright disks and its instance labels."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), np.int32)
    next_id = 1
    for _ in range(n * 4):
        if next_id > n:
            break
        r = int(rng.integers(*radius))
        cy, cx = rng.integers(r, size - r, 2)
        rr, cc = disk((cy, cx), r + 1, shape=labels.shape)
        if labels[rr, cc].any():
            continue
        rr, cc = disk((cy, cx), r, shape=labels.shape)
        labels[rr, cc] = next_id
        next_id += 1
    image = (labels > 0).astype(np.float32) * 100 + 20
    image += rng.normal(0, noise * 100, image.shape).astype(np.float32)
    return image, labels
