"""Reading and writing one plane (or a region of it) of a Labels layer: repainting only what changed,
through napari's undo history where it should be undoable, into every level of a pyramid."""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels

from napari_unet.errors import UserInputError
from napari_unet.functionals.layout import ImageLayout, Plane, plane_label
from napari_unet.io.pyramid import write_coarser_levels
from napari_unet.napari.layers.layout import image_data


def plane_index(plane: Plane, region: tuple[slice, slice] | None = None) -> tuple:
    return tuple(plane) + tuple(region if region is not None else (slice(None), slice(None)))


def is_lazy(layer) -> bool:
    """True when the layer's data is not in memory (a zarr or dask array): never read it whole."""
    return not isinstance(layer.data, np.ndarray)


# An in-memory image up to this many values is checked for NaN / infinity at a Predict click (one pass, ~0.1 s);
# a bigger or lazy one is checked by the job as it reads each tile.
FINITE_CHECK_MAX = 1 << 27


def check_finite(values, image_name: str, plane: Plane = ()) -> None:
    """A clear error when in-memory `values` (of the image's plane) hold NaN or infinity (integers cannot),
    before a job that would stop on them starts."""
    values = np.asarray(values)
    if values.dtype.kind not in "fc":
        return
    finite = np.isfinite(values)
    if not finite.all():
        count = finite.size - int(np.count_nonzero(finite))
        where = " ".join(filter(None, [f"'{image_name}'", plane_label(plane)]))
        raise UserInputError(f"{where} has {count} NaN or infinite value{'' if count == 1 else 's'}: "
                             "replace them (e.g. with numpy.nan_to_num) first")


def check_planes_finite(image: Image, layout: ImageLayout, planes: list[Plane]) -> None:
    """`check_finite` on the planes of an in-memory image a job is about to read (lazy or huge: skipped)."""
    if is_lazy(image) or image.data.size > FINITE_CHECK_MAX:
        return
    for plane in planes:
        check_finite(layout.image_plane(image.data, plane), image.name, plane)


def read_plane(layer: Labels, plane: Plane, region: tuple[slice, slice] | None = None) -> np.ndarray:
    return np.asarray(image_data(layer)[plane_index(plane, region)])


def write_region(layer: Labels, plane: Plane, values: np.ndarray, region: tuple[slice, slice] | None = None) -> None:
    """Write `values` into one plane (or a region of it) and repaint only that part of the layer.

    Not recorded in the layer's undo history (used for predictions). Falls back to a full
    refresh where napari's partial-update path is not available.
    """
    data = image_data(layer)
    h, w = data.shape[-2:]
    rows, cols = region if region is not None else (slice(0, h), slice(0, w))
    rows = slice(rows.start or 0, h if rows.stop is None else rows.stop)
    cols = slice(cols.start or 0, w if cols.stop is None else cols.stop)
    values = np.asarray(values)
    data[plane_index(plane, (rows, cols))] = values
    _partial_refresh(layer, plane, (rows, cols), values)


def write_undoable(layer: Labels, plane: Plane, new: np.ndarray, region: tuple[slice, slice] | None = None) -> int:
    """Write a whole plane (or a region of it) through napari's undo history (Ctrl+Z undoes it);
    returns pixels changed. Only the changed pixels are written (a zarr layer: only their chunks)."""
    if layer.multiscale:
        return _write_pyramid(layer, plane, new, region)
    old = read_plane(layer, plane, region)
    changed = old != new
    n = int(np.count_nonzero(changed))
    if n == 0:
        return 0
    local = np.nonzero(changed)
    if region is not None:
        local = tuple(axis + (s.start or 0) for axis, s in zip(local, region))
    indices = tuple(np.full(n, p, dtype=np.intp) for p in plane) + local
    layer.data_setitem(indices, new[changed].astype(layer.data.dtype, copy=False))
    return n


def _write_pyramid(layer: Labels, plane: Plane, new: np.ndarray, region: tuple[slice, slice] | None) -> int:
    """`write_undoable` on a pyramid (a prediction store's plane too big to show whole): napari cannot
    edit one, so the pixels go straight into every level; not undoable. Returns pixels changed."""
    if plane:
        raise UserInputError(f"'{layer.name}' is a pyramid of a stack: napari-unet edits pyramids of 2D planes only")
    levels = [layer.data[k] for k in range(len(layer.data))]
    h, w = levels[0].shape[-2:]
    rows, cols = region if region is not None else (slice(0, h), slice(0, w))
    rows, cols = slice(rows.start or 0, rows.stop or h), slice(cols.start or 0, cols.stop or w)
    changed = int(np.count_nonzero(np.asarray(levels[0][rows, cols]) != new))
    if changed:
        new = np.asarray(new).astype(levels[0].dtype, copy=False)
        levels[0][rows, cols] = new
        write_coarser_levels(levels, new, rows.start, cols.start)
        refresh_pyramid(layer)
    return changed


def refresh_pyramid(layer: Labels, **refresh) -> None:
    """`layer.refresh(**refresh)` that also shows what was written to a pyramid's coarsest level since napari
    read it: napari 0.9 reads that level once and keeps it (for the thumbnail, and as the tile shown when
    zoomed out that far), so a store filling in or a merge would not show there."""
    forget = getattr(layer, "_reset_thumbnail_level_data", None)  # napari's own reset when data is replaced
    if layer.multiscale and forget is not None:
        forget()
    layer.refresh(**refresh)


def _partial_refresh(layer: Labels, plane: Plane, region: tuple[slice, slice], values: np.ndarray) -> None:
    if not layer.visible:
        return  # napari refreshes a layer when it becomes visible
    try:
        slice_input = layer._slice_input
        if slice_input.ndisplay != 2 or list(slice_input.displayed) != [layer.ndim - 2, layer.ndim - 1]:
            raise RuntimeError("not a plane view")
        if plane:
            shown = np.asarray(layer._data_slice.point)[: len(plane)]
            if tuple(int(round(float(p))) for p in shown) != tuple(plane):
                return  # another plane is displayed: nothing visible changed
        image_slice = layer._slice.image
        raw = image_slice.raw
        if raw.shape[-2:] != tuple(layer.data.shape[-2:]):
            raise RuntimeError("downsampled texture")
        raw[region] = values
        if layer.contour == 0:
            image_slice.view[region] = layer.colormap._data_to_texture(values)
        full = tuple(slice(p, p + 1) for p in plane) + tuple(region)
        layer._accumulate_updated_slice(full)
        layer._partial_labels_refresh()
    except Exception:  # private napari API moved, or an unusual layer: repaint all of it
        layer.refresh()
