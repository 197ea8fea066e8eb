"""Object scale: how big a typical object is, and resampling images to the size the network expects.

Objects vary 15x in area across microscopes and magnifications. The network is trained and
run with objects at one *canonical diameter*: each training image is resampled by
``canonical / its own object diameter``, and an image to predict by ``canonical / the
diameter expected for it`` (the user's, the one stored with the model, or one measured
from a first pass). Predictions are resampled back to the image's own size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from scipy import ndimage

from napari_unet.errors import UserInputError
from napari_unet.functionals.prediction import Prediction
from napari_unet.functionals.targets import dense_ids

T = TypeVar("T")

AUTO = "auto"  # as a diameter: measure the objects' size from a first prediction
CANONICAL_DIAMETER = 20.0  # pixels: the object size the network sees (a fifth of its receptive field)
MIN_FACTOR, MAX_FACTOR = 1 / 8, 3.0  # resampling is clamped: 3x upsampling is 9x the pixels
SAME_SCALE = 0.1  # factors within 10% of 1 are not worth resampling for
MIN_OBJECT_PIXELS = 9  # smaller label fragments are painting slips, not objects
AUTO_TOLERANCE = 0.1  # a pass whose objects measure within 10% of the size it assumed is kept
# A fine-tuned model saw 40 px nuclei at 1.2x as 83 pieces; following their size took 3 passes to reach 0.5x,
# the 4th agreed (AP@0.5 0.18 -> 0.94): a 3-pass limit kept the first, least bad-looking pass. On the 113 `val`
# images `nuclei` scores 0.825 with 4 against 0.823 with 3 (BENCHMARKS.md section 5).
AUTO_MAX_PASSES = 4


def object_diameter(instances: np.ndarray, mask: np.ndarray | None = None) -> float | None:
    """Median equivalent-circle diameter of the objects in an instance label image, or None.

    Objects cut by `mask` (where instance identities are known) count only when at least
    half of them is inside it, so a sliver at the edge of an accepted region does not
    shrink the estimate.
    """
    labels = dense_ids(np.asarray(instances))  # ids are counted, never used as sizes
    if mask is not None:
        inside = np.bincount(labels[np.asarray(mask)].ravel().astype(np.int64), minlength=int(labels.max()) + 1)
    areas = np.bincount(labels.ravel().astype(np.int64))
    if areas.size <= 1:
        return None
    areas[0] = 0
    keep = areas >= MIN_OBJECT_PIXELS
    if mask is not None:
        keep &= inside[: areas.size] * 2 >= areas
    if not keep.any():
        return None
    return float(np.sqrt(4 * np.median(areas[keep]) / np.pi))


def scale_factor(diameter: float | None, canonical: float | None) -> float:
    """Resampling factor that brings objects of `diameter` to `canonical` (1 when either is unknown)."""
    if diameter is None or canonical is None:
        return 1.0
    if not np.isfinite(diameter) or diameter <= 0:
        raise UserInputError(f"the object diameter must be a positive number of pixels, got {diameter}")
    factor = float(np.clip(canonical / diameter, MIN_FACTOR, MAX_FACTOR))
    return 1.0 if abs(factor - 1.0) < SAME_SCALE else factor


def diameter_at(factor: float, canonical: float | None, trained: float | None) -> float | None:
    """The object diameter (image pixels) a prediction resampled by `factor` was made for, by a
    model working at `canonical` whose training objects were `trained`; None when unknown: a
    model that does not resample, or an image left at its size for a model of unknown diameter."""
    if canonical is None or (factor == 1.0 and trained is None):
        return None
    return float(canonical) / float(factor)


def scaled_shape(shape: tuple[int, int], factor: float) -> tuple[int, int]:
    return tuple(max(1, int(round(s * factor))) for s in shape)


def resample(array: np.ndarray, shape: tuple[int, int], *, labels: bool = False) -> np.ndarray:
    """Resample the last two axes of `array` to `shape`: linear for intensities, nearest for labels.

    Downsampling blurs first so small bright objects are not aliased away.
    """
    array = np.asarray(array)
    height, width = array.shape[-2:]
    if (height, width) == tuple(shape):
        return array
    zoom = (shape[0] / height, shape[1] / width)
    lead = (1.0,) * (array.ndim - 2)
    if labels:
        return ndimage.zoom(array, lead + zoom, order=0, mode="nearest", grid_mode=True)
    return ndimage.zoom(blurred_for(array, shape), lead + zoom, order=1, mode="nearest", grid_mode=True)


def blurred_for(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """`array` as float32, blurred first where `shape` is smaller (so small bright objects are not
    aliased away): what a linear resampling to `shape` starts from."""
    height, width = array.shape[-2:]
    source = np.asarray(array).astype(np.float32, copy=False)
    sigma = [0.0] * (source.ndim - 2) + [max(0.0, (size / new - 1) / 2) for size, new in zip((height, width), shape)]
    if any(s > 0 for s in sigma):
        source = ndimage.gaussian_filter(source, sigma)
    return source


def resample_prediction(
    prediction: Prediction,
    shape: tuple[int, int],
    factor: float,
    dtype: np.dtype = np.float32,
    resize: Callable[[np.ndarray, tuple[int, int]], np.ndarray] = resample,
) -> Prediction:
    """A prediction made on an image resampled by `factor`, brought back to the image's own `shape`
    (`resize`: a linear resampling, e.g. nn.resize's faster one)."""
    return Prediction(
        scale=factor,
        probabilities=resize(prediction.probabilities, shape).astype(dtype, copy=False),
        boundary=resize(prediction.boundary, shape).astype(dtype, copy=False),
        distance=resize(prediction.distance, shape).astype(dtype, copy=False),
    )


def next_auto_factor(passes: list[tuple[float, float]]) -> float | None:
    """The factor of the next `auto` pass, or None when the last one agrees with itself.

    `passes` holds, per pass so far, (the factor it was predicted at, the factor its measured
    objects call for). Objects seen at the wrong size are measured too close to the canonical
    size (large ones split, small ones merge), so following the measurement refines it. But
    it can run away: large nuclei seen too small split into fragments that measure smaller
    still (a DSB2018 val image's 24 nuclei of 41 px became 1,329 pieces). So when the first
    pass finds objects smaller than it assumed, the second looks at twice their assumed size,
    and the third follows that look if it found objects at least as large as it assumed or
    agrees with itself better than the first pass did; else it goes where the first pointed.
    (Going back to the first pass's small size whenever the larger look measured objects a
    little small sent a DSB2018 `train` image's 18 nuclei of 40 px to 3x upsampling and 2,007
    fragments, which agree with themselves there.)
    """
    factor, target = passes[-1]
    if disagreement(factor, target) <= math.log1p(AUTO_TOLERANCE):
        return None
    first_factor, first_target = passes[0]
    if len(passes) == 1:
        return max(factor / 2, MIN_FACTOR) if target > factor else target
    if len(passes) == 2 and first_target > first_factor:  # the second pass was the larger look
        closer = disagreement(factor, target) < disagreement(first_factor, first_target)
        return target if target <= factor or closer else first_target
    return target


def auto_passes(factor: float, run: Callable[[float], T], target: Callable[[T], float]) -> T:
    """`auto`: `run` at `factor`, then at the factors `next_auto_factor` picks, up to AUTO_MAX_PASSES times;
    the result of the pass whose objects best match the size it assumed. `target(result)` is the factor its
    measured objects call for (inf when it found none: the passes before it are better, so the search ends)."""
    passes, results = [], []  # (factor used, factor its objects call for), and what the pass gave
    while factor is not None and len(passes) < AUTO_MAX_PASSES:
        results.append(run(factor))
        passes.append((factor, target(results[-1])))
        factor = None if math.isinf(passes[-1][1]) else next_auto_factor(passes)
    return results[best_auto_pass(passes)]


def best_auto_pass(passes: list[tuple[float, float]]) -> int:
    """Index of the pass whose measured objects best match the size it assumed."""
    return min(range(len(passes)), key=lambda i: disagreement(*passes[i]))


def disagreement(factor: float, target: float) -> float:
    """How far a pass's measured object size is from the size it assumed (log ratio, 0 = agree)."""
    return abs(math.log(target / factor))
