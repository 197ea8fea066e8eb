"""The layers that guide annotation: the uncertainty image and the outlines of suggested regions,
and moving the view to a suggested region. napari, no Qt.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Shapes

from napari_unet import conventions as c
from napari_unet.functionals.layout import ImageLayout, Plane
from napari_unet.functionals.suggestions import Region
from napari_unet.functionals.uncertainty import UNCERTAINTY_MAX
from napari_unet.napari.layers.layout import labels_scale_translate
from napari_unet.napari.layers.pixels import plane_index
from napari_unet.napari.layers.roles import find_paired
from napari_unet.napari.layers.view import camera_of, canvas_size

NEWEST = (1.0, 0.85, 0.0, 1.0)  # the region just suggested
EARLIER = (1.0, 1.0, 1.0, 0.35)  # regions suggested before
VIEW_FILL = 0.8  # the suggested region fills this much of the canvas


def uncertainty_layer(viewer, image: Image, layout: ImageLayout, *, create: bool = True) -> Image | None:
    """The image's uncertainty Image layer (uint8, 0 certain .. 255 unsure), created empty when missing.

    Created hidden: a heat map over the whole image would hide the predictions a user predicted for (and
    alarm a new one); Suggest next shows it (`show_uncertainty`), as does its eye in the layer list."""
    layer = find_paired(viewer, image.name, c.ROLE_UNCERTAINTY, Image)
    if layer is not None and tuple(layer.data.shape) == layout.labels_shape:
        return layer
    if layer is not None:
        viewer.layers.remove(layer)  # the image's layout changed (another channel axis)
    if not create:
        return None
    scale, translate = labels_scale_translate(image, layout)
    return viewer.add_image(
        np.zeros(layout.labels_shape, np.uint8), name=c.layer_name(image.name, c.ROLE_UNCERTAINTY),
        scale=scale, translate=translate, colormap="inferno", contrast_limits=(0, UNCERTAINTY_MAX),
        blending="additive", opacity=0.5, visible=False,
        metadata={c.METADATA_KEY: {"role": c.ROLE_UNCERTAINTY, "image": image.name,
                                   "meaning": "entropy of the class probabilities, 0 certain .. 255 unsure"}},
    )


def show_uncertainty(viewer, image: Image, layout: ImageLayout) -> None:
    """Show the image's uncertainty layer, if it has one: the user asked where the model is unsure."""
    layer = uncertainty_layer(viewer, image, layout, create=False)
    if layer is not None:
        layer.visible = True


def paint_uncertainty(layer: Image, plane: Plane, values: np.ndarray, region: tuple[slice, slice] | None = None) -> None:
    layer.data[plane_index(plane, region)] = values
    layer.refresh()


def outline_suggestion(viewer, image: Image, layout: ImageLayout, region: Region) -> Shapes:
    """Add the region's rectangle to the image's suggestions layer: newest in yellow, earlier ones faint."""
    layer = find_paired(viewer, image.name, c.ROLE_SUGGESTIONS, Shapes)
    plane = [float(p) for p in region.plane]
    top, left, bottom, right = region.top - 0.5, region.left - 0.5, region.bottom - 0.5, region.right - 0.5
    rect = np.array([[*plane, top, left], [*plane, top, right], [*plane, bottom, right], [*plane, bottom, left]])
    width = max(2.0, (region.bottom - region.top) / 64)
    if layer is None or layer.ndim != len(layout.labels_shape):
        if layer is not None:
            viewer.layers.remove(layer)
        scale, translate = labels_scale_translate(image, layout)
        active = viewer.layers.selection.active
        layer = viewer.add_shapes(
            ndim=len(layout.labels_shape), name=c.layer_name(image.name, c.ROLE_SUGGESTIONS), scale=scale,
            translate=translate, face_color="transparent", edge_color=np.asarray(NEWEST), edge_width=width,
            metadata={c.METADATA_KEY: {"role": c.ROLE_SUGGESTIONS, "image": image.name}},
        )
        if active is not None:  # keep painting where the user was: the outline is only a guide
            viewer.layers.selection.active = active
    layer.add_rectangles(rect, edge_width=width, edge_color=np.asarray(NEWEST), face_color="transparent")
    colors = np.tile(np.asarray(EARLIER, float), (len(layer.data), 1))
    colors[-1] = NEWEST
    layer.edge_color = colors
    return layer


def show_region(viewer, image: Image, layout: ImageLayout, region: Region) -> None:
    """Show the region's plane and centre the camera on the region, zoomed so it fills most of the canvas."""
    point = np.zeros(len(layout.image_axes))
    point[layout.stack_axes] = region.plane
    point[-2:] = region.centre
    world = np.asarray(image.data_to_world(point), float)
    offset = viewer.dims.ndim - len(world)  # layers are aligned on their last axes
    for axis in layout.stack_axes:
        viewer.dims.set_point(offset + axis, world[axis])
    camera = camera_of(viewer)
    camera.center = (float(world[-2]), float(world[-1]))
    size = canvas_size(viewer)
    extent = np.array([region.bottom - region.top, region.right - region.left], float) * np.abs(image.scale[-2:])
    if size is not None and min(size) > 0:
        camera.zoom = VIEW_FILL * float(min(np.asarray(size) / extent))
