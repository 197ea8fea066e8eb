"""What the viewer shows: the plane on display, the part of it in view, and shapes drawn over it."""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Layer, Shapes

from napari_unet.functionals.layout import ImageLayout, Plane


def current_plane(viewer, image: Image, layout: ImageLayout) -> Plane:
    """Indices along the stack axes of the plane the viewer shows."""
    if not layout.stack_shape:
        return ()
    coords = image.world_to_data(viewer.dims.point)
    return tuple(int(np.clip(np.round(coords[axis]), 0, layout.data_shape[axis] - 1)) for axis in layout.stack_axes)


def displays_plane(viewer) -> bool:
    """True when the viewer shows a 2D view of the last two axes (what the plugin assumes)."""
    dims = viewer.dims
    return dims.ndisplay == 2 and list(dims.displayed) == [dims.ndim - 2, dims.ndim - 1]


def camera_of(viewer):
    """The viewer's camera (napari >= 0.9: viewer.scene.camera; before: viewer.camera)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def canvas_size(viewer) -> tuple[float, float] | None:
    """(height, width) of the canvas in screen pixels, from the viewer model (napari >= 0.9)."""
    canvas = getattr(viewer, "canvas", None)
    size = getattr(canvas, "size", None)
    if size is None:
        size = getattr(viewer, "_canvas_size", None)
    return (float(size[0]), float(size[1])) if size is not None else None


def view_region(viewer, image: Image, layout: ImageLayout) -> tuple[slice, slice] | None:
    """(rows, cols) slices of the plane in the current field of view; None for the whole plane.

    Computed from the camera (centre, zoom) and the canvas size, so it is current even
    before the canvas has drawn; falls back to the layer's drawn `corner_pixels`.
    """
    if not displays_plane(viewer):
        return None
    h, w = layout.plane_shape
    corners = None
    size = canvas_size(viewer)
    camera = camera_of(viewer)
    if size is not None and camera.zoom > 0:
        centre = np.asarray(camera.center, dtype=float)[-2:]
        half = np.asarray(size) / camera.zoom / 2
        point = np.asarray(viewer.dims.point, dtype=float)
        ends = []
        for sign in (-1, 1):
            world = point.copy()
            world[-2:] = centre + sign * half
            ends.append(np.asarray(image.world_to_data(world))[-2:])
        ends = np.asarray(ends)
        corners = np.stack([np.floor(ends.min(axis=0)), np.ceil(ends.max(axis=0)) - 1])
    else:
        drawn = np.asarray(image.corner_pixels)
        if drawn.shape[0] == 2 and drawn.shape[1] >= 2 and np.any(drawn):
            corners = drawn[:, -2:]
    if corners is None:
        return None
    (y0, x0), (y1, x1) = corners
    y0, y1 = int(np.clip(y0, 0, h)), int(np.clip(y1 + 1, 0, h))
    x0, x1 = int(np.clip(x0, 0, w)), int(np.clip(x1 + 1, 0, w))
    if y1 <= y0 or x1 <= x0:
        return None
    if (y0, x0, y1, x1) == (0, 0, h, w):
        return None
    return slice(y0, y1), slice(x0, x1)


def world_points_to_plane(points: np.ndarray, source: Layer, target: Layer) -> np.ndarray:
    """(N, D) data points of `source` (e.g. a Shapes layer) as (row, col) data points of `target`."""
    points = np.asarray(points, dtype=float)
    out = []
    for p in points:
        world = source.data_to_world(p)
        out.append(np.asarray(target.world_to_data(world))[-2:])
    return np.asarray(out)


def last_shape(layer: Shapes | None, kinds: tuple[str, ...]) -> tuple[int | None, np.ndarray | None]:
    """(index, data) of the selected shape of one of `kinds` (else the newest one), or (None, None)."""
    if layer is None or len(layer.data) == 0:
        return None, None
    indices = [i for i, t in enumerate(layer.shape_type) if t in kinds]
    if not indices:
        return None, None
    selected = [i for i in indices if i in layer.selected_data]
    index = selected[-1] if selected else indices[-1]
    return index, np.asarray(layer.data[index])
