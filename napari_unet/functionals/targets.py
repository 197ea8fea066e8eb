"""Training targets for the instance heads, derived from instance label images."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries

from napari_unet.functionals.prediction import Prediction


def boundary_target(instances: np.ndarray) -> np.ndarray:
    """1 on each object's inner border (so touching objects are separated), else 0."""
    return (find_boundaries(instances, mode="inner") & (instances > 0)).astype(np.float32)


def distance_target(instances: np.ndarray) -> np.ndarray:
    """Each object's distance to its own border, scaled to 1 at its centre; 0 on background.

    Touching objects are kept apart by their shared boundary, so every object gets
    its own peak: the seeds of the watershed.
    """
    inside = (instances > 0) & ~find_boundaries(instances, mode="inner")
    distance = ndimage.distance_transform_edt(inside).astype(np.float32)
    ids = dense_ids(instances)
    peak = np.zeros(int(ids.max()) + 1, dtype=np.float32)
    np.maximum.at(peak, ids.ravel(), distance.ravel())
    scale = np.where(peak > 0, peak, 1.0)[ids]
    target = distance / scale
    # Objects too thin to have an inside still get a peak of 1 where they are.
    target[(instances > 0) & (peak[ids] == 0)] = 1.0
    return target


def ideal_prediction(instances: np.ndarray) -> Prediction:
    """What a perfect network outputs for these instance labels (its training targets): tests and
    benchmarks of the instance extraction use it to leave the network out."""
    foreground = (instances > 0).astype(np.float32)
    return Prediction(np.stack([1 - foreground, foreground]), boundary_target(instances), distance_target(instances))


def dense_ids(instances: np.ndarray) -> np.ndarray:
    """Object ids renumbered 0..n (0 stays background) as int64, so they can index arrays.

    User ids can be anything up to 2**64: used as array sizes, an id near 2**40 would
    request terabytes. Small ids are kept as they are.
    """
    ids = np.asarray(instances)
    if ids.size == 0 or int(ids.max()) <= 4 * ids.size + 65536:
        return ids.astype(np.int64, copy=False)
    values, index = np.unique(ids, return_inverse=True)
    index = index.reshape(ids.shape).astype(np.int64)
    return index if values[0] == 0 else index + 1
