"""Which layer is what: napari_unet's metadata on a layer (its role, its image), the images a user
can segment, and the Labels layers paired with an image (by metadata, then by conventional name)."""

from __future__ import annotations

from napari.layers import Image, Labels, Layer

from napari_unet import conventions as c


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
