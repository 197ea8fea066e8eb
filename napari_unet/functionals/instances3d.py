"""3D objects of a (Z, Y, X) stack: one id per object across planes, from the per-plane predictions.

The network sees one plane at a time; its foreground, distance and boundary maps are
stacked and split by one 3D seeded watershed, so an object that spans planes keeps its
id. The z step of a stack is usually coarser than the pixel (`z_anisotropy` = z step /
pixel size): smoothing, seed spacing and the fallback distance transform use physical
distances, so a nucleus 3 planes thick and 9 pixels wide is one round object, not three.
Like the 2D recipe, each 3D connected component of the foreground is split on its own
bounding box, so temporaries stay the size of one object. Time series are not stacks:
their frames go through `functionals.instances` one by one. `border_evidence` is not applied here:
the per-plane boundary head cannot judge a border between planes, and on ideal outputs of
touching ellipsoids it merged 4 of 300 (3D AP@0.5 0.997 -> 0.983).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from napari_unet.functionals.instances import (
    InstanceParams,
    components_in_halos,
    drop_unsure,
    object_means,
    paste_objects,
    prominent_maxima,
    remove_small,
    seeded_watershed,
)
from napari_unet.functionals.prediction import Prediction


def stack_maps(predictions: Sequence[Prediction], threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(foreground mask, distance, boundary) volumes of per-plane predictions, in plane order."""
    mask = np.stack([p.foreground_mask(threshold) for p in predictions])
    distance = np.stack([np.asarray(p.distance, np.float32) for p in predictions])
    boundary = np.stack([np.asarray(p.boundary, np.float32) for p in predictions])
    return mask, distance, boundary


def instances_3d(
    predictions: Sequence[Prediction],
    params: InstanceParams = InstanceParams(),
    *,
    use_instance_heads: bool = True,
    z_anisotropy: float = 1.0,
) -> np.ndarray:
    """(Z, Y, X) uint32 labels of the objects in a stack's per-plane predictions (0 = background)."""
    if not predictions:
        raise ValueError("no planes to build objects from")
    mask, distance, boundary = stack_maps(predictions, params.threshold)
    foreground = np.stack([p.foreground() for p in predictions]) if params.min_confidence > 0 else None
    return instances_from_volumes(mask, distance, boundary, params, use_instance_heads=use_instance_heads,
                                  z_anisotropy=z_anisotropy, foreground=foreground)


def instances_from_volumes(
    mask: np.ndarray,
    distance: np.ndarray,
    boundary: np.ndarray,
    params: InstanceParams = InstanceParams(),
    *,
    use_instance_heads: bool = True,
    z_anisotropy: float = 1.0,
    foreground: np.ndarray | None = None,
) -> np.ndarray:
    """3D seeded watershed of a foreground `mask` on `boundary - distance`, component by component.

    `min_size` counts voxels. `min_confidence` needs the `foreground` probability volume (None: every
    object stays). Objects are numbered component by component in raster order.
    """
    sampling = (float(z_anisotropy), 1.0, 1.0)
    sigma = (1.0 / max(z_anisotropy, 1e-6), 1.0, 1.0)
    halo = _halo(sigma)
    spacing = params.seed_spacing
    merge_seeds = _ellipsoid(spacing // 2, sampling) if spacing > 1 else None  # closer than seed_spacing
    labels = np.zeros(mask.shape, np.uint32)
    next_id = 1
    means = [np.zeros(1)]  # each object's mean foreground probability, by id (0: background)
    for box, component, grown, inner in components_in_halos(mask, params.min_size, halo):
        if use_instance_heads:
            smoothed = ndimage.gaussian_filter(distance[grown], sigma)[inner]
            elevation = boundary[box] - distance[box]
            seeds = prominent_maxima(np.where(component, smoothed, 0), params.seed_prominence) & component
        else:
            edt = ndimage.distance_transform_edt(np.pad(component, 1), sampling=sampling)[1:-1, 1:-1, 1:-1]
            elevation = -edt
            seeds = _peaks(edt, component, params.seed_spacing, sampling)
        local, n = seeded_watershed(elevation, seeds, component, merge_seeds)
        local = remove_small(local, params.min_size)
        if foreground is not None and params.min_confidence > 0:
            means.append(object_means(local, n, component, foreground[box]))
        next_id = paste_objects(labels, box, component, local, n, next_id)
    return drop_unsure(labels, np.concatenate(means), params.min_confidence)  # no means without a foreground


def split_fraction(truth: np.ndarray, pred: np.ndarray, min_share: float = 0.1) -> float:
    """Fraction of true objects whose voxels go to two or more predicted ids (each >= `min_share` of it).

    The failure a per-plane recipe makes on a stack: one nucleus, a new id in every plane.
    """
    t = truth.ravel()
    p = pred.ravel()
    keep = (t > 0) & (p > 0)
    pairs, counts = np.unique(np.stack([t[keep], p[keep]]), axis=1, return_counts=True)
    sizes = np.bincount(t, minlength=int(t.max()) + 1)
    n_true = int(np.count_nonzero(sizes[1:]))
    if n_true == 0:
        return 0.0
    big = counts >= min_share * sizes[pairs[0]]
    parts = np.bincount(pairs[0][big], minlength=sizes.size)
    return float(np.count_nonzero(parts >= 2) / n_true)


def _halo(sigma: tuple[float, ...]) -> tuple[int, ...]:
    """Voxels gaussian_filter reads around each voxel (truncate=4.0)."""
    return tuple(int(4.0 * s + 0.5) for s in sigma)


def _ellipsoid(radius: int, sampling: tuple[float, ...]) -> np.ndarray:
    """Footprint of a ball of physical `radius`, in voxels of this `sampling`."""
    r = [max(int(radius / s), 0) for s in sampling]
    grids = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    return sum((g * s) ** 2 for g, s in zip(grids, sampling)) <= max(radius, 1) ** 2


def _peaks(distance: np.ndarray, mask: np.ndarray, spacing: int, sampling: tuple[float, ...]) -> np.ndarray:
    """Local maxima of the smoothed distance transform within a ball of physical radius `spacing`."""
    footprint = _ellipsoid(max(spacing, 1), sampling)
    smoothed = ndimage.gaussian_filter(distance, tuple(1.0 / s for s in sampling))
    return (smoothed == ndimage.maximum_filter(smoothed, footprint=footprint)) & mask & (distance > 1)
