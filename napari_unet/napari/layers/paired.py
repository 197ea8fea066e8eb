"""The Labels layer playing a role for an image, created (empty, tagged, placed like the image) when missing."""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels

from napari_unet import conventions as c
from napari_unet.functionals.layout import ImageLayout
from napari_unet.napari.cheap_layers import without_paint_overlays
from napari_unet.napari.layers.layout import check_pair, labels_scale_translate
from napari_unet.napari.layers.roles import find_paired, meta, set_meta


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
