"""npe2 reader: a napari-unet OME-Zarr dataset -> napari layers.

Claims only datasets written by napari-unet: other OME-Zarr stores are left to
napari-ome-zarr and napari's built-in reader (`napari-unet gui x.zarr` and
`widgets.launch.open_paths` choose this reader for datasets themselves; napari's File >
Open Folder matches folder readers without looking inside, so it may still ask).
Restores what `writer.write_layers` and the export dock saved: the image layer and every
Labels layer in their original order, with their names, pixel values and dtypes, scale
and translate, display settings (the accepted layer as an outline), Labels colours, and
role / class names in `metadata["napari_unet"]`. The dataset's provenance goes to the
image layer's `metadata["napari_unet"]["provenance"]`; a model saved beside the dataset
(``model.pt``, as the export dock writes it) goes to every layer's
`metadata["napari_unet"]["model_path"]` so the dock can offer to load it.

Labels are loaded into memory (numpy) so they can be painted; images stay lazy
(dask) when they are large or stored as a pyramid.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari_unet.conventions import METADATA_KEY, MODEL_FILE, ROLE_ACCEPTED
from napari_unet.io.ome_zarr_dataset import (
    ImageEntry,
    LabelsEntry,
    is_napari_unet_dataset,
    read_dataset,
)
from napari_unet.io.ome_zarr_read import load

# Up to this size an array is loaded into memory; larger ones stay lazy.
IN_MEMORY_BYTES = 1 << 30
_TRANSPARENT = (0.0, 0.0, 0.0, 0.0)

LayerData = tuple[Any, dict, str]


def get_reader(path: str | list[str]) -> Callable[[str], list[LayerData]] | None:
    """Return `read_layers` if `path` is a napari-unet dataset folder, else None."""
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    path = os.fspath(path)
    if not os.path.isdir(path) or not is_napari_unet_dataset(path):
        return None
    return read_layers


def read_layers(path: str | list[str]) -> list[LayerData]:
    """Layers of the dataset at `path`: the image first, then its Labels layers."""
    if isinstance(path, list | tuple):
        path = path[0]
    image, labels, provenance = read_dataset(path)
    layers = [image_layer_data(image, provenance, path)]
    layers += [labels_layer_data(entry, path) for entry in labels]
    model = model_beside(path, provenance)
    if model is not None:
        for _, meta, _ in layers:
            meta["metadata"][METADATA_KEY] = {**(meta["metadata"].get(METADATA_KEY) or {}),
                                              "model_path": str(model)}
    if any(entry.role == ROLE_ACCEPTED for entry in labels):
        _outline_accepted_when_added(path)
    return layers


def _outline_accepted_when_added(path) -> None:
    """Show the accepted layer as an outline, as the dock made it. napari's layer data has
    no "contour" key, so the layer is outlined when the viewer adds it."""
    import napari  # napari calls this reader: it is loaded already

    viewer = napari.current_viewer()
    if viewer is None:
        return
    source = os.path.abspath(os.fspath(path))

    def outline(event) -> None:
        layer = event.value
        if os.path.abspath(os.fspath(layer.source.path or "")) != source:
            return
        if (layer.metadata.get(METADATA_KEY) or {}).get("role") == ROLE_ACCEPTED:
            layer.contour = 1
            viewer.layers.events.inserted.disconnect(outline)

    viewer.layers.events.inserted.connect(outline)


def model_beside(path: str | os.PathLike, provenance: dict | None = None) -> Path | None:
    """The model file saved with the dataset (named in its provenance, else model.pt) in
    the dataset's folder, if it is there."""
    model = (provenance or {}).get("model")
    name = model.get("file") if isinstance(model, dict) and isinstance(model.get("file"), str) else None
    candidate = Path(path).absolute().parent / Path(name or MODEL_FILE).name
    return candidate if candidate.is_file() else None


def image_layer_data(entry: ImageEntry, provenance: dict | None = None,
                     path: str | os.PathLike = "") -> LayerData:
    levels = entry.levels or [entry.data]
    if len(levels) > 1:
        data: Any = list(levels)
    elif levels[0].nbytes <= IN_MEMORY_BYTES:
        data = load(levels[0], Path(path), f"image {entry.name!r}")
    else:
        data = levels[0]
    metadata = dict(entry.metadata)
    if provenance:
        metadata[METADATA_KEY] = {**(metadata.get(METADATA_KEY) or {}), "provenance": provenance}
    meta: dict[str, Any] = {
        "name": entry.name,
        "scale": list(entry.scale) if entry.scale is not None else None,
        "translate": list(entry.translate) if entry.translate is not None else None,
        "metadata": metadata,
        "rgb": entry.rgb,
        "multiscale": len(levels) > 1,
    }
    meta.update(_units(entry.units))
    if entry.contrast_limits is not None:
        meta["contrast_limits"] = list(entry.contrast_limits)
    for key, value in entry.display.items():
        if key == "colormap" and not _known_colormap(value):
            continue
        meta[key] = value
    if entry.channel_axis is not None:
        meta["channel_axis"] = entry.channel_axis
        # per channel: napari splits the image into one layer per channel
        meta.pop("contrast_limits", None)
    return data, {k: v for k, v in meta.items() if v is not None}, "image"


def labels_layer_data(entry: LabelsEntry, path: str | os.PathLike = "") -> LayerData:
    levels = entry.levels or [entry.data]
    if levels[0].nbytes <= IN_MEMORY_BYTES:  # editable: napari paints into numpy arrays
        data: Any = load(levels[0], Path(path), f"labels {entry.name!r}")
    else:
        data = list(levels) if len(levels) > 1 else levels[0]
    metadata = dict(entry.metadata)
    own = dict(metadata.get(METADATA_KEY) or {})
    if entry.role is not None:
        own["role"] = entry.role
    if entry.class_names is not None:
        own["class_names"] = list(entry.class_names)
    if own:
        metadata[METADATA_KEY] = own
    meta: dict[str, Any] = {
        "name": entry.name,
        "scale": list(entry.scale) if entry.scale is not None else None,
        "translate": list(entry.translate) if entry.translate is not None else None,
        "metadata": metadata,
        **entry.display,
    }
    meta.update(_units(entry.units))
    if entry.colors:
        colors = dict(entry.colors)
        colors.setdefault(None, _TRANSPARENT)
        meta["colormap"] = colors  # napari makes a DirectLabelColormap of a dict
    if isinstance(data, list):
        meta["multiscale"] = True
    return data, {k: v for k, v in meta.items() if v is not None}, "labels"


def _units(units) -> dict:
    """{"units": [...]} when every axis has a unit, else {} (napari's default: pixels)."""
    if units and all(units):
        return {"units": list(units)}
    return {}


def _known_colormap(name) -> bool:
    if not isinstance(name, str):
        return False
    try:
        from napari.utils.colormaps import AVAILABLE_COLORMAPS
    except ImportError:  # pragma: no cover
        return False
    return name in AVAILABLE_COLORMAPS
