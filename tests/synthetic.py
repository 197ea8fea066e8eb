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


def ellipsoids(shape=(12, 64, 64), n: int = 12, radius: tuple[float, float] = (6, 10), z_anisotropy: float = 3.0,
               seed: int = 0, max_overlap: float = 0.15):
    """(Z, Y, X) instance labels of touching ellipsoids, flattened in z by `z_anisotropy`.

    Each new ellipsoid may overlap the earlier ones by `max_overlap` of its volume and
    fills only free voxels, so neighbours touch along flat faces.
    """
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int32)
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    next_id = 1
    for _ in range(n * 50):
        if next_id > n:
            break
        r = float(rng.uniform(*radius))
        rz = r / z_anisotropy
        cz = rng.uniform(min(rz, shape[0] / 2), max(shape[0] - rz, shape[0] / 2))
        cy, cx = rng.uniform(r, np.array(shape[1:]) - r)
        inside = ((zz - cz) * z_anisotropy) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if np.count_nonzero(labels[inside]) > max_overlap * np.count_nonzero(inside):
            continue
        labels[inside & (labels == 0)] = next_id
        next_id += 1
    return labels
