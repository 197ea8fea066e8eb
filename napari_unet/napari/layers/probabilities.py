"""One Image layer of probabilities per class but background, in the class's colour."""

from __future__ import annotations

import numpy as np
from napari.layers import Image
from napari.utils.colormaps import Colormap

from napari_unet import conventions as c
from napari_unet.functionals.layout import ImageLayout, Plane
from napari_unet.napari.layers.class_colours import class_colors_of
from napari_unet.napari.layers.layout import labels_scale_translate
from napari_unet.napari.layers.pixels import plane_index
from napari_unet.napari.layers.roles import find_paired, get_layer


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
