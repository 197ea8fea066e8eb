"""Translation between napari layers and the compute core's arrays.

Everything here is about *layers*: which Labels layers belong to which image (by
metadata, then by name), which axes of an image are channels, stack planes or the two
spatial axes, which plane the viewer shows, which part of it is in view, and how to
write into a Labels layer without repainting all of it. No Qt widgets.

Axis roles (channels, stack planes, height and width) come from the core's
`functionals.layout.ImageLayout`; the paired Labels layers have the image's shape without
the channel / RGB axis, so one "plane" is one (H, W) slice of them.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels, Layer, Shapes
from napari.utils.colormaps import Colormap, DirectLabelColormap

from napari_unet import conventions as c
from napari_unet.errors import UserInputError
from napari_unet.io.pyramid import write_coarser_levels
from napari_unet.napari.cheap_layers import without_paint_overlays
from napari_unet.functionals.data import TrainingImage
from napari_unet.functionals.data import training_items as items_of_image
from napari_unet.functionals.layout import ImageLayout, Plane

# --------------------------------------------------------------------------- metadata


def meta(layer: Layer) -> dict:
    """napari_unet's own metadata of a layer ({} when it has none)."""
    md = getattr(layer, "metadata", None)
    if isinstance(md, dict) and isinstance(md.get(c.METADATA_KEY), dict):
        return md[c.METADATA_KEY]
    return {}


def set_meta(layer: Layer, **values) -> None:
    """Update napari_unet's metadata of a layer (other plugins' metadata is kept)."""
    md = dict(layer.metadata or {})
    ours = dict(md.get(c.METADATA_KEY) or {})
    ours.update(values)
    md[c.METADATA_KEY] = ours
    layer.metadata = md


def role_of(layer: Layer) -> str | None:
    return meta(layer).get("role")


def is_channel_stack(layer: Layer) -> bool:
    """True for an Image layer combining other layers as its channels (napari.channels)."""
    return isinstance(meta(layer).get("channel_layers"), list)


def channel_layer_names(viewer) -> set[str]:
    """Names of the layers that are channels of a combined image in the viewer."""
    return {name for layer in viewer.layers if is_channel_stack(layer) for name in meta(layer)["channel_layers"]}


def is_segmentable(viewer, layer: Layer) -> bool:
    """An Image layer a user can segment: not one of our outputs (probabilities), not a channel
    of a combined image (the combined image is segmented instead)."""
    return isinstance(layer, Image) and role_of(layer) is None and layer.name not in channel_layer_names(viewer)


def image_layers(viewer) -> list[Image]:
    """Image layers a user can segment (`is_segmentable`)."""
    members = channel_layer_names(viewer)
    return [layer for layer in viewer.layers
            if isinstance(layer, Image) and role_of(layer) is None and layer.name not in members]


def find_paired(viewer, image_name: str, role: str, kind=Labels):
    """The layer of `kind` (Labels by default) playing `role` for the image: by metadata first, then by
    conventional name."""
    for layer in viewer.layers:
        if isinstance(layer, kind) and role_of(layer) == role and meta(layer).get("image") == image_name:
            return layer
    name = c.layer_name(image_name, role)
    if name in viewer.layers and isinstance(viewer.layers[name], kind):
        return viewer.layers[name]
    return None


def get_layer(viewer, name: str | None, kind=Layer):
    """The layer called `name` if it is (still) in the viewer and of `kind`, else None."""
    if name and name in viewer.layers and isinstance(viewer.layers[name], kind):
        return viewer.layers[name]
    return None


# --------------------------------------------------------------------------- colours


def class_names_of(layer: Labels | None) -> list[str]:
    names = list(meta(layer).get("class_names") or []) if layer is not None else []
    return names or list(c.DEFAULT_CLASS_NAMES)


def class_colors_of(layer: Labels | None, n: int) -> list[tuple]:
    """RGBA colours of classes 0..n-1 (label values 1..n): stored ones, else the colormap's, else defaults."""
    stored = list(meta(layer).get("class_colors") or []) if layer is not None else []
    colors = []
    for i in range(n):
        if i < len(stored):
            colors.append(tuple(float(v) for v in stored[i]))
        elif layer is not None and isinstance(layer.colormap, DirectLabelColormap) and c.label_value(i) in layer.colormap.color_dict:
            colors.append(tuple(float(v) for v in layer.colormap.color_dict[c.label_value(i)]))
        else:
            colors.append(c.class_color(i))
    return colors


def class_colormap(colors: list[tuple], *, background_visible: bool = True) -> DirectLabelColormap:
    """0 (not annotated) transparent, 1..K the class colours; background optionally transparent."""
    return DirectLabelColormap(color_dict=c.class_color_dict(colors, background_visible=background_visible))


def set_class_features(layer: Labels, names: list[str]) -> None:
    """Name each label value in the layer's features, so napari's status bar names the class under the cursor."""
    values = range(c.label_value(len(names)))
    layer.features = {"index": list(values),
                      "class": ["not annotated"] + [str(name) for name in names]}


# --------------------------------------------------------------------------- layout


def image_data(layer: Image):
    """The full-resolution data of an image layer (level 0 of a multiscale one)."""
    return layer.data[0] if layer.multiscale else layer.data


def layout_of(layer: Image, channel_axis: int | None = None) -> ImageLayout:
    """The image layer's axis roles, with `channel_axis` as its channel axis (None: none)."""
    return ImageLayout.of(image_data(layer).shape, rgb=bool(layer.rgb), channel_axis=channel_axis, name=layer.name)


def default_channel_axis(image: Image) -> int | None:
    """The channel axis an image has before the user says otherwise (0 for combined channels)."""
    return meta(image).get("channel_axis")


def layout_in(viewer, image: Image) -> ImageLayout:
    """The image's layout with the channel axis stored with its annotations (if any)."""
    annotations = find_paired(viewer, image.name, c.ROLE_ANNOTATIONS)
    axis = meta(annotations).get("channel_axis") if annotations is not None else default_channel_axis(image)
    try:
        return layout_of(image, axis)
    except UserInputError:
        return layout_of(image, None)


def image_plane(image: Image, layout: ImageLayout, plane: Plane, region: tuple[slice, slice] | None = None):
    """(C, H, W) numpy array of one plane of an image layer (or of a region of it: only that is read)."""
    return layout.image_plane(image_data(image), plane, region)


def labels_scale_translate(image: Image, layout: ImageLayout) -> tuple[list[float], list[float]]:
    """Scale and translate of Labels paired with `image` (its own, without the channel axis)."""
    keep = layout.labels_axes
    return [float(image.scale[i]) for i in keep], [float(image.translate[i]) for i in keep]


def stack_z_anisotropy(image: Image, layout: ImageLayout) -> float | None:
    """z step / pixel width of a (Z, Y, X) stack, whose objects are 3D; None where objects are per plane:
    a 2D image, a time series (its stack axis labelled t or time) or more than one stack axis."""
    if len(layout.stack_shape) != 1:
        return None
    axis = layout.labels_axes[0]
    label = str(image.axis_labels[axis]).strip().lower()
    if label in ("t", "time"):
        return None
    return float(abs(image.scale[axis] / image.scale[layout.labels_axes[-1]]))


def check_pair(image: Image, labels: Labels, layout: ImageLayout) -> None:
    if tuple(labels.data.shape) != layout.labels_shape:
        raise UserInputError(
            f"'{labels.name}' has shape {tuple(labels.data.shape)} but '{image.name}' needs "
            f"{layout.labels_shape}: rename or delete that layer and let napari-unet create a new one"
        )


# --------------------------------------------------------------------------- view


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


# --------------------------------------------------------------------------- writing


def plane_index(plane: Plane, region: tuple[slice, slice] | None = None) -> tuple:
    return tuple(plane) + tuple(region if region is not None else (slice(None), slice(None)))


def is_lazy(layer) -> bool:
    """True when the layer's data is not in memory (a zarr or dask array): never read it whole."""
    return not isinstance(layer.data, np.ndarray)


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


# --------------------------------------------------------------------------- layers


def paired_labels(
    viewer,
    image: Image,
    role: str,
    layout: ImageLayout,
    *,
    dtype=np.uint32,
    create: bool = True,
    data=None,
    **layer_kwargs,
) -> Labels | None:
    """The image's Labels layer for `role`, created empty (and tagged) when missing and `create`.

    `data`: the layer shows this array instead (e.g. a zarr array of a prediction store), or
    a list of them, finest first (a pyramid: a multiscale layer, which napari does not let edit)."""
    layer = find_paired(viewer, image.name, role)
    if layer is not None and data is not None and layer.multiscale != isinstance(data, list):
        viewer.layers.remove(layer)  # napari cannot switch a layer to or from a pyramid: a new one
        layer = None
    if layer is not None:
        if data is not None and layer.data is not data:
            layer.data = data
        check_pair(image, layer, layout)
        if meta(layer).get("role") != role or meta(layer).get("image") != image.name:
            set_meta(layer, role=role, image=image.name)
        return layer
    if not create:
        return None
    scale, translate = labels_scale_translate(image, layout)
    layer = Labels(
        np.zeros(layout.labels_shape, dtype=dtype) if data is None else data,
        name=c.layer_name(image.name, role),
        scale=scale,
        translate=translate,
        metadata={c.METADATA_KEY: {"role": role, "image": image.name}},
        **layer_kwargs,
    )
    if isinstance(data, list):
        without_paint_overlays(layer)
    viewer.add_layer(layer)
    return layer


def paint_probabilities(viewer, image: Image, layout: ImageLayout, plane: Plane, probabilities: np.ndarray,
                        class_names: list[str]) -> None:
    """Write one plane of per-class probabilities (K, H, W) into one Image layer per class but background."""
    for k in range(1, probabilities.shape[0]):
        layer = _probability_layer(viewer, image, layout, class_names, k, probabilities.shape[0])
        layer.data[plane_index(plane)] = probabilities[k]
        layer.refresh()


def show_probabilities(viewer, image: Image, layout: ImageLayout, probabilities, class_names: list[str]) -> list[Image]:
    """One Image layer per class but background over a lazy (K, H, W) array (e.g. dask over a zarr store),
    or over a list of them, finest first: a pyramid, shown as multiscale layers."""
    levels = probabilities if isinstance(probabilities, list) else None
    layers = []
    n = (levels[0] if levels else probabilities).shape[0]
    for k in range(1, n):
        data = [level[k] for level in levels] if levels else probabilities[k]
        layer = _probability_layer(viewer, image, layout, class_names, k, n, data)
        if layer.data is not data:
            layer.data = data
        layers.append(layer)
    return layers


def _probability_layer(viewer, image: Image, layout: ImageLayout, class_names: list[str], k: int, n: int,
                       data=None) -> Image:
    """The image's probability layer of class `k` (of `n`), created over `data` (default zeros) when missing."""
    colors = class_colors_of(find_paired(viewer, image.name, c.ROLE_ANNOTATIONS), n)
    cls = class_names[k] if k < len(class_names) else f"class {k}"
    name = c.layer_name(image.name, f"probability {cls}")
    layer = get_layer(viewer, name, Image)
    if layer is not None and layer.multiscale != isinstance(data, list):  # napari cannot switch it: a new layer
        viewer.layers.remove(layer)
        layer = None
    if layer is None or tuple(layer.data.shape) != layout.labels_shape:
        scale, translate = labels_scale_translate(image, layout)
        r, g, b, _ = colors[k]
        layer = viewer.add_image(
            np.zeros(layout.labels_shape, np.float32) if data is None else data, name=name, scale=scale,
            translate=translate, contrast_limits=(0.0, 1.0), blending="additive", opacity=0.7, visible=True,
            colormap=Colormap([[0, 0, 0, 0], [r, g, b, 1]], name=f"napari-unet {cls}"), cache=data is None,
            metadata={c.METADATA_KEY: {"role": c.ROLE_PROBABILITIES, "image": image.name, "class": cls}},
        )
    return layer


def training_items(viewer) -> list[TrainingImage]:
    """Training pairs of every annotated plane of every image that has an annotations layer."""
    items: list[TrainingImage] = []
    found_layer = False
    for image in image_layers(viewer):
        annotations = find_paired(viewer, image.name, c.ROLE_ANNOTATIONS)
        if annotations is None:
            continue
        found_layer = True
        layout = layout_in(viewer, image)
        check_pair(image, annotations, layout)
        accepted = find_paired(viewer, image.name, c.ROLE_ACCEPTED)
        items += items_of_image(image_data(image), layout, annotations.data,
                                accepted.data if accepted is not None else None, name=image.name)
    if not items:
        if not found_layer:
            raise UserInputError(
                "no annotations yet: pick an image in step 1, then paint background (1) and a class (2) "
                "in its annotations layer"
            )
        raise UserInputError(
            "the annotations layers are empty: paint a few strokes of background (label 1) and of a class (label 2+)"
        )
    return items
