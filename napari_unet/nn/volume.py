"""Predict a whole image of any layout: a 2D image, a (Z, Y, X) stack with 3D objects, or frames.

The network is 2D: it sees one plane at a time. What differs is how objects are made:
a 2D image and each frame of a time series get the 2D recipe (ids per frame), a stack's
planes are joined into 3D objects (`functionals.instances3d`), one id per object.
The command line (single and batch prediction) and the dock's stack prediction use this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from napari_unet.errors import UserInputError
from napari_unet.functionals.instances import InstanceParams
from napari_unet.functionals.instances3d import instances_3d
from napari_unet.functionals.layout import ImageLayout
from napari_unet.functionals.normalisation import as_channels_first
from napari_unet.nn.segmenter import Segmenter


@dataclass
class VolumeResult:
    """Outputs in the labels' layout: (..., H, W); probabilities (K, ..., H, W)."""

    semantic: np.ndarray
    instances: np.ndarray | None
    probabilities: np.ndarray | None


def layout_of_file(shape: tuple[int, ...], channel_axis: int | None, name: str) -> ImageLayout:
    """A file's axis roles: (H, W), (H, W, 3|4) colour, channels at `channel_axis` (any axis), else stacked planes.

    A 3-D file is a stack unless `channel_axis` says otherwise (or its last axis is colour).
    """
    rgb = channel_axis is None and len(shape) == 3 and shape[-1] in (3, 4)
    layout = ImageLayout.stored(shape, rgb=rgb, channel_axis=channel_axis, name=name)
    if len(layout.stack_shape) > 1:
        raise UserInputError(
            f"{name} has shape {tuple(shape)}: only one stack axis (Z or T) is supported; "
            "save each stack or time series as its own file"
        )
    return layout


def predict_image(
    segmenter: Segmenter,
    image,
    layout: ImageLayout,
    params: InstanceParams | None = InstanceParams(),
    *,
    frames: bool = False,
    z_anisotropy: float = 1.0,
    tile_size: int = 512,
    overlap: int = 64,
    probabilities: bool = False,
    diameter: float | str | None = None,
    flips: int = 1,
    progress: Callable[[int, int], None] | None = None,
    tile_progress: Callable[[int, int], None] | None = None,
) -> VolumeResult:
    """Semantic and instance labels (and probabilities when asked) of every plane of `image`.

    `params=None` skips the objects. A stack's objects are 3D unless `frames` (a time series).
    `diameter`: the objects' size in pixels, "auto" or None (the model's own), as Segmenter.predict.
    `flips`: test-time flips (network passes per tile), as Segmenter.predict.
    `progress(done, total)` counts planes, `tile_progress` the tiles of the plane being predicted.
    """
    planes = layout.planes()
    predictions, semantic, probs = [], [], []
    out_dtype = np.float32 if probabilities else np.float16
    for i, plane in enumerate(planes):
        data = layout.image_plane(image, plane) if layout.stack_shape else as_channels_first(
            image, rgb=layout.rgb, channel_axis=layout.channel_axis)
        prediction = segmenter.predict(data, diameter=diameter, tile_size=tile_size, overlap=overlap,
                                        out_dtype=out_dtype, flips=flips, progress=tile_progress)
        semantic.append(prediction.semantic())
        if probabilities:
            probs.append(prediction.probabilities)
        if params is not None:
            predictions.append(prediction)
        if progress is not None:
            progress(i + 1, len(planes))
    instances = None
    if params is not None:
        if layout.stack_shape and not frames:
            instances = instances_3d(predictions, params, use_instance_heads=segmenter.instance_heads_trained,
                                     z_anisotropy=z_anisotropy)
        else:
            instances = np.stack([segmenter.instances(p, params) for p in predictions])
    shape = layout.labels_shape
    return VolumeResult(
        semantic=np.stack(semantic).reshape(shape),
        instances=None if instances is None else instances.reshape(shape),
        probabilities=np.stack(probs, axis=1).reshape((-1, *shape)) if probabilities else None,
    )
