"""The axis roles of an Image layer (`functionals.layout.ImageLayout`) and the geometry its paired
Labels layers share with it (shape, scale, translate, z anisotropy)."""

from __future__ import annotations

from napari.layers import Image, Labels

from napari_unet import conventions as c
from napari_unet.errors import UserInputError
from napari_unet.functionals.layout import ImageLayout, Plane
from napari_unet.napari.layers.roles import find_paired, meta


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
