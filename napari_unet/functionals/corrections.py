"""Correcting predictions and accepting them as training data (step 5 of the cycle).

Pure functions on numpy label images: they return new arrays, never modify their inputs,
and keep the input dtype. The widgets translate napari layers and clicks into calls here.

Instance labels: 0 = background, one positive id per object. Annotations: 0 = not
annotated, 1 = background, 2..K = classes. Accepted regions: see
`conventions.ACCEPTED_BACKGROUND` (0 = not accepted, 1 = accepted background, id + 1 =
accepted object `id`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy import ndimage
from skimage.draw import line as draw_line
from skimage.draw import polygon2mask
from skimage.feature import peak_local_max
from skimage.measure import label as label_regions
from skimage.segmentation import relabel_sequential as _relabel_sequential
from skimage.segmentation import watershed
from skimage.util import map_array

from napari_unet.conventions import (
    ACCEPTED_BACKGROUND,
    BACKGROUND,
    FIRST_CLASS,
    UNANNOTATED,
)
from napari_unet.errors import UserInputError
from napari_unet.functionals.instances import remove_small

# --------------------------------------------------------------------------- objects


def merge_objects(labels: np.ndarray, ids: Iterable[int]) -> np.ndarray:
    """All objects in `ids` become one, with the smallest of their ids (ids not in `labels` are ignored)."""
    labels = np.asarray(labels)
    wanted = {int(i) for i in ids if int(i) > 0}
    present = sorted(i for i in wanted if np.any(labels == i))
    if len(present) < 2:
        raise UserInputError("select at least two objects to merge")
    out = labels.copy()
    out[np.isin(labels, present)] = present[0]
    return out


def split_object_by_line(labels: np.ndarray, object_id: int, line: np.ndarray) -> np.ndarray:
    """Cut object `object_id` along a drawn polyline: the largest part keeps the id, the others get new ones.

    `line` is an (N, 2) array of (row, col) points (napari Shapes 'path' data; with more
    columns the last two are used). The cut pixels go to the nearest part, so the parts
    together cover exactly the original object. An object that was already in several
    pieces must gain a piece from the cut; all its pieces then get their own ids.
    """
    labels = _check_2d(labels)
    object_id = int(object_id)
    box, obj = _object_box(labels, object_id)
    offset = np.array([s.start for s in box])
    cut = _rasterise_polyline(line, obj.shape, offset)
    _, n_before = ndimage.label(obj)
    parts_box, n_parts = ndimage.label(obj & ~cut)
    if not (cut & obj).any() or n_parts < 2 or n_parts <= n_before:
        raise UserInputError(
            f"the line does not cut object {object_id} in two: draw it across the whole object"
        )
    # Cut pixels join the nearest part, so the parts cover the object exactly.
    _, (rows, cols) = ndimage.distance_transform_edt(parts_box == 0, return_indices=True)
    parts_box = np.where(obj, parts_box[rows, cols], 0)
    return _assign_parts(labels, object_id, box, parts_box, n_parts)


def split_object_by_seeds(labels: np.ndarray, object_id: int, n_parts: int = 2) -> np.ndarray:
    """Split object `object_id` into `n_parts` by a watershed from the strongest, well-separated distance peaks.

    The largest part keeps the id, the others get new ids above `labels.max()`.
    """
    labels = _check_2d(labels)
    object_id, n_parts = int(object_id), int(n_parts)
    if n_parts < 2:
        raise UserInputError("split into at least two parts")
    box, obj = _object_box(labels, object_id)
    distance = ndimage.distance_transform_edt(obj)
    peaks = _separated_peaks(distance, obj, n_parts)
    if len(peaks) < n_parts:
        raise UserInputError(
            f"object {object_id} has no {n_parts} separate centres to split it at: "
            "split it with a line instead"
        )
    markers = np.zeros(obj.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, n_parts + 1)
    parts_box = watershed(-distance, markers, mask=obj)
    return _assign_parts(labels, object_id, box, parts_box, n_parts)


def remove_small_objects(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Delete (set to 0) objects with fewer than `min_size` pixels."""
    labels = np.asarray(labels)
    # bincount in remove_small needs a signed index type (it refuses uint64).
    return remove_small(labels.astype(np.intp), int(min_size)).astype(labels.dtype)


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Renumber objects 1..n in order of their old ids (0 stays 0)."""
    labels = np.asarray(labels)
    # Sequential ids never exceed the old ones, so the input dtype always holds them.
    return _relabel_sequential(labels)[0].astype(labels.dtype)


def object_at(labels: np.ndarray, point: Sequence[float]) -> int:
    """Id under a clicked (row, col) point (extra leading coordinates ignored; clipped to the image)."""
    labels = _check_2d(labels)
    point = np.asarray(point, dtype=float).ravel()
    if point.size < 2:
        raise UserInputError("click on the image to pick an object")
    rc = np.clip(np.round(point[-2:]).astype(int), 0, np.array(labels.shape) - 1)
    return int(labels[rc[0], rc[1]])


# --------------------------------------------------------------------------- accepting


def region_mask(shape: tuple[int, int], region=None) -> np.ndarray:
    """Boolean mask of the pixels of a region, clipped to the image.

    `region` is None (the whole image), a tuple of slices (e.g. the current view; may
    reach past the image, never wraps around), or napari Shapes corner data: a (4, 2)
    rectangle of (row, col) corners, or any (N >= 3, 2) polygon, possibly rotated or
    partly outside the image (extra leading columns are ignored). Pixels whose centres
    lie inside or on the edge are included. Raises if no pixel of the image is covered.
    """
    shape = tuple(int(n) for n in shape)
    mask = np.zeros(shape, dtype=bool)
    if region is None:
        mask[...] = True
    elif isinstance(region, (tuple, list)) and all(isinstance(s, slice) for s in region):
        if len(region) > len(shape):
            raise UserInputError(f"the region has {len(region)} dimensions but the image only {len(shape)}")
        mask[tuple(_clip_slice(s, n) for s, n in zip(region, shape))] = True
    else:
        corners = np.asarray(region, dtype=float)
        if corners.ndim != 2 or corners.shape[0] < 3 or corners.shape[1] < 2:
            raise UserInputError("draw a rectangle (napari Shapes layer) to choose the region to accept")
        mask = polygon2mask(shape, corners[:, -2:])
    if not mask.any():
        raise UserInputError("the region covers no pixel of the image: draw it (or move the view) over the image")
    return mask


def region_box(shape: tuple[int, int], region=None) -> tuple[tuple[slice, slice], object]:
    """(box, local region): the bounding box of a `region_mask` region in the image and the region
    relative to that box, so a region of a huge image is handled by reading only its box."""
    shape = tuple(int(n) for n in shape)
    if region is None:
        return (slice(0, shape[0]), slice(0, shape[1])), None
    if isinstance(region, (tuple, list)) and all(isinstance(s, slice) for s in region):
        box = tuple(_clip_slice(s, n) for s, n in zip(region, shape))
        return box, None
    corners = np.asarray(region, dtype=float)
    if corners.ndim != 2 or corners.shape[0] < 3 or corners.shape[1] < 2:
        raise UserInputError("draw a rectangle (napari Shapes layer) to choose the region to accept")
    corners = corners[:, -2:]
    low = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, shape)
    high = np.clip(np.ceil(corners.max(axis=0)).astype(int) + 1, 0, shape)
    box = (slice(int(low[0]), int(max(low[0], high[0]))), slice(int(low[1]), int(max(low[1], high[1]))))
    return box, corners - low


def accept_region(
    accepted: np.ndarray | None,
    annotations: np.ndarray,
    semantic: np.ndarray,
    instances: np.ndarray,
    mask: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Vouch for the (corrected) predictions inside `mask`: they become dense annotations and accepted objects.

    Inside the mask, annotations take the semantic prediction, except that object pixels
    predicted as background become the first class (2) so classes and objects agree, and
    `accepted` becomes instance id + ACCEPTED_BACKGROUND (background 1, object k -> k + 1).
    Objects reaching outside the mask are accepted only for their pixels inside it.
    Pixels with neither a semantic prediction (0) nor an object are left alone: nothing
    there to vouch for. `accepted` None starts from an empty uint32 (or uint64) layer.
    Returns new (accepted, annotations).
    """
    annotations, semantic, instances = np.asarray(annotations), np.asarray(semantic), np.asarray(instances)
    mask = np.asarray(mask, dtype=bool)
    _same_shape(annotations=annotations, semantic=semantic, instances=instances, region=mask)
    if accepted is not None:
        accepted = np.asarray(accepted)
        _same_shape(annotations=annotations, accepted=accepted)
    objects = instances > 0
    mask = mask & ((semantic != UNANNOTATED) | objects)
    if not mask.any():
        raise UserInputError("there is no prediction in this region to accept: predict first")

    classes = np.where(objects & (semantic <= BACKGROUND), FIRST_CLASS, semantic)
    new_annotations = annotations.copy()
    new_annotations[mask] = _fit(classes[mask], annotations.dtype, "class", "annotation")

    top = int(instances.max(initial=0)) + ACCEPTED_BACKGROUND
    if accepted is None:
        dtype = np.uint32 if top <= np.iinfo(np.uint32).max else np.uint64
        new_accepted = np.zeros(instances.shape, dtype=dtype)
    else:
        new_accepted = accepted.copy()
    codes = np.where(objects, instances, 0).astype(np.int64)[mask] + ACCEPTED_BACKGROUND
    new_accepted[mask] = _fit(codes, new_accepted.dtype, "object id", "accepted")
    return new_accepted, new_annotations


def keep_accepted(instances: np.ndarray, accepted: np.ndarray | None) -> np.ndarray:
    """A new prediction with the user's accepted objects in place of the model's, inside accepted regions.

    Why: the user vouched for those objects (often after correcting them); a retrain and a new
    prediction must not paint the model's mistakes back over them. Inside the accepted pixels the
    objects are the accepted ones (new ids above the prediction's, one per connected accepted
    object: ids of different accepts may repeat) and accepted background stays background. A
    predicted object reaching out of an accepted region continues the accepted object it overlaps
    most there (the object crosses the region's edge); one overlapping only accepted background keeps
    its outside part when at least half of it lies outside, else it is dropped (the user said there
    is no object). Any number of dimensions; returns the prediction's dtype (the input itself when
    nothing is accepted).
    """
    instances = np.asarray(instances)
    if accepted is None:
        return instances
    accepted = np.asarray(accepted)
    _same_shape(instances=instances, accepted=accepted)
    region = accepted >= ACCEPTED_BACKGROUND
    if not region.any():
        return instances
    box = ndimage.find_objects(region.astype(np.uint8))[0]  # the work is in the accepted regions' box
    region, inside_ids = region[box], instances[box]
    objects = label_regions(np.where(accepted[box] > ACCEPTED_BACKGROUND, accepted[box], 0), background=0,
                            connectivity=1)
    top = int(instances.max(initial=0))
    _fit(np.array([top + int(objects.max(initial=0))]), instances.dtype, "object id", "instances")
    out = instances.copy()
    cut = region & (inside_ids > 0)
    if cut.any():
        pairs, counts = np.unique(np.stack([inside_ids[cut].astype(np.int64), objects[cut]]), axis=1,
                                  return_counts=True)
        continues: dict[int, tuple[int, int]] = {}  # predicted id -> (accepted object, overlap)
        inside: dict[int, int] = {}
        for pred, obj, n in zip(*pairs.tolist(), counts.tolist()):
            inside[pred] = inside.get(pred, 0) + n
            if obj and n > continues.get(pred, (0, 0))[1]:
                continues[pred] = (obj, n)
        preds = np.array(sorted(inside), dtype=instances.dtype)
        touched = np.isin(instances, preds)
        total = dict(zip(*(v.tolist() for v in np.unique(instances[touched], return_counts=True))))
        new_ids = [top + continues[p][0] if p in continues else (p if 2 * (total[p] - inside[p]) >= total[p] else 0)
                   for p in preds.tolist()]
        out[touched] = map_array(instances[touched], preds, np.array(new_ids, dtype=instances.dtype))
    view = out[box]
    view[region] = 0
    view[objects > 0] = top + objects[objects > 0]
    return out


def keep_accepted_classes(semantic: np.ndarray, annotations: np.ndarray | None,
                          accepted: np.ndarray | None) -> np.ndarray:
    """A new semantic prediction with the user's classes inside accepted regions (accepting wrote the region's
    classes into the annotations, and the user may have painted over them since): the counterpart of
    `keep_accepted` for the semantic layer. Returns the input itself when nothing is accepted."""
    semantic = np.asarray(semantic)
    if accepted is None or annotations is None:
        return semantic
    accepted, annotations = np.asarray(accepted), np.asarray(annotations)
    _same_shape(semantic=semantic, accepted=accepted, annotations=annotations)
    keep = (accepted >= ACCEPTED_BACKGROUND) & (annotations != UNANNOTATED)
    if not keep.any():
        return semantic
    out = semantic.copy()
    out[keep] = _fit(annotations[keep], semantic.dtype, "class", "semantic")
    return out


def clear_accepted(accepted: np.ndarray | None, mask: np.ndarray) -> np.ndarray:
    """Un-accept the pixels in `mask` (annotations are left as they are; None gives an empty uint32 layer)."""
    mask = np.asarray(mask, dtype=bool)
    if accepted is None:
        return np.zeros(mask.shape, dtype=np.uint32)
    accepted = np.asarray(accepted)
    _same_shape(accepted=accepted, region=mask)
    out = accepted.copy()
    out[mask] = 0
    return out


# --------------------------------------------------------------------------- helpers


def _check_2d(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise UserInputError(f"expected a 2D label image (one plane), got shape {labels.shape}")
    return labels


def _same_shape(**arrays: np.ndarray) -> None:
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {'x'.join(map(str, s))}" for name, s in shapes.items())
        raise UserInputError(f"the layers differ in shape ({listed}): pick layers of the same image")


def _fit(values: np.ndarray, dtype: np.dtype, what: str, layer: str) -> np.ndarray:
    """`values` cast to `dtype`, or a UserInputError if one does not fit."""
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None and values.size and (values.max() > info.max or values.min() < info.min):
        raise UserInputError(
            f"{what} {int(values.max())} does not fit the {layer} layer ({np.dtype(dtype).name}): "
            "relabel the objects sequentially first"
        )
    return values.astype(dtype)


def _clip_slice(s: slice, n: int) -> slice:
    """A view slice clipped to [0, n): negative starts mean 'before the image', not 'from the end'."""
    if s.step not in (None, 1):
        raise UserInputError("the region must be a contiguous block of pixels")
    start = 0 if s.start is None else int(np.floor(s.start))
    stop = n if s.stop is None else int(np.ceil(s.stop))
    start, stop = min(max(start, 0), n), min(max(stop, 0), n)
    return slice(start, max(start, stop))


def _object_box(labels: np.ndarray, object_id: int) -> tuple[tuple[slice, ...], np.ndarray]:
    """Bounding box of an object, padded by one pixel (so distance transforms see its edge), and its mask there."""
    found = ndimage.find_objects((labels == object_id).astype(np.uint8)) if object_id > 0 else []
    if not found:
        raise UserInputError(f"there is no object {object_id} to split: pick an object of the instance layer")
    box = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(found[0], labels.shape))
    return box, labels[box] == object_id


def _rasterise_polyline(line: np.ndarray, shape: tuple[int, int], offset: np.ndarray) -> np.ndarray:
    """Boolean image (of `shape`, at `offset` in the full image) of a polyline's pixels.

    The line is 8-connected, so it separates the 4-connected parts that ndimage.label finds.
    """
    points = np.asarray(line, dtype=float)
    if points.ndim != 2 or points.shape[0] < 2 or points.shape[1] < 2:
        raise UserInputError("draw a line (napari Shapes path) across the object to split it")
    points = np.round(points[:, -2:]).astype(np.int64) - offset
    rows, cols = [], []
    for (r0, c0), (r1, c1) in zip(points[:-1], points[1:]):
        rr, cc = draw_line(int(r0), int(c0), int(r1), int(c1))
        rows.append(rr)
        cols.append(cc)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    inside = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    cut = np.zeros(shape, dtype=bool)
    cut[rows[inside], cols[inside]] = True
    return cut


def _separated_peaks(distance: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """Up to `n` strongest distance peaks, as far apart as possible: the spacing shrinks until n are found."""
    spacing = max(int(distance.max()), 1)
    while True:
        peaks = peak_local_max(
            distance, min_distance=spacing, labels=mask.astype(np.uint8), num_peaks=n, exclude_border=False
        )
        if len(peaks) >= n or spacing == 1:
            return peaks[:n]
        spacing = max(spacing // 2, 1)


def _assign_parts(
    labels: np.ndarray, object_id: int, box: tuple[slice, ...], parts: np.ndarray, n_parts: int
) -> np.ndarray:
    """Write parts 1..n (labelled in `box`) of `object_id`: the largest keeps the id, the rest get ids above the max."""
    sizes = np.bincount(parts.ravel(), minlength=n_parts + 1)[1:]
    order = np.argsort(-sizes, kind="stable") + 1  # part numbers, largest first
    first_new = int(labels.max()) + 1
    new_ids = np.arange(first_new, first_new + n_parts - 1)
    if np.issubdtype(labels.dtype, np.integer) and new_ids.size and new_ids[-1] > np.iinfo(labels.dtype).max:
        raise UserInputError(
            f"no free object id left in the {labels.dtype.name} label layer: relabel the objects sequentially first"
        )
    lut = np.zeros(n_parts + 1, dtype=np.int64)
    lut[order[0]] = object_id
    lut[order[1:]] = new_ids
    out = labels.copy()
    inside = parts > 0
    out[box][inside] = lut[parts[inside]].astype(labels.dtype)
    return out
