"""Instances from the network's own outputs: seeded watershed on the predicted distance map.

Seeds are the peaks of the distance head that stand out from their surroundings by at
least `seed_prominence` (h-maxima: robust to how high the peaks are, which grows as
training goes on), or, for a model whose instance heads were never trained, the peaks
of the distance transform of the foreground. Touching objects are split along the
watershed of the distance map, pushed apart by the boundary head. A split the boundary
head does not back is undone: large irregular objects (EM cells, lobed nuclei) have several
distance peaks but no border inside them, while touching nuclei have one. "Backed" is relative
to how the model marks borders it is sure of, the component's outer edge (a model trained for
minutes marks every border fainter than a well-trained one). Objects the network is much less sure
of than of the image's surest objects are dropped: a model trained for minutes on a dozen images
finds dim, out-of-focus nuclei that its users leave out. "Sure" is the mean foreground probability
over the object, relative to the image's surest objects (their 90th percentile), because how sure a
model is of anything grows with training: an absolute level left no objects to a model stopped early.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from napari_unet import limits
from napari_unet.functionals.prediction import Prediction


@dataclass(frozen=True)
class InstanceParams:
    """The knobs users turn: foreground threshold, smallest object kept, closest two seeds may be,
    how sure the boundary head must be of a border to keep two touching objects apart, and how
    sure the network must be of an object as a whole to keep it."""

    threshold: float = 0.5
    min_size: int = 10
    seed_spacing: int = 2
    seed_prominence: float = 0.1
    border_evidence: float = 0.5  # a split stays if its border is this fraction of the outer edge; 0: all stay
    # An object stays if its mean foreground probability is at least this fraction of the image's surest objects'
    # (0: all stay). Chosen on `train` images new models never saw and on ISBI EM; the shipped models store their
    # own level, picked on their `train` images (BENCHMARKS.md headline).
    min_confidence: float = 0.85

    def __post_init__(self) -> None:
        limits.real_number("threshold", self.threshold, 0.0, 1.0, low_open=True, high_open=True)
        limits.whole_number("min size", self.min_size, 0)
        limits.whole_number("seed spacing", self.seed_spacing, 1, limits.MAX_SEED_SPACING)
        limits.real_number("seed prominence", self.seed_prominence, 0.0, 1.0)
        limits.real_number("border evidence", self.border_evidence, 0.0, 1.0)
        limits.real_number("min confidence", self.min_confidence, 0.0, 1.0)

    def to_dict(self) -> dict:
        return asdict(self)


def instances_from_prediction(
    prediction: Prediction, params: InstanceParams = InstanceParams(), *, use_instance_heads: bool = True
) -> np.ndarray:
    """Label image (uint32, 0 = background) of the objects in one 2D prediction.

    Each connected foreground component is split on its own bounding box: the seeds, the
    watershed and the size filter never leave a component, so this equals one whole-image
    pass while its temporaries (float64 copies, h-maxima's sorts of twice the image) stay
    the size of one object and background pixels are never sorted. Objects are numbered
    component by component in raster order.
    """
    foreground = prediction.foreground_mask(params.threshold)
    # Smooth the distance map over one of the network's pixels: peaks mean the same at every object size.
    sigma = float(np.clip(1.0 / prediction.scale, 0.5, 8.0))
    halo_size = int(np.ceil(4 * sigma))  # gaussian_filter reads 4 sigma around each pixel (truncate=4.0)
    merge_seeds = _disk(params.seed_spacing // 2) if params.seed_spacing > 1 else None  # closer than seed_spacing
    labels = np.zeros(foreground.shape, np.uint32)
    next_id = 1
    means = [np.zeros(1)]  # each object's mean foreground probability, by id (0: background)
    for box, mask, halo, inner in components_in_halos(foreground, params.min_size, (halo_size, halo_size)):
        if use_instance_heads:
            distance = prediction.distance[halo].astype(np.float32)
            smoothed = ndimage.gaussian_filter(distance, sigma)[inner]
            elevation = prediction.boundary[box].astype(np.float32) - distance[inner]
            seeds = prominent_maxima(np.where(mask, smoothed, 0), params.seed_prominence) & mask
        else:
            # The nearest pixel outside the component is background: EDT of the component alone
            # equals the EDT of the whole foreground on it (padded so the crop edge is background).
            distance = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1].astype(np.float32)
            elevation = -distance
            seeds = _peaks(distance, mask, params.seed_spacing)
        local, n = seeded_watershed(elevation, seeds, mask, merge_seeds)
        if use_instance_heads:
            boundary = prediction.boundary[box]
            local, n = merge_weak_borders(local, n, boundary, params.border_evidence * edge_level(mask, boundary))
        local = remove_small(local, params.min_size)
        if params.min_confidence > 0:
            means.append(object_means(local, n, mask, prediction.foreground_in(box)))
        next_id = paste_objects(labels, box, mask, local, n, next_id)
    return drop_unsure(labels, np.concatenate(means), params.min_confidence)


def components_in_halos(mask: np.ndarray, min_size: int, halo: tuple[int, ...]):
    """Each connected component of `mask` (4- / 6-connected, as the watershed floods) of at least
    `min_size` pixels, smaller ones could only hold objects removed as small: yields (its bounding
    box, its mask there, the box grown by `halo` pixels per axis within the image, the box's place
    inside the grown one), so a filter reads what it needs around the component and no more."""
    components, _ = ndimage.label(mask)
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        if box is None:
            continue
        component = components[box] == index
        if np.count_nonzero(component) < min_size:
            continue
        grown = tuple(slice(max(s.start - h, 0), min(s.stop + h, n)) for s, h, n in zip(box, halo, mask.shape))
        yield box, component, grown, tuple(slice(s.start - g.start, s.stop - g.start) for s, g in zip(box, grown))


def paste_objects(labels: np.ndarray, box: tuple, mask: np.ndarray, local: np.ndarray, n: int, next_id: int) -> int:
    """Write one component's surviving objects (`local` ids 1..n inside `mask`) into `labels[box]`
    as next_id, next_id + 1, ...; return the next free id (ids stay dense across components)."""
    kept = np.unique(local[mask])
    kept = kept[kept > 0]
    new_ids = np.zeros(n + 1, np.uint32)
    new_ids[kept] = np.arange(next_id, next_id + len(kept), dtype=np.uint32)
    labels[box][mask] = new_ids[local[mask]]
    return next_id + len(kept)


def object_means(labels: np.ndarray, n: int, mask: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """Mean `foreground` of each object of `labels` (ids 1..n inside `mask`, any dimension), in the order
    `paste_objects` numbers them (the ids present, ascending)."""
    ids = labels[mask]
    counts = np.bincount(ids, minlength=n + 1)
    sums = np.bincount(ids, weights=foreground[mask].astype(np.float64), minlength=n + 1)
    present = np.flatnonzero(counts[1:]) + 1
    return sums[present] / counts[present]


def drop_unsure(labels: np.ndarray, means: np.ndarray, level: float) -> np.ndarray:
    """`labels` without the objects whose mean foreground probability (`means`, by id) is below `level` x
    the 90th percentile of all of them; the ids stay dense."""
    if level <= 0 or means.size <= 1:
        return labels
    keep = means >= level * np.percentile(means[1:], 90)
    keep[0] = True
    if keep.all():
        return labels
    new_ids = (np.cumsum(keep) - 1).astype(labels.dtype)
    new_ids[~keep] = 0
    return new_ids[labels]


def edge_level(mask: np.ndarray, boundary: np.ndarray) -> float:
    """Median `boundary` on the outer edge of `mask` (its pixels with a face-neighbour outside it):
    what the boundary head gives a border it has no doubt about."""
    edge = mask & ~ndimage.binary_erosion(mask, border_value=0)
    return float(np.median(boundary[edge])) if edge.any() else 0.0


def merge_weak_borders(labels: np.ndarray, n: int, boundary: np.ndarray, evidence: float) -> tuple[np.ndarray, int]:
    """Merge touching objects of `labels` (ids 1..n, any dimension) whose shared border has a mean
    `boundary` probability below `evidence`; (labels with ids 1..m, m). Borders are the pairs of
    face-adjacent pixels with different ids, each valued by the mean of its two pixels."""
    if n < 2 or evidence <= 0:
        return labels, n
    lows, highs, values = [], [], []
    for axis in range(labels.ndim):
        a = np.moveaxis(labels, axis, 0)
        b = np.moveaxis(boundary, axis, 0)
        left, right = a[:-1].ravel(), a[1:].ravel()
        touching = (left > 0) & (right > 0) & (left != right)
        lows.append(np.minimum(left[touching], right[touching]).astype(np.int64))
        highs.append(np.maximum(left[touching], right[touching]).astype(np.int64))
        values.append((b[:-1].ravel()[touching].astype(np.float64) + b[1:].ravel()[touching]) / 2)
    pairs, index = np.unique(np.concatenate(lows) * (n + 1) + np.concatenate(highs), return_inverse=True)
    if pairs.size == 0:
        return labels, n
    values = np.concatenate(values)
    weak = pairs[np.bincount(index, values) / np.bincount(index) < evidence]
    if weak.size == 0:
        return labels, n
    graph = coo_matrix((np.ones(weak.size), (weak // (n + 1), weak % (n + 1))), shape=(n + 1, n + 1))
    _, group = connected_components(graph, directed=False)
    # dense ids in order of each group's first member; 0 stays background (it has no edges)
    _, first, dense = np.unique(group, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    new_ids = order[dense].astype(labels.dtype)
    return new_ids[labels], int(new_ids.max())


def prominent_maxima(image: np.ndarray, prominence: float) -> np.ndarray:
    """The maxima standing at least `prominence` above their surroundings, in 2D or 3D (none on a flat image)."""
    if np.ptp(image) <= prominence:
        return np.zeros(image.shape, bool)
    return h_maxima(image, prominence) > 0


def seeded_watershed(elevation: np.ndarray, seeds: np.ndarray, mask: np.ndarray,
                     merge_footprint: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Watershed of one component (2D or 3D) from its seeds; (labels, count). Seeds that a dilation by
    `merge_footprint` joins are one seed (None: no merging). A component without seeds is one object.
    """
    if merge_footprint is not None and seeds.any():
        seeds = ndimage.binary_dilation(seeds, merge_footprint) & mask
    markers, n = ndimage.label(seeds)
    if n == 0:
        return mask.astype(np.int32), 1
    return watershed(elevation, markers, mask=mask), n


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Zero out objects with fewer than `min_size` pixels."""
    if min_size <= 1 or labels.size == 0:
        return labels
    if int(labels.max()) > 4 * labels.size + 65536:  # sparse huge ids: count them, never index by them
        ids, index, sizes = np.unique(labels, return_inverse=True, return_counts=True)
        small = (sizes < min_size) & (ids != 0)
        return np.where(small[index.reshape(labels.shape)], 0, labels)
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    return np.where(small[labels], 0, labels)


def _peaks(distance: np.ndarray, mask: np.ndarray, spacing: int) -> np.ndarray:
    """Local maxima of the distance transform within a (2*spacing+1) window."""
    size = 2 * max(spacing, 1) + 1
    smoothed = ndimage.gaussian_filter(distance, 1.0)
    return (smoothed == ndimage.maximum_filter(smoothed, size=size)) & mask & (distance > 1)


def _disk(radius: int) -> np.ndarray:
    r = max(radius, 1)
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return x * x + y * y <= r * r
