"""Instances from the network's own outputs: seeded watershed on the predicted distance map.

Seeds are the peaks of the distance head that stand out from their surroundings by at
least `seed_prominence` (h-maxima: robust to how high the peaks are, which grows as
training goes on), or, for a model whose instance heads were never trained, the peaks
of the distance transform of the foreground. Touching objects are split along the
watershed of the distance map, pushed apart by the boundary head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage
from skimage.morphology import h_maxima
from skimage.segmentation import relabel_sequential, watershed

from .prediction import Prediction


@dataclass(frozen=True)
class InstanceParams:
    """The knobs users turn: foreground threshold, smallest object kept, closest two seeds may be."""

    threshold: float = 0.5
    min_size: int = 10
    seed_spacing: int = 2
    seed_prominence: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


def instances_from_prediction(
    prediction: Prediction, params: InstanceParams = InstanceParams(), *, use_instance_heads: bool = True
) -> np.ndarray:
    """Label image (uint32, 0 = background) of the objects in one 2D prediction."""
    foreground = prediction.foreground() > params.threshold
    if use_instance_heads:
        distance = prediction.distance.astype(np.float32)
        elevation = -distance + prediction.boundary
        seeds = _prominent_peaks(distance, params.seed_prominence)
    else:
        distance = ndimage.distance_transform_edt(foreground).astype(np.float32)
        elevation = -distance
        seeds = _peaks(distance, foreground, params.seed_spacing)
    seeds &= foreground
    return seeded_watershed(elevation, seeds, foreground, params)


def seeded_watershed(
    elevation: np.ndarray, seeds: np.ndarray, foreground: np.ndarray, params: InstanceParams
) -> np.ndarray:
    """Watershed from seed regions closer than `seed_spacing` merged; unseeded blobs kept as objects."""
    if params.seed_spacing > 1:
        seeds = ndimage.binary_dilation(seeds, _disk(params.seed_spacing // 2)) & foreground
    markers, n = ndimage.label(seeds)
    labels = watershed(elevation, markers, mask=foreground)
    orphans, n_orphans = ndimage.label(foreground & (labels == 0))
    if n_orphans:
        labels = np.where(orphans > 0, orphans + n, labels)
    return relabel_sequential(remove_small(labels, params.min_size).astype(np.uint32))[0]


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Zero out objects with fewer than `min_size` pixels."""
    if min_size <= 1:
        return labels
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    return np.where(small[labels], 0, labels)


def _prominent_peaks(distance: np.ndarray, prominence: float) -> np.ndarray:
    """h-maxima of the smoothed distance map, found at half resolution.

    Seeds only need to sit inside their object, and h-maxima (a sort of every pixel)
    is the slowest step of post-processing: half resolution makes it 4x cheaper with
    the same seeds for objects a few pixels across or more.
    """
    smooth = ndimage.gaussian_filter(distance, 1.0)[::2, ::2]
    peaks = h_maxima(smooth, prominence) > 0
    full = np.repeat(np.repeat(peaks, 2, axis=0), 2, axis=1)
    return full[: distance.shape[0], : distance.shape[1]]


def _peaks(distance: np.ndarray, mask: np.ndarray, spacing: int) -> np.ndarray:
    """Local maxima of the distance transform within a (2*spacing+1) window."""
    size = 2 * max(spacing, 1) + 1
    smoothed = ndimage.gaussian_filter(distance, 1.0)
    return (smoothed == ndimage.maximum_filter(smoothed, size=size)) & mask & (distance > 1)


def _disk(radius: int) -> np.ndarray:
    r = max(radius, 1)
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return x * x + y * y <= r * r
