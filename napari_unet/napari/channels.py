"""Channels that napari opened as separate layers, combined as the channels of one image.

napari's readers split a multichannel file into one Image layer per channel (`channel_axis=`),
named "x", "x [1]", ... (or "x [0]", "x [1]"), all with the file as `source.path`. The plugin
segments one image with a (C, ...) input, so such layers are combined into one hidden Image
layer whose data is a lazy stack of theirs (nothing copied, the channels stay the layers the
user looks at) and whose axis 0 is the channel axis. Its geometry is the first channel's, so
its annotations, labels and predictions lie on the first layer's pixels. No Qt.
"""

from __future__ import annotations

import re

import dask.array as da
import numpy as np
from napari.layers import Image

from napari_unet import conventions as c
from napari_unet.errors import UserInputError
from napari_unet.napari import layers as lb

_CHANNEL_SUFFIX = re.compile(r"^(?P<base>.*?) \[(?P<index>\d+)\]$")


def base_name(name: str) -> str:
    """The name without napari's channel suffix: 'x [1]' -> 'x'."""
    match = _CHANNEL_SUFFIX.match(name)
    return match["base"] if match else name


def _geometry(layer: Image) -> tuple:
    data = lb.image_data(layer)
    return (tuple(data.shape), tuple(np.round(np.asarray(layer.scale, float), 9)),
            tuple(np.round(np.asarray(layer.translate, float), 9)))


def check_channels(layers: list[Image]) -> None:
    """A UserInputError unless `layers` can be the channels of one image: two or more
    single-channel images of one shape, scale and position."""
    if len(layers) < 2:
        raise UserInputError("pick at least two image layers to combine as channels")
    for layer in layers:
        if not isinstance(layer, Image) or lb.role_of(layer) is not None or lb.is_channel_stack(layer):
            raise UserInputError(f"'{layer.name}' is not an image layer that can be a channel")
        if layer.rgb:
            raise UserInputError(f"'{layer.name}' is RGB: it already has colour channels")
    first = layers[0]
    shape, scale, translate = _geometry(first)
    for layer in layers[1:]:
        other = _geometry(layer)
        if other[0] != shape:
            raise UserInputError(f"'{layer.name}' has shape {other[0]} but '{first.name}' has {shape}: "
                                 "channels of one image must have the same shape")
        if other[1:] != (scale, translate):
            raise UserInputError(f"'{layer.name}' is not placed like '{first.name}' (scale or translate "
                                 "differ): channels of one image must overlap pixel for pixel")


def detected_groups(viewer) -> list[list[Image]]:
    """Image layers that look opened together as the channels of one image: same file
    (`source.path`) or the same name up to napari's ' [k]' suffix, with one shape and position.
    Layers already combined are left out."""
    keyed: dict[tuple, list[Image]] = {}
    for layer in lb.image_layers(viewer):
        if layer.rgb or lb.is_channel_stack(layer):
            continue
        path = layer.source.path
        key = ("path", str(path)) if path else ("name", base_name(layer.name))
        keyed.setdefault(key + _geometry(layer), []).append(layer)
    return [group for group in keyed.values()
            if len(group) >= 2 and any(_CHANNEL_SUFFIX.match(layer.name) or layer.source.path for layer in group)]


def group_of(viewer, layer: Image) -> list[Image] | None:
    """The detected group of channel layers that `layer` belongs to, if any."""
    for group in detected_groups(viewer):
        if layer in group:
            return group
    return None


def combine_channels(viewer, layers: list[Image], name: str | None = None) -> Image:
    """The hidden (C, ...) Image layer stacking `layers` as channels (added, or the one already
    combining exactly these layers). Its data is lazy: planes are read from the channels' layers."""
    check_channels(layers)
    names = [layer.name for layer in layers]
    for layer in viewer.layers:
        if lb.is_channel_stack(layer) and lb.meta(layer).get("channel_layers") == names:
            return layer
    first = layers[0]
    stack = da.stack([_lazy(lb.image_data(layer)) for layer in layers])
    name = name or f"{base_name(first.name)} ({len(layers)} channels)"
    combined = Image(
        stack,
        name=name,
        scale=[1.0, *first.scale],
        translate=[0.0, *first.translate],
        axis_labels=["c", *first.axis_labels],
        contrast_limits=list(first.contrast_limits),
        visible=False,
        metadata={c.METADATA_KEY: {"channel_layers": names, "channel_axis": 0}},
    )
    viewer.add_layer(combined)
    return combined


def follow_rename(viewer, old: str, new: str) -> None:
    """A channel layer renamed `old` -> `new`: the combined images that stack it list it by its new name,
    so it stays one of their channels (not an image of its own again, in the pickers and the export)."""
    for layer in viewer.layers:
        names = lb.meta(layer).get("channel_layers") if lb.is_channel_stack(layer) else None
        if names and old in names:
            lb.set_meta(layer, channel_layers=[new if name == old else name for name in names])


def _lazy(data) -> da.Array:
    """A channel's data as dask, without reading it: a dask or zarr array keeps its chunks, an
    in-memory one gets a chunk per (H, W) plane (a plane read touches one chunk per channel)."""
    if isinstance(data, da.Array):
        return data
    if getattr(data, "chunks", None) is not None:
        return da.from_array(data)
    return da.from_array(data, chunks=(1,) * (len(data.shape) - 2) + tuple(data.shape[-2:]))
