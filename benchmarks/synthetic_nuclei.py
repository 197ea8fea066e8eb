"""Synthetic nuclei images (uint16, with their instance labels) for the speed benchmarks, the prediction
a well-trained model would give for them, and a model briefly trained on them through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from common import run_cli
from scipy import ndimage

from napari_unet.functionals.prediction import Prediction
from napari_unet.functionals.targets import ideal_prediction
from napari_unet.nn.model import PRESETS, ModelConfig
from napari_unet.nn.segmenter import Segmenter


def nuclei(size: int, seed: int = 0, block: int = 1024, objects_per_mpx: float = 500.0):
    """(image uint16 (size, size), instance labels int32): nuclei-like blobs, built block by block.

    Each block holds Poisson-placed centres with radii 5-12 px; every pixel belongs to its nearest
    centre if within that centre's radius, so neighbours touch without merging (as in real nuclei).
    Building in blocks keeps this process's memory small for 8192^2 images.
    """
    image = np.empty((size, size), np.uint16)
    labels = np.zeros((size, size), np.int32)
    rng = np.random.default_rng(seed)
    next_id = 1
    for y in range(0, size, block):
        for x in range(0, size, block):
            h, w = min(block, size - y), min(block, size - x)
            n = max(1, rng.poisson(objects_per_mpx * h * w / 1e6))
            cy, cx = rng.integers(0, h, n), rng.integers(0, w, n)
            radius = rng.uniform(5, 12, n)
            centres = np.ones((h, w), bool)
            centres[cy, cx] = False
            dist, (iy, ix) = ndimage.distance_transform_edt(centres, return_indices=True)
            index = np.full((h, w), -1, np.int64)
            index[cy, cx] = np.arange(n)
            nearest = index[iy, ix]
            inside = dist <= radius[nearest]
            block_labels = np.where(inside, nearest + next_id, 0).astype(np.int32)
            brightness = rng.uniform(0.5, 1.0, n + 1)
            signal = ndimage.gaussian_filter(np.where(inside, brightness[nearest], 0.0).astype(np.float32), 1.5)
            noisy = 300 + 3000 * signal + rng.normal(0, 60, (h, w))
            image[y : y + h, x : x + w] = np.clip(noisy, 0, 65535).astype(np.uint16)
            labels[y : y + h, x : x + w] = block_labels
            next_id += n
    return image, labels


def smooth_ideal_prediction(labels: np.ndarray) -> Prediction:
    """A Prediction that a well-trained model would give for `labels` (smooth, confident): the training
    targets (`targets.ideal_prediction`) with the foreground and boundaries blurred by one pixel."""
    ideal = ideal_prediction(labels)
    foreground = ndimage.gaussian_filter(ideal.probabilities[1], 1.0)
    return Prediction(
        probabilities=np.stack([1 - foreground, foreground]),
        boundary=ndimage.gaussian_filter(ideal.boundary, 1.0),
        distance=ideal.distance,
    )


def make_model(preset: str, train_steps: int, folder: Path) -> Path:
    """A checkpoint of the preset, briefly trained through the CLI (untrained if train_steps is 0)."""
    path = folder / f"model_{preset}.pt"
    if train_steps <= 0:
        Segmenter.create(ModelConfig(**PRESETS[preset]), ["background", "object"]).save(path)
        return path
    image, labels = nuclei(256, seed=123)
    tifffile.imwrite(folder / "train.tif", image)
    tifffile.imwrite(folder / "train_labels.tif", labels)
    run_cli("train", "--image", str(folder / "train.tif"), "--instances", str(folder / "train_labels.tif"),
            "--out", str(path), "--steps", str(train_steps), "--preset", preset, "--device", "cpu")
    return path
